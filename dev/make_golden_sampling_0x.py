"""Write MMAction2 0.x's test path as golden fixtures: tests/golden/sampling/*_0x.*.

The ten 2020 rows of the zoo were tested by MMAction2 0.x. This script runs 0.x's own code
and records what it does, so the tests can pin ``sample_frames(..., version="0.x")`` and the
test-time geometry without importing MMAction2:

- ``indices_0x.npz`` / ``cases_0x.json``: ``SampleFrames`` / ``DenseSampleFrames`` in test mode
  for every total_frames 1..400 (the I3D settings 32x2x10 and 32x2x1, dense 32x2x1 with 10
  positions, the smoke zoo's 8x4x2, and edge cases: repeat_last, clip_len 1, small dense
  ranges), and in training mode for (case, total_frames, seed) triples with 0.x drawing
  from ``np.random.seed(seed)``. Same layout as ``dev/make_golden_sampling.py`` (1.2.0).
- ``geometry_0x.json``: output sizes and crop boxes of 0.x's ``Resize((-1, 256))``,
  ``CenterCrop``, ``ThreeCrop`` and the lazy validation chain (Resize -> CenterCrop -> Flip
  -> Fuse) on frame sizes from Kinetics copies and odd ones, next to MMAction2 1.2.0's for
  the same sizes (``--mm1x-python``), and how 0.x's ``Normalize`` differs from 1.x's
  ``ActionDataPreprocessor`` arithmetic.

The oracle is the last 0.x release, ``mmaction2==0.24.1`` (PyPI), run for real. Its
dependencies do not install beside the project's (numpy 2), so it runs in a throwaway
environment, made like this (Python 3.11):

    python3.11 -m venv /tmp/venv-mm0x
    # numpy < 1.24: 0.24.1 still uses np.int; mmcv 1.7.0 is the newest 0.24.1 accepts
    /tmp/venv-mm0x/bin/pip install numpy==1.23.5 "scipy<1.14" "opencv-python-headless<4.11" \\
        pyyaml addict yapf packaging Pillow termcolor wheel setuptools
    MMCV_WITH_OPS=0 /tmp/venv-mm0x/bin/pip install --no-deps --no-build-isolation mmcv==1.7.0
    /tmp/venv-mm0x/bin/pip install --no-deps mmaction2==0.24.1
    # torch: the project venv's own copy, searched after the throwaway environment's packages
    echo <project venv>/lib/python3.11/site-packages \\
        > /tmp/venv-mm0x/lib/python3.11/site-packages/zz_torch.pth
    # mmcv.runner imports torchvision only to list model-zoo URLs (never called here); the
    # PyPI torchvision wheel does not load against a CPU-only torch, so a one-line module
    # stands in for it:
    mkdir /tmp/venv-mm0x/lib/python3.11/site-packages/torchvision
    echo '__version__ = "0.0.0+stand-in"' > /tmp/venv-mm0x/lib/python3.11/site-packages/torchvision/__init__.py

Cross-checks (``--mirror``, a git clone of open-mmlab/mmaction2): the test-mode cases are also
run through ``mmaction/datasets/pipelines/loading.py`` as it is at the tag v0.24.1, at the
head of the 0.x branch, and at the two 2020 commits in force when the ten rows' checkpoints
were made (June and August 2020). Each file is executed as a module of a throwaway package
whose ``registry`` / ``builder`` hold a stand-in ``PIPELINES`` (its ``register_module`` just
returns the class) and whose ``utils`` is 0.24.1's; numpy, mmcv and torch are real. The
script stops if any of them disagrees with the wheel; the June 2020 file has no
``out_of_bound_opt`` yet, so it skips the repeat_last cases. Nothing from the mirror is copied.

0.x ``twice_sample`` (TSM's test option) is not covered: no I3D config uses it and
i3dbench does not implement it in either version.

Run (writes the three files; --mm1x-python adds 1.2.0's geometry for comparison):

    /tmp/venv-mm0x/bin/python dev/make_golden_sampling_0x.py \\
        --mirror <clone of open-mmlab/mmaction2> --mm1x-python <python with MMAction2 1.2.0>
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "golden" / "sampling"
MAX_FRAMES = 400

# Commits of the 0.x history whose loading.py is cross-checked (--mirror).
REFS = {
    "v0.24.1": "v0.24.1",  # the last 0.x release (the wheel run here)
    "0.x-head": "0.x",  # the branch head (71a938ab when these goldens were written)
    "2020-06-12": "1cebf2c1531525da828b389580ba9d7d1a9cdeec",  # plain / dense / lazy checkpoints, June 2020
    "2020-08-26": "78a54ee018f19b5af63fc61050a6c169c1a37a19",  # non-local / 256p / video checkpoints, Aug 2020
}

# name -> (kind, kwargs); kwargs without out_of_bound_opt run on every ref
TEST_CASES = {
    "uniform_32x2x10": ("uniform", dict(clip_len=32, frame_interval=2, num_clips=10)),  # I3D test
    "uniform_32x2x1": ("uniform", dict(clip_len=32, frame_interval=2, num_clips=1)),  # I3D val
    "uniform_8x4x2": ("uniform", dict(clip_len=8, frame_interval=4, num_clips=2)),  # smoke zoo test
    "uniform_8x8x10": ("uniform", dict(clip_len=8, frame_interval=8, num_clips=10)),
    "uniform_16x4x1": ("uniform", dict(clip_len=16, frame_interval=4, num_clips=1)),
    "uniform_32x2x10_repeat_last": ("uniform", dict(clip_len=32, frame_interval=2, num_clips=10,
                                                    out_of_bound_opt="repeat_last")),
    "uniform_16x4x1_repeat_last": ("uniform", dict(clip_len=16, frame_interval=4, num_clips=1,
                                                   out_of_bound_opt="repeat_last")),
    "uniform_1x1x8": ("uniform", dict(clip_len=1, frame_interval=1, num_clips=8)),
    "uniform_1x4x3": ("uniform", dict(clip_len=1, frame_interval=4, num_clips=3)),
    "dense_32x2x1_pos10": ("dense", dict(clip_len=32, frame_interval=2, num_clips=1,
                                         sample_range=64, num_sample_positions=10)),
    "dense_4x2x2_pos3_range16": ("dense", dict(clip_len=4, frame_interval=2, num_clips=2,
                                               sample_range=16, num_sample_positions=3)),
}

# training mode: the cases of dev/make_golden_sampling.py, to show 0.x draws like 1.2.0
TRAIN_CASES = {
    "uniform_32x2x1": ("uniform", dict(clip_len=32, frame_interval=2, num_clips=1)),
    "uniform_8x8x10": ("uniform", dict(clip_len=8, frame_interval=8, num_clips=10)),
    "uniform_4x2x3": ("uniform", dict(clip_len=4, frame_interval=2, num_clips=3)),
    "uniform_32x2x10_repeat_last": ("uniform", dict(clip_len=32, frame_interval=2, num_clips=10,
                                                    out_of_bound_opt="repeat_last")),
    "dense_32x2x1": ("dense", dict(clip_len=32, frame_interval=2, num_clips=1)),
    "dense_4x2x2_range16": ("dense", dict(clip_len=4, frame_interval=2, num_clips=2, sample_range=16)),
}
TRAIN_TOTALS = (1, 5, 12, 30, 63, 64, 65, 70, 100, 250, 400)
TRAIN_SEEDS = (0, 1, 2)

# (h, w) of decoded frames: 340x256 and short-256 extractions, odd and portrait sizes, HD
FRAME_SIZES = [(256, 340), (256, 456), (256, 455), (240, 320), (257, 341), (255, 339), (720, 1280),
               (1080, 1920), (360, 480), (331, 500), (340, 256), (480, 272), (256, 256), (250, 333)]
SHORT, VAL_CROP, TEST_CROP = 256, 224, 256
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


# --------------------------------------------------------------------------- sampling


def run_sampler(transform, total_frames: int, start_index: int) -> np.ndarray:
    res = transform(dict(total_frames=total_frames, start_index=start_index))
    return np.asarray(res["frame_inds"]).astype(np.int64) - start_index


def test_arrays(sample_cls, dense_cls, cases, start_index: int) -> dict[str, np.ndarray]:
    out = {}
    for name, (kind, kwargs) in cases.items():
        t = (sample_cls if kind == "uniform" else dense_cls)(test_mode=True, **kwargs)
        rows = [run_sampler(t, n, start_index) for n in range(1, MAX_FRAMES + 1)]
        assert len({len(r) for r in rows}) == 1, name
        out[name] = np.stack(rows)
    return out


class _StandInRegistry:
    """Takes the place of PIPELINES: registration is all loading.py asks of it."""

    def register_module(self, name=None, force=False, module=None):
        if isinstance(name, type):  # 2020 style: @PIPELINES.register_module without ()
            return name
        return lambda cls: cls


def load_mirror_loading(mirror: str, ref: str, label: str):
    """Execute ``loading.py`` at ``ref`` as a module of a throwaway package (see module doc)."""
    import mmaction.utils as real_utils

    src = subprocess.run(["git", "-C", mirror, "show", f"{ref}:mmaction/datasets/pipelines/loading.py"],
                         check=True, capture_output=True, text=True).stdout
    pkg = "mm0x_" + "".join(c if c.isalnum() else "_" for c in label)
    names = [pkg, f"{pkg}.datasets", f"{pkg}.datasets.pipelines"]
    for name in names:
        mod = types.ModuleType(name)
        mod.__path__ = []
        sys.modules[name] = mod
    for leaf in ("registry", "builder"):
        mod = types.ModuleType(f"{pkg}.datasets.{leaf}")
        mod.PIPELINES = _StandInRegistry()
        sys.modules[mod.__name__] = mod
    sys.modules[f"{pkg}.utils"] = real_utils
    module = types.ModuleType(f"{pkg}.datasets.pipelines.loading")
    module.__package__ = f"{pkg}.datasets.pipelines"
    exec(compile(src, f"{ref}:mmaction/datasets/pipelines/loading.py", "exec"), module.__dict__)
    return module, src


def sampling(mirror: str | None) -> tuple[dict, dict]:
    import mmaction
    from mmaction.datasets.pipelines import loading as wheel_loading
    from mmaction.datasets.pipelines.loading import DenseSampleFrames, SampleFrames

    assert mmaction.__version__ == "0.24.1", mmaction.__version__
    # start_index 1 (RawframeDataset's), subtracted again: checks 0.x adds it exactly once
    tests = test_arrays(SampleFrames, DenseSampleFrames, TEST_CASES, start_index=1)
    arrays = {f"test__{k}": v.astype(np.int16) for k, v in tests.items()}
    for name, (kind, kwargs) in TRAIN_CASES.items():
        t = (SampleFrames if kind == "uniform" else DenseSampleFrames)(test_mode=False, **kwargs)
        rows = []
        for n in TRAIN_TOTALS:
            for seed in TRAIN_SEEDS:
                np.random.seed(seed)
                rows.append(run_sampler(t, n, start_index=0))
        arrays[f"train__{name}"] = np.stack(rows).astype(np.int16)

    cross = {}
    if mirror:
        wheel_src = Path(wheel_loading.__file__).read_text()
        for label, ref in REFS.items():
            mod, src = load_mirror_loading(mirror, ref, label)
            commit = subprocess.run(["git", "-C", mirror, "rev-parse", f"{ref}^{{commit}}"], check=True,
                                    capture_output=True, text=True).stdout.strip()
            supported = {k: v for k, v in TEST_CASES.items()
                         if "out_of_bound_opt" not in v[1] or "out_of_bound_opt" in src}
            got = test_arrays(mod.SampleFrames, mod.DenseSampleFrames, supported, start_index=0)
            bad = [k for k in supported if not np.array_equal(got[k], tests[k])]
            if bad:
                raise SystemExit(f"loading.py at {label} ({commit}) disagrees with the 0.24.1 wheel on {bad}")
            cross[label] = dict(commit=commit, cases_equal_to_wheel=sorted(supported),
                                same_source_as_wheel=src == wheel_src)
            print(f"cross-check {label} {commit[:10]}: {len(supported)} cases equal", flush=True)
    meta = dict(
        generator="dev/make_golden_sampling_0x.py",
        oracle=f"mmaction2 {mmaction.__version__} (PyPI wheel), mmcv {__import__('mmcv').__version__}, "
               f"numpy {np.__version__}",
        cross_checked_loading_py=cross,
        max_frames=MAX_FRAMES,
        test_cases={k: dict(kind=v[0], kwargs=v[1]) for k, v in TEST_CASES.items()},
        train_cases={k: dict(kind=v[0], kwargs=v[1]) for k, v in TRAIN_CASES.items()},
        train_totals=list(TRAIN_TOTALS),
        train_seeds=list(TRAIN_SEEDS),
        layout="test__<case>: row n-1 = indices for total_frames n; "
               "train__<case>: rows in (total, seed) order, 0.x drawing from np.random.seed(seed); all 0-based",
    )
    return arrays, meta


# --------------------------------------------------------------------------- geometry


def geometry(version: str) -> dict:
    """Sizes and boxes of the test/val geometry of MMAction2 ``version`` (0.x or 1.x) installed here."""
    if version == "0.x":
        from mmaction.datasets.pipelines import CenterCrop, Flip, Fuse, Resize, ThreeCrop
    else:
        from mmaction.datasets.transforms import CenterCrop, Flip, Fuse, Resize, ThreeCrop

    def start(h, w):
        return dict(imgs=[np.zeros((h, w, 3), np.uint8)], img_shape=(h, w), original_shape=(h, w), modality="RGB")

    def chain(results, steps):
        for step in steps:
            results = step(results)
        return results

    out = {}
    for h, w in FRAME_SIZES:
        resized = chain(start(h, w), [Resize(scale=(-1, SHORT))])
        rh, rw = resized["imgs"][0].shape[:2]
        assert tuple(resized["img_shape"]) == (rh, rw)
        three = chain(dict(resized), [ThreeCrop(crop_size=TEST_CROP)])
        center = {c: chain(dict(resized, imgs=list(resized["imgs"])), [CenterCrop(crop_size=c)])
                  for c in (VAL_CROP, TEST_CROP)}
        lazy = chain(start(h, w), [Resize(scale=(-1, SHORT), lazy=True), CenterCrop(crop_size=VAL_CROP, lazy=True),
                                   Flip(flip_ratio=0, lazy=True)])
        lazy_box = [float(v) for v in lazy["lazy"]["crop_bbox"]]
        fused = chain(lazy, [Fuse()])
        out[f"{h}x{w}"] = dict(
            resized=[int(rh), int(rw)],
            three_crop_boxes=[[int(v) for v in b] for b in np.asarray(three["crop_bbox"])[::len(resized["imgs"])]],
            center_crop_box={str(c): [int(v) for v in r["crop_bbox"]] for c, r in center.items()},
            lazy_val_box=lazy_box,
            lazy_val_out=[int(v) for v in fused["imgs"][0].shape[:2]],
        )
    return out


def normalize_difference() -> dict:
    """0.x ``Normalize`` (mmcv.imnormalize_: subtract, then multiply by float64 1/std, in
    OpenCV) against 1.x's ``ActionDataPreprocessor`` ((x - mean) / std in float32 torch)."""
    import torch
    from mmaction.datasets.pipelines import Normalize

    frames = np.random.RandomState(0).randint(0, 256, size=(8, 64, 64, 3)).astype(np.uint8)
    r = Normalize(mean=MEAN, std=STD, to_bgr=False)(dict(imgs=list(frames), modality="RGB"))
    old = np.asarray(r["imgs"], dtype=np.float32)
    new = ((torch.from_numpy(frames).float() - torch.tensor(MEAN)) / torch.tensor(STD)).numpy()
    diff = np.abs(old - new)
    return dict(elements=int(diff.size), differing=int((diff > 0).sum()), max_abs_diff=float(diff.max()),
                compared="0.x Normalize(to_bgr=False) vs float32 torch (x - mean) / std, 8x64x64x3 random uint8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mirror", help="git clone of open-mmlab/mmaction2 for the loading.py cross-checks")
    ap.add_argument("--mm1x-python", help="python with MMAction2 1.2.0, for its geometry next to 0.x's")
    ap.add_argument("--geometry-json", metavar="VERSION", help=argparse.SUPPRESS)  # child mode
    args = ap.parse_args()
    if args.geometry_json:
        print(json.dumps(geometry(args.geometry_json)))
        return

    arrays, meta = sampling(args.mirror)
    geo0 = geometry("0.x")
    geo = dict(generator="dev/make_golden_sampling_0x.py", oracle=meta["oracle"], short_side=SHORT,
               val_crop=VAL_CROP, test_crop=TEST_CROP,
               layout="per 'HxW' frame size: resized (h, w); boxes (x1, y1, x2, y2) in resized pixels, "
                      "ThreeCrop in its order; lazy_val_box float32 in original pixels",
               mmaction_0x=geo0, normalize_0x_vs_1x=normalize_difference())
    if args.mm1x_python:
        child = subprocess.run([args.mm1x_python, __file__, "--geometry-json", "1.x"], check=True,
                               capture_output=True, text=True)
        geo1 = json.loads(child.stdout.strip().splitlines()[-1])
        version = subprocess.run([args.mm1x_python, "-c", "import mmaction; print(mmaction.__version__)"],
                                 check=True, capture_output=True, text=True).stdout.strip()
        geo["mmaction_1x_version"] = version
        geo["mmaction_1x"] = geo1
        geo["sizes_where_0x_and_1x_differ"] = sorted(k for k in geo0 if geo0[k] != geo1[k])
        print(f"geometry 0.x vs {version}: differ at {geo['sizes_where_0x_and_1x_differ'] or 'no size'}")

    OUT.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT / "indices_0x.npz", **arrays)
    (OUT / "cases_0x.json").write_text(json.dumps(meta, indent=1) + "\n")
    (OUT / "geometry_0x.json").write_text(json.dumps(geo, indent=1) + "\n")
    size = (OUT / "indices_0x.npz").stat().st_size
    print(f"wrote {OUT}/indices_0x.npz ({size / 1024:.0f} KiB, {len(arrays)} arrays), cases_0x.json, geometry_0x.json")


if __name__ == "__main__":
    main()
