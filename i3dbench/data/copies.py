"""Which videos two copies of a dataset share, by id.

Public "Kinetics-400 val" copies hold different videos (MMAction2 19,796, the non-local paper
and PySlowFast 19,761), and a missing video moves top-1, so a result is compared with another
only over the videos both had. A reference is an MMAction2 video list, a rawframes list or
the official Kinetics CSV (:func:`read_id_list` tells them apart). Ids are matched from the
most to the least specific name, each stage only where the name is unique on both sides:

1. ``path``: the listed path without its extension (``a/x.mp4`` = frame folder ``a/x``);
2. ``name``: its last component (a copy in class folders against a flat one, or the CSV's
   ``{youtube_id}_{start:06d}_{end:06d}``);
3. ``youtube_id``: a Kinetics file named by its youtube id alone against one named with its
   time range (two different time ranges of one youtube video are different clips: no match).

:func:`compare_ids` reports what is missing and extra; :func:`restrict_to_reference` keeps the
records present in a reference and returns what it dropped.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .annotations import AnnotationError, VideoRecord, read_k400_csv, read_rawframe_list, read_video_list, video_id

__all__ = ["CopyComparison", "IdList", "Restriction", "compare_ids", "describe_comparison", "id_list_from_records",
           "read_id_list", "restrict_to_reference"]

_K400_NAME = re.compile(r"(?P<yid>.+)_(?P<start>\d{6})_(?P<end>\d{6})")
STAGES = ("path", "name", "youtube_id")


@dataclass
class IdList:
    """The distinct videos of one list, in file order: ``ids``, with the line and label of each."""

    file: str
    format: str  # videos | rawframes | k400_csv | records
    ids: list[str]
    lines: dict[str, int] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)  # integer labels (lists only, not the CSV's names)


def id_list_from_records(records: list[VideoRecord], file: str = "<records>", format: str | None = None) -> IdList:
    """The IdList of annotation records (``format`` default: rawframes when every record has a frame count)."""
    if format is None:
        format = "rawframes" if records and all(r.total_frames is not None for r in records) else "videos"
    out = IdList(str(file), format, [])
    for rec in records:
        vid = video_id(rec.path, format)
        if vid not in out.lines:
            out.ids.append(vid)
            out.lines[vid] = rec.line
            out.labels[vid] = int(rec.label)
    return out


def _sniff(path: Path) -> str:
    """k400_csv | rawframes | videos, from the first non-blank line."""
    try:
        with open(path, encoding="utf-8-sig") as fh:
            first = next((line.strip() for line in fh if line.strip()), None)
    except FileNotFoundError:
        raise AnnotationError(path, 0, "reference list not found") from None
    except IsADirectoryError:
        raise AnnotationError(path, 0, "is a folder, not a reference list (a video list, rawframes list or K400 CSV)") from None
    except UnicodeDecodeError as e:
        raise AnnotationError(path, 0, f"not a UTF-8 text file ({e.reason} at byte {e.start})") from None
    if first is None:
        raise AnnotationError(path, 0, "empty file: a reference is a video list, a rawframes list or the K400 CSV")
    if "youtube_id" in first.split(","):
        return "k400_csv"
    parts = first.split()
    return "rawframes" if len(parts) >= 3 and parts[-2].isdigit() and parts[-1].isdigit() else "videos"


def read_id_list(path) -> IdList:
    """The videos of a reference: an MMAction2 video list, a rawframes list or the K400 CSV.

    Any bad line raises AnnotationError naming the file and line: a reference is trusted only whole.
    """
    path = Path(path)
    fmt = _sniff(path)
    if fmt != "k400_csv":
        read = read_rawframe_list if fmt == "rawframes" else read_video_list
        return id_list_from_records(read(path), str(path), fmt)
    out = IdList(str(path), fmt, [])
    for row in read_k400_csv(path):
        if row.stem not in out.lines:
            out.ids.append(row.stem)
            out.lines[row.stem] = row.line
    return out


@dataclass
class CopyComparison:
    """A list against a reference: shared, ``missing`` (reference ids not listed) and ``extra`` ids."""

    listed: str  # file of the checked list
    reference: str  # file of the reference
    reference_format: str
    num_listed: int
    num_reference: int
    matched: dict[str, str]  # listed id -> reference id
    matched_by: dict[str, int]  # stage -> pairs matched at that stage
    missing: list[str]  # reference ids (reference order)
    extra: list[str]  # listed ids (list order)
    label_mismatches: list[dict]  # {"id", "listed", "reference"} where both lists carry integer labels

    @property
    def num_common(self) -> int:
        return len(self.matched)

    @property
    def identical(self) -> bool:
        return not self.missing and not self.extra and not self.label_mismatches

    def to_dict(self) -> dict:
        return {
            "listed": self.listed, "reference": self.reference, "reference_format": self.reference_format,
            "num_listed": self.num_listed, "num_reference": self.num_reference, "num_common": self.num_common,
            "num_missing": len(self.missing), "num_extra": len(self.extra), "matched_by": self.matched_by,
            "missing": self.missing, "extra": self.extra, "label_mismatches": self.label_mismatches,
            "identical": self.identical,
        }


def _key(vid: str, stage: str) -> tuple[str, bool]:
    """The id's name at ``stage``, and whether it carries a Kinetics time range (youtube stage only)."""
    if stage == "path":
        return vid, False
    name = vid.rsplit("/", 1)[-1]
    if stage == "name":
        return name, False
    m = _K400_NAME.fullmatch(name)
    return (m.group("yid"), True) if m else (name, False)


def compare_ids(listed: IdList, reference: IdList) -> CopyComparison:
    """Match ``listed`` against ``reference`` (see the module docstring for the stages)."""
    left, right = list(listed.ids), list(reference.ids)
    matched: dict[str, str] = {}
    by = Counter()
    for stage in STAGES:
        if not left or not right:
            break
        lk = {vid: _key(vid, stage) for vid in left}
        rk = {vid: _key(vid, stage) for vid in right}
        lcount, rcount = Counter(k for k, _ in lk.values()), Counter(k for k, _ in rk.values())
        r_by_key = {k: vid for vid, (k, _) in rk.items() if rcount[k] == 1}
        for vid in left:
            key, timed = lk[vid]
            ref = r_by_key.get(key) if lcount[key] == 1 else None
            if ref is None:
                continue
            if stage == "youtube_id" and timed == rk[ref][1]:
                continue  # both timed: different clips of one youtube video (both untimed matched by name)
            matched[vid] = ref
            by[stage] += 1
        taken = set(matched.values())
        left = [v for v in left if v not in matched]
        right = [v for v in right if v not in taken]
    mismatches = [
        {"id": vid, "listed": listed.labels[vid], "reference": reference.labels[ref]}
        for vid, ref in matched.items()
        if vid in listed.labels and ref in reference.labels and listed.labels[vid] != reference.labels[ref]
    ]
    return CopyComparison(
        listed=listed.file, reference=reference.file, reference_format=reference.format,
        num_listed=len(listed.ids), num_reference=len(reference.ids), matched=matched,
        matched_by={s: by[s] for s in STAGES}, missing=right, extra=left, label_mismatches=mismatches,
    )


@dataclass
class Restriction:
    """Records kept (present in the reference), records dropped, and the comparison behind it."""

    kept: list[VideoRecord]
    dropped: list[VideoRecord]
    comparison: CopyComparison


def restrict_to_reference(records: list[VideoRecord], reference, file: str = "<records>",
                          format: str | None = None) -> Restriction:
    """Keep the records whose video is in ``reference`` (a path or an IdList), in list order.

    ``file`` / ``format`` describe where the records come from (for the comparison's names).
    """
    ref = reference if isinstance(reference, IdList) else read_id_list(reference)
    listed = id_list_from_records(records, file, format)
    comparison = compare_ids(listed, ref)
    kept, dropped = [], []
    for rec in records:
        (kept if video_id(rec.path, listed.format) in comparison.matched else dropped).append(rec)
    return Restriction(kept, dropped, comparison)


def _describe(ids: list[str], n: int | None) -> str:
    if n is None or len(ids) <= n:
        return ", ".join(ids)
    return ", ".join(ids[:n]) + f", ... ({len(ids) - n} more)"


def describe_comparison(c, first: int | None = 10) -> list[str]:
    """Lines for a terminal from a CopyComparison (or its ``to_dict()``): counts, then the first
    ``first`` missing and extra ids (all of them when ``first`` is None)."""
    d = c.to_dict() if isinstance(c, CopyComparison) else c
    first = None if first is None else max(0, first)
    stages = ", ".join(f"{k} {v}" for k, v in d["matched_by"].items() if v)
    listed = os.path.basename(d["listed"])
    lines = [f"against {d['reference']} ({d['reference_format']}, {d['num_reference']} videos): {d['num_common']} of "
             f"{d['num_listed']} listed videos shared" + (f" (matched by {stages})" if stages else "")
             + f", {d['num_missing']} missing, {d['num_extra']} extra"]
    if d["missing"]:
        lines.append(f"missing (in the reference, not in {listed}): {_describe(d['missing'], first)}")
    if d["extra"]:
        lines.append(f"extra (in {listed}, not in the reference): {_describe(d['extra'], first)}")
    if d["label_mismatches"]:
        shown = [f"{m['id']} ({m['listed']} here, {m['reference']} there)" for m in d["label_mismatches"]]
        lines.append(f"labels differ for {len(shown)} shared videos: {_describe(shown, first)}")
    return lines
