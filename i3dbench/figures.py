"""The PNG figures of a report, drawn from its table model (tables.Tables).

Every figure says what it shows: the models, the device names, the precisions and the dates of
the records it was drawn from (record times, never "now"), and which points are published
figures. PNGs carry no Software/date metadata, so the same tables give the same bytes.
"""

from __future__ import annotations

import io
from pathlib import Path

from .fileio import atomic_write
from .tables import Tables, date_range, device_label, precision


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def png_bytes(fig) -> bytes:
    """The figure as PNG, without Software / date metadata: the same data gives the same bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    _pyplot().close(fig)
    return buf.getvalue()


def save_png(fig, path: Path) -> None:
    atomic_write(path, png_bytes(fig))


def _subtitle(recs: list[dict]) -> str:
    devices = sorted({device_label(r) for r in recs})
    precisions = sorted({precision(r) for r in recs})
    return f"{', '.join(devices)} · {', '.join(precisions)} · records {date_range(recs)}"


def _used(tables: Tables, files: list[str]) -> list[dict]:
    by_file = {r["_file"]: r for r in tables.used}
    return [by_file[f] for f in files if f in by_file]


def plot_accuracy(tables: Tables, path: Path) -> bool:
    """Measured top-1 / top-5 with their exact 95% intervals, and the published values."""
    rows = [r for r in tables.accuracy if r["top1"] is not None]
    if not rows:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.4 * len(rows) + 2.4), sharey=True, layout="constrained")
    y = list(range(len(rows)))
    for ax, key in zip(axes, ("top1", "top5"), strict=True):
        vals = [r[key] for r in rows]
        lo = [v - (r[f"{key}_low"] if r[f"{key}_low"] is not None else v) for v, r in zip(vals, rows, strict=True)]
        hi = [(r[f"{key}_high"] if r[f"{key}_high"] is not None else v) - v for v, r in zip(vals, rows, strict=True)]
        ax.errorbar(vals, y, xerr=[lo, hi], fmt="o", color="tab:blue", capsize=3, label="measured (exact 95% interval)")
        pub = [(r[f"published_{key}"], i) for i, r in enumerate(rows) if r[f"published_{key}"] is not None]
        if pub:
            ax.plot([p for p, _ in pub], [i for _, i in pub], "x", color="tab:red", markersize=8, label="published")
        ax.set_xlabel(f"{'top-1' if key == 'top1' else 'top-5'} accuracy (%)")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, [r["entry"] for r in rows], fontsize=7)
    axes[0].set_ylim(len(rows) - 0.5, -0.5)  # first entry on top
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=2, fontsize=7)
    protocols = sorted({r["protocol"] for r in rows})
    fig.suptitle(f"Accuracy: measured vs published ({len(rows)} model{'s' if len(rows) != 1 else ''}; "
                 f"protocol {', '.join(protocols)})\n{_subtitle(_used(tables, [r['record'] for r in rows]))}",
                 fontsize=9)
    save_png(fig, path)
    return True


def _plain_log_ticks(axis) -> None:
    """Tick labels ``0.02``, ``2``, ``400`` on a log axis rather than ``2x10^0``; the 2s and 5s
    between powers of ten are labelled only when the axis spans less than ~1.5 decades."""
    from matplotlib.ticker import FuncFormatter

    def minor(v, _):
        lo, hi = axis.get_view_interval()
        if hi < 10 * max(lo, 1e-30):  # under a decade: every minor tick, or the axis reads one number
            return f"{v:g}"
        return f"{v:g}" if hi < 30 * max(lo, 1e-30) and f"{v:.0e}"[0] in "25" else ""

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(minor))


def _series(row: dict) -> str:
    return f"{row['device']} · {row['protocol']} · {row['settings']}"


def _scales(rows: list[dict]) -> list[str]:
    """The model scales present, full-size first: each gets its own axes (a 50 video/s toy model and
    a 0.02 video/s full-size model on one log axis would flatten both)."""
    present = {r.get("scale", "full-size") for r in rows}
    return [s for s in ("full-size", "smoke") if s in present] + sorted(present - {"full-size", "smoke"})


def plot_accuracy_vs_throughput(tables: Tables, path: Path) -> bool:
    """x: measured video/s (log), one marker style per device/protocol/settings series; y: the
    measured top-1 (filled) where there is an eval, else the published top-1 (hollow). Smoke and
    full-size models on separate axes."""
    acc = {r["entry"]: r for r in tables.accuracy}
    points = []  # (series, video/s, top-1, measured?, entry, scale)
    for r in tables.speed:
        for name in r["entries"].split(";"):
            a = acc.get(name)
            if a is None:
                continue
            scale = r.get("scale", "full-size")
            if a["top1"] is not None:
                points.append((_series(r), r["video_per_s"], a["top1"], True, name, scale))
            elif a["published_top1"] is not None:
                points.append((_series(r), r["video_per_s"], a["published_top1"], False, name, scale))
    if not points:
        return False
    plt = _pyplot()
    scales = [s for s in ("full-size", "smoke") if any(p[5] == s for p in points)]
    scales += sorted({p[5] for p in points} - set(scales))
    fig, axes = plt.subplots(1, len(scales), figsize=(9 if len(scales) == 1 else 13, 6), layout="constrained",
                             squeeze=False)
    markers = "osD^vP*Xh<>"
    series = sorted({p[0] for p in points})
    for ax, scale in zip(axes[0], scales, strict=True):
        mine = [p for p in points if p[5] == scale]
        for i, s in enumerate(series):
            color, marker = f"C{i % 10}", markers[i % len(markers)]
            for measured in (True, False):
                pts = [p for p in mine if p[0] == s and p[3] == measured]
                if pts:
                    ax.scatter([p[1] for p in pts], [p[2] for p in pts], marker=marker, s=40,
                               facecolors=color if measured else "none", edgecolors=color,
                               label=f"{s} — {'measured top-1' if measured else 'published top-1 (no eval)'}")
        if len(mine) <= 12:
            for _, x, yv, _, name, _ in mine:
                ax.annotate(name, (x, yv), fontsize=6, xytext=(4, 3), textcoords="offset points")
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis)
        ax.set_xlabel("measured videos per second (all test views of a video), log scale")
        ax.set_ylabel("top-1 accuracy (%)")
        ax.grid(alpha=0.3)
        ax.set_title(f"{scale} models", fontsize=8)
    handles = {}
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncol=1, fontsize=6)
    files = [f for r in tables.speed for f in r["records"].split(";")] + [a["record"] for a in tables.accuracy
                                                                         if a["record"]]
    names = sorted({p[4] for p in points})
    models = ", ".join(names) if len(names) <= 3 else f"{len(names)} models"
    fig.suptitle(f"Top-1 vs measured throughput ({models})\n{_subtitle(_used(tables, files))}", fontsize=9)
    save_png(fig, path)
    return True


def _short_model(row: dict) -> str:
    """A y-axis label: the entry, or the measured entry of a shared measurement and how many share it."""
    if not row["shared"]:
        return row["model"]
    measured = row["model"].split(";")[0].replace("measured as ", "")
    others = len(row["entries"].split(";")) - 1
    return f"{measured} (+{others} sharing it)" if others else measured


def plot_throughput(tables: Tables, path: Path) -> bool:
    """Measured video/s per model, one marker style per series; published GPU video/s as crosses.
    Smoke and full-size models on separate axes."""
    if not tables.speed:
        return False
    plt = _pyplot()
    scales = _scales(tables.speed)
    series = sorted({_series(r) for r in tables.speed})
    by_scale = {sc: [r for r in tables.speed if r.get("scale", "full-size") == sc] for sc in scales}
    heights = [0.3 * len(dict.fromkeys(_short_model(r) for r in rows)) * max(1, len(series)) + 1.0
               for rows in by_scale.values()]
    fig, axes = plt.subplots(len(scales), 1, figsize=(9, sum(heights) + 1.6), layout="constrained", squeeze=False,
                             height_ratios=heights)
    markers = "osD^vP*Xh<>"
    height = 0.8 / len(series)
    n_models = 0
    for ax, scale in zip(axes[:, 0], scales, strict=True):
        rows_all = by_scale[scale]
        labels = list(dict.fromkeys(_short_model(r) for r in rows_all))
        n_models += len(labels)
        for i, s in enumerate(series):
            rows = [r for r in rows_all if _series(r) == s]
            if not rows:
                continue
            ys = [labels.index(_short_model(r)) + (i - (len(series) - 1) / 2) * height for r in rows]
            # Markers, not bars: bars on a log axis start at an arbitrary left edge.
            ax.plot([r["video_per_s"] for r in rows], ys, markers[i % len(markers)], color=f"C{i % 10}",
                    markersize=6, label=s)
        pub = {labels.index(_short_model(r)): r["published_gpu_video_per_s"] for r in rows_all
               if r["published_gpu_video_per_s"] is not None}
        if pub:
            ax.plot(list(pub.values()), list(pub), "x", color="black", markersize=8,
                    label="published, GPU (30 views, batch 1)")
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_ylim(len(labels) - 0.5, -0.5)  # first model on top
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis)
        ax.set_xlabel("videos per second (all test views of a video), log scale")
        ax.grid(axis="x", alpha=0.3)
        ax.set_title(f"{scale} models", fontsize=8)
    handles = {}
    for ax in axes[:, 0]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncol=1, fontsize=6)
    files = [f for r in tables.speed for f in r["records"].split(";")]
    fig.suptitle(f"Measured inference throughput ({n_models} model{'s' if n_models != 1 else ''})\n"
                 f"{_subtitle(_used(tables, files))}", fontsize=9)
    save_png(fig, path)
    return True


def plot_training_curves(logs: dict[str, tuple[str, dict]], path: Path) -> None:
    """Val top-1 and mean train loss per epoch of each log (``who -> (file name, summary)``)."""
    plt = _pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.5))
    for who, (_, s) in logs.items():
        if s["val_top1"]:
            a1.plot(s["val_epochs"][: len(s["val_top1"])], s["val_top1"], marker="o", markersize=3, label=who)
        if s["loss"]:
            a2.plot(s["loss_epochs"], s["loss"], label=who)
    a1.set_xlabel("epoch"), a1.set_ylabel("val top-1 (%)"), a1.grid(alpha=0.3), a1.legend(fontsize=8)
    a2.set_xlabel("epoch"), a2.set_ylabel("mean train loss"), a2.grid(alpha=0.3), a2.legend(fontsize=8)
    fig.suptitle("Training: " + " vs ".join(f"{who} ({name})" for who, (name, _) in logs.items()), fontsize=9)
    save_png(fig, path)


__all__ = ["plot_accuracy", "plot_accuracy_vs_throughput", "plot_throughput", "plot_training_curves", "png_bytes",
           "save_png"]
