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


def compare_with_published(entry: ZooEntry, metrics: dict) -> dict:
    """Measured vs published top-1 / top-5 with the entry's tolerance and the measured interval.

    ``within`` is True when the published value lies in ``[low - tol, high + tol]`` of the exact
    95% interval: the difference cannot be told apart from sampling noise plus the accepted
    tolerance. Metrics without a published value are left out.
    """
    out = {}
    for key in ("top1", "top5"):
        published = getattr(entry.published, key)
        measured = metrics.get(key)
        interval = metrics.get(f"{key}_interval")
        if published is None or measured is None or not interval:
            continue
        tol = getattr(entry.tolerance, key)
        out[key] = {
            "published": published,
            "measured": measured,
            "delta": measured - published,
            "interval": list(interval),
            "tolerance": tol,
            "within": bool(interval[0] - tol <= published <= interval[1] + tol),
        }
    return out


# --------------------------------------------------------------------------- fingerprints and keys


def _sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def dataset_fingerprint(dataset, ann_file=None) -> str:
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

        return inventory_fingerprint(_data_files(Path(root), dataset.records), Path(ann_file).read_bytes())
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


def resolve_weights(entry: ZooEntry, checkpoint, model) -> Weights:
    """The model with its weights, and how they are identified.

    A given ``model`` without ``checkpoint`` is identified by its state's hash; otherwise the
    checkpoint (default: the entry's published URL, downloaded once into the cache and checked
    against its published hash prefix) is loaded strictly into ``model`` or a freshly built one
    and identified by its file's sha256.
    """
    if model is not None and checkpoint is None:
        return Weights(model, None, "state:" + state_dict_sha256(model), "given model (state hash)")
    expected = None
    if checkpoint is None:
        checkpoint, expected = entry.checkpoint.url, entry.checkpoint.sha256_prefix
    if checkpoint is None:
        raise UserError(
            f"entry '{entry.name}' has no published checkpoint: pass --checkpoint FILE "
            "(smoke entries: train one with `i3dbench train`, or let `i3dbench run` do it)"
        )
    from .checkpoints import load_checkpoint, resolve_checkpoint

    if model is None:
        from .models import build_model

        model = build_model(entry)
    # A URL is downloaded into the cache once; the published hash prefix is checked when known.
    resolved = resolve_checkpoint(checkpoint, sha256=expected)
    load_checkpoint(model, resolved.path, strict=True)
    return Weights(model, resolved.sha256, resolved.sha256, resolved.verification)


# --------------------------------------------------------------------------- evaluate


def _collate(batch):
    return batch  # list of (views or failure, label, index): videos have their own view counts


def evaluate(
    entry,
    data_root=None,
    ann_file=None,
    *,
    checkpoint=None,
    model: Optional[torch.nn.Module] = None,
    views: Optional[str] = None,
    average_clips: Optional[str] = None,
    device: str = "cpu",
    out: Union[None, str, os.PathLike, RunDir] = None,
    num_workers: int = 2,
    batch_views: Optional[int] = None,
    decoder=None,
    precision: str = "fp32",
    dataset=None,
    progress: bool = True,
    write: bool = True,
    fresh: bool = False,
    max_failures: int = 0,
    resume_search: Optional[list] = None,
) -> EvalResult:
    """Evaluate ``entry`` on the list ``ann_file`` under ``data_root``; write its predictions and record.

    ``checkpoint``: a path or URL (default: the entry's published checkpoint) loaded into
    ``build_model(entry)``, or pass a ready ``model`` (optionally with ``checkpoint`` to load).
    ``views``: "CLIPSxCROPS" override of the entry's test protocol (e.g. "10x3").
    ``average_clips``: "prob" or "score" (default: the entry's, "prob").
    ``batch_views``: views per forward (default: one video's views, as MMAction2's test).
    ``out``: the run folder (default: a new one under the runs root); predictions go to
    ``<out>/predictions``, the record to ``<out>/records``.
    ``fresh``: reuse nothing, even an interrupted run of the same key.
    ``resume_search``: folders searched for an interrupted run of the same key (default: this
    run folder and every run folder under the runs root).
    ``dataset``: a ready dataset yielding ``(views uint8 V x 3 x T x H x W, label, index)`` and
    listing ``.records`` (default: ``build_dataset(entry, "test", ...)`` with decode failures
    reported). ``write=False`` skips the record (predictions are still written and sealed).
    ``max_failures``: how many videos may fail to decode before the evaluation is incomplete.
    Returns an :class:`EvalResult`; the record is written by rank 0 only.
    """
    started = now_iso()
    entry = with_test_views(get_entry(entry), views)
    average_clips = average_clips or entry.test.average_clips
    if average_clips not in ("prob", "score"):
        raise UsageError(f"--average-clips must be prob or score, got {average_clips!r}")
    if precision not in ("fp32", "fp16", "bf16"):
        raise UsageError(f"--precision must be fp32, fp16 or bf16, got {precision!r}")
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

    if dataset is None:
        from .data.dataset import build_dataset

        if data_root is None or ann_file is None:
            raise UsageError("evaluate needs --data-root and --ann (or a ready dataset)")
        dataset = build_dataset(entry, "test", data_root, ann_file, decoder=decoder, normalize=False, on_error="report")
    num_listed = len(dataset)
    if num_listed == 0:
        raise UserError(f"{ann_file or 'the dataset'}: the list has no videos; nothing to evaluate")
    decoder_obj = getattr(dataset, "decoder", None) or decoder
    decoder_name = getattr(decoder_obj, "name", decoder_obj)
    decoder_version = getattr(decoder_obj, "version", None)

    weights = resolve_weights(entry, checkpoint, model)
    net = weights.model.to(device).eval()
    fingerprint = dataset_fingerprint(dataset, ann_file)
    per_video_views = getattr(dataset, "views_per_video", None) or entry.views_per_video
    parts = run_key_parts(entry, weights=weights.key, dataset=fingerprint, average_clips=average_clips,
                          precision=precision, device=device, decoder=decoder_name, decoder_version=decoder_version,
                          batch_views=batch_views)
    key = run_key(parts)

    lock = KeyLock(key) if rank == 0 else None
    if lock is not None:
        lock.__enter__()
    try:
        return _evaluate_locked(
            entry, dataset, net, weights, run, key, parts, average_clips, device, precision, batch_views,
            num_workers, per_video_views, fingerprint, decoder_obj, fresh, resume_search, rank, world, progress,
            write, started, int(max_failures), data_root, ann_file,
        )
    finally:
        if lock is not None:
            lock.__exit__(None, None, None)


def _evaluate_locked(entry, dataset, net, weights, run, key, parts, average_clips, device, precision, batch_views,
                     num_workers, per_video_views, fingerprint, decoder_obj, fresh, resume_search, rank, world,
                     progress, write, started, max_failures, data_root, ann_file) -> EvalResult:
    num_listed = len(dataset)
    my_path = partial_path(run.predictions, entry.name, key, rank if world > 1 else None)
    final_path = sealed_path(run.predictions, entry.name, key)

    # What an interrupted run of this key already did (never a finished one: see predictions.py).
    reused: dict[int, dict] = {}
    sources: list[str] = []
    if fresh:
        if rank == 0:  # an interrupted run of this key in this folder is set aside, not continued
            for p in find_interrupted(entry.name, key, [run.predictions]):
                p.unlink()
    else:
        search = resume_search if resume_search is not None else [run.path, runs_root()]
        if rank == 0:
            for p in find_interrupted(entry.name, key, [Path(f) for f in search]):
                sources.append(str(p))
                adopt(p, run.predictions)
    _all_gather(None, world)  # a barrier: rank 0 has moved the partial files in
    if not fresh:
        for p in find_interrupted(entry.name, key, [run.predictions]):
            for i, row in read_predictions(p, repair=(p == my_path.resolve())).items():
                reused.setdefault(i, row)
    done_everywhere = set().union(*_all_gather(set(reused), world))
    reused_count = len(done_everywhere)
    todo = [i for i in range(num_listed) if i not in done_everywhere][rank::world]

    new_rows = _run_model(
        net, dataset, todo, entry, per_video_views, device, average_clips, precision, batch_views, num_workers,
        my_path, progress and rank == 0,
    )

    mine = dict(reused)
    for row in new_rows:
        mine.setdefault(row["i"], row)
    rows: dict[int, dict] = {}
    for part in _all_gather(mine, world):
        for i, row in part.items():
            rows.setdefault(i, row)

    partials = find_interrupted(entry.name, key, [run.predictions])
    if rank == 0:
        write_sealed(final_path, rows)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    if rank == 0:
        for p in partials:
            p.unlink(missing_ok=True)

    metrics = metrics_from_rows(rows, num_listed)
    failures = [{k: rows[i][k] for k in ("i", "video", "label", "error")} for i in sorted(rows) if "error" in rows[i]]
    comparison = compare_with_published(entry, metrics) if metrics.get("num_videos") else {}
    obtained = ({"how": "resumed", "rows_reused": reused_count, "reused_from": sorted(set(sources)),
                 "rows_computed": len(rows) - reused_count}
                if reused_count else {"how": "computed", "rows_computed": len(rows)})
    conditions = collect_conditions(
        device, precision=precision, batch=max(1, (batch_views or per_video_views) // per_video_views),
        views=per_video_views, decoder=decoder_obj, dataset_fingerprint=fingerprint,
        checkpoint_sha256=weights.sha256, checkpoint_verified=weights.verified, time=started,
    )
    result = EvalResult(
        entry=entry.name, metrics=metrics, num_listed=num_listed, num_evaluated=metrics["num_videos"],
        failures=failures, predictions_path=final_path, record_path=None, comparison=comparison, run_key=key,
        obtained=obtained, conditions=conditions, max_failures=max_failures,
    )
    if write and rank == 0:
        method = {
            "name": "eval",
            "protocol": protocol_label(entry, average_clips),
            "views": views_label(entry),
            "average_clips": average_clips,
            "sampler_version": entry.test.sampler_version,
            "interval": "exact (Clopper-Pearson) 95%",
            "batch_views": batch_views or per_video_views,
            "jpeg_backend": entry.data.jpeg_backend if entry.data.format == "rawframes" else None,
            "resize_backend": entry.data.resize_backend,
        }
        extra = {
            "predictions": os.path.relpath(final_path, run.path),
            "run_key": key,
            "run_key_parts": {k: v for k, v in parts.items() if k != "entry"},
            "evaluated": f"{metrics['num_videos']} of {num_listed}",
            "complete": result.complete,
            "max_failures": max_failures,
            "failures": failures,
            "comparison": comparison,
            "per_video": per_video(rows, num_listed),
            "data_root": str(data_root) if data_root is not None else None,
            "ann_file": str(ann_file) if ann_file is not None else None,
            "weights": "checkpoint" if weights.sha256 else weights.key,
        }
        result.record_path = write_record(
            make_record(entry.name, "eval", metrics, conditions, method, obtained=obtained, extra=extra), run.records)
    return result


def _run_model(model, dataset, todo, entry, per_video_views, device, average_clips, precision, batch_views,
               num_workers, path, progress):
    """Evaluate the videos ``todo``, appending one row per video to ``path``; returns the rows."""
    from torch.utils.data import DataLoader, Subset
    from tqdm import tqdm

    from .data.transforms import normalize

    if not todo:
        return []
    videos_per_step = max(1, (batch_views or per_video_views) // per_video_views)
    loader = DataLoader(
        Subset(dataset, todo), batch_size=videos_per_step, shuffle=False, num_workers=num_workers,
        collate_fn=_collate, pin_memory=device.startswith("cuda"), persistent_workers=False,
    )
    autocast_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
    device_type = torch.device(device).type
    chunk = batch_views or per_video_views
    out: list[dict] = []
    bar = tqdm(total=len(todo), unit="video", desc=f"eval {entry.name}: decode+forward", disable=not progress,
               dynamic_ncols=True)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh, torch.inference_mode():
        for batch in loader:
            rows, ok = [], []
            for views, label, index in batch:
                video = str(dataset.records[index].path)
                if isinstance(views, torch.Tensor):
                    ok.append((views, int(label), int(index), video))
                else:  # a DecodeFailure (dataset on_error="report")
                    reason = getattr(views, "reason", None) or str(views)
                    rows.append({"i": int(index), "video": video, "label": int(label), "error": str(reason)})
            if ok:
                counts = [v.shape[0] for v, *_ in ok]
                x = torch.cat([v for v, *_ in ok])
                logits = []
                for start in range(0, x.shape[0], chunk):
                    xb = normalize(x[start:start + chunk], entry.data.mean, entry.data.std, device=device)
                    with torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                        logits.append(model(xb).float())
                logits = torch.cat(logits)
                scores = torch.cat([average_views(part, n, average_clips) for part, n in zip(logits.split(counts), counts)])
                scores = scores.cpu().numpy()
                top = topk_classes(scores, TOPK_SAVED)
                for (_, label, index, video), s, t in zip(ok, scores, top):
                    rows.append({"i": index, "video": video, "label": label, "top5": t.tolist(),
                                 "scores": [float(v) for v in s[t]]})
            append_rows(fh, rows)
            out.extend(rows)
            bar.update(len(batch))
    bar.close()
    return out
