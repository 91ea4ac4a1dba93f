"""`i3dbench eval | report | gate | run`: the benchmark loop."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .common import resolve_entry as _resolve_entry


def _cmd_eval(args: argparse.Namespace) -> int:
    from ..evaluate import evaluate
    from ..runner import smoke_checkpoint, smoke_data

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
    from ..report import fmt_ci

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
    from ..report import default_readme, render_report

    readme = None if args.readme == "none" else (Path(args.readme) if args.readme else default_readme())
    res = render_report(args.records, args.out, zoo=args.zoo, training_log=args.training_log,
                        published_log=args.published_log, readme=readme)
    print(f"rendered {len(res.files)} files from {len(res.tables.used)} records: {res.out_dir / 'README.md'}")
    return 0


def _cmd_gate(args: argparse.Namespace) -> int:
    from ..gate import report_gate, run_gate

    result = run_gate(args.records, baseline=args.baseline, zoo=args.zoo)
    print(report_gate(result))
    return result.exit_code


def _cmd_run(args: argparse.Namespace) -> int:
    from ..report import default_readme
    from ..runner import run_all

    # The project README's zoo table follows results/ (not a scratch --out elsewhere).
    readme = default_readme() if args.out == Path("results") else None
    summary = run_all(zoo=args.zoo, only=args.only, records_dir=args.records, out_dir=args.out, device=args.device,
                      readme=readme)
    print(summary.describe())
    return 0 if summary.ok else 1


def add_parsers(sub) -> None:
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
