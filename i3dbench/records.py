"""Result records: one JSON file per run, with the conditions behind every number.

A record is a plain dict (JSON object) with this schema (version :data:`SCHEMA_VERSION`)::

    {
      "schema": 1,
      "entry": "i3d_r50_32x2x1_100e_kinetics400_rgb",   # zoo entry name
      "kind": "eval" | "bench" | "train",
      "metrics": {...},          # numbers of the run; see below
      "conditions": {...},       # Conditions (below), from collect_conditions()
      "extra": {...}             # anything else; "protocol" names what was measured
    }

``metrics`` by kind (units in the key or stated here):
  eval:  top1, top5, mean_class_accuracy (percent), top1_ci, top5_ci ([low, high] percent,
         95% bootstrap), num_videos (evaluated), num_listed, num_failed.
  bench: video_per_s, and where measured: latency_ms, rel_std (per-iteration relative standard
         deviation of the timed loop), peak_memory_mb (inference), train_memory_mb (one training
         step at the published batch); the performance helper owns the exact set.
  train: whatever the training run reports (final top1/top5 on its val split, epochs, ...).

``extra["protocol"]``: bench: "published" | "fast"; eval: "<clips>x<crops>-<averaging>"
(e.g. "10x3-prob"). The gate compares like with like: the newest record per
(entry, kind, device name, protocol) — see :func:`record_key`.

Files are written atomically (temporary file in the same folder, fsync, rename), so a
reader never sees half a record, and their names carry the environment:
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
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from .errors import UserError
from .fileio import atomic_write

SCHEMA_VERSION = 1
KINDS = ("eval", "bench", "train")
REPO_ROOT = Path(__file__).resolve().parent.parent


class RecordError(UserError, ValueError):
    """A record (file) is malformed; the message names the file and field."""


@dataclass(frozen=True)
class Conditions:
    """The conditions of every number in a record (``record["conditions"]``)."""

    device: str  # "cpu", "cuda", "cuda:1"
    device_name: str  # GPU name (torch.cuda.get_device_name) or CPU model
    precision: str  # fp32 | fp16 | bf16 (autocast) ...
    memory_format: str  # contiguous | channels_last_3d
    compile: bool  # torch.compile used
    batch: Optional[int]  # videos per forward (bench) / per step (train)
    views: Optional[int]  # views per video (10 clips x 3 crops = 30)
    torch: str
    cuda: Optional[str]  # torch.version.cuda (None on CPU builds)
    cudnn: Optional[int]  # torch.backends.cudnn.version()
    decoder: Optional[str]  # decord | pyav | rawframes
    decoder_version: Optional[str]
    git_commit: Optional[str]
    git_dirty: Optional[bool]  # uncommitted changes to tracked files
    dataset_fingerprint: Optional[str]
    checkpoint_sha256: Optional[str]  # None: random weights
    time: str  # ISO 8601, UTC, microseconds
    host: str
    python: str
    num_threads: int  # torch intra-op threads
    world_size: int  # processes (torchrun); 1 otherwise


def default_records_dir() -> Path:
    """``$I3DBENCH_RECORDS`` or ``results/records`` (relative to the working directory)."""
    return Path(os.environ.get("I3DBENCH_RECORDS", "results/records"))


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


def _git(*args: str) -> Optional[str]:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def git_state() -> tuple[Optional[str], Optional[bool]]:
    """(commit, dirty) of the repository holding this package; (None, None) outside git."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return commit.strip(), (bool(status.strip()) if status is not None else None)


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
) -> dict:
    """The :class:`Conditions` of a run on ``device`` now, as a dict.

    ``decoder`` is a decoder name or object (its ``.name`` / ``.version`` are recorded).
    Versions, device name, host, git state and time are read here.
    """
    import torch

    device = str(device)
    commit, dirty = git_state()
    dec_name, dec_version = _decoder_info(decoder)
    cond = Conditions(
        device=device,
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
        git_commit=commit,
        git_dirty=dirty,
        dataset_fingerprint=dataset_fingerprint,
        checkpoint_sha256=checkpoint_sha256,
        time=datetime.now(timezone.utc).isoformat(timespec="microseconds"),
        host=socket.gethostname(),
        python=platform.python_version(),
        num_threads=torch.get_num_threads(),
        world_size=int(os.environ.get("WORLD_SIZE", "1")),
    )
    return dataclasses.asdict(cond)


def make_record(entry_name: str, kind: str, metrics: dict, conditions: dict, extra: Optional[dict] = None) -> dict:
    """A record dict in the schema above (validated)."""
    record = {
        "schema": SCHEMA_VERSION,
        "entry": entry_name,
        "kind": kind,
        "metrics": dict(metrics),
        "conditions": dict(conditions),
        "extra": dict(extra or {}),
    }
    validate_record(record)
    return record


def validate_record(record: Any, where: str = "record") -> None:
    """Raise :class:`RecordError` naming ``where`` and the field if ``record`` breaks the schema."""
    if not isinstance(record, dict):
        raise RecordError(f"{where}: a record is a JSON object, got {type(record).__name__}")
    for key, typ in (("entry", str), ("kind", str), ("metrics", dict), ("conditions", dict)):
        if not isinstance(record.get(key), typ):
            raise RecordError(f"{where}: field '{key}' must be a {typ.__name__}, got {record.get(key)!r}")
    if record["kind"] not in KINDS:
        raise RecordError(f"{where}: field 'kind' must be one of {', '.join(KINDS)}, got {record['kind']!r}")
    if not isinstance(record.get("extra", {}), dict):
        raise RecordError(f"{where}: field 'extra' must be an object")
    for key in ("device", "time"):
        if not isinstance(record["conditions"].get(key), str):
            raise RecordError(f"{where}: field 'conditions.{key}' is missing (use collect_conditions())")


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
    stamp = re.sub(r"[^0-9T]", "", c["time"].split("+")[0])  # 2024-06-11T12:00:00.123456 -> 20240611T120000123456
    parts.append(stamp + "Z")
    return "-".join(parts) + ".json"


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: store them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_record(record: dict, records_dir: str | os.PathLike | None = None) -> Path:
    """Validate ``record`` and write it atomically as a new file under ``records_dir``.

    Never overwrites: a name already taken gets a ``-1``, ``-2``... suffix. Returns the path.
    """
    validate_record(record)
    out_dir = Path(records_dir) if records_dir is not None else default_records_dir()
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


def load_records(records_dir: str | os.PathLike | None = None) -> list[dict]:
    """All records (``*.json``) directly under ``records_dir``, oldest first.

    Each dict gets ``_file`` (the file name). A file that is not a valid record raises
    :class:`RecordError` naming it. A missing folder gives an empty list.
    """
    root = Path(records_dir) if records_dir is not None else default_records_dir()
    if not root.is_dir():
        return []
    out = []
    for path in sorted(root.glob("*.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise RecordError(f"{path}: not a readable JSON record ({err}); delete or fix the file") from None
        validate_record(rec, where=str(path))
        rec["_file"] = path.name
        out.append(rec)
    out.sort(key=lambda r: (r["conditions"]["time"], r["_file"]))
    return out


def record_protocol(record: dict) -> str:
    """What a record measured, for comparing like with like (see the module docstring)."""
    extra = record.get("extra") or {}
    if extra.get("protocol"):
        return str(extra["protocol"])
    if record["kind"] == "bench":
        return "published"
    return "-"


def record_key(record: dict) -> tuple[str, str, str, str]:
    """(entry, kind, device name, protocol): records with the same key are comparable."""
    c = record["conditions"]
    return (record["entry"], record["kind"], c.get("device_name") or c["device"], record_protocol(record))


def newest_records(records: list[dict]) -> dict[tuple[str, str, str, str], dict]:
    """The newest record per :func:`record_key` (``records`` in any order)."""
    out: dict = {}
    for rec in sorted(records, key=lambda r: (r["conditions"]["time"], r.get("_file", ""))):
        out[record_key(rec)] = rec
    return out
