"""Decoders on real media: tiny synthetic H.264 files and JPEG frame folders written here."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from i3dbench.data import decoders
from i3dbench.data.decoders import DecodeError, get_decoder
from i3dbench.data.synthetic import (
    VideoSpec,
    generate_synthetic,
    render_video,
    synthetic_paths,
    write_h264,
    write_jpegs,
)

NUM_FRAMES = 16


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """One 16-frame video per class at 340x256, as H.264 and as JPEG frames."""
    root = tmp_path_factory.mktemp("synthetic")
    generate_synthetic(root, videos_per_class=1, val_videos_per_class=0, num_frames=NUM_FRAMES, sizes=("340x256",), workers=1, progress=False)
    return root


def _videos(root: Path) -> list[str]:
    _, ann = synthetic_paths(root, "videos", "340x256", "train")
    return [line.split()[0] for line in ann.read_text().splitlines()]


def _spec(root: Path, vid: str) -> VideoSpec:
    import json

    meta = json.loads((root / "synthetic.json").read_text())
    (d,) = [v for v in meta["videos"] if v["vid"] == vid]
    return VideoSpec(**{**d, "color": tuple(d["color"])})


def test_decord_and_pyav_agree(tiny):
    vroot, _ = synthetic_paths(tiny, "videos", "340x256")
    decord, pyav = get_decoder("decord"), get_decoder("pyav")
    idx = np.arange(NUM_FRAMES)
    diffs = []
    for name in _videos(tiny):
        path = vroot / name
        assert decord.num_frames(path) == pyav.num_frames(path) == NUM_FRAMES
        a, b = decord.read(path, idx), pyav.read(path, idx)
        assert a.dtype == b.dtype == torch.uint8
        assert a.shape == b.shape == (NUM_FRAMES, 256, 340, 3)
        diffs.append((a.float() - b.float()).abs().mean().item())
    print(f"decord vs PyAV mean |diff| per video: max {max(diffs):.4f} grey levels")
    # Both use FFmpeg's H.264 decoder and swscale; allow codec-level tolerance only.
    assert max(diffs) <= 1.0


def test_rawframes_agree_with_videos_and_source(tiny):
    vroot, _ = synthetic_paths(tiny, "videos", "340x256")
    rroot, _ = synthetic_paths(tiny, "rawframes", "340x256")
    decord, raw = get_decoder("decord"), get_decoder("rawframes")
    idx = np.arange(NUM_FRAMES)
    v_vs_r, v_vs_src, r_vs_src = [], [], []
    for name in _videos(tiny):
        vid = name[: -len(".mp4")]
        assert raw.num_frames(rroot / vid) == NUM_FRAMES
        v = decord.read(vroot / name, idx).float()
        r = raw.read(rroot / vid, idx).float()
        src = torch.from_numpy(render_video(_spec(tiny, vid), 340, 256)).float()
        v_vs_r.append((v - r).abs().mean().item())
        v_vs_src.append((v - src).abs().mean().item())
        r_vs_src.append((r - src).abs().mean().item())
    print(f"mean |diff|: H.264 vs JPEG {np.mean(v_vs_r):.3f}, H.264 vs source {np.mean(v_vs_src):.3f}, JPEG vs source {np.mean(r_vs_src):.3f}")
    assert max(v_vs_r) < 3.0  # two independent lossy encodings of one source (measured ~1.5)
    assert max(v_vs_src) < 3.0
    assert max(r_vs_src) < 2.0


@pytest.mark.parametrize("name", ["decord", "pyav", "rawframes"])
def test_repeated_unsorted_indices_decode_each_frame_once(tiny, name, monkeypatch):
    vroot, _ = synthetic_paths(tiny, "videos", "340x256")
    rroot, _ = synthetic_paths(tiny, "rawframes", "340x256")
    vid = _videos(tiny)[0]
    path = rroot / vid[:-4] if name == "rawframes" else vroot / vid
    dec = get_decoder(name)
    full = dec.read(path, np.arange(NUM_FRAMES))
    idx = np.array([9, 2, 9, 0, 2, 15])
    if name == "rawframes":
        calls = []
        original = dec._load
        monkeypatch.setattr(dec, "_load", lambda f: calls.append(f) or original(f))
    out = dec.read(path, idx)
    assert torch.equal(out, full[torch.from_numpy(idx)])
    if name == "rawframes":
        assert len(calls) == 4  # 0, 2, 9, 15


def test_rawframes_template_start_index_and_gaps(tmp_path):
    frames = render_video(VideoSpec("v", "train", 0, "growing", 3, 6, "rectangle", 0.5, (250, 10, 10), 0.15, 0.9, 0.5, 0.0, 0.02), 64, 48)
    write_jpegs(tmp_path / "a", frames, filename_tmpl="frame_{:04d}.jpg", start_index=0)
    dec0 = get_decoder("rawframes", filename_tmpl="frame_{:04d}.jpg", start_index=0)
    assert dec0.num_frames(tmp_path / "a") == 6
    a = dec0.read(tmp_path / "a", np.array([0, 5]))
    # start_index=1 on the same folder: index 0 is frame_0001.jpg
    dec1 = get_decoder("rawframes", filename_tmpl="frame_{:04d}.jpg", start_index=1)
    assert dec1.num_frames(tmp_path / "a") == 5  # frame_0000 lies before the start and is not counted
    b = dec1.read(tmp_path / "a", np.array([0, 4]))
    assert not torch.equal(a[0], b[0])  # the object grows: frames 0 and 1 differ
    assert torch.equal(b, dec0.read(tmp_path / "a", np.array([1, 5])))
    (tmp_path / "a" / "frame_0003.jpg").unlink()
    assert dec0.num_frames(tmp_path / "a") == 3  # frames after a gap are not addressable
    with pytest.raises(DecodeError, match="frame_0003.jpg"):
        dec0.read(tmp_path / "a", np.array([2, 3]))


def test_rawframes_backends_identical(tiny):
    pytest.importorskip("cv2")
    rroot, _ = synthetic_paths(tiny, "rawframes", "340x256")
    vid = _videos(tiny)[1][:-4]
    idx = np.arange(NUM_FRAMES)
    a = get_decoder("rawframes", backend="pillow").read(rroot / vid, idx)
    b = get_decoder("rawframes", backend="cv2").read(rroot / vid, idx)
    assert torch.equal(a, b)
    if _turbo_available():
        assert torch.equal(get_decoder("rawframes", backend="turbojpeg").read(rroot / vid, idx), a)


def _turbo_available() -> bool:
    try:
        decoders._turbojpeg_codec()
        return True
    except decoders.BackendUnavailable:
        return False


def _turbo_libraries() -> dict[str, object]:
    """The TurboJPEG-API libraries that load here: "PyTurboJPEG" (needs the system
    libturbojpeg) and/or "simplejpeg" (bundles it), each as the module to force."""
    found = {}
    try:
        import turbojpeg

        turbojpeg.TurboJPEG()
        found["PyTurboJPEG"] = turbojpeg
    except Exception:  # noqa: BLE001 - not installed, or its libturbojpeg cannot be loaded
        pass
    try:
        import simplejpeg

        found["simplejpeg"] = simplejpeg
    except ImportError:
        pass
    return found


@pytest.fixture(scope="module")
def real_jpegs(tmp_path_factory) -> Path:
    """Real video frames (bikes, 640x272, 24 frames) written as build_rawframes.py writes them
    (cv2.imencode defaults: quality 95, 4:2:0), plus one grayscale and one 4:4:4 progressive JPEG."""
    cv2 = pytest.importorskip("cv2")
    from real_clips import clip_path

    d = tmp_path_factory.mktemp("real_jpegs") / "bikes"
    d.mkdir()
    frames = get_decoder("pyav").read(clip_path("bikes.mp4"), np.arange(24)).numpy()
    for i, rgb in enumerate(frames, start=1):
        cv2.imwrite(str(d / f"img_{i:05d}.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    odd = d.parent / "odd"
    odd.mkdir()
    cv2.imwrite(str(odd / "img_00001.jpg"), cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY))
    cv2.imwrite(str(odd / "img_00002.jpg"), cv2.cvtColor(frames[1], cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_PROGRESSIVE, 1, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])
    return d


def test_jpeg_backends_identical_on_real_frames(real_jpegs, monkeypatch):
    """cv2, Pillow and libjpeg-turbo's TurboJPEG API (PyTurboJPEG and simplejpeg) decode the
    same pixels: all are libjpeg-turbo with its accurate defaults (islow DCT, fancy upsampling)."""
    import time

    idx = np.arange(24)
    results, speed = {}, {}
    libs = _turbo_libraries()
    backends = [("cv2", None), ("pillow", None)] + [("turbojpeg", name) for name in libs]
    for backend, lib in backends:
        decoders._TURBO.clear()
        if lib == "simplejpeg":  # force the fallback even where PyTurboJPEG loads
            monkeypatch.setitem(sys.modules, "turbojpeg", None)
        dec = get_decoder("rawframes", backend=backend)
        key = f"{backend}/{lib}" if lib else backend
        assert dec.version.startswith(f"{backend} ") and (lib is None or lib in dec.version), dec.version
        t0 = time.perf_counter()
        results[key] = dec.read(real_jpegs, idx)
        speed[key] = 24 / (time.perf_counter() - t0)
        results[key + " odd"] = torch.cat([dec.read(real_jpegs.parent / "odd", np.array([0])),
                                          dec.read(real_jpegs.parent / "odd", np.array([1]))])
        if lib == "simplejpeg":
            monkeypatch.undo()  # PyTurboJPEG importable again
    decoders._TURBO.clear()
    print("JPEG decode, frames/s on one thread (640x272): " + ", ".join(f"{k} {v:.0f}" for k, v in speed.items()))
    first = results["cv2"]
    assert first.shape == (24, 272, 640, 3)
    for key, value in results.items():
        ref = results["cv2 odd"] if key.endswith(" odd") else first
        assert torch.equal(value, ref), f"{key} decodes other pixels than cv2"


def test_missing_jpeg_backend_is_a_user_error_naming_the_entry_field(monkeypatch, tiny):
    """A backend whose library is missing: a UserError naming the entry, its field and what to install."""
    import dataclasses

    from i3dbench.data.dataset import ClipDataset, default_decoder
    from i3dbench.errors import UserError
    from i3dbench.zoo import get_entry

    lazy = get_entry("i3d_r50_lazy_32x2x1_100e_kinetics400_rgb")
    assert lazy.data.jpeg_backend == "turbojpeg"  # MMAction2 0.x's RawFrameDecode(decoding_backend='turbojpeg')
    decoders._TURBO.clear()
    monkeypatch.setitem(sys.modules, "turbojpeg", None)
    monkeypatch.setitem(sys.modules, "simplejpeg", None)
    with pytest.raises(UserError) as info:
        default_decoder(lazy)
    msg = str(info.value)
    assert "i3d_r50_lazy_32x2x1_100e_kinetics400_rgb" in msg and "data.jpeg_backend" in msg
    assert "pip install simplejpeg" in msg and "apt-get install libturbojpeg0" in msg
    monkeypatch.setitem(sys.modules, "cv2", None)
    plain = get_entry("i3d_r50_32x2x1_100e_kinetics400_rgb")
    with pytest.raises(UserError, match=r"data\.jpeg_backend: 'cv2'.*pip install opencv-python-headless"):
        default_decoder(plain)
    exact = dataclasses.replace(plain, data=dataclasses.replace(plain.data, resize_backend="cv2", jpeg_backend="pillow"))
    with pytest.raises(UserError, match=r"data\.resize_backend: 'cv2'.*pip install opencv-python-headless"):
        ClipDataset(exact, "test", [], tiny, default_decoder(exact))
    decoders._TURBO.clear()


def test_rawframe_decoder_pickles_with_each_backend(tiny):
    rroot, _ = synthetic_paths(tiny, "rawframes", "340x256")
    vid = _videos(tiny)[0][:-4]
    for backend in ("pillow", "cv2", "turbojpeg"):
        try:
            dec = get_decoder("rawframes", backend=backend)
        except decoders.BackendUnavailable:
            continue
        again = pickle.loads(pickle.dumps(dec))
        assert again.version == dec.version
        assert torch.equal(again.read(rroot / vid, np.array([0, 3])), dec.read(rroot / vid, np.array([0, 3])))
    with pytest.raises(ValueError, match="backend must be"):
        get_decoder("rawframes", backend="libjpeg")


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, tiny) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    good = synthetic_paths(tiny, "videos", "340x256")[0] / _videos(tiny)[0]
    data = good.read_bytes()
    (d / "zero.mp4").write_bytes(b"")
    (d / "text.mp4").write_text("this is not a video\n")
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])
    return {"zero": d / "zero.mp4", "text": d / "text.mp4", "truncated": d / "truncated.mp4", "missing": d / "missing.mp4", "good": good}


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
@pytest.mark.parametrize("kind", ["zero", "text", "truncated", "missing"])
def test_bad_video_raises_decode_error_with_path(bad_files, decoder, kind):
    dec = get_decoder(decoder)
    path = bad_files[kind]
    with pytest.raises(DecodeError) as info:
        dec.read(path, np.arange(4))
    assert info.value.path == str(path)
    assert str(path) in str(info.value) and info.value.reason
    with pytest.raises(DecodeError):
        dec.num_frames(path)
    # Survives a trip through a DataLoader worker's pickling.
    again = pickle.loads(pickle.dumps(info.value))
    assert (again.path, again.reason, str(again)) == (info.value.path, info.value.reason, str(info.value))


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_out_of_range_and_bad_indices(bad_files, decoder):
    dec = get_decoder(decoder)
    with pytest.raises(DecodeError, match="out of range"):
        dec.read(bad_files["good"], np.array([0, NUM_FRAMES]))
    with pytest.raises(DecodeError, match="negative"):
        dec.read(bad_files["good"], np.array([-1]))
    with pytest.raises(DecodeError, match="no frame indices"):
        dec.read(bad_files["good"], np.array([], dtype=int))


def test_get_decoder_names_and_versions():
    for name in ("decord", "pyav", "rawframes"):
        dec = get_decoder(name)
        assert dec.name == name and isinstance(dec.version, str) and dec.version
    # records name the JPEG backend and its library through the version
    assert get_decoder("rawframes", backend="pillow").version.startswith("pillow pillow-")
    assert get_decoder().name == "decord"
    with pytest.raises(ValueError, match="unknown decoder"):
        get_decoder("opencv")


def test_h264_gop_is_fixed(tmp_path):
    """Keyframes every 25 frames, whatever the content (decord seeks by them)."""
    import av

    spec = VideoSpec("v", "train", 0, "moving left", 5, 60, "triangle", 0.5, (10, 250, 10), 0.12, 0.9, 0.5, 30.0, 0.01)
    write_h264(tmp_path / "v.mp4", render_video(spec, 128, 72))
    with av.open(str(tmp_path / "v.mp4")) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        keys = sorted(round(float(p.pts * p.time_base) * 25) for p in c.demux(stream) if p.is_keyframe)
    assert keys == [0, 25, 50]
    dec = get_decoder("decord")
    assert torch.equal(dec.read(tmp_path / "v.mp4", np.array([51, 3, 26])), get_decoder("pyav").read(tmp_path / "v.mp4", np.array([51, 3, 26])))


def test_decoder_libraries_are_imported_lazily():
    code = "import sys, i3dbench.data.decoders; print(sorted(m for m in ('decord', 'av', 'cv2', 'PIL') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1])
    assert out.stdout.strip() == "[]"


def test_frame_count_without_container_count(tmp_path):
    """Matroska stores no frame count: PyAV falls back to counting packets; decord agrees."""
    import av

    frames = render_video(VideoSpec("v", "train", 0, "shrinking", 2, 7, "ellipse", 0.5, (250, 250, 0), 0.2, 0.9, 0.5, 0.0, 0.03), 64, 48)
    with av.open(str(tmp_path / "v.mkv"), "w", format="matroska") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for img in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(s.encode())
    with av.open(str(tmp_path / "v.mkv")) as c:
        assert c.streams.video[0].frames == 0
    assert get_decoder("pyav").num_frames(tmp_path / "v.mkv") == get_decoder("decord").num_frames(tmp_path / "v.mkv") == 7


def test_truncated_file_that_still_opens(tmp_path):
    """moov atom first (faststart), data cut: the file opens and claims its length, decoding fails."""
    import av

    frames = np.random.default_rng(0).integers(0, 256, (30, 48, 64, 3), dtype=np.uint8)  # noise: big packets
    with av.open(str(tmp_path / "v.mp4"), "w", format="mp4", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for img in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(s.encode())
    data = (tmp_path / "v.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    for name in ("decord", "pyav"):
        with pytest.raises(DecodeError) as info:
            get_decoder(name).read(tmp_path / "cut.mp4", np.array([0, 29]))
        print(f"{name}: {info.value.reason}")
    # streaming (data extract): the frames that decode come first, then the error
    got = []
    with pytest.raises(DecodeError, match="of the 30 frames could be decoded"):
        for frame in get_decoder("pyav").iter_frames(tmp_path / "cut.mp4"):
            got.append(frame)
    assert 0 < len(got) < 30
    assert np.array_equal(np.stack(list(get_decoder("pyav").iter_frames(tmp_path / "v.mp4"))),
                          get_decoder("pyav").read(tmp_path / "v.mp4", np.arange(30)).numpy())
