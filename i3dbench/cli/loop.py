"""`i3dbench eval | report | gate | run | publish | env`: the benchmark loop."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..errors import UsageError
from .common import copy_inputs, positive_float, positive_int, resolve_entry


def _obtained_line(obtained: dict) -> str:
    if obtained.get("how") == "resumed":
        src = ", ".join(obtained.get("reused_from") or []) or "this run folder"
        return (f"obtained: resumed — {obtained['rows_reused']} rows reused from an interrupted run ({src}), "
                f"{obtained['rows_computed']} computed now")
    return f"obtained: computed ({obtained.get('rows_computed', '?')} videos)"


def _cmd_eval(args: argparse.Namespace) -> int:
    from ..runs import check_output, open_run_dir

    entries = [resolve_entry(name, args.zoo) for name in args.names]
    if args.checkpoint is not None and len(entries) > 1:
        raise UsageError("--checkpoint names one file: give one entry with it, or evaluate each entry's own checkpoint")
    if args.sha256 is not None and args.checkpoint is None:
        raise UsageError("--sha256 checks the file given with --checkpoint: give both (an entry's published "
                         "checkpoint is always checked against its published hash)")
    if args.out is not None:
        check_output(args.out, inputs=[args.data_root, args.ann, args.checkpoint, args.intersect_with, args.zoo])
    existed = args.out is not None and Path(args.out).exists()
    run = open_run_dir(args.out)
    try:
        return _eval_groups(args, entries, run)
    except BaseException:
        _remove_if_empty(run.path, existed)  # a failed eval leaves no empty run folder behind
        raise


def _remove_if_empty(path: Path, existed: bool) -> None:
    """Remove the run folder this command created when no file was written into it."""
    import shutil

    if existed or not path.is_dir() or any(p.is_file() for p in path.rglob("*")):
        return
    shutil.rmtree(path, ignore_errors=True)


def _eval_groups(args: argparse.Namespace, entries, run) -> int:
    from ..evaluate import EvalSpec, evaluate_many
    from ..loader import group_by_input
    from ..runner import smoke_checkpoint, smoke_data

    worst = 0
    # Entries that share their test input are evaluated together: one decode per video for all.
    for group in group_by_input(entries):
        first = group[0]
        data_root, ann, reference = args.data_root, args.ann, args.intersect_with
        if first.dataset == "synthetic" and (data_root is None or ann is None):
            data_root, ann = smoke_data(first)  # the synthetic val split
        if (data_root is None or ann is None) and first.dataset != "synthetic":
            data_root, ann, described = copy_inputs("eval", first, args.data)
            reference = reference or described  # the description's reference_ids: only videos it lists
        specs = []
        for e in group:
            checkpoint = args.checkpoint
            if checkpoint is None and e.dataset == "synthetic" and e.checkpoint.url is None:
                checkpoint = smoke_checkpoint(e, train_if_missing=False)  # shipped ones: evaluate() checks the hash
            specs.append(EvalSpec(e, checkpoint=checkpoint, average_clips=args.average_clips, precision=args.precision,
                                  sha256=args.sha256))
        results = evaluate_many(
            specs, data_root, ann, views=args.views, device=args.device, out=run, num_workers=args.workers,
            batch_views=args.batch_views, decoder=args.decoder, fresh=args.fresh, max_failures=args.max_failures,
            progress=not args.quiet, intersect_with=reference,
            allow_layout_mismatch=args.allow_layout_mismatch,
        )
        if int(os.environ.get("RANK", "0")) != 0:
            continue  # under torchrun rank 0 gathers and reports
        for res in results:
            worst = max(worst, _print_eval(res))
    return worst


def _print_eval(res) -> int:
    from ..report import fmt_interval

    m = res.metrics
    if m.get("num_videos"):
        print(f"{res.entry}: top-1 {fmt_interval(m.get('top1'), m.get('top1_interval'))} %, "
              f"top-5 {fmt_interval(m.get('top5'), m.get('top5_interval'))} %, "
              f"mean class {m['mean_class_accuracy']:.2f} % | evaluated {res.num_evaluated} of {res.num_listed}"
              + (f" ({len(res.failures)} failed to decode)" if res.failures else ""))
    if res.restricted is not None:
        r = res.restricted
        print(f"  --intersect-with {r['reference']}: {r['kept']} of the {r['kept'] + r['dropped']} listed videos are in "
              f"it, {r['dropped']} dropped (not evaluated; their names are in the record)")
    for key, c in res.comparison.items():
        if c.get("comparable") is False:  # another protocol: shown, never held against the published number
            print(f"  {key}: published {c['published']:.2f}: {c['why']}")
            continue
        print(f"  {key}: published {c['published']:.2f}, delta {c['delta']:+.2f}, "
              f"{'within' if c['within'] else 'OUTSIDE'} tolerance {c['tolerance']:g} "
              f"(exact 95% [{c['interval'][0]:.2f}, {c['interval'][1]:.2f}])")
    verification = str(res.conditions.get("checkpoint_verified") or "")
    if verification.startswith("unverified"):
        print(f"  WARNING: unverified weights ({verification}): {res.weights_source}")
    elif verification.startswith("verified"):
        print(f"  weights: {verification}: {res.weights_source}")
    print(f"  {_obtained_line(res.obtained)} | run key {res.run_key}")
    print(f"  predictions {res.predictions_path}" + (f" | record {res.record_path}" if res.record_path else ""))
    reason = res.incomplete_reason()
    if not reason:
        return 0
    for f in res.failures[:20]:
        print(f"  failed: {f['video']}: {f['error']}", file=sys.stderr)
    if len(res.failures) > 20:
        print(f"  ... {len(res.failures) - 20} more in {res.predictions_path}", file=sys.stderr)
    print(f"eval {res.entry}: INCOMPLETE: {reason}; the record says so and the gate cannot judge it", file=sys.stderr)
    return 2


def _cmd_report(args: argparse.Namespace) -> int:
    from ..records import records_folder
    from ..report import DEFAULT_HISTORY, render_report

    from ..runs import check_output

    records = [records_folder(r) for r in args.records]
    out = args.out if args.out is not None else records[0].parent / "report"
    check_output(out, inputs=[*args.records, *records, *(args.history or []), args.zoo, args.training_log,
                              args.published_log], replaces=True)  # the report replaces its folder whole
    res = render_report(records, out, zoo=args.zoo, training_log=args.training_log, published_log=args.published_log,
                        history=DEFAULT_HISTORY if args.history is None else args.history)
    steps = f", {len(res.history.regressions)} step(s) judged REGRESSED in the history" if res.history else ""
    print(f"rendered {len(res.files)} files from {len(res.tables.used)} records{steps}: {res.html} "
          f"(and {res.out_dir / 'README.md'})")
    return 0


def _cmd_gate(args: argparse.Namespace) -> int:
    from ..gate import report_gate, run_gate

    result = run_gate(args.records, baseline=args.baseline, zoo=args.zoo)
    print(report_gate(result))
    return result.exit_code


_SLURM_FLAGS = ("partition", "gpus_per_node", "cpus_per_task", "time_limit", "slurm_option", "max_retries",
                "slurm_executor")


def _slurm_options(args: argparse.Namespace):
    """SlurmOptions from the run flags; a UsageError for Slurm flags given with --launcher local."""
    from ..launch import DEFAULT_MAX_RETRIES, DEFAULT_TIME_LIMIT_MIN, SlurmOptions, parse_slurm_options

    given = [f"--{k.replace('_', '-')}" for k in _SLURM_FLAGS if getattr(args, k) is not None]
    if args.launcher != "slurm":
        if given:
            raise UsageError(f"{', '.join(given)}: only with --launcher slurm (the default --launcher local runs "
                             "in this process)")
        return None
    executor = args.slurm_executor or "slurm"
    return SlurmOptions(
        partition=args.partition, gpus_per_node=1 if args.gpus_per_node is None else args.gpus_per_node,
        cpus_per_task=args.cpus_per_task,
        time_limit_min=DEFAULT_TIME_LIMIT_MIN if args.time_limit is None else args.time_limit,
        extra=parse_slurm_options(args.slurm_option),
        max_retries=DEFAULT_MAX_RETRIES if args.max_retries is None else args.max_retries,
        executor=executor, poll_s=10.0 if executor == "slurm" else 0.5)


def _cmd_run(args: argparse.Namespace) -> int:
    from ..runner import run_all

    from ..runs import check_output

    if args.out is not None:
        check_output(args.out, inputs=[args.zoo])
    slurm = _slurm_options(args)
    plan_only = ("--model-s-per-video", args.model_s_per_video), ("--assume-videos", args.assume_videos), \
        ("--nodes", args.nodes), ("--probe-videos", args.probe_videos)
    if not args.plan and any(v is not None for _, v in plan_only):
        raise UsageError(f"{', '.join(f for f, v in plan_only if v is not None)}: only with --plan")
    if args.plan:
        return _plan(args, slurm)
    summary = run_all(zoo=args.zoo, only=args.only, out=args.out, device=args.device, progress=not args.quiet,
                      measure=not args.no_bench, num_workers=args.workers, launcher=args.launcher, slurm=slurm,
                      sweep=not args.no_sweep, data=args.data)
    print(summary.describe())
    return summary.exit_code


def _plan(args: argparse.Namespace, slurm) -> int:
    import torch

    from ..evaluate import check_device
    from ..plan import describe, make_plan, project
    from ..data.k400copy import find_copy
    from ..runner import select_entries
    from ..zoo import load_zoo, load_zoos

    entries = select_entries(load_zoo(args.zoo) if args.zoo is not None else load_zoos(), args.only)
    device = check_device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if slurm is not None:
        workers = args.workers if args.workers is not None else max(0, (slurm.cpus_per_task or 3) - 1)
    else:
        workers = 2 if args.workers is None else args.workers
    plan = make_plan(entries, device=device, k400=find_copy(args.data), probe_videos=args.probe_videos or 3,
                     model_s_per_video=args.model_s_per_video, assume_videos=args.assume_videos,
                     progress=not args.quiet, workers=workers)
    if slurm is not None:
        projection = project(plan.costs, workers=workers, launcher="slurm", nodes=args.nodes or len(plan.costs) or 1,
                             gpus_per_node=slurm.gpus_per_node)
        if args.workers is None and slurm.cpus_per_task is None:
            projection.formula += " (2: give --cpus-per-task or --workers for the jobs' real number)"
    else:
        projection = project(plan.costs, workers=workers, launcher="local")
    print(describe(plan, projection))
    return 0


def _cmd_publish(args: argparse.Namespace) -> int:
    from ..publish import publish

    res = publish(args.runs, results=args.results, readme=None if args.readme == "none" else args.readme, zoo=args.zoo,
                  allow_dirty=args.allow_dirty, dry_run=args.dry_run, prune_perf=args.prune_perf)
    print(res.describe())
    return 0


def _cmd_env(args: argparse.Namespace) -> int:
    from ..provenance import environment_report

    print(environment_report(), end="")
    return 0


def add_parsers(sub) -> None:
    """eval, report, gate, run, publish, env: the benchmark loop."""
    p = sub.add_parser(
        "eval", help="evaluate entries with their published test protocol (resumable)",
        description="Evaluate zoo entries on a dataset copy with their published test protocol. Entries that share "
        "their test input (data variant, sampler, views, crop, resize) are evaluated together: each video is decoded "
        "once for all of them, and each still gets its own predictions and record. The run writes "
        "into its own folder (--out, default runs/<time>-<host>/): predictions/ and records/. Rerunning the same "
        "command resumes an interrupted evaluation of the same run key (never a finished one); --fresh reuses "
        "nothing. Exit 2 when more than --max-failures videos failed to decode.",
    )
    p.add_argument("names", nargs="+", metavar="NAME", help="zoo entry name(s) (see `i3dbench zoo list`)")
    p.add_argument("--zoo", type=Path, help="manifest file holding the entry (default: K400 zoo + smoke zoo)")
    p.add_argument("--data-root", type=Path, help="folder the list's paths are relative to (smoke: the synthetic set)")
    p.add_argument("--ann", type=Path, help="video or rawframe list of the test videos")
    p.add_argument("--data", type=Path, metavar="COPY.yaml",
                   help="the YAML describing your Kinetics-400 copy (default: $I3DBENCH_K400): each entry reads its "
                   "own layout from it, instead of --data-root/--ann")
    p.add_argument("--checkpoint", help="checkpoint file or URL (default: the entry's published checkpoint)")
    p.add_argument("--sha256", metavar="HEX",
                   help="the sha256 (or its first 8+ hex digits) the --checkpoint file must have; without it a local "
                   "file is verified against the entry's published hash by its content, whatever its name")
    p.add_argument("--views", help="CLIPSxCROPS override of the test protocol, e.g. 10x3 or 1x1")
    p.add_argument("--average-clips", choices=["prob", "score"], help="view averaging (default: the entry's, prob)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (under torchrun: cuda = the local rank's GPU)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    p.add_argument("--batch-views", type=positive_int, help="views per forward pass (default: one video's views)")
    p.add_argument("--workers", type=positive_int.allow_zero, default=2, help="data loading processes (0: in process)")
    p.add_argument("--decoder", choices=["decord", "pyav"], help="video decoder for video entries (default decord)")
    p.add_argument("--out", type=Path, help="run folder (default: a new runs/<UTC time>-<host>/)")
    p.add_argument("--fresh", action="store_true", help="reuse nothing, not even an interrupted run of the same key")
    p.add_argument("--intersect-with", type=Path, metavar="REF_LIST",
                   help="evaluate only the listed videos that this reference list (video/rawframe list or K400 CSV) "
                   "also holds; the record names what was left out")
    p.add_argument("--max-failures", type=positive_int.allow_zero, default=0,
                   help="videos allowed to fail to decode before the evaluation is incomplete (exit 2; default 0)")
    p.add_argument("--allow-layout-mismatch", action="store_true",
                   help="evaluate frames of another layout than the entry's (340x256 vs short side 256, rawframes vs "
                   "videos; refused by default); recorded, and never compared with the published numbers")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("report",
                       help="render index.html, tables and figures from runs' records (never touches results/)")
    p.add_argument("--records", type=Path, nargs="+", required=True, metavar="RUN",
                   help="run folder(s) or records/ folder(s): their records together")
    p.add_argument("--history", type=Path, nargs="*", metavar="DIR",
                   help="folders whose records make the history plots and steps (run folders, records folders or "
                   "folders of run folders; default: results/ and every run folder under the runs root; "
                   "--history with no folder: none)")
    p.add_argument("--out", type=Path, help="output folder (default: report/ next to the first records folder)")
    p.add_argument("--zoo", type=Path, help="manifest: one row per entry (default: K400 zoo + smoke zoo)")
    p.add_argument("--training-log", type=Path, help="a log.json of our training run to compare")
    p.add_argument("--published-log", type=Path, help="the published log.json of the same entry")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("gate", help="judge the newest records: exit 0 ok, 1 regression, 2 cannot judge",
                       description="Judge a run's newest records against a baseline run (paired McNemar test for "
                       "accuracy, Mann-Whitney test + tolerance for speed, tolerance for memory; Holm-corrected) or, "
                       "without --baseline, against the published numbers. Exit 0 only when everything due was judged "
                       "and nothing regressed; 1 a regression; 2 cannot judge (each reason in the table).")
    p.add_argument("--records", type=Path, required=True, help="a run folder or records folder to judge")
    p.add_argument("--baseline", type=Path, help="baseline run or records folder (default: the published numbers)")
    p.add_argument("--zoo", type=Path, help="judge only this manifest's entries (default: K400 zoo + smoke zoo)")
    p.set_defaults(func=_cmd_gate)

    p = sub.add_parser("run", help="the main job: evaluate and measure what can run here, into a new run folder",
                       description="Evaluate the shipped smoke checkpoints on the synthetic set, measure speed and "
                       "memory (smoke entries under both protocols; the full-size zoo once per architecture on CPU), "
                       "render the tables into the run folder and print them. Never modifies tracked files; "
                       "`i3dbench publish RUN` makes a run the reference in results/.")
    p.add_argument("--zoo", type=Path, help="manifest (default: K400 zoo + smoke zoo)")
    p.add_argument("--only", help="entry names or shell patterns, comma-separated")
    p.add_argument("--data", type=Path, metavar="COPY.yaml",
                   help="the YAML describing your Kinetics-400 copy, every layout the zoo reads (default: "
                   "$I3DBENCH_K400; I3DBENCH_K400_ROOT/_ANN name one layout)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--out", type=Path, help="run folder (default: a new runs/<UTC time>-<host>/; with --launcher "
                   "slurm it must be on a file system every node sees)")
    p.add_argument("--workers", type=positive_int.allow_zero,
                   help="data loading processes per evaluation (default: 2, K400 groups 4; in a Slurm job its CPUs - 1)")
    p.add_argument("--no-bench", action="store_true", help="evaluate and render only: no speed / memory step")
    p.add_argument("--no-sweep", action="store_true", help="no protocol sweep on the smoke entry")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    g = p.add_argument_group("launcher", "where the evaluation of each input group runs")
    g.add_argument("--launcher", choices=["local", "slurm"], default="local",
                   help="local: in this process (default); slurm: one job per input group through submitit, "
                   "all writing into the shared run folder; a failed or pre-empted job is resubmitted and resumes")
    g.add_argument("--partition", help="Slurm partition (default: the cluster's)")
    g.add_argument("--gpus-per-node", type=positive_int.allow_zero,
                   help="GPUs per job; the job runs one task per GPU, sharding the videos as torchrun (default 1)")
    g.add_argument("--cpus-per-task", type=positive_int, help="CPUs per task (default: the cluster's)")
    g.add_argument("--time-limit", type=positive_int, metavar="MINUTES",
                   help="time limit per job; a job reaching it is requeued and resumes (default 240)")
    g.add_argument("--slurm-option", action="append", metavar="KEY=VALUE",
                   help="an extra sbatch option, passed through (repeatable): e.g. account=abc, constraint=a100, "
                   "exclusive=")
    g.add_argument("--max-retries", type=positive_int.allow_zero,
                   help="resubmissions of a job that ended without a result or with an internal error (default 2)")
    g.add_argument("--slurm-executor", choices=["slurm", "local", "debug"],
                   help="for testing without a cluster: run the jobs as local processes (submitit's LocalExecutor) "
                   "or in this process (DebugExecutor); default slurm")
    g = p.add_argument_group("plan", "--plan: probe and project, evaluate nothing")
    g.add_argument("--plan", "--dry-run", action="store_true", dest="plan",
                   help="print per input group its entries, videos, seconds per video measured by a short probe here, "
                   "and the projected wall time for the launcher and workers; exit 0")
    g.add_argument("--model-s-per-video", type=positive_float, metavar="S",
                   help="device seconds per video of one entry (views + forward), given instead of measured here "
                   "(e.g. a GPU's on a machine without it); labelled as given")
    g.add_argument("--assume-videos", type=positive_int, metavar="N",
                   help="videos per group for groups without a list at hand (Kinetics-400 without a copy)")
    g.add_argument("--nodes", type=positive_int, help="nodes running jobs at once (slurm projection; default: one per group)")
    g.add_argument("--probe-videos", type=positive_int, help="videos decoded per group by the probe (default 3)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("publish", help="make run folder(s) the reference results (results/ and the README zoo table)",
                       description="Make run folders the reference: results/records (exactly their records), "
                       "results/perf, results/report and the README's zoo table, switched in one atomic step (an "
                       "interrupted publish is rolled back by the next one). Refused, with nothing changed: partial or "
                       "failed evaluations, entries in no manifest, two runs disagreeing on one entry and protocol, no "
                       "records, a run folder inside results/, records from a dirty working tree (unless "
                       "--allow-dirty). Prints the rows added, changed and removed.")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run folder(s) whose records become the reference")
    p.add_argument("--dry-run", action="store_true", help="check and print what would change; change nothing")
    p.add_argument("--allow-dirty", action="store_true",
                   help="accept records made from a working tree with uncommitted changes (the table's caption says so)")
    p.add_argument("--prune-perf", action="store_true",
                   help="remove the results/perf files the runs do not replace (default: keep them)")
    p.add_argument("--results", type=Path, default=Path("results"), help="reference folder (default results)")
    p.add_argument("--readme", default="README.md", help="markdown file with ZOO-TABLE markers to update ('none': skip)")
    p.add_argument("--zoo", type=Path, help="manifest: one row per entry (default: K400 zoo + smoke zoo)")
    p.set_defaults(func=_cmd_publish)

    p = sub.add_parser("env", help="the environment a measurement would record (torch collect_env + packages)")
    p.set_defaults(func=_cmd_env)
