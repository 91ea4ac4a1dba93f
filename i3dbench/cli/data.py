"""`i3dbench data check | synth | extract`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .common import nonneg_int, positive_int, seed_int


def _check_settings(args: argparse.Namespace):
    """(format, clip span, where the span comes from, num_classes, rawframes naming) of a data check.

    Flags win; else ``--entry``'s; else the zoo's largest clip span and class count, so a video too
    short for any entry, or a label no entry knows, is always named.
    """
    from ..data.validate import entry_clip_span, largest_clip_span
    from ..errors import UsageError
    from ..zoo import load_zoo, load_zoos
    from .common import resolve_entry

    for flag, value in (("--clip-len", args.clip_len), ("--frame-interval", args.frame_interval), ("--workers", args.workers)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be a whole number >= 1, got {value}")
    if args.frame_interval is not None and args.clip_len is None:
        raise UsageError(f"--frame-interval {args.frame_interval} needs --clip-len (or use --entry NAME)")
    if args.entry:
        entry = resolve_entry(args.entry, args.zoo)
        if args.format and args.format != entry.data.format:
            raise UsageError(f"--format {args.format} contradicts --entry {entry.name}, which reads {entry.data.format}: "
                             "drop --format or choose an entry for that format")
        fmt, num_classes = entry.data.format, entry.arch.num_classes
        span, source = entry_clip_span(entry), f"entry {entry.name}"
        naming = (entry.data.filename_tmpl, entry.data.start_index)
    else:
        zoo = load_zoo(args.zoo) if args.zoo else load_zoos()
        fmt, num_classes = args.format or "videos", max(e.arch.num_classes for e in zoo.values())
        span, name = largest_clip_span(zoo)
        source = f"the longest clip in the zoo, {name}; --entry NAME for another"
        naming = ("img_{:05}.jpg", 1)
    if args.clip_len is not None:
        interval = args.frame_interval or 1
        span, source = (args.clip_len - 1) * interval + 1, f"--clip-len {args.clip_len} --frame-interval {interval}"
    return fmt, span, source, num_classes, naming


def _check_inputs(args: argparse.Namespace) -> tuple:
    """(root, list) to check: ROOT --ann F when given, else --entry's own layout in the user's
    Kinetics-400 copy (--data, $I3DBENCH_K400, or I3DBENCH_K400_ROOT/_ANN)."""
    from ..errors import UsageError

    if args.root is not None and args.ann is not None:
        if args.data is not None:
            raise UsageError("--data names the copy whose --entry layout is checked: give ROOT --ann F or --data, not both")
        return args.root, args.ann
    if (args.root is None) != (args.ann is None):
        raise UsageError("ROOT and --ann go together (or neither, with --entry NAME and your copy's description)")
    if not args.entry:
        raise UsageError("data check needs ROOT --ann F, or --entry NAME to check that entry's layout of your "
                         "Kinetics-400 copy (--data FILE or I3DBENCH_K400=FILE; README: Your Kinetics-400 copy)")
    from ..data.k400copy import inputs_for
    from .common import resolve_entry

    entry = resolve_entry(args.entry, args.zoo)
    if entry.dataset == "synthetic":
        from ..runner import smoke_data

        return smoke_data(entry)
    found, why = inputs_for(entry, args.data)
    if found is None:
        raise UsageError(f"data check --entry {entry.name}: {why} (or give ROOT --ann F)")
    return found


def _check_decoder(args: argparse.Namespace, fmt: str, tmpl: str, start: int):
    """The decoder of the check: with --entry on rawframes, the entry's own JPEG backend (the lazy
    rows read turbojpeg); else check_dataset's default (None)."""
    if not args.entry or fmt != "rawframes":
        return None
    from ..data.decoders import JPEG_INSTALL, BackendUnavailable, get_decoder
    from ..errors import UserError
    from .common import resolve_entry

    entry = resolve_entry(args.entry, args.zoo)
    backend = getattr(entry.data, "jpeg_backend", "cv2")
    try:
        return get_decoder("rawframes", filename_tmpl=tmpl, start_index=start, num_threads=1, backend=backend)
    except BackendUnavailable:
        extra = "pip install -e '.[turbojpeg]'" if backend == "turbojpeg" else JPEG_INSTALL[backend]
        raise UserError(f"data check --entry {entry.name}: its frames are decoded with JPEG backend {backend} "
                        f"(data.jpeg_backend), which is not installed: {extra}") from None


def _cmd_data_check(args: argparse.Namespace) -> int:
    import json

    from tabulate import tabulate

    from ..data.copies import describe_comparison
    from ..data.inventory import check_dataset

    from ..runs import check_output

    fmt, span, source, num_classes, (tmpl, start) = _check_settings(args)
    root, ann = _check_inputs(args)
    if args.json is not None:
        check_output(args.json, inputs=[root, ann, args.against, args.zoo], flag="--json")
    report = check_dataset(root, ann, format=fmt, workers=args.workers, progress=not args.quiet,
                           clip_span=span, num_classes=num_classes, reference=args.against,
                           filename_tmpl=tmpl, start_index=start, decoder=_check_decoder(args, fmt, tmpl, start))
    counts = [[k, v] for k, v in report.status_counts.items()]
    print(f"{report.root} ({report.format}, {report.num_annotated} annotated in {report.ann_file}; {report.decoder})")
    print(f"too short: fewer than {span} frames ({source}); labels: 0..{num_classes - 1}")
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
    if report.comparison is not None:
        for line in describe_comparison(report.comparison, None if args.all else 10):
            print(line)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dict(report.to_dict(), clip_span_from=source), indent=1) + "\n")
        print(f"report written to {args.json}")
    if not report.ok:
        c = report.comparison
        differ = f", {c['num_missing']} missing and {c['num_extra']} extra against the reference" if c and not c["identical"] else ""
        print(f"PROBLEMS: {len(report.problems)} videos, {len(report.annotation_errors)} annotation lines{differ}", file=sys.stderr)
    return 0 if report.ok else 2  # bad input (exit 1 is the gate's "regressed" only)


def _cmd_data_synth(args: argparse.Namespace) -> int:
    import time

    from ..data.synthetic import generate_synthetic
    from ..errors import UsageError
    from ..runs import check_output

    check_output(args.out, flag="OUT")
    if args.videos_per_class == 0 and args.val_videos_per_class == 0:
        raise UsageError("--videos-per-class 0 and --val-videos-per-class 0: no video to write; give at least one "
                         "of them >= 1")
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
        help="inventory and fingerprint of a dataset copy (exit 2 when problems are found)",
        description="Open every annotated video (or frame directory), decode its first and last frame, and "
        "report missing / unreadable / zero-frame / too-short videos, paths outside the root and bad annotation "
        "lines (labels outside the classes, paths with spaces, repeated videos), per-class counts, resolutions, "
        "frame counts and a fingerprint of the copy; with --against, the reference videos missing or extra. "
        "Exit 0 clean, 2 problems found or bad usage.",
    )
    p.add_argument("root", type=Path, nargs="?",
                   help="data root (paths in the annotation file are relative to it); with --entry and no ROOT/--ann: "
                   "that entry's layout in your Kinetics-400 copy (--data / $I3DBENCH_K400)")
    p.add_argument("--ann", type=Path, help="MMAction2 list file (videos: 'PATH LABEL'; rawframes: 'DIR FRAMES LABEL')")
    p.add_argument("--data", type=Path, metavar="COPY.yaml",
                   help="with --entry: the YAML describing your Kinetics-400 copy (default: $I3DBENCH_K400, else "
                   "I3DBENCH_K400_ROOT/_ANN); the entry's own layout is checked")
    p.add_argument("--format", choices=["videos", "rawframes"], help="list format (default: the --entry's, else videos)")
    p.add_argument("--entry", help="zoo entry the data is for: its clip span, classes and frame naming "
                   "(default: the longest clip and the most classes in the zoo)")
    p.add_argument("--zoo", type=Path, help="manifest holding the entry (default: K400 zoo + smoke zoo)")
    p.add_argument("--clip-len", type=positive_int, help="flag videos shorter than (clip_len - 1) * frame_interval + 1 frames")
    p.add_argument("--frame-interval", type=positive_int, help="with --clip-len (default 1)")
    p.add_argument("--workers", type=positive_int, help="parallel checks (default min(8, CPUs))")
    p.add_argument("--against", type=Path, metavar="REF_LIST",
                   help="reference video list, rawframes list or K400 CSV: name the videos missing or extra here, by id")
    p.add_argument("--json", type=Path, help="write the full report as JSON")
    p.add_argument("--all", action="store_true", help="list every problem (default: the first 50)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_data_check)

    p = data.add_parser("synth", help="write the synthetic motion dataset (H.264 videos + JPEG frames)")
    p.add_argument("out", type=Path, help="output folder")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--videos-per-class", type=nonneg_int, default=32, help="training videos per class (default 32)")
    p.add_argument("--val-videos-per-class", type=nonneg_int, default=8, help="validation videos per class (default 8)")
    p.add_argument("--frames", type=positive_int, default=40, help="frames per video at 25 fps (default 40)")
    p.add_argument("--workers", type=positive_int, default=2, help="processes (default 2)")
    p.set_defaults(func=_cmd_data_synth)
    _add_extract_parser(data)


def _cmd_data_extract(args: argparse.Namespace) -> int:
    from ..data.extract import extract_rawframes

    rep = extract_rawframes(args.videos, args.ann, args.out, args.layout, workers=args.workers,
                            list_file=args.list, progress=not args.quiet)
    done = [r for r in rep.results if r.status == "done"]
    print(f"{rep.out} ({rep.layout}): {len(done)} videos extracted ({sum(r.frames for r in done)} frames), "
          f"{rep.count('skipped')} already there, {len(rep.failed)} failed")
    for r in rep.failed[:50]:
        print(f"failed: {r.video}: {r.reason}")
    if len(rep.failed) > 50:
        print(f"... {len(rep.failed) - 50} more failed videos")
    if rep.list_file is not None:
        print(f"rawframe list written to {rep.list_file}")
    if rep.failed:
        print(f"FAILED: {len(rep.failed)} videos (fix or remove them and rerun: finished folders are kept)", file=sys.stderr)
    return 2 if rep.failed else 0  # bad input: the failed videos are listed above


def _add_extract_parser(data) -> None:
    p = data.add_parser(
        "extract",
        help="rawframes from videos, as MMAction2's build_rawframes.py --use-opencv (exit 2 when a video fails)",
        description="Decode every video of a video list, resize it (--layout 340x256: fixed size; short256: short "
        "side 256) and write OUT/<video path without extension>/img_00001.jpg ... with OpenCV's JPEG defaults, "
        "then a rawframe list 'DIR TOTAL_FRAMES LABEL'. Parallel over videos; rerun to resume (finished folders "
        "are skipped). Exit 0 all extracted, 2 some videos failed or bad usage.",
    )
    p.add_argument("videos", type=Path, help="video folder (paths in --ann are relative to it)")
    p.add_argument("out", type=Path, help="output folder for the frame folders and the rawframe list")
    p.add_argument("--ann", type=Path, required=True, help="MMAction2 video list ('PATH LABEL' per line)")
    p.add_argument("--layout", required=True, help="340x256 (width x height) or short256 (short side)")
    p.add_argument("--workers", type=positive_int, default=min(8, os.cpu_count() or 1), help="processes (default min(8, CPUs))")
    p.add_argument("--list", type=Path, help="where to write the rawframe list (default OUT/<ann name, videos -> rawframes>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_data_extract)
