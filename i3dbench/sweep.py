"""`i3dbench sweep`: what each protocol setting costs an entry, measured on the same videos.

``--vary KNOB=V1,V2,...`` (repeatable) spans a grid of variants of the entry's test protocol:

=========  ===========================================================================
knob       values
=========  ===========================================================================
sampler    0.x, 1.x (test-mode clip offsets of MMAction2 0.x or 1.x)
averaging  prob, score (softmax then mean, or mean of the logits)
views      CLIPSxCROPS, e.g. 10x3, 10x1, 1x1
decoder    decord, pyav, rawframes (rawframes: the JPEG copy of the same videos)
resize     cv2, tensor (mmcv's OpenCV bilinear, or torch's)
jpeg       cv2, turbojpeg, pillow (rawframes only)
precision  fp32, bf16, fp16
ann        LIST_A,LIST_B: other copies of the val list (judged on their intersection, plus each
           list's own rest)
=========  ===========================================================================

The grid is the product of the values (at most :data:`MAX_VARIANTS`); the entry's own
protocol is always one variant — the **base** every other is compared with. When every variant
runs at one other number of views (``views`` given one value, e.g. ``--vary views=1x1 --vary
sampler=0.x,1.x``) and no varied knob needs the entry's own views (:data:`NEEDS_OWN_VIEWS`:
``averaging`` makes no difference at 1x1), the base is the entry's protocol at those views: it costs
what a variant costs, not a full 10x3 evaluation. For each variant:
top-1 / top-5 with exact intervals; against the base, on the videos both evaluated (matched
by video id), the paired difference with Newcombe's 95% interval, the exact McNemar p-value and
how many videos flipped. Variants that decode the same frames share the decode (and the
forward, for averaging variants) through ``evaluate.evaluate_many``. Every variant gets its
own eval record (``extra["sweep"]`` names its knobs); the table (markdown, CSV) and a plot go
to a new folder ``<run>/sweep/<entry>/`` (``<entry>-2/``, ... for a later sweep into the same run).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import UsageError
from .zoo import ZooEntry, get_entry

KNOBS = ("sampler", "averaging", "views", "decoder", "resize", "jpeg", "precision", "ann")
MAX_VARIANTS = 32
# Knobs whose effect is measured only against the entry's own views: averaging (prob vs score) is
# the same at one view, and views is itself what is compared.
NEEDS_OWN_VIEWS = ("averaging", "views")
_VALUES = {"sampler": ("0.x", "1.x"), "averaging": ("prob", "score"), "decoder": ("decord", "pyav", "rawframes"),
           "resize": ("cv2", "tensor"), "jpeg": ("cv2", "turbojpeg", "pillow"), "precision": ("fp32", "bf16", "fp16")}


def parse_vary(items: list[str]) -> dict[str, list[str]]:
    """``["sampler=0.x,1.x", ...]`` -> ``{"sampler": ["0.x", "1.x"], ...}`` (UsageError naming what is wrong)."""
    from .evaluate import parse_views

    out: dict[str, list[str]] = {}
    for item in items:
        knob, sep, values = str(item).partition("=")
        knob = knob.strip()
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or knob not in KNOBS:
            raise UsageError(f"--vary {item!r}: expected KNOB=V1,V2 with KNOB one of {', '.join(KNOBS)}")
        if not vals:
            raise UsageError(f"--vary {item!r}: no values after '='")
        if knob in out:
            raise UsageError(f"--vary {knob} is given twice; list all its values in one --vary {knob}=...")
        if len(set(vals)) < len(vals):
            raise UsageError(f"--vary {item!r}: a value is listed twice")
        for v in vals:
            if knob in _VALUES and v not in _VALUES[knob]:
                raise UsageError(f"--vary {knob}={v}: must be one of {', '.join(_VALUES[knob])}")
            if knob == "views":
                parse_views(v)
            if knob == "ann" and not Path(v).is_file():
                raise UsageError(f"--vary ann={v}: no such list file")
        out[knob] = vals
    return out


@dataclass
class Variant:
    """One point of the grid: the knob values that differ from the base, and what they make."""

    knobs: dict  # knob -> value, every varied knob
    entry: ZooEntry  # the entry with this variant's protocol settings
    average_clips: str
    precision: str
    decoder: Optional[str]  # decord | pyav | None (rawframes entries decode JPEGs)
    data_root: Path
    ann: Path
    is_base: bool = False
    model: object = None  # tests plant a different model here
    result: object = None  # the EvalResult
    # Seconds per video of the evaluation that computed this variant (wall time / videos computed),
    # shared by the ``shared`` variants evaluated together (one decode, one forward for averaging
    # variants): what the protocol costs as it was run here. None when nothing was computed (resumed).
    s_per_video: Optional[float] = None
    shared: int = 1

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.knobs.items()) or "base"


def base_values(entry: ZooEntry, ann: Path, decoder: Optional[str]) -> dict[str, str]:
    """The entry's own value of every knob (its published protocol)."""
    from .evaluate import views_label

    return {"sampler": entry.test.sampler_version, "averaging": entry.test.average_clips,
            "views": views_label(entry), "decoder": "rawframes" if entry.data.format == "rawframes" else (decoder or "decord"),
            "resize": entry.data.resize_backend, "jpeg": entry.data.jpeg_backend, "precision": "fp32", "ann": str(ann)}


def _apply(entry: ZooEntry, knobs: dict, data_root: Path, ann: Path, rawframes: Optional[tuple[Path, Path]]):
    """(entry, decoder, data_root, ann) of one variant."""
    from .evaluate import with_test_views

    e = with_test_views(entry, knobs["views"]) if "views" in knobs else entry
    test = dataclasses.replace(e.test, sampler_version=knobs.get("sampler", e.test.sampler_version))
    data = dataclasses.replace(e.data, resize_backend=knobs.get("resize", e.data.resize_backend),
                               jpeg_backend=knobs.get("jpeg", e.data.jpeg_backend))
    decoder = knobs.get("decoder")
    root, lst = data_root, Path(knobs.get("ann", ann))
    if decoder == "rawframes" and e.data.format != "rawframes":
        if rawframes is None:
            raise UsageError("--vary decoder=rawframes needs the rawframe copy of the same videos: --rawframes-root D "
                             "--rawframes-ann F")
        data = dataclasses.replace(data, format="rawframes", start_index=1)
        root, lst = rawframes
    elif decoder in ("decord", "pyav") and e.data.format == "rawframes":
        raise UsageError(f"--vary decoder={decoder}: {entry.name} reads JPEG frames; a video decoder needs a video entry")
    return dataclasses.replace(e, test=test, data=data), (decoder if decoder in ("decord", "pyav") else None), root, lst


def base_views(vary: dict[str, list[str]]) -> Optional[str]:
    """The views the base runs at when they are not the entry's own: the one ``views`` value every
    variant has, when no other varied knob needs the entry's own views (:data:`NEEDS_OWN_VIEWS`)."""
    one = vary.get("views", [])
    if len(one) != 1 or any(k in NEEDS_OWN_VIEWS for k in vary if k != "views"):
        return None
    return one[0]


def make_variants(entry: ZooEntry, vary: dict[str, list[str]], data_root: Path, ann: Path,
                  decoder: Optional[str] = None, rawframes: Optional[tuple[Path, Path]] = None) -> list[Variant]:
    """The grid of ``vary`` (base first). The base takes the entry's own value of every knob."""
    if "jpeg" in vary and entry.data.format != "rawframes" and "rawframes" not in vary.get("decoder", []):
        raise UsageError("--vary jpeg applies to JPEG frames: vary decoder=...,rawframes too, or sweep a rawframes entry")
    base = base_values(entry, ann, decoder)
    views = base_views(vary)
    if views is not None:
        base["views"] = views  # the entry's protocol at the variants' own views (see the module docstring)
    knobs = list(vary)
    grid = [dict(zip(knobs, combo)) for combo in itertools.product(*(vary[k] for k in knobs))]
    own = {k: base[k] for k in knobs}
    if own not in grid:
        grid.insert(0, own)
    else:
        grid.insert(0, grid.pop(grid.index(own)))
    if len(grid) > MAX_VARIANTS:
        raise UsageError(f"--vary makes {len(grid)} variants (at most {MAX_VARIANTS}): vary fewer knobs at once")
    out = []
    for i, kn in enumerate(grid):
        e, dec, root, lst = _apply(entry, kn, Path(data_root), Path(ann), rawframes)
        out.append(Variant(kn, e, kn.get("averaging", entry.test.average_clips), kn.get("precision", "fp32"),
                           dec if dec is not None else (decoder if e.data.format != "rawframes" else None),
                           root, lst, is_base=(i == 0)))
    return out


@dataclass
class Comparison:
    """A variant against the base on the videos both evaluated."""

    n_common: int
    delta_top1: float  # points
    interval: tuple[float, float]  # points, Newcombe's paired 95%
    p_mcnemar: float  # exact, two-sided
    lost: int  # base right, variant wrong
    gained: int
    own_rest: dict = field(default_factory=dict)  # ann variants: accuracy on the videos only this list has


def _hits_by_id(result, fmt: str) -> dict[str, int]:
    from .data.annotations import video_id
    from .predictions import read_predictions

    rows = read_predictions(result.predictions_path)
    return {video_id(r["video"], fmt): int(r["label"] in r["top5"][:1]) for r in rows.values() if "error" not in r}


def compare(base: Variant, other: Variant) -> Comparison:
    """Paired comparison of ``other`` with ``base`` on their common videos (by id)."""
    from .stats import mcnemar_exact, paired_difference_interval

    a = _hits_by_id(base.result, base.entry.data.format)
    b = _hits_by_id(other.result, other.entry.data.format)
    common = [k for k in a if k in b]
    va = np.array([a[k] for k in common], dtype=np.int64)
    vb = np.array([b[k] for k in common], dtype=np.int64)
    if not common:
        return Comparison(0, float("nan"), (float("nan"), float("nan")), float("nan"), 0, 0)
    mc = mcnemar_exact(va, vb)
    lo, hi = paired_difference_interval(va, vb)
    rest = {}
    if base.ann != other.ann:
        only_a = [a[k] for k in a if k not in b]
        only_b = [b[k] for k in b if k not in a]
        rest = {"base_only_videos": len(only_a), "base_only_top1": 100 * float(np.mean(only_a)) if only_a else None,
                "variant_only_videos": len(only_b),
                "variant_only_top1": 100 * float(np.mean(only_b)) if only_b else None}
    return Comparison(len(common), 100 * float(vb.mean() - va.mean()), (100 * lo, 100 * hi), mc.p_two_sided,
                      mc.n01, mc.n10, rest)


@dataclass
class SweepResult:
    entry: str
    variants: list[Variant]
    comparisons: dict  # variant label -> Comparison (the base is not in it)
    out_dir: Path
    files: list[Path]
    records: list[Path] = field(default_factory=list)


def run_sweep(entry, vary: dict[str, list[str]], data_root, ann, *, checkpoint=None, model=None, device: str = "cpu",
              out=None, num_workers: int = 2, decoder: Optional[str] = None, rawframes=None,
              progress: bool = True, variants: Optional[list[Variant]] = None) -> SweepResult:
    """Evaluate every variant of ``vary`` (see the module docstring) into the run folder ``out``
    and write the comparison table; ``variants`` replaces the grid (tests plant variants there)."""
    from .evaluate import EvalSpec, evaluate_many, resolve_weights
    from .runs import RunDir, new_subfolder, open_run_dir

    entry = get_entry(entry)
    run = out if isinstance(out, RunDir) else open_run_dir(out)
    variants = variants or make_variants(entry, vary, Path(data_root), Path(ann), decoder, rawframes)
    # One model object for all variants: variants that differ only in averaging share its forward.
    shared = resolve_weights(entry, checkpoint, model)
    groups: dict = {}
    from .loader import decode_key

    for v in variants:
        groups.setdefault((decode_key(v.entry), v.decoder, str(v.data_root), str(v.ann)), []).append(v)
    for members in groups.values():
        specs = [EvalSpec(v.entry, model=v.model or shared.model, average_clips=v.average_clips, precision=v.precision)
                 for v in members]
        first = members[0]
        started = time.perf_counter()
        results = evaluate_many(specs, first.data_root, first.ann, device=device, out=run, num_workers=num_workers,
                                decoder=first.decoder, progress=progress, write=False,
                                progress_label=f"sweep {entry.name} [{'; '.join(v.label for v in members)}]")
        elapsed = time.perf_counter() - started
        computed = max((r.obtained.get("rows_computed") or 0) for r in results)
        for v, r in zip(members, results):
            v.result = r
            v.s_per_video = elapsed / computed if computed else None
            v.shared = len(members)
    base = variants[0]
    comparisons = {v.label: compare(base, v) for v in variants[1:]}
    records = _write_records(entry, variants, comparisons, run)
    out_dir = new_subfolder(run.path / "sweep", entry.name)  # a second sweep into this run: a folder of its own
    files = write_tables(entry, variants, comparisons, out_dir)
    return SweepResult(entry.name, variants, comparisons, out_dir, files, records)


def _write_records(entry, variants, comparisons, run) -> list[Path]:
    """One eval record per variant: the evaluation's own, plus the sweep's knobs and comparison."""
    from .evaluate import protocol_label, views_label
    from .records import make_record, write_record

    paths = []
    for v in variants:
        r = v.result
        # A variant is another protocol: its label says which knobs made it (the base keeps the entry's).
        # "sweep", not "eval": a sweep's evaluations (its base too, run on the given model without a
        # checkpoint hash) are never the zoo row's evaluation nor compared with it by the gate.
        method = {"name": "sweep", "protocol": protocol_label(v.entry, v.average_clips) + (
                      "" if v.is_base else f"-sweep[{v.label}]"),
                  "views": views_label(v.entry), "average_clips": v.average_clips,
                  "sampler_version": v.entry.test.sampler_version, "interval": "exact (Clopper-Pearson) 95%",
                  "resize_backend": v.entry.data.resize_backend,
                  "jpeg_backend": v.entry.data.jpeg_backend if v.entry.data.format == "rawframes" else None}
        c = comparisons.get(v.label)
        from .evaluate import per_video
        from .predictions import read_predictions

        rows = read_predictions(r.predictions_path)
        extra = {"predictions": os.path.relpath(r.predictions_path, run.path), "run_key": r.run_key,
                 "evaluated": f"{r.num_evaluated} of {r.num_listed}", "complete": r.complete,
                 "failures": r.failures, "per_video": per_video(rows, r.num_listed),
                 "data_root": str(v.data_root), "ann_file": str(v.ann),
                 "sweep": {"knobs": v.knobs, "label": v.label, "base": v.is_base,
                           "vs_base": None if c is None else dataclasses.asdict(c)}}
        cond = dict(r.conditions)
        paths.append(write_record(make_record(entry.name, "eval", r.metrics, cond, method, obtained=r.obtained,
                                              extra=extra), run.records))
    return paths


def _fmt_interval(value, interval) -> str:
    if value is None or not interval:
        return "—"
    return f"{value:.2f} [{interval[0]:.2f}, {interval[1]:.2f}]"


def write_tables(entry: ZooEntry, variants: list[Variant], comparisons: dict, out_dir: Path) -> list[Path]:
    """``sweep.md``, ``sweep.csv`` and ``sweep.png`` (Δ top-1 with its paired interval per variant)."""
    import csv
    import io

    from tabulate import tabulate

    from .evaluate import views_label
    from .fileio import atomic_write

    rows, numbers = [], []
    for v in variants:
        m, c = v.result.metrics, comparisons.get(v.label)
        t1, t5 = m.get("top1_interval") or [None, None], m.get("top5_interval") or [None, None]
        numbers.append({  # the CSV: one number per column
            "variant": v.label, "base": v.is_base, "videos_evaluated": v.result.num_evaluated,
            "videos_listed": v.result.num_listed, "top1": m.get("top1"), "top1_low": t1[0], "top1_high": t1[1],
            "top5": m.get("top5"), "top5_low": t5[0], "top5_high": t5[1],
            "delta_top1": None if c is None else c.delta_top1, "delta_top1_low": None if c is None else c.interval[0],
            "delta_top1_high": None if c is None else c.interval[1], "mcnemar_p": None if c is None else c.p_mcnemar,
            "lost": None if c is None else c.lost, "gained": None if c is None else c.gained,
            "common_videos": None if c is None else c.n_common,
            "s_per_video": v.s_per_video, "time_shared_by": v.shared, "predictions": v.result.predictions_path.name,
        })
        rows.append({
            "variant": (f"base: {v.label} (the entry's protocol" + (f" at views {v.knobs['views']})" if v.knobs.get(
                "views", views_label(entry)) != views_label(entry) else ")")) if v.is_base else v.label,
            "videos": f"{v.result.num_evaluated} of {v.result.num_listed}",
            "top1": _fmt_interval(m.get("top1"), m.get("top1_interval")),
            "top5": _fmt_interval(m.get("top5"), m.get("top5_interval")),
            "delta_top1": "—" if c is None else f"{c.delta_top1:+.2f} [{c.interval[0]:+.2f}, {c.interval[1]:+.2f}]",
            "mcnemar_p": "—" if c is None else f"{c.p_mcnemar:.3g}",
            "flips": "—" if c is None else f"{c.lost + c.gained} ({c.lost} lost, {c.gained} gained) of {c.n_common}",
            "time": "—" if v.s_per_video is None else (f"{v.s_per_video:.3g}" + (
                f" (shared by {v.shared})" if v.shared > 1 else "")),
            "predictions": v.result.predictions_path.name,
        })
    headers = {"variant": "variant", "videos": "videos", "top1": "top-1 % [exact 95%] ↑",
               "top5": "top-5 % [exact 95%] ↑", "delta_top1": "Δ top-1 vs base [paired 95%]",
               "mcnemar_p": "McNemar p (exact)", "flips": "videos flipped", "time": "s/video ↓ (measured here)",
               "predictions": "predictions"}
    md = "\n".join([
        f"# Protocol sweep: {entry.name}",
        "",
        "Every variant evaluated on the same videos; Δ, the paired interval (Newcombe) and the exact McNemar test "
        "compare it with the base on the videos both evaluated. s/video: wall time of the evaluation that computed the "
        "variant over the videos it computed, on this machine; variants evaluated together (one decode, and one forward "
        "for averaging variants) share it. Generated by `i3dbench sweep`; do not edit.",
        "",
        tabulate([[r[k] for k in headers] for r in rows], headers=list(headers.values()), tablefmt="github",
                 disable_numparse=True),
        "",
    ])
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(numbers[0]), lineterminator="\n")
    w.writeheader()
    w.writerows([{k: "" if val is None else val for k, val in r.items()} for r in numbers])
    files = [atomic_write(out_dir / "sweep.md", md), atomic_write(out_dir / "sweep.csv", buf.getvalue())]
    png = _plot(entry, variants, comparisons, out_dir / "sweep.png")
    if png is not None:
        files.append(png)
    return files


def _plot(entry, variants, comparisons, path: Path) -> Optional[Path]:
    others = [v for v in variants if not v.is_base and comparisons[v.label].n_common]
    if not others:
        return None
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from .fileio import atomic_write

    fig, ax = plt.subplots(figsize=(7, 0.45 * len(others) + 1.4))
    y = list(range(len(others)))
    d = [comparisons[v.label].delta_top1 for v in others]
    lo = [x - comparisons[v.label].interval[0] for x, v in zip(d, others)]
    hi = [comparisons[v.label].interval[1] - x for x, v in zip(d, others)]
    ax.errorbar(d, y, xerr=[lo, hi], fmt="o", capsize=3, label="Δ top-1 vs base (paired 95%)")
    ax.axvline(0.0, color="grey", lw=0.8)
    ax.set_yticks(y, [v.label for v in others], fontsize=7)
    ax.invert_yaxis()
    cond = variants[0].result.conditions
    ax.set_xlabel("Δ top-1 (points) against the entry's own protocol")
    ax.set_title(f"{entry.name}: protocol sweep ({cond.get('device_name')}, base {cond.get('precision')}, "
                 f"{cond.get('time', '')[:10]})", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7)
    buf = __import__("io").BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None}, bbox_inches="tight")
    plt.close(fig)
    return atomic_write(path, buf.getvalue())


__all__ = ["KNOBS", "Comparison", "SweepResult", "Variant", "compare", "make_variants", "parse_vary", "run_sweep"]
