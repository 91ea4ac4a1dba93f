"""Launchers of `i3dbench run`: where the evaluation of each input group runs.

* ``local`` (the default): in this process, one group after the other (``runner.run_all``).
* ``slurm``: one Slurm job per input group through ``submitit`` (``pip install -e ".[slurm]"``),
  each job running ``gpus_per_node`` tasks that shard the group's videos as under ``torchrun``
  (``evaluate_many`` reads ``WORLD_SIZE``). Every job writes into the same, shared run folder;
  ``report`` / ``gate`` read its records as those of a local run.

What submitit does: write the job's pickle and ``sbatch`` script, submit, requeue a job that
Slurm pre-empts or that reaches its time limit (its callable is *checkpointable*: the same
callable is pickled again and Slurm requeues the job), give us the result or the error.
What this module does on top (:func:`run_tasks`): wait for all jobs, and resubmit a job that
ended without a result (killed, node failure, out of memory, requeued too often) or with an
internal error, at most ``max_retries`` times. Nothing is lost by a resubmission: the new job
finds the killed job's ``.partial.jsonl`` of the same run key in the run folder and resumes
it (``predictions.py``); the key's lock died with the killed process.

A job that fails on its input (a :class:`~i3dbench.errors.UserError`: a bad list, a missing
checkpoint) is not resubmitted: it would fail the same way.

submitit's own files (pickles, ``<job>_<task>_log.out/.err``) go into ``<run>/slurm/<job id>/``,
so the logs stay with the run; ``<run>/slurm/jobs.json`` lists every job and attempt.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .errors import EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, UsageError, UserError

LAUNCHERS = ("local", "slurm")
EXECUTORS = ("slurm", "local", "debug")  # submitit's SlurmExecutor; LocalExecutor / DebugExecutor for tests
DEFAULT_TIME_LIMIT_MIN = 240
DEFAULT_MAX_RETRIES = 2


@dataclass(frozen=True)
class SlurmOptions:
    """How jobs are submitted (the ``run`` flags of the same names)."""

    partition: Optional[str] = None
    gpus_per_node: int = 1
    cpus_per_task: Optional[int] = None
    time_limit_min: int = DEFAULT_TIME_LIMIT_MIN
    extra: dict = field(default_factory=dict)  # --slurm-option KEY=VALUE: sbatch options passed through
    max_retries: int = DEFAULT_MAX_RETRIES
    executor: str = "slurm"  # "local" / "debug": submitit's LocalExecutor / DebugExecutor (testing without Slurm)
    poll_s: float = 10.0

    @property
    def tasks_per_node(self) -> int:
        return max(1, self.gpus_per_node)


def parse_slurm_options(items: Optional[list[str]]) -> dict:
    """``["constraint=h100", "account=abc"]`` -> ``{"constraint": "h100", "account": "abc"}`` (sbatch
    ``--KEY=VALUE``; ``KEY=`` for a flag without a value, e.g. ``exclusive=``)."""
    out: dict = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not sep or not key or not all(c.isalnum() or c == "_" for c in key):
            raise UsageError(f"--slurm-option {item!r}: expected KEY=VALUE (an sbatch option without its dashes, "
                             "e.g. --slurm-option constraint=a100 or --slurm-option exclusive=)")
        out[key] = value if value != "" else True
    return out


def check_options(options: SlurmOptions) -> None:
    """A UsageError naming the flag for options that cannot work; UserError when submitit or sbatch is missing."""
    if options.executor not in EXECUTORS:
        raise UsageError(f"--slurm-executor {options.executor!r}: choose one of {', '.join(EXECUTORS)}")
    if options.gpus_per_node < 0:
        raise UsageError(f"--gpus-per-node must be >= 0, got {options.gpus_per_node}")
    if options.cpus_per_task is not None and options.cpus_per_task < 1:
        raise UsageError(f"--cpus-per-task must be >= 1, got {options.cpus_per_task}")
    if options.time_limit_min < 1:
        raise UsageError(f"--time-limit must be >= 1 (minutes), got {options.time_limit_min}")
    if options.max_retries < 0:
        raise UsageError(f"--max-retries must be >= 0, got {options.max_retries}")
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise UserError("--launcher slurm needs submitit: pip install -e \".[slurm]\" (or pip install submitit)") from None
    missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]
    if options.executor == "slurm" and missing:
        raise UserError(f"--launcher slurm: no {' or '.join(missing)} on this machine's PATH; run on a Slurm login "
                        "node, or use --launcher local")


def make_executor(options: SlurmOptions, folder: Path):
    """A submitit executor for ``options``, its files under ``folder/<job id>/``."""
    import submitit

    executor = submitit.AutoExecutor(folder=str(Path(folder) / "%j"), cluster=options.executor)
    params: dict[str, Any] = {
        # submitit's defaults (5 min on Slurm, 2 on the local executor) would kill any real evaluation.
        "timeout_min": int(options.time_limit_min),
        "tasks_per_node": options.tasks_per_node,
        "nodes": 1,
    }
    if options.gpus_per_node:
        params["gpus_per_node"] = options.gpus_per_node
    if options.cpus_per_task is not None:
        params["cpus_per_task"] = options.cpus_per_task
    if options.partition:
        params["slurm_partition"] = options.partition
    if options.extra:
        params["slurm_additional_parameters"] = dict(options.extra)
    executor.update_parameters(**params)
    return executor


# --------------------------------------------------------------------------- inside a job


@dataclass
class TaskOutcome:
    """What a task returns from its job: the value, or the error that stopped it (never raised, so
    that the waiting process decides about a resubmission, and submitit's debug executor never
    opens a debugger)."""

    value: Any = None
    error: Optional[str] = None
    code: int = EXIT_OK  # EXIT_USAGE: failed on its input (not resubmitted); EXIT_INTERNAL: anything else
    rank: int = 0


class JobTask:
    """Base of the callables submitted as jobs: picklable, checkpointable (a pre-empted or timed-out
    job is requeued by submitit with the same callable and resumes from the run folder), and run
    as one torch.distributed rank per task when the job has several tasks.

    Subclasses define ``label`` and ``run_job()``, and keep ``attempt`` (1 for the first submission).
    """

    attempt: int = 1

    @property
    def label(self) -> str:
        return type(self).__name__

    def run_job(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self) -> TaskOutcome:
        rank = setup_distributed()
        try:
            return TaskOutcome(self.run_job(), rank=rank)
        except UserError as err:
            return TaskOutcome(error=str(err), code=EXIT_USAGE, rank=rank)
        except Exception:  # noqa: BLE001 - reported to the waiting process, which may resubmit
            return TaskOutcome(error=traceback.format_exc(), code=EXIT_INTERNAL, rank=rank)

    def checkpoint(self, *args, **kwargs):
        """Called by submitit when Slurm pre-empts the job or its time limit nears: requeue the same
        task (its rows so far are in the run folder's partial files; the requeued job resumes them).
        This is submitit.helpers.Checkpointable's behaviour, without importing submitit here."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)

    def resubmitted(self) -> JobTask:
        """The same task for the next submission (``attempt`` + 1)."""
        if dataclasses.is_dataclass(self):
            return dataclasses.replace(self, attempt=self.attempt + 1)
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__, attempt=self.attempt + 1)
        return clone


def setup_distributed() -> int:
    """In a job with several tasks: export RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT / LOCAL_RANK
    (submitit's TorchDistributedEnvironment) so that ``evaluate_many`` shards as under torchrun.
    Returns this task's global rank (0 outside a job or with one task)."""
    try:
        import submitit
    except ImportError:
        return 0
    env = submitit.JobEnvironment()
    if not env.activated() or env.num_tasks <= 1:
        return 0
    # Keep every GPU visible: evaluate_many picks cuda:LOCAL_RANK itself (as under torchrun).
    submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
    return env.global_rank


def job_cpus() -> int:
    """CPUs this process may use (Slurm's cgroup / affinity mask; os.cpu_count() elsewhere)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """Data-loading processes for a job: its CPUs minus the one that builds views and drives the model."""
    return max(0, job_cpus() - 1)


# --------------------------------------------------------------------------- the waiting side


@dataclass
class JobReport:
    """One task's jobs: every submission's id and how it ended, and the final outcome."""

    label: str
    job_ids: list[str] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)  # how each submission ended
    value: Any = None
    error: Optional[str] = None
    code: int = EXIT_OK
    log: Optional[str] = None

    @property
    def resubmitted(self) -> int:
        return max(0, len(self.job_ids) - 1)


def _collect(job) -> tuple[Optional[TaskOutcome], Optional[str]]:
    """(rank 0's outcome, None) or (None, why the job gave no outcome)."""
    from submitit.core.utils import FailedJobError, UncompletedJobError

    try:
        outcomes = job.results()
    except UncompletedJobError:
        return None, (f"job {job.job_id} ended without a result (state {job.state}): killed, pre-empted more often "
                      f"than submitit requeues, out of memory or past its time limit")
    except FailedJobError as err:  # the task itself never raises: this is submitit failing to run it
        return None, f"job {job.job_id} failed outside the task: {str(err).splitlines()[0]}"
    outcomes = [o for o in outcomes if isinstance(o, TaskOutcome)]
    failed = [o for o in outcomes if o.error is not None]
    if failed:  # the worst task's error (a usage error on one rank is one everywhere)
        return max(failed, key=lambda o: o.code), None
    return (min(outcomes, key=lambda o: o.rank) if outcomes else None), None


def run_tasks(tasks: list[JobTask], options: SlurmOptions, folder: Path,
              log: Callable[[str], None] = lambda s: None) -> list[JobReport]:
    """Submit every task as one job, wait for all, resubmit a job that ended without a result or
    with an internal error (at most ``options.max_retries`` times per task); one report per task,
    in order. A task that failed on its input (exit 2) is not resubmitted."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    executor = make_executor(options, folder)
    reports = [JobReport(t.label) for t in tasks]
    live: dict[int, tuple[Any, JobTask]] = {}

    def submit(i: int, task: JobTask) -> None:
        from submitit.core.utils import FailedJobError

        executor.update_parameters(name=f"i3dbench-{i}-{task.attempt}")
        try:
            job = executor.submit(task)
        except FailedJobError as err:  # sbatch's own message (a bad partition, option or time limit)
            raise UserError(f"sbatch refused the job of {task.label}: {str(err).strip()[:500]}; check --partition, "
                            "--gpus-per-node, --cpus-per-task, --time-limit and --slurm-option") from None
        if options.executor != "slurm":
            # A local job's result file is written before its process ends; submitit's 15 s grace
            # for a slow shared file system would only delay noticing a killed job.
            for j in [job, *getattr(job, "_sub_jobs", [])]:
                j._results_timeout_s = 1
        reports[i].job_ids.append(str(job.job_id))
        reports[i].log = str(job.paths.stderr)
        live[i] = (job, task)
        log(f"[launch] {task.label}: submitted job {job.job_id} (attempt {task.attempt} of {options.max_retries + 1})")

    try:
        for i, task in enumerate(tasks):
            submit(i, task)
        _write_jobs(folder, reports)
        _wait(live, reports, options, submit, log, save=lambda: _write_jobs(folder, reports))
    except BaseException:  # Ctrl-C, a refused submission: leave no job of this run behind
        for job, task in live.values():
            try:
                job.cancel(check=False)
                log(f"[launch] {task.label}: cancelled job {job.job_id}")
            except Exception:  # noqa: BLE001 - best effort; the job's own time limit ends it anyway
                pass
        raise
    finally:
        _write_jobs(folder, reports)
        try:  # submitit makes the "%j" template folder itself; only the per-job folders are used
            (folder / "%j").rmdir()
        except OSError:
            pass
    return reports


def _wait(live: dict, reports: list[JobReport], options: SlurmOptions, submit, log, save) -> None:
    """Poll the live jobs until none is left; collect, or resubmit (see :func:`run_tasks`)."""
    while live:
        finished = [i for i, (job, _) in live.items() if job.done()]
        for i in finished:
            job, task = live.pop(i)
            outcome, missing = _collect(job)
            rep = reports[i]
            if missing is None and outcome is not None and outcome.error is None:
                rep.attempts.append("ok")
                rep.value, rep.error, rep.code = outcome.value, None, EXIT_OK
                log(f"[launch] {task.label}: job {job.job_id} done")
                continue
            why = missing or outcome.error or "no outcome"
            code = outcome.code if outcome is not None and missing is None else EXIT_USAGE
            rep.attempts.append(why.strip().splitlines()[-1][:300])
            retry = code != EXIT_USAGE or missing is not None
            if retry and task.attempt <= options.max_retries:
                log(f"[launch] {task.label}: job {job.job_id}: {rep.attempts[-1]}; resubmitting (it resumes "
                    "from the run folder)")
                submit(i, task.resubmitted())
            else:
                rep.error, rep.code = why, code
                if missing is not None and task.attempt > options.max_retries:
                    rep.error = (f"{why}; gave up after {task.attempt} submissions (--max-retries "
                                 f"{options.max_retries}). Rerun the same command with the same --out to resume; "
                                 f"if the job ran out of time, raise --time-limit. Log: {job.paths.stderr}")
                log(f"[launch] {task.label}: job {job.job_id} FAILED: {rep.attempts[-1]}")
        if finished:
            save()
        if live:
            time.sleep(options.poll_s)


def _write_jobs(folder: Path, reports: list[JobReport]) -> None:
    """``<folder>/jobs.json``: every task's job ids and how each submission ended (provenance)."""
    rows = [{"task": r.label, "job_ids": r.job_ids, "attempts": r.attempts, "error": r.error, "code": r.code,
             "log": r.log} for r in reports]
    try:
        (folder / "jobs.json").write_text(json.dumps(rows, indent=1) + "\n")
    except OSError as err:  # provenance only: never worth failing the run
        print(f"warning: cannot write {folder / 'jobs.json'}: {err}", file=sys.stderr)


__all__ = [
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIME_LIMIT_MIN",
    "EXECUTORS",
    "LAUNCHERS",
    "JobReport",
    "JobTask",
    "SlurmOptions",
    "TaskOutcome",
    "check_options",
    "default_workers",
    "job_cpus",
    "make_executor",
    "parse_slurm_options",
    "run_tasks",
    "setup_distributed",
]
