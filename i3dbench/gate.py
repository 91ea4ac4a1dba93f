"""Regression gate: the newest records against a baseline run, or against the published numbers.

Records are compared like with like: the newest record (by its parsed ISO time) per
:func:`~i3dbench.records.comparison_key` — entry, kind, device name, protocol, precision,
memory kinds and measurement method. A measurement shared by several entries (one
architecture measured once, see measure.py) is judged once, naming all its entries.

Against a **baseline** (a records folder or run folder):

* accuracy (eval): a paired test on the same videos — the records carry per-video
  correctness — an exact one-sided McNemar test that the new model is wrong more often;
  a regression when it is significant after Holm's correction over every test of this gate
  run and the accuracy dropped. The change is shown with Newcombe's paired 95% interval. Both
  evaluations must be of the same dataset copy (fingerprint) and complete.
* speed (bench): the raw per-iteration times of both records: a one-sided Mann-Whitney test
  that the new times are longer, Holm-corrected, **and** a median-time ratio beyond the entry's
  tolerance (``1 / tolerance.speed_min_ratio``; the threshold is a ratio of medians, so it can
  never go below zero). When both records carry the times of the same reference workload
  (reference_kernel.py: how fast the machine itself ran), the machine's change in speed is
  divided out first: the test runs on the new times divided by ``machine`` (the ratio of the
  reference medians). The workload tracks the machine only roughly (its ratio was seen to
  differ from an unchanged model's by up to ~25% between runs), so it is not trusted alone:
  when the raw and the corrected ratio agree about the tolerance, that is the verdict; when
  they disagree, the verdict would hang on the correction, and the check cannot judge
  ("measure both in one session"). A measurement too noisy to judge (robust spread above
  :data:`MAX_SPREAD` or fewer than :data:`MIN_TIMES` times), or slower beyond the tolerance
  without a significant test, cannot be judged.
* memory (bench): the same kind, measured the same way: a regression when
  ``new > base * (1 + tolerance.memory_rel) + MEMORY_SLACK_MB``.

Against the **published numbers** (no baseline): accuracy when the published value lies above
the record's exact 95% interval widened by the tolerance — only for a record of the entry's own
protocol (clips x crops, averaging, sampler version, frames of the entry's layout); any other
(``eval --views 1x1``, a sweep variant ``...-sweep[...]``) is n/a, "not comparable with the
published protocol (X vs Y)", in a table of its own, never a regression; GPU records only for speed (under the
``published`` protocol, against the published video/s: the upper end of the distribution-free
95% interval of the median rate must reach ``speed_min_ratio * published``) and for the
training memory (kind ``cuda_max_memory_allocated`` against the published training-log
figure). CPU figures are never compared with published GPU figures: such rows are N/A.

Never "ok": a NaN, inf, null or missing metric, a zero or negative speed or memory (an accuracy of
0 % or 100 % is a measurement, judged like any other); an evaluation that covered fewer videos
than its list; a baseline row absent from the new records; a record from the future or with
an unparseable time; a baseline of another dataset copy. Each is "cannot judge" with its
reason. Exit codes: 0 everything due was judged and nothing regressed; 1 a regression; 2 cannot
judge (or nothing at all to judge).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

from .errors import UserError
from .records import comparison_key, load_records, parse_time, record_time, run_folder
from .zoo import ZooEntry, load_zoo, load_zoos

OK, REGRESSED, IMPROVED, CANNOT, NA = "ok", "REGRESSED", "improved", "CANNOT JUDGE", "n/a"
ALPHA = 0.05  # family-wise error rate of one gate run (Holm)
MAX_SPREAD = 0.25  # robust coefficient of variation (1.4826 MAD / median) above which timings are too noisy
MIN_TIMES = 5  # fewer timed iterations than this cannot be judged
ACCURACY_METRICS = ("top1", "top5")
NOT_COMPARABLE = "not comparable with the published protocol"
MEMORY_SLACK_MB = 1.0  # allocator granularity on top of the relative tolerance
FUTURE_SLACK = timedelta(minutes=5)  # clock skew between machines


@dataclass
class Check:
    entries: list[str]  # the entry judged, then the others sharing its measurement
    kind: str
    device: str
    protocol: str
    precision: str
    metric: str
    source: str  # "published" | "baseline"
    reference: Optional[float]
    measured: Optional[float]
    change: str = ""  # "-1.20 pts [-2.1, -0.3]" / "x1.43"
    test: str = ""  # "McNemar p=0.003 (Holm 0.012), 7 flips" / "Mann-Whitney p=..."
    allowed: str = ""  # the threshold
    status: str = NA
    why: str = ""
    record: str = ""
    p: Optional[float] = None  # raw one-sided p-value, adjusted across the run (Holm)
    material: bool = False  # the change is beyond the tolerance (speed) / a drop (accuracy)
    unverified: bool = False  # the record's weights were not verified against a known hash (shown with a mark)

    @property
    def entry(self) -> str:
        return self.entries[0]


@dataclass
class CompareJudgement:
    """A saved compare record (``<run>/compare/compare-*.json``), re-judged from its raw numbers."""

    path: str
    doc: dict
    checks: list  # verdicts.PairedCheck, re-judged
    disagreements: list[str] = field(default_factory=list)  # stored verdicts the numbers do not give

    @property
    def exit_code(self) -> int:
        from .verdicts import exit_code

        return 2 if self.disagreements else exit_code(self.checks, self.doc.get("problems") or [])


@dataclass
class GateResult:
    exit_code: int
    checks: list[Check] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # why it cannot judge at all
    compares: list[CompareJudgement] = field(default_factory=list)

    @property
    def regressions(self) -> list[Check]:
        return [c for c in self.checks if c.status == REGRESSED]

    @property
    def undecided(self) -> list[Check]:
        return [c for c in self.checks if c.status == CANNOT]

    @property
    def not_comparable(self) -> list[Check]:
        """Records of another protocol than the published numbers': shown, never judged against them."""
        return [c for c in self.checks if c.status == NA and c.why.startswith(NOT_COMPARABLE)]


# --------------------------------------------------------------------------- value checks


def _number(value) -> Optional[float]:
    """A usable measured number (finite and > 0), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def _accuracy(value) -> Optional[float]:
    """A usable accuracy in percent: finite and in [0, 100]. 0 % (a constant wrong head) and
    100 % are measurements, judged like any other; None for NaN, inf, null, negative or > 100."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and 0.0 <= value <= 100.0 else None


def _bad(metric: str, value) -> str:
    if value is None:
        return f"{metric} is missing or null (NaN/inf are stored as null)"
    if metric in ACCURACY_METRICS:
        return f"{metric} is {value!r}: not a finite percentage in [0, 100]"
    return f"{metric} is {value!r}: not a positive finite number"


def published_protocol(entry: ZooEntry) -> str:
    """The protocol label of the entry's published numbers (clips x crops, averaging, sampler version)."""
    from .evaluate import protocol_label

    return protocol_label(entry)


def off_protocol(entry: ZooEntry, rec: dict) -> Optional[str]:
    """Why an eval record cannot be held against the entry's published numbers (None: it can).

    Only a record of the entry's own protocol can: another clips x crops, averaging or sampler
    version, a sweep variant (``...-sweep[...]``) or frames of another layout measure something
    the published number does not claim."""
    own, theirs = published_protocol(entry), str(rec["method"].get("protocol"))
    if theirs != own:
        return f"{NOT_COMPARABLE} ({theirs} vs {own})"
    layout = (rec.get("extra") or {}).get("layout_mismatch")
    if layout:
        return f"{NOT_COMPARABLE} (frames of another layout: {layout})"
    return None


def _base_check(rec: dict, metric: str, source: str, entries: list[str]) -> Check:
    _, kind, device, protocol, precision, _, _ = comparison_key(rec)
    verified = str(rec["conditions"].get("checkpoint_verified") or "")
    return Check(entries=entries, kind=kind, device=device, protocol=protocol, precision=precision, metric=metric,
                 source=source, reference=None, measured=None, record=rec.get("_file", ""),
                 unverified=verified.startswith("unverified"))


def _coverage_problem(rec: dict) -> Optional[str]:
    m = rec["metrics"]
    n, listed = m.get("num_videos"), m.get("num_listed")
    if not isinstance(n, int) or n <= 0:
        return f"no video was evaluated ({m.get('num_failed', '?')} of {listed} failed)"
    if not isinstance(listed, int) or n < listed:
        return f"evaluated {n} of {listed} listed videos (partial evaluation)"
    return None


# --------------------------------------------------------------------------- accuracy


def _per_video(rec: dict, metric: str):
    from .metrics import parse_per_video

    text = (rec["extra"].get("per_video") or {}).get(metric)
    return None if not isinstance(text, str) else parse_per_video(text)


def accuracy_vs_baseline(rec: dict, base: dict, entries: list[str]) -> list[Check]:
    from .stats import mcnemar_exact, paired_difference_interval

    out = []
    for metric in ("top1", "top5"):
        c = _base_check(rec, metric, "baseline", entries)
        c.measured, c.reference = _accuracy(rec["metrics"].get(metric)), _accuracy(base["metrics"].get(metric))
        problem = (_coverage_problem(rec) or (None if c.measured is not None else _bad(metric, rec["metrics"].get(metric)))
                   or (f"baseline: {p}" if (p := _coverage_problem(base)) else None)
                   or (None if c.reference is not None else "baseline " + _bad(metric, base["metrics"].get(metric))))
        fp_new, fp_base = rec["conditions"].get("dataset_fingerprint"), base["conditions"].get("dataset_fingerprint")
        if problem is None and fp_new != fp_base:
            problem = f"the baseline evaluated another dataset copy (fingerprint {str(fp_base)[:12]} vs {str(fp_new)[:12]})"
        new_hits, base_hits = _per_video(rec, metric), _per_video(base, metric)
        if problem is None and (new_hits is None or base_hits is None or len(new_hits) != len(base_hits)):
            problem = "per-video correctness missing or of another length: no paired test possible"
        if problem:
            c.status, c.why = CANNOT, problem
            out.append(c)
            continue
        both = (new_hits >= 0) & (base_hits >= 0)
        a, b = base_hits[both], new_hits[both]
        mc = mcnemar_exact(a, b)
        lo, hi = paired_difference_interval(a, b)
        c.change = f"{c.measured - c.reference:+.2f} pts [{100 * lo:+.2f}, {100 * hi:+.2f}]"
        c.p = mc.p_b_worse
        c.test = f"McNemar exact one-sided p={mc.p_b_worse:.3g}, {mc.flips} flips ({mc.n01} lost, {mc.n10} gained)"
        c.material = mc.n01 > mc.n10
        c.allowed = f"Holm-adjusted p >= {ALPHA:g}"
        out.append(c)
    return out


def accuracy_vs_published(entry: ZooEntry, rec: dict, entries: list[str]) -> list[Check]:
    out = []
    for metric in ("top1", "top5"):
        c = _base_check(rec, metric, "published", entries)
        c.reference = getattr(entry.published, metric)
        raw = rec["metrics"].get(metric)
        c.measured = _accuracy(raw)
        if c.reference is None:
            c.status, c.why = NA, "no published number"
            out.append(c)
            continue
        why = off_protocol(entry, rec)
        if why:
            c.status, c.why = NA, why
            out.append(c)
            continue
        interval = rec["metrics"].get(f"{metric}_interval")
        problem = _coverage_problem(rec) or (None if c.measured is not None else _bad(metric, raw))
        if problem is None and not (isinstance(interval, list) and len(interval) == 2 and all(
                isinstance(v, (int, float)) and math.isfinite(v) for v in interval)):
            problem = f"{metric}_interval is missing or not finite"
        if problem:
            c.status, c.why = CANNOT, problem
            out.append(c)
            continue
        tol = getattr(entry.tolerance, metric)
        low, high = interval[0] - tol, interval[1] + tol
        c.change = f"{c.measured - c.reference:+.2f} pts"
        c.allowed = f"exact 95% [{interval[0]:.2f}, {interval[1]:.2f}] ± {tol:g}"
        c.status = OK if low <= c.reference <= high else (REGRESSED if c.reference > high else IMPROVED)
        out.append(c)
    return out


# --------------------------------------------------------------------------- speed


def _per_video_times(rec: dict) -> Optional[list[float]]:
    times = rec["extra"].get("times_s")
    vpi, vpv = rec["method"].get("views_per_iteration"), rec["method"].get("views_per_video")
    if not isinstance(times, list) or not times or not vpi or not vpv:
        return None
    if not all(isinstance(t, (int, float)) and math.isfinite(t) and t > 0 for t in times):
        return None
    return [t * vpv / vpi for t in times]  # seconds per video


def _reference(rec: dict) -> Optional[tuple[str, list[float]]]:
    """(workload name, times) of the record's reference workload, or None."""
    name, times = rec["method"].get("reference_kernel"), rec["extra"].get("reference_times_s")
    if not isinstance(name, str) or not isinstance(times, list) or len(times) < MIN_TIMES:
        return None
    if not all(isinstance(t, (int, float)) and math.isfinite(t) and t > 0 for t in times):
        return None
    return name, [float(t) for t in times]


def machine_ratio(rec: dict, base: dict) -> tuple[Optional[float], str]:
    """How much slower the machine ran for ``rec`` than for ``base`` (ratio of the medians of
    their reference workload's times), or None with the reason it cannot be told."""
    import statistics

    new_ref, base_ref = _reference(rec), _reference(base)
    if new_ref is None or base_ref is None:
        return None, "no reference workload in " + ("either record" if new_ref is None and base_ref is None
                                                    else "the new record" if new_ref is None else "the baseline")
    if new_ref[0] != base_ref[0]:
        return None, "the records ran different reference workloads"
    return statistics.median(new_ref[1]) / statistics.median(base_ref[1]), "reference workload"


def speed_vs_baseline(entry: ZooEntry, rec: dict, base: dict, entries: list[str]) -> Check:
    from .stats import mann_whitney, median_ratio_interval, too_noisy

    c = _base_check(rec, "video_per_s", "baseline", entries)
    c.measured, c.reference = _number(rec["metrics"].get("video_per_s")), _number(base["metrics"].get("video_per_s"))
    limit = 1.0 / entry.tolerance.speed_min_ratio
    c.allowed = f"median time (machine-corrected if both have a reference) <= x{limit:.3f} or not significant"
    new_t, base_t = _per_video_times(rec), _per_video_times(base)
    problem = (None if c.measured is not None else _bad("video_per_s", rec["metrics"].get("video_per_s"))) or \
        (None if c.reference is not None else "baseline " + _bad("video_per_s", base["metrics"].get("video_per_s"))) or \
        (None if new_t is not None else "raw iteration times missing or invalid") or \
        (None if base_t is not None else "baseline raw iteration times missing or invalid")
    if problem is None:
        few = [f"{who}only {len(t)} timings, need at least {MIN_TIMES}" for who, t in (("", new_t), ("baseline: ", base_t))
               if len(t) < MIN_TIMES]
        problem = f"too noisy to judge: {few[0]}" if few else None
    if problem:
        c.status, c.why = CANNOT, problem
        return c
    import statistics

    raw = statistics.median(new_t) / statistics.median(base_t)  # > 1: slower
    machine, how = machine_ratio(rec, base)
    judged = new_t if machine is None else [t / machine for t in new_t]  # the model's times on the baseline's machine
    ratio = statistics.median(judged) / statistics.median(base_t)
    lo, hi = median_ratio_interval(base_t, judged)
    # Noise never hides an unambiguous change: with the whole interval of the ratio beyond the
    # tolerance, a wide spread is no reason not to judge (the test below still has to be significant).
    if not lo > limit:
        noisy = too_noisy(new_t, MAX_SPREAD, MIN_TIMES)
        base_noisy = too_noisy(base_t, MAX_SPREAD, MIN_TIMES)
        problem = (f"too noisy to judge: {noisy}" if noisy else None) or \
            (f"baseline too noisy to judge: {base_noisy}" if base_noisy else None)
        if problem:
            c.status, c.why = CANNOT, problem
            c.change = f"time x{ratio:.3f} [{lo:.3f}, {hi:.3f}]"
            return c
    mw = mann_whitney(judged, base_t, alternative="greater")
    c.p = mw.pvalue
    c.material = ratio > limit
    if machine is None:
        c.change = f"time x{raw:.3f} [{lo:.3f}, {hi:.3f}] (not corrected: {how})"
    else:
        c.change = f"time x{ratio:.3f} [{lo:.3f}, {hi:.3f}] (raw x{raw:.3f}, machine x{machine:.3f})"
        if (raw > limit) != c.material:
            c.status, c.why = CANNOT, (f"the machine's speed changed between the runs (reference workload "
                                       f"x{machine:.3f}): raw x{raw:.3f} and machine-corrected x{ratio:.3f} disagree "
                                       f"about the tolerance x{limit:.3f}; measure both in one session (interleaved)")
            return c
    c.test = (f"Mann-Whitney one-sided p={mw.pvalue:.3g} (n={len(new_t)}/{len(base_t)})"
              + ("" if machine is None else ", on machine-corrected times"))
    return c


def _median_rate_upper(times_per_video: list[float], confidence: float = 0.95) -> Optional[float]:
    """Upper end of the distribution-free interval of the median rate: 1 / the lower end of the
    order-statistic interval of the median time (stats.median_interval). None with too few
    times for such a bound (fewer than 6 at 95%): never the fastest time in its place."""
    from .stats import median_interval

    iv = median_interval(times_per_video, confidence)
    return None if iv is None else 1.0 / iv[0]


def speed_vs_published(entry: ZooEntry, rec: dict, entries: list[str]) -> Check:
    c = _base_check(rec, "video_per_s", "published", entries)
    c.reference = entry.published.video_per_s
    raw = rec["metrics"].get("video_per_s")
    c.measured = _number(raw)
    if c.reference is None:
        c.status, c.why = NA, "no published speed"
        return c
    times = _per_video_times(rec)
    if c.measured is None or times is None:
        c.status, c.why = CANNOT, _bad("video_per_s", raw) if c.measured is None else "raw iteration times missing"
        return c
    need = entry.tolerance.speed_min_ratio * c.reference
    upper = _median_rate_upper(times)
    if upper is None:
        c.status, c.why = CANNOT, (f"only {len(times)} timed iterations: a 95% bound of the median rate needs at "
                                   "least 6 (measure longer)")
        return c
    c.change = f"x{c.measured / c.reference:.3f}"
    c.allowed = f"upper 95% end of the median rate ({upper:.3g}) >= {need:.3g} video/s"
    c.status = REGRESSED if upper < need else (IMPROVED if c.measured > c.reference / entry.tolerance.speed_min_ratio
                                                else OK)
    return c


# --------------------------------------------------------------------------- memory


def memory_checks(entry: ZooEntry, rec: dict, ref_rec: Optional[dict], entries: list[str]) -> list[Check]:
    """Inference and training memory against a baseline record (``ref_rec``) or, for training
    memory on a GPU, the published training-log figure."""
    out = []
    for what in ("inference", "train"):
        metric = f"{what}_memory_mb"
        kind = rec["conditions"].get(f"{what}_memory_kind")
        if ref_rec is not None:
            if metric not in rec["metrics"] and metric not in ref_rec["metrics"]:
                continue
            c = _base_check(rec, metric, "baseline", entries)
            c.reference = _number(ref_rec["metrics"].get(metric))
        else:
            if what != "train" or kind != "cuda_max_memory_allocated" or entry.published.gpu_mem_mb is None:
                continue
            c = _base_check(rec, metric, "published", entries)
            c.reference = float(entry.published.gpu_mem_mb)
        c.measured = _number(rec["metrics"].get(metric))
        if c.measured is None or c.reference is None:
            c.status = CANNOT
            c.why = _bad(metric, rec["metrics"].get(metric)) if c.measured is None else "baseline " + _bad(
                metric, ref_rec["metrics"].get(metric) if ref_rec else None)
            out.append(c)
            continue
        limit = c.reference * (1.0 + entry.tolerance.memory_rel) + MEMORY_SLACK_MB
        c.change = f"x{c.measured / c.reference:.3f}"
        c.allowed = f"<= {limit:.1f} MB ({kind})"
        c.status = REGRESSED if c.measured > limit else OK
        out.append(c)
    return out


# --------------------------------------------------------------------------- selection


def _check_times(records: list[dict], where: str, now: datetime) -> list[str]:
    problems = []
    for r in records:
        t = parse_time(r["conditions"]["time"], r.get("_file", where))
        if t > now + FUTURE_SLACK:
            problems.append(f"{where}/{r.get('_file')}: its time {r['conditions']['time']} is in the future "
                            f"(now {now.isoformat(timespec='seconds')}); fix the clock or remove the record")
    return problems


def newest_by_key(records: list[dict]) -> dict[tuple, dict]:
    """The newest record per comparison key (by parsed time, then file name)."""
    out: dict = {}
    for rec in sorted(records, key=lambda r: (record_time(r), r.get("_file", ""))):
        out[comparison_key(rec)] = rec
    return out


def _shared_groups(newest: dict[tuple, dict]) -> list[tuple[tuple, dict, list[str]]]:
    """(key, record, entries) once per measurement: records sharing a measurement id collapse
    into the record of the entry that was measured (or the first), naming every entry."""
    by_id: dict[str, list[tuple[tuple, dict]]] = {}
    for key, rec in sorted(newest.items()):
        mid = rec["measurement"].get("id") if rec["measurement"].get("shared_by") else f"{key}"
        by_id.setdefault(mid, []).append((key, rec))
    out = []
    for members in by_id.values():
        measured = members[0][1]["measurement"].get("measured_entry")
        lead = next((m for m in members if m[1]["entry"] == measured), members[0])
        out.append((lead[0], lead[1], [lead[1]["entry"]] + sorted(m[1]["entry"] for m in members if m is not lead)))
    return out


def judge_compares(run_dir) -> list[CompareJudgement]:
    """Every compare record of a run folder, re-judged (verdicts.rejudge) from the per-round ratios,
    per-video correctness and memory figures it carries; a stored verdict that the numbers do not
    give is named (the record was edited, or judged by other rules)."""
    from .verdicts import compare_records, load_compare_record, rejudge

    out = []
    for path in compare_records(run_dir):
        doc, checks = load_compare_record(path)
        stored = [(c.entry, c.metric, c.verdict) for c in checks]
        rejudge(checks, float((doc.get("settings") or {}).get("alpha", ALPHA)))
        j = CompareJudgement(str(path), doc, checks)
        for (entry, metric, before), c in zip(stored, checks):
            if before != c.verdict:
                j.disagreements.append(f"{path.name}: {entry} {metric} is stored as {before}, its numbers give "
                                       f"{c.verdict}")
        out.append(j)
    return out


def run_gate(records_dir, baseline=None, zoo=None, now: Optional[datetime] = None) -> GateResult:
    """Judge the newest records (see the module docstring) and the run's saved compares; never
    raises for bad input."""
    try:
        compares = judge_compares(run_folder(records_dir))
    except (UserError, OSError, ValueError) as err:
        return GateResult(2, problems=[str(err)])
    result = _run_gate_records(records_dir, baseline, zoo, now, bool(compares))
    result.compares = compares
    if compares:
        codes = [j.exit_code for j in compares] + ([result.exit_code] if result.checks or result.problems else [])
        result.exit_code = 1 if 1 in codes else 2 if 2 in codes else 0
        result.problems += [d for j in compares for d in j.disagreements]
    return result


def _run_gate_records(records_dir, baseline, zoo, now: Optional[datetime], has_compares: bool) -> GateResult:
    now = now or datetime.now(timezone.utc)
    try:
        entries = load_zoo(zoo) if zoo is not None else load_zoos()
        records = load_records(records_dir, kinds=("eval", "bench"))
        base_records = load_records(baseline, kinds=("eval", "bench")) if baseline is not None else None
    except (UserError, OSError) as err:
        return GateResult(2, problems=[str(err)])
    problems = _check_times(records, str(records_dir), now)
    if base_records is not None:
        problems += _check_times(base_records, str(baseline), now)
    if problems:
        return GateResult(2, problems=problems)
    all_known = set(load_zoos()) | set(entries)
    unknown = sorted({r["entry"] for r in records + (base_records or [])} - all_known)
    if unknown:
        return GateResult(2, problems=[f"record(s) for entries in no manifest: {', '.join(unknown)} "
                                       "(pass the manifest holding them with --zoo)"])
    records = [r for r in records if r["entry"] in entries]
    if not records and has_compares and base_records is None:
        return GateResult(0)  # a run of compares only: they are judged by run_gate
    if not records:
        return GateResult(2, problems=[f"no eval or bench records of the chosen zoo's entries in {records_dir}"])
    newest = newest_by_key(records)
    checks: list[Check] = []
    if base_records is not None:
        base_records = [r for r in base_records if r["entry"] in entries]
        if not base_records:
            return GateResult(2, problems=[f"no eval or bench records of the chosen zoo's entries in baseline {baseline}"])
        base = newest_by_key(base_records)
        for key, rec, names in _shared_groups(newest):
            entry = entries[rec["entry"]]
            ref = base.get(key)
            if ref is None:
                c = _base_check(rec, "-", "baseline", names)
                c.status, c.why = CANNOT, "no baseline record with this key (entry, kind, device, protocol, precision, memory kinds, method)"
                checks.append(c)
                continue
            if rec["kind"] == "eval":
                checks += accuracy_vs_baseline(rec, ref, names)
            else:
                if "video_per_s" in rec["metrics"] or "video_per_s" in ref["metrics"]:
                    checks.append(speed_vs_baseline(entry, rec, ref, names))
                checks += memory_checks(entry, rec, ref, names)
        present = {k for k in newest}
        for key, ref, names in _shared_groups(base):
            if key not in present:
                c = _base_check(ref, "-", "baseline", names)
                c.status, c.why = CANNOT, "baseline row absent from the new records"
                checks.append(c)
    else:
        for _, rec, names in _shared_groups(newest):
            entry = entries[rec["entry"]]
            if rec["kind"] == "eval":
                checks += accuracy_vs_published(entry, rec, names)
            elif rec["conditions"].get("device_class") != "gpu" or rec["method"].get("protocol") != "published":
                c = _base_check(rec, "video_per_s", "published", names)
                c.status, c.why = NA, "published speed and memory are GPU figures under the published protocol"
                checks.append(c)
            else:
                checks.append(speed_vs_published(entry, rec, names))
                checks += memory_checks(entry, rec, None, names)
    _decide_tests(checks, entries)
    regressed = any(c.status == REGRESSED for c in checks)
    judged = [c for c in checks if c.status in (OK, REGRESSED, IMPROVED)]
    if regressed:
        code = 1
    elif any(c.status == CANNOT for c in checks) or not judged:
        code = 2
    else:
        code = 0
    result = GateResult(code, checks)
    if not judged and not regressed:
        result.problems.append("nothing comparable: no record has a reference value to be judged against")
    return result


def _decide_tests(checks: list[Check], entries: dict[str, ZooEntry]) -> None:
    """Holm-adjust the p-values of every test of this run, then set those checks' status."""
    from .stats import holm

    tested = [c for c in checks if c.p is not None and c.status == NA]
    if not tested:
        return
    for c, adj in zip(tested, holm([c.p for c in tested])):
        c.test += f", Holm-adjusted {adj:.3g}"
        significant = adj < ALPHA
        if c.metric == "video_per_s":
            if significant and c.material:
                c.status = REGRESSED
            elif c.material:
                c.status, c.why = CANNOT, "slower beyond the tolerance, but not significantly: measure longer"
            else:
                c.status = OK
        else:
            c.status = REGRESSED if significant and c.material else OK


# --------------------------------------------------------------------------- output


def format_checks(checks: list[Check]) -> str:
    from tabulate import tabulate

    def entry_cell(c: Check) -> str:
        return (c.entry + (f" (+{len(c.entries) - 1} sharing)" if len(c.entries) > 1 else "")
                + (" [unverified weights]" if c.unverified else ""))

    rows = [[entry_cell(c), c.kind, c.device, c.protocol, c.precision, c.metric, c.source,
             "—" if c.reference is None else f"{c.reference:.4g}", "—" if c.measured is None else f"{c.measured:.4g}",
             c.change or "—", c.test or "—", c.allowed or "—", c.status + (f" ({c.why})" if c.why else ""), c.record]
            for c in checks]
    return tabulate(rows, headers=["entry", "kind", "device", "protocol", "precision", "metric", "vs", "reference",
                                   "measured", "change", "test", "allowed", "status", "record"],
                    tablefmt="github", disable_numparse=True)


def report_gate(result: GateResult) -> str:
    """What ``i3dbench gate`` prints."""
    lines = []
    if result.checks:
        lines.append(format_checks(result.checks))
    if result.regressions:
        lines += ["", f"REGRESSIONS ({len(result.regressions)}):", format_checks(result.regressions)]
    if result.undecided:
        lines += ["", f"CANNOT JUDGE ({len(result.undecided)}):", format_checks(result.undecided)]
    if result.not_comparable:
        lines += ["", f"NOT COMPARABLE WITH THE PUBLISHED PROTOCOL ({len(result.not_comparable)}; shown, not judged):",
                  format_checks(result.not_comparable)]
    for j in result.compares:
        from .verdicts import format_compare_table

        b, h = j.doc.get("base") or {}, j.doc.get("head") or {}
        lines += ["", f"compare {Path(j.path).name}: base {b.get('rev')} ({str(b.get('commit'))[:10]}) vs head "
                      f"{h.get('rev')} ({str(h.get('commit'))[:10]}), re-judged from its raw numbers:",
                  format_compare_table(j.checks)]
    lines += [f"cannot judge: {p}" for p in result.problems]
    verdict = {0: "gate: OK, everything judged, nothing regressed", 1: "gate: FAILED, regression(s) above",
               2: "gate: CANNOT JUDGE (exit 2), see above"}
    lines.append(verdict[result.exit_code])
    return "\n".join(lines)


__all__ = ["ALPHA", "MAX_SPREAD", "MIN_TIMES", "Check", "GateResult", "newest_by_key", "report_gate", "run_gate"]
