"""Evaluate a zoo entry with its published test protocol; resumable, shardable, recorded.

One video at a time (or a few, see ``batch_views``) goes from the dataset as ``uint8`` views
(10 clips x 3 crops = 30 for Kinetics entries) to the device, is normalised there, runs
through the model in batches of views, and its view scores are averaged (``"prob"``:
softmax per view then mean; ``"score"``: mean of the logits). The top-5 classes and scores
of every video are appended to a JSONL file, flushed and fsynced per batch, so that:

* rerunning the same command (same entry, weights, views, averaging, precision, decoder and
  dataset: the *run key*) skips what the file already holds, tolerates a torn last line
  (a run killed mid-write) and never counts a video twice;
* any metric can be recomputed later from the file.

Decode failures are written to the same file with their reason and are not fatal; the
record says how many of the listed videos were evaluated. Under ``torchrun`` (WORLD_SIZE > 1)
each rank evaluates a shard of what is left and rank 0 gathers the rows (gloo on CPU, nccl
on CUDA) and writes the record; a single process just runs.

Prediction file rows (one JSON object per line)::

    {"i": 17, "video": "abseiling/xyz.mp4", "label": 0, "top5": [0, 3, ...], "scores": [0.91, ...]}
    {"i": 18, "video": "...", "label": 4, "error": "cannot decode ...: moov atom not found"}
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from .metrics import accuracy_summary, average_views, topk_classes
from .records import collect_conditions, default_records_dir, make_record, write_record
from .zoo import ZooEntry, get_entry

TOPK_SAVED = 5


@dataclass
class EvalResult:
    """What :func:`evaluate` returns (on rank 0; other ranks get their own share only)."""

    entry: str
    metrics: dict  # top1, top5, mean_class_accuracy (percent), *_ci, num_videos, num_listed, num_failed
    num_listed: int
    num_evaluated: int
    failures: list[dict]  # {"i", "video", "label", "error"}
    predictions_path: Path
    record_path: Optional[Path]
    comparison: dict  # per metric: published, measured, delta, ci, tolerance, within (see compare_with_published)
    conditions: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- protocol helpers


def parse_views(views: str) -> tuple[int, int]:
    """``"10x3"`` -> (10 clips, 3 crops); crops must be 1 (center crop) or 3 (three crop)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(views))
    if not m or int(m.group(1)) < 1 or int(m.group(2)) not in (1, 3):
        raise ValueError(f"--views must look like CLIPSxCROPS with CROPS 1 or 3 (e.g. 10x3), got {views!r}")
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


def compare_with_published(entry: ZooEntry, metrics: dict) -> dict:
    """Measured vs published top-1 / top-5 with the entry's tolerance and the measured CI.

    ``within`` is True when the published value lies in ``[ci_low - tol, ci_high + tol]``:
    the difference cannot be told apart from sampling noise plus the accepted tolerance.
    Metrics without a published value are left out.
    """
    out = {}
    for key in ("top1", "top5"):
        published = getattr(entry.published, key)
        measured = metrics.get(key)
        if published is None or measured is None:
            continue
        tol = getattr(entry.tolerance, key)
        ci = metrics.get(f"{key}_ci") or [measured, measured]
        out[key] = {
            "published": published,
            "measured": measured,
            "delta": measured - published,
            "ci": list(ci),
            "tolerance": tol,
            "within": bool(ci[0] - tol <= published <= ci[1] + tol),
        }
    return out


# --------------------------------------------------------------------------- fingerprints and keys


def _sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


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


def run_key(entry: str, weights: str, views: str, average_clips: str, fingerprint: str, precision: str, decoder: str) -> str:
    """The identity of an evaluation: same key, same predictions file (resume)."""
    return _sha256_json(
        {"entry": entry, "weights": weights, "views": views, "average_clips": average_clips,
         "dataset": fingerprint, "precision": precision, "decoder": decoder}
    )[:16]


# --------------------------------------------------------------------------- the predictions file


def read_predictions(path: Path, repair: bool = False) -> dict[int, dict]:
    """Rows of a predictions file by video index (first row of an index wins).

    A last line without its newline is a write cut short by a kill: it is ignored, and with
    ``repair=True`` cut off the file so that appending can go on. A malformed line elsewhere
    raises ValueError naming the file and line.
    """
    path = Path(path)
    if not path.exists():
        return {}
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1  # everything after the last newline is torn
    if repair and end < len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())
    rows: dict[int, dict] = {}
    for lineno, line in enumerate(data[:end].splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            index = int(row["i"])
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}:{lineno}: not a prediction row ({err}); delete the file to start over") from None
        rows.setdefault(index, row)
    return rows


def _append_rows(fh, rows: list[dict]) -> None:
    if not rows:
        return
    fh.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows))
    fh.flush()
    os.fsync(fh.fileno())


def _write_all(path: Path, rows: dict[int, dict]) -> None:
    """Replace ``path`` atomically with ``rows`` in index order."""
    from .fileio import atomic_write

    atomic_write(path, "".join(json.dumps(rows[i], separators=(",", ":")) + "\n" for i in sorted(rows)))


def metrics_from_rows(rows: dict[int, dict], num_listed: int, seed: int = 0) -> dict:
    """Metrics (see :func:`i3dbench.metrics.accuracy_summary`) over the successful rows."""
    ok = [rows[i] for i in sorted(rows) if "error" not in rows[i]]
    failed = len(rows) - len(ok)
    if not ok:
        return {"num_videos": 0, "num_listed": num_listed, "num_failed": failed}
    width = min(len(r["top5"]) for r in ok)
    pred = np.array([r["top5"][:width] for r in ok], dtype=np.int64)
    labels = np.array([r["label"] for r in ok], dtype=np.int64)
    out = accuracy_summary(pred, labels, seed=seed)
    out.update(num_listed=num_listed, num_failed=failed)
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


# --------------------------------------------------------------------------- evaluate


def _resolve_weights(entry: ZooEntry, checkpoint, model) -> tuple[torch.nn.Module, Optional[str], str]:
    """(model, checkpoint sha256 or None, weights id for the run key).

    A given ``model`` without ``checkpoint`` is identified by its state's hash; otherwise the
    checkpoint (default: the entry's published URL, downloaded once into the cache) is loaded
    strictly into ``model`` or a freshly built one and identified by its file's sha256.
    """
    if model is not None and checkpoint is None:
        return model, None, "state:" + state_dict_sha256(model)
    expected = None
    if checkpoint is None:
        # The entry's own checkpoint: its published hash prefix is checked, local file or URL.
        checkpoint, expected = entry.checkpoint.url, entry.checkpoint.sha256_prefix
    if checkpoint is None:
        raise ValueError(
            f"entry '{entry.name}' has no published checkpoint: pass --checkpoint FILE "
            "(smoke entries: train one with `i3dbench train`, or let `i3dbench run` do it)"
        )
    from .checkpoints import file_sha256, load_checkpoint, resolve

    if model is None:
        from .models import build_model

        model = build_model(entry)
    path = resolve(checkpoint, sha256=expected)  # a URL is downloaded into the cache (and hash-checked) once
    load_checkpoint(model, path, strict=True)
    sha = file_sha256(path)
    return model, sha, sha


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
    out_dir=None,
    records_dir=None,
    num_workers: int = 2,
    batch_views: Optional[int] = None,
    decoder=None,
    precision: str = "fp32",
    dataset=None,
    progress: bool = True,
    write: bool = True,
    seed: int = 0,
) -> EvalResult:
    """Evaluate ``entry`` on the list ``ann_file`` under ``data_root`` and write a record.

    ``checkpoint``: a path or URL (default: the entry's published checkpoint) loaded into
    ``build_model(entry)``, or pass a ready ``model`` (optionally with ``checkpoint`` to load).
    ``views``: "CLIPSxCROPS" override of the entry's test protocol (e.g. "10x3").
    ``average_clips``: "prob" or "score" (default: the entry's, "prob").
    ``batch_views``: views per forward (default: one video's views, as MMAction2's test).
    ``out_dir``: where the predictions file lives (default: ``<records_dir>/predictions``);
    its name carries the run key, so rerunning the same command resumes it.
    ``dataset``: a ready dataset yielding ``(views uint8 V x 3 x T x H x W, label, index)``
    and listing ``.records`` (default: ``build_dataset(entry, "test", ...)`` with decode
    failures reported). ``write=False`` skips the record (the predictions file is still kept).
    Returns an :class:`EvalResult`; the record is written by rank 0 only.
    """
    entry = with_test_views(get_entry(entry), views)
    average_clips = average_clips or entry.test.average_clips
    if average_clips not in ("prob", "score"):
        raise ValueError(f"average_clips must be 'prob' or 'score', got {average_clips!r}")
    if precision not in ("fp32", "fp16", "bf16"):
        raise ValueError(f"precision must be fp32, fp16 or bf16, got {precision!r}")
    rank, world, device = _dist_setup(str(device))

    if dataset is None:
        from .data.dataset import build_dataset

        if data_root is None or ann_file is None:
            raise ValueError("evaluate needs data_root and ann_file (or a ready dataset)")
        dataset = build_dataset(entry, "test", data_root, ann_file, decoder=decoder, normalize=False, on_error="report")
    decoder_obj = getattr(dataset, "decoder", None) or decoder
    decoder_name = getattr(decoder_obj, "name", decoder_obj)  # None for a given dataset without one

    model, ckpt_sha, weights_id = _resolve_weights(entry, checkpoint, model)
    model = model.to(device).eval()
    fingerprint = dataset_fingerprint(dataset, ann_file)
    per_video = getattr(dataset, "views_per_video", None) or entry.views_per_video
    vlabel = views_label(entry)
    key = run_key(entry.name, weights_id, vlabel, average_clips, fingerprint, precision, str(decoder_name))

    records_dir = Path(records_dir) if records_dir is not None else default_records_dir()
    out_dir = Path(out_dir) if out_dir is not None else records_dir / "predictions"
    out_dir.mkdir(parents=True, exist_ok=True)
    final_path = out_dir / f"{entry.name}-{key}.jsonl"
    my_path = final_path if world == 1 else final_path.with_suffix(f".rank{rank}.jsonl")

    # What is done already: the final file and any rank part files (a previous sharded run).
    known: dict[int, dict] = {}
    found = sorted(out_dir.glob(f"{entry.name}-{key}*.jsonl"))
    for p in found:
        for i, row in read_predictions(p, repair=(p == my_path)).items():
            known.setdefault(i, row)
    num_listed = len(dataset)
    done_everywhere = set().union(*_all_gather(set(known), world))
    todo = [i for i in range(num_listed) if i not in done_everywhere][rank::world]

    new_rows = _run_model(
        model, dataset, todo, entry, per_video, device, average_clips, precision, batch_views, num_workers, my_path,
        progress and rank == 0,
    )

    mine = dict(known)
    for row in new_rows:
        mine.setdefault(row["i"], row)
    rows: dict[int, dict] = {}
    for part in _all_gather(mine, world):
        for i, row in part.items():
            rows.setdefault(i, row)

    parts = [p for p in found if p != final_path]
    if world > 1:
        import torch.distributed as dist

        if rank == 0:
            _write_all(final_path, rows)
        dist.barrier()
        my_path.unlink(missing_ok=True)  # merged into the final file by rank 0
    elif parts:  # a sharded run was continued by one process: merge its parts into one file
        _write_all(final_path, rows)
        for p in parts:
            p.unlink(missing_ok=True)

    metrics = metrics_from_rows(rows, num_listed, seed=seed)
    failures = [{k: rows[i][k] for k in ("i", "video", "label", "error")} for i in sorted(rows) if "error" in rows[i]]
    comparison = compare_with_published(entry, metrics) if metrics.get("num_videos") else {}
    conditions = collect_conditions(
        device, precision=precision, batch=max(1, (batch_views or per_video) // per_video), views=per_video,
        decoder=decoder_obj,
        dataset_fingerprint=fingerprint, checkpoint_sha256=ckpt_sha,
    )
    record_path = None
    if write and rank == 0:
        extra = {
            "protocol": f"{vlabel}-{average_clips}",
            "views": vlabel,
            "average_clips": average_clips,
            "batch_views": batch_views or per_video,
            "weights": "checkpoint" if ckpt_sha else weights_id,
            "predictions": os.path.relpath(final_path, records_dir),
            "run_key": key,
            "evaluated": f"{metrics['num_videos']} of {num_listed}",
            "failures": failures,
            "comparison": comparison,
            "data_root": str(data_root) if data_root is not None else None,
            "ann_file": str(ann_file) if ann_file is not None else None,
        }
        record_path = write_record(make_record(entry.name, "eval", metrics, conditions, extra), records_dir)
    return EvalResult(
        entry=entry.name, metrics=metrics, num_listed=num_listed, num_evaluated=metrics["num_videos"],
        failures=failures, predictions_path=final_path, record_path=record_path, comparison=comparison,
        conditions=conditions,
    )


def _run_model(model, dataset, todo, entry, per_video, device, average_clips, precision, batch_views, num_workers, path,
               progress):
    """Evaluate the videos ``todo``, appending one row per video to ``path``; returns the rows."""
    from torch.utils.data import DataLoader, Subset
    from tqdm import tqdm

    from .data.transforms import normalize

    if not todo:
        return []
    videos_per_step = max(1, (batch_views or per_video) // per_video)
    loader = DataLoader(
        Subset(dataset, todo), batch_size=videos_per_step, shuffle=False, num_workers=num_workers,
        collate_fn=_collate, pin_memory=device.startswith("cuda"),
        persistent_workers=False,
    )
    autocast_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
    device_type = torch.device(device).type
    chunk = batch_views or per_video
    out: list[dict] = []
    bar = tqdm(total=len(todo), unit="video", desc=f"eval {entry.name}", disable=not progress, dynamic_ncols=True)
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
            _append_rows(fh, rows)
            out.extend(rows)
            bar.update(len(batch))
    bar.close()
    return out
