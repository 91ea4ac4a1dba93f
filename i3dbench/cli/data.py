"""`i3dbench data check | synth`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

def _cmd_data_check(args: argparse.Namespace) -> int:
    import json

    from tabulate import tabulate

    from ..data.inventory import check_dataset

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

    from ..data.synthetic import generate_synthetic

    t0 = time.perf_counter()
    root = generate_synthetic(args.out, seed=args.seed, videos_per_class=args.videos_per_class,
                              val_videos_per_class=args.val_videos_per_class, num_frames=args.frames,
                              workers=args.workers)
    print(f"synthetic dataset written to {root} in {time.perf_counter() - t0:.1f} s")
    return 0


def add_parsers(sub) -> None:
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
