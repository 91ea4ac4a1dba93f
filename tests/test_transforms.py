"""Clip transforms against MMAction2 1.2.0 (golden fixtures from dev/make_golden_transforms.py)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from pipeline_media import smooth_frames

from i3dbench.data import transforms as T

GOLDEN = Path(__file__).parent / "golden" / "transforms"
BOXES = json.loads((GOLDEN / "boxes.json").read_text())
PIX_META = json.loads((GOLDEN / "pixels.json").read_text())
PIXELS = dict(np.load(GOLDEN / "pixels.npz"))
MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)
SHAPE_IDS = [f"{s['shape'][0]}x{s['shape'][1]}" for s in BOXES["shapes"]]


def _msc_kwargs(variant: dict) -> dict:
    kw = dict(variant)
    kw["scales"] = tuple(kw["scales"])
    return kw


@pytest.mark.parametrize("item", BOXES["shapes"], ids=SHAPE_IDS)
def test_sizes_and_fixed_boxes_identical(item):
    h, w = item["shape"]
    rh, rw = T.rescale_size(h, w, 256)
    assert [rh, rw] == item["resized"]
    assert list(T.center_crop_box(rh, rw, 224)) == item["center_crop_224"]
    assert [list(b) for b in T.three_crop_boxes(rh, rw, 256)] == item["three_crop_256"]
    g = T.plan_val_geometry(h, w, 256, 224, lazy=True)
    assert np.array_equal(np.float32(g.lazy_box), np.float32(item["lazy_center_crop_224"]))


@pytest.mark.parametrize("item", BOXES["shapes"], ids=SHAPE_IDS)
def test_train_boxes_and_flips_identical_for_same_random_state(item):
    """Python random / numpy RandomState seeded like MMAction2's globals -> identical draws."""
    h, w = item["shape"]
    rh, rw = item["resized"]
    full = np.array([0, 0, w, h], dtype=np.float32)
    for name, variant in BOXES["msc_variants"].items():
        for row in item[f"train_{name}"]:
            seed = row["seed"]
            box = T.multi_scale_crop_box(rh, rw, rng=random.Random(seed), **_msc_kwargs(variant))
            assert list(box) == row["box"], (name, seed)
            assert T.draw_flip(np.random.RandomState(seed), 0.5) == row["flip"]
            assert np.array_equal(T.lazy_box(full, rh, rw, box), np.float32(row["lazy_box"])), (name, seed)
    for row in item["train_i3d"]:  # the composed plan used by the dataset
        for lazy in (False, True):
            g = T.plan_train_geometry(h, w, 256, 224, (1, 0.8), 0.5, lazy=lazy, rng=random.Random(row["seed"]),
                                      flip_rng=np.random.RandomState(row["seed"]))
            assert list(g.box) == row["box"] and g.flip == row["flip"] and g.out == (224, 224)
            if lazy:
                assert np.array_equal(np.float32(g.lazy_box), np.float32(row["lazy_box"]))


def _mean_abs(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    assert a.shape == b.shape, (a.shape, b.shape)
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return float(d.mean()), int(d.max())


@pytest.mark.parametrize("source", sorted(PIX_META["sources"]))
def test_pixels_within_one_grey_level(source):
    spec = PIX_META["sources"][source]
    h, w = spec["h"], spec["w"]
    clip = torch.from_numpy(smooth_frames(spec["seed"], spec["t"], h, w))
    short, size = PIX_META["short"], PIX_META["train_crop"]
    results = {"resize": T.resize_short(clip, short)}
    for lazy in (False, True):
        kind = "lazy" if lazy else "plain"
        for seed in PIX_META["seeds"]:
            g = T.plan_train_geometry(h, w, short, size, (1, 0.8), 0.5, lazy=lazy, rng=random.Random(seed),
                                      flip_rng=np.random.RandomState(seed))
            results[f"train_{kind}_{seed}"] = T.apply_geometry(clip, g)
        results[f"val_{kind}"] = T.apply_geometry(clip, T.plan_val_geometry(h, w, short, size, lazy=lazy))
    for name, ours in results.items():
        mean, worst = _mean_abs(PIXELS[f"{source}__{name}"], ours.numpy())
        assert mean <= 1.0 and worst <= 2, f"{source} {name}: mean |diff| {mean:.3f}, max {worst}"
    # the float path (uint8 clips off the CPU go through it) samples the same points
    floats = T.resize_short(clip.float(), short)
    assert floats.dtype == torch.float32
    mean, worst = _mean_abs(PIXELS[f"{source}__resize"], floats.round().to(torch.uint8).numpy())
    assert mean <= 1.0 and worst <= 1


def _pipelines(clip: torch.Tensor, backend: str) -> dict[str, torch.Tensor]:
    """Every pipeline of the pixel goldens on one source clip, resizing with ``backend``."""
    h, w = clip.shape[1:3]
    short, size = PIX_META["short"], PIX_META["train_crop"]
    results = {"resize": T.resize_short(clip, short, backend)}
    for lazy in (False, True):
        kind = "lazy" if lazy else "plain"
        for seed in PIX_META["seeds"]:
            g = T.plan_train_geometry(h, w, short, size, (1, 0.8), 0.5, lazy=lazy, rng=random.Random(seed),
                                      flip_rng=np.random.RandomState(seed))
            results[f"train_{kind}_{seed}"] = T.apply_geometry(clip, g, backend)
        results[f"val_{kind}"] = T.apply_geometry(clip, T.plan_val_geometry(h, w, short, size, lazy=lazy), backend)
    return results


@pytest.mark.parametrize("source", sorted(PIX_META["sources"]))
def test_cv2_backend_is_bitwise_mmaction(source):
    """resize_backend "cv2": every train / val / lazy pipeline gives MMAction2's exact bytes."""
    pytest.importorskip("cv2")
    spec = PIX_META["sources"][source]
    clip = torch.from_numpy(smooth_frames(spec["seed"], spec["t"], spec["h"], spec["w"]))
    for name, ours in _pipelines(clip, "cv2").items():
        want = PIXELS[f"{source}__{name}"]
        assert ours.dtype == torch.uint8 and ours.shape == want.shape
        np.testing.assert_array_equal(ours.numpy(), want, err_msg=f"{source} {name}")
    tv = PIX_META["test_views"]
    frames = torch.from_numpy(smooth_frames(tv["seed"], tv["t"], tv["h"], tv["w"]))
    clips = frames.reshape(tv["num_clips"], tv["clip_len"], tv["h"], tv["w"], 3)
    np.testing.assert_array_equal(T.eval_views(clips, tv["short"], tv["crop"], backend="cv2").numpy(), PIXELS["test_views"])


@pytest.mark.parametrize("shape", [(240, 320), (256, 340), (720, 1280), (144, 176)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_tensor_vs_cv2_resize_at_real_sizes(shape):
    """The fast tensor resize against the pixel-exact one at K400 sizes: within one grey level,
    per resize, on smooth random frames (measured mean |diff| 0.2-0.3)."""
    cv2 = pytest.importorskip("cv2")
    h, w = shape
    clip = torch.from_numpy(smooth_frames(5, 3, h, w))
    for size in (T.rescale_size(h, w, 256), (224, 224), (h // 2 + 1, w // 3 + 2)):
        a, b = T.resize(clip, size, "tensor"), T.resize(clip, size, "cv2")
        want = np.stack([cv2.resize(f, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) for f in clip.numpy()])
        np.testing.assert_array_equal(b.numpy(), want)  # the backend is cv2.resize, frame by frame
        mean, worst = _mean_abs(a.numpy(), b.numpy())
        print(f"{h}x{w} -> {size[0]}x{size[1]}: tensor vs cv2 mean |diff| {mean:.4f}, max {worst}")
        assert worst <= 1 and mean <= 0.35


def test_cv2_backend_on_views_floats_and_bad_names():
    pytest.importorskip("cv2")
    clip = torch.from_numpy(smooth_frames(9, 4, 60, 80))
    box = (5, 7, 69, 51)
    view = T.crop(clip, box)  # strided: rows are read with a step, not copied first
    assert not view.is_contiguous()
    assert torch.equal(T.resize(view, (33, 47), "cv2"), T.resize(view.contiguous(), (33, 47), "cv2"))
    floats = T.resize(clip.float(), (33, 47), "cv2")
    assert floats.dtype == torch.float32
    # OpenCV's uint8 path uses 11-bit fixed-point weights, so it is not the rounded float result
    assert (floats - T.resize(clip, (33, 47), "cv2").float()).abs().max() < 1
    assert T.resize(clip, (60, 80), "cv2") is clip
    lead = torch.stack([clip, clip.flip(0)])  # N x T x H x W x 3
    out = T.resize(lead, (30, 40), "cv2")
    assert out.shape == (2, 4, 30, 40, 3) and torch.equal(out[1], T.resize(clip.flip(0), (30, 40), "cv2"))
    with pytest.raises(ValueError, match="resize backend"):
        T.resize(clip, (30, 40), "pillow")
    with pytest.raises(ValueError, match="resize backend"):
        T.check_resize_backend("opencv")


def test_test_views_layout_identical():
    """Resize + ThreeCrop + FormatShape on 2 clips: same bytes in MMAction2's view order."""
    tv = PIX_META["test_views"]
    frames = torch.from_numpy(smooth_frames(tv["seed"], tv["t"], tv["h"], tv["w"]))
    clips = frames.reshape(tv["num_clips"], tv["clip_len"], tv["h"], tv["w"], 3)
    views = T.eval_views(clips, tv["short"], tv["crop"], three_crop=True)
    assert views.dtype == torch.uint8 and views.is_contiguous()
    np.testing.assert_array_equal(views.numpy(), PIXELS["test_views"])


def test_normalize_matches_float32_formula_and_layouts():
    views = torch.from_numpy(PIXELS["test_views"])
    want = (views.numpy().astype(np.float32) - np.float32(MEAN).reshape(3, 1, 1, 1)) / np.float32(STD).reshape(3, 1, 1, 1)
    for out in (T.normalize(views, MEAN, STD), T.normalize(views, MEAN, STD, device="cpu")):
        assert out.dtype == torch.float32 and out.shape == views.shape
        np.testing.assert_array_equal(out.numpy(), want)
    batched = T.normalize(views[None], MEAN, STD)  # N x V x 3 x T x H x W
    assert torch.equal(batched[0], T.normalize(views, MEAN, STD))
    with pytest.raises(ValueError, match="channels"):
        T.normalize(views.permute(0, 2, 1, 3, 4), MEAN, STD)


def test_lazy_and_plain_geometry_agree():
    """Fused crop+resize sees the same region as resize-crop-resize: boxes scale, pixels close."""
    h, w = 240, 320  # upscaled to 256 x 341 first in the plain pipeline
    clip = torch.from_numpy(smooth_frames(7, 2, h, w, cell=16, noise=1))
    for seed in range(6):
        plain = T.plan_train_geometry(h, w, 256, 224, (1, 0.8), 0.5, rng=np.random.default_rng(seed))
        lazy = T.plan_train_geometry(h, w, 256, 224, (1, 0.8), 0.5, lazy=True, rng=np.random.default_rng(seed))
        assert (plain.box, plain.flip) == (lazy.box, lazy.flip)
        sy, sx = h / plain.resized[0], w / plain.resized[1]
        np.testing.assert_allclose(lazy.lazy_box, np.array(plain.box) * [sx, sy, sx, sy], atol=1e-3)
        a, b = T.apply_geometry(clip, plain), T.apply_geometry(clip, lazy)
        assert a.shape == b.shape == (2, 224, 224, 3)
        mean, _ = _mean_abs(a.numpy(), b.numpy())
        assert mean < 1.5, f"seed {seed}: lazy vs plain mean |diff| {mean:.2f}"


def test_flip_and_crop_are_exact():
    clip = torch.from_numpy(smooth_frames(1, 3, 20, 30))
    assert torch.equal(T.flip(T.flip(clip)), clip)
    assert torch.equal(T.flip(clip)[:, :, 0], clip[:, :, -1])
    assert T.crop(clip, (2, 3, 12, 13)).shape == (3, 10, 10, 3)
    assert T.resize(clip, (20, 30)) is clip  # same size: untouched, as cv2 leaves it
    with pytest.raises(ValueError, match="ThreeCrop"):
        T.three_crop_boxes(300, 300, 256)
    views = T.eval_views(clip[None], 20, 20, three_crop=False)
    assert views.shape == (1, 3, 3, 20, 20)
    assert torch.equal(T.format_shape(clip[None]), T.crop_views(clip[None], [(0, 0, 30, 20)]))
    # views gathered from repeated / unordered frames (short videos) equal the plain layout
    index = np.array([[2, 0, 1], [1, 1, 2]])
    want = T.format_shape(torch.stack([clip[i] for i in index]))
    assert torch.equal(T.views_from_frames(clip, index, [(0, 0, 30, 20)]), want)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    clip = torch.from_numpy(smooth_frames(3, 4, 240, 320))
    for g in (T.plan_train_geometry(240, 320, 256, 224, (1, 0.8), 0.5, rng=np.random.default_rng(0)),
              T.plan_val_geometry(240, 320, 256, 224, lazy=True)):
        cpu, gpu = T.apply_geometry(clip, g), T.apply_geometry(clip.cuda(), g)
        assert gpu.device.type == "cuda"
        mean, worst = _mean_abs(cpu.numpy(), gpu.cpu().numpy())
        assert mean <= 1.0 and worst <= 2
    views = T.eval_views(clip.reshape(2, 2, 240, 320, 3), 256, 256)
    torch.testing.assert_close(T.normalize(views, MEAN, STD, device="cuda").cpu(), T.normalize(views, MEAN, STD))
