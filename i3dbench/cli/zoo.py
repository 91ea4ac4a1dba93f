"""`i3dbench zoo list`: the entries with their published numbers (and, with --count, counted complexity)."""

from __future__ import annotations

import argparse
from pathlib import Path

# The counting convention of a metafile's FLOPs (the zoo yaml's comments say more).
FLOPS_COUNTER = {"0.x": "mmcv hooks, no matmuls", "1.x": "mmengine, with matmuls"}


def _num(value, fmt: str = "g") -> str:
    return "x" if value is None else format(value, fmt)


def _cmd_zoo_list(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from ..zoo import load_zoo, load_zoos

    entries = load_zoo(args.zoo) if args.zoo else load_zoos()
    counted = _count(entries) if args.count else {}
    rows = []
    for e in entries.values():
        p = e.published
        data = f"{e.data.format} {e.data.resolution}" + (" dense" if e.data.sampler == "dense" else "") + (
            " lazy" if e.data.lazy else "")
        row = [e.name, e.mmaction, data, e.test.sampler_version, e.arch.non_local_mode or "-", _num(p.top1, ".2f"),
               _num(p.top5, ".2f"),
               _num(p.video_per_s), _num(p.gpu_mem_mb), _num(p.params_m), _num(p.gflops),
               FLOPS_COUNTER.get(e.mmaction, "-") if p.gflops is not None else "-", p.gpus]
        if args.count:
            c = counted[e.name]
            row += [f"{c.params / 1e6:.2f}", f"{c.macs / 1e9:.2f}",
                    f"{c.flops_as_published(e.mmaction) / 1e9:.2f}" if e.mmaction in FLOPS_COUNTER else "-"]
        rows.append(row)
    headers = ["entry", "mmaction", "data", "test sampler", "non-local", "top1 %", "top5 %", "GPU video/s (published protocol)",
               "GPU train mem MiB (log)", "params M", "GFLOPs", "FLOPs counter", "gpus"]
    if args.count:
        headers += ["params M (counted)", "GMACs (counted)", "GFLOPs (counted, metafile convention)"]
    print(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))
    print("\nPublished figures as printed by MMAction2: video/s on one GPU, 30 views of a video per iteration, "
          "batch 1; memory = the training log's max_memory_allocated; params/GFLOPs from the metafile at "
          "1x3x32x256x256 in its own counting convention (x: not published)."
          + (" Counted: this package's model on meta tensors, same input." if args.count else ""))
    return 0


def _count(entries) -> dict:
    """Params and operation counts of each entry's model: built and run on meta tensors (shapes
    only), once per architecture and input shape."""
    import torch

    from ..models import build_model
    from ..models.complexity import count_params_macs

    out, seen = {}, {}
    for name, e in entries.items():
        shape = (1, 3, 32, 256, 256) if e.dataset != "synthetic" else (1, 3, e.data.clip_len, e.test.crop_size,
                                                                        e.test.crop_size)
        key = (e.arch, shape)
        if key not in seen:
            with torch.device("meta"):  # no weights allocated or initialised
                model = build_model(e)
            seen[key] = count_params_macs(model, shape)
        out[name] = seen[key]
    return out


def add_parsers(sub) -> None:
    zoo = sub.add_parser("zoo", help="the zoo manifest").add_subparsers(dest="zoo_command", required=True)
    p = zoo.add_parser("list", help="entries with their published numbers (accuracy, GPU speed and memory, "
                                    "params, FLOPs)")
    p.add_argument("--zoo", type=Path, help="manifest file (default: the K400 zoo and the smoke zoo)")
    p.add_argument("--count", action="store_true",
                   help="also count params, MACs and FLOPs of this package's models "
                        "(a shape-only forward per architecture: seconds)")
    p.set_defaults(func=_cmd_zoo_list)
