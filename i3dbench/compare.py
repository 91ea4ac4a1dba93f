"""`i3dbench compare BASE [HEAD]`: two revisions measured together, in one session, paired.

Each revision runs in its own worker process (compare_worker.py, started with ``PYTHONPATH`` =
that revision's tree, materialised once by revisions.py): it must import and build (else exit 2
naming it), and it measures the revision's accuracy and memory. Per entry:

* **accuracy**: both revisions evaluate the same videos with the entry's own test protocol and
  their own checkpoint (the smoke entries: the synthetic val set; a Kinetics-400 entry: its layout
  in the user's copy, else the check is skipped, and says so);
* **memory**: the peak CPU tensor memory of one step, the same kind for both;
* **speed**: rounds, timed by one *speed host* process that holds both revisions (each from its
  own tree, with its own modules: compare_worker.py says why one process and how they are kept
  apart). In each round, a fresh forked child steps the two revisions' models alternately, each
  pair in a random order (RMIT: Abedi & Brecht 2017), for ``2 * block_s``; entries come in a random
  order per round; the round's sample is the ratio of the two revisions' median step times.
  After ``rounds`` rounds the checks are judged (verdicts.py); an entry whose speed is still
  UNKNOWN gets more rounds, ``add_rounds`` at a time, up to ``max_rounds``.

The verdicts (SAME / REGRESSED / IMPROVED / UNKNOWN, Holm over every check of the compare) go
to stdout as one table, and a compare record with both commits, every raw step time and every
per-round ratio goes to ``<run>/compare/compare-<UTC>.json``, so the report renders it and
``gate`` re-judges it. Exit 0 all SAME/IMPROVED (or regressions accepted by a ``Perf-Accepted:``
trailer between the two), 1 a regression, 2 UNKNOWN after the cap or a revision that cannot run.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from .errors import UserError
from .fileio import atomic_write
from .revisions import Revision, messages, repo_root, revision
from .runs import RunDir, open_run_dir
from .verdicts import (
    ALPHA,
    COMPARE_SCHEMA,
    MEMORY_METRIC,
    SPEED_METRIC,
    UNKNOWN,
    PairedCheck,
    accuracy_checks,
    apply_accepted,
    decide,
    exit_code,
    format_compare_table,
    parse_accepted,
    speed_statistics,
)
from .zoo import DEFAULT_ZOO, SMOKE_ZOO, ZooEntry, load_zoo

WORKER_FILE = Path(__file__).with_name("compare_worker.py")
CHECKS = ("speed", "accuracy", "memory")


class RevisionError(UserError):
    """A revision whose worker cannot import, build or measure (exit 2, naming the revision)."""


@dataclass(frozen=True)
class CompareSettings:
    rounds: int = 6  # rounds before the first verdict (6: the fewest with a 95% interval of a median)
    max_rounds: int = 30  # the cap: still UNKNOWN then is exit 2
    add_rounds: int = 4  # rounds added at a time to the entries still UNKNOWN
    block_s: float = 0.4  # seconds of one revision's block
    threads: int = 1  # torch threads of the timing process: 1 keeps a timing robust to one competing busy process
    min_block_iterations: int = 3
    checks: tuple = CHECKS
    seed: Optional[int] = None  # the random orders (None: fresh each compare)
    alpha: float = ALPHA

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.max_rounds < self.rounds or self.add_rounds < 1:
            raise UserError(f"rounds must be >= 1 and <= max rounds, got --rounds {self.rounds} "
                            f"--max-rounds {self.max_rounds}")
        if not self.block_s > 0 or self.min_block_iterations < 1:
            raise UserError(f"a block needs a positive time and >= 1 iteration, got {self.block_s} s")
        unknown = set(self.checks) - set(CHECKS)
        if unknown or not self.checks:
            raise UserError(f"--checks takes {', '.join(CHECKS)}, got {', '.join(sorted(unknown)) or 'nothing'}")


# --------------------------------------------------------------------------- worker processes


class WorkerProcess:
    """One process running compare_worker.py; its stderr goes to ``log``.

    Started here with its first request sent and not waited for: :meth:`settle` receives that
    answer (:meth:`check_first`), so that several processes start in parallel."""

    first_op = "ping"

    def __init__(self, name: str, log: Path, tree: Optional[str], cwd: Path):
        self.name, self.log = name, log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log_fh = open(log, "ab")  # noqa: SIM115 - kept open for the process's life, closed in close()
        env = dict(os.environ)
        env.pop("I3DBENCH_COMPARE_TREE", None)
        if tree:
            env["PYTHONPATH"] = tree + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
            env["I3DBENCH_COMPARE_TREE"] = tree
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen([sys.executable, "-u", str(WORKER_FILE)], cwd=str(cwd), env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log_fh, text=True)
        self.pending: Optional[str] = self.first_op
        self.send(self.first_op)

    def check_first(self, answer: dict) -> None:
        """Check the answer to the first request (a revision worker: that it imported its own tree)."""

    def settle(self) -> None:
        """Receive the answer to the request sent at start (blocking), once."""
        if self.pending is None:
            return
        op, self.pending = self.pending, None
        self.check_first(self.receive(op))

    def _tail(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""

    def send(self, op: str, **kw) -> None:
        try:
            self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the worker is gone: receive() says why

    def receive(self, op: str) -> dict:
        try:
            line = self.proc.stdout.readline()
        except OSError:
            line = ""
        if not line:
            code = self.proc.wait()
            raise RevisionError(f"{self.name}: its worker exited (code {code}) during {op}: {self._tail()} "
                                f"(whole log: {self.log})")
        answer = json.loads(line)
        if not answer.pop("ok"):
            raise RevisionError(f"{self.name}: {op} failed: {answer.get('error')} (log: {self.log})")
        return answer

    def request(self, op: str, **kw) -> dict:
        self.settle()
        self.send(op, **kw)
        return self.receive(op)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._log_fh.close()


class RevisionWorker(WorkerProcess):
    """The worker of one revision: ``PYTHONPATH`` = its tree; imports it, evaluates, profiles memory."""

    first_op = "hello"

    def __init__(self, rev: Revision, role: str, log: Path):
        self.rev, self.role = rev, role
        self.tree = str(rev.tree.resolve())
        super().__init__(f"{role} revision {rev.label} ({rev.short})", log, self.tree, rev.tree)

    def check_first(self, answer: dict) -> None:
        where = Path(answer["i3dbench"])
        if not where.is_relative_to(Path(self.tree)):
            raise RevisionError(f"{self.name}: its worker imported i3dbench from {where}, not from its tree "
                                f"{self.tree}")


@dataclass
class Session:
    """The processes of one compare: a worker per revision, and the speed host when speed is measured."""

    base: RevisionWorker
    head: RevisionWorker
    host: Optional[WorkerProcess]

    def close(self) -> None:
        for w in (self.base, self.head, self.host):
            if w is not None:
                w.close()


def start_session(base: Revision, head: Revision, log_dir: Path, speed: bool) -> Session:
    """Start the processes of a compare at once (each imports torch: seconds of CPU), then check each."""
    started: list[WorkerProcess] = []
    try:
        started.append(RevisionWorker(base, "base", log_dir / "base.log"))
        started.append(RevisionWorker(head, "head", log_dir / "head.log"))
        if speed:
            started.append(WorkerProcess("speed host", log_dir / "speed-host.log", None, log_dir))
        for w in started:
            w.settle()
    except BaseException:
        for w in started:
            w.close()
        raise
    return Session(started[0], started[1], started[2] if speed else None)


# --------------------------------------------------------------------------- what to measure


def manifest_of(name: str, zoo: Optional[str]) -> tuple[ZooEntry, str]:
    """The entry (as this code reads it: its tolerances) and the manifest path the revisions load it from:
    relative to the repository for the project's own manifests (each revision reads its own copy)."""
    paths = [Path(zoo)] if zoo else [DEFAULT_ZOO, SMOKE_ZOO]
    for p in paths:
        entries = load_zoo(p)
        if name in entries:
            p = p.resolve()
            project = DEFAULT_ZOO.parent.parent
            return entries[name], (str(p.relative_to(project)) if p.is_relative_to(project) else str(p))
    raise UserError(f"no entry {name!r} in {', '.join(map(str, paths))}: run `i3dbench zoo list` to see them")


def _zoo_in(rev: Revision, manifest: str) -> str:
    return manifest if Path(manifest).is_absolute() else str(rev.tree / manifest)


def accuracy_inputs(entry: ZooEntry) -> tuple[Optional[tuple[str, str]], str]:
    """((data_root, ann), "") for the entry's evaluation, or (None, why it is skipped): the smoke entries
    read the synthetic set; a Kinetics-400 entry its own layout in the user's copy (``I3DBENCH_K400``, or
    ``I3DBENCH_K400_ROOT``/``_ANN``)."""
    if entry.dataset == "synthetic":
        from .runner import smoke_data

        root, ann = smoke_data(entry)
        return (str(root), str(ann)), ""
    from .data.k400copy import inputs_for

    found, why = inputs_for(entry)
    if found is None:
        return None, why
    return (str(found[0]), str(found[1])), ""


# --------------------------------------------------------------------------- one compare


@dataclass
class CompareResult:
    base: Revision
    head: Revision
    settings: CompareSettings
    checks: list[PairedCheck]
    skipped: list[str] = field(default_factory=list)  # checks not run, with the reason
    problems: list[str] = field(default_factory=list)
    exit_code: int = 2
    record_path: Optional[Path] = None
    wall_s: float = 0.0
    started: str = ""

    @property
    def rounds_used(self) -> int:
        return max((c.rounds for c in self.checks if c.metric == SPEED_METRIC), default=0)


def measure_pair(session: Session, entries: list[str], zoo: Optional[str], settings: CompareSettings, work: Path,
                 progress: bool = True, skipped: Optional[list] = None) -> list[PairedCheck]:
    """Every check of ``settings.checks`` for ``entries``, measured by the session's processes (set up here)."""
    rng = random.Random(settings.seed)
    resolved = {n: manifest_of(n, zoo) for n in entries}
    workers = (session.base, session.head)

    def groups(rev: Revision) -> list[dict]:
        return [{"entries": [n for n in entries if resolved[n][1] == manifest], "zoo": _zoo_in(rev, manifest)}
                for manifest in sorted({m for _, m in resolved.values()})]

    checks: list[PairedCheck] = []
    skipped = skipped if skipped is not None else []
    say = (lambda msg: print(msg, file=sys.stderr, flush=True)) if progress else (lambda msg: None)
    if "accuracy" in settings.checks:
        for n in entries:
            entry, manifest = resolved[n]
            inputs, why = accuracy_inputs(entry)
            if inputs is None:
                skipped.append(f"{n} accuracy: {why}")
                continue
            say(f"compare: evaluating {n} in both revisions")
            answers = {}
            for w in workers:
                answers[w.role] = w.request("eval", entry=n, data_root=inputs[0], ann=inputs[1], checkpoint=None,
                                            out=str(work / w.role), zoo=_zoo_in(w.rev, manifest))
            checks += accuracy_checks(n, answers["base"]["per_video"], answers["head"]["per_video"],
                                      {"top1": entry.tolerance.top1, "top5": entry.tolerance.top5})
    if "memory" in settings.checks:
        for w in workers:
            w.request("setup_many", groups=groups(w.rev), threads=settings.threads)
        for n in entries:
            entry = resolved[n][0]
            c = PairedCheck(entry=n, metric=MEMORY_METRIC, tolerance=entry.tolerance.memory_rel)
            for w in workers:
                peak = w.request("memory", entry=n)["peak_bytes"]
                setattr(c, w.role, None if peak is None else round(peak / 2**20, 3))
            checks.append(c)
    if "speed" in settings.checks:
        say("compare: building both revisions' models in the speed host")
        session.host.request("load_pair", threads=settings.threads, seed=rng.randrange(2**32),
                             sides={w.role: {"tree": w.tree, "label": w.name, "groups": groups(w.rev)} for w in workers})
        speed = {n: PairedCheck(entry=n, metric=SPEED_METRIC, tolerance=resolved[n][0].tolerance.compare_speed)
                 for n in entries}
        checks += speed.values()
        _speed_rounds(session.host, speed, checks, settings, rng, say, progress)
    decide(checks, settings.alpha)
    return checks


def _speed_rounds(host: WorkerProcess, speed: dict, checks: list, settings: CompareSettings, rng, say,
                  progress: bool) -> None:
    from tqdm import tqdm

    pending = list(speed)
    done = 0
    bar = tqdm(total=settings.rounds, desc="compare: speed rounds", unit="round", leave=False, file=sys.stderr,
               disable=not progress)
    while pending and done < settings.max_rounds:
        batch = settings.rounds if done == 0 else min(settings.add_rounds, settings.max_rounds - done)
        if done:
            bar.total += batch
            bar.refresh()
            say(f"compare: {len(pending)} speed check(s) UNKNOWN after {done} rounds: {batch} more "
                f"(cap {settings.max_rounds})")
        for _ in range(batch):
            for n in rng.sample(pending, len(pending)):
                answer = host.request("pair_round", entry=n, seconds=settings.block_s,
                                      min_iterations=settings.min_block_iterations, seed=rng.randrange(2**32))
                times = answer["times_s"]
                c = speed[n]
                c.round_processes.append([host.proc.pid, answer["pid"]])
                c.blocks["base"].append(times["base"])
                c.blocks["head"].append(times["head"])
                c.round_ratios.append(statistics.median(times["head"]) / statistics.median(times["base"]))
            done += 1
            bar.update(1)
        for c in speed.values():
            speed_statistics(c)
            _speed_values(c)
        decide(checks, settings.alpha)
        pending = [n for n in pending if speed[n].verdict == UNKNOWN]
    bar.close()


def _speed_values(c: PairedCheck) -> None:
    """video/s of each revision over all its blocks (one iteration = one video)."""
    for role in ("base", "head"):
        times = [t for block in c.blocks[role] for t in block]
        setattr(c, role, 1.0 / statistics.median(times) if times else None)


def compare(base: str, head: Optional[str] = None, *, only: list[str], zoo: Optional[str] = None,
            settings: CompareSettings = CompareSettings(), out=None, repo: Optional[Path] = None,
            progress: bool = True) -> CompareResult:
    """Measure ``base`` and ``head`` (None: the working tree) side by side; see the module docstring."""
    if not only:
        raise UserError("name the entries to compare with --only (e.g. --only smoke_i3d_tiny_video)")
    t0 = time.perf_counter()
    started = datetime.now(timezone.utc)
    repo = repo_root(repo)
    base_rev, head_rev = revision(repo, base), revision(repo, head)
    for n in only:
        manifest_of(n, zoo)  # an unknown entry is a usage error before anything starts
    run = out if isinstance(out, RunDir) else open_run_dir(out)
    stamp = started.strftime("%Y%m%dT%H%M%S%fZ")
    work = run.path / "compare" / f"work-{stamp}"
    result = CompareResult(base_rev, head_rev, settings, [], started=started.isoformat(timespec="microseconds"))
    session = start_session(base_rev, head_rev, work, "speed" in settings.checks)
    try:
        result.checks = measure_pair(session, list(only), zoo, settings, work, progress, result.skipped)
    finally:
        session.close()
    accepted = parse_accepted(messages(repo, base_rev.commit, head_rev.commit)) if base_rev.commit else []
    apply_accepted(result.checks, accepted)
    result.exit_code = exit_code(result.checks, result.problems)
    result.wall_s = time.perf_counter() - t0
    result.record_path = write_compare_record(result, run.path / "compare" / f"compare-{stamp}.json")
    return result


# --------------------------------------------------------------------------- record and table


def compare_record(result: CompareResult) -> dict:
    checks = []
    for c in result.checks:
        d = asdict(c)
        d["change"] = c.change
        d["allowed"] = c.allowed
        checks.append(d)
    return {"schema": COMPARE_SCHEMA, "kind": "compare", "time": result.started, "base": result.base.as_dict(),
            "head": result.head.as_dict(), "settings": asdict(result.settings), "exit_code": result.exit_code,
            "wall_s": result.wall_s, "skipped": result.skipped, "problems": result.problems, "checks": checks}


def write_compare_record(result: CompareResult, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(compare_record(result), indent=1, sort_keys=True, allow_nan=False) + "\n")
    return path


def describe(result: CompareResult) -> str:
    b, h = result.base, result.head
    lines = [f"base: {b.label} = {b.short} {b.subject!r}",
             f"head: {h.label} = {h.short} {h.subject!r}" + (" (uncommitted changes)" if h.dirty else "")]
    if result.checks:
        lines.append(format_compare_table(result.checks))
    lines += [f"skipped: {s}" for s in result.skipped]
    lines += [f"cannot judge: {p}" for p in result.problems]
    for c in result.checks:
        if c.accepted_by:
            lines.append(f"accepted: {c.entry} {c.metric} REGRESSED ({c.change}), accepted by commit {c.accepted_by}")
    lines.append(f"record: {result.record_path} ({result.wall_s:.0f} s, {result.rounds_used} speed rounds)")
    lines.append({0: "compare: SAME or better everywhere (exit 0)", 1: "compare: REGRESSED (exit 1)",
                  2: "compare: UNKNOWN after the cap or not judged (exit 2): see above"}[result.exit_code])
    return "\n".join(lines)


__all__ = ["start_session", "Session", "CHECKS", "CompareResult", "CompareSettings", "RevisionError", "compare", "describe",
           "measure_pair"]
