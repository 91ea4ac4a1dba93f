"""Write tests/golden/transforms/: MMAction2 1.2.0's geometry and pixels for the I3D pipelines.

Run once with MMAction2 installed (development oracle; the tests never import it):

    python3 dev/make_golden_transforms.py

boxes.json  -- full-size geometry (no pixels): Resize((-1, 256)) output sizes, MultiScaleCrop
               boxes and Flip decisions for seeds 0..9 (MMAction2 draws from ``random.seed(s)``
               and ``np.random.seed(s)``), lazy crop boxes, CenterCrop and ThreeCrop boxes, for
               frame sizes seen in Kinetics copies.
pixels.npz  -- MMAction2's output pixels on small smooth random frames (tests/pipeline_media.py)
               for each pipeline, at a reduced scale (short side 48, crops 42 / 48) so the
               fixture stays small; the scale factors match the real ones.
pixels.json -- what each array is, plus the mean |diff| between MMAction2 and i3dbench measured
               here at the real sizes (256 / 224) for the report.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import torch
from mmaction.datasets.transforms.formatting import FormatShape
from mmaction.datasets.transforms.processing import (
    CenterCrop,
    Flip,
    Fuse,
    MultiScaleCrop,
    Resize,
    ThreeCrop,
)
from mmaction.models.data_preprocessors import ActionDataPreprocessor

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from pipeline_media import smooth_frames

from i3dbench.data import transforms as T

OUT = ROOT / "tests" / "golden" / "transforms"
SEEDS = list(range(10))
# (h, w) of decoded frames: 340x256 and short-256 extractions, odd sizes, portrait, upscaling
SHAPES = [(256, 340), (256, 455), (256, 256), (256, 341), (240, 320), (320, 426), (360, 480),
          (288, 352), (340, 256), (480, 272), (250, 333), (331, 500)]
MSC_VARIANTS = {
    "i3d": dict(input_size=224, scales=(1, 0.8), random_crop=False, max_wh_scale_gap=0),
    "tsn": dict(input_size=224, scales=(1, 0.875, 0.75, 0.66), random_crop=False, max_wh_scale_gap=1),
    "fixed13": dict(input_size=224, scales=(1, 0.875, 0.75, 0.66), random_crop=False, max_wh_scale_gap=1,
                    num_fixed_crops=13),
    "random": dict(input_size=224, scales=(1, 0.875, 0.75), random_crop=True, max_wh_scale_gap=1),
}
MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


def run(pipeline, results):
    for t in pipeline:
        results = t(results)
    return results


def seeded(seed):
    random.seed(seed)
    np.random.seed(seed)


def train_pipeline(short, crop, lazy, msc=None):
    msc = dict(MSC_VARIANTS["i3d"] if msc is None else msc, input_size=crop)
    steps = [Resize(scale=(-1, short), lazy=lazy), MultiScaleCrop(lazy=lazy, **msc),
             Resize(scale=(crop, crop), keep_ratio=False, lazy=lazy), Flip(flip_ratio=0.5, lazy=lazy)]
    return steps + ([Fuse()] if lazy else [])


def val_pipeline(short, crop, lazy):
    steps = [Resize(scale=(-1, short), lazy=lazy), CenterCrop(crop_size=crop, lazy=lazy)]
    return steps + ([Flip(flip_ratio=0, lazy=True), Fuse()] if lazy else [])


def boxes() -> dict:
    out = []
    for h, w in SHAPES:
        item = dict(shape=[h, w])
        res = run([Resize(scale=(-1, 256))], dict(img_shape=(h, w), modality="RGB"))
        item["resized"] = list(res["img_shape"])
        rh, rw = res["img_shape"]
        item["center_crop_224"] = res_box(run([CenterCrop(224)], dict(img_shape=(rh, rw), modality="RGB")))
        three = run([ThreeCrop(256)], dict(imgs=[np.zeros((rh, rw, 3), np.uint8)], modality="RGB"))
        item["three_crop_256"] = three["crop_bbox"].tolist()
        lazy_val = run(val_pipeline(256, 224, True)[:2], dict(img_shape=(h, w), modality="RGB"))
        item["lazy_center_crop_224"] = lazy_val["lazy"]["crop_bbox"].tolist()
        for name, msc in MSC_VARIANTS.items():
            rows = []
            for seed in SEEDS:
                seeded(seed)
                r = run(train_pipeline(256, 224, False, msc), dict(img_shape=(h, w), modality="RGB"))
                seeded(seed)
                lz = run(train_pipeline(256, 224, True, msc)[:-1], dict(img_shape=(h, w), modality="RGB"))
                rows.append(dict(seed=seed, box=res_box(r), flip=bool(r["flip"]),
                                 lazy_box=lz["lazy"]["crop_bbox"].tolist(), lazy_flip=bool(lz["lazy"]["flip"])))
            item[f"train_{name}"] = rows
        out.append(item)
    return dict(seeds=SEEDS, msc_variants={k: {a: list(b) if isinstance(b, tuple) else b for a, b in v.items()}
                                           for k, v in MSC_VARIANTS.items()}, shapes=out)


def res_box(results):
    return [int(v) for v in results["crop_bbox"]]


def mm_imgs(frames, pipeline, seed=None):
    if seed is not None:
        seeded(seed)
    r = run(pipeline, dict(imgs=list(frames.copy()), modality="RGB"))
    return np.stack(r["imgs"]), r


# small-scale pixel cases (one frame each): resize short to 40, train/val crop 35 (224/256 scale);
# the test pipeline on 2 clips x 2 frames of 24x32, short side 24, ThreeCrop 24
PIX_SHORT, PIX_TRAIN, PIX_T = 40, 35, 1
PIX_SOURCES = {"s40x53": (40, 53), "up30x40": (30, 40), "down50x89": (50, 89), "portrait53x40": (53, 40)}
TEST_VIEWS = dict(seed=200, t=4, h=24, w=32, num_clips=2, clip_len=2, short=24, crop=24)
PIX_SEEDS = (0, 1)  # seed 0: no flip, seed 1: flip (checked below)


def pixels():
    arrays, meta = {}, dict(short=PIX_SHORT, train_crop=PIX_TRAIN, sources={}, seeds=PIX_SEEDS)
    for i, (name, (h, w)) in enumerate(PIX_SOURCES.items()):
        frames = smooth_frames(100 + i, PIX_T, h, w)
        meta["sources"][name] = dict(seed=100 + i, t=PIX_T, h=h, w=w)
        arrays[f"{name}__resize"], _ = mm_imgs(frames, [Resize(scale=(-1, PIX_SHORT))])
        flips = []
        for seed in PIX_SEEDS:
            for lazy in (False, True):
                img, r = mm_imgs(frames, train_pipeline(PIX_SHORT, PIX_TRAIN, lazy), seed)
                arrays[f"{name}__train_{'lazy' if lazy else 'plain'}_{seed}"] = img
                flips.append(bool(r["flip"]))
        meta["sources"][name]["flips"] = flips
        for lazy in (False, True):
            arrays[f"{name}__val_{'lazy' if lazy else 'plain'}"], _ = mm_imgs(
                frames, val_pipeline(PIX_SHORT, PIX_TRAIN, lazy))
    assert meta["sources"]["s40x53"]["flips"] == [False, False, True, True], meta["sources"]["s40x53"]["flips"]
    # the test pipeline end to end on 2 clips x 2 frames: layout and crop order
    tv = TEST_VIEWS
    frames = smooth_frames(tv["seed"], tv["t"], tv["h"], tv["w"])
    r = run([Resize(scale=(-1, tv["short"])), ThreeCrop(tv["crop"]), FormatShape("NCTHW")],
            dict(imgs=list(frames.copy()), modality="RGB", num_clips=tv["num_clips"], clip_len=tv["clip_len"]))
    arrays["test_views"] = r["imgs"]  # 6 x 3 x 2 x 24 x 24
    meta["test_views"] = tv
    # normalisation as ActionDataPreprocessor does it: must be bitwise what i3dbench computes
    pre = ActionDataPreprocessor(mean=MEAN, std=STD, format_shape="NCTHW")
    mm_norm = pre(dict(inputs=[torch.from_numpy(r["imgs"])], data_samples=None))["inputs"]
    ours = T.normalize(torch.from_numpy(r["imgs"]), MEAN, STD)
    meta["normalize_bitwise_equal"] = bool(torch.equal(mm_norm[0], ours))
    assert meta["normalize_bitwise_equal"]
    return arrays, meta


def measure_full_size() -> dict:
    """mean |diff| between MMAction2 and i3dbench per transform at the real sizes."""
    figures = {}
    t = torch.from_numpy
    for i, (h, w) in enumerate([(256, 340), (240, 320), (320, 426), (256, 455)]):
        frames = smooth_frames(300 + i, 4, h, w)
        key = f"{h}x{w}"
        mm, _ = mm_imgs(frames, [Resize(scale=(-1, 256))])
        ours = T.resize_short(t(frames), 256).numpy()
        ours_f = T.resize(t(frames).float(), T.rescale_size(h, w, 256)).round().numpy()  # the CUDA path
        figures[f"resize_short_256 {key}"] = diff(mm, ours)
        figures[f"resize_short_256 {key} float-path"] = diff(mm, ours_f)
        for lazy in (False, True):
            for seed in PIX_SEEDS:
                mm, r = mm_imgs(frames, train_pipeline(256, 224, lazy), seed)
                g = T.plan_train_geometry(h, w, 256, 224, (1, 0.8), 0.5, lazy=lazy,
                                          rng=random.Random(seed), flip_rng=np.random.RandomState(seed))
                ours = T.apply_geometry(t(frames), g).numpy()
                figures[f"train{'_lazy' if lazy else ''} {key} seed{seed}"] = diff(mm, ours)
            mm, _ = mm_imgs(frames, val_pipeline(256, 224, lazy))
            ours = T.apply_geometry(t(frames), T.plan_val_geometry(h, w, 256, 224, lazy)).numpy()
            figures[f"val{'_lazy' if lazy else ''} {key}"] = diff(mm, ours)
        r = run([Resize(scale=(-1, 256)), ThreeCrop(256), FormatShape("NCTHW")],
                dict(imgs=list(frames.copy()), modality="RGB", num_clips=2, clip_len=2))
        ours = T.eval_views(t(frames).reshape(2, 2, h, w, 3), 256, 256).numpy()
        figures[f"test_three_crop {key}"] = diff(r["imgs"], ours)
    return figures


def diff(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return dict(mean=round(float(d.mean()), 4), max=int(d.max()))


def main() -> None:
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "boxes.json").write_text(json.dumps(boxes(), separators=(",", ":")) + "\n")
    arrays, meta = pixels()
    np.savez_compressed(OUT / "pixels.npz", **arrays)
    meta["generator"] = "dev/make_golden_transforms.py"
    meta["mmaction"] = __import__("mmaction").__version__
    meta["measured_full_size_mean_abs_diff"] = measure_full_size()
    (OUT / "pixels.json").write_text(json.dumps(meta, indent=1) + "\n")
    for name in ("boxes.json", "pixels.npz", "pixels.json"):
        print(f"{OUT / name}: {(OUT / name).stat().st_size / 1024:.0f} KiB")
    for k, v in meta["measured_full_size_mean_abs_diff"].items():
        print(f"  {k:40s} mean |diff| {v['mean']:.4f}  max {v['max']}")


if __name__ == "__main__":
    main()
