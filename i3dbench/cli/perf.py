"""`i3dbench bench`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .common import resolve_entry as _resolve_entry


def _cmd_bench(args: argparse.Namespace) -> int:
    import json

    from ..measure import bench

    entry = _resolve_entry(args.name, args.zoo)
    # Only what the user set; the rest is measure's choice (CPU: autotuned, CUDA: defaults).
    overrides = {k: v for k, v in (("precision", args.precision), ("compile", args.compile),
                                   ("fold_bn", False if args.no_fold else None),
                                   ("memory_format", "contiguous" if args.contiguous else None),
                                   ("compile_mode", args.compile_mode)) if v is not None}
    if args.protocol == "published" and overrides:
        print("bench: --precision/--compile/--no-fold/--contiguous/--compile-mode apply to --protocol fast only; "
              "the published protocol is fp32, eager, unfused", file=sys.stderr)
        return 2
    path = bench(entry, args.device, args.protocol, num_videos=args.videos, warmup=args.warmup,
                 memory=not args.no_memory, train_memory=not args.no_train_memory, overrides=overrides,
                 batch_videos=args.batch_videos, views_per_forward=args.views_per_forward, threads=args.threads,
                 records_dir=args.records)
    rec = json.loads(Path(path).read_text())
    m, c, x = rec["metrics"], rec["conditions"], rec["extra"]
    loop_kind = (x.get("loop_memory") or {}).get("kind")
    mem = f", peak memory {m['peak_memory_mb']} MB ({loop_kind})" if m.get("peak_memory_mb") is not None else ""
    train = (f", train step {m['train_memory_mb']} MB at batch {x['memory']['train_batch']} ({x.get('train_memory_kind')})"
             if m.get("train_memory_mb") is not None else "")
    print(f"{entry.name} [{args.protocol}] on {c['device_name']}: {m['video_per_s']:.3f} video/s "
          f"({m['videos_timed']} videos timed after {x['warmup_videos']} warm-up, latency "
          f"{m['latency_ms']:.0f} ± {m['latency_std_ms']:.0f} ms; {c['precision']}, {c['memory_format']}, "
          f"fold={c.get('fold_bn')}, compile={c['compile']}, views/forward={c.get('views_per_forward')}, "
          f"threads={c['num_threads']}){mem}{train}")
    if c.get("compile_error"):
        print(f"  torch.compile failed, ran eager: {c['compile_error']}", file=sys.stderr)
    print(f"record {path}")
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="throughput and peak memory of an entry (random weights) -> a bench record",
        description="Measure inference throughput (video/s over the entry's test views) and peak memory. "
        "--protocol published reproduces MMAction2's benchmark.py (batch 1 video, its 30 views as one "
        "batch, fp32, 200 videos with 5 warm-up on CUDA); --protocol fast is this library's fastest path "
        "with the same output. CPU defaults: 3 videos, 1 warm-up.",
    )
    p.add_argument("name", help="zoo entry name (see `i3dbench zoo list`)")
    p.add_argument("--zoo", type=Path, help="manifest file holding the entry (default: K400 zoo + smoke zoo)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (default cpu)")
    p.add_argument("--protocol", default="published", choices=["published", "fast"])
    p.add_argument("--videos", type=int, help="videos in all, warm-up included (default: 200 on CUDA, 3 on CPU)")
    p.add_argument("--warmup", type=int, help="first videos not timed (default: 5 on CUDA, 1 on CPU)")
    p.add_argument("--batch-videos", type=int, help="fast: videos per step (default 4 on CUDA, 1 on CPU; halved on OOM)")
    p.add_argument("--views-per-forward", type=int, help="fast: views per forward pass (default: all views of the step)")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], help="fast: override the precision")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="fast: torch.compile (default: on for CUDA, off for CPU where it costs ~25 s per shape)")
    p.add_argument("--compile-mode", help="fast: torch.compile mode, e.g. reduce-overhead (CUDA graphs)")
    p.add_argument("--no-fold", action="store_true", help="fast: keep BN layers (no conv-BN folding)")
    p.add_argument("--contiguous", action="store_true", help="fast: contiguous NCDHW instead of channels_last_3d")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--no-memory", action="store_true", help="skip the training-step memory measurement")
    p.add_argument("--no-train-memory", action="store_true", help="same as --no-memory (inference peak is always kept)")
    p.add_argument("--records", type=Path, help="records folder (default results/records)")
    p.set_defaults(func=_cmd_bench)
