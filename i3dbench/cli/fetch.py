"""`i3dbench fetch [NAMES]`: download and verify published checkpoints into the cache (to copy offline)."""

from __future__ import annotations

import argparse
from pathlib import Path


def _cmd_fetch(args: argparse.Namespace) -> int:
    from ..checkpoints import CheckpointError, checkpoint_cache_dir, resolve_published
    from ..runner import select_entries
    from ..zoo import load_zoo, load_zoos

    entries = load_zoo(args.zoo) if args.zoo is not None else load_zoos()
    if args.names:
        entries = select_entries(entries, ",".join(args.names))
    # Entries sharing one published file are fetched once.
    urls: dict[str, list] = {}
    for e in entries.values():
        url = e.checkpoint.url
        if url is not None and url.lower().startswith(("http://", "https://")):
            urls.setdefault(url, []).append(e)
    if not urls:
        print("nothing to fetch: no chosen entry has a published http(s) checkpoint (the smoke entries ship theirs)")
        return 0
    failed = 0
    for url, group in urls.items():
        names = ", ".join(e.name for e in group)
        try:
            res = resolve_published(url, group[0].checkpoint.sha256_prefix, progress=not args.quiet)
        except CheckpointError as err:
            failed += 1
            print(f"FAILED {names}: {err}")
            continue
        print(f"ok {names}: {res.path} ({res.verification}; from {res.source})")
    print(f"{len(urls) - failed} of {len(urls)} checkpoint(s) in {checkpoint_cache_dir()}"
          + (f"; {failed} failed (above)" if failed else "")
          + ": copy that folder to $I3DBENCH_CACHE/checkpoints/ on the offline machine")
    return 2 if failed else 0


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "fetch", help="download and verify published checkpoints into the cache (for a machine without network)",
        description="Download the published checkpoints of the named entries (default: all) into the cache "
        "($I3DBENCH_CACHE/checkpoints/<sha256(url)[:16]>/<file name>), each checked against its published hash; "
        "copy the cache's checkpoints/ folder to an offline machine. I3DBENCH_CHECKPOINT_MIRROR (a base URL or folder "
        "replacing the published host) is used when set. Exit 2 when one failed (named).")
    p.add_argument("names", nargs="*", metavar="NAME", help="entry names or shell patterns (default: every entry)")
    p.add_argument("--zoo", type=Path, help="manifest (default: K400 zoo + smoke zoo)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_fetch)
