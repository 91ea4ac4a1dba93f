"""Result records: one JSON file per measurement, saying how every number was obtained.

Schema version :data:`SCHEMA_VERSION` (a plain JSON object)::

    {
      "schema": 2,
      "entry": "i3d_r50_32x2x1_100e_kinetics400_rgb",  # zoo entry name
      "kind": "eval" | "bench" | "train",
      "metrics": {...},        # the numbers (below); NaN/inf are stored as null
      "conditions": {...},     # what they were measured on: collect_conditions()
      "method": {...},         # how they were measured: "name", "protocol" + kind-specific details
      "obtained": {...},       # "how": "computed" | "resumed" (+ "rows_reused", "reused_from", "rows_computed")
      "measurement": {...},    # "id"; for a measurement shared by several entries: "shared_by", "measured_entry"
      "extra": {...}           # anything else (raw times, failures, per-video correctness, paths)
    }

``metrics`` by kind (units in the key or stated here):

* eval: top1, top5, mean_class_accuracy (percent); top1_interval, top5_interval ([low, high]
  percent, exact Clopper-Pearson 95%, ``method["interval"]`` says so); num_videos (evaluated),
  num_listed, num_failed. ``extra["per_video"]`` holds one character per listed video, in list
  order, for top-1 and top-5: ``1`` hit, ``0`` miss, ``-`` not evaluated (failed) — what a
  paired test between two evaluations of the same dataset copy needs.
* bench: video_per_s (videos per iteration / median iteration time), latency_median_ms,
  spread (IQR / median of the iteration times), n_timed, inference_memory_mb,
  train_memory_mb. ``extra["times_s"]`` keeps every timed iteration; memory kinds are in
  ``conditions["inference_memory_kind"]`` / ``["train_memory_kind"]``.
* train: top1/top5 (final val), best_top1/best_top5/best_epoch, wall_time_s, peak_memory_mb
  (``conditions["train_memory_kind"]``), epochs, iters.

Comparable records share :func:`comparison_key`: entry, kind, device name, protocol,
precision, memory kinds and measurement method. Files are written atomically and never
overwritten; their names carry the environment:
``<kind>-<entry>-<device>-<precision>[-cl3d][-compiled]-pt<torch>-<UTC time>.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import re
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from .errors import UserError
from .fileio import atomic_write

SCHEMA_VERSION = 2
KINDS = ("eval", "bench", "train")
HOW = ("computed", "resumed")


class RecordError(UserError, ValueError):
    """A record (file) is malformed; the message names the file and field."""


@dataclass(frozen=True)
class Conditions:
    """The conditions of every number in a record (``record["conditions"]``)."""

    device: str  # "cpu", "cuda", "cuda:1"
    device_class: str  # "cpu" | "gpu": published speed and memory are GPU figures
    device_name: str  # GPU name (torch.cuda.get_device_name) or CPU model
    precision: str  # fp32 | fp16 | bf16 (autocast)
    memory_format: str  # contiguous | channels_last_3d
    compile: bool  # torch.compile used
    batch: Optional[int]  # videos per forward (bench) / per step (train)
    views: Optional[int]  # views per video (10 clips x 3 crops = 30)
    torch: str
    cuda: Optional[str]  # torch.version.cuda (None on CPU builds)
    cudnn: Optional[int]  # torch.backends.cudnn.version()
    decoder: Optional[str]  # decord | pyav | rawframes[-cv2|-turbojpeg|-pillow]
    decoder_version: Optional[str]
    code: dict  # provenance.code_version(): commit, dirty, source_sha256
    packages: dict  # provenance.package_versions()
    dataset_fingerprint: Optional[str]
    checkpoint_sha256: Optional[str]  # None: random weights
    checkpoint_verified: Optional[str]  # "sha256 prefix c25ef9a4 matched" / "unverified: ..." / None
    time: str  # ISO 8601, UTC, microseconds: when the measurement STARTED
    host: str
    python: str
    num_threads: int  # torch intra-op threads
    world_size: int  # processes (torchrun); 1 otherwise


def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def _decoder_info(decoder: Any) -> tuple[Optional[str], Optional[str]]:
    if decoder is None:
        return None, None
    if isinstance(decoder, str):
        try:
            from .data.decoders import get_decoder

            decoder = get_decoder(decoder)
        except Exception:  # noqa: BLE001 - the decoder library may be missing: record the name only
            return decoder, None
    return getattr(decoder, "name", str(decoder)), getattr(decoder, "version", None)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def collect_conditions(
    device,
    precision: str = "fp32",
    memory_format: str = "contiguous",
    compile: bool = False,
    batch: Optional[int] = None,
    views: Optional[int] = None,
    decoder: Any = None,
    dataset_fingerprint: Optional[str] = None,
    checkpoint_sha256: Optional[str] = None,
    checkpoint_verified: Optional[str] = None,
    time: Optional[str] = None,
) -> dict:
    """The :class:`Conditions` of a measurement on ``device``, as a dict.

    ``time``: when the measurement started (:func:`now_iso` taken then); default now.
    ``decoder`` is a decoder name or object (its ``.name`` / ``.version`` are recorded).
    Versions, device name, host and the code version are read here.
    """
    import torch

    from .provenance import code_version, package_versions

    device = str(device)
    dec_name, dec_version = _decoder_info(decoder)
    cond = Conditions(
        device=device,
        device_class="gpu" if device.startswith("cuda") else "cpu",
        device_name=_device_name(device),
        precision=precision,
        memory_format=memory_format,
        compile=bool(compile),
        batch=batch,
        views=views,
        torch=torch.__version__,
        cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        decoder=dec_name,
        decoder_version=dec_version,
        code=code_version(),
        packages=package_versions(),
        dataset_fingerprint=dataset_fingerprint,
        checkpoint_sha256=checkpoint_sha256,
        checkpoint_verified=checkpoint_verified,
        time=time or now_iso(),
        host=socket.gethostname(),
        python=platform.python_version(),
        num_threads=torch.get_num_threads(),
        world_size=int(os.environ.get("WORLD_SIZE", "1")),
    )
    return dataclasses.asdict(cond)


def new_measurement_id() -> str:
    return uuid.uuid4().hex[:16]


def make_record(entry_name: str, kind: str, metrics: dict, conditions: dict, method: dict,
                obtained: Optional[dict] = None, extra: Optional[dict] = None,
                measurement: Optional[dict] = None) -> dict:
    """A record dict in the schema above (validated). ``obtained`` defaults to computed,
    ``measurement`` to a fresh id of its own."""
    record = {
        "schema": SCHEMA_VERSION,
        "entry": entry_name,
        "kind": kind,
        "metrics": dict(metrics),
        "conditions": dict(conditions),
        "method": dict(method),
        "obtained": dict(obtained or {"how": "computed"}),
        "measurement": dict(measurement or {"id": new_measurement_id()}),
        "extra": dict(extra or {}),
    }
    validate_record(_finite(record))  # as it will be written: NaN and inf become null
    return record


def parse_time(value: Any, where: str = "record") -> datetime:
    """The record time as an aware UTC datetime; RecordError for anything else."""
    try:
        t = datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        raise RecordError(f"{where}: field 'conditions.time' is not an ISO 8601 time: {value!r}") from None
    if t.tzinfo is None:
        raise RecordError(f"{where}: field 'conditions.time' has no time zone: {value!r} (records are in UTC)")
    return t.astimezone(timezone.utc)


def validate_record(record: Any, where: str = "record") -> None:
    """Raise :class:`RecordError` naming ``where`` and the field if ``record`` breaks the schema.

    Beyond the shape: every metric is null or a finite number (JSON ``true`` is not one), an
    interval ``[low, high]`` holds its value, counts are whole numbers that add up, per-video
    strings have one character of ``1 0 -`` per listed video and agree with ``num_videos`` and
    top-1/top-5, timings are lists of positive finite seconds, and the measurement names its
    entry when it is shared. A record that fails is refused, never read as something else."""
    if not isinstance(record, dict):
        raise RecordError(f"{where}: a record is a JSON object, got {type(record).__name__}")
    if record.get("schema") != SCHEMA_VERSION or isinstance(record.get("schema"), bool):
        raise RecordError(f"{where}: field 'schema' is {record.get('schema')!r}, this i3dbench reads schema "
                          f"{SCHEMA_VERSION} (a record of an older version: measure again)")
    for key, typ in (("entry", str), ("kind", str), ("metrics", dict), ("conditions", dict), ("method", dict),
                     ("obtained", dict), ("measurement", dict), ("extra", dict)):
        if not isinstance(record.get(key), typ):
            raise RecordError(f"{where}: field '{key}' must be a {typ.__name__}, got {record.get(key)!r}")
    if not record["entry"].strip():
        raise RecordError(f"{where}: field 'entry' is empty; a record names its zoo entry")
    if record["kind"] not in KINDS:
        raise RecordError(f"{where}: field 'kind' must be one of {', '.join(KINDS)}, got {record['kind']!r}")
    for key in ("device", "device_name", "time"):
        if not isinstance(record["conditions"].get(key), str):
            raise RecordError(f"{where}: field 'conditions.{key}' is missing (use collect_conditions())")
    parse_time(record["conditions"]["time"], where)
    _check_conditions(record["conditions"], where)
    if not isinstance(record["method"].get("protocol"), str):
        raise RecordError(f"{where}: field 'method.protocol' is missing")
    if record["obtained"].get("how") not in HOW:
        raise RecordError(f"{where}: field 'obtained.how' must be one of {', '.join(HOW)}, "
                          f"got {record['obtained'].get('how')!r}")
    _check_measurement(record, where)
    _check_metrics(record["metrics"], where)
    if record["kind"] == "eval":
        _check_eval(record, where)
    _check_bench(record, where)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_conditions(c: dict, where: str) -> None:
    for key in ("batch", "views", "num_threads", "world_size"):
        v = c.get(key)
        if v is not None and not (_is_count(v) and v >= 1):
            raise RecordError(f"{where}: field 'conditions.{key}' must be a whole number >= 1 or null, got {v!r}")
    code = c.get("code")
    if code is not None:
        if not isinstance(code, dict):
            raise RecordError(f"{where}: field 'conditions.code' must be an object (commit, dirty, source_sha256), "
                              f"got {code!r}")
        if code.get("dirty") is not None and not isinstance(code.get("dirty"), bool):
            raise RecordError(f"{where}: field 'conditions.code.dirty' must be true, false or null, "
                              f"got {code.get('dirty')!r}")
    if c.get("compile") is not None and not isinstance(c.get("compile"), bool):
        raise RecordError(f"{where}: field 'conditions.compile' must be true or false, got {c.get('compile')!r}")


def _check_measurement(record: dict, where: str) -> None:
    m = record["measurement"]
    if not isinstance(m.get("id"), str) or not m["id"]:
        raise RecordError(f"{where}: field 'measurement.id' is missing")
    shared = m.get("shared_by")
    if shared is None:
        return
    if not (isinstance(shared, list) and shared and all(isinstance(e, str) for e in shared)):
        raise RecordError(f"{where}: field 'measurement.shared_by' must be a list of entry names, got {shared!r}")
    if record["entry"] not in shared:
        raise RecordError(f"{where}: field 'measurement.shared_by' does not name the record's entry "
                          f"{record['entry']!r}; a shared measurement lists every entry it stands for")


def _check_metrics(metrics: dict, where: str) -> None:
    intervals = []
    for key, value in metrics.items():
        field_name = f"metrics.{key}"
        if value is None:
            continue  # null: not measured (NaN and inf are written as null)
        if key.endswith("_interval"):
            intervals.append((key, value))
            continue
        if isinstance(value, (dict, list)):
            continue  # structured details (a method's own numbers); readers name what they use
        if not _is_number(value) or not math.isfinite(value):
            raise RecordError(f"{where}: field '{field_name}' must be a finite number or null, got {value!r}")
        if key in _PERCENT and not 0 <= value <= 100:
            raise RecordError(f"{where}: field '{field_name}' must be a percentage in [0, 100], got {value!r}")
    for key, value in intervals:
        field_name = f"metrics.{key}"
        if not (isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value)
                and all(math.isfinite(v) for v in value) and value[0] <= value[1]):
            raise RecordError(f"{where}: field '{field_name}' must be [low, high] of finite numbers with "
                              f"low <= high (or null), got {value!r}")
        base = metrics.get(key[: -len("_interval")])
        if _is_number(base) and not value[0] - 1e-9 <= base <= value[1] + 1e-9:
            raise RecordError(f"{where}: field '{field_name}' {value!r} does not contain its value "
                              f"{key[: -len('_interval')]}={base!r}")


_PERCENT = ("top1", "top5", "mean_class_accuracy", "best_top1", "best_top5")


def _check_eval(record: dict, where: str) -> None:
    m = record["metrics"]
    for key in ("num_videos", "num_listed", "num_failed"):
        if key in m and m[key] is not None and not _is_count(m[key]):
            raise RecordError(f"{where}: field 'metrics.{key}' must be a whole number >= 0, got {m[key]!r}")
    n, listed = m.get("num_videos"), m.get("num_listed")
    if n is not None and listed is not None and n > listed:
        raise RecordError(f"{where}: field 'metrics.num_videos' ({n}) exceeds 'metrics.num_listed' ({listed})")
    if n == 0:
        for key in ("top1", "top5"):
            if m.get(key) is not None:
                raise RecordError(f"{where}: field 'metrics.{key}' is {m[key]!r} but no video was evaluated "
                                  "(num_videos 0)")
    per_video = record["extra"].get("per_video")
    if per_video is None:
        return
    if not isinstance(per_video, dict):
        raise RecordError(f"{where}: field 'extra.per_video' must be an object with top1/top5 strings, "
                          f"got {type(per_video).__name__}")
    for key, text in per_video.items():
        f = f"extra.per_video.{key}"
        if not isinstance(text, str):
            raise RecordError(f"{where}: field '{f}' must be a string of 1, 0 and -, got {type(text).__name__}")
        bad = sorted(set(text) - set("01-"))
        if bad:
            raise RecordError(f"{where}: field '{f}' has characters other than 1, 0, -: {''.join(bad)[:10]!r}")
        if listed is None:
            raise RecordError(f"{where}: field 'metrics.num_listed' is missing, so '{f}' cannot be checked")
        if len(text) != listed:
            raise RecordError(f"{where}: field '{f}' has {len(text)} characters, metrics.num_listed is {listed}")
        done = len(text) - text.count("-")
        if n is not None and done != n:
            raise RecordError(f"{where}: field '{f}' has {done} evaluated videos (not '-'), "
                              f"metrics.num_videos is {n}")
        value = m.get(key)
        if _is_number(value) and done:
            expected = 100.0 * text.count("1") / done
            if abs(value - expected) > 0.006:
                raise RecordError(f"{where}: field 'metrics.{key}' is {value!r} but '{f}' gives {expected:.4f} "
                                  f"({text.count('1')} of {done})")


def _check_timings(values: Any, field_name: str, where: str) -> None:
    if values is None:
        return
    if not isinstance(values, list):
        raise RecordError(f"{where}: field '{field_name}' must be a list of seconds, got {type(values).__name__}")
    for i, v in enumerate(values):
        if not (_is_number(v) and math.isfinite(v) and v > 0):
            raise RecordError(f"{where}: field '{field_name}[{i}]' must be a positive finite number of seconds, "
                              f"got {v!r}")


def _check_bench(record: dict, where: str) -> None:
    for key in ("times_s", "reference_times_s"):
        _check_timings(record["extra"].get(key), f"extra.{key}", where)
    for key in ("views_per_iteration", "views_per_video"):
        v = record["method"].get(key)
        if v is not None and not (_is_count(v) and v >= 1):
            raise RecordError(f"{where}: field 'method.{key}' must be a whole number >= 1, got {v!r}")
    n_timed = record["metrics"].get("n_timed")
    if n_timed is not None and not _is_count(n_timed):
        raise RecordError(f"{where}: field 'metrics.n_timed' must be a whole number >= 0, got {n_timed!r}")


def check_measurement_ids(records: list[dict]) -> None:
    """A folder-level check: a measurement id belongs to one record per entry, and to several
    records only when each names its entry in ``shared_by`` (else a shared id would hide one
    entry's numbers behind another's)."""
    seen: dict[str, list[dict]] = {}
    for rec in records:
        seen.setdefault(rec["measurement"]["id"], []).append(rec)
    for mid, recs in seen.items():
        if len(recs) < 2:
            continue
        owners: dict[tuple[str, str], str] = {}
        for rec in recs:
            name = rec.get("_path") or rec.get("_file") or "record"
            shared = rec["measurement"].get("shared_by")
            if not shared or rec["entry"] not in shared:
                other = next(r for r in recs if r is not rec)
                raise RecordError(f"{name}: field 'measurement.id' {mid!r} is also the id of "
                                  f"{other.get('_file', 'another record')}, and 'measurement.shared_by' does not "
                                  f"name entry {rec['entry']!r}; a measurement id is unique unless shared")
            key = (rec["entry"], rec["kind"])
            if key in owners:
                raise RecordError(f"{name}: field 'measurement.id' {mid!r} appears twice for entry "
                                  f"{rec['entry']!r} (also in {Path(owners[key]).name}); one record per entry "
                                  "and measurement")
            owners[key] = name


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


def record_filename(record: dict) -> str:
    """``<kind>-<entry>-<device>-<precision>[-cl3d][-compiled]-pt<torch>-<time>.json``."""
    c = record["conditions"]
    dev = "cpu" if c["device"] == "cpu" else _slug(c.get("device_name") or c["device"])
    parts = [record["kind"], record["entry"], dev, _slug(c.get("precision") or "fp32")]
    if c.get("memory_format") in ("channels_last_3d", "channels_last"):
        parts.append("cl3d")
    if c.get("compile"):
        parts.append("compiled")
    torch_version = re.match(r"(\d+\.\d+)", str(c.get("torch") or ""))
    if torch_version:
        parts.append(f"pt{torch_version.group(1)}")
    stamp = parse_time(c["time"]).strftime("%Y%m%dT%H%M%S%f")
    parts.append(stamp + "Z")
    return "-".join(parts) + ".json"


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: store them as null (readers treat null as "not measured")."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_record(record: dict, records_dir: str | os.PathLike) -> Path:
    """Validate ``record`` and write it atomically as a new file under ``records_dir``.

    Never overwrites: a name already taken gets a ``-1``, ``-2``... suffix. Returns the path.
    """
    validate_record(_finite(record))
    out_dir = Path(records_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = record_filename(record)
    path = out_dir / name
    n = 0
    while path.exists():
        n += 1
        path = out_dir / name.replace(".json", f"-{n}.json")
    text = json.dumps(_finite(record), indent=2, sort_keys=True, allow_nan=False) + "\n"
    atomic_write(path, text)
    return path


def records_folder(path: str | os.PathLike) -> Path:
    """The records folder of ``path``: ``path/records`` when ``path`` is a run folder, else ``path``."""
    path = Path(path)
    return path / "records" if (path / "records").is_dir() else path


def run_folder(path: str | os.PathLike) -> Path:
    """The run folder of ``path`` (a run folder or its ``records/``): where ``compare/`` and ``report/`` live."""
    folder = records_folder(path)
    return folder.parent if folder.name == "records" else folder


def unique_records(records) -> list[dict]:
    """Each record once, first seen first (by file name and time: ``publish`` copies records into results/)."""
    seen, out = set(), []
    for rec in records:
        ident = (rec["_file"], rec["conditions"]["time"])
        if ident not in seen:
            seen.add(ident)
            out.append(rec)
    return out


def load_records(records_dir: str | os.PathLike, kinds: Optional[tuple[str, ...]] = None) -> list[dict]:
    """All records (``*.json``) directly under ``records_dir`` (or a run folder's ``records/``), oldest first.

    Each dict gets ``_file`` (the file name). Every file is validated here, once, before any reader
    (gate, report, publish, compare) sees it: a file that is not a valid record (:func:`validate_record`),
    or a measurement id reused without ``shared_by`` (:func:`check_measurement_ids`), raises
    :class:`RecordError` naming the file and field; a missing folder too (a reader was pointed at nothing).
    """
    root = records_folder(records_dir)
    if not root.is_dir():
        raise RecordError(f"{root}: no such records folder (a run folder or its records/ subfolder)")
    out = []
    for path in sorted(root.glob("*.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise RecordError(f"{path}: not a readable JSON record ({err}); delete or fix the file") from None
        validate_record(rec, where=str(path))
        rec["_file"] = path.name
        rec["_path"] = str(path)
        out.append(rec)
    check_measurement_ids(out)  # over the whole folder, before ``kinds`` filters it
    if kinds is not None:
        out = [r for r in out if r["kind"] in kinds]
    out.sort(key=lambda r: (parse_time(r["conditions"]["time"]), r["_file"]))
    return out


def record_protocol(record: dict) -> str:
    return str(record["method"]["protocol"])


def memory_kinds(record: dict) -> str:
    """The memory kinds of a record's numbers, e.g. ``inference=cpu_tensor_peak;train=cpu_tensor_peak``."""
    c = record["conditions"]
    parts = [f"{what}={c.get(f'{what}_memory_kind')}" for what in ("inference", "train")
             if c.get(f"{what}_memory_kind")]
    return ";".join(parts) or "-"


def comparison_key(record: dict) -> tuple[str, ...]:
    """(entry, kind, device name, protocol, precision, memory kinds, method): comparable records share it.

    The method of a bench record includes its thread count: timings on 1 and on 2 threads
    measure different things."""
    c = record["conditions"]
    method = str(record["method"].get("name", "-"))
    if record["kind"] == "bench":
        method += f"@{c.get('num_threads')}thr"
    return (record["entry"], record["kind"], c.get("device_name") or c["device"], record_protocol(record),
            str(c.get("precision") or "fp32"), memory_kinds(record), method)


def record_time(record: dict) -> datetime:
    return parse_time(record["conditions"]["time"], record.get("_file", "record"))


__all__ = [
    "HOW",
    "KINDS",
    "SCHEMA_VERSION",
    "Conditions",
    "RecordError",
    "check_measurement_ids",
    "collect_conditions",
    "comparison_key",
    "load_records",
    "make_record",
    "memory_kinds",
    "new_measurement_id",
    "now_iso",
    "parse_time",
    "record_filename",
    "record_protocol",
    "record_time",
    "records_folder",
    "run_folder",
    "unique_records",
    "validate_record",
    "write_record",
]
