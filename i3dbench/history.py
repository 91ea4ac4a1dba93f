"""History: every entry x metric x comparison key as a series over runs, and the steps in it.

The points are records of run folders (default: ``results/`` and every run folder under the runs
root), one per record, ordered by record time and labelled by the commit that measured it
(``conditions.code.commit``). A record copied into several folders (``publish`` copies a run's
records into ``results/``) is one point.

Steps: between **consecutive** points of one series, the gate's own paired tests decide
(gate.py: exact McNemar on per-video correctness for accuracy, the one-sided Mann-Whitney test on
the raw times plus the entry's tolerance for speed, the tolerance for memory), each pair judged as
a gate run of its own (Holm over that pair's tests). A point the gate calls REGRESSED against the
point before it is marked with both commits: the page answers "which commit moved it".

Series and points are plain data; render_markdown.py, render_html.py and the CSV writer format them.
Speed points carry the distribution-free 95% interval of the median rate (order statistics of the
per-video times), accuracy points the record's exact interval; memory points have none. Sweep
records (their own table) and incomplete evaluations (they stand for no list) are left out.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .records import comparison_key, load_records, record_time, unique_records
from .zoo import ZooEntry

METRICS = {
    "eval": ("top1", "top5"),
    "bench": ("video_per_s", "inference_memory_mb", "train_memory_mb"),
}
UNITS = {"top1": "top-1 %", "top5": "top-5 %", "video_per_s": "video/s", "inference_memory_mb": "inference MiB",
         "train_memory_mb": "training MiB"}
HIGHER_IS_BETTER = {"top1": True, "top5": True, "video_per_s": True, "inference_memory_mb": False,
                    "train_memory_mb": False}


@dataclass
class Step:
    """The gate's verdict on a point against the point before it."""

    status: str  # gate's: "ok", "REGRESSED", "improved", "CANNOT JUDGE"
    base_commit: str
    head_commit: str
    change: str = ""
    test: str = ""
    why: str = ""


@dataclass
class Point:
    time: str
    commit: str  # short sha, "+dirty" when the tree was dirty; "—" when the record names none
    value: float
    low: Optional[float]
    high: Optional[float]
    record: str  # file name
    path: str  # where the record was read
    step: Optional[Step] = None  # None for the first point


@dataclass
class Series:
    entry: str
    metric: str
    key: tuple  # records.comparison_key
    published: Optional[float]  # drawn as a line (accuracy only: published speed/memory are GPU figures)
    scale: str  # "smoke" | "full-size"
    points: list[Point] = field(default_factory=list)

    @property
    def label(self) -> str:
        _, _, device, protocol, precision, kinds, method = self.key
        return " · ".join(x for x in (device, protocol, precision, kinds if kinds != "-" else "", method) if x)

    @property
    def regressions(self) -> list[Point]:
        return [p for p in self.points if p.step is not None and p.step.status == "REGRESSED"]


@dataclass
class History:
    series: list[Series]
    sources: list[str]  # the folders read
    unreadable: list[str] = field(default_factory=list)  # "<folder>: <why>" of folders left out

    @property
    def regressions(self) -> list[tuple[Series, Point]]:
        return [(s, p) for s in self.series for p in s.regressions]


def default_sources(results: str | os.PathLike = "results", runs: Optional[str | os.PathLike] = None) -> list[Path]:
    """``results/`` and every run folder under the runs root that holds a records/ folder."""
    from .runs import runs_root

    root = Path(runs) if runs is not None else runs_root()
    out = [Path(results)] if (Path(results) / "records").is_dir() else []
    if root.is_dir():
        out += sorted(p for p in root.iterdir() if (p / "records").is_dir())
    return out


def load_history(sources: list[Path], unreadable: Optional[list[str]] = None) -> list[dict]:
    """The records of every source folder (a run folder, records folder, or a folder of run folders),
    each record once (by file name and time). A folder whose records cannot be read (a bad record
    file, a missing folder) is left out whole, and said in ``unreadable``: one broken run under
    runs/ must not keep the others' history from being drawn."""
    from .errors import UserError

    folders: list[Path] = []
    for src in sources:
        src = Path(src)
        if (src / "records").is_dir() or any(src.glob("*.json")):
            folders.append(src)
        elif src.is_dir():
            folders += sorted(p for p in src.iterdir() if (p / "records").is_dir())
    loaded = []
    for src in sources:
        if not Path(src).is_dir() and unreadable is not None:
            unreadable.append(f"{src}: no such folder")
    for folder in folders:
        try:
            recs = load_records(folder)
        except UserError as err:
            if unreadable is None:
                raise
            unreadable.append(str(err))
            continue
        loaded += recs
    return unique_records(loaded)


def _commit(rec: dict) -> str:
    code = rec["conditions"].get("code") or {}
    commit = code.get("commit")
    return (str(commit)[:8] + ("+dirty" if code.get("dirty") else "")) if commit else "—"


def _median_rate_interval(rec: dict) -> tuple[Optional[float], Optional[float]]:
    """Distribution-free 95% interval of the median video/s: order statistics k and n-k+1 of the
    per-video times bracket their median with >= 95% (binomial(n, 1/2))."""
    times, vpi, vpv = rec["extra"].get("times_s"), rec["method"].get("views_per_iteration"), \
        rec["method"].get("views_per_video")
    if not isinstance(times, list) or len(times) < 6 or not all(
            isinstance(t, (int, float)) and math.isfinite(t) and t > 0 for t in times):
        return None, None
    scale = (vpv / vpi) if vpi and vpv else 1.0
    t = sorted(x * scale for x in times)
    n, cdf, k = len(t), 0.0, 0
    for j in range(n):
        p = math.comb(n, j) / 2**n
        if cdf + p > 0.025:
            break
        cdf += p
        k = j + 1
    if k == 0:
        return None, None
    return 1.0 / t[n - k], 1.0 / t[k - 1]


def _point(rec: dict, metric: str) -> Optional[Point]:
    value = rec["metrics"].get(metric)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    low = high = None
    if rec["kind"] == "eval":
        low, high = (rec["metrics"].get(f"{metric}_interval") or [None, None])[:2]
    elif metric == "video_per_s":
        low, high = _median_rate_interval(rec)
    return Point(time=rec["conditions"]["time"], commit=_commit(rec), value=float(value), low=low, high=high,
                 record=rec["_file"], path=str(rec.get("_path") or rec["_file"]))


def _complete_eval(rec: dict) -> bool:
    m = rec["metrics"]
    n, listed = m.get("num_videos"), m.get("num_listed")
    return bool(n) and (listed is None or n >= listed) and rec["extra"].get("complete") is not False


def _judge(entry: ZooEntry, head: dict, base: dict) -> dict:
    """metric -> the gate's Check of ``head`` against ``base`` (one pair, judged as its own gate run)."""
    from .gate import _decide_tests, accuracy_vs_baseline, memory_checks, speed_vs_baseline

    names = [head["entry"]]
    if head["kind"] == "eval":
        checks = accuracy_vs_baseline(head, base, names)
    else:
        checks = memory_checks(entry, head, base, names)
        if head["metrics"].get("video_per_s") is not None or base["metrics"].get("video_per_s") is not None:
            checks.append(speed_vs_baseline(entry, head, base, names))
    _decide_tests(checks, {entry.name: entry})
    return {c.metric: c for c in checks}


def build_history(entries: dict[str, ZooEntry], records: list[dict], sources: Optional[list] = None,
                  unreadable: Optional[list[str]] = None) -> History:
    """Series of the zoo's entries over ``records`` (see the module docstring), steps judged."""
    from .tables import entry_scale

    chosen = []
    for r in records:
        if r["entry"] not in entries or r["kind"] not in METRICS or isinstance(r["extra"].get("sweep"), dict):
            continue
        if r["kind"] == "eval" and not _complete_eval(r):
            continue
        measured = r["measurement"].get("measured_entry")
        if r["measurement"].get("shared_by") and measured and measured != r["entry"]:
            continue  # a shared measurement is one series: its measured entry's
        chosen.append(r)
    chosen.sort(key=lambda r: (record_time(r), r["_file"]))
    by_key: dict[tuple, list[dict]] = {}
    for r in chosen:
        by_key.setdefault(comparison_key(r), []).append(r)
    series = []
    for key in sorted(by_key, key=lambda k: (list(entries).index(k[0]), k)):
        recs, entry = by_key[key], entries[key[0]]
        judged: dict[tuple[str, str], dict] = {}
        for metric in METRICS[key[1]]:
            published = getattr(entry.published, metric, None) if key[1] == "eval" else None
            s = Series(entry=key[0], metric=metric, key=key, published=published, scale=entry_scale(entry))
            prev = None
            for r in recs:
                p = _point(r, metric)
                if p is None:
                    continue
                if prev is not None:
                    pair = (prev["_file"], r["_file"])
                    if pair not in judged:
                        judged[pair] = _judge(entry, r, prev)
                    c = judged[pair].get(metric)
                    p.step = Step(status=c.status, base_commit=s.points[-1].commit, head_commit=p.commit,
                                  change=c.change, test=c.test, why=c.why) if c is not None else None
                s.points.append(p)
                prev = r
            if s.points:
                series.append(s)
    return History(series=series, sources=[str(x) for x in sources or []], unreadable=list(unreadable or []))


CSV_COLUMNS = ["entry", "metric", "device", "protocol", "precision", "memory_kinds", "method", "time", "commit",
               "value", "low", "high", "published", "step", "step_from", "step_to", "change", "test", "why", "record"]


def history_rows(history: History) -> list[dict]:
    """history.csv: one row per point."""
    rows = []
    for s in history.series:
        _, _, device, protocol, precision, kinds, method = s.key
        for p in s.points:
            st = p.step
            rows.append({
                "entry": s.entry, "metric": s.metric, "device": device, "protocol": protocol, "precision": precision,
                "memory_kinds": kinds, "method": method, "time": p.time, "commit": p.commit, "value": p.value,
                "low": p.low, "high": p.high, "published": s.published, "step": st.status if st else "",
                "step_from": st.base_commit if st else "", "step_to": st.head_commit if st else "",
                "change": st.change if st else "", "test": st.test if st else "", "why": st.why if st else "",
                "record": p.record,
            })
    return rows


__all__ = ["CSV_COLUMNS", "History", "Point", "Series", "Step", "build_history", "default_sources", "history_rows",
           "load_history"]
