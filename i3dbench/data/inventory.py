"""Inventory of a dataset copy: what is present, missing or broken, and a fingerprint.

Public copies of "Kinetics-400 val" differ (19,796 vs 19,761 ... videos, re-encoded files), so a
result is only comparable with the copy it was measured on. ``check_dataset`` opens every
annotated video (or frame directory), decodes its first and last frame, and reports:

* ``missing``      - the annotated file / directory is not there;
* ``unreadable``   - it cannot be opened or decoded (empty, truncated, not a video, bad JPEG);
* ``zero_frames``  - it opens but holds no frame;
* ``too_short``    - fewer frames than one clip spans (``(clip_len - 1) * frame_interval + 1``;
                     checked only when a span is given, since MMAction2 loops short videos);
* ``count_mismatch`` - (rawframes) the directory holds another number of frames than the list says;
* ``bad_path``     - the listed path is absolute or leaves the root through ``..`` (never opened);

plus bad annotation lines (unparsable, a label outside ``num_classes``, a video listed twice),
per-class counts, resolution and frame-count statistics, optionally the comparison with a
reference list (``data.copies``), and a fingerprint: sha256 over the sorted relative paths and
sizes of the data files and the annotation file's bytes. Bad files never raise: each becomes
a row of the report. What cannot be checked at all (no root, no list, an empty or unreadable
list, a bad argument) raises a UserError naming it.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import UsageError
from .annotations import AnnotationError, VideoRecord, path_problem, read_annotation_list

__all__ = ["PROBLEM_STATUSES", "InventoryReport", "VideoCheck", "check_dataset", "check_video", "dataset_fingerprint"]

PROBLEM_STATUSES = ("missing", "unreadable", "zero_frames", "too_short", "count_mismatch", "bad_path")


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
    line: int = 0  # line of the annotation file


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
    comparison: dict | None = None  # CopyComparison.to_dict() when checked against a reference

    @property
    def ok(self) -> bool:
        same = self.comparison is None or self.comparison["identical"]
        return not self.problems and not self.annotation_errors and same

    def to_dict(self) -> dict:
        d = asdict(self)
        d["class_counts"] = {str(k): v for k, v in self.class_counts.items()}
        d["ok"] = self.ok
        return d


# --------------------------------------------------------------------------- one video


def check_video(root: Path, record: VideoRecord, format: str, decoder, clip_span: int | None) -> VideoCheck:
    """Check one record; never raises (a failure is the ``unreadable`` status with the reason)."""
    why = path_problem(record.path)
    if why:  # checked before any file-system call: a list must not make us open files outside the root
        return VideoCheck(record.path, record.label, "bad_path", why, line=record.line)
    try:
        if format == "videos":
            check = _check_file(root, record, decoder, clip_span)
        else:
            check = _check_frame_dir(root, record, decoder, clip_span)
    except Exception as e:  # noqa: BLE001 - a decoder or file-system surprise is a finding, not a crash
        check = VideoCheck(record.path, record.label, "unreadable", f"{type(e).__name__}: {e}")
    check.line = record.line
    return check


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
    *,
    clip_span: int | None = None,
    num_classes: int | None = None,
    reference=None,
) -> InventoryReport:
    """Check every video of ``ann_file`` under ``root`` (see the module docstring).

    ``format`` is "videos" (decoder default: decord) or "rawframes" (JPEG frame directories
    named ``filename_tmpl`` from ``start_index``). A video shorter than ``clip_span`` frames
    (default, when ``clip_len`` is given: ``(clip_len - 1) * frame_interval + 1``) is too short;
    a label ``>= num_classes`` is a bad line. ``reference`` (a list or K400 CSV path, or a
    ``copies.IdList``) adds the comparison of the list with it. Work runs on ``workers``
    threads (default: min(8, CPUs)). Raises a UserError for what cannot be checked: a missing
    ``root``, a missing, empty or unreadable ``ann_file`` (or one with no valid line), a bad
    argument; bad lines and bad files are listed in the report.
    """
    from tqdm import tqdm

    from .copies import compare_ids, id_list_from_records, read_id_list
    from .decoders import get_decoder
    from .validate import find_duplicates, require_data_root

    root, ann_file = Path(root), Path(ann_file)
    if format not in ("videos", "rawframes"):
        raise UsageError(f"format must be 'videos' or 'rawframes', got {format!r}")
    for name, value in (("clip_len", clip_len), ("frame_interval", frame_interval), ("workers", workers),
                        ("clip_span", clip_span), ("num_classes", num_classes)):
        if value is not None and value < 1:
            raise UsageError(f"{name} must be >= 1, got {value}")
    require_data_root(root, ann_file)
    if ann_file.is_dir():
        raise AnnotationError(ann_file, 0, "is a folder, not a list file: pass the list (e.g. val_list_videos.txt)")
    if not ann_file.is_file():
        raise AnnotationError(ann_file, 0, "annotation file not found")
    ref_ids = None
    if reference is not None:  # read before the long check: a bad reference fails at once
        ref_ids = reference if hasattr(reference, "ids") else read_id_list(reference)
    if decoder is None:
        decoder = get_decoder("decord") if format == "videos" else get_decoder("rawframes", filename_tmpl=filename_tmpl, start_index=start_index, num_threads=1)
    errors: list[AnnotationError] = []
    records = read_annotation_list(ann_file, format, num_classes=num_classes, errors=errors)  # whole-file failures raise
    if not records:
        if not errors:
            raise AnnotationError(ann_file, 0, "the list holds no video (empty file): pass the list of the copy to check")
        raise AnnotationError(errors[0].file, errors[0].line,
                              f"no line of the list is valid ({len(errors)} bad); the first: {errors[0].message}")
    for first, again in find_duplicates(records):
        errors.append(AnnotationError(ann_file, again.line, f"PATH {again.path!r} is listed again (first on line "
                                                            f"{first.line}): it would count twice in the accuracy"))
    errors.sort(key=lambda e: e.line)
    if clip_span is None and clip_len:
        clip_span = (clip_len - 1) * frame_interval + 1
    workers = workers or min(8, os.cpu_count() or 1)

    def one(rec: VideoRecord) -> VideoCheck:
        return check_video(root, rec, format, decoder, clip_span)

    # A video listed twice is opened once; its check stands for every line naming it.
    first_of: dict[str, int] = {}
    distinct: list[VideoRecord] = []
    for rec in records:
        key = os.path.normpath(rec.path)
        if key not in first_of:
            first_of[key] = len(distinct)
            distinct.append(rec)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        done = list(tqdm(pool.map(one, distinct), total=len(distinct), desc=f"checking {root.name}", unit=format[:-1], disable=not progress))
    checks = []
    for rec in records:
        check = done[first_of[os.path.normpath(rec.path)]]
        checks.append(check if check.line == rec.line else replace(check, label=rec.label, line=rec.line))
    report = _summarise(root, ann_file, format, decoder, clip_span, records, checks, errors)
    if ref_ids is not None:
        report.comparison = compare_ids(id_list_from_records(records, str(ann_file), format), ref_ids).to_dict()
    return report


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
        problems=[{"path": c.path, "line": c.line, "label": c.label, "status": c.status, "reason": c.reason}
                  for c in checks if c.status != "ok"],
        annotation_errors=[str(e) for e in errors],
        class_counts=dict(sorted(classes.items())),
        resolutions=dict(Counter(f"{c.width}x{c.height}" for c in readable).most_common()),
        frame_stats=stats,
        fingerprint=dataset_fingerprint(files, ann_file.read_bytes()),
        total_bytes=sum(size for _, size in files),
    )
