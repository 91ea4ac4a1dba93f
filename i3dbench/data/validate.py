"""Annotation records checked against a zoo entry and a data root, before anything is decoded.

:func:`validate_records` returns named problems in two grades:

* errors (the records cannot be evaluated or trained on as they are): a label outside the
  entry's classes, a path that is absolute, leaves the data root through ``..``, holds
  whitespace or control characters, an empty list;
* warnings (the run can go on, but its numbers may not match a reference run): a video listed
  twice, a rawframes folder missing or holding another number of frames than the list says,
  a rawframes video shorter than one clip of the entry (MMAction2 loops its frames).

``build_dataset`` refuses errors for every split; ``i3dbench data check`` names all of them.
:func:`entry_clip_span` / :func:`largest_clip_span` give the frames one clip of an entry
touches, the bar below which a video is "too short".
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import UserError
from .annotations import AnnotationError, VideoRecord, path_problem
from .sampling import plan_dense_sample_frames

__all__ = [
    "DataRootError",
    "Problem",
    "Validation",
    "entry_clip_span",
    "find_duplicates",
    "largest_clip_span",
    "require_data_root",
    "too_short",
    "validate_records",
]

# DenseSampleFrames draws its clips from the first ``sample_range`` frames; the dataset uses the
# sampler's default, so read it from there rather than repeat the number.
_DENSE_SAMPLE_RANGE = inspect.signature(plan_dense_sample_frames).parameters["sample_range"].default


class DataRootError(UserError, FileNotFoundError):
    """The data root is not a folder (a FileNotFoundError too, for callers that catch that)."""


def require_data_root(data_root, ann_file=None) -> Path:
    """``data_root`` as a Path, or a DataRootError naming it when it is not a folder."""
    root = Path(data_root)
    if not root.is_dir():
        what = "is a file" if root.exists() else "does not exist"
        of = f" the paths in {ann_file} are" if ann_file is not None else " the list's paths are"
        raise DataRootError(f"data root {root} is not a directory ({what}): pass the folder{of} relative to")
    return root


def entry_clip_span(entry) -> int:
    """Frames one clip of ``entry`` touches: ``(clip_len - 1) * frame_interval + 1``; for the
    dense sampler, the frames its ``num_clips`` clips reach from one start, at least its sample range."""
    d = entry.data
    span = (d.clip_len - 1) * d.frame_interval + 1
    if d.sampler == "dense":
        span = max(_DENSE_SAMPLE_RANGE, (d.num_clips - 1) * (_DENSE_SAMPLE_RANGE // d.num_clips) + span)
    return span


def too_short(entry, rec, total_frames: int, file: str) -> Optional[Problem]:
    """The too-short warning of ``rec`` when its ``total_frames`` (from a rawframe list, or counted
    by the decoder for a video) are fewer than one clip of ``entry`` spans, else None."""
    span = entry_clip_span(entry)
    if total_frames >= span:
        return None
    return Problem("warning", "too_short", file, getattr(rec, "line", 0) or 0, "TOTAL_FRAMES", str(total_frames),
                   f"{rec.path!r} has {total_frames} frames, fewer than one clip of {entry.name!r} spans ({span}): "
                   "MMAction2 loops its frames, so it is scored on repeated frames")


def largest_clip_span(entries) -> tuple[int, str]:
    """``(span, entry name)`` of the entry whose clip spans the most frames (first such name)."""
    best = max(entries.values() if isinstance(entries, dict) else entries, key=entry_clip_span)
    return entry_clip_span(best), best.name


@dataclass(frozen=True)
class Problem:
    """One finding about one record: where (``file``, ``line``), which ``field`` and ``value``, what."""

    severity: str  # "error" | "warning"
    kind: str  # bad_label | bad_path | empty | duplicate | missing | count_mismatch | too_short
    file: str
    line: int  # 1-based line of the list file, 0 when unknown or the whole file
    field: str  # PATH | LABEL | TOTAL_FRAMES | "" (the whole file)
    value: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


@dataclass
class Validation:
    """What :func:`validate_records` found; ``ok`` when there is no error (warnings allowed)."""

    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_errors(self, hint: str = "") -> None:
        """Raise an AnnotationError naming the first error's file, line and value (and how many more)."""
        if not self.errors:
            return
        first = self.errors[0]
        extra = [f"and {len(self.errors) - 1} more error(s)"] if len(self.errors) > 1 else []
        extra += [hint] if hint else []
        more = f" ({'; '.join(extra)})" if extra else ""
        raise AnnotationError(first.file, first.line, first.message + more)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return {"errors": [asdict(p) for p in self.errors], "warnings": [asdict(p) for p in self.warnings]}


def find_duplicates(records: list[VideoRecord]) -> list[tuple[VideoRecord, VideoRecord]]:
    """``(first, again)`` for every record whose (normalised) path was listed before."""
    seen: dict[str, VideoRecord] = {}
    out = []
    for rec in records:
        key = os.path.normpath(rec.path)
        if key in seen:
            out.append((seen[key], rec))
        else:
            seen[key] = rec
    return out


def validate_records(records: list[VideoRecord], entry, data_root, ann_file=None, *, check_files: bool = True,
                     decoder=None) -> Validation:
    """Check ``records`` (read from ``ann_file``) against ``entry`` and ``data_root``; never raises for bad data.

    Without ``check_files`` only the text of the records is judged (labels, paths, duplicates,
    list counts against the clip span); with it, rawframes folders are listed (never decoded)
    to compare their frame count with the list's, and video files are looked up. ``decoder``:
    the rawframes decoder to count frames with (default: the entry's file template).
    """
    from ..zoo import get_entry

    entry = get_entry(entry)
    file = str(ann_file) if ann_file is not None else "<records>"
    root = Path(data_root)
    num_classes = entry.arch.num_classes
    rawframes = entry.data.format == "rawframes"
    v = Validation()

    def add(severity, kind, rec, fld, value, message):
        (v.errors if severity == "error" else v.warnings).append(
            Problem(severity, kind, file, rec.line if rec is not None else 0, fld, str(value), message))

    if not records:
        add("error", "empty", None, "", "", "the list holds no video: nothing to evaluate (is it the right file?)")
        return v
    if check_files and rawframes and decoder is None:
        from .decoders import get_decoder

        decoder = get_decoder("rawframes", filename_tmpl=entry.data.filename_tmpl, start_index=entry.data.start_index)
    for rec in records:
        label = int(rec.label)
        if not 0 <= label < num_classes:
            add("error", "bad_label", rec, "LABEL", label,
                f"LABEL {label} of {rec.path!r} is outside the {num_classes} classes (0..{num_classes - 1}) of entry "
                f"{entry.name!r}: is this the list of another dataset or label map?")
        why = path_problem(rec.path)
        if why:
            add("error", "bad_path", rec, "PATH", rec.path, why)
            continue  # never touch a path outside the root
        if rec.total_frames is not None:
            short = too_short(entry, rec, rec.total_frames, file)
            if short is not None:
                v.warnings.append(short)
        if check_files:
            _check_on_disk(add, rec, root, rawframes, decoder)
    for first, again in find_duplicates(records):
        add("warning", "duplicate", again, "PATH", again.path,
            f"{again.path!r} is listed again (first on line {first.line}): it would count twice in the accuracy")
    return v


def _check_on_disk(add, rec: VideoRecord, root: Path, rawframes: bool, decoder) -> None:
    from .decoders import DecodeError

    path = root / rec.path
    if not rawframes:
        if not path.is_file():
            add("warning", "missing", rec, "PATH", rec.path, f"{rec.path!r} is not a file under {root}")
        return
    if not path.is_dir():
        add("warning", "missing", rec, "PATH", rec.path, f"{rec.path!r} is not a frame folder under {root}")
        return
    try:
        n = decoder.num_frames(path)
    except DecodeError as e:
        n, reason = 0, e.reason
    else:
        reason = ""
    if rec.total_frames is not None and n != rec.total_frames:
        add("warning", "count_mismatch", rec, "TOTAL_FRAMES", rec.total_frames,
            f"the list says {rec.path!r} has {rec.total_frames} frames, its folder holds {n}"
            + (f" ({reason})" if reason else "") + ": the clips would be sampled from another range than MMAction2's")
