"""Dataset inventory (`i3dbench data check`) on folders with every kind of broken video."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from i3dbench.cli import main
from i3dbench.data.inventory import check_dataset
from i3dbench.data.synthetic import VideoSpec, render_video, write_h264, write_jpegs


def _spec(label: int, seed: int, frames: int) -> VideoSpec:
    return VideoSpec(f"v{seed}", "val", label, "moving left", seed, frames, "rectangle", 0.5, (20, 240, 20), 0.15, 0.9, 0.5, 10.0, 0.01)


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    """Three good 20-frame 96x64 videos with a list file."""
    root = tmp_path_factory.mktemp("clean")
    for i in range(3):
        write_h264(root / f"good{i}.mp4", render_video(_spec(i % 2, i, 20), 96, 64))
    (root / "list.txt").write_text("good0.mp4 0\ngood1.mp4 1\ngood2.mp4 0\n")
    return root


@pytest.fixture()
def broken(clean, tmp_path) -> Path:
    root = tmp_path / "broken"
    shutil.copytree(clean, root)
    data = (root / "good0.mp4").read_bytes()
    (root / "zero.mp4").write_bytes(b"")
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (root / "text.mp4").write_text("I am a text file\n")
    write_h264(root / "two_frames.mp4", render_video(_spec(1, 9, 2), 96, 64))
    (root / "list.txt").write_text(
        "good0.mp4 0\ngood1.mp4 1\nzero.mp4 1\ntruncated.mp4 0\ntext.mp4 1\n"
        "two_frames.mp4 0\nmissing.mp4 1\nbad_label.mp4 one\ngood2.mp4 0\n"
    )
    return root


def test_check_names_every_problem_and_exits_2(broken, capsys, tmp_path):
    rc = main(["data", "check", str(broken), "--ann", str(broken / "list.txt"), "--clip-len", "8", "--frame-interval", "2",
               "--json", str(tmp_path / "report.json"), "--workers", "2", "--quiet"])
    out = capsys.readouterr()
    assert rc == 2
    assert "Traceback" not in out.out + out.err
    text = out.out
    for status, name in [("unreadable", "zero.mp4"), ("unreadable", "truncated.mp4"), ("unreadable", "text.mp4"),
                         ("too_short", "two_frames.mp4"), ("missing", "missing.mp4")]:
        assert f"{status}: {name}: " in text, (status, name, text)
    assert f"{broken / 'list.txt'}:8: LABEL must be an integer, got 'one'" in text
    report = json.loads((tmp_path / "report.json").read_text())
    by_path = {p["path"]: p for p in report["problems"]}
    assert set(by_path) == {"zero.mp4", "truncated.mp4", "text.mp4", "two_frames.mp4", "missing.mp4"}
    assert by_path["zero.mp4"]["reason"] == "file is empty (0 bytes)"
    assert "2 frames, fewer than one clip spans (15)" in by_path["two_frames.mp4"]["reason"]
    assert report["status_counts"] == {"ok": 3, "missing": 1, "unreadable": 3, "zero_frames": 0, "too_short": 1, "count_mismatch": 0, "bad_path": 0}
    assert report["ok"] is False and len(report["annotation_errors"]) == 1
    assert report["class_counts"] == {"0": {"annotated": 4, "ok": 2}, "1": {"annotated": 4, "ok": 1}}


def test_clean_set_exits_0_with_stats(clean, capsys):
    rc = main(["data", "check", str(clean), "--ann", str(clean / "list.txt"), "--clip-len", "8", "--frame-interval", "2", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "96x64 (3)" in out and "frames: min 20" in out


def test_short_videos_pass_without_a_clip_length(broken):
    report = check_dataset(broken, broken / "list.txt", progress=False)
    assert report.status_counts["too_short"] == 0 and report.status_counts["ok"] == 4


def test_bad_invocation_exits_2_without_traceback(clean, capsys, tmp_path):
    assert main(["data", "check", str(tmp_path / "nowhere"), "--ann", str(clean / "list.txt")]) == 2
    assert main(["data", "check", str(clean), "--ann", str(tmp_path / "nope.txt")]) == 2
    err = capsys.readouterr().err
    assert "is not a directory" in err and "not found" in err and "Traceback" not in err


def test_fingerprint_tracks_files_and_annotations_not_location(clean, tmp_path):
    base = check_dataset(clean, clean / "list.txt", progress=False)
    copy = tmp_path / "copy"
    shutil.copytree(clean, copy)
    assert check_dataset(copy, copy / "list.txt", progress=False).fingerprint == base.fingerprint  # same copy elsewhere
    with open(copy / "good1.mp4", "ab") as fh:  # a re-encoded / altered file changes its size
        fh.write(b"\0")
    changed = check_dataset(copy, copy / "list.txt", progress=False)
    assert changed.fingerprint != base.fingerprint
    shutil.copy(clean / "good1.mp4", copy / "good1.mp4")
    (copy / "list.txt").write_text("good0.mp4 0\ngood1.mp4 1\n")  # a copy with fewer videos
    assert check_dataset(copy, copy / "list.txt", progress=False).fingerprint not in (base.fingerprint, changed.fingerprint)


def test_rawframes_inventory(tmp_path):
    root = tmp_path / "frames"
    frames = render_video(_spec(0, 1, 6), 64, 48)
    for name in ("ok", "short_list", "bad_jpeg"):
        write_jpegs(root / name, frames)
    (root / "bad_jpeg" / "img_00006.jpg").write_text("not a jpeg")
    (root / "empty").mkdir()
    (root / "list.txt").write_text("ok 6 0\nshort_list 5 1\nbad_jpeg 6 1\nempty 3 0\ngone 6 0\n")
    # --clip-len 4: these 6-frame folders are long enough (the default bar is the zoo's longest clip)
    rc = main(["data", "check", str(root), "--ann", str(root / "list.txt"), "--format", "rawframes", "--clip-len", "4",
               "--json", str(tmp_path / "r.json"), "--quiet"])
    assert rc == 2
    report = json.loads((tmp_path / "r.json").read_text())
    status = {p["path"]: p["status"] for p in report["problems"]}
    assert status == {"short_list": "count_mismatch", "bad_jpeg": "unreadable", "empty": "zero_frames", "gone": "missing"}
    assert "img_00006.jpg" in next(p["reason"] for p in report["problems"] if p["path"] == "bad_jpeg")
    assert report["resolutions"] == {"64x48": 2}  # ok and short_list were decoded


def test_duplicates_are_named_and_checked_once(clean, tmp_path):
    (tmp_path / "list.txt").write_text("good0.mp4 0\ngood1.mp4 1\n./good0.mp4 1\n")
    opened = []

    class CountingDecoder:  # the real decoder, counting what it opens
        def __init__(self):
            from i3dbench.data.decoders import get_decoder

            self.inner = get_decoder("decord")
            self.name, self.version = self.inner.name, self.inner.version

        def num_frames(self, path):
            opened.append(Path(path).name)
            return self.inner.num_frames(path)

        def read(self, path, indices):
            return self.inner.read(path, indices)

    report = check_dataset(clean, tmp_path / "list.txt", decoder=CountingDecoder(), workers=1, progress=False)
    assert sorted(opened) == ["good0.mp4", "good1.mp4"]
    assert report.annotation_errors == [f"{tmp_path / 'list.txt'}:3: PATH './good0.mp4' is listed again (first on line 1): "
                                        "it would count twice in the accuracy"]
    assert report.num_annotated == 3 and report.status_counts["ok"] == 3 and not report.ok
    assert report.class_counts == {0: {"annotated": 1, "ok": 1}, 1: {"annotated": 2, "ok": 2}}


@pytest.mark.parametrize("kwargs,message", [
    ({"clip_len": -3}, "clip_len must be >= 1, got -3"),
    ({"clip_len": 8, "frame_interval": 0}, "frame_interval must be >= 1, got 0"),
    ({"workers": 0}, "workers must be >= 1, got 0"),
    ({"format": "frames"}, "format must be 'videos' or 'rawframes'"),
])
def test_bad_arguments_are_usage_errors(clean, kwargs, message):
    from i3dbench.errors import UsageError

    with pytest.raises(UsageError, match=message):
        check_dataset(clean, clean / "list.txt", progress=False, **kwargs)


def test_labels_checked_against_num_classes_and_reference_compared(clean, tmp_path):
    (tmp_path / "ref.txt").write_text("good0 20 0\ngood1 20 1\n")
    report = check_dataset(clean, clean / "list.txt", progress=False, num_classes=1, reference=tmp_path / "ref.txt")
    assert report.annotation_errors == [f"{clean / 'list.txt'}:2: LABEL 1 is out of range for 1 classes (0..0)"]
    # a refused line is not part of the copy: its video counts as missing
    assert report.comparison["missing"] == ["good1"] and report.comparison["extra"] == ["good2"]
    assert report.to_dict()["comparison"]["num_common"] == 1
