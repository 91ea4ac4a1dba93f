"""The synthetic motion dataset: small, seeded, and separable only by motion.

Each video shows one object (random shape, colour, size and place) on a random smooth
textured background; the class is what the object *does*: move left / right / up / down,
grow, shrink, rotate clockwise / counter-clockwise. Every per-class motion has a mirror class
with the same distribution of single-frame appearance (a trajectory is centred on a random
point, so positions, sizes and angles over a video have the same spread whichever way it
goes), hence one frame does not tell the class; frame differences do.

The scene is defined in a 16:9 world (height 1) and rendered straight at each output size, so
``340x256`` is the horizontally squashed view of the same scene, as Kinetics' 340x256 copies
are. It is written the way Kinetics-400 copies are laid out on disk (see ``synthetic_paths``)::

    ROOT/videos_256p/<vid>.mp4          H.264 yuv420p, 456x256 (width rounded to even, like ffmpeg scale=-2:256)
    ROOT/videos_340x256/<vid>.mp4       H.264 yuv420p, 340x256
    ROOT/rawframes_256p/<vid>/img_00001.jpg ...      JPEG, 455x256 (as denseflow --new-short=256;
                                        the 456-wide frames without their last column)
    ROOT/rawframes_340x256/<vid>/img_00001.jpg ...   JPEG, 340x256
    ROOT/{train,val}_list_videos.txt    "<vid>.mp4 LABEL"
    ROOT/{train,val}_list_rawframes.txt "<vid> TOTAL_FRAMES LABEL"
    ROOT/{train,val}.csv                label,youtube_id,time_start,time_end,split (Kinetics-style)
    ROOT/label_map.txt                  class names, one a line, index order (alphabetical)
    ROOT/synthetic.json                 generator version and parameters (written last)

Video ids follow Kinetics' ``{youtube_id}_{start:06d}_{end:06d}`` so the CSV maps to the files
exactly as the official CSV does.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import string
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "CLASSES",
    "FORMATS",
    "GENERATOR_VERSION",
    "SIZES",
    "VideoSpec",
    "default_synthetic_root",
    "ensure_synthetic",
    "generate_synthetic",
    "render_video",
    "synthetic_paths",
]

# Bump whenever rendering or encoding changes: ensure_synthetic() regenerates on a mismatch.
GENERATOR_VERSION = 2

# Index order = alphabetical order, as Kinetics' label map.
CLASSES = (
    "growing",
    "moving down",
    "moving left",
    "moving right",
    "moving up",
    "rotating clockwise",
    "rotating counterclockwise",
    "shrinking",
)

WORLD_W = 16 / 9  # the scene is 16:9 with height 1; pixel sizes below are in these units
FPS = 25

# resolution name -> {format: (width, height)}
SIZES = {
    "short256": {"videos": (456, 256), "rawframes": (455, 256)},
    "340x256": {"videos": (340, 256), "rawframes": (340, 256)},
}
FORMATS = ("videos", "rawframes")
_DIR_SUFFIX = {"short256": "256p", "340x256": "340x256"}

SHAPES = ("rectangle", "ellipse", "triangle", "ell")

# Encoding settings (recorded in synthetic.json). A fixed GOP of 1 s without scene-cut keyframes
# keeps seeking predictable; B-frames stay on, as in real Kinetics files.
H264_OPTIONS = {"crf": "18", "preset": "veryfast", "x264-params": "keyint=25:min-keyint=25:scenecut=0:threads=1"}
JPEG_QUALITY = 90

DEFAULTS = {
    "seed": 0,
    "videos_per_class": 32,
    "val_videos_per_class": 8,
    "num_frames": 40,
    "sizes": ("short256", "340x256"),
    "formats": FORMATS,
}


@dataclass
class VideoSpec:
    """Everything that decides one video's frames (the background comes from ``seed``)."""

    vid: str
    split: str
    label: int
    class_name: str
    seed: int
    num_frames: int
    shape: str
    aspect: float  # minor / major half-extent of the shape
    color: tuple[int, int, int]
    size: float  # half-extent (world units) at the middle frame
    cx: float  # centre at the middle frame (world units)
    cy: float
    angle: float  # degrees at the middle frame
    speed: float  # world units / frame, degrees / frame, or log-size / frame by class


# --------------------------------------------------------------------------- parameters


def _make_specs(seed: int, classes: Sequence[str], per_split: dict[str, int], num_frames: int) -> list[VideoSpec]:
    """Deterministic video specs: the order is split, class, index; each video has its own seed."""
    specs = []
    id_rng = np.random.default_rng(np.random.SeedSequence([seed, 7919]))
    alphabet = np.array(list(string.ascii_letters + string.digits + "-_"))
    seen = set()
    end = max(1, round(num_frames / FPS))
    for split, count in per_split.items():
        for c_idx, name in enumerate(classes):
            label = CLASSES.index(name)
            for i in range(count):
                video_seed = int(np.random.SeedSequence([seed, len(specs)]).generate_state(1)[0])
                rng = np.random.default_rng(video_seed)
                while True:
                    yid = "".join(id_rng.choice(alphabet, 11))
                    if yid not in seen:
                        seen.add(yid)
                        break
                specs.append(_random_spec(rng, f"{yid}_{0:06d}_{end:06d}", split, label, name, video_seed, num_frames))
    return specs


def _random_spec(rng, vid, split, label, name, video_seed, num_frames) -> VideoSpec:
    shape = SHAPES[rng.integers(len(SHAPES))]
    # A saturated object colour: one channel dark, one bright, one anywhere (random order).
    color = rng.permutation(np.array([rng.integers(0, 40), rng.integers(215, 256), rng.integers(0, 256)]))
    if name.startswith("moving"):
        speed = rng.uniform(0.007, 0.011)
    elif name.startswith("rotating"):
        speed = rng.uniform(3.0, 5.0)
    else:  # growing / shrinking: log-size change per frame
        speed = rng.uniform(0.02, 0.03)
    size = rng.uniform(0.09, 0.16)
    # The same centre distribution for every class (trajectories are centred on it), so where
    # the object is does not hint at the class; movers may partly leave the frame near the ends.
    cx = rng.uniform(0.45, WORLD_W - 0.45)
    cy = rng.uniform(0.35, 0.65)
    return VideoSpec(
        vid=vid,
        split=split,
        label=label,
        class_name=name,
        seed=video_seed,
        num_frames=num_frames,
        shape=str(shape),
        aspect=float(rng.uniform(0.35, 0.65)),
        color=tuple(int(v) for v in color),
        size=float(size),
        cx=float(cx),
        cy=float(cy),
        angle=float(rng.uniform(0, 360)),
        speed=float(speed),
    )


def _trajectory(spec: VideoSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame centre x, y, half-size and angle (radians), symmetric about the middle frame."""
    t = np.arange(spec.num_frames, dtype=np.float64) - (spec.num_frames - 1) / 2
    cx = np.full_like(t, spec.cx)
    cy = np.full_like(t, spec.cy)
    size = np.full_like(t, spec.size)
    angle = np.full_like(t, spec.angle)
    name = spec.class_name
    if name == "moving left":
        cx = spec.cx - spec.speed * t
    elif name == "moving right":
        cx = spec.cx + spec.speed * t
    elif name == "moving up":  # image y grows downwards
        cy = spec.cy - spec.speed * t
    elif name == "moving down":
        cy = spec.cy + spec.speed * t
    elif name == "growing":
        size = spec.size * np.exp(spec.speed * t)
    elif name == "shrinking":
        size = spec.size * np.exp(-spec.speed * t)
    elif name == "rotating clockwise":  # clockwise on screen (y down) = increasing angle
        angle = spec.angle + spec.speed * t
    elif name == "rotating counterclockwise":
        angle = spec.angle - spec.speed * t
    else:
        raise ValueError(f"unknown class {name!r}; classes are {CLASSES}")
    return cx, cy, size, np.deg2rad(angle)


# --------------------------------------------------------------------------- rendering


def _lerp_axis(grid: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    """Linearly resample ``grid`` along ``axis`` from its end points to ``n_out`` pixel centres.

    Elementwise (no matrix product): BLAS threads would oversubscribe the generator's
    worker processes.
    """
    n = grid.shape[axis]
    pos = (np.arange(n_out, dtype=np.float32) + 0.5) / n_out * (n - 1)
    lo = np.minimum(pos.astype(int), n - 2)
    w = (pos - lo).reshape([-1 if d == axis else 1 for d in range(grid.ndim)])
    a = np.take(grid, lo, axis=axis)
    b = np.take(grid, lo + 1, axis=axis)
    return a + (b - a) * w


def _background(spec: VideoSpec, width: int, height: int) -> np.ndarray:
    """Smooth random texture, H x W x 3 float32 in grey levels, defined on the world (size-independent)."""
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 1]))
    base = rng.uniform(90, 165, 3)
    out = np.broadcast_to(base.astype(np.float32), (height, width, 3)).copy()
    # Two octaves of value noise; grids are in world cells so every output size shows the same scene.
    for gh, amp in ((4, 35.0), (12, 14.0)):
        gw = round(gh * WORLD_W) + 1
        grid = rng.uniform(-1, 1, (gh + 1, gw, 3)).astype(np.float32) * np.float32(amp)
        out += _lerp_axis(_lerp_axis(grid, height, 0), width, 1)
    return out


def _signed_distance(shape: str, u: np.ndarray, v: np.ndarray, aspect: float) -> np.ndarray:
    """Approximate signed distance (object units; < 0 inside) of the shape with half-extent 1."""
    if shape == "rectangle":
        return np.maximum(np.abs(u) - 1, np.abs(v) - aspect)
    if shape == "ellipse":
        return (np.sqrt(u * u + (v / aspect) ** 2) - 1) * aspect
    if shape == "triangle":
        # Isosceles, apex at u = +1, base at u = -1 with half-width `aspect * 1.6`.
        half = aspect * 1.6
        norm = math.hypot(2, half)
        side = (2 * np.abs(v) + half * (u - 1)) / norm
        return np.maximum(-1 - u, side)
    if shape == "ell":
        # An L: a long bar plus a short perpendicular bar at one end.
        bar1 = np.maximum(np.abs(u) - 1, np.abs(v) - aspect * 0.5)
        bar2 = np.maximum(np.abs(u + 1 - aspect * 0.5) - aspect * 0.5, np.abs(v - aspect) - aspect)
        return np.minimum(bar1, bar2)
    raise ValueError(f"unknown shape {shape!r}")


def _shape_radius(shape: str, aspect: float) -> float:
    """Largest distance from the centre to the shape (object units): bounds it under any rotation."""
    return {
        "rectangle": math.hypot(1, aspect),
        "ellipse": 1.0,
        "triangle": math.hypot(1, 1.6 * aspect),
        "ell": math.hypot(1, 2 * aspect),
    }[shape]


def render_video(spec: VideoSpec, width: int, height: int) -> np.ndarray:
    """The video's frames at ``width x height``: uint8 RGB array T x H x W x 3 (deterministic).

    The object is antialiased with a one-pixel ramp on its signed distance. All frames are
    rendered at once, each inside its own box around the object (one box size for all frames,
    so the boxes stack into one array and are written back with one fancy-index assignment).
    """
    f32 = np.float32
    bg = _background(spec, width, height)
    cx, cy, size, ang = (a.astype(f32) for a in _trajectory(spec))
    sx, sy = f32(width / WORLD_W), f32(height)  # world units -> pixels
    bg8 = np.clip(np.rint(bg), 0, 255).astype(np.uint8)
    frames = np.empty((spec.num_frames, height, width, 3), dtype=np.uint8)
    frames[:] = bg8

    radius = size * f32(_shape_radius(spec.shape, spec.aspect))
    bw = min(width, int(np.ceil(2 * radius.max() * sx)) + 3)
    bh = min(height, int(np.ceil(2 * radius.max() * sy)) + 3)
    bx0 = np.clip(np.floor((cx - radius) * sx).astype(int) - 1, 0, width - bw)
    by0 = np.clip(np.floor((cy - radius) * sy).astype(int) - 1, 0, height - bh)
    xi = bx0[:, None] + np.arange(bw)  # T x bw pixel columns of each frame's box
    yi = by0[:, None] + np.arange(bh)  # T x bh
    dx = ((xi + f32(0.5)) / sx - cx[:, None])[:, None, :]  # T x 1 x bw (world units)
    dy = ((yi + f32(0.5)) / sy - cy[:, None])[:, :, None]  # T x bh x 1
    c = (np.cos(ang) / size)[:, None, None]
    s = (np.sin(ang) / size)[:, None, None]
    u = c * dx + s * dy  # object coordinates: rotate by -angle, scale by 1/size
    v = c * dy - s * dx
    dist = _signed_distance(spec.shape, u, v, spec.aspect)
    # Object units -> pixels; a 1-pixel linear ramp across the edge.
    dist *= (size * sy)[:, None, None]
    alpha = np.subtract(f32(0.5), dist, out=dist)
    np.clip(alpha, 0, 1, out=alpha)
    alpha = alpha[..., None]
    # Flat pixel indices of the boxes: take/put on flat arrays beat 3-d fancy indexing.
    box = yi[:, :, None] * width + xi[:, None, :]  # T x bh x bw, within one frame
    under = np.take(bg8.reshape(-1, 3), box, axis=0).astype(f32)  # T x bh x bw x 3
    # under + (color - under) * alpha stays within [0, 255]; +0.5 then truncation rounds.
    patch = np.asarray(spec.color, dtype=f32) - under
    patch *= alpha
    patch += under
    patch += f32(0.5)
    box += (np.arange(spec.num_frames) * (height * width))[:, None, None]
    frames.reshape(-1, 3)[box.ravel()] = patch.astype(np.uint8).reshape(-1, 3)
    return frames


# --------------------------------------------------------------------------- writing


def write_h264(path: str | os.PathLike, frames: np.ndarray, fps: int = FPS) -> None:
    """Encode uint8 RGB frames (T x H x W x 3, even W and H) as H.264 yuv420p mp4 with libx264."""
    import av

    _, h, w, _ = frames.shape
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = dict(H264_OPTIONS)
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_jpegs(folder: str | os.PathLike, frames: np.ndarray, filename_tmpl: str = "img_{:05}.jpg", start_index: int = 1) -> None:
    """Write frames as ``folder/img_00001.jpg ...`` (1-based, as denseflow/MMAction2 rawframes)."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(frames):
        Image.fromarray(img).save(folder / filename_tmpl.format(i + start_index), quality=JPEG_QUALITY)


def _write_video(job: tuple[dict, str, tuple[str, ...], tuple[str, ...]]) -> str:
    """Worker: render one video at every requested size and write every requested format."""
    spec_dict, root, sizes, formats = job
    spec = VideoSpec(**spec_dict)
    for res in sizes:
        # One rendering per resolution at the widest size asked for; a narrower format of the
        # same height (455 vs 456 for short256) drops the last column(s) instead of rendering again.
        width = max(SIZES[res][fmt][0] for fmt in formats)
        frames = render_video(spec, width, SIZES[res][formats[0]][1])
        for fmt in formats:
            w = SIZES[res][fmt][0]
            folder = Path(root) / f"{fmt}_{_DIR_SUFFIX[res]}"
            if fmt == "videos":
                write_h264(folder / f"{spec.vid}.mp4", frames[:, :, :w])
            else:
                write_jpegs(folder / spec.vid, frames[:, :, :w])
    return spec.vid


def generate_synthetic(
    out_dir: str | os.PathLike,
    seed: int = 0,
    *,
    videos_per_class: int = DEFAULTS["videos_per_class"],
    val_videos_per_class: int = DEFAULTS["val_videos_per_class"],
    num_frames: int = DEFAULTS["num_frames"],
    sizes: Sequence[str] = DEFAULTS["sizes"],
    formats: Sequence[str] = DEFAULTS["formats"],
    classes: Sequence[str] | None = None,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """Write the synthetic dataset into ``out_dir`` (created; existing files are overwritten).

    ``videos_per_class`` / ``val_videos_per_class`` videos of ``num_frames`` frames at 25 fps
    for each class of ``classes`` (default: all 8), in ``sizes`` (subset of "short256",
    "340x256") and ``formats`` (subset of "videos", "rawframes"). The same arguments give the
    same frames on every run. With a subset of ``classes``, labels stay the indices of the full
    8-class label map (written whole). ``workers`` > 1 renders and encodes in that many processes.
    Returns ``out_dir``; ``synthetic.json`` is written last.
    """
    from tqdm import tqdm

    classes = tuple(CLASSES if classes is None else classes)
    bad = [c for c in classes if c not in CLASSES]
    if bad:
        raise ValueError(f"unknown classes {bad}; choose from {CLASSES}")
    bad = [s for s in sizes if s not in SIZES] + [f for f in formats if f not in FORMATS]
    if bad:
        raise ValueError(f"unknown sizes/formats {bad}; sizes are {sorted(SIZES)}, formats {FORMATS}")
    if num_frames < 1 or videos_per_class < 1 or val_videos_per_class < 0:
        raise ValueError("num_frames and videos_per_class must be >= 1, val_videos_per_class >= 0")
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    per_split = {"train": videos_per_class, "val": val_videos_per_class}
    specs = _make_specs(seed, sorted(classes), per_split, num_frames)
    jobs = [(asdict(s), str(root), tuple(sizes), tuple(formats)) for s in specs]
    for fmt in formats:
        for res in sizes:
            (root / f"{fmt}_{_DIR_SUFFIX[res]}").mkdir(exist_ok=True)
    bar = tqdm(total=len(jobs), desc="synthetic videos", unit="video", disable=not progress)
    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        # spawn: safe whatever the parent has loaded (torch threads, CUDA); the worker imports little.
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=mp.get_context("spawn")) as pool:
            for _ in pool.map(_write_video, jobs, chunksize=4):
                bar.update()
    else:
        for job in jobs:
            _write_video(job)
            bar.update()
    bar.close()
    _write_annotations(root, specs, classes, num_frames)
    meta = {
        "generator": "i3dbench.data.synthetic",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "videos_per_class": videos_per_class,
        "val_videos_per_class": val_videos_per_class,
        "num_frames": num_frames,
        "fps": FPS,
        "classes": list(CLASSES),
        "classes_generated": sorted(classes),
        "sizes": {res: {fmt: list(SIZES[res][fmt]) for fmt in formats} for res in sizes},
        "formats": list(formats),
        "h264": H264_OPTIONS,
        "jpeg_quality": JPEG_QUALITY,
        "rawframes_filename_tmpl": "img_{:05}.jpg",
        "rawframes_start_index": 1,
        "videos": [asdict(s) for s in specs],
    }
    (root / "synthetic.json").write_text(json.dumps(meta, indent=1) + "\n")
    return root


def _write_annotations(root: Path, specs: list[VideoSpec], classes: Sequence[str], num_frames: int) -> None:
    (root / "label_map.txt").write_text("".join(f"{c}\n" for c in CLASSES))
    for split in ("train", "val"):
        rows = [s for s in specs if s.split == split]
        (root / f"{split}_list_videos.txt").write_text("".join(f"{s.vid}.mp4 {s.label}\n" for s in rows))
        (root / f"{split}_list_rawframes.txt").write_text("".join(f"{s.vid} {num_frames} {s.label}\n" for s in rows))
        lines = ["label,youtube_id,time_start,time_end,split\n"]
        for s in rows:
            yid, start, end = s.vid[:11], int(s.vid[12:18]), int(s.vid[19:25])
            label = f'"{s.class_name}"' if "," in s.class_name else s.class_name
            lines.append(f"{label},{yid},{start},{end},{split}\n")
        (root / f"{split}.csv").write_text("".join(lines))


# --------------------------------------------------------------------------- paths and cache


def synthetic_paths(root: str | os.PathLike, format: str = "videos", resolution: str = "short256", split: str = "train") -> tuple[Path, Path]:
    """``(data_root, ann_file)`` of one variant of the synthetic set under ``root``.

    ``format`` in {videos, rawframes}, ``resolution`` in {340x256, short256}, ``split`` in
    {train, val}. Paths in the list file are relative to ``data_root``.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if resolution not in SIZES:
        raise ValueError(f"resolution must be one of {sorted(SIZES)}, got {resolution!r}")
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    root = Path(root)
    return root / f"{format}_{_DIR_SUFFIX[resolution]}", root / f"{split}_list_{format}.txt"


def default_synthetic_root() -> Path:
    """``$I3DBENCH_CACHE/synthetic`` (default ``~/.cache/i3dbench/synthetic``)."""
    cache = os.environ.get("I3DBENCH_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "i3dbench")
    return Path(cache) / "synthetic"


def _is_current(root: Path) -> bool:
    try:
        meta = json.loads((root / "synthetic.json").read_text())
    except (OSError, ValueError):
        return False
    want = dict(DEFAULTS, sizes=list(DEFAULTS["sizes"]), formats=list(DEFAULTS["formats"]))
    return (
        meta.get("generator_version") == GENERATOR_VERSION
        and all(meta.get(k) == want[k] for k in ("seed", "videos_per_class", "val_videos_per_class", "num_frames", "formats"))
        and sorted(meta.get("sizes", {})) == sorted(want["sizes"])
        and meta.get("classes_generated") == sorted(CLASSES)
    )


def ensure_synthetic(root: str | os.PathLike | None = None, workers: int = 2, progress: bool = True) -> Path:
    """Return the root of the default synthetic set, generating it first if needed.

    Regenerates when ``root/synthetic.json`` is missing or was written by another generator
    version or with other parameters. The set is built in a temporary sibling directory and
    renamed into place at the end, under a file lock, so a half-written set is never used and
    concurrent callers generate it once.
    """
    root = Path(root) if root is not None else default_synthetic_root()
    if _is_current(root):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with _FileLock(root.parent / f".{root.name}.lock"):
        if _is_current(root):  # another process finished it while we waited
            return root
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared like any other
        try:
            generate_synthetic(tmp, workers=workers, progress=progress, **{k: DEFAULTS[k] for k in DEFAULTS})
            old = None
            if root.exists():
                old = root.with_name(f".{root.name}.old-{os.getpid()}")
                root.rename(old)
            tmp.rename(root)  # swap first, delete the old copy after: the gap is two renames
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return root


class _FileLock:
    """Exclusive advisory lock on a file (POSIX flock); a no-op where fcntl is unavailable."""

    def __init__(self, path: Path):
        self.path = path
        self._fh = None

    def __enter__(self):
        self._fh = open(self.path, "a+")
        try:
            import fcntl

            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - Windows
            pass
        return self

    def __exit__(self, *exc):
        try:
            import fcntl

            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
        except ImportError:  # pragma: no cover
            pass
        self._fh.close()
