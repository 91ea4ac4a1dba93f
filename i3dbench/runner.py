"""`i3dbench run`: evaluate and measure whatever can run on this machine, into one run folder.

Without a Kinetics-400 copy or a GPU (the embedded default) it
1. generates the synthetic set into the cache if missing,
2. evaluates the smoke entries with the checkpoints shipped next to ``zoo/smoke.yaml``
   (hash-checked; an entry that ships none is trained first with its recipe, cached by settings),
3. measures the smoke entries under both protocols side by side (published, then fast), with
   the memory of one iteration and of a training step,
4. measures the full-size zoo on the CPU once per architecture (measure.measure_zoo_cpu),
5. renders the run's tables and figures into ``<run>/report/`` and prints the zoo table.
With a Kinetics-400 copy (``--data`` / ``I3DBENCH_K400``: a YAML naming each layout, see
data/k400copy.py; or ``I3DBENCH_K400_ROOT`` + ``I3DBENCH_K400_ANN`` for one layout) and a GPU it also
evaluates every K400 entry whose layout the copy holds, and benches every entry under both protocols on the GPU.

With ``launcher="slurm"`` (``--launcher slurm``, launch.py) each input group's evaluation is one
Slurm job and the bench step one more, all writing into the same (shared) run folder; this
process waits for them, resubmits what failed, and renders the tables.

Everything goes into the run folder (``runs/<UTC time>-<host>/`` or ``--out``); no tracked file
is modified. Each step of each entry is independent: a failure is reported and the run goes on;
the exit code says the worst that happened (0 ok, 2 a step could not run on its input, 3 a bug).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .errors import EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, UsageError, UserError
from .launch import JobTask
from .runs import RunDir, cache_root, open_run_dir
from .zoo import ZooEntry, load_zoo, load_zoos

TIME_BUDGET_S = 600.0  # the whole default run on 2 CPU cores
MIN_CPU_BENCH_S = 90.0


@dataclass
class RunSummary:
    run: RunDir
    records: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (what, why)
    errors: list[tuple[str, str, int]] = field(default_factory=list)  # (what, error, exit code)
    table: str = ""
    elapsed_s: float = 0.0
    jobs: list = field(default_factory=list)  # launch.JobReport per job task (--launcher slurm)
    sweep_table: Optional[Path] = None

    @property
    def exit_code(self) -> int:
        return max((code for *_, code in self.errors), default=EXIT_OK)

    def describe(self) -> str:
        lines = [self.table, ""] if self.table else []
        lines.append(f"wrote {len(self.records)} records in {self.elapsed_s:.0f} s into {self.run.path}")
        by_reason: dict[str, list[str]] = {}
        for what, why in self.skipped:  # one line per reason, not one per entry
            by_reason.setdefault(why, []).append(what)
        for why, whats in by_reason.items():
            lines.append(f"  skipped {whats[0]}: {why}" if len(whats) == 1 else
                         f"  skipped {len(whats)} steps ({whats[0]}, ...): {why}")
        lines += [f"  FAILED {what}: {err}" for what, err, _ in self.errors]
        for rep in self.jobs:
            again = f", resubmitted {rep.resubmitted}x ({'; '.join(rep.attempts[:-1])})" if rep.resubmitted else ""
            lines.append(f"  job {rep.label}: {', '.join(rep.job_ids)}{again} -> {rep.attempts[-1] if rep.attempts else '?'}")
        if self.sweep_table is not None:
            lines.append(f"protocol sweep: {self.sweep_table}")
        lines.append(f"report: {self.run.report / 'index.html'} (open it in a browser; works offline)")
        lines.append(f"tables: {self.run.report / 'README.md'} | gate it: i3dbench gate --records {self.run.path} "
                     f"[--baseline OTHER_RUN] | make it the reference: i3dbench publish {self.run.path}")
        return "\n".join(lines)


def select_entries(entries: dict[str, ZooEntry], only: Optional[str]) -> dict[str, ZooEntry]:
    """Entries whose name matches one of the comma-separated names / shell patterns in ``only``."""
    if not only:
        return entries
    pats = [p.strip() for p in only.split(",") if p.strip()]
    chosen = {n: e for n, e in entries.items() if any(fnmatch.fnmatchcase(n, p) for p in pats)}
    if not chosen:
        raise UsageError(f"--only {only!r} matches no entry; run `i3dbench zoo list` to see them")
    return chosen


def smoke_data(entry: ZooEntry, split: str = "val", generate: bool = True) -> Optional[tuple[Path, Path]]:
    """(data_root, ann_file) of the synthetic set in the entry's format/resolution (generated if
    missing; with ``generate=False`` None instead: `run --plan` writes nothing into the cache)."""
    from .data.synthetic import _is_current, default_synthetic_root, ensure_synthetic, synthetic_paths

    if not generate and not _is_current(default_synthetic_root()):
        return None
    return synthetic_paths(ensure_synthetic(), entry.data.format, entry.data.resolution, split)


def smoke_work_dir(entry: ZooEntry) -> Path:
    """``$I3DBENCH_CACHE/smoke/<entry>/<hash of the entry's settings>``: editing the manifest
    (recipe, architecture, data) gives a new folder, so a stale checkpoint is never reused."""
    settings = dataclasses.asdict(entry)
    settings.pop("notes", None)
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return cache_root() / "smoke" / entry.name / digest


def smoke_checkpoint(entry: ZooEntry, train_if_missing: bool = True, device: Optional[str] = None,
                     records_dir=None) -> Path:
    """The checkpoint of a smoke entry: the one the manifest ships (``checkpoint.url``, a file
    next to zoo/smoke.yaml produced by ``i3dbench train``, hash-checked), else the cached one,
    trained first with the entry's recipe if absent (its ``train`` record goes to ``records_dir``)."""
    if entry.checkpoint.url is not None:
        from .checkpoints import resolve

        return resolve(entry.checkpoint.url, sha256=entry.checkpoint.sha256_prefix)
    work_dir = smoke_work_dir(entry)
    # train.py names the checkpoint of epoch N epoch_N.pth; only the last epoch's is finished
    # (a run killed earlier leaves earlier ones, which train(resume="auto") continues from).
    final = work_dir / f"epoch_{entry.recipe.epochs}.pth"
    if final.exists():
        return final.resolve()
    if not train_if_missing:
        raise UserError(f"no checkpoint for {entry.name} at {final}: run `i3dbench train {entry.name} --work-dir {work_dir}`")
    from .train import train

    result = train(entry, None, None, work_dir, resume="auto", device=device, records_dir=records_dir)
    if not final.exists():
        raise RuntimeError(f"training {entry.name} ended without {final} ({result.epochs} epochs done)")
    return final.resolve()


class _Steps:
    """Numbered steps with a one-line header each; a failing step is noted and the run goes on."""

    def __init__(self, summary: RunSummary, total: int, progress: bool):
        self.summary, self.total, self.n, self.progress = summary, total, 0, progress

    def __call__(self, what: str, fn, *args, **kwargs):
        self.n += 1
        if self.progress:
            print(f"[{self.n}/{self.total}] {what}", file=sys.stderr, flush=True)
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            self.summary.errors.append((what, str(err), EXIT_USAGE))
        except Exception as err:  # noqa: BLE001 - one entry's failure must not stop the run
            crash = self.summary.run.path / f"crash-{self.n}.txt"
            try:
                crash.write_text(traceback.format_exc())
            except OSError:
                crash = Path("(not written)")
            self.summary.errors.append((what, f"internal error {type(err).__name__}: {err} (traceback: {crash})",
                                        EXIT_INTERNAL))
        return None


@dataclass
class EvalGroupTask(JobTask):
    """The evaluation of one input group into the run folder: run in process by ``--launcher local``,
    submitted as one job by ``--launcher slurm`` (picklable; a resubmitted job resumes it)."""

    entries: list  # ZooEntry, one input group (loader.group_by_input)
    data_root: Path
    ann: Path
    run: RunDir
    device: str
    num_workers: Optional[int] = None  # None: the job's CPUs minus one (launch.default_workers)
    smoke: bool = False  # synthetic entries: shipped or locally trained checkpoints
    train_missing: bool = True
    progress: bool = True
    attempt: int = 1
    lock_wait_s: float = 60.0

    @property
    def label(self) -> str:
        return "eval " + ", ".join(e.name for e in self.entries)

    def run_job(self):
        from .evaluate import EvalSpec, evaluate_many
        from .launch import default_workers
        from .predictions import KeyLockedError

        entries = self.entries
        if self.smoke:
            # A shipped checkpoint is resolved by evaluate() itself, so that its record says it
            # was checked against the published hash; a trained one is passed as a file.
            entries = [EvalSpec(e, checkpoint=None if e.checkpoint.url else
                                smoke_checkpoint(e, self.train_missing, self.device, self.run.records)) for e in entries]
        workers = self.num_workers if self.num_workers is not None else default_workers()
        deadline = time.monotonic() + (self.lock_wait_s if self.attempt > 1 else 0.0)
        while True:
            try:
                return evaluate_many(entries, self.data_root, self.ann, device=self.device, out=self.run,
                                     num_workers=workers, progress=self.progress)
            except KeyLockedError:
                # A resubmitted job: data-loading processes forked by the killed job inherited its key
                # lock, and exit within seconds of their parent (PyTorch's worker watchdog).
                if time.monotonic() >= deadline:
                    raise
                time.sleep(2.0)


@dataclass
class MeasureTask(JobTask):
    """The bench step of `run` (speed and memory records) as one job: after the evaluation jobs, so
    that no job of this run shares its node while it measures."""

    smoke: list
    full: list
    device: str
    run: RunDir
    time_left_s: float
    progress: bool = True
    attempt: int = 1

    @property
    def label(self) -> str:
        return "bench"

    def run_job(self) -> tuple[list, list]:
        summary = RunSummary(run=self.run)
        _measure(_Steps(summary, len(self.smoke) + len(self.full), self.progress), summary, self.smoke, self.full,
                 self.device, self.run, self.time_left_s, self.progress)
        return summary.records, summary.errors


def _measure(step: _Steps, summary: RunSummary, smoke: list, full: list, device: str, run: RunDir, time_left_s: float,
             progress: bool) -> None:
    """Bench every smoke entry (both protocols) and the full-size zoo (on a GPU every entry, on a
    CPU once per architecture within what is left of the time budget)."""
    from .measure import bench_pair, measure_zoo_cpu

    deadline = time.monotonic() + time_left_s
    for e in smoke:
        summary.records += step(f"bench {e.name} (published, then fast protocol)", bench_pair, e, device,
                                records_dir=run.records, progress=progress) or []
    if full and device.startswith("cuda"):
        for e in full:
            summary.records += step(f"bench {e.name} (published, then fast protocol, GPU)", bench_pair, e, device,
                                    records_dir=run.records, progress=progress) or []
    elif full:
        # At least MIN_CPU_BENCH_S even when the smoke steps ate the budget: a run without a
        # single speed number of the published zoo would have missed its point.
        budget = max(MIN_CPU_BENCH_S, deadline - time.monotonic() - 30.0)
        summary.records += step(f"bench the full-size zoo on CPU, once per architecture ({budget:.0f} s budget)",
                                measure_zoo_cpu, full, budget_s=budget, records_dir=run.records,
                                progress=progress) or []


SWEEP_ENTRY = "smoke_i3d_tiny_video"
SWEEP_VARY = ("sampler=0.x,1.x", "averaging=prob,score")


def _sweep(entry: ZooEntry, run: RunDir, device: str, progress: bool):
    """The default job's small protocol sweep on a smoke entry (sweep.py)."""
    from .sweep import parse_vary, run_sweep

    return run_sweep(entry, parse_vary(list(SWEEP_VARY)), *smoke_data(entry), device=device, out=run,
                     num_workers=0, progress=progress)


def eval_tasks(entries: dict[str, ZooEntry], run: RunDir, device: str, *, num_workers: Optional[int], k400,
               train_missing: bool = True, progress: bool = True) -> tuple[list[EvalGroupTask], list[tuple[str, str]]]:
    """One task per input group that can be evaluated here (smoke groups on the synthetic set; K400
    groups when the copy holds their format and the device is a GPU), and what is skipped and why.

    ``num_workers`` None: 2 for smoke groups and 4 for K400 groups in process (``--launcher local``)."""
    from .loader import group_by_input

    smoke = [e for e in entries.values() if e.dataset == "synthetic"]
    full = [e for e in entries.values() if e.dataset != "synthetic"]
    tasks = [EvalGroupTask(g, *smoke_data(g[0]), run, device, num_workers, smoke=True, train_missing=train_missing,
                           progress=progress) for g in group_by_input(smoke)]
    skipped, runnable = [], []
    for e in full:  # k400: a data.k400copy.K400Copy, each entry's layout from it
        if k400 is None:
            skipped.append((f"eval {e.name}", "no Kinetics-400 copy (describe it in a YAML named by I3DBENCH_K400, "
                                              "or set I3DBENCH_K400_ROOT and I3DBENCH_K400_ANN for one layout)"))
        elif not device.startswith("cuda"):
            skipped.append((f"eval {e.name}", f"30-view Kinetics-400 evaluation needs a GPU; to evaluate here anyway: "
                                              f"i3dbench eval {e.name} --views 1x1 (1 view of 30; `run --plan` says "
                                              "what it costs; not comparable with the published numbers)"))
        elif k400.for_entry(e) is None:
            skipped.append((f"eval {e.name}", k400.why_not(e)))
        else:
            runnable.append(e)
    tasks += [EvalGroupTask(g, *k400.for_entry(g[0]), run, device, num_workers, progress=progress)
              for g in group_by_input(runnable)]
    return tasks, skipped


def run_all(
    zoo=None,
    only: Optional[str] = None,
    out=None,
    device: Optional[str] = None,
    train_missing: bool = True,
    measure: bool = True,
    num_workers: Optional[int] = None,
    time_budget_s: float = TIME_BUDGET_S,
    progress: bool = True,
    launcher: str = "local",
    slurm=None,
    sweep: bool = True,
    data=None,
) -> RunSummary:
    """Do everything this machine can (see the module docstring); returns what happened.

    ``launcher="slurm"`` with ``slurm`` (:class:`~i3dbench.launch.SlurmOptions`): each input group's
    evaluation is one job, then the bench step is one more job; tables are rendered here from the
    shared run folder. ``num_workers`` None: 2 (smoke) / 4 (K400) in process, the job's CPUs minus
    one in a job."""
    start = time.monotonic()
    if launcher not in ("local", "slurm"):
        raise UsageError(f"--launcher {launcher!r}: choose local or slurm")
    entries = select_entries(load_zoo(zoo) if zoo is not None else load_zoos(), only)
    if launcher == "slurm":
        from .launch import SlurmOptions, check_options

        slurm = slurm or SlurmOptions()
        check_options(slurm)
        # The jobs' nodes, not this (login) node, must have the device: the job checks it.
        device = device or ("cuda" if slurm.gpus_per_node else "cpu")
    else:
        import torch

        from .evaluate import check_device

        device = check_device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    from .provenance import environment_report
    from .report import DEFAULT_HISTORY, render_report, zoo_table_markdown

    from .data.k400copy import find_copy

    k400 = find_copy(data)  # --data / I3DBENCH_K400 (one YAML, every layout) or I3DBENCH_K400_ROOT/_ANN (one layout)
    run = open_run_dir(out)
    from .runs import ensure_writable

    ensure_writable(run.records)  # before minutes of work, not after them
    summary = RunSummary(run=run)
    smoke = [e for e in entries.values() if e.dataset == "synthetic"]
    full = [e for e in entries.values() if e.dataset != "synthetic"]
    gpu = device.startswith("cuda")
    local = launcher == "local"
    tasks, skipped = eval_tasks(entries, run, device, k400=k400, train_missing=train_missing, progress=progress,
                                num_workers=num_workers if num_workers is not None or not local else 2)
    if local:
        for t in tasks:  # K400 groups: at least 4 loading processes unless --workers says otherwise
            if not t.smoke and num_workers is None:
                t.num_workers = 4
    summary.skipped += skipped
    n_bench = (len(smoke) + ((len(full) if gpu else 1) if full else 0)) if measure else 0
    sweep_entry = SWEEP_ENTRY if sweep and SWEEP_ENTRY in entries else None
    total = 2 + (len(tasks) + n_bench + (1 if sweep_entry else 0) if local else 1 + (1 if n_bench else 0))
    step = _Steps(summary, total, progress)

    def record(res):
        if res is not None and getattr(res, "record_path", None) is not None:
            summary.records.append(res.record_path)
            reason = res.incomplete_reason()
            if reason:
                summary.errors.append((f"eval {res.entry}", f"incomplete: {reason}", EXIT_USAGE))

    step("environment (env.txt)", lambda: run.env_file.write_text(environment_report()))
    if local:
        # Entries that share their test input are evaluated together: one decode per video for all.
        for t in tasks:
            label = t.label + (" (shipped checkpoints, synthetic val set)" if t.smoke else "")
            for res in step(label, t.run_job) or []:
                record(res)
        if sweep_entry:
            res = step(f"sweep {sweep_entry} ({', '.join(SWEEP_VARY)}: what each setting costs, paired)", _sweep,
                       entries[sweep_entry], run, device, progress)
            if res is not None:
                summary.records += res.records
                summary.sweep_table = res.out_dir / "sweep.md"
        if measure:
            _measure(step, summary, smoke, full, device, run, time_budget_s - (time.monotonic() - start), progress)
    else:
        if sweep_entry:
            summary.skipped.append((f"sweep {sweep_entry}", "runs with --launcher local (`i3dbench sweep` on its own)"))

        def jobs(what: str, job_tasks: list):
            from .launch import run_tasks

            log = (lambda s: print(s, file=sys.stderr, flush=True)) if progress else (lambda s: None)
            reports = run_tasks(job_tasks, slurm, run.path / "slurm", log=log)
            summary.jobs += reports
            for rep in reports:
                if rep.error is not None:
                    summary.errors.append((f"{rep.label} (job {', '.join(rep.job_ids)})", rep.error, rep.code))
            return reports

        if tasks:
            for rep in step(f"evaluate {len(tasks)} input group(s), one Slurm job each", jobs, "eval", tasks) or []:
                for res in rep.value or []:
                    record(res)
        if n_bench:
            task = MeasureTask(smoke, full, device, run, time_budget_s, progress=progress)
            for rep in step("bench (one Slurm job, after the evaluations)", jobs, "bench", [task]) or []:
                if rep.value is not None:
                    records, errors = rep.value
                    summary.records += records
                    summary.errors += errors
    report = step("render tables and figures", render_report, run.records, run.report, zoo=zoo,
                  history=DEFAULT_HISTORY)
    if report is not None:
        summary.table = zoo_table_markdown(report.tables, report_link=str(run.report / "README.md"))
    summary.elapsed_s = time.monotonic() - start
    return summary
