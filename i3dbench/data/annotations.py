"""Annotation files: MMAction2 list files, the official Kinetics-400 CSV, label maps.

* video list (MMAction2 ``VideoDataset``): ``path/to/video.mp4 LABEL`` per line;
* rawframes list (MMAction2 ``RawframeDataset``): ``frame_dir TOTAL_FRAMES LABEL`` per line;
* Kinetics CSV: ``label,youtube_id,time_start,time_end,split[,is_cc]``, whose rows name the
  files ``{youtube_id}_{start:06d}_{end:06d}.mp4``; class indices are the class names in
  alphabetical order (as MMAction2's ``label_map_k400.txt``);
* label map: one class name per line, line ``i`` (0-based) is class ``i``.

A bad line raises :class:`AnnotationError` naming the file, the line number and what is wrong.
Readers take an optional ``errors`` list: when given, bad lines are appended to it and skipped
instead (the inventory reports them all at once).

Paths in a list are relative to a data root; :func:`path_problem` says why one cannot be
(absolute, leaving the root through ``..``, whitespace or control characters), and
:func:`video_id` names a video the same way whichever list format it comes from.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..fileio import atomic_write

__all__ = [
    "VIDEO_EXTENSIONS",
    "AnnotationError",
    "ConversionReport",
    "K400Row",
    "VideoRecord",
    "csv_to_video_list",
    "k400_class_names",
    "load_label_map",
    "path_problem",
    "read_annotation_list",
    "read_k400_csv",
    "read_rawframe_list",
    "read_video_list",
    "video_id",
    "write_label_map",
    "write_video_list",
]

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".flv")


class AnnotationError(UserError, ValueError):
    """A bad line in an annotation file: ``.file``, ``.line`` (1-based, 0 = whole file), ``.message``."""

    def __init__(self, file: str | os.PathLike, line: int, message: str):
        super().__init__(str(file), line, message)
        self.file = str(file)
        self.line = int(line)
        self.message = message

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


@dataclass
class VideoRecord:
    """One annotated video: ``path`` relative to the data root (a file, or a frame directory)."""

    path: str
    label: int
    total_frames: int | None = None  # rawframes lists give it; for videos the container does
    # Line in the list file it came from (0: not from a file); only for messages, so two
    # records of the same video compare equal wherever they were read.
    line: int = field(default=0, compare=False, repr=False)


@dataclass
class K400Row:
    """One row of the official Kinetics CSV."""

    label_name: str
    youtube_id: str
    time_start: int
    time_end: int
    split: str
    is_cc: int | None = None
    line: int = 0  # line number in the CSV (for messages)

    @property
    def stem(self) -> str:
        """``{youtube_id}_{start:06d}_{end:06d}``, the usual name of the trimmed clip."""
        return f"{self.youtube_id}_{self.time_start:06d}_{self.time_end:06d}"

    @property
    def filename(self) -> str:
        return self.stem + ".mp4"


@dataclass
class ConversionReport:
    """What ``csv_to_video_list`` wrote: list lines written and CSV rows without a video."""

    out: Path
    written: int
    missing: list[K400Row] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- list files


def _lines(path: Path):
    """(line number, stripped text) of the non-blank lines; a missing file is an AnnotationError."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise AnnotationError(path, 0, "annotation file not found") from None
    except IsADirectoryError:
        raise AnnotationError(path, 0, "is a folder, not a list file: pass the list (e.g. val_list_videos.txt)") from None
    except UnicodeDecodeError as e:
        raise AnnotationError(path, 0, f"not a UTF-8 text file ({e.reason} at byte {e.start})") from None
    for i, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line:
            yield i, line


def _parse_int(value: str, what: str, minimum: int = 0) -> int:
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"{what} must be an integer, got {value!r}") from None
    if n < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {n}")
    return n


def _read_list(path, fields: tuple[str, ...], num_classes: int | None, errors: list | None) -> list[VideoRecord]:
    path = Path(path)
    records = []
    expected = " ".join(f.upper() if f != "path" else "PATH" for f in fields)
    for lineno, line in _lines(path):
        parts = line.split()
        try:
            if len(parts) > len(fields):
                _refuse_spaced_path(line, len(fields))
            if len(parts) != len(fields):
                raise ValueError(f"expected {len(fields)} fields '{expected}' separated by spaces, got {len(parts)}: "
                                 f"{line!r}{_format_hint(parts, len(fields))}")
            label = _parse_int(parts[-1], "LABEL")
            if num_classes is not None and label >= num_classes:
                raise ValueError(f"LABEL {label} is out of range for {num_classes} classes (0..{num_classes - 1})")
            total = _parse_int(parts[1], "TOTAL_FRAMES") if len(fields) == 3 else None
            records.append(VideoRecord(parts[0], label, total, line=lineno))
        except ValueError as e:
            err = AnnotationError(path, lineno, str(e))
            if errors is None:
                raise err from None
            errors.append(err)
    return records


def _format_hint(parts: list[str], num_fields: int) -> str:
    """A line that fits the other list format says which format it looks like."""
    if num_fields == 2 and len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return " (a rawframes line 'DIR TOTAL_FRAMES LABEL': is this a rawframes list?)"
    if num_fields == 3 and len(parts) == 2 and parts[1].isdigit():
        return " (a video list line 'PATH LABEL': is this a video list?)"
    return ""


def _refuse_spaced_path(line: str, num_fields: int) -> None:
    """A line with too many fields whose trailing ones are numbers holds a path with whitespace:
    say so (MMAction2 would split it and fail or, worse, read the wrong fields)."""
    head, *numbers = line.rsplit(None, num_fields - 1)
    if head.split()[-1].isdigit():  # e.g. 'x 300 5' in a video list: a rawframes line, not a spaced path
        return
    if all(n.isdigit() for n in numbers):
        raise ValueError(f"PATH {head!r} contains whitespace, which MMAction2 lists cannot hold (they split on "
                         f"whitespace): rename the file or folder (e.g. spaces to underscores) and its list line")


def read_video_list(path, num_classes: int | None = None, errors: list | None = None) -> list[VideoRecord]:
    """Records of an MMAction2 video list (``path/to/video.mp4 LABEL`` per line).

    Labels must be non-negative integers (``< num_classes`` when given). Blank lines are
    skipped. A bad line raises AnnotationError, or is appended to ``errors`` when a list is given.
    """
    return _read_list(path, ("path", "label"), num_classes, errors)


def read_rawframe_list(path, num_classes: int | None = None, errors: list | None = None) -> list[VideoRecord]:
    """Records of an MMAction2 rawframes list (``frame_dir TOTAL_FRAMES LABEL`` per line)."""
    return _read_list(path, ("path", "total_frames", "label"), num_classes, errors)


def read_annotation_list(path, format: str, num_classes: int | None = None, errors: list | None = None) -> list[VideoRecord]:
    """``read_video_list`` for format "videos", ``read_rawframe_list`` for "rawframes"."""
    if format == "videos":
        return read_video_list(path, num_classes, errors)
    if format == "rawframes":
        return read_rawframe_list(path, num_classes, errors)
    raise ValueError(f"format must be 'videos' or 'rawframes', got {format!r}")


def write_video_list(path, records: list[VideoRecord]) -> Path:
    """Write records as an MMAction2 list (with TOTAL_FRAMES when every record has it), atomically."""
    path = Path(path)
    rawframes = bool(records) and all(r.total_frames is not None for r in records)
    for r in records:
        if any(c.isspace() for c in r.path):
            raise ValueError(f"{r.path!r}: list files cannot hold paths with spaces (MMAction2 splits on whitespace)")
    text = "".join(f"{r.path} {r.total_frames} {r.label}\n" if rawframes else f"{r.path} {r.label}\n" for r in records)
    atomic_write(path, text)
    return path


_UNSAFE_CHAR = re.compile(r"[\s\x00-\x1f\x7f]")


def path_problem(path: str) -> str | None:
    """Why ``path`` (from a list file) cannot name something inside the data root, or None.

    The check is lexical (``..`` resolved on the text, symlinks not followed): a list must not
    reach outside its root, while a root whose sub-folders are symlinks to other disks (a
    common Kinetics set-up) is the owner's choice and stays allowed.
    """
    if not path:
        return "PATH is empty"
    bad = _UNSAFE_CHAR.search(path)
    if bad and bad.group().isspace():
        return f"PATH {path!r} contains whitespace, which MMAction2 lists cannot hold: rename it"
    if bad:
        return f"PATH {path!r} contains a control character"
    if os.path.isabs(path):
        return f"PATH {path!r} is absolute: list paths are relative to the data root (remove the root prefix)"
    norm = os.path.normpath(path)
    if norm == ".":
        return f"PATH {path!r} names the data root itself, not a video in it"
    if norm == ".." or norm.startswith(".." + os.sep):
        return f"PATH {path!r} leaves the data root through '..': list paths must stay inside it"
    return None


def video_id(path: str, format: str = "videos") -> str:
    """The id of a listed video: its path without a leading ``./`` and without the file
    extension, so ``a/x.mp4`` (a video list) and ``a/x`` (its rawframes directory) share one
    id. Frame directories keep a dot in their name unless it is a video extension."""
    norm = os.path.normpath(path).replace(os.sep, "/")
    stem, ext = os.path.splitext(norm)
    if ext and "/" not in ext and (format == "videos" or ext.lower() in VIDEO_EXTENSIONS):
        return stem
    return norm


# --------------------------------------------------------------------------- Kinetics CSV


_CSV_REQUIRED = ("label", "youtube_id", "time_start", "time_end", "split")


def _parse_time(value: str, what: str) -> int:
    """CSV times are whole seconds; accept "14" and "14.0", refuse "14.5"."""
    try:
        t = float(value)
    except ValueError:
        raise ValueError(f"{what} must be a number of seconds, got {value!r}") from None
    if t != int(t) or t < 0:
        raise ValueError(f"{what} must be a whole, non-negative number of seconds, got {value!r}")
    return int(t)


def read_k400_csv(path, errors: list | None = None) -> list[K400Row]:
    """Rows of an official Kinetics CSV (``label,youtube_id,time_start,time_end,split[,is_cc]``).

    The header must name at least the five columns above (any order). A bad row raises
    AnnotationError (file, line, what) or is appended to ``errors`` when a list is given.
    """
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(path, 0, "CSV file not found")
    rows = []
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise AnnotationError(path, 1, "empty file: expected a header 'label,youtube_id,time_start,time_end,split'")
        header = [h.strip() for h in header]
        missing = [c for c in _CSV_REQUIRED if c not in header]
        if missing:
            raise AnnotationError(path, 1, f"header lacks column(s) {missing}; got {header}")
        col = {name: header.index(name) for name in header}
        for fields in reader:
            lineno = reader.line_num
            if not fields or all(not f.strip() for f in fields):
                continue
            try:
                if len(fields) != len(header):
                    raise ValueError(f"expected {len(header)} fields as the header {header}, got {len(fields)}")
                values = {name: fields[i].strip() for name, i in col.items()}
                label, yid = values["label"], values["youtube_id"]
                if not label:
                    raise ValueError("empty label")
                if not yid:
                    raise ValueError("empty youtube_id")
                start = _parse_time(values["time_start"], "time_start")
                end = _parse_time(values["time_end"], "time_end")
                if end <= start:
                    raise ValueError(f"time_end {end} is not after time_start {start}")
                is_cc = _parse_int(values["is_cc"], "is_cc") if "is_cc" in col and values["is_cc"] else None
                rows.append(K400Row(label, yid, start, end, values["split"], is_cc, lineno))
            except ValueError as e:
                err = AnnotationError(path, lineno, str(e))
                if errors is None:
                    raise err from None
                errors.append(err)
    return rows


def k400_class_names(rows: list[K400Row]) -> list[str]:
    """Distinct class names in alphabetical (code point) order: index = class label."""
    return sorted({r.label_name for r in rows})


def load_label_map(path) -> list[str]:
    """Class names of a label map file (one per line; line i is class i). Duplicates are an error."""
    path = Path(path)
    names: list[str] = []
    seen: dict[str, int] = {}
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise AnnotationError(path, 0, "label map not found") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    for i, raw in enumerate(lines, start=1):
        name = raw.strip()
        if not name:
            raise AnnotationError(path, i, "empty class name (line i names class i-1; remove blank lines)")
        if name in seen:
            raise AnnotationError(path, i, f"class {name!r} already on line {seen[name]}")
        seen[name] = i
        names.append(name)
    return names


def write_label_map(path, names: list[str]) -> Path:
    """Write class names one per line (index order), atomically."""
    path = Path(path)
    atomic_write(path, "".join(f"{n}\n" for n in names))
    return path


def _index_videos(video_dir: Path) -> dict[str, str]:
    """stem -> path relative to video_dir of every video file below it (first found wins, sorted walk)."""
    index: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(video_dir):
        dirnames.sort()
        for name in sorted(filenames):
            stem, ext = os.path.splitext(name)
            if ext.lower() in VIDEO_EXTENSIONS:
                rel = os.path.relpath(os.path.join(dirpath, name), video_dir)
                index.setdefault(stem, rel.replace(os.sep, "/"))
    return index


def csv_to_video_list(csv_path, video_dir, out, label_map: str | os.PathLike | list[str] | None = None) -> ConversionReport:
    """Write an MMAction2 video list for the CSV rows whose video exists under ``video_dir``.

    A row's video is found by its stem ``{youtube_id}_{start:06d}_{end:06d}`` (any video
    extension, at any depth, e.g. in class folders), else by ``youtube_id`` alone. Labels are
    indices into ``label_map`` (a file or a list of names) or, without one, into the CSV's
    class names in alphabetical order. Rows without a video are returned in ``.missing``.
    """
    rows = read_k400_csv(csv_path)
    if label_map is None:
        classes = k400_class_names(rows)
    elif isinstance(label_map, (list, tuple)):
        classes = list(label_map)
    else:
        classes = load_label_map(label_map)
    index_of = {name: i for i, name in enumerate(classes)}
    video_dir = Path(video_dir)
    if not video_dir.is_dir():
        raise FileNotFoundError(f"video folder {video_dir} does not exist")
    found = _index_videos(video_dir)
    records, missing = [], []
    for row in rows:
        if row.label_name not in index_of:
            raise AnnotationError(csv_path, row.line, f"class {row.label_name!r} is not in the label map ({len(classes)} classes)")
        rel = found.get(row.stem) or found.get(row.youtube_id)
        if rel is None:
            missing.append(row)
        else:
            records.append(VideoRecord(rel, index_of[row.label_name]))
    write_video_list(out, records)
    return ConversionReport(Path(out), len(records), missing, classes)
