"""`i3dbench zoo list`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

def _cmd_zoo_list(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from ..zoo import load_zoo, load_zoos

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


def add_parsers(sub) -> None:
    zoo = sub.add_parser("zoo", help="the zoo manifest").add_subparsers(dest="zoo_command", required=True)
    p = zoo.add_parser("list", help="entries with their published numbers")
    p.add_argument("--zoo", type=Path, help="manifest file (default: the K400 zoo and the smoke zoo)")
    p.set_defaults(func=_cmd_zoo_list)
