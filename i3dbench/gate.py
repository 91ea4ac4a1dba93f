"""Regression gate: the newest records against the published numbers or a baseline.

For each (entry, kind, device name, protocol) the newest record is judged (see
``records.record_key``); only a change for the worse beyond what noise and the entry's
tolerance allow is a regression:

* accuracy (eval records: top1, top5) — the reference value (published, or the baseline
  record's) must lie inside the measured 95% bootstrap interval widened by the entry's
  tolerance (``tolerance.top1`` / ``top5`` points); a measurement below that is a regression.
* speed (bench records: video/s) — ``ratio = measured / reference``; regression when
  ``ratio < 1 - allowed`` with ``allowed = max(1 - tolerance.speed_min_ratio, k * spread,
  min_speed_tol)`` where ``spread`` is the relative per-iteration standard deviation stored in
  the record (both records' combined against a baseline): the threshold follows the noise.
* memory (bench records: train_memory_mb, or peak_memory_mb against a baseline) — regression
  when ``measured > reference * (1 + tolerance.memory_rel) + MEMORY_SLACK_MB``.

Against published numbers, speed and memory are judged only on CUDA devices and under the
``published`` protocol (the published figures are GPU numbers; a CPU cannot regress against
them). Exit codes: 0 nothing regressed, 1 at least one regression (the table of what and by
how much is printed), 2 cannot judge (no records, an entry not in the zoo, nothing comparable).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from .records import RecordError, load_records, newest_records
from .zoo import ZooEntry, load_zoo, load_zoos

OK, REGRESSED, IMPROVED, SKIPPED = "ok", "REGRESSED", "improved", "skipped"
NOISE_K = 3.0  # how many relative standard deviations of per-iteration time count as noise
MIN_SPEED_TOL = 0.05  # never judge speed finer than 5%: run-to-run drift exceeds per-iteration noise
MEMORY_SLACK_MB = 64.0  # allocator / page granularity: a tiny model's peak RSS moves by tens of MB


@dataclass
class Check:
    entry: str
    kind: str
    device: str
    protocol: str
    metric: str
    reference: Optional[float]
    source: str  # "published" | "baseline"
    measured: Optional[float]
    change: str  # "-1.20 pts" / "x0.83"
    allowed: str  # what the threshold was
    status: str  # ok | REGRESSED | improved | skipped
    why: str = ""


@dataclass
class GateResult:
    exit_code: int
    checks: list[Check] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # why it cannot judge

    @property
    def regressions(self) -> list[Check]:
        return [c for c in self.checks if c.status == REGRESSED]


def _accuracy_checks(entry: ZooEntry, key, rec: dict, refs: dict, source: str) -> list[Check]:
    name, kind, device, protocol = key
    m = rec["metrics"]
    out = []
    for metric in ("top1", "top5"):
        ref, measured = refs.get(metric), m.get(metric)
        if ref is None or measured is None:
            continue
        tol = getattr(entry.tolerance, metric)
        ci = m.get(f"{metric}_ci") or [measured, measured]
        low, high = ci[0] - tol, ci[1] + tol
        status = OK if low <= ref <= high else (REGRESSED if ref > high else IMPROVED)
        out.append(Check(name, kind, device, protocol, metric, ref, source, measured,
                         f"{measured - ref:+.2f} pts", f"CI [{ci[0]:.2f}, {ci[1]:.2f}] ± {tol:g}", status))
    return out


def speed_check(entry: ZooEntry, key, measured: Optional[float], ref: Optional[float], spread: float, source: str):
    """The speed rule of the module docstring as a :class:`Check` (None without both numbers);
    ``key`` is the record key (entry, kind, device name, protocol)."""
    name, kind, device, protocol = key
    if not measured or not ref:
        return None
    allowed = max(1.0 - entry.tolerance.speed_min_ratio, NOISE_K * spread, MIN_SPEED_TOL)
    ratio = measured / ref
    status = REGRESSED if ratio < 1.0 - allowed else (IMPROVED if ratio > 1.0 + allowed else OK)
    return Check(name, kind, device, protocol, "video_per_s", ref, source, measured, f"x{ratio:.3f}",
                 f">= x{1.0 - allowed:.3f} (spread {100 * spread:.1f}%)", status)


def memory_check(entry: ZooEntry, key, metric: str, measured, ref, source: str):
    """The memory rule of the module docstring as a :class:`Check` (None without both numbers)."""
    name, kind, device, protocol = key
    if not measured or not ref:
        return None
    limit = ref * (1.0 + entry.tolerance.memory_rel) + MEMORY_SLACK_MB
    status = REGRESSED if measured > limit else OK
    return Check(name, kind, device, protocol, metric, ref, source, measured, f"x{measured / ref:.3f}",
                 f"<= {limit:.0f} MB", status)


def _spread(rec: dict) -> float:
    v = rec["metrics"].get("rel_std")
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else 0.0


def judge_against_published(entries: dict[str, ZooEntry], newest: dict) -> list[Check]:
    checks = []
    for key, rec in sorted(newest.items()):
        name, kind, device, protocol = key
        entry = entries[name]
        p = entry.published
        if kind == "eval":
            got = _accuracy_checks(entry, key, rec, {"top1": p.top1, "top5": p.top5}, "published")
            checks += got or [Check(name, kind, device, protocol, "top1", None, "published", rec["metrics"].get("top1"),
                                    "", "", SKIPPED, "no published accuracy")]
        elif kind == "bench":
            on_gpu = str(rec["conditions"].get("device", "")).startswith("cuda")
            if not on_gpu or protocol != "published":
                checks.append(Check(name, kind, device, protocol, "video_per_s", p.video_per_s, "published",
                                    rec["metrics"].get("video_per_s"), "", "", SKIPPED,
                                    "published speed/memory are GPU numbers under the published protocol"))
                continue
            c = speed_check(entry, key, rec["metrics"].get("video_per_s"), p.video_per_s, _spread(rec), "published")
            mc = memory_check(entry, key, "train_memory_mb", rec["metrics"].get("train_memory_mb"), p.gpu_mem_mb, "published")
            got = [x for x in (c, mc) if x is not None]
            checks += got or [Check(name, kind, device, protocol, "video_per_s", None, "published",
                                    rec["metrics"].get("video_per_s"), "", "", SKIPPED, "nothing published")]
    return checks


def judge_against_baseline(entries: dict[str, ZooEntry], newest: dict, base: dict) -> list[Check]:
    checks = []
    for key, rec in sorted(newest.items()):
        name, kind, device, protocol = key
        entry = entries[name]
        ref = base.get(key)
        if ref is None:
            checks.append(Check(name, kind, device, protocol, "-", None, "baseline", None, "", "", SKIPPED,
                                "no baseline record for this entry/kind/device/protocol"))
            continue
        if kind == "eval":
            checks += _accuracy_checks(entry, key, rec, {k: ref["metrics"].get(k) for k in ("top1", "top5")}, "baseline")
        elif kind == "bench":
            spread = math.hypot(_spread(rec), _spread(ref))
            m, r = rec["metrics"], ref["metrics"]
            for c in (
                speed_check(entry, key, m.get("video_per_s"), r.get("video_per_s"), spread, "baseline"),
                memory_check(entry, key, "train_memory_mb", m.get("train_memory_mb"), r.get("train_memory_mb"), "baseline"),
                memory_check(entry, key, "peak_memory_mb", m.get("peak_memory_mb"), r.get("peak_memory_mb"), "baseline"),
            ):
                if c is not None:
                    checks.append(c)
    return checks


def run_gate(records_dir=None, baseline=None, zoo=None) -> GateResult:
    """Judge the newest records (see the module docstring); never raises for bad input."""
    try:
        entries = load_zoo(zoo) if zoo is not None else load_zoos()
        records = [r for r in load_records(records_dir) if r["kind"] in ("eval", "bench")]
        base_records = load_records(baseline) if baseline is not None else None
    except (RecordError, ValueError, OSError) as err:
        return GateResult(2, problems=[str(err)])
    if not records:
        where = records_dir or "results/records"
        return GateResult(2, problems=[f"no eval or bench records in {where}: run `i3dbench run` or the suites first"])
    unknown = sorted({r["entry"] for r in records} - set(entries))
    if unknown:
        return GateResult(2, problems=[(f"record(s) for entries not in the zoo: {', '.join(unknown)} "
                                        "(pass the manifest holding them with --zoo)")])
    newest = newest_records(records)
    if base_records is not None:
        if not base_records:
            return GateResult(2, problems=[f"no records in baseline {baseline}"])
        checks = judge_against_baseline(entries, newest, newest_records(base_records))
    else:
        checks = judge_against_published(entries, newest)
    judged = [c for c in checks if c.status != SKIPPED]
    if not judged:
        return GateResult(2, checks, problems=["nothing comparable: no record has a reference value to be judged against"])
    return GateResult(1 if any(c.status == REGRESSED for c in judged) else 0, checks)


def format_checks(checks: list[Check]) -> str:
    from tabulate import tabulate

    rows = [[c.entry, c.kind, c.device, c.protocol, c.metric, c.source,
             "—" if c.reference is None else f"{c.reference:.2f}", "—" if c.measured is None else f"{c.measured:.2f}",
             c.change or "—", c.allowed or "—", c.status + (f" ({c.why})" if c.why else "")] for c in checks]
    return tabulate(rows, headers=["entry", "kind", "device", "protocol", "metric", "vs", "reference", "measured",
                                   "change", "allowed", "status"], tablefmt="github", disable_numparse=True)


def report_gate(result: GateResult) -> str:
    """What ``i3dbench gate`` prints."""
    lines = []
    if result.checks:
        lines.append(format_checks(result.checks))
    if result.regressions:
        lines += ["", f"REGRESSIONS ({len(result.regressions)}):", format_checks(result.regressions)]
    lines += [f"cannot judge: {p}" for p in result.problems]
    verdict = {0: "gate: OK, nothing regressed", 1: "gate: FAILED, regression(s) above", 2: "gate: cannot judge"}
    lines.append(verdict[result.exit_code])
    return "\n".join(lines)


__all__ = ["MIN_SPEED_TOL", "NOISE_K", "Check", "GateResult", "memory_check", "report_gate", "run_gate", "speed_check"]
