"""`i3dbench compare | bisect`: two revisions measured together; the commit that moved a number."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import positive_float, positive_int, seed_int


def _settings(args: argparse.Namespace, checks=None):
    from ..compare import CHECKS, CompareSettings

    max_rounds = args.max_rounds if args.max_rounds is not None else max(30, args.rounds)
    return CompareSettings(rounds=args.rounds, max_rounds=max_rounds, block_s=args.block_seconds,
                           checks=tuple(checks or CHECKS), seed=args.seed, threads=args.threads)


def _only(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _cmd_compare(args: argparse.Namespace) -> int:
    from ..compare import compare, describe

    checks = [c.strip() for c in args.checks.split(",") if c.strip()]
    result = compare(args.base, args.head, only=_only(args.only), zoo=args.zoo, settings=_settings(args, checks),
                     out=args.out, progress=not args.quiet)
    print(describe(result))
    return result.exit_code


def _cmd_bisect(args: argparse.Namespace) -> int:
    from ..bisect import bisect, describe

    names = _only(args.only)
    if len(names) != 1:
        print(f"i3dbench bisect: --only takes one entry, got {len(names)}", file=sys.stderr)
        return 2
    result = bisect(args.good, args.bad, entry=names[0], metric=args.metric, zoo=args.zoo,
                    settings=_settings(args), out=args.out, progress=not args.quiet)
    print(describe(result))
    return result.exit_code


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--only", required=True, help="comma-separated entry names (see `i3dbench zoo list`)")
    p.add_argument("--zoo", help="manifest holding the entries (default: K400 zoo + smoke zoo; a manifest inside "
                                 "the repository is read from each revision's own tree)")
    p.add_argument("--rounds", type=positive_int, default=6, help="paired speed rounds before the first verdict "
                                                                   "(default 6)")
    p.add_argument("--max-rounds", type=positive_int, help="rounds at most while a speed check is UNKNOWN "
                                                           "(default max(30, --rounds))")
    p.add_argument("--block-seconds", type=positive_float, default=0.4,
                   help="seconds each revision's block of one round lasts (default 0.4)")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="torch threads of the timing process (default 1: robust to one competing busy process)")
    p.add_argument("--seed", type=seed_int, help="seed of the random orders (default: fresh)")
    p.add_argument("--out", type=Path, help="run folder (default: a new runs/<UTC time>-<host>/)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "compare",
        help="two git revisions measured together, paired: SAME / REGRESSED / IMPROVED / UNKNOWN",
        description="Measure BASE and HEAD (default: the working tree) side by side in one session: each runs "
                    "in its own worker process (import, accuracy, memory); speed in paired rounds timed in one process "
                    "holding both (their steps alternate one by one, in a random order), accuracy on the same videos (McNemar), memory of the same kind. Exit 0 all SAME "
                    "or better, 1 a regression (unless accepted by a 'Perf-Accepted: ENTRY METRIC' commit trailer "
                    "between the two), 2 UNKNOWN after --max-rounds or a revision that cannot run.",
    )
    p.add_argument("base", help="the base revision (a commit, branch or tag)")
    p.add_argument("head", nargs="?", help="the head revision (default: the working tree, labelled dirty when it is)")
    p.add_argument("--checks", default="speed,accuracy,memory", help="which checks (default speed,accuracy,memory)")
    _common(p)
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser(
        "bisect",
        help="the first-parent commit between GOOD and BAD that moved a number",
        description="Binary search over the first-parent commits after GOOD up to BAD; each step compares a commit "
                    "with GOOD (paired, as `compare`). Exit 0 culprit found, 2 not decidable.",
    )
    p.add_argument("good", help="a revision with the good number")
    p.add_argument("bad", help="a later revision with the bad number")
    p.add_argument("--metric", default="video_per_s", choices=["video_per_s", "top1", "top5", "memory"],
                   help="what moved (default video_per_s)")
    _common(p)
    p.set_defaults(func=_cmd_bisect)
