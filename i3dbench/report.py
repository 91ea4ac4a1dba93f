"""Render results/ from the records: markdown tables, CSV files and PNG figures.

Everything in ``results/`` comes from here (plus the records themselves); nothing is written
by hand. Output is a pure function of the records and the zoo manifests: rendering twice
from the same records gives byte-identical files (no timestamps, sorted rows, PNGs saved
without software/date metadata).

Files (under ``out_dir``):
  README.md        the comparison tables (markdown, tabulate) and the conditions of each number
  accuracy.csv     one row per zoo entry: published vs measured top-1/top-5, CI, delta, verdict
  performance.csv  one row per (entry, device, protocol): video/s, spread, memory, vs published
  conditions.csv   one row per record used: its full conditions
  training_runs.csv  our training runs (train records): epochs, final/best val top-1, time, memory
  accuracy_top1.png, throughput.png   figures (only when there is something to plot)
  training.csv, training_curves.png   with a training log (and optionally the published one)

Arrows in headers say which way is better (↑ higher, ↓ lower); measured accuracies are
shown as ``value ± half-width of the 95% bootstrap CI``.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .fileio import atomic_write
from .records import load_records, record_protocol
from .zoo import ZooEntry, load_zoo, load_zoos

MISSING = "—"
GENERATED = ("README.md", "accuracy.csv", "performance.csv", "conditions.csv", "training_runs.csv",
             "accuracy_top1.png", "throughput.png", "training.csv", "training_curves.png")
README_START = "<!-- ZOO-TABLE:START"
README_END = "<!-- ZOO-TABLE:END -->"


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


def fmt_ci(value, ci, digits: int = 2) -> str:
    """``value ± half-width`` of a [low, high] interval (``value`` alone without an interval)."""
    if value is None:
        return MISSING
    if not ci or ci[0] is None or ci[1] is None:
        return fmt_num(value, digits)
    return f"{value:.{digits}f} ± {(ci[1] - ci[0]) / 2:.{digits}f}"


def fmt_delta(value, digits: int = 2) -> str:
    """Signed difference: ``+0.42`` / ``-0.68``."""
    if value is None:
        return MISSING
    return f"{value:+.{digits}f}"


def fmt_verdict(ok: Optional[bool]) -> str:
    return MISSING if ok is None else ("✓" if ok else "✗")


# --------------------------------------------------------------------------- selecting records


def _newest(records: list[dict], entry: str, kind: str, prefer_protocol: Optional[str] = None) -> Optional[dict]:
    """Newest record of ``entry``/``kind``; among them the newest with ``prefer_protocol`` if any."""
    mine = [r for r in records if r["entry"] == entry and r["kind"] == kind]
    if prefer_protocol is not None:
        mine = [r for r in mine if record_protocol(r) == prefer_protocol] or mine
    return max(mine, key=lambda r: (r["conditions"]["time"], r.get("_file", ""))) if mine else None


def default_eval_protocol(entry: ZooEntry) -> str:
    crops = 3 if entry.test.crop == "three_crop" else 1
    return f"{entry.test.num_clips}x{crops}-{entry.test.average_clips}"


def _short(text, n: int = 8) -> str:
    return MISSING if not text else str(text)[:n]


def describe_conditions(c: dict) -> str:
    """One compact line: device, precision[, cl3d][, compiled], torch (+CUDA), decoder, commit."""
    parts = [c.get("device_name") or c.get("device"), c.get("precision")]
    if c.get("memory_format") not in (None, "contiguous"):
        parts.append(str(c["memory_format"]))
    if c.get("compile"):
        parts.append("compiled")
    torch_part = f"torch {c.get('torch')}" + (f"/CUDA {c['cuda']}" if c.get("cuda") else "")
    parts.append(torch_part)
    if c.get("decoder"):
        parts.append(f"{c['decoder']} {c.get('decoder_version') or ''}".strip())
    if c.get("git_commit"):
        parts.append(f"git {_short(c['git_commit'])}{'+dirty' if c.get('git_dirty') else ''}")
    return " · ".join(str(p) for p in parts if p)


# --------------------------------------------------------------------------- tables (data)


@dataclass
class Tables:
    accuracy: Any  # pandas.DataFrame, one row per zoo entry
    performance: Any  # pandas.DataFrame, one row per (entry, device, protocol)
    conditions: Any  # pandas.DataFrame, one row per record used
    used: list[dict]  # the records the tables show
    training: Any = None  # pandas.DataFrame, the newest train record per (entry, device)


def build_tables(entries: dict[str, ZooEntry], records: list[dict]) -> Tables:
    """The numbers of every table, as DataFrames (raw values; formatting is separate)."""
    import pandas as pd

    from .records import newest_records

    acc_rows, perf_rows, used = [], [], {}
    for name, e in entries.items():
        rec = _newest(records, name, "eval", default_eval_protocol(e))
        m = rec["metrics"] if rec else {}
        cmp = rec.get("extra", {}).get("comparison", {}) if rec else {}
        row = {
            "entry": name,
            "published_top1": e.published.top1,
            "published_top5": e.published.top5,
            "published_video_per_s": e.published.video_per_s,
            "published_gpu_mem_mb": e.published.gpu_mem_mb,
            "top1": m.get("top1"),
            "top1_ci_low": (m.get("top1_ci") or [None, None])[0],
            "top1_ci_high": (m.get("top1_ci") or [None, None])[1],
            "top5": m.get("top5"),
            "top5_ci_low": (m.get("top5_ci") or [None, None])[0],
            "top5_ci_high": (m.get("top5_ci") or [None, None])[1],
            "mean_class_accuracy": m.get("mean_class_accuracy"),
            "delta_top1": cmp.get("top1", {}).get("delta"),
            "delta_top5": cmp.get("top5", {}).get("delta"),
            "within_tolerance": (all(v["within"] for v in cmp.values()) if cmp else None),
            "tolerance_top1": e.tolerance.top1,
            "num_videos": m.get("num_videos"),
            "num_listed": m.get("num_listed"),
            "protocol": record_protocol(rec) if rec else None,
            "record": rec.get("_file") if rec else None,
        }
        acc_rows.append(row)
        if rec:
            used[rec["_file"]] = rec

    for key, rec in sorted(newest_records([r for r in records if r["kind"] == "bench"]).items()):
        name, _, device_name, protocol = key
        e = entries.get(name)
        if e is None:
            continue
        m = rec["metrics"]
        vps = m.get("video_per_s")
        # Published speed and gpu_mem are GPU figures: a ratio only means something on a GPU.
        on_gpu = str(rec["conditions"].get("device", "")).startswith("cuda")
        pub_vps = e.published.video_per_s if protocol == "published" and on_gpu else None
        pub_mem = e.published.gpu_mem_mb if on_gpu else None
        train_mem = m.get("train_memory_mb")
        perf_rows.append({
            "entry": name,
            "device_name": device_name,
            "device": rec["conditions"].get("device"),
            "protocol": protocol,
            "published_video_per_s": e.published.video_per_s,
            "video_per_s": vps,
            "rel_std": m.get("rel_std"),
            "speed_ratio": (vps / pub_vps) if (vps and pub_vps) else None,
            "published_gpu_mem_mb": e.published.gpu_mem_mb,
            "train_memory_mb": train_mem,
            "inference_memory_mb": m.get("peak_memory_mb"),
            "memory_kind": (rec.get("extra") or {}).get("memory_kind"),
            "measured_as": ((rec.get("extra") or {}).get("shared_measurement") or {}).get("measured_with_entry", name),
            "memory_ratio": (train_mem / pub_mem) if (train_mem and pub_mem) else None,
            "precision": rec["conditions"].get("precision"),
            "batch": rec["conditions"].get("batch"),
            "views": rec["conditions"].get("views"),
            "weights": (rec.get("extra") or {}).get("weights"),
            "record": rec.get("_file"),
        })
        used[rec["_file"]] = rec

    train_rows = []
    for key, rec in sorted(newest_records([r for r in records if r["kind"] == "train"]).items()):
        if key[0] not in entries:
            continue
        m = rec["metrics"]
        train_rows.append({
            "entry": key[0], "device_name": key[2], "epochs": m.get("epochs"), "top1": m.get("top1"),
            "top5": m.get("top5"), "best_top1": m.get("best_top1"), "wall_time_s": m.get("wall_time_s"),
            "peak_memory_mb": m.get("peak_memory_mb"), "memory_kind": m.get("memory_kind"),
            "batch": rec["conditions"].get("batch"), "record": rec.get("_file"),
        })
        used[rec["_file"]] = rec

    cond_rows = []
    for file, rec in sorted(used.items()):
        c = rec["conditions"]
        cond_rows.append({
            "record": file, "entry": rec["entry"], "kind": rec["kind"], "protocol": record_protocol(rec),
            "device_name": c.get("device_name"), "precision": c.get("precision"),
            "memory_format": c.get("memory_format"), "compile": c.get("compile"),
            "batch": c.get("batch"), "views": c.get("views"),
            "torch": c.get("torch"), "cuda": c.get("cuda"), "cudnn": c.get("cudnn"),
            "decoder": c.get("decoder"), "decoder_version": c.get("decoder_version"),
            "git_commit": c.get("git_commit"), "git_dirty": c.get("git_dirty"),
            "dataset_fingerprint": c.get("dataset_fingerprint"), "checkpoint_sha256": c.get("checkpoint_sha256"),
            "time": c.get("time"), "host": c.get("host"),
        })
    return Tables(
        accuracy=pd.DataFrame(acc_rows),
        performance=pd.DataFrame(perf_rows, columns=list(perf_rows[0]) if perf_rows else ["entry"]),
        conditions=pd.DataFrame(cond_rows, columns=list(cond_rows[0]) if cond_rows else ["record"]),
        used=list(used.values()),
        training=pd.DataFrame(train_rows, columns=list(train_rows[0]) if train_rows else ["entry"]),
    )


# --------------------------------------------------------------------------- markdown


def _none(v):
    """pandas turns None into NaN in numeric columns; back to None for formatting."""
    return None if isinstance(v, float) and math.isnan(v) else v


def _count(v) -> str:
    """A count (batch, views) that pandas may have made a float."""
    v = _none(v)
    return MISSING if v is None else str(int(v))


def zoo_table_markdown(tables: Tables) -> str:
    """The main table: one row per zoo entry, accuracy and speed/memory side by side."""
    from tabulate import tabulate

    perf = tables.performance
    rows = []
    for r in tables.accuracy.to_dict("records"):
        r = {k: _none(v) for k, v in r.items()}
        bench = memory = None
        if len(perf) and "entry" in perf:
            mine = [{k: _none(v) for k, v in p.items()} for p in perf[perf["entry"] == r["entry"]].to_dict("records")]
            # Prefer what compares with the published figure: the published protocol, on a GPU.
            mine.sort(key=lambda p: (p["video_per_s"] is None, p["protocol"] != "published",
                                     not str(p["device"]).startswith("cuda"), p["device_name"] or ""))
            bench = mine[0] if mine else None
            # Training memory may come from another record (protocol "memory"): same device first.
            with_mem = [p for p in mine if p["train_memory_mb"] is not None]
            with_mem.sort(key=lambda p: (p["device_name"] != (bench or {}).get("device_name"),
                                         not str(p["device"]).startswith("cuda"), p["device_name"] or ""))
            memory = with_mem[0] if with_mem else None
        mem_cell = MISSING
        if memory is not None:
            mem_cell = fmt_num(memory["train_memory_mb"], 0)
            if bench is None or memory["device_name"] != bench["device_name"]:
                mem_cell += f" ({memory['device_name']})"
        published = (f"{fmt_num(r['published_top1'])} / {fmt_num(r['published_top5'])}"
                     if r["published_top1"] is not None else MISSING)
        rows.append([
            r["entry"],
            published,
            fmt_ci(r["top1"], [r["top1_ci_low"], r["top1_ci_high"]]),
            fmt_ci(r["top5"], [r["top5_ci_low"], r["top5_ci_high"]]),
            fmt_delta(r["delta_top1"]),
            fmt_verdict(r["within_tolerance"]),
            fmt_speed(r["published_video_per_s"]),
            fmt_speed(bench["video_per_s"]) if bench else MISSING,
            (bench["device_name"] if bench and bench["video_per_s"] is not None else MISSING),
            fmt_num(r["published_gpu_mem_mb"], 0),
            mem_cell,
        ])
    headers = ["entry", "published top-1 / top-5", "top-1 % ↑", "top-5 % ↑", "Δ top-1", "within tol.",
               "published video/s ↑", "video/s ↑", "speed device", "published mem MB ↓", "train mem MB ↓"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def performance_markdown(tables: Tables) -> str:
    from tabulate import tabulate

    if not len(tables.performance) or "video_per_s" not in tables.performance:
        return "_no benchmark records_"
    rows = []
    for p in tables.performance.to_dict("records"):
        p = {k: _none(v) for k, v in p.items()}
        rows.append([
            p["entry"], p["device_name"], p["protocol"],
            fmt_speed(p["published_video_per_s"]), fmt_speed(p["video_per_s"]),
            fmt_num(100 * p["rel_std"], 1) if p["rel_std"] is not None else MISSING,
            fmt_num(p["speed_ratio"]),
            fmt_num(p["inference_memory_mb"], 0), fmt_num(p["train_memory_mb"], 0),
            fmt_num(p["published_gpu_mem_mb"], 0), p["memory_kind"] or MISSING,
            MISSING if p["measured_as"] in (None, p["entry"]) else p["measured_as"],
        ])
    headers = ["entry", "device", "protocol", "published video/s ↑", "video/s ↑", "spread %", "ratio ↑",
               "inference mem MB ↓", "train mem MB ↓", "published mem MB ↓", "memory kind", "same model measured as"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def training_runs_markdown(tables: Tables) -> Optional[str]:
    """Our training runs (train records), or None when there are none."""
    from tabulate import tabulate

    if tables.training is None or not len(tables.training) or "epochs" not in tables.training:
        return None
    rows = []
    for t in tables.training.to_dict("records"):
        t = {k: _none(v) for k, v in t.items()}
        rows.append([t["entry"], t["device_name"], _count(t["epochs"]), _count(t["batch"]), fmt_num(t["top1"]),
                     fmt_num(t["best_top1"]), fmt_num(t["wall_time_s"], 0), fmt_num(t["peak_memory_mb"], 0),
                     t["memory_kind"] or MISSING])
    headers = ["entry", "device", "epochs", "batch", "final val top-1 % ↑", "best val top-1 % ↑", "wall s ↓",
               "peak memory MB ↓", "memory kind"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def conditions_markdown(tables: Tables) -> str:
    from tabulate import tabulate

    if not len(tables.conditions) or "entry" not in tables.conditions:
        return "_no records_"
    rows = []
    for c in tables.conditions.to_dict("records"):
        c = {k: _none(v) for k, v in c.items()}
        rows.append([
            c["record"], describe_conditions(c), f"{_count(c['batch'])} × {_count(c['views'])}",
            _short(c["dataset_fingerprint"], 24), _short(c["checkpoint_sha256"], 12), c["time"], c["host"],
        ])
    headers = ["record", "conditions", "batch × views", "dataset", "checkpoint sha256", "time (UTC)", "host"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def render_markdown(tables: Tables, figures: list[str], training: Optional[str] = None,
                    records_label: str = "records/") -> str:
    """The whole results/README.md (``records_label``: where the records are, as shown)."""
    n = len(tables.used)
    parts = [
        "# Results",
        "",
        (f"Generated by `i3dbench report` from the records in `{records_label}` "
         f"({n} record{'s' if n != 1 else ''} shown); do not edit. Published numbers come from `zoo/`."),
        ("Measured accuracy: value ± half-width of the 95% bootstrap interval. *within tol.*: the "
         "published value lies inside the interval widened by the entry's tolerance. Speed is "
         "comparable to the published video/s only under the `published` protocol."),
        "",
        "## Zoo",
        "",
        zoo_table_markdown(tables),
        "",
        "## Throughput and memory",
        "",
        performance_markdown(tables),
        "",
    ]
    runs = training_runs_markdown(tables)
    if runs:
        parts += ["## Training runs", "", runs, ""]
    if training:
        parts += ["## Training: ours vs published log", "", training, ""]
    if figures:
        parts += ["## Figures", ""] + [f"![{Path(f).stem}]({f})" for f in figures] + [""]
    parts += ["## Conditions", "", conditions_markdown(tables), ""]
    return "\n".join(parts)


# --------------------------------------------------------------------------- figures


def _figure():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save_png(fig, path: Path) -> None:
    # No Software / date metadata, fixed dpi: the same data gives the same bytes.
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None}, bbox_inches="tight")
    _figure().close(fig)
    path.write_bytes(buf.getvalue())


def plot_accuracy(tables: Tables, path: Path) -> bool:
    """Measured top-1 with CI bars vs published top-1, one row per entry with a measurement."""
    rows = [{k: _none(v) for k, v in r.items()} for r in tables.accuracy.to_dict("records")]
    rows = [r for r in rows if r["top1"] is not None]
    if not rows:
        return False
    plt = _figure()
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.2))
    y = list(range(len(rows)))
    lo = [r["top1"] - (r["top1_ci_low"] if r["top1_ci_low"] is not None else r["top1"]) for r in rows]
    hi = [(r["top1_ci_high"] if r["top1_ci_high"] is not None else r["top1"]) - r["top1"] for r in rows]
    ax.errorbar([r["top1"] for r in rows], y, xerr=[lo, hi], fmt="o", color="tab:blue", capsize=3,
                label="measured (95% CI)")
    pub = [(r["published_top1"], i) for i, r in enumerate(rows) if r["published_top1"] is not None]
    if pub:
        ax.plot([p for p, _ in pub], [i for _, i in pub], "x", color="tab:red", markersize=8, label="published")
    ax.set_yticks(y, [r["entry"] for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("top-1 accuracy (%)")
    ax.set_title("Top-1: measured vs published")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    _save_png(fig, path)
    return True


def plot_throughput(tables: Tables, path: Path) -> bool:
    """video/s per entry, one marker per (device, protocol); published video/s as crosses."""
    perf = tables.performance
    if not len(perf) or "video_per_s" not in perf:
        return False
    rows = [{k: _none(v) for k, v in r.items()} for r in perf.to_dict("records") if _none(r["video_per_s"])]
    if not rows:
        return False
    plt = _figure()
    entries = sorted({r["entry"] for r in rows})
    series = sorted({(r["device_name"], r["protocol"]) for r in rows})
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(entries) * max(1, len(series)) + 1.5))
    height = 0.8 / len(series)
    for s, (dev, proto) in enumerate(series):
        ys, xs = [], []
        for i, name in enumerate(entries):
            for r in rows:
                if (r["entry"], r["device_name"], r["protocol"]) == (name, dev, proto):
                    ys.append(i + (s - (len(series) - 1) / 2) * height)
                    xs.append(r["video_per_s"])
        # Markers, not bars: bars on a log axis start at an arbitrary left edge.
        ax.plot(xs, ys, "o", markersize=6, label=f"{dev} ({proto})")
    pub = []
    for i, name in enumerate(entries):
        vals = {r["published_video_per_s"] for r in rows if r["entry"] == name and r["published_video_per_s"]}
        if vals:
            pub.append((i, min(vals)))
    if pub:
        ax.plot([v for _, v in pub], [i for i, _ in pub], "x", color="black", markersize=8, label="published (GPU)")
    ax.set_yticks(range(len(entries)), entries, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("videos per second (all test views of a video), log scale")
    ax.set_title("Inference throughput per device")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    _save_png(fig, path)
    return True


# --------------------------------------------------------------------------- training logs


def summarise_training_log(path: str | Path) -> dict:
    """Per-epoch val top-1/top-5 (percent), mean train loss, and peak ``memory`` of a log.json."""
    from .train import read_log_json

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
    """Markdown table + CSV + figure comparing our training log with the published one."""
    import pandas as pd
    from tabulate import tabulate

    logs = {"ours": summarise_training_log(ours)}
    if published is not None:
        logs["published"] = summarise_training_log(published)
    rows = []
    for who, s in logs.items():
        rows.append({
            "log": who,
            "epochs_validated": len(s["val_epochs"]),
            "final_top1": s["val_top1"][-1] if s["val_top1"] else None,
            "best_top1": max(s["val_top1"]) if s["val_top1"] else None,
            "final_top5": s["val_top5"][-1] if s["val_top5"] else None,
            "final_loss": s["loss"][-1] if s["loss"] else None,
            "peak_memory_mb": s["peak_memory_mb"],
        })
    df = pd.DataFrame(rows)
    _write_csv(df, out_dir / "training.csv")
    md = tabulate(
        [[r["log"], r["epochs_validated"], fmt_num(r["final_top1"]), fmt_num(r["best_top1"]), fmt_num(r["final_top5"]),
          fmt_num(r["final_loss"], 4), fmt_num(r["peak_memory_mb"], 0)] for r in rows],
        headers=["log", "val epochs", "final val top-1 ↑", "best val top-1 ↑", "final val top-5 ↑", "final loss ↓",
                 "peak memory MB ↓"],
        tablefmt="github", disable_numparse=True,
    )
    plt = _figure()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.5))
    for who, s in logs.items():
        if s["val_top1"]:
            a1.plot(s["val_epochs"][: len(s["val_top1"])], s["val_top1"], marker="o", markersize=3, label=who)
        if s["loss"]:
            a2.plot(s["loss_epochs"], s["loss"], label=who)
    a1.set_xlabel("epoch"), a1.set_ylabel("val top-1 (%)"), a1.grid(alpha=0.3), a1.legend(fontsize=8)
    a2.set_xlabel("epoch"), a2.set_ylabel("mean train loss"), a2.grid(alpha=0.3), a2.legend(fontsize=8)
    fig.suptitle("Training: ours vs published")
    _save_png(fig, out_dir / "training_curves.png")
    return md, ["training_curves.png"]


# --------------------------------------------------------------------------- files


def _write_csv(df, path: Path) -> None:
    atomic_write(path, df.to_csv(index=False, float_format="%.4f", lineterminator="\n"))


def update_readme_block(readme: Path, table: str) -> bool:
    """Replace the text between the ZOO-TABLE markers of ``readme``; False if it has none."""
    text = readme.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return False
    head = text[: text.index("\n", start) + 1]
    new = head + table.rstrip("\n") + "\n" + text[end:]
    if new != text:
        atomic_write(readme, new)
    return True


@dataclass
class ReportResult:
    out_dir: Path
    files: list[Path]
    tables: Tables


def render_report(
    records_dir=None,
    out_dir="results",
    zoo=None,
    training_log=None,
    published_log=None,
    readme=None,
) -> ReportResult:
    """Render ``out_dir`` (README.md, CSVs, PNGs) from the records in ``records_dir``.

    ``zoo``: a manifest path (default: K400 zoo + smoke zoo) — one table row per entry.
    ``training_log`` / ``published_log``: MMAction2-format log.json files to compare.
    ``readme``: a markdown file whose ZOO-TABLE block receives the zoo table (optional).
    Files this function generates but has nothing for this time are removed, so ``out_dir``
    never shows a stale figure. Same records in, same bytes out.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = load_zoo(zoo) if zoo is not None else load_zoos()
    records_dir = Path(records_dir) if records_dir is not None else out_dir / "records"
    records = load_records(records_dir)
    tables = build_tables(entries, records)

    written = []
    _write_csv(tables.accuracy, out_dir / "accuracy.csv")
    _write_csv(tables.performance, out_dir / "performance.csv")
    _write_csv(tables.conditions, out_dir / "conditions.csv")
    written += [out_dir / "accuracy.csv", out_dir / "performance.csv", out_dir / "conditions.csv"]
    if len(tables.training) and "epochs" in tables.training:
        _write_csv(tables.training, out_dir / "training_runs.csv")
        written.append(out_dir / "training_runs.csv")
    figures = []
    if plot_accuracy(tables, out_dir / "accuracy_top1.png"):
        figures.append("accuracy_top1.png")
    if plot_throughput(tables, out_dir / "throughput.png"):
        figures.append("throughput.png")
    training_md = None
    if training_log is not None:
        training_md, figs = training_section(Path(training_log), Path(published_log) if published_log else None, out_dir)
        figures += figs
        written.append(out_dir / "training.csv")
    label = os.path.relpath(records_dir, out_dir) if records_dir.is_absolute() == out_dir.is_absolute() else str(records_dir)
    atomic_write(out_dir / "README.md", render_markdown(tables, figures, training_md, label.rstrip("/") + "/"))
    written.append(out_dir / "README.md")
    written += [out_dir / f for f in figures]
    for name in GENERATED:  # stale outputs of an earlier render
        p = out_dir / name
        if p not in written and p.exists():
            p.unlink()
    if readme is not None and Path(readme).exists():
        update_readme_block(Path(readme), zoo_table_markdown(tables))
    return ReportResult(out_dir=out_dir, files=sorted(written), tables=tables)


def default_readme() -> Optional[Path]:
    """``./README.md`` when it has the ZOO-TABLE markers (the project's README), else None."""
    p = Path("README.md")
    try:
        return p if README_START in p.read_text() else None
    except OSError:
        return None


__all__ = [
    "build_tables",
    "default_readme",
    "fmt_ci",
    "fmt_delta",
    "fmt_num",
    "render_markdown",
    "render_report",
    "summarise_training_log",
    "update_readme_block",
    "zoo_table_markdown",
]
