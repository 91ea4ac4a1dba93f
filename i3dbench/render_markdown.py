"""The markdown renderer of the report: README.md from the table model (tables.Tables).

Rows come formatted from fmt.py; the zoo table keeps every row within :data:`MAX_ROW` characters
(short names, a legend below it), so it reads in a terminal and on a code host.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from .fmt import MISSING, fmt_delta, fmt_interval, fmt_mem, fmt_num, fmt_ratio, fmt_speed, fmt_verdict, short_hash
from .tables import MEMORY_KINDS, UNVERIFIED_MARK, Tables, date_range

MARK = "Rendered by `i3dbench report`"
MAX_ROW = 120


def _table(headers: list[str], rows: list[list[str]]) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def _compact_table(headers: list[str], rows: list[list[str]]) -> str:
    """A GitHub table padded to the widest cell and no more (tabulate pads every header by two)."""
    widths = [max(len(c) for c in col) for col in zip(headers, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def _videos(row: dict) -> str:
    if row["num_videos"] is None:
        return MISSING
    return f"{row['num_videos']} of {row['num_listed']}" if row["num_listed"] is not None else str(row["num_videos"])


def accuracy_markdown(tables: Tables) -> str:
    """The zoo table: published vs measured accuracy, one row per entry, no row wider than
    :data:`MAX_ROW` characters (short names; :func:`accuracy_legend` gives the rest)."""
    rows = []
    for r in tables.accuracy:
        published = (f"{fmt_num(r['published_top1'])} / {fmt_num(r['published_top5'])}"
                     if r["published_top1"] is not None else MISSING)
        rows.append([
            tables.short.get(r["entry"], r["entry"]) + (f" {UNVERIFIED_MARK}" if r.get("weights_unverified") else ""),
            published,
            fmt_interval(r["top1"], [r["top1_low"], r["top1_high"]]),
            fmt_interval(r["top5"], [r["top5_low"], r["top5_high"]]),
            fmt_delta(r["delta_top1"]), fmt_verdict(r["within_tolerance"]),
        ])
    headers = ["entry", "published top-1 / 5 %", "top-1 % [95% CI]", "top-5 % [95% CI]", "Δ top-1", "tol."]
    return _compact_table(headers, rows)


def accuracy_legend(tables: Tables) -> str:
    """One line per zoo row: the short name, the full entry name, protocol, videos, precision,
    params, GFLOPs and the record."""
    lines = []
    for r in tables.accuracy:
        flops = MISSING if r["gflops"] is None else f"{r['gflops']:g} GFLOPs ({r['flops_counter']})"
        params = MISSING if r["params_m"] is None else f"{fmt_num(r['params_m'])} M params"
        lines.append(f"- `{tables.short.get(r['entry'], r['entry'])}`: {r['entry']} · {r['protocol']} · "
                     f"videos {_videos(r)} · {r['precision'] or MISSING} · {params} · {flops} · "
                     f"record {('`' + r['record'] + '`') if r['record'] else MISSING}")
    unverified = [r for r in tables.accuracy if r.get("weights_unverified")]
    if unverified:
        lines.append(f"- {UNVERIFIED_MARK} unverified weights (not checked against a published hash; the row's "
                     "numbers are not the published checkpoint's): "
                     + "; ".join(f"`{tables.short.get(r['entry'], r['entry'])}`: {r['weights_unverified']}"
                                 for r in unverified))
    return "\n".join(lines)


ACCURACY_NOTE = (
    "Measured accuracy: value [low, high] of the exact (Clopper-Pearson) 95% interval of the record. "
    "*tol.*: the published top-1 and top-5 lie inside the interval widened by the entry's tolerance. "
    "Each row is the newest complete evaluation under the entry's own test protocol "
    "(`<clips>x<crops>-<averaging>-sampler<version>`). Params and GFLOPs are the metafile's, at 1x3x32x256x256, "
    "in the counting convention of their source (0.x metafile: mmcv 1.x module hooks, blind to the matmuls of "
    "non-local blocks; 1.x metafile: mmengine, matmuls and BN included)."
)


def zoo_table_markdown(tables: Tables, report_link: Optional[str] = None) -> str:
    """The table for the project README's ZOO-TABLE block: accuracy only, and, with
    ``report_link`` (the full report's README, as a link from where the table goes), a pointer
    to it for speed and memory."""
    parts = [accuracy_markdown(tables), "", accuracy_legend(tables), "", ACCURACY_NOTE]
    if report_link:
        parts += ["", (f"Speed and memory, split by device, protocol, precision and memory kind, beside the "
                       f"published GPU figures: [full report]({report_link}).")]
    return "\n".join(parts)


def other_evals_markdown(tables: Tables) -> Optional[str]:
    if not tables.other_evals:
        return None
    rows = [[r["entry"], r["status"], r["protocol"], fmt_interval(r["top1"], [r["top1_low"], r["top1_high"]]),
             fmt_interval(r["top5"], [r["top5_low"], r["top5_high"]]), _videos(r),
             f"{r['device']} · {r['precision']}", r["record"]] for r in tables.other_evals]
    return _table(["entry", "why not in the zoo table", "protocol", "top-1 % [95% CI]", "top-5 % [95% CI]", "videos",
                   "device · precision", "record"], rows)


def published_markdown(tables: Tables) -> Optional[str]:
    if not tables.published:
        return None
    rows = [[r["entry"], fmt_speed(r["video_per_s"]), (r["speed_protocol"] or MISSING) if r["video_per_s"] else MISSING,
             MISSING if r["gpu_mem_mb"] is None else str(r["gpu_mem_mb"]), r["gpus"], r["source"]]
            for r in tables.published]
    return _table(["entry", "published GPU video/s (30 views, batch 1)", "frames per video",
                   "published GPU training memory MiB (log max_memory_allocated)", "GPUs", "source"], rows)


def speed_markdown(tables: Tables) -> str:
    if not tables.speed:
        return "_no speed measurements_"
    rows = []
    for r in tables.speed:
        spread = MISSING if r["spread"] is None else f"{100 * r['spread']:.1f} %"
        rows.append([r["model"], r["device"], r["protocol"], r["settings"], r["iteration"] or MISSING,
                     fmt_speed(r["video_per_s"]), fmt_num(r["latency_median_ms"], 1), spread,
                     MISSING if r["n_timed"] is None else str(r["n_timed"]), fmt_ratio(r["vs_published"]), r["record"]])
    return _table(["model", "device", "protocol", "precision · settings", "iteration", "video/s (median)",
                   "median latency ms", "spread (IQR/median)", "timed", "÷ published GPU video/s", "record"], rows)


def skipped_markdown(tables: Tables) -> Optional[str]:
    if not tables.skipped:
        return None
    return _table(["model", "device", "left out (not measured, not filled in)", "record"],
                  [[r["model"], r["device"], r["skipped"], r["record"]] for r in tables.skipped])


def memory_markdown(tables: Tables, kind: str) -> str:
    """One memory kind: numbers of different kinds never share a column."""
    gpu = kind == "cuda_max_memory_allocated"
    rows = []
    for r in tables.memory:
        inf = r["inference_mb"] if r["inference_kind"] == kind else None
        train = r["train_mb"] if r["train_kind"] == kind else None
        if inf is None and train is None:
            continue
        row = [r["model"], r["device"], r["protocol"], r["settings"], fmt_mem(inf), fmt_mem(train),
               (r["train_step"] or MISSING) if train is not None else (r["not_measured"] or MISSING)]
        if gpu:
            row.append(fmt_ratio(r["train_vs_published"]))
        rows.append([*row, r["record"]])
    headers = ["model", "device", "protocol", "precision · settings", "inference peak MiB", "training step peak MiB",
               "training step"]
    if gpu:
        headers.append("÷ published GPU training memory")
    return _table([*headers, "record"], rows)


def training_runs_markdown(tables: Tables) -> Optional[str]:
    if not tables.training:
        return None
    rows = [[t["entry"], t["device"], t["precision"], MISSING if t["epochs"] is None else str(t["epochs"]),
             MISSING if t["batch"] is None else str(t["batch"]), fmt_num(t["top1"]), fmt_num(t["best_top1"]),
             fmt_num(t["wall_time_s"], 0), fmt_mem(t["peak_memory_mb"]), t["memory_kind"] or MISSING, t["record"]]
            for t in tables.training]
    return _table(["entry", "device", "precision", "epochs", "batch", "final val top-1 %", "best val top-1 %",
                   "wall s", "peak memory MiB", "memory kind", "record"], rows)


def records_markdown(tables: Tables) -> str:
    if not tables.records:
        return "_no records_"
    rows = []
    for r in tables.records:
        code = r["code_commit"]
        code = MISSING if not code else code[:8] + ("+dirty" if code.endswith("+dirty") else "")
        software = [r["torch"] and f"torch {r['torch']}", r["cuda"] and f"CUDA {r['cuda']}", r["decoder"], r["host"]]
        rows.append([r["file"], r["obtained"], code, short_hash(r["source_sha256"]),
                     short_hash(r["dataset_fingerprint"]), short_hash(r["checkpoint_sha256"]),
                     " · ".join(str(x) for x in software if x), r["time"]])
    return _table(["record", "obtained", "code", "source sha256", "dataset", "checkpoint sha256", "software · host",
                   "time (UTC)"], rows)


def sweep_markdown(tables: Tables) -> Optional[str]:
    if not tables.sweep:
        return None
    rows = []
    for r in tables.sweep:
        delta = MISSING if r["delta_top1"] is None else (
            f"{r['delta_top1']:+.2f} [{r['delta_low']:+.2f}, {r['delta_high']:+.2f}]")
        rows.append([tables.short.get(r["entry"], r["entry"]), r["variant"] + (" (base)" if r["base"] else ""),
                     fmt_interval(r["top1"], [r["top1_low"], r["top1_high"]]), delta,
                     MISSING if r["mcnemar_p"] is None else f"{r['mcnemar_p']:.3g}"])
    return _table(["model", "variant", "top-1 % [95% CI]", "Δ top-1 vs base [paired 95%]", "McNemar p"], rows)


def compare_markdown(tables: Tables) -> Optional[str]:
    if not tables.compares:
        return None
    parts = []
    for c in tables.compares:
        rows = []
        for x in c["checks"]:
            ratio = MISSING if x["ratio"] is None else f"x{x['ratio']:.3f}" + (
                f" [{x['ratio_low']:.3f}, {x['ratio_high']:.3f}]" if x["ratio_low"] is not None
                and x["ratio_high"] is not None else "")
            rows.append([f"{tables.short.get(x['entry'], x['entry'])} · {x['metric']}",
                         MISSING if x["base"] is None else f"{x['base']:.4g}",
                         MISSING if x["head"] is None else f"{x['head']:.4g}", ratio,
                         MISSING if x["rounds"] is None else str(x["rounds"]), x["verdict"], x["why"] or MISSING])
        parts += [f"{c['base']} → {c['head']} (`{c['file']}`, exit {c['exit_code']})", "",
                  _table(["check", "base", "head", "ratio [interval]", "rounds", "verdict", "why"], rows), ""]
    return "\n".join(parts).rstrip("\n")


def history_markdown(tables: Tables, history) -> str:
    """The steps the history found (the plots are in index.html, the points in history.csv)."""
    n = sum(len(s.points) for s in history.series)
    lines = [(f"{len(history.series)} series, {n} points from {', '.join(history.sources) or MISSING}; "
              "every point in `history.csv`, plotted in `index.html`.")]
    lines += [f"Left out of the history: {u}" for u in history.unreadable]
    if not history.regressions:
        return "\n".join(lines + ["", "No consecutive pair of points was judged REGRESSED."])
    lines += ["", "Judged REGRESSED against the point before (the gate's paired tests):", ""]
    for s, p in history.regressions:
        lines.append(f"- `{tables.short.get(s.entry, s.entry)}` {s.metric} ({s.label}): "
                     f"`{p.step.base_commit}` → `{p.step.head_commit}`: {p.step.change}")
    return "\n".join(lines)


def render_markdown(tables: Tables, figures: list[str], training: Optional[str] = None,
                    records_label: str = "records/", history=None) -> str:
    """The whole report README.md (``records_label``: where the records are, as shown; ``history``:
    a history.History for the steps section, or None)."""
    n = len(tables.used)
    parts = [
        "# Results",
        "",
        (f"{MARK} from the records in `{records_label}` ({n} record{'s' if n != 1 else ''} shown, "
         f"measured {date_range(tables.used)}); do not edit. Published numbers come from `zoo/`. "
         "Every number names its record; the appendix gives each record's provenance."),
    ]
    if tables.not_in_zoo:
        parts.append(f"{len(tables.not_in_zoo)} record(s) of entries outside this zoo are not shown: "
                     + ", ".join(tables.not_in_zoo) + ".")
    parts += ["", "The same tables with interval bars, history plots and provenance: `index.html` (opens from disk).",
              "", "## Accuracy", "", accuracy_markdown(tables), "", accuracy_legend(tables), "", ACCURACY_NOTE, ""]
    other = other_evals_markdown(tables)
    if other:
        parts += ["### Other evaluations (not in the zoo table)", "", other, ""]
    parts += [
        "## Speed", "",
        ("Throughput on random weights (speed does not depend on them): the median iteration time, converted to "
         "videos per second with the *iteration* column (an iteration may be part of a video), and the spread "
         "(IQR / median) of the timed iterations. `published` protocol: MMAction2's benchmark script (one video's "
         "test views per iteration, fp32); `fast`: the same output as fast as i3dbench computes it on that machine "
         "(settings in the row). *÷ published* is given only for GPU records under the published protocol: the "
         "published video/s are GPU figures. A shared measurement stands for several entries of one architecture "
         "(speed and memory do not depend on the data variant or the weights)."),
        "", speed_markdown(tables), "",
    ]
    skipped = skipped_markdown(tables)
    if skipped:
        parts += ["### Left out of the newest measurements", "", skipped, ""]
    pub = published_markdown(tables)
    if pub:
        parts += ["### Published figures (MMAction2; GPU only)", "",
                  ("As printed by MMAction2: video/s on one GPU under the published protocol (30 views of a video "
                   "per iteration, batch 1), training memory from the training log's max_memory_allocated. "
                   "Compare them only with GPU rows."),
                  "", pub, ""]
    parts += ["## Memory", ""]
    if not tables.memory_kinds:
        parts += ["_no memory measurements_", ""]
    for kind in tables.memory_kinds:
        title, what = MEMORY_KINDS.get(kind, (kind, "a memory kind this i3dbench does not describe."))
        parts += [f"### {title} (`{kind}`)", "", f"{what[0].upper()}{what[1:]}", "", memory_markdown(tables, kind), ""]
    sweep = sweep_markdown(tables)
    if sweep:
        parts += ["## Protocol sweep", "", sweep, ""]
    compare = compare_markdown(tables)
    if compare:
        parts += ["## Compare", "", compare, ""]
    if history is not None:
        parts += ["## History", "", history_markdown(tables, history), ""]
    runs = training_runs_markdown(tables)
    if runs:
        parts += ["## Training runs", "", runs, ""]
    if training:
        parts += ["## Training: ours vs published log", "", training, ""]
    if figures:
        parts += ["## Figures", ""] + [f"![{Path(f).stem}]({f})" for f in figures] + [""]
    parts += ["## Records used", "", records_markdown(tables), ""]
    return "\n".join(parts)




__all__ = ["ACCURACY_NOTE", "MARK", "MAX_ROW", "accuracy_legend", "accuracy_markdown", "compare_markdown",
           "history_markdown", "memory_markdown", "other_evals_markdown", "published_markdown", "records_markdown",
           "render_markdown", "skipped_markdown", "speed_markdown", "sweep_markdown", "training_runs_markdown",
           "zoo_table_markdown"]
