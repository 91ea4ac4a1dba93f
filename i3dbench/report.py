"""Render a report folder from records: markdown tables, CSV files and PNG figures.

The tables are built so that they cannot mislead:

* every number comes from one named record: its file name is in the row (CSV too), and the
  appendix lists each record used with its provenance;
* accuracy: per zoo entry the newest *complete* eval under the entry's own test protocol;
  evals under other protocols and incomplete ones are listed apart, flagged; intervals are
  the record's exact 95% interval, printed ``value [low, high]`` (never ``±``: they are not
  symmetric);
* speed: one row per newest measurement per (model, device, protocol, precision); a
  measurement shared by several entries is one row naming all of them;
* memory: one table per memory kind (a CPU tensor peak and CUDA's max_memory_allocated are
  different quantities); the published figures (GPU, published protocol, training-log
  memory) have their own table, and a ratio to them is given only for GPU records (under
  the published protocol for speed).

A report is a pure function of the records and the zoo manifest: no "now", sorted rows,
PNGs without date metadata, so rendering twice gives the same bytes. It reads records as
JSON dicts; it never imports the code that produced them.

Files (under ``out_dir``, replaced as a whole, see :func:`render_report`):
  README.md          all tables, the figures and an appendix of the records used
  accuracy.csv       zoo rows (selection ``zoo``) and other evaluations (selection ``other``)
  speed.csv          one row per speed measurement shown
  memory.csv         one row per memory measurement shown, one column per memory kind
  records.csv        one row per record used: provenance (code, data, checkpoint, how obtained)
  skipped.csv        what the newest bench measurements left out for lack of time (when any)
  training_runs.csv  train records (only when there are some)
  accuracy_vs_published.png, accuracy_vs_throughput.png, throughput.png (when there is data;
                     drawn by figures.py)
  training.csv, training_curves.png  with a training log (``--training-log``)
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from .errors import UserError
from .fileio import atomic_write, replace_dir
from .records import load_records, memory_kinds, record_time
from .zoo import ZooEntry, load_zoo, load_zoos

MISSING = "—"
README_START = "<!-- ZOO-TABLE:START"
README_END = "<!-- ZOO-TABLE:END -->"
MARK = "Rendered by `i3dbench report`"
FIGURES = ("accuracy_vs_published.png", "accuracy_vs_throughput.png", "throughput.png", "training_curves.png")
CSVS = ("accuracy.csv", "speed.csv", "memory.csv", "records.csv", "skipped.csv", "training_runs.csv", "training.csv")
# Names an older i3dbench wrote into a report folder: a folder holding only these may be replaced.
LEGACY = ("performance.csv", "conditions.csv", "accuracy_top1.png")

FLOPS_COUNTER = {
    "0.x": "mmcv hooks, no matmuls",  # 0.x metafile: mmcv 1.x module hooks, blind to torch.matmul
    "1.x": "mmengine, with matmuls",  # 1.x metafile: mmengine's counter, matmuls and BN included
}
MEMORY_KINDS = {
    "cuda_max_memory_allocated": ("GPU: torch.cuda.max_memory_allocated",
                                  "CUDA allocator peak (MiB), the quantity behind the published training memory."),
    "cpu_tensor_peak": ("CPU: tensor peak",
                        ("bytes of live tensors at the peak (weights, inputs, activations, gradients, optimizer "
                         "state), MiB; not process RSS, and not comparable with GPU memory.")),
}
PROTOCOL_ORDER = {"published": 0, "fast": 1}


# --------------------------------------------------------------------------- formatting


def fmt_num(value, digits: int = 2) -> str:
    """``12.3456 -> "12.35"``; None -> "—"."""
    if value is None:
        return MISSING
    return f"{value:.{digits}f}"


def fmt_speed(value) -> str:
    """video/s over four orders of magnitude (0.0213 on a CPU, 412.5 on a GPU): 3 significant digits."""
    if value is None:
        return MISSING
    return f"{value:.3g}" if value < 100 else f"{value:.1f}"


def fmt_interval(value, interval, digits: int = 2) -> str:
    """``89.06 [78.75, 95.49]``: a value and its (asymmetric) interval; the value alone without one."""
    if value is None:
        return MISSING
    if not interval or interval[0] is None or interval[1] is None:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"


def fmt_delta(value, digits: int = 2) -> str:
    """Signed difference: ``+0.42`` / ``-0.68``."""
    if value is None:
        return MISSING
    return f"{value:+.{digits}f}"


def fmt_ratio(value) -> str:
    return MISSING if value is None else f"×{value:.2f}"


def fmt_mem(value) -> str:
    """MiB: one decimal below 100 (a smoke model's 13.1), whole numbers above."""
    if value is None:
        return MISSING
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def fmt_verdict(ok: Optional[bool]) -> str:
    return MISSING if ok is None else ("✓" if ok else "✗")


def _short(text, n: int = 12) -> str:
    return MISSING if not text else str(text)[:n]


# --------------------------------------------------------------------------- reading records


def eval_protocol(entry: ZooEntry) -> str:
    """The protocol label of the entry's own test protocol, as eval records write it
    (``<clips>x<crops>-<averaging>-sampler<version>``, the same as ``evaluate.protocol_label``)."""
    crops = 3 if entry.test.crop == "three_crop" else 1
    return f"{entry.test.num_clips}x{crops}-{entry.test.average_clips}-sampler{entry.test.sampler_version}"


def eval_incomplete(rec: dict) -> Optional[str]:
    """Why an eval record does not stand for its whole list (None: it does)."""
    m = rec["metrics"]
    n, listed = m.get("num_videos"), m.get("num_listed")
    if m.get("top1") is None or not n:
        return "nothing evaluated"
    if listed is not None and n < listed:
        failed = m.get("num_failed")
        return f"{n} of {listed} videos evaluated" + (f", {failed} failed" if failed else "")
    if rec["extra"].get("complete") is False:
        return "the record says it is incomplete"
    return None


def device_class(rec: dict) -> str:
    c = rec["conditions"]
    return c.get("device_class") or ("gpu" if str(c.get("device", "")).startswith("cuda") else "cpu")


def device_label(rec: dict) -> str:
    return f"{device_class(rec).upper()}: {rec['conditions'].get('device_name') or rec['conditions']['device']}"


def precision(rec: dict) -> str:
    return str(rec["conditions"].get("precision") or "fp32")


def settings_label(rec: dict) -> str:
    """Precision and what else changes the speed: memory format, compile, threads."""
    c = rec["conditions"]
    parts = [precision(rec)]
    if c.get("memory_format") not in (None, "contiguous"):
        parts.append(str(c["memory_format"]))
    if c.get("compile"):
        parts.append("compiled")
    if device_class(rec) == "cpu" and c.get("num_threads"):
        parts.append(f"{c['num_threads']} thread{'s' if c['num_threads'] != 1 else ''}")
    return " · ".join(parts)


def shared_entries(rec: dict) -> Optional[list[str]]:
    """The entries a shared measurement stands for (None: the record's own measurement)."""
    shared = rec["measurement"].get("shared_by")
    return [str(s) for s in shared] if shared else None


def _newest(recs: list[dict]) -> dict:
    return max(recs, key=lambda r: (record_time(r), r["_file"]))


def date_range(recs: list[dict]) -> str:
    days = sorted({record_time(r).date().isoformat() for r in recs})
    if not days:
        return MISSING
    return days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}"


# --------------------------------------------------------------------------- tables (data)


@dataclass
class Tables:
    """The rows of every table (plain dicts, raw values; formatting is separate)."""

    accuracy: list[dict]  # one per zoo entry, in manifest order
    other_evals: list[dict]  # evals not in the zoo table: other protocols, incomplete, other devices
    published: list[dict]  # the published GPU figures, one per entry that has some
    speed: list[dict]  # one per measurement shown
    memory: list[dict]
    training: list[dict]
    used: list[dict]  # the records the tables show, by file name
    skipped: list[dict] = field(default_factory=list)  # bench measurements left out for lack of time
    records: list[dict] = field(default_factory=list)  # one row per record used (provenance)
    not_in_zoo: list[str] = field(default_factory=list)  # files of records of entries outside the zoo

    @property
    def memory_kinds(self) -> list[str]:
        """The memory kinds shown: CUDA first, then CPU, then any other, each its own table."""
        kinds = {r[f"{w}_kind"] for r in self.memory for w in ("inference", "train") if r[f"{w}_kind"]}
        return [k for k in MEMORY_KINDS if k in kinds] + sorted(kinds - set(MEMORY_KINDS))


def _accuracy(entries: dict[str, ZooEntry], evals: list[dict], used: dict) -> tuple[list[dict], list[dict]]:
    rows, others = [], []
    for name, e in entries.items():
        mine = [r for r in evals if r["entry"] == name]
        expected = eval_protocol(e)
        ok = [r for r in mine if r["method"]["protocol"] == expected and eval_incomplete(r) is None]
        rec = _newest(ok) if ok else None
        m = rec["metrics"] if rec else {}
        row = {
            "selection": "zoo", "entry": name, "status": "" if rec else "no complete eval under this protocol",
            "protocol": expected, "published_top1": e.published.top1, "published_top5": e.published.top5,
        }
        for key in ("top1", "top5"):
            interval = m.get(f"{key}_interval") or [None, None]
            pub, tol = getattr(e.published, key), getattr(e.tolerance, key)
            row.update({key: m.get(key), f"{key}_low": interval[0], f"{key}_high": interval[1],
                        f"delta_{key}": m[key] - pub if m.get(key) is not None and pub is not None else None,
                        f"tolerance_{key}": tol})
            # The published value inside the exact interval widened by the tolerance: the difference
            # cannot be told apart from sampling noise plus the accepted tolerance.
            row[f"within_{key}"] = (None if pub is None or interval[0] is None
                                    else bool(interval[0] - tol <= pub <= interval[1] + tol))
        within = [row[f"within_{k}"] for k in ("top1", "top5") if row[f"within_{k}"] is not None]
        row.update({
            "within_tolerance": all(within) if within else None,
            "mean_class_accuracy": m.get("mean_class_accuracy"), "num_videos": m.get("num_videos"),
            "num_listed": m.get("num_listed"), "num_failed": m.get("num_failed"),
            "device": device_label(rec) if rec else None, "precision": precision(rec) if rec else None,
            "params_m": e.published.params_m, "gflops": e.published.gflops,
            "flops_counter": FLOPS_COUNTER.get(e.mmaction) if e.published.gflops is not None else None,
            "time": rec["conditions"]["time"] if rec else None, "record": rec["_file"] if rec else None,
        })
        rows.append(row)
        if rec:
            used[rec["_file"]] = rec

        # Everything else of this entry, newest per (protocol, device, precision, complete or not);
        # a record older than the zoo row's under the same protocol, device and precision is superseded.
        latest: dict[tuple, dict] = {}
        for r in sorted(mine, key=lambda r: (record_time(r), r["_file"])):
            latest[(r["method"]["protocol"], device_label(r), precision(r), eval_incomplete(r) is None)] = r
        for (proto, dev, prec, _), r in sorted(latest.items(), key=lambda kv: (kv[0][:3], kv[1]["_file"])):
            if r is rec or (rec is not None and (proto, dev, prec) == (expected, row["device"], row["precision"])
                            and record_time(r) <= record_time(rec)):
                continue
            why = []
            if proto != expected:
                why.append(f"other protocol (the entry's is {expected})")
            if eval_incomplete(r):
                why.append(f"INCOMPLETE: {eval_incomplete(r)}")
            if not why:
                why.append("also evaluated; the zoo table shows " + (f"the newer {rec['_file']}" if rec else MISSING))
            rm = r["metrics"]
            others.append({
                "selection": "other", "entry": name, "status": "; ".join(why), "protocol": proto,
                "published_top1": e.published.top1, "published_top5": e.published.top5,
                "top1": rm.get("top1"), "top1_low": (rm.get("top1_interval") or [None, None])[0],
                "top1_high": (rm.get("top1_interval") or [None, None])[1],
                "top5": rm.get("top5"), "top5_low": (rm.get("top5_interval") or [None, None])[0],
                "top5_high": (rm.get("top5_interval") or [None, None])[1],
                "mean_class_accuracy": rm.get("mean_class_accuracy"), "num_videos": rm.get("num_videos"),
                "num_listed": rm.get("num_listed"), "num_failed": rm.get("num_failed"),
                "device": dev, "precision": prec, "time": r["conditions"]["time"], "record": r["_file"],
            })
            used[r["_file"]] = r
    return rows, others


def _model_key(rec: dict) -> tuple:
    shared = shared_entries(rec)
    if shared:  # one architecture group measured once: a newer measurement of the group supersedes it
        return ("group", str(rec["measurement"].get("group") or ",".join(sorted(shared))))
    return ("entry", rec["entry"])


def _measurements(bench: list[dict], entries: dict[str, ZooEntry], key: Callable[[dict], tuple],
                  used: dict) -> list[tuple[dict, list[dict], list[str]]]:
    """(lead record, all records of the measurement, entries) of the newest measurement per key,
    for measurements that concern an entry of the zoo. Records sharing a measurement id are one
    measurement; its lead is the record of the entry that was measured."""
    latest: dict[tuple, dict] = {}
    for r in sorted(bench, key=lambda r: (record_time(r), r["_file"])):
        names = shared_entries(r) or [r["entry"]]
        if any(n in entries for n in names):
            latest[key(r)] = r
    out = []
    for r in latest.values():
        names = shared_entries(r) or [r["entry"]]
        group = sorted((x for x in bench if x["measurement"]["id"] == r["measurement"]["id"]),
                       key=lambda x: x["_file"]) if shared_entries(r) else [r]
        measured = r["measurement"].get("measured_entry")
        lead = next((x for x in group if x["entry"] == measured), group[0])
        for x in group:
            used[x["_file"]] = x
        out.append((lead, group, names))
    return out


def _model_label(lead: dict, names: list[str]) -> str:
    if shared_entries(lead):
        measured = lead["measurement"].get("measured_entry") or lead["entry"]
        return (f"measured as {measured}; shared by {len(names)} entr{'ies' if len(names) != 1 else 'y'}: "
                f"{', '.join(names)}")
    return lead["entry"]


def _published_value(names: list[str], entries: dict[str, ZooEntry], attr: str) -> Optional[float]:
    """The published figure of these entries, when they all print the same one (else None)."""
    values = {getattr(entries[n].published, attr) for n in names if n in entries}
    values.discard(None)
    return values.pop() if len(values) == 1 else None


def _row_order(entries: dict[str, ZooEntry]) -> Callable[[dict], tuple]:
    index = {n: i for i, n in enumerate(entries)}

    def order(row: dict) -> tuple:
        # Series first (device, protocol, precision), then the zoo's order: rows that compare are together.
        first = min((index.get(n, len(index)) for n in row["entries"].split(";")), default=len(index))
        return (row["device_class"] != "gpu", row["device"], PROTOCOL_ORDER.get(row["protocol"], 9), row["protocol"],
                row["settings"], first, row["record"])

    return order


def _speed(entries: dict[str, ZooEntry], bench: list[dict], used: dict) -> list[dict]:
    timed = [r for r in bench if r["metrics"].get("video_per_s") is not None]
    rows = []
    for lead, group, names in _measurements(
            timed, entries, lambda r: (_model_key(r), device_label(r), r["method"]["protocol"], precision(r)), used):
        m, meth = lead["metrics"], lead["method"]
        pub = _published_value(names, entries, "video_per_s")
        # Published video/s is a GPU figure under the published protocol (30 views, batch 1):
        # a ratio means something only for a GPU record measured the same way.
        comparable = device_class(lead) == "gpu" and meth["protocol"] == "published" and pub is not None
        rows.append({
            "model": _model_label(lead, names), "entries": ";".join(names), "shared": bool(shared_entries(lead)),
            "device_class": device_class(lead), "device": device_label(lead), "protocol": meth["protocol"],
            "precision": precision(lead), "settings": settings_label(lead),
            "iteration": meth.get("iteration"), "views_per_video": meth.get("views_per_video"),
            "video_per_s": m.get("video_per_s"), "latency_median_ms": m.get("latency_median_ms"),
            "spread": m.get("spread"), "n_timed": m.get("n_timed"), "cut_short": meth.get("cut_short"),
            "weights": meth.get("weights"),
            "published_gpu_video_per_s": pub if comparable else None,
            "vs_published": m["video_per_s"] / pub if comparable and pub else None,
            "time": lead["conditions"]["time"], "record": lead["_file"],
            "records": ";".join(x["_file"] for x in group),
        })
    return sorted(rows, key=_row_order(entries))


def _memory(entries: dict[str, ZooEntry], bench: list[dict], used: dict) -> list[dict]:
    measured = [r for r in bench if r["metrics"].get("inference_memory_mb") is not None
                or r["metrics"].get("train_memory_mb") is not None]
    rows = []
    for lead, group, names in _measurements(
            measured, entries,
            lambda r: (_model_key(r), device_label(r), r["method"]["protocol"], precision(r), memory_kinds(r)), used):
        m, c = lead["metrics"], lead["conditions"]
        train_kind = c.get("train_memory_kind") if m.get("train_memory_mb") is not None else None
        pub = _published_value(names, entries, "gpu_mem_mb")
        # The published gpu_mem is a GPU training-log max_memory_allocated: only that kind compares.
        comparable = train_kind == "cuda_max_memory_allocated" and pub is not None
        rows.append({
            "model": _model_label(lead, names), "entries": ";".join(names), "shared": bool(shared_entries(lead)),
            "device_class": device_class(lead), "device": device_label(lead), "protocol": lead["method"]["protocol"],
            "precision": precision(lead), "settings": settings_label(lead),
            "inference_mb": m.get("inference_memory_mb"),
            "inference_kind": c.get("inference_memory_kind") if m.get("inference_memory_mb") is not None else None,
            "train_mb": m.get("train_memory_mb"), "train_kind": train_kind,
            "train_step": lead["method"].get("train_memory"),
            "published_gpu_mem_mb": pub if comparable else None,
            "train_vs_published": m["train_memory_mb"] / pub if comparable else None,
            "not_measured": "; ".join(map(str, lead["extra"].get("skipped") or [])),
            "time": c["time"], "record": lead["_file"], "records": ";".join(x["_file"] for x in group),
        })
    return sorted(rows, key=_row_order(entries))


def _skipped(entries: dict[str, ZooEntry], bench: list[dict], used: dict) -> list[dict]:
    """What the newest bench measurement of each model and device left out (a time budget ran
    out): said, never filled in from elsewhere."""
    scratch: dict[str, dict] = {}
    rows = []
    for lead, group, names in _measurements(bench, entries, lambda r: (_model_key(r), device_label(r)), scratch):
        skipped = [str(s) for s in lead["extra"].get("skipped") or []]
        if not skipped:
            continue
        used.update({x["_file"]: x for x in group})
        rows.append({"model": _model_label(lead, names), "entries": ";".join(names), "device": device_label(lead),
                     "protocol": lead["method"]["protocol"], "skipped": "; ".join(skipped),
                     "time": lead["conditions"]["time"], "record": lead["_file"],
                     "records": ";".join(x["_file"] for x in group)})
    return sorted(rows, key=lambda r: (r["device"], r["model"]))


def _published(entries: dict[str, ZooEntry]) -> list[dict]:
    rows = []
    for name, e in entries.items():
        p = e.published
        if p.video_per_s is None and p.gpu_mem_mb is None:
            continue
        rows.append({"entry": name, "video_per_s": p.video_per_s, "speed_protocol": p.speed_protocol,
                     "gpu_mem_mb": p.gpu_mem_mb, "gpus": p.gpus, "source": p.source})
    return rows


def _training(entries: dict[str, ZooEntry], train: list[dict], used: dict) -> list[dict]:
    latest: dict[tuple, dict] = {}
    for r in sorted(train, key=lambda r: (record_time(r), r["_file"])):
        if r["entry"] in entries:
            latest[(r["entry"], device_label(r), precision(r))] = r
    rows = []
    for (name, dev, prec), r in sorted(latest.items()):
        m = r["metrics"]
        used[r["_file"]] = r
        rows.append({
            "entry": name, "device": dev, "precision": prec, "epochs": m.get("epochs"),
            "batch": r["conditions"].get("batch"), "top1": m.get("top1"), "top5": m.get("top5"),
            "best_top1": m.get("best_top1"), "wall_time_s": m.get("wall_time_s"),
            "peak_memory_mb": m.get("peak_memory_mb"),
            "memory_kind": m.get("memory_kind") or r["conditions"].get("train_memory_kind"),
            "time": r["conditions"]["time"], "record": r["_file"],
        })
    return rows


def _obtained(rec: dict) -> str:
    o = rec["obtained"]
    if o.get("how") == "resumed":
        src = ", ".join(map(str, o.get("reused_from") or [])) or "an interrupted run"
        return f"resumed: {o.get('rows_reused')} rows reused from {src}, {o.get('rows_computed')} computed"
    return "computed"


def _record_row(rec: dict) -> dict:
    c = rec["conditions"]
    code = c.get("code") or {}
    commit = code.get("commit")
    return {
        "file": rec["_file"], "entry": rec["entry"], "kind": rec["kind"], "protocol": rec["method"]["protocol"],
        "device": device_label(rec), "precision": precision(rec), "settings": settings_label(rec),
        "time": c["time"], "obtained": _obtained(rec),
        "code_commit": (commit + ("+dirty" if code.get("dirty") else "")) if commit else None,
        "source_sha256": code.get("source_sha256"), "dataset_fingerprint": c.get("dataset_fingerprint"),
        "checkpoint_sha256": c.get("checkpoint_sha256"),
        "torch": c.get("torch"), "cuda": c.get("cuda"),
        "decoder": " ".join(str(x) for x in (c.get("decoder"), c.get("decoder_version")) if x) or None,
        "host": c.get("host"), "measurement": rec["measurement"]["id"],
        "shared_by": ";".join(shared_entries(rec) or []) or None,
    }


def build_tables(entries: dict[str, ZooEntry], records: list[dict]) -> Tables:
    """Select the records to show and the numbers of every table (see the module docstring)."""
    used: dict[str, dict] = {}
    by_kind = {k: [r for r in records if r["kind"] == k] for k in ("eval", "bench", "train")}
    accuracy, other = _accuracy(entries, by_kind["eval"], used)
    tables = Tables(
        accuracy=accuracy,
        other_evals=other,
        published=_published(entries),
        speed=_speed(entries, by_kind["bench"], used),
        memory=_memory(entries, by_kind["bench"], used),
        training=_training(entries, by_kind["train"], used),
        used=[],
        skipped=_skipped(entries, by_kind["bench"], used),
    )
    tables.used = [used[f] for f in sorted(used)]
    tables.records = [_record_row(r) for r in tables.used]
    tables.not_in_zoo = sorted(r["_file"] for r in records if r["entry"] not in entries
                               and not any(n in entries for n in shared_entries(r) or []))
    return tables


# --------------------------------------------------------------------------- markdown


def _table(headers: list[str], rows: list[list[str]]) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def _videos(row: dict) -> str:
    if row["num_videos"] is None:
        return MISSING
    return f"{row['num_videos']} of {row['num_listed']}" if row["num_listed"] is not None else str(row["num_videos"])


def accuracy_markdown(tables: Tables) -> str:
    """The zoo table: published vs measured accuracy, one row per entry."""
    rows = []
    for r in tables.accuracy:
        published = (f"{fmt_num(r['published_top1'])} / {fmt_num(r['published_top5'])}"
                     if r["published_top1"] is not None else MISSING)
        rows.append([
            r["entry"], published,
            fmt_interval(r["top1"], [r["top1_low"], r["top1_high"]]),
            fmt_interval(r["top5"], [r["top5_low"], r["top5_high"]]),
            fmt_delta(r["delta_top1"]), fmt_verdict(r["within_tolerance"]), _videos(r), r["protocol"],
            r["precision"] or MISSING, fmt_num(r["params_m"]),
            MISSING if r["gflops"] is None else f"{r['gflops']:g} ({r['flops_counter']})", r["record"] or MISSING,
        ])
    headers = ["entry", "published top-1 / top-5 %", "top-1 % [95% CI]", "top-5 % [95% CI]", "Δ top-1",
               "within tol.", "videos", "protocol", "precision", "params (M)", "GFLOPs (counter)", "record"]
    return _table(headers, rows)


ACCURACY_NOTE = (
    "Measured accuracy: value [low, high] of the exact (Clopper-Pearson) 95% interval of the record. "
    "*within tol.*: the published top-1 and top-5 lie inside the interval widened by the entry's tolerance. "
    "Each row is the newest complete evaluation under the entry's own test protocol "
    "(`<clips>x<crops>-<averaging>-sampler<version>`). Params and GFLOPs are the metafile's, at 1x3x32x256x256, "
    "in the counting convention of their source (0.x metafile: mmcv 1.x module hooks, blind to the matmuls of "
    "non-local blocks; 1.x metafile: mmengine, matmuls and BN included)."
)


def zoo_table_markdown(tables: Tables, report_link: Optional[str] = None) -> str:
    """The table for the project README's ZOO-TABLE block: accuracy only, and, with
    ``report_link`` (the full report's README, as a link from where the table goes), a pointer
    to it for speed and memory."""
    parts = [accuracy_markdown(tables), "", ACCURACY_NOTE]
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
        rows.append([r["file"], r["obtained"], code, _short(r["source_sha256"]), _short(r["dataset_fingerprint"]),
                     _short(r["checkpoint_sha256"]), " · ".join(str(x) for x in software if x), r["time"]])
    return _table(["record", "obtained", "code", "source sha256", "dataset", "checkpoint sha256", "software · host",
                   "time (UTC)"], rows)


def render_markdown(tables: Tables, figures: list[str], training: Optional[str] = None,
                    records_label: str = "records/") -> str:
    """The whole report README.md (``records_label``: where the records are, as shown)."""
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
    parts += ["", "## Accuracy", "", accuracy_markdown(tables), "", ACCURACY_NOTE, ""]
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
    runs = training_runs_markdown(tables)
    if runs:
        parts += ["## Training runs", "", runs, ""]
    if training:
        parts += ["## Training: ours vs published log", "", training, ""]
    if figures:
        parts += ["## Figures", ""] + [f"![{Path(f).stem}]({f})" for f in figures] + [""]
    parts += ["## Records used", "", records_markdown(tables), ""]
    return "\n".join(parts)


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


def _records_label(records_dir: Optional[Path], out_dir: Path) -> str:
    if records_dir is None:
        return MISSING
    try:
        label = os.path.relpath(records_dir.resolve(), out_dir.resolve())
    except ValueError:  # another drive (Windows)
        label = str(records_dir)
    return label.rstrip("/") + "/"


def check_out_dir(out_dir: Path, records_dir: Optional[Path]) -> None:
    """Refuse to replace a folder that is not a report: rendering swaps the whole folder."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a folder; give a folder for the report with --out")
    if records_dir is not None:
        rec, out = records_dir.resolve(), out_dir.resolve()
        if rec == out or out in rec.parents:
            raise UserError(f"{out_dir}: holds the records ({records_dir}); the report replaces its folder as a whole, "
                            "so render into another one (e.g. report/ next to records/)")
    if out_dir.is_dir():
        ours = {"README.md", *CSVS, *FIGURES, *LEGACY}
        foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in ours and not p.name.startswith("."))
        if foreign:
            raise UserError(f"{out_dir}: holds {', '.join(foreign[:5])}, which `i3dbench report` did not write; the "
                            "report replaces its folder as a whole, so give an empty or new folder with --out")


@dataclass
class ReportResult:
    out_dir: Path
    files: list[Path]
    tables: Tables


def _entries(zoo) -> dict[str, ZooEntry]:
    if isinstance(zoo, dict):
        return zoo
    return load_zoo(zoo) if zoo is not None else load_zoos()


def render_report(
    records_dir=None,
    out_dir="report",
    zoo=None,
    training_log=None,
    published_log=None,
    records_label: Optional[str] = None,
) -> ReportResult:
    """Render ``out_dir`` (README.md, CSVs, PNGs) from the records in ``records_dir``.

    ``records_dir``: a run folder or records folder (None: no records, e.g. only training logs).
    ``zoo``: a manifest path, or a dict of entries (default: K400 zoo + smoke zoo).
    ``training_log`` / ``published_log``: MMAction2-format log.json files to compare.
    ``records_label``: how the README names the records folder (default: its path relative to
    ``out_dir``).

    Everything is written into a temp folder next to ``out_dir`` which then replaces it whole
    (:func:`fileio.replace_dir`): an error (a full disk, a bad log file) leaves the old report
    untouched and no temp folder behind. ``out_dir`` must be a report folder (or new/empty):
    a folder holding other files is refused. Same records in, same bytes out.
    """
    out_dir = Path(out_dir)
    records_path = None if records_dir is None else Path(records_dir)
    check_out_dir(out_dir, records_path)
    entries = _entries(zoo)
    records = load_records(records_path) if records_path is not None else []
    tables = build_tables(entries, records)
    label = records_label or _records_label(records_path, out_dir)
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
        atomic_write(tmp / "README.md", render_markdown(tables, figures, training_md, label))
        names.extend(["README.md", *figures])

    replace_dir(out_dir, build)
    return ReportResult(out_dir=out_dir, files=sorted(out_dir / n for n in names), tables=tables)


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
    "MEMORY_KINDS",
    "ReportResult",
    "Tables",
    "accuracy_markdown",
    "build_tables",
    "check_out_dir",
    "eval_incomplete",
    "eval_protocol",
    "fmt_delta",
    "fmt_interval",
    "fmt_num",
    "fmt_speed",
    "readme_with_block",
    "render_markdown",
    "render_report",
    "summarise_training_log",
    "update_readme_block",
    "zoo_table_markdown",
]
