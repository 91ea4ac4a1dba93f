"""The ``i3dbench`` command. Thin: each handler parses, calls one typed function, prints.

Heavy modules (torch, decoders) are imported inside handlers so that ``i3dbench zoo list``
and ``--help`` stay instant.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


# --------------------------------------------------------------------------- zoo


def _cmd_zoo_list(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from .zoo import load_zoo, load_zoos

    entries = load_zoo(args.zoo) if args.zoo else load_zoos()
    rows = []
    for e in entries.values():
        p = e.published
        rows.append(
            [
                e.name,
                e.mmaction,
                f"{e.data.format} {e.data.resolution}" + (" dense" if e.data.sampler == "dense" else "") + (" lazy" if e.data.lazy else ""),
                e.arch.non_local_mode or "-",
                p.top1,
                p.top5,
                p.video_per_s,
                p.gpu_mem_mb,
                p.gpus,
            ]
        )
    headers = ["entry", "mmaction", "data", "non-local", "top1", "top5", "video/s", "gpu_mem MB", "gpus"]
    print(tabulate(rows, headers=headers, tablefmt="github", missingval="x"))
    return 0


# --------------------------------------------------------------------------- train


def _cmd_train(args: argparse.Namespace) -> int:
    from .train import is_main_process, train

    result = train(
        args.name,
        args.data_root,
        args.ann,
        args.work_dir or Path("work_dirs") / args.name,
        resume=args.resume,
        val_ann_file=args.val_ann,
        val_data_root=args.val_data_root,
        videos_per_gpu=args.videos_per_gpu,
        epochs=args.epochs,
        lr=args.lr,
        amp=args.amp,
        init=args.init,
        seed=args.seed,
        deterministic=args.deterministic,
        num_workers=args.workers,
        device=args.device,
        max_iters=args.max_iters,
        log_interval=args.log_interval,
        decoder=args.decoder,
        records_dir=args.records,
        write_record_file=not args.no_record,
        zoo=args.zoo,
    )
    if is_main_process():
        top1 = "n/a" if result.final_top1 is None else f"{result.final_top1:.2f}"
        print(f"val top1 {top1} | {result.epochs} epochs, {result.wall_time_s:.1f} s | checkpoint {result.checkpoint} "
              f"sha256 {result.checkpoint_sha256} | record {result.record_path}")
    return 0


# --------------------------------------------------------------------------- eval / report / gate / run


def _resolve_entry(name: str, zoo):
    from .zoo import get_entry

    return get_entry(name, zoo) if zoo else get_entry(name)


def _cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate
    from .runner import smoke_checkpoint, smoke_data

    entry = _resolve_entry(args.name, args.zoo)
    data_root, ann, checkpoint = args.data_root, args.ann, args.checkpoint
    if entry.dataset == "synthetic":  # defaults: the synthetic val split, the cached smoke checkpoint
        if data_root is None or ann is None:
            data_root, ann = smoke_data(entry)
        if checkpoint is None:
            checkpoint = smoke_checkpoint(entry, train_if_missing=False)
    if data_root is None or ann is None:
        print(f"eval {entry.name}: --data-root and --ann are needed for a {entry.dataset} entry", file=sys.stderr)
        return 2
    res = evaluate(
        entry, data_root, ann, checkpoint=checkpoint, views=args.views, average_clips=args.average_clips,
        device=args.device, out_dir=args.out_dir, records_dir=args.records, num_workers=args.workers,
        batch_views=args.batch_views, decoder=args.decoder, precision=args.precision,
    )
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun rank 0 gathers and reports
    from .report import fmt_ci

    m = res.metrics
    print(f"{res.entry}: top-1 {fmt_ci(m.get('top1'), m.get('top1_ci'))} %, top-5 {fmt_ci(m.get('top5'), m.get('top5_ci'))} %, "
          f"mean class {m.get('mean_class_accuracy', float('nan')):.2f} % | evaluated {res.num_evaluated} of {res.num_listed}"
          + (f" ({len(res.failures)} failed to decode)" if res.failures else ""))
    for key, c in res.comparison.items():
        print(f"  {key}: published {c['published']:.2f}, delta {c['delta']:+.2f}, "
              f"{'within' if c['within'] else 'OUTSIDE'} tolerance {c['tolerance']:g} (CI {c['ci'][0]:.2f}-{c['ci'][1]:.2f})")
    print(f"predictions {res.predictions_path}" + (f" | record {res.record_path}" if res.record_path else ""))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import default_readme, render_report

    readme = None if args.readme == "none" else (Path(args.readme) if args.readme else default_readme())
    res = render_report(args.records, args.out, zoo=args.zoo, training_log=args.training_log,
                        published_log=args.published_log, readme=readme)
    print(f"rendered {len(res.files)} files from {len(res.tables.used)} records: {res.out_dir / 'README.md'}")
    return 0


def _cmd_gate(args: argparse.Namespace) -> int:
    from .gate import report_gate, run_gate

    result = run_gate(args.records, baseline=args.baseline, zoo=args.zoo)
    print(report_gate(result))
    return result.exit_code


def _cmd_run(args: argparse.Namespace) -> int:
    from .report import default_readme
    from .runner import run_all

    # The project README's zoo table follows results/ (not a scratch --out elsewhere).
    readme = default_readme() if args.out == Path("results") else None
    summary = run_all(zoo=args.zoo, only=args.only, records_dir=args.records, out_dir=args.out, device=args.device,
                      readme=readme)
    print(summary.describe())
    return 0 if summary.ok else 1


def _cmd_bench(args: argparse.Namespace) -> int:
    import json

    from .measure import bench

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


# --------------------------------------------------------------------------- data


def _cmd_data_check(args: argparse.Namespace) -> int:
    import json

    from tabulate import tabulate

    from .data.inventory import check_dataset

    try:
        report = check_dataset(args.root, args.ann, format=args.format, clip_len=args.clip_len,
                               frame_interval=args.frame_interval, workers=args.workers,
                               progress=not args.quiet)
    except (FileNotFoundError, ValueError) as e:
        print(f"data check: {e}", file=sys.stderr)
        return 2
    counts = [[k, v] for k, v in report.status_counts.items()]
    print(f"{report.root} ({report.format}, {report.num_annotated} annotated in {report.ann_file}; {report.decoder})")
    print(tabulate(counts, headers=["status", "videos"], tablefmt="github"))
    if report.frame_stats:
        fs = report.frame_stats
        print(f"frames: min {fs['min']:g}, p5 {fs['p5']:g}, median {fs['median']:g}, mean {fs['mean']:g}, max {fs['max']:g}")
    res = ", ".join(f"{k} ({v})" for k, v in list(report.resolutions.items())[:5])
    print(f"resolutions: {res or '-'}{' ...' if len(report.resolutions) > 5 else ''}")
    low = min((c["ok"] for c in report.class_counts.values()), default=0)
    print(f"classes: {len(report.class_counts)} annotated, fewest usable videos in a class: {low}")
    print(f"fingerprint: {report.fingerprint} ({report.total_bytes / 1e6:.1f} MB)")
    for err in report.annotation_errors:
        print(f"bad annotation line: {err}")
    shown = report.problems if args.all else report.problems[:50]
    for prob in shown:
        print(f"{prob['status']}: {prob['path']}: {prob['reason']}")
    if len(shown) < len(report.problems):
        print(f"... {len(report.problems) - len(shown)} more problems (--all to list them, --json for a file)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.to_dict(), indent=1) + "\n")
        print(f"report written to {args.json}")
    if not report.ok:
        print(f"PROBLEMS: {len(report.problems)} videos, {len(report.annotation_errors)} annotation lines", file=sys.stderr)
    return 0 if report.ok else 1


def _cmd_data_synth(args: argparse.Namespace) -> int:
    import time

    from .data.synthetic import generate_synthetic

    t0 = time.perf_counter()
    root = generate_synthetic(args.out, seed=args.seed, videos_per_class=args.videos_per_class,
                              val_videos_per_class=args.val_videos_per_class, num_frames=args.frames,
                              workers=args.workers)
    print(f"synthetic dataset written to {root} in {time.perf_counter() - t0:.1f} s")
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="i3dbench",
        description="Reproducibility benchmark for the MMAction2 I3D Kinetics-400 model zoo.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    zoo = sub.add_parser("zoo", help="the zoo manifest").add_subparsers(dest="zoo_command", required=True)
    p = zoo.add_parser("list", help="entries with their published numbers")
    p.add_argument("--zoo", type=Path, help="manifest file (default: the K400 zoo and the smoke zoo)")
    p.set_defaults(func=_cmd_zoo_list)

    # Subcommands of the other modules are added below, one function each.
    _add_data_parsers(sub)
    _add_loop_parsers(sub)
    _add_train_parser(sub)
    _add_bench_parser(sub)
    return parser


def _add_bench_parser(sub) -> None:
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


def _add_train_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train an entry with its published recipe (run under torchrun for DDP)",
        description="Train a zoo entry with its published recipe. Single process, or DDP under "
        "`torchrun --nproc-per-node N -m i3dbench.cli train ...`. Smoke entries (synthetic set) "
        "need no --data-root/--ann.",
    )
    p.add_argument("name", help="zoo entry name (see `i3dbench zoo list`)")
    p.add_argument("--zoo", type=Path, help="manifest file holding the entry (default: K400 zoo + smoke zoo)")
    p.add_argument("--data-root", type=Path, help="training videos / rawframes folder")
    p.add_argument("--ann", type=Path, help="training list file")
    p.add_argument("--val-data-root", type=Path, help="validation folder (default: --data-root)")
    p.add_argument("--val-ann", type=Path, help="validation list file (none: no validation)")
    p.add_argument("--work-dir", type=Path, help="checkpoints and logs (default: work_dirs/NAME)")
    p.add_argument("--resume", help="'auto' (newest complete checkpoint in --work-dir) or a checkpoint path")
    p.add_argument("--epochs", type=int, help="override the recipe's epochs")
    p.add_argument("--videos-per-gpu", type=int, help="override the recipe's videos per GPU (lr follows the linear scaling rule)")
    p.add_argument("--lr", type=float, help="override the lr (no scaling rule then)")
    p.add_argument("--amp", choices=["bf16", "fp16"], help="autocast precision (default fp32)")
    p.add_argument("--init", help="2D ImageNet state_dict or MMAction2 checkpoint (file or URL), or 'none' "
                   "(default: the recipe's pretrained)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--deterministic", action="store_true", help="deterministic kernels (bitwise-repeatable on CPU)")
    p.add_argument("--workers", type=int, default=2, help="data loading processes per GPU/process")
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: the local rank's GPU if any, else cpu)")
    p.add_argument("--max-iters", type=int, help="stop after this many iterations in total (quick checks)")
    p.add_argument("--log-interval", type=int, default=20, help="iterations per log line")
    p.add_argument("--decoder", help="video decoder (default: decord for videos, rawframes for frames)")
    p.add_argument("--records", type=Path, help="records folder (default results/records)")
    p.add_argument("--no-record", action="store_true", help="do not write a train record")
    p.set_defaults(func=_cmd_train)


def _add_loop_parsers(sub) -> None:
    """eval, report, gate, run: the benchmark loop."""
    p = sub.add_parser("eval", help="evaluate an entry with its published test protocol (resumable)")
    p.add_argument("name", help="zoo entry name (see `i3dbench zoo list`)")
    p.add_argument("--zoo", type=Path, help="manifest file holding the entry (default: K400 zoo + smoke zoo)")
    p.add_argument("--data-root", type=Path, help="folder the list's paths are relative to (smoke: the synthetic set)")
    p.add_argument("--ann", type=Path, help="video or rawframe list of the test videos")
    p.add_argument("--checkpoint", help="checkpoint file or URL (default: the entry's published checkpoint)")
    p.add_argument("--views", help="CLIPSxCROPS override of the test protocol, e.g. 10x3 or 1x1")
    p.add_argument("--average-clips", choices=["prob", "score"], help="view averaging (default: the entry's, prob)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (under torchrun: cuda = the local rank's GPU)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    p.add_argument("--batch-views", type=int, help="views per forward pass (default: one video's views)")
    p.add_argument("--workers", type=int, default=2, help="data loading processes")
    p.add_argument("--decoder", help="decord | pyav (video entries; default decord)")
    p.add_argument("--out-dir", type=Path, help="predictions folder (default: <records>/predictions)")
    p.add_argument("--records", type=Path, help="records folder (default: results/records)")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("report", help="render results/ (tables, CSV, figures) from the records")
    p.add_argument("--records", type=Path, default=Path("results/records"), help="records folder")
    p.add_argument("--out", type=Path, default=Path("results"), help="output folder")
    p.add_argument("--zoo", type=Path, help="manifest: one row per entry (default: K400 zoo + smoke zoo)")
    p.add_argument("--training-log", type=Path, help="a log.json of our training run to compare")
    p.add_argument("--published-log", type=Path, help="the published log.json of the same entry")
    p.add_argument("--readme", help="markdown file whose ZOO-TABLE block gets the zoo table "
                   "(default: ./README.md when it has the markers; 'none' to skip)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("gate", help="exit 1 if the newest records regressed (0 ok, 2 cannot judge)")
    p.add_argument("--records", type=Path, default=Path("results/records"), help="records folder")
    p.add_argument("--baseline", type=Path, help="baseline records folder (default: judge against the published numbers)")
    p.add_argument("--zoo", type=Path, help="manifest (default: K400 zoo + smoke zoo)")
    p.set_defaults(func=_cmd_gate)

    p = sub.add_parser("run", help="the main job: evaluate and measure what can run here, render results/")
    p.add_argument("--zoo", type=Path, help="manifest (default: K400 zoo + smoke zoo)")
    p.add_argument("--only", help="entry names or shell patterns, comma-separated")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--records", type=Path, help="records folder (default: OUT/records)")
    p.add_argument("--out", type=Path, default=Path("results"), help="rendered tables folder")
    p.set_defaults(func=_cmd_run)


def _add_data_parsers(sub) -> None:
    data = sub.add_parser("data", help="dataset tools: inventory check, synthetic set").add_subparsers(
        dest="data_command", required=True)
    p = data.add_parser(
        "check",
        help="inventory and fingerprint of a dataset copy (exit 1 when problems are found)",
        description="Open every annotated video (or frame directory), decode its first and last frame, and "
        "report missing / unreadable / zero-frame / too-short videos and bad annotation lines, per-class "
        "counts, resolutions, frame counts and a fingerprint of the copy. Exit 0 clean, 1 problems, 2 bad usage.",
    )
    p.add_argument("root", type=Path, help="data root (paths in the annotation file are relative to it)")
    p.add_argument("--ann", type=Path, required=True, help="MMAction2 list file (videos: 'PATH LABEL'; rawframes: 'DIR FRAMES LABEL')")
    p.add_argument("--format", choices=["videos", "rawframes"], default="videos")
    p.add_argument("--clip-len", type=int, help="flag videos shorter than clip_len * frame_interval frames")
    p.add_argument("--frame-interval", type=int, default=1)
    p.add_argument("--workers", type=int, help="parallel checks (default min(8, CPUs))")
    p.add_argument("--json", type=Path, help="write the full report as JSON")
    p.add_argument("--all", action="store_true", help="list every problem (default: the first 50)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_data_check)

    p = data.add_parser("synth", help="write the synthetic motion dataset (H.264 videos + JPEG frames)")
    p.add_argument("out", type=Path, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--videos-per-class", type=int, default=32, help="training videos per class (default 32)")
    p.add_argument("--val-videos-per-class", type=int, default=8, help="validation videos per class (default 8)")
    p.add_argument("--frames", type=int, default=40, help="frames per video at 25 fps (default 40)")
    p.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    p.set_defaults(func=_cmd_data_synth)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
