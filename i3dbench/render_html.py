"""The HTML renderer of the report: ``index.html``, one self-contained page from the table model.

Everything the page shows comes from tables.Tables (the same selection as the markdown) and, with
a history, history.History; this module only lays rows out (Jinja2 templates in
``i3dbench/templates/``, rendered with StrictUndefined: a missing variable is an error, never an
empty cell) and draws the small SVG charts as numbers for the template. The page has inline CSS,
inline SVG and a few lines of inline JS for column sorting; it references nothing outside itself
except the records' JSON files, by relative path.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional

from .fmt import MISSING, fmt_delta, fmt_interval, fmt_mem, fmt_num, fmt_ratio, fmt_speed, short_hash
from .tables import MEMORY_KINDS, UNVERIFIED_MARK, Tables, date_range

BAR_W, BAR_H = 130, 16  # the interval bar of an accuracy cell
PLOT_W, PLOT_H, PAD = 300, 110, 26  # a history plot


def environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("i3dbench", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _link(path: Optional[str], out_dir: Optional[Path]) -> Optional[str]:
    """The record's path relative to the page (a link that works from disk), posix separators."""
    if not path:
        return None
    if out_dir is None:
        return Path(path).as_posix()
    try:
        return Path(os.path.relpath(Path(path).resolve(), Path(out_dir).resolve())).as_posix()
    except ValueError:  # another drive (Windows)
        return None


def interval_bar(value, low, high, published, tolerance) -> Optional[dict]:
    """x positions (pixels) of the measured interval, the value, the published value and its
    tolerance band on one small axis; None without a measurement."""
    if value is None:
        return None
    lo = low if low is not None else value
    hi = high if high is not None else value
    points = [lo, hi, value]
    if published is not None:
        tol = tolerance or 0.0
        points += [published - tol, published + tol]
    a, b = min(points), max(points)
    pad = max((b - a) * 0.08, 0.25)
    a, b = a - pad, b + pad

    def x(v: float) -> float:
        return round(4 + (v - a) / (b - a) * (BAR_W - 8), 1)

    bar = {"lo": x(lo), "hi": x(hi), "value": x(value), "published": None, "band_lo": None, "band_hi": None,
           "axis_lo": f"{a:.1f}", "axis_hi": f"{b:.1f}"}
    if published is not None:
        bar.update(published=x(published), band_lo=x(published - (tolerance or 0.0)),
                   band_hi=x(published + (tolerance or 0.0)))
    return bar


def _accuracy_rows(tables: Tables, out_dir) -> list[dict]:
    rows = []
    for r in tables.accuracy:
        cells = {}
        for key in ("top1", "top5"):
            cells[key] = {
                "text": fmt_interval(r[key], [r[f"{key}_low"], r[f"{key}_high"]]),
                "sort": "" if r[key] is None else f"{r[key]:.4f}",
                "published": fmt_num(r[f"published_{key}"]),
                "delta": fmt_delta(r[f"delta_{key}"]),
                "within": r[f"within_{key}"],
                "tolerance": fmt_num(r[f"tolerance_{key}"]),
                "bar": interval_bar(r[key], r[f"{key}_low"], r[f"{key}_high"], r[f"published_{key}"],
                                    r[f"tolerance_{key}"]),
            }
        rows.append({
            "short": tables.short.get(r["entry"], r["entry"]), "entry": r["entry"], "scale": r["scale"],
            "top1": cells["top1"], "top5": cells["top5"], "within": r["within_tolerance"],
            "videos": MISSING if r["num_videos"] is None else (
                f"{r['num_videos']} of {r['num_listed']}" if r["num_listed"] is not None else str(r["num_videos"])),
            "protocol": r["protocol"], "precision": r["precision"] or MISSING, "device": r["device"] or MISSING,
            "params": fmt_num(r["params_m"]),
            "gflops": MISSING if r["gflops"] is None else f"{r['gflops']:g}", "counter": r["flops_counter"] or "",
            "record": r["record"], "link": _link(_path_of(tables, r["record"]), out_dir), "status": r["status"],
            "unverified": r.get("weights_unverified"),
        })
    # Evaluated rows first (manifest order within each part): the first screen shows measurements.
    return sorted(rows, key=lambda r: r["top1"]["bar"] is None and r["top5"]["bar"] is None)


def _path_of(tables: Tables, file: Optional[str]) -> Optional[str]:
    if not file:
        return None
    for rec in tables.records:
        if rec["file"] == file:
            return rec.get("path")
    return None


def _model(tables: Tables, row: dict) -> dict:
    names = row["entries"].split(";")
    short = tables.short.get(names[0], names[0])
    return {"short": short + (f" (+{len(names) - 1} sharing)" if len(names) > 1 else ""),
            "title": row["model"]}


def _group(rows: list[dict], key) -> list[tuple[tuple, list[dict]]]:
    out: dict[tuple, list[dict]] = {}
    for r in rows:
        out.setdefault(key(r), []).append(r)
    return list(out.items())


def _speed_groups(tables: Tables, out_dir) -> list[dict]:
    groups = []
    for (scale, device, protocol, settings), rows in _group(
            tables.speed, lambda r: (r["scale"], r["device"], r["protocol"], r["settings"])):
        top = max((r["video_per_s"] for r in rows if r["video_per_s"] is not None), default=None)
        groups.append({
            "title": f"{device} · {protocol} · {settings}", "scale": scale, "rows": [{
                **_model(tables, r), "video_per_s": fmt_speed(r["video_per_s"]),
                "sort": "" if r["video_per_s"] is None else f"{r['video_per_s']:.6g}",
                "bar": None if not top or r["video_per_s"] is None else round(120 * r["video_per_s"] / top, 1),
                "latency": fmt_num(r["latency_median_ms"], 1),
                "spread": MISSING if r["spread"] is None else f"{100 * r['spread']:.1f} %",
                "timed": MISSING if r["n_timed"] is None else str(r["n_timed"]), "iteration": r["iteration"] or MISSING,
                "vs_published": fmt_ratio(r["vs_published"]), "record": r["record"],
                "link": _link(_path_of(tables, r["record"]), out_dir)} for r in rows]})
    return sorted(groups, key=lambda g: (g["scale"] != "full-size", g["title"]))


def _memory_groups(tables: Tables, out_dir) -> list[dict]:
    groups = []
    for kind in tables.memory_kinds:
        title, what = MEMORY_KINDS.get(kind, (kind, "a memory kind this i3dbench does not describe."))
        rows = [r for r in tables.memory if kind in (r["inference_kind"], r["train_kind"])]
        for (scale, device, protocol), members in _group(rows, lambda r: (r["scale"], r["device"], r["protocol"])):
            groups.append({"title": f"{title} — {device} · {protocol}", "kind": kind, "what": what, "scale": scale,
                           "gpu": kind == "cuda_max_memory_allocated", "rows": [{
                               **_model(tables, r), "settings": r["settings"],
                               "inference": fmt_mem(r["inference_mb"] if r["inference_kind"] == kind else None),
                               "train": fmt_mem(r["train_mb"] if r["train_kind"] == kind else None),
                               "step": r["train_step"] or r["not_measured"] or MISSING,
                               "vs_published": fmt_ratio(r["train_vs_published"]), "record": r["record"],
                               "link": _link(_path_of(tables, r["record"]), out_dir)} for r in members]})
    return sorted(groups, key=lambda g: (list(MEMORY_KINDS).index(g["kind"]) if g["kind"] in MEMORY_KINDS else 9,
                                         g["scale"] != "full-size", g["title"]))


def _sweep_groups(tables: Tables) -> list[dict]:
    groups = []
    for entry, rows in _group(tables.sweep, lambda r: r["entry"]):
        groups.append({"entry": entry, "short": tables.short.get(entry, entry), "rows": [{
            "variant": r["variant"] + (" (base: the entry's protocol)" if r["base"] else ""),
            "videos": MISSING if r["num_videos"] is None else f"{r['num_videos']} of {r['num_listed']}",
            "top1": fmt_interval(r["top1"], [r["top1_low"], r["top1_high"]]),
            "top5": fmt_interval(r["top5"], [r["top5_low"], r["top5_high"]]),
            "delta": MISSING if r["delta_top1"] is None else
            f"{r['delta_top1']:+.2f} [{r['delta_low']:+.2f}, {r['delta_high']:+.2f}]",
            "p": MISSING if r["mcnemar_p"] is None else f"{r['mcnemar_p']:.3g}",
            "flips": MISSING if r["lost"] is None else f"{r['lost'] + r['gained']} ({r['lost']} lost, "
                                                      f"{r['gained']} gained) of {r['n_common']}",
            "record": r["record"]} for r in rows]})
    return groups


def _num(v, digits=4) -> str:
    return MISSING if v is None else f"{v:.{digits}g}"


def _compare_tables(tables: Tables, out_dir) -> list[dict]:
    out = []
    for c in tables.compares:
        out.append({"file": c["file"], "link": _link(c["path"], out_dir), "time": str(c["time"] or MISSING),
                    "base": c["base"], "head": c["head"], "exit_code": c["exit_code"],
                    "settings": ", ".join(f"{k} {v}" for k, v in c["settings"].items()), "checks": [{
                        "check": f"{tables.short.get(x['entry'], x['entry'])} · {x['metric']}",
                        "entry": str(x["entry"]), "base": _num(x["base"]), "head": _num(x["head"]),
                        "ratio": MISSING if x["ratio"] is None else (
                            f"x{x['ratio']:.3f}" + (f" [{x['ratio_low']:.3f}, {x['ratio_high']:.3f}]"
                                                    if x["ratio_low"] is not None and x["ratio_high"] is not None
                                                    else "")),
                        "tolerance": x["tolerance"] or MISSING,
                        "rounds": MISSING if x["rounds"] is None else x["rounds"],
                        "verdict": x["verdict"], "why": x["why"]} for x in c["checks"]]})
    return out


def history_plot(series) -> dict:
    """Pixel coordinates of a history series: one x slot per point (time order), y on the series'
    own range (value, interval ends and the published value)."""
    values = [v for p in series.points for v in (p.value, p.low, p.high) if v is not None]
    if series.published is not None:
        values.append(series.published)
    lo, hi = min(values), max(values)
    if math.isclose(lo, hi):
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    span = hi - lo
    lo, hi = lo - 0.08 * span, hi + 0.08 * span
    n = len(series.points)
    left, right, top, bottom = 44, PLOT_W - 10, 10, PLOT_H - PAD

    def y(v: float) -> float:
        return round(bottom - (v - lo) / (hi - lo) * (bottom - top), 1)

    def x(i: int) -> float:
        return round(left + (right - left) * (0.5 if n == 1 else i / (n - 1)), 1)

    points = []
    for i, p in enumerate(series.points):
        regressed = p.step is not None and p.step.status == "REGRESSED"
        points.append({"x": x(i), "y": y(p.value), "y_lo": None if p.low is None else y(p.low),
                       "y_hi": None if p.high is None else y(p.high), "regressed": regressed, "commit": p.commit,
                       "title": f"{p.commit} · {p.time} · {p.value:.4g}" + (
                           f" [{p.low:.4g}, {p.high:.4g}]" if p.low is not None and p.high is not None else "")
                       + (f" · {p.step.status} vs {p.step.base_commit}" if p.step else "")})
    return {"w": PLOT_W, "h": PLOT_H, "left": left, "right": right, "top": top, "bottom": bottom,
            "y_max": _tick(hi), "y_min": _tick(lo), "published": None if series.published is None else
            y(series.published), "path": " ".join(f"{p['x']},{p['y']}" for p in points), "points": points,
            "first": series.points[0].commit, "last": series.points[-1].commit}


def _tick(v: float) -> str:
    """An axis label without exponents: 16961, 98.4, 0.0202."""
    a = abs(v)
    return f"{v:.0f}" if a >= 1000 else f"{v:.1f}" if a >= 10 else f"{v:.3g}"


def _series_label(s) -> str:
    """device · protocol · precision (· threads): the comparison key without what the card says."""
    _, _, device, protocol, precision, _, method = s.key
    parts = [device, protocol, precision]
    if "@" in method and method.endswith("thr"):
        n = method.rsplit("@", 1)[1][:-3]
        parts.append(f"{n} thread{'s' if n != '1' else ''}")
    return " · ".join(parts)


def _history(history, tables: Tables) -> Optional[dict]:
    if history is None:
        return None
    from .history import UNITS

    cards = []
    for s in history.series:
        cards.append({"entry": s.entry, "short": tables.short.get(s.entry, s.entry),
                      "metric": UNITS.get(s.metric, s.metric),
                      "label": _series_label(s), "scale": s.scale, "n": len(s.points), "plot": history_plot(s),
                      "steps": [{"from": p.step.base_commit, "to": p.step.head_commit, "change": p.step.change,
                                 "test": p.step.test, "time": p.time} for p in s.regressions]})
    cards.sort(key=lambda c: (not c["steps"], c["scale"] != "smoke", c["short"], c["metric"], c["label"]))
    return {"sources": history.sources, "unreadable": history.unreadable, "cards": [c for c in cards if c["n"] > 1],
            "single": [c for c in cards if c["n"] <= 1], "n_series": len(cards),
            "regressions": [{"short": tables.short.get(s.entry, s.entry), "entry": s.entry,
                             "metric": UNITS.get(s.metric, s.metric), "label": _series_label(s),
                             "from": p.step.base_commit,
                             "to": p.step.head_commit, "change": p.step.change, "test": p.step.test}
                            for s, p in history.regressions],
            "points": sum(len(s.points) for s in history.series)}


def _appendix(tables: Tables, out_dir) -> list[dict]:
    out = []
    for r in tables.records:
        code = r["code_commit"]
        fields = [("entry", r["entry"]), ("kind", r["kind"]), ("protocol", r["protocol"]), ("device", r["device"]),
                  ("settings", r["settings"]), ("time (UTC)", r["time"]), ("obtained", r["obtained"]),
                  ("code", code or MISSING), ("source sha256", r["source_sha256"] or MISSING),
                  ("dataset fingerprint", r["dataset_fingerprint"] or MISSING),
                  ("checkpoint sha256", r["checkpoint_sha256"] or MISSING), ("torch", r["torch"] or MISSING),
                  ("CUDA", r["cuda"] or MISSING), ("decoder", r["decoder"] or MISSING), ("host", r["host"] or MISSING),
                  ("measurement", r["measurement"]), ("shared by", r["shared_by"] or MISSING)]
        out.append({"file": r["file"], "link": _link(r.get("path"), out_dir),
                    "summary": f"{r['kind']} · {r['entry']} · {short_hash(code, 8)} · {r['time']}",
                    "fields": [(k, str(v)) for k, v in fields]})
    return out


def page_context(tables: Tables, history=None, out_dir=None, records_label: str = "records/",
                 figures: Optional[list[str]] = None) -> dict:
    """Everything the template shows, formatted (strings and pixel numbers)."""
    short = [{"short": tables.short[name], "entry": name} for name in tables.short]
    return {
        "title": "i3dbench report",
        "records_label": records_label,
        "n_records": len(tables.used),
        "dates": date_range(tables.used),
        "not_in_zoo": tables.not_in_zoo,
        "accuracy": _accuracy_rows(tables, out_dir),
        "legend": short,
        "unverified_mark": UNVERIFIED_MARK,
        "other_evals": [{**r, "short": tables.short.get(r["entry"], r["entry"]),
                         "top1_text": fmt_interval(r["top1"], [r["top1_low"], r["top1_high"]]),
                         "top5_text": fmt_interval(r["top5"], [r["top5_low"], r["top5_high"]])}
                        for r in tables.other_evals],
        "speed": _speed_groups(tables, out_dir),
        "skipped": [{**r, **_model(tables, r), "link": _link(_path_of(tables, r["record"]), out_dir)}
                    for r in tables.skipped],
        "published": [{"short": tables.short.get(r["entry"], r["entry"]), "entry": r["entry"],
                       "video_per_s": fmt_speed(r["video_per_s"]), "protocol": r["speed_protocol"] or MISSING,
                       "gpu_mem": MISSING if r["gpu_mem_mb"] is None else str(r["gpu_mem_mb"]),
                       "gpus": r["gpus"] or MISSING, "source": r["source"] or MISSING} for r in tables.published],
        "memory": _memory_groups(tables, out_dir),
        "sweep": _sweep_groups(tables),
        "compares": _compare_tables(tables, out_dir),
        "history": _history(history, tables),
        "appendix": _appendix(tables, out_dir),
        "bar": {"w": BAR_W, "h": BAR_H},
    }


def render_html(tables: Tables, history=None, out_dir=None, records_label: str = "records/",
                template: str = "index.html.j2") -> str:
    """``index.html`` of the report (see the module docstring). Raises jinja2's UndefinedError
    when the template names a variable the context lacks."""
    return environment().get_template(template).render(**page_context(tables, history, out_dir, records_label))


__all__ = ["history_plot", "interval_bar", "page_context", "render_html"]
