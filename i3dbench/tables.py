"""The report's table model: which records the tables show, and the raw numbers of every row.

One selection, several renderers (render_markdown.py, render_html.py, figures.py, the CSVs in
report.py): a renderer formats these rows and never reads a record file itself. The selection
is built so that the tables cannot mislead:

* every number comes from one named record: its file name is in the row, and the appendix
  lists each record used with its provenance;
* accuracy: per zoo entry the newest *complete* eval under the entry's own test protocol;
  evals under other protocols and incomplete ones are listed apart, flagged; intervals are
  the record's exact 95% interval (never ``±``: they are not symmetric);
* speed: one row per newest measurement per (model, device, protocol, precision); a
  measurement shared by several entries is one row naming all of them;
* memory: one table per memory kind (a CPU tensor peak and CUDA's max_memory_allocated are
  different quantities); the published figures (GPU, published protocol, training-log
  memory) have their own table, and a ratio to them is given only for GPU records;
* smoke models (the synthetic set) and full-size models carry their ``scale``: figures never
  put both on one axis;
* sweep records (``extra.sweep``) and compare files (``<run>/compare/compare-*.json``) give
  their own tables.

Records are JSON dicts (records.load_records); nothing here imports the code that produced them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from .fmt import MISSING
from .records import memory_kinds, record_time
from .zoo import ZooEntry

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
    short: dict[str, str] = field(default_factory=dict)  # entry -> short name (the legend gives the full one)
    sweep: list[dict] = field(default_factory=list)  # one per sweep variant (sweep records), base first
    compares: list[dict] = field(default_factory=list)  # one per compare file: its header and its checks

    @property
    def memory_kinds(self) -> list[str]:
        """The memory kinds shown: CUDA first, then CPU, then any other, each its own table."""
        kinds = {r[f"{w}_kind"] for r in self.memory for w in ("inference", "train") if r[f"{w}_kind"]}
        return [k for k in MEMORY_KINDS if k in kinds] + sorted(kinds - set(MEMORY_KINDS))


UNVERIFIED_MARK = "†"


def weights_unverified(rec: dict) -> Optional[str]:
    """The record's verification when its weights were not checked against a known hash (as the
    gate marks them: ``conditions.checkpoint_verified`` "unverified: ..."), else None."""
    verification = str(rec.get("conditions", {}).get("checkpoint_verified") or "")
    return verification if verification.startswith("unverified") else None


def _accuracy(entries: dict[str, ZooEntry], evals: list[dict], used: dict) -> tuple[list[dict], list[dict]]:
    rows, others = [], []
    for name, e in entries.items():
        mine = [r for r in evals if r["entry"] == name]
        expected = eval_protocol(e)
        # the zoo row: an evaluation proper (a sweep's variants, its base included, are method "sweep")
        ok = [r for r in mine if r["method"]["protocol"] == expected and eval_incomplete(r) is None
              and r["method"].get("name", "eval") == "eval"]
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
            "weights_unverified": weights_unverified(rec) if rec else None,
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
        "path": rec.get("_path"),
    }


def build_tables(entries: dict[str, ZooEntry], records: list[dict], compares: Optional[list[dict]] = None) -> Tables:
    """Select the records to show and the numbers of every table (see the module docstring).

    ``compares``: compare files as :func:`load_compares` reads them (None: no compare table)."""
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
    tables.sweep = _sweep(entries, by_kind["eval"], used)
    tables.compares = [_compare(c) for c in compares or []]
    tables.short = short_names(entries)
    scale = {n: entry_scale(e) for n, e in entries.items()}
    for row in tables.accuracy + tables.other_evals + tables.speed + tables.memory + tables.skipped:
        names = row["entries"].split(";") if "entries" in row else [row["entry"]]
        row["scale"] = scale.get(names[0], "full-size")
    tables.used = [used[f] for f in sorted(used)]
    tables.records = [_record_row(r) for r in tables.used]
    tables.not_in_zoo = sorted(r["_file"] for r in records if r["entry"] not in entries
                               and not any(n in entries for n in shared_entries(r) or []))
    return tables



# --------------------------------------------------------------------------- short names, scale


_DROP = re.compile(r"(?<![a-z0-9])(i3d|8xb8|32x2x1|100e|kinetics400|rgb|imagenet-pretrained)(?![a-z0-9])")
_ABBREV = (("embedded-gaussian", "emb-gauss"), ("gaussian", "gauss"), ("dot-product", "dot"), ("rawframes", "frames"))
SHORT_MAX = 22


def short_name(entry: ZooEntry) -> str:
    """A short label for tables: the entry's MMAction2 generation, then its name without the tokens
    every entry of that generation shares (``i3d``, ``32x2x1``, ``100e``, ``kinetics400``, ``rgb``,
    ``8xb8``, ``imagenet-pretrained``): ``0.x r50-dense-256p``, ``1.x r50-nl-emb-gauss``,
    ``smoke tiny-video``."""
    text = entry.name.lower().replace("_", "-")
    if entry.mmaction == "smoke" and text.startswith("smoke-"):
        text = text[len("smoke-"):]
    for long, short in _ABBREV:
        text = text.replace(long, short)
    text = re.sub(r"-+", "-", _DROP.sub("", text)).strip("-") or entry.name
    return f"{entry.mmaction} {text}"


def short_names(entries: dict[str, ZooEntry]) -> dict[str, str]:
    """entry -> a unique short name of at most :data:`SHORT_MAX` characters (``~2``, ``~3``... on a clash)."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for name, e in entries.items():
        base = short_name(e)[:SHORT_MAX].rstrip("-")
        label, n = base, 1
        while label in taken:
            n += 1
            label = f"{base[:SHORT_MAX - len(str(n)) - 1]}~{n}"
        out[name] = label
        taken.add(label)
    return out


def entry_scale(entry: ZooEntry) -> str:
    """``smoke`` (a toy model of the synthetic set) or ``full-size``: never drawn on one axis."""
    return "smoke" if entry.dataset == "synthetic" else "full-size"


# --------------------------------------------------------------------------- sweep and compare


def _sweep(entries: dict[str, ZooEntry], evals: list[dict], used: dict) -> list[dict]:
    """The newest sweep of each entry (records with ``extra.sweep`` sharing one run and checkpoint),
    base first, then the variants in the order they were written."""
    sweeps = [r for r in evals if isinstance(r["extra"].get("sweep"), dict) and r["entry"] in entries]
    newest: dict[str, dict] = {}
    for r in sorted(sweeps, key=lambda r: (record_time(r), r["_file"])):
        if r["extra"]["sweep"].get("base"):
            newest[r["entry"]] = r
    rows = []
    for name, base in newest.items():
        t0 = record_time(base)
        members = [r for r in sweeps if r["entry"] == name and _folder(r) == _folder(base)
                   and record_time(r) >= t0 and (r is base or not r["extra"]["sweep"].get("base"))]
        # The variants of one sweep are written after its base and before the next base.
        later = [record_time(r) for r in sweeps if r["entry"] == name and r["extra"]["sweep"].get("base")
                 and record_time(r) > t0]
        if later:
            members = [r for r in members if record_time(r) < min(later)]
        for r in sorted(members, key=lambda r: (not r["extra"]["sweep"].get("base"), record_time(r), r["_file"])):
            sw, m = r["extra"]["sweep"], r["metrics"]
            vs = sw.get("vs_base") or {}
            interval = vs.get("interval") or [None, None]
            rows.append({
                "entry": name, "variant": str(sw.get("label")), "base": bool(sw.get("base")),
                "knobs": ", ".join(f"{k}={v}" for k, v in (sw.get("knobs") or {}).items()),
                "protocol": r["method"]["protocol"], "num_videos": m.get("num_videos"),
                "num_listed": m.get("num_listed"), "top1": m.get("top1"),
                "top1_low": (m.get("top1_interval") or [None, None])[0],
                "top1_high": (m.get("top1_interval") or [None, None])[1], "top5": m.get("top5"),
                "top5_low": (m.get("top5_interval") or [None, None])[0],
                "top5_high": (m.get("top5_interval") or [None, None])[1],
                "delta_top1": vs.get("delta_top1"), "delta_low": interval[0], "delta_high": interval[1],
                "mcnemar_p": vs.get("p_mcnemar"), "lost": vs.get("lost"), "gained": vs.get("gained"),
                "n_common": vs.get("n_common"), "time": r["conditions"]["time"], "record": r["_file"],
            })
            used[r["_file"]] = r
    return rows


def _folder(rec: dict) -> str:
    return str(Path(rec["_path"]).parent) if rec.get("_path") else ""


def load_compares(run_dirs: list[Path]) -> list[dict]:
    """The compare files (``<run>/compare/compare-*.json``, written by ``i3dbench compare``) of these
    run folders, oldest first; none is fine. A file that is not a compare record is a UserError
    naming it (verdicts.load_compare_record: the same check the gate makes)."""
    from .verdicts import compare_records, load_compare_record
    out = []
    for run in run_dirs:
        for path in compare_records(run):
            data, _ = load_compare_record(path)  # validated where gate reads it too
            data["_file"], data["_path"] = path.name, str(path)
            out.append(data)
    return sorted(out, key=lambda d: (str(d.get("time")), d["_file"]))


def _revision(rev) -> str:
    if not isinstance(rev, dict):
        return MISSING
    commit = str(rev.get("commit") or "")[:8]
    label = f"{rev.get('rev')} ({commit}{'+dirty' if rev.get('dirty') else ''})" if commit else str(rev.get("rev"))
    return label + (f": {rev['subject']}" if rev.get("subject") else "")


def _compare(data: dict) -> dict:
    checks = []
    for c in data["checks"]:
        if not isinstance(c, dict):
            continue
        interval = c.get("interval") if isinstance(c.get("interval"), list) else [None, None]
        checks.append({
            "entry": c.get("entry"), "metric": c.get("metric"), "base": c.get("base"), "head": c.get("head"),
            "ratio": c.get("ratio"), "ratio_low": interval[0] if interval else None,
            "ratio_high": interval[1] if len(interval) > 1 else None, "tolerance": c.get("tolerance"),
            "rounds": c.get("rounds"), "p": c.get("p"), "p_holm": c.get("p_holm"),
            "verdict": str(c.get("verdict") or "UNKNOWN"), "why": c.get("why") or "",
            "accepted_by": c.get("accepted_by"),
        })
    return {"file": data["_file"], "path": data.get("_path"), "time": data.get("time"),
            "base": _revision(data.get("base")), "head": _revision(data.get("head")),
            "exit_code": data.get("exit_code"), "settings": data.get("settings") or {}, "checks": checks}


__all__ = [
    "FLOPS_COUNTER",
    "MEMORY_KINDS",
    "Tables",
    "build_tables",
    "date_range",
    "device_class",
    "device_label",
    "entry_scale",
    "eval_incomplete",
    "eval_protocol",
    "load_compares",
    "precision",
    "settings_label",
    "shared_entries",
    "short_name",
    "short_names",
]
