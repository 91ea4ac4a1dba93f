"""Render a report folder from records: index.html, markdown tables, CSV files and PNG figures.

Data flows one way: records (and compare files) -> the table model (tables.py; history.py for the
series over runs) -> the renderers (render_markdown.py, render_html.py, figures.py, the CSVs here).
No renderer reads a record file; this module reads them, once, and writes the files.

A report is a pure function of the records, the zoo manifest and the history folders: no "now",
sorted rows, PNGs without date metadata, so rendering twice gives the same bytes. It reads records
as JSON dicts; it never imports the code that produced them.

Files (under ``out_dir``, replaced as a whole, see :func:`render_report`):
  index.html         one self-contained page: every table, interval bars, history plots, provenance
  README.md          all tables, the figures and an appendix of the records used
  accuracy.csv       zoo rows (selection ``zoo``) and other evaluations (selection ``other``)
  speed.csv          one row per speed measurement shown
  memory.csv         one row per memory measurement shown, one column per memory kind
  records.csv        one row per record used: provenance (code, data, checkpoint, how obtained)
  history.csv        one row per point of every history series, steps marked (with a history)
  skipped.csv        what the newest bench measurements left out for lack of time (when any)
  training_runs.csv  train records (only when there are some)
  accuracy_vs_published.png, accuracy_vs_throughput.png, throughput.png (when there is data;
                     drawn by figures.py; smoke and full-size models on separate axes)
  training.csv, training_curves.png  with a training log (``--training-log``)
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from .errors import UserError
from .fileio import atomic_write, replace_dir
from .fmt import MISSING, fmt_delta, fmt_interval, fmt_mem, fmt_num, fmt_ratio, fmt_speed, fmt_verdict
from .records import load_records, run_folder, unique_records
from .render_markdown import (
    ACCURACY_NOTE,
    MARK,
    MAX_ROW,
    _table,
    accuracy_legend,
    accuracy_markdown,
    memory_markdown,
    other_evals_markdown,
    published_markdown,
    records_markdown,
    render_markdown,
    skipped_markdown,
    speed_markdown,
    training_runs_markdown,
    zoo_table_markdown,
)
from .tables import (
    FLOPS_COUNTER,
    MEMORY_KINDS,
    PROTOCOL_ORDER,
    Tables,
    build_tables,
    date_range,
    device_class,
    device_label,
    eval_incomplete,
    eval_protocol,
    load_compares,
    precision,
    settings_label,
    shared_entries,
)
from .zoo import ZooEntry, load_zoo, load_zoos

README_START = "<!-- ZOO-TABLE:START"
README_END = "<!-- ZOO-TABLE:END -->"
FIGURES = ("accuracy_vs_published.png", "accuracy_vs_throughput.png", "throughput.png", "training_curves.png")
CSVS = ("accuracy.csv", "speed.csv", "memory.csv", "records.csv", "skipped.csv", "training_runs.csv", "training.csv",
        "history.csv")
PAGES = ("index.html", "README.md")
# Names an older i3dbench wrote into a report folder: a folder holding only these may be replaced.
LEGACY = ("performance.csv", "conditions.csv", "accuracy_top1.png")
DEFAULT_HISTORY = "default"  # render_report(history=...): results/ and every run folder under the runs root


# --------------------------------------------------------------------------- training logs


def read_log_json(path: str | Path) -> list[dict]:
    """The JSON objects of an MMAction2-format ``log.json``, one per non-empty line."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise UserError(f"{path}: cannot read the training log ({err.strerror})") from None
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as err:
            raise UserError(f"{path}: line {n}: not JSON ({err}); is this a .log.json file?") from None
        if isinstance(obj, dict):
            out.append(obj)
    return out


def summarise_training_log(path: str | Path) -> dict:
    """Per-epoch val top-1/top-5 (percent), mean train loss, and peak ``memory`` of a log.json."""
    lines = read_log_json(path)
    val = {int(d["epoch"]): d for d in lines if d.get("mode") == "val" and "epoch" in d}
    loss: dict[int, list[float]] = {}
    memory = [d["memory"] for d in lines if d.get("mode") == "train" and d.get("memory") is not None]
    for d in lines:
        if d.get("mode") == "train" and d.get("loss") is not None:
            loss.setdefault(int(d["epoch"]), []).append(float(d["loss"]))
    epochs = sorted(val)
    return {
        "val_epochs": epochs,
        "val_top1": [100.0 * float(val[e]["top1_acc"]) for e in epochs if "top1_acc" in val[e]],
        "val_top5": [100.0 * float(val[e]["top5_acc"]) for e in epochs if "top5_acc" in val[e]],
        "loss_epochs": sorted(loss),
        "loss": [sum(loss[e]) / len(loss[e]) for e in sorted(loss)],
        "peak_memory_mb": max(memory) if memory else None,
    }


def training_section(ours: Path, published: Optional[Path], out_dir: Path) -> tuple[str, list[str]]:
    """Markdown table + training.csv + training_curves.png comparing our log with the published one."""
    logs = {"ours": (ours, summarise_training_log(ours))}
    if published is not None:
        logs["published"] = (published, summarise_training_log(published))
    rows = []
    for who, (path, s) in logs.items():
        rows.append({
            "log": who, "log_file": path.name, "epochs_validated": len(s["val_epochs"]),
            "final_top1": s["val_top1"][-1] if s["val_top1"] else None,
            "best_top1": max(s["val_top1"]) if s["val_top1"] else None,
            "final_top5": s["val_top5"][-1] if s["val_top5"] else None,
            "final_loss": s["loss"][-1] if s["loss"] else None, "peak_memory_mb": s["peak_memory_mb"],
        })
    _write_csv(rows, out_dir / "training.csv")
    headers = ["log", "file", "val epochs", "final val top-1 %", "best val top-1 %", "final val top-5 %",
               "final loss", "peak memory MiB (log)"]
    md = _table(headers, [[r["log"], r["log_file"], str(r["epochs_validated"]), fmt_num(r["final_top1"]),
                           fmt_num(r["best_top1"]), fmt_num(r["final_top5"]), fmt_num(r["final_loss"], 4),
                           fmt_mem(r["peak_memory_mb"])] for r in rows])
    from .figures import plot_training_curves

    plot_training_curves({who: (path.name, s) for who, (path, s) in logs.items()}, out_dir / "training_curves.png")
    return md, ["training_curves.png"]


# --------------------------------------------------------------------------- files


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def _write_csv(rows: list[dict], path: Path, columns: Optional[list[str]] = None) -> None:
    columns = columns or (list(rows[0]) if rows else ["record"])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in columns])
    atomic_write(path, buf.getvalue())


def _memory_csv_rows(tables: Tables) -> tuple[list[dict], list[str]]:
    """memory.csv: one column per (inference|train, kind), so no column mixes two kinds."""
    kinds = list(MEMORY_KINDS) + [k for k in tables.memory_kinds if k not in MEMORY_KINDS]
    base = ["model", "entries", "shared", "device_class", "device", "protocol", "precision", "settings"]
    value_cols = [f"{w}_mib_{k}" for k in kinds for w in ("inference", "train")]
    tail = ["train_step", "published_gpu_mem_mb", "train_vs_published", "not_measured", "time", "record", "records"]
    rows = []
    for r in tables.memory:
        row = {c: r[c] for c in base + tail}
        for w in ("inference", "train"):
            if r[f"{w}_kind"]:
                row[f"{w}_mib_{r[f'{w}_kind']}"] = r[f"{w}_mb"]
        rows.append(row)
    return rows, base + value_cols + tail


ACCURACY_COLUMNS = [
    "selection", "entry", "status", "protocol", "published_top1", "published_top5", "top1", "top1_low", "top1_high",
    "top5", "top5_low", "top5_high", "delta_top1", "delta_top5", "tolerance_top1", "tolerance_top5", "within_top1",
    "within_top5", "within_tolerance", "mean_class_accuracy", "num_videos", "num_listed", "num_failed", "device",
    "precision", "params_m", "gflops", "flops_counter", "time", "record",
]
SPEED_COLUMNS = [
    "model", "entries", "shared", "device_class", "device", "protocol", "precision", "settings", "iteration",
    "views_per_video", "video_per_s", "latency_median_ms", "spread", "n_timed", "cut_short", "weights",
    "published_gpu_video_per_s", "vs_published", "time", "record", "records",
]


def _records_label(records_dirs: Sequence[Path], out_dir: Path) -> str:
    if not records_dirs:
        return MISSING
    labels = []
    for records_dir in records_dirs:
        try:
            label = os.path.relpath(records_dir.resolve(), out_dir.resolve())
        except ValueError:  # another drive (Windows)
            label = str(records_dir)
        labels.append(label.rstrip("/") + "/")
    return ", ".join(labels)


def check_out_dir(out_dir: Path, records_dir) -> None:
    """Refuse to replace a folder that is not a report: rendering swaps the whole folder.
    ``records_dir``: a records folder, a list of them, or None."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a folder; give a folder for the report with --out")
    dirs = [] if records_dir is None else [records_dir] if isinstance(records_dir, (str, os.PathLike)) else records_dir
    for d in dirs:
        rec, out = Path(d).resolve(), out_dir.resolve()
        if rec == out or out in rec.parents:
            raise UserError(f"{out_dir}: holds the records ({d}); the report replaces its folder as a whole, "
                            "so render into another one (e.g. report/ next to records/)")
    if out_dir.is_dir():
        ours = {*PAGES, *CSVS, *FIGURES, *LEGACY}
        foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in ours and not p.name.startswith("."))
        if foreign:
            raise UserError(f"{out_dir}: holds {', '.join(foreign[:5])}, which `i3dbench report` did not write; the "
                            "report replaces its folder as a whole, so give an empty or new folder with --out")


@dataclass
class ReportResult:
    out_dir: Path
    files: list[Path]
    tables: Tables
    history: Any = None  # history.History when one was rendered

    @property
    def html(self) -> Path:
        return self.out_dir / "index.html"


def _entries(zoo) -> dict[str, ZooEntry]:
    if isinstance(zoo, dict):
        return zoo
    return load_zoo(zoo) if zoo is not None else load_zoos()


def _as_list(records_dir) -> list[Path]:
    if records_dir is None:
        return []
    if isinstance(records_dir, (str, os.PathLike)):
        return [Path(records_dir)]
    return [Path(p) for p in records_dir]


def _load(dirs: list[Path]) -> list[dict]:
    """The records of every folder, each record once (records.unique_records)."""
    return unique_records(rec for d in dirs for rec in load_records(d))


def _history(history, entries: dict[str, ZooEntry], records: list[dict], dirs: list[Path]):
    """history.History of ``history`` (DEFAULT_HISTORY, a list of folders, or None: no history)."""
    if history is None:
        return None
    from .history import build_history, default_sources, load_history

    sources = default_sources() if history == DEFAULT_HISTORY else [Path(p) for p in history]
    # The records shown are part of the history too: the newest point is this run's.
    unreadable: list[str] = []
    recs = load_history(sources, unreadable)
    seen = {(r["_file"], r["conditions"]["time"]) for r in recs}
    recs += [r for r in records if (r["_file"], r["conditions"]["time"]) not in seen]
    shown = [str(s) for s in sources] + [str(d) for d in dirs if str(d) not in map(str, sources)]
    return build_history(entries, recs, sources=shown, unreadable=unreadable)


def render_report(
    records_dir=None,
    out_dir="report",
    zoo=None,
    training_log=None,
    published_log=None,
    records_label: Optional[str] = None,
    history=None,
) -> ReportResult:
    """Render ``out_dir`` (index.html, README.md, CSVs, PNGs) from the records in ``records_dir``.

    ``records_dir``: a run folder or records folder, or a list of them (their records together;
    None: no records, e.g. only training logs). Compare files of those run folders
    (``<run>/compare/compare-*.json``) give the compare tables.
    ``zoo``: a manifest path, or a dict of entries (default: K400 zoo + smoke zoo).
    ``training_log`` / ``published_log``: MMAction2-format log.json files to compare.
    ``records_label``: how the README names the records folder (default: its path relative to
    ``out_dir``).
    ``history``: folders whose records make the history (run folders, records folders, or folders
    of run folders); DEFAULT_HISTORY: ``results/`` and every run folder under the runs root (what
    ``i3dbench report`` and ``i3dbench run`` use); None (the default) or []: no history section,
    so that the rendering depends on the records given alone (``publish``).

    Everything is written into a temp folder next to ``out_dir`` which then replaces it whole
    (:func:`fileio.replace_dir`): an error (a full disk, a bad log file) leaves the old report
    untouched and no temp folder behind. ``out_dir`` must be a report folder (or new/empty):
    a folder holding other files is refused. Same records in, same bytes out.
    """
    out_dir = Path(out_dir)
    dirs = _as_list(records_dir)
    check_out_dir(out_dir, dirs)
    entries = _entries(zoo)
    records = _load(dirs)
    compares = load_compares([run_folder(d) for d in dirs])
    tables = build_tables(entries, records, compares)
    hist = _history(history or None, entries, records, dirs)
    label = records_label or _records_label(dirs, out_dir)
    names: list[str] = []

    def build(tmp: Path) -> None:
        acc = tables.accuracy + tables.other_evals
        _write_csv(acc, tmp / "accuracy.csv", ACCURACY_COLUMNS)
        _write_csv(tables.speed, tmp / "speed.csv", SPEED_COLUMNS)
        mem_rows, mem_cols = _memory_csv_rows(tables)
        _write_csv(mem_rows, tmp / "memory.csv", mem_cols)
        _write_csv(tables.records, tmp / "records.csv", list(_RECORD_COLUMNS))
        if tables.skipped:
            _write_csv(tables.skipped, tmp / "skipped.csv")
            names.append("skipped.csv")
        names.extend(["accuracy.csv", "speed.csv", "memory.csv", "records.csv"])
        if tables.training:
            _write_csv(tables.training, tmp / "training_runs.csv")
            names.append("training_runs.csv")
        if hist is not None:
            from .history import CSV_COLUMNS, history_rows

            _write_csv(history_rows(hist), tmp / "history.csv", CSV_COLUMNS)
            names.append("history.csv")
        from .figures import plot_accuracy, plot_accuracy_vs_throughput, plot_throughput

        figures = []
        for name, plot in (("accuracy_vs_published.png", plot_accuracy),
                           ("accuracy_vs_throughput.png", plot_accuracy_vs_throughput),
                           ("throughput.png", plot_throughput)):
            if plot(tables, tmp / name):
                figures.append(name)
        training_md = None
        if training_log is not None:
            training_md, figs = training_section(Path(training_log), Path(published_log) if published_log else None,
                                                 tmp)
            figures += figs
            names.append("training.csv")
        atomic_write(tmp / "README.md", render_markdown(tables, figures, training_md, label, hist))
        from .render_html import render_html

        atomic_write(tmp / "index.html", render_html(tables, hist, out_dir, label))
        names.extend(["README.md", "index.html", *figures])

    replace_dir(out_dir, build)
    return ReportResult(out_dir=out_dir, files=sorted(out_dir / n for n in names), tables=tables, history=hist)


_RECORD_COLUMNS = ("file", "entry", "kind", "protocol", "device", "precision", "settings", "time", "obtained",
                   "code_commit", "source_sha256", "dataset_fingerprint", "checkpoint_sha256", "torch", "cuda",
                   "decoder", "host", "measurement", "shared_by")


def readme_with_block(text: str, table: str, where: str = "README") -> str:
    """``text`` with the part between the ZOO-TABLE markers replaced by ``table``."""
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise UserError(f"{where}: no `{README_START} ... -->` / `{README_END}` block to put the zoo table in; "
                        "add the two marker lines where the table goes")
    head = text[: text.index("\n", start) + 1]
    return head + table.rstrip("\n") + "\n" + text[end:]


def update_readme_block(readme: Path, table: str) -> bool:
    """Replace the zoo table block of ``readme`` atomically (its mode kept); False if it has no markers."""
    text = Path(readme).read_text()
    try:
        new = readme_with_block(text, table, str(readme))
    except UserError:
        return False
    if new != text:
        atomic_write(readme, new)
    return True


__all__ = [
    "ACCURACY_NOTE",
    "DEFAULT_HISTORY",
    "FLOPS_COUNTER",
    "MARK",
    "MAX_ROW",
    "MEMORY_KINDS",
    "MISSING",
    "PROTOCOL_ORDER",
    "ReportResult",
    "Tables",
    "accuracy_legend",
    "accuracy_markdown",
    "build_tables",
    "check_out_dir",
    "date_range",
    "device_class",
    "device_label",
    "eval_incomplete",
    "eval_protocol",
    "fmt_delta",
    "fmt_interval",
    "fmt_mem",
    "fmt_num",
    "fmt_ratio",
    "fmt_speed",
    "fmt_verdict",
    "memory_markdown",
    "other_evals_markdown",
    "precision",
    "published_markdown",
    "readme_with_block",
    "records_markdown",
    "render_markdown",
    "render_report",
    "settings_label",
    "shared_entries",
    "skipped_markdown",
    "speed_markdown",
    "summarise_training_log",
    "training_runs_markdown",
    "update_readme_block",
    "zoo_table_markdown",
]
