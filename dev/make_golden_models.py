"""Write the model-parity goldens under tests/golden/models/ from MMAction2 1.2.0 itself.

Development only (imports MMAction2, mmengine, mmcv); the tests read the JSON it writes and
never import MMAction2. For every distinct architecture of the zoo (K400 + smoke; entries
that differ only in data or checkpoint share one) plus a few extra architectures that
exercise builder paths the zoo does not use, it:

1. builds MMAction2's own model: from its 1.x config file in the wheel
   (``mmaction/.mim/configs/recognition/i3d``, ``pretrained=None``) for K400 entries — a
   group with a 1.x entry uses that entry's config, 0.x-only groups the 1.x config with the
   same model settings, and the script checks that every backbone/head argument it relies
   on agrees with the entry's ``arch`` — and
   from ``ResNet3d`` / ``I3DHead`` keyword arguments for the smoke and extra ones;
2. fills every parameter and buffer (BN running statistics and counters included) with
   the seeded recipe of ``i3dbench.models.seeded`` (values depend on key name + seed only);
3. saves that model with mmengine's ``save_checkpoint`` in the layout MMAction2's runner
   writes (meta with a ConfigDict and NumPy scalars, message hub with HistoryBuffers),
   loads the file with ``i3dbench.checkpoints.load_checkpoint(strict=True)`` into
   ``build_model(entry)`` for every entry of the group, and compares the logits — on the
   small golden input and, for K400 architectures, once on a full 1x3x32x256x256 clip;
4. records the recipe seed, the input seed and shape, the key names + shapes, the expected
   logits (MMAction2's, eval mode, before softmax), and mmengine's params/FLOPs of the
   backbone at 1x3x32x256x256 (what MMAction2's get_flops.py reports).

It also writes ``mmengine_checkpoint.pth``: a few-KB checkpoint saved by mmengine with the
real non-tensor objects of a 1.x training checkpoint, for tests/test_checkpoints.py.

Run:  PYTHONPATH=. python3 dev/make_golden_models.py  [--skip-full] [--only SUBSTRING]

``--only`` rewrites just the goldens whose label or entry names contain SUBSTRING and leaves
the other files as they are (without it, every golden is deleted and rewritten).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import tempfile
import time
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from i3dbench.checkpoints import load_checkpoint, read_checkpoint
from i3dbench.models import build_i3d, build_model, count_params_macs
from i3dbench.models.seeded import RECIPE, fill_seeded_
from i3dbench.zoo import Architecture, load_zoos

OUT = ROOT / "tests" / "golden" / "models"
RECIPE_SEED = 20240601
INPUT_SEED = 7
K400_INPUT = (2, 3, 16, 64, 64)  # small: T=16 keeps 2 frames in layers 2-4 (temporal taps matter)
SMOKE_INPUT = (2, 3, 8, 64, 64)
FULL_INPUT = (1, 3, 32, 256, 256)
CONFIG_DIR = Path(__import__("mmaction").__file__).parent / ".mim" / "configs" / "recognition" / "i3d"

# 0.x rows have no config in the 1.2.0 wheel; their model section equals the 1.x config of
# the same non-local mode (checked against the entry's arch below). Groups with a 1.x entry
# use that entry's own config (the heavy row has no 0.x counterpart).
CONFIG_BY_MODE = {
    None: "i3d_imagenet-pretrained-r50_8xb8-32x2x1-100e_kinetics400-rgb",
    "dot_product": "i3d_imagenet-pretrained-r50-nl-dot-product_8xb8-32x2x1-100e_kinetics400-rgb",
    "embedded_gaussian": "i3d_imagenet-pretrained-r50-nl-embedded-gaussian_8xb8-32x2x1-100e_kinetics400-rgb",
    "gaussian": "i3d_imagenet-pretrained-r50-nl-gaussian_8xb8-32x2x1-100e_kinetics400-rgb",
}

# Architectures no zoo entry uses, to cover builder paths: BasicBlock (depth 18), no pool2,
# temporal strides 1, int patterns, dot-product / gaussian NL in stage 3.
EXTRA_ARCHS = {
    "extra_r18_tiny_nl_gaussian": Architecture(
        depth=18,
        base_channels=8,
        stage_blocks=(1, 2, 2, 1),
        conv1_kernel=(3, 7, 7),
        conv1_stride_t=1,
        pool1_stride_t=1,
        with_pool2=True,
        inflate=((1,), (1, 0), (0, 1), (1,)),
        non_local=((0,), (0, 0), (0, 1), (0,)),
        non_local_mode="gaussian",
        num_classes=5,
    ),
    "extra_r50_tiny_nopool2_dot": Architecture(
        depth=50,
        base_channels=8,
        stage_blocks=(2, 1, 2, 1),
        conv1_kernel=(1, 7, 7),
        conv1_stride_t=1,
        pool1_stride_t=2,
        with_pool2=False,
        inflate=((0, 1), (1,), (1, 1), (0,)),
        non_local=((0, 0), (1,), (1, 0), (0,)),
        non_local_mode="dot_product",
        num_classes=6,
        dropout_ratio=0.0,
    ),
}


def arch_id(arch: Architecture) -> str:
    blob = json.dumps(dataclasses.asdict(arch), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def seeded_input(shape, seed=INPUT_SEED) -> torch.Tensor:
    return torch.from_numpy(np.random.RandomState(seed).standard_normal(shape).astype(np.float32))


# --------------------------------------------------------------------------- MMAction2 side


def per_block(pattern, arch: Architecture) -> tuple:
    """A config's per-stage pattern as per-block flags (an int applies to the whole stage,
    as in the heavy config's ``inflate=(1, 1, 1, 1)``)."""
    blocks = arch.stage_blocks or (3, 4, 6, 3)
    return tuple((p,) * n if isinstance(p, int) else tuple(p) for p, n in zip(pattern, blocks))


def config_for(entries: list, zoo: dict) -> str:
    own = sorted(zoo[n].config for n in entries if zoo[n].mmaction == "1.x")
    return own[0] if own else CONFIG_BY_MODE[zoo[entries[0]].arch.non_local_mode]


def mmaction_from_config(config: str, arch: Architecture):
    from mmaction.registry import MODELS
    from mmengine.config import Config

    cfg = Config.fromfile(str(CONFIG_DIR / f"{config}.py"))
    cfg.model.backbone.pretrained = None
    b, h = cfg.model.backbone, cfg.model.cls_head
    nl_cfg = b.get("non_local_cfg", {})
    checks = {
        "depth": (b.depth, arch.depth),
        "conv1_kernel": (tuple(b.conv1_kernel), arch.conv1_kernel),
        "conv1_stride_t": (b.conv1_stride_t, arch.conv1_stride_t),
        "pool1_stride_t": (b.pool1_stride_t, arch.pool1_stride_t),
        "inflate": (per_block(b.inflate, arch), arch.inflate),
        "non_local": (
            per_block(b.get("non_local", ((0, 0, 0), (0, 0, 0, 0), (0, 0, 0, 0, 0, 0), (0, 0, 0))), arch),
            arch.non_local,
        ),
        "non_local_mode": (nl_cfg.get("mode"), arch.non_local_mode),
        "num_classes": (h.num_classes, arch.num_classes),
        "dropout_ratio": (h.dropout_ratio, arch.dropout_ratio),
        "base_channels": (b.get("base_channels", 64), arch.base_channels),
        "stage_blocks": (b.get("stage_blocks"), arch.stage_blocks),
        "with_pool2": (b.get("with_pool2", True), arch.with_pool2),
        "inflate_style": (b.get("inflate_style", "3x1x1"), "3x1x1"),
        "nl sub_sample/use_scale": ((nl_cfg.get("sub_sample", True), nl_cfg.get("use_scale", False)), (True, False)),
        "head in_channels": (h.in_channels, arch.base_channels * 8 * 4),
    }
    bad = {k: v for k, v in checks.items() if v[0] != v[1]}
    if bad:
        raise SystemExit(f"{config}: MMAction2 config and zoo arch disagree: {bad}")
    return MODELS.build(cfg.model), f"mmaction/.mim/configs/recognition/i3d/{config}.py (pretrained=None)"


def mmaction_from_kwargs(arch: Architecture):
    from mmaction.registry import MODELS

    nl_cfg = {}
    if arch.non_local_mode:
        nl_cfg = {
            "sub_sample": True,
            "use_scale": False,
            "norm_cfg": {"type": "BN3d", "requires_grad": True},
            "mode": arch.non_local_mode,
        }
    backbone = {
        "type": "ResNet3d",
        "pretrained": None,
        "pretrained2d": False,
        "depth": arch.depth,
        "base_channels": arch.base_channels,
        "stage_blocks": arch.stage_blocks,
        "conv1_kernel": arch.conv1_kernel,
        "conv1_stride_t": arch.conv1_stride_t,
        "pool1_stride_t": arch.pool1_stride_t,
        "with_pool2": arch.with_pool2,
        "inflate": arch.inflate,
        "non_local": arch.non_local,
        "non_local_cfg": nl_cfg,
        "conv_cfg": {"type": "Conv3d"},
        "norm_eval": False,
        "zero_init_residual": False,
    }
    expansion = 4 if arch.depth >= 50 else 1
    head = {
        "type": "I3DHead",
        "num_classes": arch.num_classes,
        "in_channels": arch.base_channels * 8 * expansion,
        "spatial_type": "avg",
        "dropout_ratio": arch.dropout_ratio,
        "init_std": 0.01,
        "average_clips": "prob",
    }
    model_cfg = {
        "type": "Recognizer3D",
        "backbone": backbone,
        "cls_head": head,
        "data_preprocessor": {
            "type": "ActionDataPreprocessor",
            "mean": [123.675, 116.28, 103.53],
            "std": [58.395, 57.12, 57.375],
            "format_shape": "NCTHW",
        },
    }
    kwargs = {k: v for k, v in backbone.items() if k != "type"}
    return MODELS.build(model_cfg), f"mmaction ResNet3d(**{kwargs}) + I3DHead(in_channels={head['in_channels']})"


@torch.no_grad()
def mmaction_logits(model, x: torch.Tensor) -> torch.Tensor:
    # Recognizer3D test path: extract_feat(test_mode=True) on N x num_views x C x T x H x W,
    # then the head's forward; average_clips (softmax + mean) comes after and is not compared.
    feat, _ = model.extract_feat(x.unsqueeze(1), test_mode=True)
    return model.cls_head(feat)


def mmengine_complexity(model, shape=FULL_INPUT) -> dict:
    # As mmaction's tools/analysis_tools/get_flops.py: forward = extract_feat (backbone only).
    from mmengine.analysis import get_model_complexity_info

    fwd = model.forward
    model.forward = model.extract_feat
    try:
        r = get_model_complexity_info(model, shape, show_table=False, show_arch=False)
    finally:
        model.forward = fwd
    return {"input_shape": list(shape), "flops": int(r["flops"]), "params": int(r["params"])}


def save_like_mmengine_runner(model, path: Path) -> None:
    """The checkpoint dict mmengine's Runner.save_checkpoint builds, written by mmengine."""
    import mmengine
    from mmengine.config import ConfigDict
    from mmengine.logging import MessageHub
    from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu

    hub = MessageHub.get_instance(f"golden-{path.stem}")
    for i in range(3):
        hub.update_scalar("train/loss", 1.0 / (i + 1))
        hub.update_scalar("train/lr", np.float64(0.01))
    hub.update_info("iter", np.int64(3))
    meta = {
        "cfg": ConfigDict(model={"type": "Recognizer3D", "backbone": {"type": "ResNet3d", "depth": 50}}),
        "seed": np.int64(0),
        "experiment_name": "golden",
        "time": "20240601_000000",  # fixed, so that rerunning the script rewrites identical bytes
        "mmengine_version": mmengine.__version__,
        "epoch": 1,
        "iter": 3,
        "dataset_meta": {"classes": ("a", "b")},
        "best_score": np.float64(0.5),
    }
    ckpt = {"meta": meta, "state_dict": weights_to_cpu(model.state_dict()), "message_hub": hub.state_dict()}
    save_checkpoint(ckpt, str(path))


# --------------------------------------------------------------------------- main


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--skip-full", action="store_true", help="skip the 1x3x32x256x256 confirmation forwards")
    ap.add_argument("--only", help="rewrite only the goldens whose label or entries contain this")
    args = ap.parse_args()
    torch.set_num_threads(1)  # the development machine is shared
    warnings.filterwarnings("ignore")
    from mmaction.utils import register_all_modules

    register_all_modules()
    import mmaction

    zoo = load_zoos()
    groups: dict[str, dict] = {}
    for name, e in zoo.items():
        g = groups.setdefault(arch_id(e.arch), {"arch": e.arch, "entries": [], "k400": e.dataset == "kinetics400"})
        g["entries"].append(name)
    for label, arch in EXTRA_ARCHS.items():
        groups.setdefault(arch_id(arch), {"arch": arch, "entries": [], "k400": False, "label": label})

    if args.only:
        groups = {aid: g for aid, g in groups.items()
                  if any(args.only in n for n in [g.get("label", ""), *g["entries"]])}
        if not groups:
            raise SystemExit(f"--only {args.only!r} matches no architecture")
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("arch_*.json"):
        if not args.only or old.stem.endswith(tuple(groups)):
            old.unlink()
    summary = []
    with tempfile.TemporaryDirectory() as tmp:
        for aid, g in groups.items():
            arch: Architecture = g["arch"]
            t0 = time.time()
            if g["k400"]:
                model, source = mmaction_from_config(config_for(g["entries"], zoo), arch)
            else:
                model, source = mmaction_from_kwargs(arch)
            fill_seeded_(model, RECIPE_SEED).eval()
            sd = model.state_dict()
            shape = K400_INPUT if g["k400"] else SMOKE_INPUT
            x = seeded_input(shape)
            expected = mmaction_logits(model, x)

            ckpt_path = Path(tmp) / f"{aid}.pth"
            save_like_mmengine_runner(model, ckpt_path)
            read = read_checkpoint(ckpt_path)
            ours_models = [build_model(n) for n in g["entries"]] or [build_i3d(arch)]
            diffs = []
            for ours in ours_models:
                meta = load_checkpoint(ours, ckpt_path, strict=True)
                assert meta["experiment_name"] == "golden"
                with torch.no_grad():
                    diffs.append(rel_diff(ours.eval()(x), expected))
            ours = ours_models[0]
            full_diff = None
            if g["k400"] and not args.skip_full:
                xf = seeded_input(FULL_INPUT, seed=INPUT_SEED + 1)
                with torch.no_grad():
                    full_diff = rel_diff(ours(xf), mmaction_logits(model, xf))
            mm = mmengine_complexity(model)
            ourc = count_params_macs(ours)
            ourb = count_params_macs(ours.backbone)
            real = count_params_macs(ours, shape, on_meta=False) == count_params_macs(ours, shape)

            record = {
                "arch_id": aid,
                "arch": dataclasses.asdict(arch),
                "label": g.get("label", g["entries"][0] if g["entries"] else aid),
                "entries": sorted(g["entries"]),
                "mmaction_model": source,
                "mmaction_version": mmaction.__version__,
                "torch_version": torch.__version__,
                "recipe": RECIPE,
                "recipe_seed": RECIPE_SEED,
                "input_seed": INPUT_SEED,
                "input_shape": list(shape),
                "keys": [[k, list(v.shape)] for k, v in sd.items()],
                "logits": expected.tolist(),
                "mmengine_backbone_complexity": mm,
                "dev_check": {
                    "max_rel_diff_small": max(diffs),
                    "max_rel_diff_full_1x3x32x256x256": full_diff,
                    "checkpoint_reader": read.reader,
                    "stripped_classes": read.stripped,
                    "meta_count_equals_real_count": real,
                },
            }
            name = OUT / f"arch_{record['label'].replace('-', '_')[:48]}_{aid}.json"
            name.write_text(json.dumps(record, indent=1) + "\n")
            summary.append(
                (record["label"], len(g["entries"]), max(diffs), full_diff, ourc, ourb, mm, time.time() - t0)
            )
            print(
                f"{record['label'][:60]:60s} entries={len(g['entries'])} rel={max(diffs):.2e} full={full_diff} "
                f"params={ourc.params} macs={ourc.macs} flops_1x(backbone)={ourb.flops_1x} flops_0x={ourc.flops_0x} mmengine={mm['flops']} "
                f"[{time.time() - t0:.1f}s]",
                flush=True,
            )

        if not args.only:
            # A small checkpoint carrying the real non-tensor objects of an mmengine training checkpoint.
            tiny = torch.nn.Sequential(OrderedDict(conv=torch.nn.Conv3d(3, 2, 1), bn=torch.nn.BatchNorm3d(2)))
            fill_seeded_(tiny, RECIPE_SEED)
            save_like_mmengine_runner(tiny, OUT / "mmengine_checkpoint.pth")
    print(f"wrote {len(groups)} goldens to {OUT}")


if __name__ == "__main__":
    main()
