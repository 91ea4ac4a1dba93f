"""Do a copy's frames have the layout a zoo entry was published on?

The zoo's rows were measured on three layouts of Kinetics-400 (``data.format`` x
``data.resolution``): videos or rawframes resized to a short side of 256 (``short256``:
456x256 for a 16:9 clip, widths vary), and rawframes squashed to exactly 340x256
(``340x256``). The same list runs on either, and the numbers differ, so an evaluation probes
the first videos of its list before anything is evaluated (:func:`probe_sizes`) and refuses
frames of another layout (:func:`layout_problem`) unless the user overrides it (recorded).

A frame is **340x256** when it is within :data:`TOLERANCE_PX` of 340 x 256, and of the
**short256** layout when its short side is within :data:`TOLERANCE_PX` of 256. A short-256
resize of a 4:3 clip is 341x256, so a short256 copy is told from a 340x256 one only when every
probed frame is exactly 340x256 (the squashed layout's signature).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

__all__ = ["PROBE_VIDEOS", "TOLERANCE_PX", "Probed", "describe_layout", "layout_problem", "probe_sizes",
           "size_summary"]

TOLERANCE_PX = 2  # rounding of resizers (340 vs 341, 455 vs 456) and odd-width encoders
PROBE_VIDEOS = 3  # the first videos of the list whose first frame is looked at


@dataclass(frozen=True)
class Probed:
    """One probed video: its path in the list, what is on disk, and its first frame's size."""

    path: str
    kind: str  # "file" | "folder" | "missing"
    width: Optional[int] = None
    height: Optional[int] = None


def describe_layout(fmt: str, resolution: str) -> str:
    what = "rawframes (one folder of JPEGs per video)" if fmt == "rawframes" else "videos (one file per video)"
    size = "340x256 frames" if resolution == "340x256" else "frames resized to a short side of 256"
    return f"{what}, {size}"


def probe_sizes(records, data_root, decoder, videos: int = PROBE_VIDEOS) -> list[Probed]:
    """The first ``videos`` records that exist on disk (looking at no more than 4x as many):
    what each is (file or folder) and its first frame's width and height (None when it cannot be
    decoded: the evaluation reports that video itself)."""
    root = Path(data_root)
    out: list[Probed] = []
    for rec in list(records)[: max(1, 4 * videos)]:
        if len([p for p in out if p.kind != "missing"]) >= videos:
            break
        path = root / rec.path
        kind = "folder" if path.is_dir() else "file" if path.is_file() else "missing"
        width = height = None
        if kind != "missing":
            try:
                frames = decoder.read(path, np.array([0]))
                height, width = int(frames.shape[1]), int(frames.shape[2])
            except Exception:  # noqa: BLE001 - a video that cannot be decoded is the evaluation's to report
                pass
        out.append(Probed(str(rec.path), kind, width, height))
    return out


def _is_340x256(w: int, h: int) -> bool:
    return abs(w - 340) <= TOLERANCE_PX and abs(h - 256) <= TOLERANCE_PX


def _is_short256(w: int, h: int) -> bool:
    return abs(min(w, h) - 256) <= TOLERANCE_PX


def layout_problem(entry, probed: list[Probed]) -> Optional[str]:
    """Why the probed videos are not of ``entry``'s layout (None: they are, or nothing could be
    probed). The message names the entry, its layout, what was seen and the first offending video."""
    d = entry.data
    want = describe_layout(d.format, d.resolution)
    present = [p for p in probed if p.kind != "missing"]
    if not present:
        return None
    wrong_kind = [p for p in present if p.kind != ("folder" if d.format == "rawframes" else "file")]
    if wrong_kind:
        p = wrong_kind[0]
        seen = "a file (a video?)" if p.kind == "file" else "a folder (rawframes?)"
        return f"{entry.name} reads {want}; {p.path!r} is {seen}"
    sized = [p for p in present if p.width is not None]
    if not sized:
        return None
    if d.resolution == "340x256":
        bad = [p for p in sized if not _is_340x256(p.width, p.height)]
        if bad:
            return (f"{entry.name} reads {want}; {bad[0].path!r} has {bad[0].width}x{bad[0].height} frames "
                    f"({len(bad)} of the {len(sized)} probed are not 340x256)")
        return None
    bad = [p for p in sized if not _is_short256(p.width, p.height)]
    if bad:
        return (f"{entry.name} reads {want}; {bad[0].path!r} has {bad[0].width}x{bad[0].height} frames "
                f"({len(bad)} of the {len(sized)} probed have no short side of 256)")
    if all((p.width, p.height) == (340, 256) for p in sized):
        return (f"{entry.name} reads {want}; all {len(sized)} probed videos have exactly 340x256 frames, the "
                f"squashed 340x256 layout (a short-256 resize keeps the aspect ratio: 456x256, 341x256)")
    return None


def size_summary(sizes: Iterable[tuple[int, int]]) -> Optional[dict]:
    """``{"videos", "width": [min, median, max], "height": [min, median, max]}`` of (width, height) pairs."""
    sizes = list(sizes)
    if not sizes:
        return None
    ws, hs = [w for w, _ in sizes], [h for _, h in sizes]
    return {"videos": len(sizes), "width": [min(ws), statistics.median(ws), max(ws)],
            "height": [min(hs), statistics.median(hs), max(hs)]}
