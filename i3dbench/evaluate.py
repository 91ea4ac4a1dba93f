"""Evaluate a zoo entry with its published test protocol: computed, or exactly what was reused.

One video at a time (or a few, see ``batch_views``) goes from the dataset as ``uint8`` views
(10 clips x 3 crops = 30 for Kinetics entries) to the device, is normalised there, runs through
the model in batches of views, and its view scores are averaged (``"prob"``: softmax per view
then mean; ``"score"``: mean of the logits). The top-5 classes and scores of every video are
appended to the run's predictions file (``predictions.py``), so a killed run loses nothing.

The **run key** is a hash of everything that determines the numbers (:func:`run_key_parts`):
the whole zoo entry, the weights' sha256, the dataset fingerprint, views, averaging,
precision, device type, decoder name and version, torch version, the package's source hash
and the views per forward. Rerunning with the same key resumes only an *interrupted*
evaluation of that key (its ``.partial.jsonl``); a finished one is never read back, and
``fresh=True`` reuses nothing. The record says how the numbers were obtained
(``computed``, or ``resumed`` with the rows reused and the file they came from).

Decode failures are written to the predictions file with their reason; the record says how
many of the listed videos were evaluated, and the evaluation is *incomplete* (the command
exits 2) when more than ``max_failures`` failed. Under ``torchrun`` (WORLD_SIZE > 1) each rank
evaluates a shard of what is left and rank 0 gathers the rows (gloo on CPU, nccl on CUDA),
seals the predictions and writes the record.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from .errors import UsageError, UserError
from .metrics import accuracy_summary, average_views, per_video_string, topk_classes
from .predictions import (
    KeyLock,
    adopt,
    append_rows,
    find_interrupted,
    partial_path,
    read_predictions,
    sealed_path,
    write_sealed,
)
from .records import collect_conditions, make_record, now_iso, write_record
from .data.layout import size_summary
from .runs import RunDir, open_run_dir, runs_root
from .zoo import ZooEntry, get_entry

TOPK_SAVED = 5


@dataclass
class EvalResult:
    """What :func:`evaluate` returns (on rank 0; other ranks get their own share only)."""

    entry: str
    metrics: dict  # top1, top5, mean_class_accuracy (percent), *_interval, num_videos, num_listed, num_failed
    num_listed: int
    num_evaluated: int
    failures: list[dict]  # {"i", "video", "label", "error"}
    predictions_path: Path
    record_path: Optional[Path]
    comparison: dict  # per metric: published, measured, delta, interval, tolerance, within
    run_key: str = ""
    obtained: dict = field(default_factory=dict)
    conditions: dict = field(default_factory=dict)
    max_failures: int = 0
    weights_source: Optional[str] = None  # URL, mirror or path the weights came from
    restricted: Optional[dict] = None  # --intersect-with: reference, kept, dropped (of the list's videos)

    @property
    def complete(self) -> bool:
        """Every listed video has a row and no more than ``max_failures`` failed to decode."""
        return self.num_evaluated > 0 and len(self.failures) <= self.max_failures

    def incomplete_reason(self) -> Optional[str]:
        if self.num_evaluated == 0:
            return f"no video could be evaluated ({len(self.failures)} of {self.num_listed} failed to decode)"
        if len(self.failures) > self.max_failures:
            return (f"{len(self.failures)} of {self.num_listed} videos failed to decode (at most {self.max_failures} "
                    "allowed: --max-failures)")
        return None


# --------------------------------------------------------------------------- protocol helpers


def parse_views(views: str) -> tuple[int, int]:
    """``"10x3"`` -> (10 clips, 3 crops); crops must be 1 (center crop) or 3 (three crop)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(views))
    if not m or int(m.group(1)) < 1 or int(m.group(2)) not in (1, 3):
        raise UsageError(f"--views must look like CLIPSxCROPS with CLIPS >= 1 and CROPS 1 or 3 (e.g. 10x3), got {views!r}")
    return int(m.group(1)), int(m.group(2))


def with_test_views(entry: ZooEntry, views: Optional[str]) -> ZooEntry:
    """The entry with its test protocol's clips x crops replaced by ``views`` (None: unchanged)."""
    if views is None:
        return entry
    clips, crops = parse_views(views)
    test = dataclasses.replace(entry.test, num_clips=clips, crop="three_crop" if crops == 3 else "center_crop")
    return dataclasses.replace(entry, test=test)


def views_label(entry: ZooEntry) -> str:
    return f"{entry.test.num_clips}x{3 if entry.test.crop == 'three_crop' else 1}"


def protocol_label(entry: ZooEntry, average_clips: Optional[str] = None) -> str:
    """What an eval record measured: ``<clips>x<crops>-<averaging>-sampler<version>`` (e.g. 10x3-prob-sampler0.x)."""
    return f"{views_label(entry)}-{average_clips or entry.test.average_clips}-sampler{entry.test.sampler_version}"


def compare_with_published(entry: ZooEntry, metrics: dict, protocol: Optional[str] = None,
                           layout_mismatch: Optional[str] = None) -> dict:
    """Measured vs published top-1 / top-5 with the entry's tolerance and the measured interval.

    ``entry`` is the zoo entry as published; ``protocol`` the protocol label of what was measured
    (default: the entry's own). Only a measurement under the published protocol (clips x crops,
    averaging, sampler version) on frames of the entry's layout is held against the published
    number: any other gets ``comparable: False`` and ``why`` ("not comparable with the published
    protocol (X vs Y)") and no ``within``. ``within`` is True when the published value lies in
    ``[low - tol, high + tol]`` of the exact 95% interval: the difference cannot be told apart from
    sampling noise plus the accepted tolerance. Metrics without a published value are left out.
    """
    own = protocol_label(entry)
    why = None
    if protocol is not None and protocol != own:
        why = f"not comparable with the published protocol ({protocol} vs {own})"
    elif layout_mismatch:
        why = f"not comparable with the published protocol (frames of another layout: {layout_mismatch})"
    out = {}
    for key in ("top1", "top5"):
        published = getattr(entry.published, key)
        measured = metrics.get(key)
        interval = metrics.get(f"{key}_interval")
        if published is None or measured is None or not interval:
            continue
        if why:
            out[key] = {"published": published, "measured": measured, "comparable": False, "why": why}
            continue
        tol = getattr(entry.tolerance, key)
        out[key] = {
            "published": published,
            "measured": measured,
            "delta": measured - published,
            "interval": list(interval),
            "tolerance": tol,
            "comparable": True,
            "within": bool(interval[0] - tol <= published <= interval[1] + tol),
        }
    return out


# --------------------------------------------------------------------------- fingerprints and keys


def _sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def dataset_fingerprint(dataset, ann_file=None, reference=None) -> str:
    """The dataset copy's fingerprint, the same number ``i3dbench data check`` prints.

    With ``ann_file`` and a dataset that has ``data_root``: sha256 over the sorted (relative
    path, size) of the data files (video files; every file of a frame directory) and the list
    file's bytes (``data.inventory.dataset_fingerprint``), so a re-encoded or partial copy gets
    another fingerprint. Otherwise (a given dataset): ``list-sha256:`` over its
    (path, label, total_frames) rows.
    """
    root = getattr(dataset, "data_root", None)
    if ann_file is not None and root is not None:
        from .data.inventory import dataset_fingerprint as inventory_fingerprint

        text = Path(ann_file).read_bytes()
        if reference is not None:  # a list restricted to a reference list is another copy
            text += b"\0intersect-with\0" + Path(reference).read_bytes()
        return inventory_fingerprint(_data_files(Path(root), dataset.records), text)
    rows = [[str(r.path), int(r.label), getattr(r, "total_frames", None)] for r in dataset.records]
    return "list-sha256:" + _sha256_json(rows)


def _data_files(root: Path, records) -> list[tuple[str, int]]:
    """(relative path, size) of what the list names, as the inventory counts them; missing ones left out."""
    from .data.inventory import frame_dir_files

    files = []
    for rec in records:
        path = root / rec.path
        if path.is_dir():
            files += frame_dir_files(path, rec.path)
        elif path.exists():
            files.append((str(rec.path), path.stat().st_size))
    return files


def state_dict_sha256(model: torch.nn.Module) -> str:
    """sha256 over the model's state_dict (names, dtypes, shapes, bytes): identifies given weights."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def model_code_sha256(model: torch.nn.Module) -> str:
    """sha256 over the source of every module class in ``model`` (its qualified name where the source
    cannot be read): a given model's forward may differ from the entry's with the same weights."""
    import inspect

    h = hashlib.sha256()
    for cls in sorted({type(m) for m in model.modules()}, key=lambda c: f"{c.__module__}.{c.__qualname__}"):
        try:
            src = inspect.getsource(cls)
        except (OSError, TypeError):
            src = ""
        h.update(f"{cls.__module__}.{cls.__qualname__}\n{src}\0".encode())
    return h.hexdigest()


def entry_settings(entry: ZooEntry) -> dict:
    """Every field of the entry (published numbers and notes included: a conservative key)."""
    return dataclasses.asdict(entry)


def run_key_parts(entry: ZooEntry, *, weights: str, dataset: str, average_clips: str, precision: str, device: str,
                  decoder: Optional[str], decoder_version: Optional[str], batch_views: Optional[int]) -> dict:
    """Everything that determines an evaluation's predictions (see the module docstring)."""
    from .provenance import source_sha256

    return {
        "entry": entry_settings(entry),
        "weights": weights,
        "dataset": dataset,
        "views": views_label(entry),
        "average_clips": average_clips,
        "precision": precision,
        "device_type": torch.device(device).type,
        "decoder": decoder,
        "decoder_version": decoder_version,
        "torch": torch.__version__,
        "code": source_sha256(),
        "batch_views": batch_views,
    }


def run_key(parts: dict) -> str:
    """The identity of an evaluation (16 hex digits of the sha256 of :func:`run_key_parts`)."""
    return _sha256_json(parts)[:16]


def metrics_from_rows(rows: dict[int, dict], num_listed: int) -> dict:
    """Metrics (see :func:`i3dbench.metrics.accuracy_summary`) over the successful rows."""
    ok = [rows[i] for i in sorted(rows) if "error" not in rows[i]]
    failed = len(rows) - len(ok)
    if not ok:
        return {"num_videos": 0, "num_listed": num_listed, "num_failed": failed}
    width = min(len(r["top5"]) for r in ok)
    pred = np.array([r["top5"][:width] for r in ok], dtype=np.int64)
    labels = np.array([r["label"] for r in ok], dtype=np.int64)
    out = accuracy_summary(pred, labels)
    out.update(num_listed=num_listed, num_failed=failed)
    return out


def per_video(rows: dict[int, dict], num_listed: int) -> dict:
    """``{"top1": "10-1...", "top5": ...}``: one character per listed video (see records.py)."""
    out = {}
    for k in (1, 5):
        out[f"top{k}"] = per_video_string(
            [None if (r := rows.get(i)) is None or "error" in r else int(r["label"]) in r["top5"][:k]
             for i in range(num_listed)])
    return out


# --------------------------------------------------------------------------- distributed


def _dist_setup(device: str) -> tuple[int, int, str]:
    """(rank, world_size, device) — initialises torch.distributed under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    import torch.distributed as dist

    if device == "cuda":  # one GPU per process: the local rank's
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if device.startswith("cuda"):
            torch.cuda.set_device(torch.device(device))
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size(), device


def _all_gather(obj: Any, world: int) -> list:
    if world <= 1:
        return [obj]
    import torch.distributed as dist

    out: list = [None] * world
    dist.all_gather_object(out, obj)
    return out


def check_device(device: str) -> str:
    """``device`` if this machine has it; a UsageError naming the flag otherwise."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UsageError(f"--device {device!r} is not a device; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: this machine has no CUDA device (torch {torch.__version__}, "
                         f"built with CUDA {torch.version.cuda}); use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {device!r}: only cpu and cuda devices are supported")
    return str(device)


# --------------------------------------------------------------------------- weights


@dataclass
class Weights:
    model: torch.nn.Module
    sha256: Optional[str]  # of the checkpoint file; None for a given model
    key: str  # weights id in the run key
    verified: Optional[str]  # how the file's identity was checked, for the record
    source: Optional[str] = None  # where the weights came from: URL, mirror or path (None: a given model)

    @property
    def is_verified(self) -> bool:
        return bool(self.verified) and str(self.verified).startswith("verified")


def resolve_weights(entry: ZooEntry, checkpoint, model, sha256: Optional[str] = None) -> Weights:
    """The model with its weights, and how they are identified.

    A given ``model`` without ``checkpoint`` is identified by its state's hash; otherwise the
    checkpoint (default: the entry's published URL, from the cache, the mirror or downloaded:
    ``checkpoints.resolve_published``) is loaded strictly into ``model`` or a freshly built one
    and identified by its file's sha256. A given checkpoint is verified against ``sha256`` when
    given (a mismatch is refused), else against the entry's published hash by its content,
    whatever its file name (no match: unverified, and said so).
    """
    given_code = None if model is None else model_code_sha256(model)  # a given model's own code, keyed too
    if model is not None and checkpoint is None:
        return Weights(model, None, f"state:{state_dict_sha256(model)};code:{given_code}", "given model (state hash)")
    published = entry.checkpoint.sha256_prefix
    if checkpoint is None and entry.checkpoint.url is None:
        raise UserError(
            f"entry '{entry.name}' has no published checkpoint: pass --checkpoint FILE "
            "(smoke entries: train one with `i3dbench train`, or let `i3dbench run` do it)"
        )
    from .checkpoints import load_checkpoint, resolve_checkpoint, resolve_published

    if model is None:
        from .models import build_model

        model = build_model(entry)
    if checkpoint is None:  # the published one: cache, mirror or download, checked against its hash
        resolved = resolve_published(entry.checkpoint.url, published)
        verification = resolved.verification
    else:
        resolved = resolve_checkpoint(checkpoint, sha256=sha256)
        verification = resolved.verification
        if sha256 is None and published and resolved.sha256.startswith(published.lower()):
            verification = f"verified: sha256 prefix {published} (the entry's published checkpoint, by content)"
        elif not resolved.verified:
            verification = ("unverified: not the entry's published checkpoint (sha256 " + resolved.sha256[:12]
                            + "...; pass --sha256 to check another file)" if published else
                            "unverified: no hash given (--sha256)")
    load_checkpoint(model, resolved.path, strict=True)
    key = resolved.sha256 if given_code is None else f"{resolved.sha256};code:{given_code}"
    return Weights(model, resolved.sha256, key, verification, resolved.source)


# --------------------------------------------------------------------------- evaluate


def _collate(batch):
    return batch  # list of (views | DecodedVideo | DecodeFailure, label, index)


@dataclass
class EvalSpec:
    """One model to evaluate on a shared input: its entry and weights, how views are averaged,
    and the precision of its forward (see :func:`evaluate` for the fields)."""

    entry: Any
    checkpoint: Any = None
    model: Optional[torch.nn.Module] = None
    average_clips: Optional[str] = None
    precision: str = "fp32"
    sha256: Optional[str] = None  # the hash (or a prefix of 8+ hex digits) a given checkpoint must have


@dataclass
class _Job:
    """The state of one entry's evaluation inside :func:`evaluate_many`."""

    entry: ZooEntry
    weights: Weights
    net: torch.nn.Module
    average_clips: str
    precision: str
    parts: dict
    key: str
    lock: Optional[KeyLock] = None
    my_path: Optional[Path] = None
    final_path: Optional[Path] = None
    reused: dict = field(default_factory=dict)
    sources: list = field(default_factory=list)
    todo: set = field(default_factory=set)
    new_rows: list = field(default_factory=list)
    fh: Any = None
    published: Optional[ZooEntry] = None  # the entry as published (before a --views override)


def evaluate(entry, data_root=None, ann_file=None, *, checkpoint=None, model: Optional[torch.nn.Module] = None,
             average_clips: Optional[str] = None, precision: str = "fp32", **kw) -> EvalResult:
    """Evaluate ``entry`` on the list ``ann_file`` under ``data_root``; write its predictions and record.

    ``checkpoint``: a path or URL (default: the entry's published checkpoint, checked against its
    published hash) loaded into ``build_model(entry)``, or pass a ready ``model`` (optionally
    with ``checkpoint`` to load). ``average_clips``: "prob" or "score" (default: the entry's).
    ``precision``: fp32, or bf16/fp16 autocast. The other keywords are :func:`evaluate_many`'s.
    """
    spec = EvalSpec(entry, checkpoint=checkpoint, model=model, average_clips=average_clips, precision=precision)
    return evaluate_many([spec], data_root, ann_file, **kw)[0]


def evaluate_many(
    specs: list,
    data_root=None,
    ann_file=None,
    *,
    views: Optional[str] = None,
    device: str = "cpu",
    out: Union[None, str, os.PathLike, RunDir] = None,
    num_workers: int = 2,
    batch_views: Optional[int] = None,
    decoder=None,
    dataset=None,
    progress: bool = True,
    write: bool = True,
    fresh: bool = False,
    max_failures: int = 0,
    resume_search: Optional[list] = None,
    intersect_with=None,
    allow_layout_mismatch: bool = False,
    progress_label: Optional[str] = None,
) -> list[EvalResult]:
    """Evaluate several models that share one test input: every video is decoded once, its
    views built once (per normalisation), and each model gets its own run key, predictions
    file, resume state and record — the same numbers as evaluating them one by one.

    ``specs``: :class:`EvalSpec` objects (or entries). Their entries must decode the same frames
    (``loader.decode_key``; ``loader.group_by_input`` makes groups that also share the views).
    Views are built once per view setting and normalisation, and a forward is shared by specs
    with the same weights, views and precision (e.g. averaging variants of one model).
    ``views``: "CLIPSxCROPS" override of the test protocol (e.g. "10x3").
    ``batch_views``: views per forward (default: one video's views, as MMAction2's test).
    ``out``: the run folder (default: a new one under the runs root); predictions go to
    ``<out>/predictions``, records to ``<out>/records``.
    ``fresh``: reuse nothing, even an interrupted run of the same key.
    ``resume_search``: folders searched for an interrupted run of the same key (default: this
    run folder and every run folder under the runs root).
    ``dataset``: a ready dataset yielding ``(views uint8 V x 3 x T x H x W | DecodedVideo, label,
    index)`` and listing ``.records`` (default: the entries' test dataset, frames handed over,
    decode failures reported). ``write=False`` skips the records (predictions are still sealed).
    ``max_failures``: how many videos may fail to decode before an evaluation is incomplete.
    ``intersect_with``: a reference list (video/rawframe list or K400 CSV): only the listed videos
    that it also holds are evaluated; the record names what was left out.
    The first videos of the list are probed (``data.layout``): frames of another layout than the
    entries' (rawframes vs videos, 340x256 vs a short side of 256) are refused with a UserError
    naming them, unless ``allow_layout_mismatch`` (then recorded, and never compared with the
    published numbers). Records keep the frame sizes seen (min/median/max) and the absolute data root.
    ``progress_label``: what the progress bar names (default: ``eval`` and the entries).
    Returns one :class:`EvalResult` per spec; records are written by rank 0 only.
    """
    from .loader import decode_key

    started = now_iso()
    specs = [s if isinstance(s, EvalSpec) else EvalSpec(s) for s in specs]
    if not specs:
        raise UsageError("nothing to evaluate: no entry given")
    published = [get_entry(s.entry) for s in specs]
    entries = [with_test_views(e, views) for e in published]
    if len({decode_key(e) for e in entries}) > 1:
        raise UsageError("entries with different test inputs cannot share one evaluation: "
                         + ", ".join(e.name for e in entries) + " (evaluate them in separate groups)")
    for s in specs:
        if (s.average_clips or "prob") not in ("prob", "score"):
            raise UsageError(f"--average-clips must be prob or score, got {s.average_clips!r}")
        if s.precision not in ("fp32", "fp16", "bf16"):
            raise UsageError(f"--precision must be fp32, fp16 or bf16, got {s.precision!r}")
    if batch_views is not None and int(batch_views) < 1:
        raise UsageError(f"--batch-views must be >= 1, got {batch_views}")
    if int(max_failures) < 0:
        raise UsageError(f"--max-failures must be >= 0, got {max_failures}")
    rank, world, device = _dist_setup(check_device(str(device)))
    run = out if isinstance(out, RunDir) else (open_run_dir(out) if rank == 0 or out is not None else None)
    if world > 1:  # every rank writes into rank 0's run folder
        run = RunDir(Path(_all_gather(str(run.path) if run else None, world)[0]))
    from .runs import ensure_writable

    ensure_writable(run.predictions)
    if write and rank == 0:
        ensure_writable(run.records)

    restriction, data_warnings = None, []
    frames = {"probe": [], "sizes": {}, "counts": {}, "mismatch": None}  # what the frames looked like (data.layout)
    if dataset is None:
        from .data.dataset import build_dataset
        from .data.validate import validate_records

        if data_root is None or ann_file is None:
            raise UsageError("evaluate needs --data-root and --ann (or a ready dataset)")
        dataset = build_dataset(entries[0], "test", data_root, ann_file, decoder=decoder, normalize=False,
                                on_error="report", handover="frames")
        if intersect_with is not None:
            from .data.copies import restrict_to_reference

            restriction = restrict_to_reference(dataset.records, intersect_with, str(ann_file), entries[0].data.format)
            dataset.records = restriction.kept
        data_warnings = [str(w) for w in validate_records(dataset.records, entries[0], data_root, ann_file).warnings]
        frames["mismatch"] = _check_layout(entries[0], dataset, data_root, ann_file, allow_layout_mismatch, frames)
        if progress and rank == 0:
            for w in data_warnings[:20]:
                print(f"warning: {w}", file=sys.stderr)
    num_listed = len(dataset)
    if num_listed == 0:
        raise UserError(f"{ann_file or 'the dataset'}: the list has no videos"
                        + (f" in common with {intersect_with}" if intersect_with is not None else "") + "; nothing to evaluate")
    decoder_obj = getattr(dataset, "decoder", None) or decoder
    decoder_name = getattr(decoder_obj, "name", decoder_obj)
    decoder_version = getattr(decoder_obj, "version", None)
    fingerprint = dataset_fingerprint(dataset, ann_file, intersect_with)
    per_video_views = getattr(dataset, "views_per_video", None) or entries[0].views_per_video

    jobs = []
    for s, e, as_published in zip(specs, entries, published):
        weights = resolve_weights(e, s.checkpoint, s.model, s.sha256)
        average = s.average_clips or e.test.average_clips
        parts = run_key_parts(e, weights=weights.key, dataset=fingerprint, average_clips=average,
                              precision=s.precision, device=device, decoder=decoder_name,
                              decoder_version=decoder_version, batch_views=batch_views)
        jobs.append(_Job(e, weights, weights.model.to(device).eval(), average, s.precision, parts, run_key(parts),
                         published=as_published))
    if len({j.key for j in jobs}) < len(jobs):
        raise UsageError("the same evaluation is listed twice (same entry, weights and settings): "
                         + ", ".join(e.name for e in entries))
    try:
        for job in jobs:
            if rank == 0:
                job.lock = KeyLock(job.key).__enter__()
        _resume(jobs, run, fresh, resume_search, rank, world, num_listed)
        everything = sorted(set().union(*(job.todo for job in jobs)))
        _run_models(jobs, dataset, everything[rank::world], per_video_views, device, batch_views, num_workers,
                    progress and rank == 0, frames["sizes"], frames["counts"], progress_label)
        counts: dict = {}
        for part in _all_gather(frames["counts"], world):
            counts.update(part)
        short = _too_short_videos(entries[0], dataset, counts, ann_file)
        if progress and rank == 0:
            for w in short[:20]:
                print(f"warning: {w}", file=sys.stderr)
        data_warnings += short
        return [_finish(job, run, rank, world, num_listed, dataset, fingerprint, decoder_obj, per_video_views,
                        batch_views, write, started, int(max_failures), data_root, ann_file, restriction,
                        data_warnings, frames) for job in jobs]
    finally:
        for job in jobs:
            if job.lock is not None:
                job.lock.__exit__(None, None, None)


def _too_short_videos(entry: ZooEntry, dataset, counts: dict, ann_file) -> list[str]:
    """Too-short warnings of the videos decoded now (``counts``: index -> frames the decoder
    counted) that the list did not give a frame count for (a rawframe list's are checked before)."""
    from .data.validate import too_short

    out = []
    for index in sorted(counts):
        rec = dataset.records[index]
        if getattr(rec, "total_frames", None) is None:
            problem = too_short(entry, rec, counts[index], str(ann_file) if ann_file is not None else "<records>")
            if problem is not None:
                out.append(str(problem))
    return out


def _resume(jobs: list[_Job], run: RunDir, fresh: bool, resume_search, rank: int, world: int, num_listed: int) -> None:
    """Each job's rows from an interrupted run of its key (never a finished one), and what is left."""
    for job in jobs:
        job.my_path = partial_path(run.predictions, job.entry.name, job.key, rank if world > 1 else None)
        job.final_path = sealed_path(run.predictions, job.entry.name, job.key)
        if fresh:
            if rank == 0:  # an interrupted run of this key in this folder is set aside, not continued
                for p in find_interrupted(job.entry.name, job.key, [run.predictions]):
                    p.unlink()
        elif rank == 0:
            search = resume_search if resume_search is not None else [run.path, runs_root()]
            for p in find_interrupted(job.entry.name, job.key, [Path(f) for f in search]):
                job.sources.append(str(p))
                adopt(p, run.predictions)
    _all_gather(None, world)  # a barrier: rank 0 has moved the partial files in
    for job in jobs:
        if not fresh:
            for p in find_interrupted(job.entry.name, job.key, [run.predictions]):
                for i, row in read_predictions(p, repair=(p == job.my_path.resolve()),
                                                 num_listed=num_listed).items():
                    job.reused.setdefault(i, row)
        done_everywhere = set().union(*_all_gather(set(job.reused), world))
        job.todo = {i for i in range(num_listed) if i not in done_everywhere}


def _finish(job: _Job, run, rank, world, num_listed, dataset, fingerprint, decoder_obj, per_video_views, batch_views,
            write, started, max_failures, data_root, ann_file, restriction, data_warnings, frames) -> EvalResult:
    """Gather the job's rows, seal its predictions, and write its record."""
    entry = job.entry
    mine = dict(job.reused)
    for row in job.new_rows:
        mine.setdefault(row["i"], row)
    rows: dict[int, dict] = {}
    for part in _all_gather(mine, world):
        for i, row in part.items():
            rows.setdefault(i, row)
    reused_count = len(set().union(*_all_gather(set(job.reused), world)))

    partials = find_interrupted(entry.name, job.key, [run.predictions])
    if rank == 0:
        write_sealed(job.final_path, rows)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    if rank == 0:
        for p in partials:
            p.unlink(missing_ok=True)

    metrics = metrics_from_rows(rows, num_listed)
    failures = [{k: rows[i][k] for k in ("i", "video", "label", "error")} for i in sorted(rows) if "error" in rows[i]]
    comparison = (compare_with_published(job.published or entry, metrics, protocol_label(entry, job.average_clips),
                                         frames["mismatch"]) if metrics.get("num_videos") else {})
    seen_sizes: dict = {}
    for part in _all_gather(frames["sizes"], world):
        seen_sizes.update(part)
    obtained = ({"how": "resumed", "rows_reused": reused_count, "reused_from": sorted(set(job.sources)),
                 "rows_computed": len(rows) - reused_count}
                if reused_count else {"how": "computed", "rows_computed": len(rows)})
    conditions = collect_conditions(
        device_of(job.net), precision=job.precision, batch=max(1, (batch_views or per_video_views) // per_video_views),
        views=per_video_views, decoder=decoder_obj, dataset_fingerprint=fingerprint,
        checkpoint_sha256=job.weights.sha256, checkpoint_verified=job.weights.verified, time=started,
    )
    result = EvalResult(
        entry=entry.name, metrics=metrics, num_listed=num_listed, num_evaluated=metrics["num_videos"],
        failures=failures, predictions_path=job.final_path, record_path=None, comparison=comparison, run_key=job.key,
        obtained=obtained, conditions=conditions, max_failures=max_failures, weights_source=job.weights.source,
        restricted=None if restriction is None else {"reference": str(restriction.comparison.reference),
                                                     "kept": len(restriction.kept),
                                                     "dropped": len(restriction.dropped)},
    )
    if write and rank == 0:
        method = {
            "name": "eval",
            "protocol": protocol_label(entry, job.average_clips),
            "views": views_label(entry),
            "average_clips": job.average_clips,
            "sampler_version": entry.test.sampler_version,
            "interval": "exact (Clopper-Pearson) 95%",
            "batch_views": batch_views or per_video_views,
            "jpeg_backend": entry.data.jpeg_backend if entry.data.format == "rawframes" else None,
            "resize_backend": entry.data.resize_backend,
        }
        extra = {
            "predictions": os.path.relpath(job.final_path, run.path),
            "run_key": job.key,
            "run_key_parts": {k: v for k, v in job.parts.items() if k != "entry"},
            "evaluated": f"{metrics['num_videos']} of {num_listed}",
            "complete": result.complete,
            "max_failures": max_failures,
            "failures": failures,
            "comparison": comparison,
            "per_video": per_video(rows, num_listed),
            "data_root": str(Path(data_root).resolve()) if data_root is not None else None,
            "ann_file": str(Path(ann_file).resolve()) if ann_file is not None else None,
            "frame_sizes": {"evaluated": size_summary(seen_sizes.values()),  # this run's decoded videos
                            "probe": [dataclasses.asdict(p) for p in frames["probe"]]},
            "layout_mismatch": frames["mismatch"],
            "weights": "checkpoint" if job.weights.sha256 else job.weights.key,
            "weights_source": {"source": job.weights.source, "verified": job.weights.is_verified,
                               "verification": job.weights.verified},
            "data_warnings": data_warnings[:100],
        }
        if restriction is not None:
            extra["restricted_to"] = {"reference": restriction.comparison.reference,
                                      "kept": len(restriction.kept), "dropped": len(restriction.dropped),
                                      "dropped_ids": [str(r.path) for r in restriction.dropped][:1000]}
        result.record_path = write_record(
            make_record(entry.name, "eval", metrics, conditions, method, obtained=obtained, extra=extra), run.records)
    return result


def _check_layout(entry: ZooEntry, dataset, data_root, ann_file, allow: bool, frames: dict) -> Optional[str]:
    """Probe the first videos (``data.layout``); refuse frames of another layout than ``entry``'s
    unless ``allow``. Returns the mismatch (recorded) or None."""
    from .data.layout import layout_problem, probe_sizes

    frames["probe"] = probe_sizes(dataset.records, data_root, dataset.decoder)
    problem = layout_problem(entry, frames["probe"])
    if problem and not allow:
        raise UserError(f"{ann_file} under {data_root}: {problem}: point --data-root/--ann at a copy of that layout "
                        "(README: Your Kinetics-400 copy; `i3dbench data extract VIDEOS OUT --layout 340x256|short256` "
                        "makes rawframes from videos), or pass --allow-layout-mismatch to evaluate anyway (recorded; "
                        "the record is then never compared with the published numbers)")
    if problem:
        print(f"warning: {problem} (--allow-layout-mismatch: evaluated anyway, not comparable with the published "
              "numbers)", file=sys.stderr)
    return problem


def device_of(net: torch.nn.Module) -> str:
    p = next(iter(net.parameters()), None)
    return str(p.device) if p is not None else "cpu"


def _run_models(jobs: list[_Job], dataset, todo: list[int], per_video_views: int, device: str, batch_views, num_workers,
                progress: bool, sizes: Optional[dict] = None, counts: Optional[dict] = None,
                label: Optional[str] = None) -> None:
    """Decode each video of ``todo`` once, build its views once per normalisation, and run the
    models that still need it; each job's rows are appended to its partial file as they come.
    ``sizes``: filled with index -> (width, height) of every decoded video's frames; ``counts``:
    index -> its frame count."""
    from torch.utils.data import DataLoader, Subset
    from tqdm import tqdm

    from .data.dataset import DecodedVideo
    from .data.transforms import normalize
    from .loader import views_from_decoded

    if not todo:
        return
    videos_per_step = max(1, (batch_views or per_video_views) // per_video_views)
    loader = DataLoader(Subset(dataset, todo), batch_size=videos_per_step, shuffle=False, num_workers=num_workers,
                        collate_fn=_collate, pin_memory=device.startswith("cuda"), persistent_workers=False)
    chunk = batch_views or per_video_views
    device_type = torch.device(device).type
    label = label or "eval " + ", ".join(dict.fromkeys(j.entry.name for j in jobs))
    bar = tqdm(total=len(todo), unit="video", desc=f"{label}: decode+views+forward", disable=not progress,
               dynamic_ncols=True)
    for job in jobs:
        job.my_path.parent.mkdir(parents=True, exist_ok=True)
        job.fh = open(job.my_path, "a")
    # Views buffers reused from one batch to the next, one per (view settings, n-th video of the
    # batch): a batch's views are dead once its logits are computed.
    buffers: dict = {}
    try:
        with torch.inference_mode():
            for batch in loader:
                per_job = {id(j): [] for j in jobs}
                ok = []
                for item, label, index in batch:
                    video = str(dataset.records[index].path)
                    if isinstance(item, (torch.Tensor, DecodedVideo)):
                        if sizes is not None and isinstance(item, DecodedVideo) and item.frames.dim() == 4:
                            sizes[int(index)] = (int(item.frames.shape[2]), int(item.frames.shape[1]))
                        if counts is not None and getattr(item, "total_frames", None) is not None:
                            counts[int(index)] = int(item.total_frames)
                        ok.append((item, int(label), int(index), video))
                        continue
                    reason = str(getattr(item, "reason", None) or item)  # a DecodeFailure
                    for j in jobs:
                        if index in j.todo:
                            per_job[id(j)].append({"i": int(index), "video": video, "label": int(label), "error": reason})
                views_cache: dict = {}
                logits_cache: dict = {}
                for j in jobs:
                    mine = [o for o in ok if o[2] in j.todo]
                    if mine:
                        per_job[id(j)] += _score(j, mine, views_cache, logits_cache, device, device_type, chunk,
                                                 normalize, views_from_decoded, buffers)
                for j in jobs:
                    append_rows(j.fh, per_job[id(j)])
                    j.new_rows += per_job[id(j)]
                bar.update(len(batch))
    finally:
        for j in jobs:
            if j.fh is not None:
                j.fh.close()
                j.fh = None
        bar.close()


def _score(job: _Job, items: list, views_cache: dict, logits_cache: dict, device, device_type, chunk, normalize,
           views_from_decoded, buffers: dict | None = None) -> list:
    """Rows of ``job`` for decoded ``items``: views (shared through ``views_cache`` by every job
    with the same view settings and normalisation), forward in chunks of views (shared through
    ``logits_cache`` by jobs with the same model object, views and precision), view averaging, top-5.
    ``buffers``: views tensors of earlier batches to write this batch's views into."""
    from .loader import view_key

    d = job.entry.data
    vkey = (view_key(job.entry), tuple(d.mean), tuple(d.std))
    # the same model object (the sweep passes one to all its variants) with the same views and precision
    lkey = (vkey, id(job.net), job.precision, tuple(i for _, _, i, _ in items))
    tensors = []
    if lkey not in logits_cache:
        for item, _, index, _ in items:
            key = (index, vkey)
            if key not in views_cache:
                if isinstance(item, torch.Tensor):  # a dataset that hands over uint8 views
                    views_cache[key] = normalize(item, d.mean, d.std, device=device)
                else:
                    slot = (vkey, sum(1 for k in views_cache if k[1] == vkey))  # n-th video of this batch
                    views_cache[key] = views_from_decoded(item, job.entry, device,
                                                          out=None if buffers is None else buffers.get(slot))
                    if buffers is not None:
                        buffers[slot] = views_cache[key]
            tensors.append(views_cache[key])
        x = torch.cat(tensors) if len(tensors) > 1 else tensors[0]
        autocast_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(job.precision)
        logits = []
        for start in range(0, x.shape[0], chunk):
            with torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                logits.append(job.net(x[start:start + chunk]).float())
        logits_cache[lkey] = (torch.cat(logits), [v.shape[0] for v in tensors])
    logits, counts = logits_cache[lkey]
    scores = torch.cat([average_views(part, n, job.average_clips) for part, n in zip(logits.split(counts), counts)])
    scores = scores.cpu().numpy()
    top = topk_classes(scores, TOPK_SAVED)
    return [{"i": index, "video": video, "label": label, "top5": t.tolist(), "scores": [float(v) for v in s[t]]}
            for (_, label, index, video), s, t in zip(items, scores, top)]
