"""The zoo's rows and the test protocol each one was published with.

The ten 2020 rows were tested by MMAction2 0.x, the six 1.x rows by MMAction2 1.x; the two
differ in where test-mode SampleFrames puts its clips (tests/test_sampling.py pins both).
Here: the manifest says which version each row used, the dataset samples that way at test
and val time (on real JPEG frames, read back from the decoded pixels), and the rest of the
0.x test path (Resize, ThreeCrop, CenterCrop, lazy validation crop) equals ours, which
tests/test_transforms.py pins to 1.2.0 (goldens from dev/make_golden_sampling_0x.py).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from cli_harness import run_cli

from i3dbench.data import transforms as T
from i3dbench.data.dataset import build_dataset
from i3dbench.zoo import SMOKE_ZOO, load_zoo

GOLDEN = Path(__file__).parent / "golden" / "sampling"
ZOO = load_zoo()
HEAVY = "i3d_imagenet-pretrained-r50-heavy_8xb8-32x2x1-100e_kinetics400-rgb"

# Which MMAction2 tested each row: the ten 2020 rows (README of the 0.x branch) and the six
# rows of the 1.x metafile, re-tested after the 1.x sampler change.
SAMPLER_VERSION = {
    "i3d_r50_32x2x1_100e_kinetics400_rgb": "0.x",
    "i3d_r50_32x2x1_100e_kinetics400_rgb_256p": "0.x",
    "i3d_r50_video_32x2x1_100e_kinetics400_rgb": "0.x",
    "i3d_r50_dense_32x2x1_100e_kinetics400_rgb": "0.x",
    "i3d_r50_dense_32x2x1_100e_kinetics400_rgb_256p": "0.x",
    "i3d_r50_lazy_32x2x1_100e_kinetics400_rgb": "0.x",
    "i3d_r50_lazy_32x2x1_100e_kinetics400_rgb_256p": "0.x",
    "i3d_nl_embedded_gaussian_r50_32x2x1_100e_kinetics400_rgb": "0.x",
    "i3d_nl_gaussian_r50_32x2x1_100e_kinetics400_rgb": "0.x",
    "i3d_nl_dot_product_r50_32x2x1_100e_kinetics400_rgb": "0.x",
    "i3d_imagenet-pretrained-r50_8xb8-32x2x1-100e_kinetics400-rgb": "1.x",
    "i3d_imagenet-pretrained-r50_8xb8-dense-32x2x1-100e_kinetics400-rgb": "1.x",
    "i3d_imagenet-pretrained-r50-nl-dot-product_8xb8-32x2x1-100e_kinetics400-rgb": "1.x",
    "i3d_imagenet-pretrained-r50-nl-embedded-gaussian_8xb8-32x2x1-100e_kinetics400-rgb": "1.x",
    "i3d_imagenet-pretrained-r50-nl-gaussian_8xb8-32x2x1-100e_kinetics400-rgb": "1.x",
    HEAVY: "1.x",
}


# --------------------------------------------------------------------------- manifest


def test_every_row_names_the_sampler_it_was_tested_with():
    assert {n: e.test.sampler_version for n, e in ZOO.items()} == SAMPLER_VERSION
    for name, entry in ZOO.items():
        assert entry.test.sampler_version == entry.mmaction, name
    # the smoke zoo is trained and evaluated here, with the 1.x sampler
    assert {e.test.sampler_version for e in load_zoo(SMOKE_ZOO).values()} == {"1.x"}


def test_every_k400_row_resizes_as_mmaction2_does():
    # mmcv.imresize's OpenCV bilinear (bitwise MMAction2's Resize, tests/test_real_media.py);
    # the tensor resize differs by up to one grey level and is a sweep knob, not a row's protocol
    assert {n: e.data.resize_backend for n, e in ZOO.items()} == {n: "cv2" for n in ZOO}


def test_zoo_list_shows_sixteen_k400_rows_with_the_heavy_one():
    res = run_cli(["zoo", "list"], expect_rc=0)
    rows = [line for line in res.out.splitlines() if "kinetics400" in line]
    assert len(rows) == 16
    heavy = next(r for r in rows if HEAVY in r)
    assert "76.21" in heavy and "92.48" in heavy and "1.x" in heavy


def test_heavy_row_is_the_metafile_row():
    e = ZOO[HEAVY]
    assert (e.config, e.mmaction, e.dataset) == (HEAVY, "1.x", "kinetics400")
    p = e.published
    assert (p.top1, p.top5, p.gflops, p.params_m, p.gpus, p.pretrain) == (76.21, 92.48, 166.3, 33.0, "8", "ImageNet")
    assert "1.2.0 configs/recognition/i3d/metafile.yml" in p.source
    base = f"https://download.openmmlab.com/mmaction/v1.0/recognition/i3d/{HEAVY}/{HEAVY}"
    assert e.checkpoint.url == f"{base}_20220812-ed501b31.pth" and e.checkpoint.sha256_prefix == "ed501b31"
    assert e.checkpoint.log_url == f"{base}.log"
    # the config's backbone: inflate=(1, 1, 1, 1), conv1_stride_t=1, pool1_stride_t=1, with_pool2=True
    a = e.arch
    assert a.inflate == ((1, 1, 1), (1, 1, 1, 1), (1, 1, 1, 1, 1, 1), (1, 1, 1))
    assert (a.conv1_stride_t, a.pool1_stride_t, a.with_pool2, a.non_local_mode) == (1, 1, True, None)
    # everything else is the plain 1.x row's (same base config)
    plain = ZOO["i3d_imagenet-pretrained-r50_8xb8-32x2x1-100e_kinetics400-rgb"]
    assert (e.data, e.test, e.recipe) == (plain.data, plain.test, plain.recipe)


# --------------------------------------------------------------------------- dataset

LENGTHS = (80, 75)  # 32x2x10 starts: 0.x [0 2 4 5 7 9 11 12 14 16], 1.x [0 2 4 6 8 9 11 13 15 17] at 80
STEP = 3  # frame k is a flat grey of k * STEP: JPEG keeps a flat 8x8 block's level within 1


@pytest.fixture(scope="module")
def numbered_rawframes(tmp_path_factory):
    """Rawframe folders whose every frame shows its own index."""
    from PIL import Image

    root = tmp_path_factory.mktemp("numbered")
    lines = []
    for i, n in enumerate(LENGTHS):
        d = root / f"v{i}"
        d.mkdir()
        for k in range(n):
            Image.fromarray(np.full((24, 32, 3), k * STEP, np.uint8)).save(d / f"img_{k + 1:05}.jpg", quality=95)
        lines.append(f"v{i} {n} {i}\n")
    (root / "list.txt").write_text("".join(lines))
    return root


def _small(entry, version):
    """The entry at a size that keeps views small (24-pixel crops), with 10 clips at val too
    so that val sampling can tell the versions apart (one 32x2 clip is placed alike)."""
    data = dataclasses.replace(entry.data, resize_short=24, val_crop=24, val_clips=10)
    test = dataclasses.replace(entry.test, crop_size=24, sampler_version=version)
    return dataclasses.replace(entry, data=data, test=test)


@pytest.mark.parametrize("split", ["test", "val"])
@pytest.mark.parametrize("version", ["0.x", "1.x"])
def test_dataset_samples_test_and_val_clips_of_the_entrys_version(numbered_rawframes, split, version):
    entry = ZOO["i3d_r50_32x2x1_100e_kinetics400_rgb"]
    assert entry.test.sampler_version == "0.x"
    entry = _small(entry, version)
    golden = dict(np.load(GOLDEN / ("indices_0x.npz" if version == "0.x" else "indices.npz")))["test__uniform_32x2x10"]
    ds = build_dataset(entry, split, numbered_rawframes, numbered_rawframes / "list.txt", seed=0)
    for index, n in enumerate(LENGTHS):
        views, plan = ds.load(index)
        want = golden[n - 1].reshape(10, 32)
        np.testing.assert_array_equal(plan.sample.clips(), want)
        # the decoded pixels say which frames were read: first crop, channel 0, top-left pixel
        shown = np.rint(views[:10, 0, :, 0, 0].numpy() / STEP).astype(np.int64)
        np.testing.assert_array_equal(shown, want)


def test_dataset_of_a_0x_entry_differs_from_1x_on_these_videos():
    # guards the test above: on these lengths the two versions really do place clips apart
    a = dict(np.load(GOLDEN / "indices_0x.npz"))["test__uniform_32x2x10"]
    b = dict(np.load(GOLDEN / "indices.npz"))["test__uniform_32x2x10"]
    for n in LENGTHS:
        assert not np.array_equal(a[n - 1], b[n - 1])


def test_training_sampling_ignores_the_version(numbered_rawframes):
    a, b = (build_dataset(_small(ZOO["i3d_r50_32x2x1_100e_kinetics400_rgb"], v), "train", numbered_rawframes,
                          numbered_rawframes / "list.txt", seed=3) for v in ("0.x", "1.x"))
    for index, n in enumerate(LENGTHS):
        np.testing.assert_array_equal(a.plan(index, n, (24, 32)).sample.indices, b.plan(index, n, (24, 32)).sample.indices)


# --------------------------------------------------------------------------- geometry

GEOMETRY = json.loads((GOLDEN / "geometry_0x.json").read_text())


@pytest.mark.parametrize("size", sorted(GEOMETRY["mmaction_0x"]))
def test_0x_test_and_val_geometry_equals_ours(size):
    h, w = map(int, size.split("x"))
    g = GEOMETRY["mmaction_0x"][size]
    short, val_crop, test_crop = GEOMETRY["short_side"], GEOMETRY["val_crop"], GEOMETRY["test_crop"]
    rh, rw = T.rescale_size(h, w, short)
    assert [rh, rw] == g["resized"]
    assert [list(b) for b in T.three_crop_boxes(rh, rw, test_crop)] == g["three_crop_boxes"]
    for crop, box in g["center_crop_box"].items():
        assert list(T.center_crop_box(rh, rw, int(crop))) == box
    lazy = T.plan_val_geometry(h, w, short, val_crop, lazy=True)
    assert list(lazy.lazy_box) == g["lazy_val_box"]  # float32 values, compared exactly
    assert list(lazy.out) == g["lazy_val_out"]


def test_0x_and_1x_geometry_and_normalisation_agree():
    # recorded by the dev script from both MMAction2 versions on the same frame sizes
    assert GEOMETRY["mmaction_1x_version"] == "1.2.0"
    assert GEOMETRY["sizes_where_0x_and_1x_differ"] == []
    assert GEOMETRY["mmaction_1x"] == GEOMETRY["mmaction_0x"]
    assert len(GEOMETRY["mmaction_0x"]) >= 14
    norm = GEOMETRY["normalize_0x_vs_1x"]
    assert norm["differing"] == 0 and norm["elements"] > 0
