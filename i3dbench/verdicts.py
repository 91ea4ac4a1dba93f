"""Three-way verdicts of a paired comparison of two revisions: SAME, REGRESSED, IMPROVED or UNKNOWN.

Pure functions of what was measured (no measuring here): ``compare`` calls them while it adds
rounds, and ``gate`` calls them again on a saved compare record, so a verdict can always be
re-judged from the raw numbers it stands on.

* **speed**: one sample per round, the ratio of the two revisions' block medians (head time
  over base time; > 1 is slower), both blocks measured back to back under the same machine
  state, so the ratio cancels the machine's drift between rounds. The interval is the
  distribution-free order-statistic interval of the median ratio and the test is the exact sign
  test on the log-ratios — the same statistic, the test being the interval inverted. Why these
  and not a Wilcoxon signed-rank test or a bootstrap: the per-round ratios of a shared machine
  are skewed by bursts of other work (one round can read x1.4 while the rest read x1.00), and
  the signed-rank test assumes a symmetric distribution, a bootstrap interval of the median
  is not exact for the 6-20 rounds we run; the sign test assumes neither, is exact at every
  ``n`` and is not moved by how far out a burst lands.
  REGRESSED: the whole interval lies beyond the tolerance (``lo > limit``) **and** the
  one-sided sign test is significant after Holm's correction over every check of the compare —
  however wide the spread: noise never hides an unambiguous change. IMPROVED: symmetric.
  SAME: the whole interval lies within ``[1/limit, limit]``. Anything else is UNKNOWN: more
  rounds can decide it.
* **accuracy** (top-1, top-5): both revisions evaluated the same videos. Identical per-video
  predictions are SAME without a test. Otherwise the exact one-sided McNemar test on per-video
  correctness (Holm-corrected with the rest) and Newcombe's paired interval of the difference:
  REGRESSED when the drop is significant, IMPROVED when the gain is, SAME when the interval lies
  within ± the entry's tolerance, else UNKNOWN (more videos can decide it; more rounds cannot).
* **memory**: the same kind measured for both: REGRESSED above ``base * (1 + memory_rel) +
  slack``, IMPROVED below ``base / (1 + memory_rel) - slack``, else SAME.

A REGRESSED check may be *accepted*: a commit between the two revisions whose message carries
``Perf-Accepted: ENTRY METRIC`` (shell patterns allowed) declares the change deliberate; the
check stays REGRESSED in every table, names that commit, and no longer fails the compare.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .errors import UserError

SAME, REGRESSED, IMPROVED, UNKNOWN = "SAME", "REGRESSED", "IMPROVED", "UNKNOWN"
VERDICTS = (SAME, REGRESSED, IMPROVED, UNKNOWN)
ALPHA = 0.05  # family-wise error rate of one compare (Holm)
# On top of the relative tolerance: compare measures the exact tensor bytes of the same step of both
# revisions in one session (the gate's 1 MB allows for allocators and other sessions), so this only
# covers the rounding of the two figures to MB.
MEMORY_SLACK_MB = 0.1
SPEED_METRIC = "video_per_s"
ACCURACY_METRICS = ("top1", "top5")
MEMORY_METRIC = "inference_memory_mb"
ACCEPT_TRAILER = re.compile(r"^Perf-Accepted:\s*(\S+)(?:\s+(\S+))?\s*$", re.MULTILINE)


@dataclass
class PairedCheck:
    """One check of a compare, with the raw numbers its verdict stands on."""

    entry: str
    metric: str  # video_per_s | top1 | top5 | inference_memory_mb
    tolerance: float  # speed: time-ratio limit (> 1); accuracy: points; memory: relative
    base: Optional[float] = None  # video/s, percent or MB
    head: Optional[float] = None
    ratio: Optional[float] = None  # speed: median head/base time; memory: head/base
    interval: Optional[list] = None  # speed: of the ratio; accuracy: of the difference (points)
    rounds: int = 0  # speed: paired rounds measured
    p: Optional[float] = None  # one-sided p that head is worse
    p_better: Optional[float] = None  # one-sided p that head is better
    p_holm: Optional[float] = None
    p_better_holm: Optional[float] = None
    verdict: str = UNKNOWN
    why: str = ""
    accepted_by: Optional[str] = None  # "abc1234 subject" of the commit that accepted a regression
    round_ratios: list = field(default_factory=list)  # speed
    blocks: dict = field(default_factory=lambda: {"base": [], "head": []})  # speed: every block's times
    round_processes: list = field(default_factory=list)  # speed: [speed host, the round's forked child] pids
    per_video: dict = field(default_factory=dict)  # accuracy: {"base": "1101-", "head": "..."}
    identical: Optional[bool] = None  # accuracy: identical per-video predictions

    @property
    def change(self) -> str:
        """The table's "ratio [interval]" cell."""
        if self.metric == SPEED_METRIC and self.ratio is not None:
            iv = "" if not self.interval else f" [{self.interval[0]:.3f}, {self.interval[1]:.3f}]"
            return f"time x{self.ratio:.3f}{iv}"
        if self.metric in ACCURACY_METRICS and self.base is not None and self.head is not None:
            iv = "" if not self.interval else f" [{self.interval[0]:+.2f}, {self.interval[1]:+.2f}]"
            return f"{self.head - self.base:+.2f} pts{iv}"
        if self.metric == MEMORY_METRIC and self.ratio is not None:
            return f"x{self.ratio:.3f}"
        return "—"

    @property
    def allowed(self) -> str:
        if self.metric == SPEED_METRIC:
            return f"time within x{1 / self.tolerance:.3f}..x{self.tolerance:.3f}"
        if self.metric in ACCURACY_METRICS:
            return f"±{self.tolerance:g} pts"
        return f"+{100 * self.tolerance:g}% + {MEMORY_SLACK_MB:g} MB"

    @property
    def counts_as_regression(self) -> bool:
        return self.verdict == REGRESSED and not self.accepted_by


# --------------------------------------------------------------------------- speed


def speed_statistics(check: PairedCheck) -> None:
    """Fill ratio, interval, p and p_better of a speed check from its per-round ratios."""
    from .stats import median_interval, sign_test

    r = [float(v) for v in check.round_ratios]
    check.rounds = len(r)
    if not r:
        check.ratio = check.interval = check.p = check.p_better = None
        return
    if not all(math.isfinite(v) and v > 0 for v in r):
        raise ValueError(f"{check.entry}: per-round ratios must be positive finite numbers")
    logs = [math.log(v) for v in r]
    check.ratio = math.exp(statistics.median(logs))
    iv = median_interval(r)
    check.interval = None if iv is None else [iv[0], iv[1]]
    st = sign_test(logs)
    check.p, check.p_better = st.p_greater, st.p_less


def decide_speed(check: PairedCheck, alpha: float = ALPHA) -> None:
    limit = check.tolerance
    if check.interval is None:
        check.verdict = UNKNOWN
        check.why = f"{check.rounds} rounds: too few for a 95% interval of the median (at least 6)"
        return
    lo, hi = check.interval
    p, pb = _adjusted(check)
    if lo > limit and p < alpha:
        check.verdict, check.why = REGRESSED, f"slower: the whole interval is above x{limit:.3f}, sign test p={p:.3g}"
    elif hi < 1 / limit and pb < alpha:
        check.verdict, check.why = IMPROVED, f"faster: the whole interval is below x{1 / limit:.3f}, sign test p={pb:.3g}"
    elif 1 / limit <= lo and hi <= limit:
        check.verdict, check.why = SAME, f"the whole interval is within x{1 / limit:.3f}..x{limit:.3f}"
    elif lo > limit or hi < 1 / limit:
        check.verdict = UNKNOWN
        check.why = f"beyond the tolerance but the sign test is not significant after Holm (p={min(p, pb):.3g})"
    else:
        check.verdict = UNKNOWN
        check.why = f"the interval [{lo:.3f}, {hi:.3f}] reaches across the tolerance x{limit:.3f}: more rounds"


# --------------------------------------------------------------------------- accuracy


def _correct(per_video: list, k: int) -> list:
    """1/0 per video for top-k correctness, None where a video was not evaluated."""
    return [None if v is None else int(int(v["label"]) in [int(t) for t in v["top5"][:k]]) for v in per_video]


def accuracy_checks(entry: str, base_pv: list, head_pv: list, tolerances: dict) -> list[PairedCheck]:
    """top-1 and top-5 checks from the two revisions' per-video predictions
    (``{"label", "top5"}`` per listed video, None for a video that failed)."""
    out = []
    for metric in ACCURACY_METRICS:
        k = int(metric[3:])
        c = PairedCheck(entry=entry, metric=metric, tolerance=float(tolerances[metric]))
        if len(base_pv) != len(head_pv):
            c.why = f"the revisions evaluated lists of different lengths ({len(base_pv)} vs {len(head_pv)})"
            out.append(c)
            continue
        a, b = _correct(base_pv, k), _correct(head_pv, k)
        c.per_video = {"base": "".join("-" if v is None else str(v) for v in a),
                       "head": "".join("-" if v is None else str(v) for v in b)}
        c.identical = all(x is not None and y is not None and x["top5"][:k] == y["top5"][:k]
                          for x, y in zip(base_pv, head_pv))
        out.append(c)
        accuracy_statistics(c)
    return out


def accuracy_statistics(check: PairedCheck) -> None:
    """Fill base/head accuracy, interval and the McNemar p-values from the per-video strings."""
    from .stats import mcnemar_exact, paired_difference_interval

    a_s, b_s = check.per_video.get("base", ""), check.per_video.get("head", "")
    check.p = check.p_better = None
    if not a_s or "-" in a_s or "-" in b_s or len(a_s) != len(b_s):
        return
    a, b = [int(ch) for ch in a_s], [int(ch) for ch in b_s]
    check.base, check.head = 100.0 * sum(a) / len(a), 100.0 * sum(b) / len(b)
    lo, hi = paired_difference_interval(a, b)
    check.interval = [100.0 * lo, 100.0 * hi]
    if check.identical and a_s == b_s:
        return  # identical predictions: SAME without a test (and no place in Holm's family)
    check.identical = False
    check.p = mcnemar_exact(a, b).p_b_worse
    check.p_better = mcnemar_exact(b, a).p_b_worse


def decide_accuracy(check: PairedCheck, alpha: float = ALPHA) -> None:
    a_s, b_s = check.per_video.get("base", ""), check.per_video.get("head", "")
    if check.identical and a_s == b_s and "-" not in a_s:
        check.verdict, check.why = SAME, "identical per-video predictions"
        return
    if check.p is None:
        check.verdict = UNKNOWN
        missing = sum(ch == "-" for ch in a_s) + sum(ch == "-" for ch in b_s)
        check.why = check.why or (f"{missing} video(s) not evaluated by one of the revisions: no paired test on "
                                  "the whole list" if missing else "no per-video correctness")
        return
    p, pb = _adjusted(check)
    lo, hi = check.interval
    tol = check.tolerance
    drop = check.head < check.base
    if p < alpha and drop:
        check.verdict, check.why = REGRESSED, f"McNemar p={p:.3g} (Holm): head is wrong more often"
    elif pb < alpha and not drop:
        check.verdict, check.why = IMPROVED, f"McNemar p={pb:.3g} (Holm): head is right more often"
    elif -tol <= lo and hi <= tol:
        check.verdict, check.why = SAME, f"predictions differ, the paired interval is within ±{tol:g} pts"
    else:
        check.verdict = UNKNOWN
        check.why = (f"predictions differ and the paired interval [{lo:+.2f}, {hi:+.2f}] pts reaches beyond "
                     f"±{tol:g}: evaluate more videos")


# --------------------------------------------------------------------------- memory


def decide_memory(check: PairedCheck) -> None:
    if check.base is None or check.head is None or not (check.base > 0 and check.head > 0):
        check.verdict = UNKNOWN
        check.why = check.why or "memory not measured for both revisions"
        return
    rel = check.tolerance
    check.ratio = check.head / check.base
    if check.head > check.base * (1 + rel) + MEMORY_SLACK_MB:
        check.verdict, check.why = REGRESSED, f"above {check.base * (1 + rel) + MEMORY_SLACK_MB:.1f} MB"
    elif check.base > check.head * (1 + rel) + MEMORY_SLACK_MB:
        check.verdict, check.why = IMPROVED, f"below {(check.base - MEMORY_SLACK_MB) / (1 + rel):.1f} MB"
    else:
        check.verdict, check.why = SAME, f"within +-{100 * rel:g}% + {MEMORY_SLACK_MB:g} MB"


def fmt_value(metric: str, v: Optional[float]) -> str:
    if v is None:
        return "—"
    if metric == SPEED_METRIC:
        return f"{v:.4g} video/s"
    if metric in ACCURACY_METRICS:
        return f"{v:.2f} %"
    return f"{v:.1f} MB"


def format_compare_table(checks: list[PairedCheck]) -> str:
    from tabulate import tabulate

    rows = []
    for c in checks:
        verdict = c.verdict + (f" (accepted by {c.accepted_by})" if c.accepted_by else "")
        rows.append([f"{c.entry} {c.metric}", fmt_value(c.metric, c.base), fmt_value(c.metric, c.head), c.change,
                     c.rounds if c.metric == SPEED_METRIC else "—", verdict, c.why])
    return tabulate(rows, headers=["check", "base", "head", "change [95% interval]", "rounds", "verdict", "why"],
                    tablefmt="github", disable_numparse=True)


# --------------------------------------------------------------------------- saved compares


COMPARE_SCHEMA = 1  # of the compare records (``<run>/compare/compare-<UTC>.json``)


def load_compare_record(path: str | os.PathLike) -> tuple[dict, list[PairedCheck]]:
    """A saved compare record and its checks (RecordError-like UserError naming the file when malformed)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: not a readable compare record ({err})") from None
    if not isinstance(doc, dict) or doc.get("kind") != "compare" or doc.get("schema") != COMPARE_SCHEMA:
        raise UserError(f"{path}: not a compare record of schema {COMPARE_SCHEMA}")
    fields = set(PairedCheck.__dataclass_fields__)
    try:
        checks = [PairedCheck(**{k: v for k, v in c.items() if k in fields}) for c in doc["checks"]]
    except (KeyError, TypeError) as err:
        raise UserError(f"{path}: field 'checks' is malformed ({err})") from None
    return doc, checks



def compare_records(run_dir) -> list[Path]:
    """The compare records of a run folder (``<run>/compare/compare-*.json``), oldest first."""
    folder = Path(run_dir) / "compare"
    return sorted(folder.glob("compare-*.json")) if folder.is_dir() else []


# --------------------------------------------------------------------------- all checks


def _adjusted(check: PairedCheck) -> tuple[float, float]:
    p = check.p_holm if check.p_holm is not None else (1.0 if check.p is None else check.p)
    pb = check.p_better_holm if check.p_better_holm is not None else (1.0 if check.p_better is None else check.p_better)
    return p, pb


def holm_adjust(checks: list[PairedCheck]) -> None:
    """Holm over every tested check of one compare (each direction a family of its own)."""
    from .stats import holm

    tested = [c for c in checks if c.p is not None]
    for c in checks:
        c.p_holm = c.p_better_holm = None
    if tested:
        for c, p, pb in zip(tested, holm([c.p for c in tested]), holm([c.p_better for c in tested])):
            c.p_holm, c.p_better_holm = float(p), float(pb)


def decide(checks: list[PairedCheck], alpha: float = ALPHA) -> None:
    """Holm-adjust, then set every check's verdict (speed statistics must be filled first)."""
    holm_adjust(checks)
    for c in checks:
        if c.metric == SPEED_METRIC:
            decide_speed(c, alpha)
        elif c.metric in ACCURACY_METRICS:
            decide_accuracy(c, alpha)
        else:
            decide_memory(c)


def rejudge(checks: list[PairedCheck], alpha: float = ALPHA) -> None:
    """Recompute every statistic and verdict from the raw numbers (a saved compare record)."""
    for c in checks:
        if c.metric == SPEED_METRIC:
            speed_statistics(c)
        elif c.metric in ACCURACY_METRICS:
            accuracy_statistics(c)
    decide(checks, alpha)


def parse_accepted(messages: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """``(entry pattern, metric pattern, "sha subject")`` for every ``Perf-Accepted:`` trailer in
    ``(sha, message)`` pairs; a trailer without a metric accepts every metric of the entry."""
    out = []
    for sha, message in messages:
        subject = message.strip().splitlines()[0] if message.strip() else ""
        for m in ACCEPT_TRAILER.finditer(message):
            out.append((m.group(1), m.group(2) or "*", f"{sha[:10]} {subject}"))
    return out


def apply_accepted(checks: list[PairedCheck], accepted: list[tuple[str, str, str]]) -> None:
    for c in checks:
        c.accepted_by = None
        if c.verdict != REGRESSED:
            continue
        for entry_pat, metric_pat, by in accepted:
            if fnmatch.fnmatchcase(c.entry, entry_pat) and fnmatch.fnmatchcase(c.metric, metric_pat):
                c.accepted_by = by
                break


def exit_code(checks: list[PairedCheck], problems: list[str] = ()) -> int:
    """1 any (unaccepted) regression; 2 anything UNKNOWN, a problem, or nothing checked; else 0."""
    if any(c.counts_as_regression for c in checks):
        return 1
    if problems or not checks or any(c.verdict == UNKNOWN for c in checks):
        return 2
    return 0


__all__ = ["ALPHA", "COMPARE_SCHEMA", "compare_records", "load_compare_record", "IMPROVED", "REGRESSED", "SAME", "UNKNOWN", "VERDICTS", "PairedCheck", "accuracy_checks",
           "apply_accepted", "decide", "exit_code", "format_compare_table", "parse_accepted", "rejudge", "speed_statistics"]
