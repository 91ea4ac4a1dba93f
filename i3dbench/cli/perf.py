"""`i3dbench bench`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UsageError
from .common import non_negative_float, positive_float, positive_int, resolve_entry


def _cmd_bench(args: argparse.Namespace) -> int:
    import json

    from ..evaluate import check_device
    from ..measure import bench
    from ..runs import check_output, open_run_dir
    from ..timing import LoopBudget, default_budget

    entry = resolve_entry(args.name, args.zoo)
    if args.loader:
        return _bench_loader(args, entry)
    if args.data is not None or args.loader_videos is not None:
        raise UsageError("--data and --loader-videos go with --loader (the model is timed on random inputs: no data)")
    check_device(args.device)
    # Only what the user set; the rest is the protocol's choice (CPU: autotuned, CUDA: defaults).
    overrides = {k: v for k, v in (("precision", args.precision), ("compile", args.compile),
                                   ("fold_bn", False if args.no_fold else None),
                                   ("memory_format", "contiguous" if args.contiguous else None),
                                   ("compile_mode", args.compile_mode)) if v is not None}
    if args.protocol == "published" and (overrides or args.batch_videos or args.views_per_forward):
        raise UsageError("--precision/--compile/--no-fold/--contiguous/--compile-mode/--batch-videos/"
                         "--views-per-forward apply to --protocol fast only; the published protocol is MMAction2's "
                         "benchmark.py: fp32, eager, unfused, one video per iteration")
    import torch

    from ..timing import CUDA_FAST_BATCH_VIDEOS

    if args.views_per_forward is not None:
        per_iter = (args.batch_videos or (CUDA_FAST_BATCH_VIDEOS if torch.device(args.device).type == "cuda" else 1)) \
            * entry.views_per_video
        if args.views_per_forward > per_iter:
            raise UsageError(f"--views-per-forward {args.views_per_forward}: an iteration of {entry.name} has "
                             f"{per_iter} views ({entry.views_per_video} per video x {per_iter // entry.views_per_video} "
                             f"video(s)); give at most {per_iter}, or more videos with --batch-videos")
    base = default_budget(torch.device(args.device), args.protocol)
    budget = LoopBudget(
        warmup_iterations=base.warmup_iterations if args.warmup is None else args.warmup,
        warmup_s=base.warmup_s if args.warmup_seconds is None else args.warmup_seconds,
        min_iterations=base.min_iterations if args.min_iterations is None else args.min_iterations,
        min_seconds=base.min_seconds if args.min_seconds is None else args.min_seconds,
        max_seconds=args.max_seconds,
    )
    if args.out is not None:
        check_output(args.out, inputs=[args.zoo])
    run = open_run_dir(args.out)
    path = bench(entry, args.device, args.protocol, budget=budget, memory=not args.no_memory,
                 train_memory=not args.no_train_memory, overrides=overrides, batch_videos=args.batch_videos,
                 views_per_forward=args.views_per_forward, threads=args.threads, records_dir=run.records,
                 progress=not args.quiet)
    rec = json.loads(Path(path).read_text())
    m, c, meth = rec["metrics"], rec["conditions"], rec["method"]
    parts = [f"{entry.name} [{args.protocol}] on {c['device_name']}: {m['video_per_s']:.4g} video/s "
             f"(median of {m['n_timed']} iterations of {meth['iteration']}, spread {100 * m['spread']:.1f}%; "
             f"{c['precision']}, {c['memory_format']}, fold={c.get('fold_bn')}, compile={c['compile']}, "
             f"threads={c['num_threads']})"]
    if m.get("inference_memory_mb") is not None:
        parts.append(f"inference peak {m['inference_memory_mb']} MB ({c['inference_memory_kind']})")
    if m.get("train_memory_mb") is not None:
        parts.append(f"train step {m['train_memory_mb']} MB ({c['train_memory_kind']}, {meth['train_memory']})")
    print("; ".join(parts))
    if c.get("fast_note"):
        print(f"  note: {c['fast_note']}")
    if c.get("compile_error"):
        print(f"  torch.compile failed, ran eager: {c['compile_error']}")
    print(f"record {path}")
    return 0


_MODEL_FLAGS = ("device", "warmup", "warmup_seconds", "min_iterations", "min_seconds", "max_seconds", "batch_videos",
                "views_per_forward", "precision", "compile", "compile_mode", "threads", "out")


def _bench_loader(args: argparse.Namespace, entry) -> int:
    """`bench NAME --loader`: the rate of the entry's test pipeline (decode + sample + views, on the
    CPU) on the entry's own data: the synthetic set for a smoke entry, else its layout in the user's
    Kinetics-400 copy (``--data``, ``I3DBENCH_K400``, or ``I3DBENCH_K400_ROOT``/``_ANN``)."""
    from ..data.k400copy import inputs_for
    from ..measure import measure_loader
    from ..runner import smoke_data

    given = [f"--{k.replace('_', '-')}" for k in _MODEL_FLAGS if getattr(args, k) not in (None, False, "cpu")]
    given += [f for f, on in (("--no-fold", args.no_fold), ("--contiguous", args.contiguous), ("--no-memory", args.no_memory),
                              ("--no-train-memory", args.no_train_memory), ("--protocol", args.protocol != "published"))
              if on]
    if given:
        raise UsageError(f"{', '.join(given)}: not with --loader, which times the data pipeline only (no model, "
                         "no record); drop them, or drop --loader to time the model")
    if entry.dataset == "synthetic":
        root, ann = smoke_data(entry)
    else:
        found, why = inputs_for(entry, args.data)
        if found is None:
            raise UsageError(f"bench {entry.name} --loader: {why} (README: Your Kinetics-400 copy)")
        root, ann = found
    r = measure_loader(entry, root, ann, workers=args.loader_workers, num_videos=args.loader_videos or 8,
                       progress=not args.quiet)
    print(f"{entry.name} loader (decode + sample + views, {r['dtype']}, {r['workers']} loading process(es), "
          f"{r['decoder']}): {r['video_per_s']:.4g} video/s over {r['videos_timed']} videos of {ann} under {root} "
          f"({r['views_per_video']} views of {r['bytes_per_video'] / 1e6:.1f} MB per video)")
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="throughput and peak memory of an entry (random weights) -> a bench record",
        description="Measure inference throughput (video/s over the entry's test views) and peak memory into a run "
        "folder. --protocol published reproduces MMAction2's benchmark.py (one video = its 30 views as one batch, "
        "fp32; on CUDA 200 videos with 5 untimed); --protocol fast is this library's fastest path with the same "
        "output. Loops are time-based: warm-up, then at least --min-iterations and --min-seconds (CPU defaults: "
        "2 warm-up iterations and 1 s, then >= 20 iterations and >= 5 s); speed is the median iteration.",
    )
    p.add_argument("name", help="zoo entry name (see `i3dbench zoo list`)")
    p.add_argument("--zoo", type=Path, help="manifest file holding the entry (default: K400 zoo + smoke zoo)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (default cpu)")
    p.add_argument("--protocol", default="published", choices=["published", "fast"])
    p.add_argument("--warmup", type=positive_int.allow_zero, help="untimed iterations first (at least)")
    p.add_argument("--warmup-seconds", type=non_negative_float, help="untimed seconds first (at least)")
    p.add_argument("--min-iterations", type=positive_int, help="timed iterations (at least)")
    p.add_argument("--min-seconds", type=non_negative_float, help="timed seconds (at least)")
    p.add_argument("--max-seconds", type=positive_float, help="stop timing after this long (recorded as cut short)")
    p.add_argument("--batch-videos", type=positive_int, help="fast: videos per iteration (default 4 on CUDA, 1 on CPU)")
    p.add_argument("--views-per-forward", type=positive_int, help="fast: views per forward (default: the iteration's)")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], help="fast: override the precision")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="fast: torch.compile (default: on for CUDA, off for CPU where it costs ~25 s per shape)")
    p.add_argument("--compile-mode", help="fast: torch.compile mode, e.g. reduce-overhead (CUDA graphs)")
    p.add_argument("--no-fold", action="store_true", help="fast: keep BN layers (no conv-BN folding)")
    p.add_argument("--contiguous", action="store_true", help="fast: contiguous NCDHW instead of channels_last_3d")
    p.add_argument("--threads", type=positive_int, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--no-memory", action="store_true", help="skip both memory measurements")
    p.add_argument("--no-train-memory", action="store_true", help="skip the training-step memory measurement")
    p.add_argument("--out", type=Path, help="run folder (default: a new runs/<UTC time>-<host>/)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--loader", action="store_true",
                   help="time the entry's test data pipeline (decode + views, CPU) on its own data instead of the "
                   "model: a Kinetics-400 entry's layout from --data / $I3DBENCH_K400 (else I3DBENCH_K400_ROOT/_ANN); "
                   "prints video/s, writes no record")
    p.add_argument("--data", type=Path, metavar="COPY.yaml",
                   help="--loader: the YAML describing your Kinetics-400 copy (default: $I3DBENCH_K400)")
    p.add_argument("--loader-workers", type=positive_int.allow_zero, default=2,
                   help="--loader: loading processes (0: in this process; default 2)")
    p.add_argument("--loader-videos", type=positive_int, help="--loader: videos timed (default 8; the list is cycled)")
    p.set_defaults(func=_cmd_bench)
