"""`i3dbench bisect GOOD BAD --only ENTRY [--metric ...]`: the first-parent commit that moved a number.

A binary search over the first-parent commits after GOOD up to BAD. Every step is a compare of
a commit against **GOOD** (not against its parent): the search keeps "lo is the same as GOOD,
hi is worse than GOOD", which holds for a change that lands in one commit and for one that
builds up over several (against its parent, each commit of a gradual drift reads SAME and the
search would lose it). Each step starts fresh processes for both GOOD and the midpoint, as
`compare` does (its speed host times both in one process, each round in a fresh child). The first step checks BAD itself (a BAD that is not REGRESSED has no
culprit to find). A step still UNKNOWN after ``max_rounds`` is measured again with twice as
many rounds; UNKNOWN then, the search stops: not decidable (exit 2), with the table of steps.
Exit 0 found (the culprit printed with its subject), 2 not decidable.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

from .compare import CompareSettings, measure_pair, start_session
from .errors import UserError
from .revisions import (
    Revision,
    first_parent_range,
    materialise,
    repo_root,
    resolve_commit,
    subject,
)
from .runs import open_run_dir
from .verdicts import IMPROVED, REGRESSED, SAME, UNKNOWN, PairedCheck

METRICS = {"video_per_s": "speed", "top1": "accuracy", "top5": "accuracy", "memory": "memory",
           "inference_memory_mb": "memory"}


@dataclass
class Step:
    commit: str
    subject: str
    position: int  # 1-based among the candidate commits
    check: PairedCheck
    rounds_setting: int

    @property
    def verdict(self) -> str:
        return self.check.verdict


@dataclass
class BisectResult:
    good: str
    bad: str
    candidates: list[str]
    steps: list[Step] = field(default_factory=list)
    culprit: Optional[str] = None
    culprit_subject: str = ""
    exit_code: int = 2
    why: str = ""
    wall_s: float = 0.0


def _metric_check(checks: list[PairedCheck], metric: str) -> PairedCheck:
    wanted = "inference_memory_mb" if metric == "memory" else metric
    for c in checks:
        if c.metric == wanted:
            return c
    raise UserError(f"no {metric} check was measured (is the entry's data available for an accuracy bisect?)")


def bisect(good: str, bad: str, *, entry: str, metric: str = "video_per_s", zoo: Optional[str] = None,
           settings: CompareSettings = CompareSettings(), out=None, repo: Optional[Path] = None,
           progress: bool = True) -> BisectResult:
    if metric not in METRICS:
        raise UserError(f"--metric must be one of video_per_s, top1, top5, memory; got {metric!r}")
    t0 = time.perf_counter()
    repo = repo_root(repo)
    good_sha, bad_sha = resolve_commit(repo, good), resolve_commit(repo, bad)
    candidates = first_parent_range(repo, good_sha, bad_sha)
    result = BisectResult(good_sha, bad_sha, candidates)
    if not candidates:
        raise UserError(f"no commit between {good} and {bad}: nothing to bisect")
    settings = replace(settings, checks=(METRICS[metric],))
    run = open_run_dir(out)
    work = run.path / "bisect" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    say = (lambda msg: print(msg, file=sys.stderr, flush=True)) if progress else (lambda msg: None)
    good_rev = Revision(good, good_sha, False, None, subject(repo, good_sha), materialise(repo, good_sha))
    try:
        def judge(pos: int) -> Step:
            sha = candidates[pos - 1]
            rev = Revision(sha[:10], sha, False, None, subject(repo, sha), materialise(repo, sha))
            say(f"bisect: step {len(result.steps) + 1}: commit {pos}/{len(candidates)} {sha[:10]} {rev.subject!r}"
                f" vs GOOD {good_sha[:10]}")
            step = None
            for s in (settings, replace(settings, rounds=settings.max_rounds, max_rounds=2 * settings.max_rounds)):
                session = start_session(good_rev, rev, work / sha[:10], "speed" in s.checks)
                try:
                    checks = measure_pair(session, [entry], zoo, s, work / sha[:10], progress=progress)
                finally:
                    session.close()
                step = Step(sha, rev.subject, pos, _metric_check(checks, metric), s.max_rounds)
                result.steps.append(step)
                say(f"bisect:   {step.verdict} {step.check.change} ({step.check.why})")
                if step.verdict != UNKNOWN:
                    break
            return step

        first = judge(len(candidates))
        if first.verdict != REGRESSED:
            result.why = (f"BAD ({bad_sha[:10]}) is {first.verdict} against GOOD, not REGRESSED: nothing to find"
                          if first.verdict in (SAME, IMPROVED) else
                          f"BAD against GOOD stays UNKNOWN after {first.rounds_setting} rounds: not decidable")
            return result
        lo, hi = 0, len(candidates)  # candidates[:lo] same as GOOD (0: GOOD itself); candidates[hi-1] regressed
        while hi - lo > 1:
            mid = (lo + hi) // 2
            step = judge(mid)
            if step.verdict == REGRESSED:
                hi = mid
            elif step.verdict in (SAME, IMPROVED):
                lo = mid
            else:
                result.why = (f"commit {step.commit[:10]} stays UNKNOWN against GOOD after {step.rounds_setting} "
                              "rounds: not decidable (measure on a quieter machine or raise --max-rounds)")
                return result
        result.culprit = candidates[hi - 1]
        result.culprit_subject = subject(repo, result.culprit)
        result.exit_code = 0
        result.why = f"first REGRESSED commit after {lo} SAME one(s)"
        return result
    finally:
        result.wall_s = time.perf_counter() - t0


def describe(result: BisectResult) -> str:
    from tabulate import tabulate

    rows = [[i + 1, f"{s.position}/{len(result.candidates)}", s.commit[:10], s.subject[:60], s.check.change,
             s.check.rounds if s.check.metric == "video_per_s" else "—", s.verdict] for i, s in enumerate(result.steps)]
    lines = [tabulate(rows, headers=["step", "commit #", "commit", "subject", "vs GOOD", "rounds", "verdict"],
                      tablefmt="github", disable_numparse=True)]
    if result.culprit:
        lines.append(f"bisect: culprit {result.culprit} {result.culprit_subject!r} ({len(result.steps)} compares, "
                     f"{result.wall_s:.0f} s)")
    else:
        lines.append(f"bisect: no culprit: {result.why} (exit 2)")
    return "\n".join(lines)


__all__ = ["BisectResult", "Step", "bisect", "describe"]
