"""Inventory of a dataset copy: what is present, missing or broken, and a fingerprint.

Public copies of "Kinetics-400 val" differ (19,796 vs 19,761 ... videos, re-encoded files), so a
result is only comparable with the copy it was measured on. ``check_dataset`` opens every
annotated video (or frame directory), decodes its first and last frame, and reports:

* ``missing``      - the annotated file / directory is not there;
* ``unreadable``   - it cannot be opened or decoded (empty, truncated, not a video, bad JPEG);
* ``zero_frames``  - it opens but holds no frame;
* ``too_short``    - fewer frames than one clip spans (``clip_len * frame_interval``; checked
                     only when a clip length is given, since MMAction2 loops short videos);
* ``count_mismatch`` - (rawframes) the directory holds another number of frames than the list says;

plus bad annotation lines, per-class counts, resolution and frame-count statistics, and a
fingerprint: sha256 over the sorted relative paths and sizes of the data files and the
annotation file's bytes. Bad files never raise: each becomes a row of the report.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .annotations import AnnotationError, VideoRecord, read_annotation_list

__all__ = ["PROBLEM_STATUSES", "InventoryReport", "VideoCheck", "check_dataset", "check_video", "dataset_fingerprint"]

PROBLEM_STATUSES = ("missing", "unreadable", "zero_frames", "too_short", "count_mismatch")


@dataclass
class VideoCheck:
    """The state of one annotated video."""

    path: str  # as in the annotation file (relative to the data root)
    label: int
    status: str  # "ok" or one of PROBLEM_STATUSES
    reason: str = ""
    num_frames: int | None = None
    width: int | None = None
    height: int | None = None
    files: list[tuple[str, int]] = field(default_factory=list, repr=False)  # (relative path, bytes)


@dataclass
class InventoryReport:
    """Everything ``check_dataset`` found; ``ok`` is True when there is no problem at all."""

    root: str
    ann_file: str
    format: str
    decoder: str
    clip_span: int | None
    num_annotated: int
    status_counts: dict[str, int]
    problems: list[dict]  # {"path", "label", "status", "reason"}
    annotation_errors: list[str]
    class_counts: dict[int, dict[str, int]]  # label -> {"annotated": n, "ok": n}
    resolutions: dict[str, int]  # "WxH" -> videos
    frame_stats: dict[str, float]  # min / p5 / median / mean / max over readable videos
    fingerprint: str
    total_bytes: int

    @property
    def ok(self) -> bool:
        return not self.problems and not self.annotation_errors

    def to_dict(self) -> dict:
        d = asdict(self)
        d["class_counts"] = {str(k): v for k, v in self.class_counts.items()}
        d["ok"] = self.ok
        return d


# --------------------------------------------------------------------------- one video


def check_video(root: Path, record: VideoRecord, format: str, decoder, clip_span: int | None) -> VideoCheck:
    """Check one record; never raises (a failure is the ``unreadable`` status with the reason)."""
    try:
        if format == "videos":
            return _check_file(root, record, decoder, clip_span)
        return _check_frame_dir(root, record, decoder, clip_span)
    except Exception as e:  # noqa: BLE001 - a decoder or file-system surprise is a finding, not a crash
        return VideoCheck(record.path, record.label, "unreadable", f"{type(e).__name__}: {e}")


def _check_file(root: Path, record: VideoRecord, decoder, clip_span) -> VideoCheck:
    from .decoders import DecodeError

    path = root / record.path
    check = VideoCheck(record.path, record.label, "ok")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        check.status, check.reason = "missing", "file not found"
        return check
    if path.is_dir():
        check.status, check.reason = "unreadable", "is a directory, not a video file"
        return check
    check.files = [(record.path, size)]
    if size == 0:
        check.status, check.reason = "unreadable", "file is empty (0 bytes)"
        return check
    try:
        n = decoder.num_frames(path)
        check.num_frames = n
        if n <= 0:
            check.status, check.reason = "zero_frames", "the container reports 0 frames"
            return check
        # First and last frame: a truncated file often opens and reports its full length.
        frames = decoder.read(path, np.array([0, n - 1]))
    except DecodeError as e:
        check.status, check.reason = "unreadable", e.reason
        return check
    check.height, check.width = int(frames.shape[1]), int(frames.shape[2])
    _check_span(check, clip_span)
    return check


def _check_frame_dir(root: Path, record: VideoRecord, decoder, clip_span) -> VideoCheck:
    from .decoders import DecodeError

    path = root / record.path
    check = VideoCheck(record.path, record.label, "ok")
    if not path.is_dir():
        check.status = "missing" if not path.exists() else "unreadable"
        check.reason = "frame directory not found" if not path.exists() else "is a file, not a frame directory"
        return check
    check.files = frame_dir_files(path, record.path)
    try:
        n = decoder.num_frames(path)
    except DecodeError as e:
        if not check.files or "no frames named" in e.reason:
            check.num_frames = 0
            check.status, check.reason = "zero_frames", e.reason
        else:
            check.status, check.reason = "unreadable", e.reason
        return check
    check.num_frames = n
    try:
        frames = decoder.read(path, np.array([0, n - 1]))
    except DecodeError as e:
        check.status, check.reason = "unreadable", f"{os.path.basename(e.path)}: {e.reason}"
        return check
    check.height, check.width = int(frames.shape[1]), int(frames.shape[2])
    if record.total_frames is not None and record.total_frames != n:
        check.status = "count_mismatch"
        check.reason = f"the list says {record.total_frames} frames, the directory has {n}"
        return check
    _check_span(check, clip_span)
    return check


def _check_span(check: VideoCheck, clip_span: int | None) -> None:
    if clip_span and check.num_frames is not None and check.num_frames < clip_span:
        check.status = "too_short"
        check.reason = f"{check.num_frames} frames, fewer than one clip spans ({clip_span})"


# --------------------------------------------------------------------------- the whole set


def frame_dir_files(path: Path, rel: str) -> list[tuple[str, int]]:
    """Sorted ``(rel/name, size)`` of the files in a rawframes directory: what the fingerprint counts."""
    with os.scandir(path) as it:
        return sorted((f"{rel}/{e.name}", e.stat().st_size) for e in it if e.is_file())


def dataset_fingerprint(files: list[tuple[str, int]], annotation_bytes: bytes) -> str:
    """sha256 over the sorted ``(relative path, size)`` pairs and the annotation file's bytes."""
    h = hashlib.sha256()
    for rel, size in sorted(files):
        h.update(f"{rel}\t{size}\n".encode())
    h.update(b"\0annotations\0")
    h.update(annotation_bytes)
    return h.hexdigest()


def check_dataset(
    root,
    ann_file,
    format: str = "videos",
    clip_len: int | None = None,
    frame_interval: int = 1,
    workers: int | None = None,
    decoder=None,
    filename_tmpl: str = "img_{:05}.jpg",
    start_index: int = 1,
    progress: bool = True,
) -> InventoryReport:
    """Check every video of ``ann_file`` under ``root`` (see the module docstring).

    ``format`` is "videos" (decoder default: decord) or "rawframes" (JPEG frame directories
    named ``filename_tmpl`` from ``start_index``). ``clip_len * frame_interval`` frames is
    the shortest acceptable video when ``clip_len`` is given. Work runs on ``workers``
    threads (default: min(8, CPUs)). Raises only for a missing ``root`` / ``ann_file`` or an
    unknown ``format``; bad lines and bad files are listed in the report.
    """
    from tqdm import tqdm

    from .decoders import get_decoder

    root, ann_file = Path(root), Path(ann_file)
    if format not in ("videos", "rawframes"):
        raise ValueError(f"format must be 'videos' or 'rawframes', got {format!r}")
    if not root.is_dir():
        raise FileNotFoundError(f"data root {root} is not a directory")
    if not ann_file.is_file():
        raise FileNotFoundError(f"annotation file {ann_file} not found")
    if decoder is None:
        decoder = get_decoder("decord") if format == "videos" else get_decoder("rawframes", filename_tmpl=filename_tmpl, start_index=start_index, num_threads=1)
    errors: list[AnnotationError] = []
    try:
        records = read_annotation_list(ann_file, format, errors=errors)
    except AnnotationError as e:  # unreadable file as a whole
        records, errors = [], [e]
    clip_span = clip_len * frame_interval if clip_len else None
    workers = workers or min(8, os.cpu_count() or 1)

    def one(rec: VideoRecord) -> VideoCheck:
        return check_video(root, rec, format, decoder, clip_span)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        checks = list(tqdm(pool.map(one, records), total=len(records), desc=f"checking {root.name}", unit=format[:-1], disable=not progress))
    return _summarise(root, ann_file, format, decoder, clip_span, records, checks, errors)


def _summarise(root, ann_file, format, decoder, clip_span, records, checks, errors) -> InventoryReport:
    status = Counter(c.status for c in checks)
    classes: dict[int, dict[str, int]] = {}
    for c in checks:
        entry = classes.setdefault(c.label, {"annotated": 0, "ok": 0})
        entry["annotated"] += 1
        entry["ok"] += c.status == "ok"
    readable = [c for c in checks if c.width is not None]
    frames = np.array([c.num_frames for c in readable], dtype=float)
    stats = {}
    if frames.size:
        stats = {
            "min": float(frames.min()),
            "p5": float(np.percentile(frames, 5)),
            "median": float(np.median(frames)),
            "mean": round(float(frames.mean()), 2),
            "max": float(frames.max()),
        }
    files = [f for c in checks for f in c.files]
    return InventoryReport(
        root=str(root),
        ann_file=str(ann_file),
        format=format,
        decoder=f"{decoder.name} {decoder.version}",
        clip_span=clip_span,
        num_annotated=len(records),
        status_counts={s: status.get(s, 0) for s in ("ok",) + PROBLEM_STATUSES},
        problems=[{"path": c.path, "label": c.label, "status": c.status, "reason": c.reason} for c in checks if c.status != "ok"],
        annotation_errors=[str(e) for e in errors],
        class_counts=dict(sorted(classes.items())),
        resolutions=dict(Counter(f"{c.width}x{c.height}" for c in readable).most_common()),
        frame_stats=stats,
        fingerprint=dataset_fingerprint(files, ann_file.read_bytes()),
        total_bytes=sum(size for _, size in files),
    )
