"""I3D models against MMAction2 1.2.0, through goldens written by dev/make_golden_models.py.

Each golden (one per distinct architecture) holds MMAction2's state-dict key list with
shapes, the seed of the weight recipe (i3dbench.models.seeded: values depend only on key
name + seed), an input seed/shape and MMAction2's logits. A test rebuilds the weights from
the golden's own key list, saves them in MMAction2's checkpoint layout, loads that file
strictly into ``build_model(entry)`` and compares logits. MMAction2 is never imported.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from i3dbench.checkpoints import CheckpointError, load_checkpoint
from i3dbench.models import Recognizer3D, build_i3d, build_model, count_params_macs
from i3dbench.models.seeded import RECIPE, seeded_tensor
from i3dbench.zoo import Architecture, load_zoos

GOLDEN = Path(__file__).parent / "golden" / "models"
GOLDEN_FILES = sorted(GOLDEN.glob("arch_*.json"))
ZOO = load_zoos()
REL_TOL = 1e-4


@functools.cache
def golden(path: Path) -> dict:
    return json.loads(path.read_text())


def arch_of(g: dict) -> Architecture:
    raw = g["arch"]
    tup = lambda v: tuple(tup(x) for x in v) if isinstance(v, list) else v
    return Architecture(**{k: tup(v) for k, v in raw.items()})


def golden_for(arch: Architecture) -> Path:
    hits = [p for p in GOLDEN_FILES if arch_of(golden(p)) == arch]
    assert len(hits) == 1, f"expected one golden for {arch}, found {hits}; rerun dev/make_golden_models.py"
    return hits[0]


def golden_input(g: dict) -> torch.Tensor:
    return torch.from_numpy(np.random.RandomState(g["input_seed"]).standard_normal(g["input_shape"]).astype(np.float32))


cached_tensor = functools.lru_cache(maxsize=None)(seeded_tensor)


@pytest.fixture(scope="module")
def mmaction_checkpoint(tmp_path_factory):
    """Per golden: a checkpoint in MMAction2's layout, built from MMAction2's own key list."""
    made: dict[Path, Path] = {}

    def get(path: Path) -> Path:
        if path not in made:
            g = golden(path)
            assert g["recipe"] == RECIPE, "golden made with another weight recipe; rerun dev/make_golden_models.py"
            # the four K400 architectures share most keys: generate each tensor once
            sd = {k: cached_tensor(k, tuple(shape), g["recipe_seed"]) for k, shape in g["keys"]}
            # 1.x layout with a DDP-style prefix on a few keys: the loader must strip it
            sd = {("module." + k if i % 7 == 0 else k): v for i, (k, v) in enumerate(sd.items())}
            out = tmp_path_factory.mktemp("ckpt") / f"{path.stem}.pth"
            torch.save({"meta": {"mmaction_version": g["mmaction_version"], "epoch": 100}, "state_dict": sd}, out)
            made[path] = out
        return made[path]

    return get


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


# --------------------------------------------------------------------------- coverage


def test_every_zoo_entry_maps_to_a_golden_architecture():
    covered = {}
    for name, entry in ZOO.items():
        path = golden_for(entry.arch)
        assert name in golden(path)["entries"], f"{name} is not listed in {path.name}; rerun dev/make_golden_models.py"
        covered[name] = path.name
    k400 = {p for n, p in covered.items() if ZOO[n].dataset == "kinetics400"}
    assert len(k400) == 5  # plain R50, heavy R50 and the three non-local modes
    assert len(covered) == len(ZOO) >= 19


# --------------------------------------------------------------------------- parity


@pytest.mark.parametrize("name", sorted(ZOO))
def test_entry_loads_mmaction_checkpoint_strictly_and_matches_logits(name, mmaction_checkpoint):
    path = golden_for(ZOO[name].arch)
    g = golden(path)
    model = build_model(ZOO[name])  # an entry (a name works too, at the cost of re-reading the zoo)
    assert isinstance(model, Recognizer3D)
    arch = ZOO[name].arch
    assert model.cls_head.in_channels == model.backbone.feat_dim == arch.base_channels * 8 * 4
    ours = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    assert ours == g["keys"], "state_dict keys/shapes/order differ from MMAction2's"

    meta = load_checkpoint(model, mmaction_checkpoint(path), strict=True)
    assert meta["epoch"] == 100
    with torch.no_grad():
        logits = model.eval()(golden_input(g))
    expected = torch.tensor(g["logits"])
    assert logits.shape == expected.shape == (g["input_shape"][0], ZOO[name].arch.num_classes)
    assert rel_diff(logits, expected) <= REL_TOL


@pytest.mark.parametrize("path", [p for p in GOLDEN_FILES if not golden(p)["entries"]], ids=lambda p: p.stem)
def test_extra_architectures_match_mmaction(path, mmaction_checkpoint):
    # Builder paths no zoo entry takes: BasicBlock (depth 18), no pool2, int-free patterns...
    g = golden(path)
    model = build_i3d(arch_of(g))
    load_checkpoint(model, mmaction_checkpoint(path), strict=True)
    with torch.no_grad():
        logits = model.eval()(golden_input(g))
    assert rel_diff(logits, torch.tensor(g["logits"])) <= REL_TOL


def test_parity_check_detects_a_wrong_non_local_mode(mmaction_checkpoint):
    # Embedded-Gaussian and dot-product blocks have the same keys: only the logits tell them apart.
    path = golden_for(ZOO["i3d_nl_embedded_gaussian_r50_32x2x1_100e_kinetics400_rgb"].arch)
    g = golden(path)
    wrong = build_i3d(dataclasses.replace(arch_of(g), non_local_mode="dot_product"))
    load_checkpoint(wrong, mmaction_checkpoint(path), strict=True)
    with torch.no_grad():
        logits = wrong.eval()(golden_input(g))
    assert rel_diff(logits, torch.tensor(g["logits"])) > 100 * REL_TOL


def test_strict_load_of_plain_checkpoint_into_non_local_model_lists_keys(mmaction_checkpoint):
    plain = golden_for(ZOO["i3d_r50_32x2x1_100e_kinetics400_rgb"].arch)
    model = build_model("i3d_nl_gaussian_r50_32x2x1_100e_kinetics400_rgb")  # by name
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(model, mmaction_checkpoint(plain), strict=True)
    assert "backbone.layer2.1.non_local_block.g.0.conv.weight" in str(err.value)
    # 5 blocks x 8 keys (g conv weight + bias, conv_out conv weight, conv_out bn x 5)
    assert "missing in checkpoint (40)" in str(err.value)


# --------------------------------------------------------------------------- structure


def test_key_names_follow_mmaction():
    sd = build_model("i3d_nl_dot_product_r50_32x2x1_100e_kinetics400_rgb").state_dict()
    for key, shape in [
        ("backbone.conv1.conv.weight", (64, 3, 5, 7, 7)),
        ("backbone.layer1.0.conv1.conv.weight", (64, 64, 3, 1, 1)),  # inflated 3x1x1
        ("backbone.layer1.0.conv2.conv.weight", (64, 64, 1, 3, 3)),
        ("backbone.layer2.1.conv1.conv.weight", (128, 512, 1, 1, 1)),  # not inflated
        ("backbone.layer1.0.downsample.conv.weight", (256, 64, 1, 1, 1)),
        ("backbone.layer4.0.downsample.bn.running_var", (2048,)),
        ("backbone.layer2.1.non_local_block.g.0.conv.weight", (256, 512, 1, 1, 1)),
        ("backbone.layer2.1.non_local_block.theta.conv.bias", (256,)),
        ("backbone.layer3.5.non_local_block.phi.0.conv.weight", (512, 1024, 1, 1, 1)),
        ("backbone.layer3.5.non_local_block.conv_out.bn.num_batches_tracked", ()),
        ("cls_head.fc_cls.weight", (400, 2048)),
    ]:
        assert tuple(sd[key].shape) == shape, key
    assert "backbone.layer2.0.non_local_block.g.0.conv.weight" not in sd


HEAVY = "i3d_imagenet-pretrained-r50-heavy_8xb8-32x2x1-100e_kinetics400-rgb"


def test_heavy_row_inflates_every_block_and_keeps_temporal_resolution():
    with torch.device("meta"):  # shapes only: no weights initialised, no arithmetic
        heavy = build_model(ZOO[HEAVY])
        plain = build_model(ZOO["i3d_imagenet-pretrained-r50_8xb8-32x2x1-100e_kinetics400-rgb"])
    sd = heavy.state_dict()
    for key, shape in [
        ("backbone.conv1.conv.weight", (64, 3, 5, 7, 7)),
        ("backbone.layer2.1.conv1.conv.weight", (128, 512, 3, 1, 1)),  # 1x1x1 in the plain row
        ("backbone.layer3.5.conv1.conv.weight", (256, 1024, 3, 1, 1)),
        ("backbone.layer4.0.conv1.conv.weight", (512, 1024, 3, 1, 1)),
        ("backbone.layer4.2.conv1.conv.weight", (512, 2048, 3, 1, 1)),
    ]:
        assert tuple(sd[key].shape) == shape, key
    assert heavy.backbone.conv1.conv.stride == (1, 2, 2) and heavy.backbone.maxpool.stride == (1, 2, 2)
    # 32 input frames: plain halves T in conv1, pool1 and pool2 (-> 4), heavy only in pool2 (-> 16)
    x = torch.empty(1, 3, 32, 64, 64, device="meta")
    assert heavy.backbone(x).shape == (1, 2048, 16, 2, 2)
    assert plain.backbone(x).shape == (1, 2048, 4, 2, 2)


def test_smoke_model_trains_a_step():
    # Every smoke entry is forwarded by the parity test; here: a training step through the
    # non-local one (dropout + batch statistics active, gradients reach every parameter).
    entry = ZOO["smoke_i3d_nl_tiny_video"]
    torch.manual_seed(0)
    model = build_model(entry)
    x = torch.randn(2, 3, entry.data.clip_len, 32, 32)
    out = model.train()(x)
    assert out.shape == (2, entry.arch.num_classes) and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert int(model.backbone.conv1.bn.num_batches_tracked) == 1
    with torch.no_grad():
        a, b = model.eval()(x), model(x)
    assert torch.equal(a, b)  # eval: dropout off, BN frozen


def test_fresh_non_local_block_is_identity_like_mmcv_init():
    # mmcv zero-inits the output BN, so a new block passes its input through unchanged.
    model = build_model("smoke_i3d_nl_tiny_video").eval()
    nl = model.backbone.layer2[0].non_local_block
    x = torch.randn(1, nl.in_channels, 2, 4, 4)
    with torch.no_grad():
        assert torch.equal(nl(x), x)
    assert abs(float(nl.g[0].conv.weight.detach().std()) - 0.01) < 0.003


def test_forward_rejects_wrong_layout():
    model = build_model("smoke_i3d_tiny_video")
    with pytest.raises(ValueError, match="N x 3 x T x H x W"):
        model(torch.zeros(1, 2, 3, 8, 32, 32))


def test_seeded_recipe_is_deterministic_and_key_dependent():
    a = seeded_tensor("backbone.conv1.conv.weight", (4, 3, 1, 1, 1), 1)
    assert torch.equal(a, seeded_tensor("backbone.conv1.conv.weight", (4, 3, 1, 1, 1), 1))
    assert not torch.equal(a, seeded_tensor("backbone.conv1.conv.weight", (4, 3, 1, 1, 1), 2))
    assert not torch.equal(a, seeded_tensor("backbone.conv2.conv.weight", (4, 3, 1, 1, 1), 1))
    # pinned values: the recipe must not drift, or every golden silently changes meaning
    assert a.flatten()[:3].tolist() == pytest.approx(GOLDEN_RECIPE_PIN, abs=1e-7)


GOLDEN_RECIPE_PIN = [-1.2617287635803223, 0.35086920857429504, -0.12260033935308456]


# --------------------------------------------------------------------------- params / MACs


@functools.cache
def model_of(arch: Architecture) -> Recognizer3D:
    return build_i3d(arch)  # shared by the counting tests, which do not modify it


@functools.cache
def complexity_of(arch: Architecture, backbone_only: bool = False, shape=(1, 3, 32, 256, 256)):
    model = model_of(arch)
    return count_params_macs(model.backbone if backbone_only else model, shape)


def test_params_and_flops_equal_mmengine_counts_of_mmaction_model():
    for path in GOLDEN_FILES:
        g = golden(path)
        arch = arch_of(g)
        mm = g["mmengine_backbone_complexity"]
        # mmengine's get_model_complexity_info with forward = extract_feat (as MMAction2's
        # get_flops.py does): FLOPs of the backbone, parameters of the whole model
        assert complexity_of(arch, True, tuple(mm["input_shape"])).flops_1x == mm["flops"], path.name
        assert complexity_of(arch, False, tuple(mm["input_shape"])).params == mm["params"], path.name


@pytest.mark.parametrize("name", sorted(n for n, e in ZOO.items() if e.published.gflops is not None))
def test_params_and_flops_reproduce_the_metafile(name):
    entry = ZOO[name]
    c = complexity_of(entry.arch)
    # 1.x metafile prints 1 decimal (43.5G / 28.0M), the 0.x one 2 (43.56 / 28.04)
    decimals = 1 if entry.mmaction == "1.x" else 2
    assert round(c.flops_as_published(entry.mmaction) / 1e9, decimals) == entry.published.gflops
    assert round(c.params / 1e6, decimals) == entry.published.params_m
    if entry.arch == Architecture():  # plain R50
        assert c.params == 28043472  # 0.x metafile, exact
        assert c.matmul_macs == 0
    elif entry.arch.non_local_mode is None:  # heavy: same weights' shapes save the inflated taps
        assert c.params == 33024208 and c.matmul_macs == 0
    else:
        assert c.flops_1x - c.flops_0x > 4e9  # the 0.x counter missed the non-local matmuls


def test_meta_device_count_equals_real_forward_count():
    model = model_of(ZOO["i3d_nl_gaussian_r50_32x2x1_100e_kinetics400_rgb"].arch)
    shape = (1, 3, 8, 32, 32)
    assert count_params_macs(model, shape, on_meta=False) == count_params_macs(model, shape)
    # the caller's model is untouched by the meta copy
    assert next(model.parameters()).device.type == "cpu"
