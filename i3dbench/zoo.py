"""The zoo manifest: published I3D configurations as typed entries.

A manifest is a YAML file with an optional ``include:`` (another manifest whose
``defaults`` this one starts from, one level deep), a ``defaults:`` mapping, and an
``entries:`` mapping of name -> entry. Each entry is the defaults deep-merged with its
own keys (the entry's keys win), then validated against the dataclasses below. Any
unknown or missing field, wrong type, or duplicate name is a :class:`ZooError` that
names the file, the entry and the field.

Beyond types, an entry that loads can be run: counts and sizes are positive, the test and
val crops fit in the resized frame, the clip survives the backbone's temporal strides, the
per-block ``inflate`` / ``non_local`` rows match ``stage_blocks``, the head has the
dataset's classes, the filename template formats a frame number, recipe and tolerances are
in range, published accuracies are percentages with top-5 >= top-1 (see ``_entry_checks``).
Errors read ``<file>: entry '<name>': field '<dotted.field>' <what>, got <value>``; problems
with an ``include:`` name the including file first.

Published numbers live here and nowhere else in the project.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from .errors import UnknownEntryError, UserError

ZOO_DIR = Path(__file__).resolve().parent.parent / "zoo"
DEFAULT_ZOO = ZOO_DIR / "i3d_kinetics400.yaml"
SMOKE_ZOO = ZOO_DIR / "smoke.yaml"


class ZooError(UserError, ValueError):
    """A manifest is malformed; the message names file, entry and field."""


@dataclass(frozen=True)
class Published:
    """Numbers exactly as the source document prints them (``None`` where it prints x)."""

    top1: Optional[float]
    top5: Optional[float]
    video_per_s: Optional[float]  # MMAction2 "inference_time(video/s)"
    speed_protocol: Optional[str]  # e.g. "320x3 frames" (10 clips x 32 frames x 3 crops)
    gpu_mem_mb: Optional[int]  # training-log peak max_memory_allocated, MiB
    gpus: str  # as printed: "8", "8x2", "8x4"
    pretrain: str  # e.g. "ImageNet"
    source: str  # document and row the numbers come from
    # Metafile "FLOPs" at 1x3x32x256x256, in G, in the counting convention of the source:
    # 0.x = mmcv 1.x hooks (convs/BN/ReLU/pool, blind to matmuls), 1.x = mmengine (incl. matmuls + BN).
    gflops: Optional[float] = None
    params_m: Optional[float] = None  # metafile parameters, millions


@dataclass(frozen=True)
class Checkpoint:
    url: Optional[str]  # None for entries trained locally (smoke)
    sha256_prefix: Optional[str]  # the 8 hex digits at the end of the published file name
    log_url: Optional[str] = None  # the published training log (.log.json or .log)


@dataclass(frozen=True)
class Architecture:
    """Overrides of the ResNet3d/I3D builder; names follow MMAction2's ResNet3d arguments."""

    depth: int = 50
    base_channels: int = 64
    stage_blocks: Optional[tuple[int, ...]] = None  # None: taken from depth (3, 4, 6, 3)
    conv1_kernel: tuple[int, int, int] = (5, 7, 7)
    conv1_stride_t: int = 2
    pool1_stride_t: int = 2
    with_pool2: bool = True
    inflate: tuple[tuple[int, ...], ...] = ((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0))
    non_local: tuple[tuple[int, ...], ...] = ((0, 0, 0), (0, 0, 0, 0), (0, 0, 0, 0, 0, 0), (0, 0, 0))
    non_local_mode: Optional[str] = None  # embedded_gaussian | gaussian | dot_product | None
    num_classes: int = 400
    dropout_ratio: float = 0.5


@dataclass(frozen=True)
class DataSpec:
    """Where the frames come from and how a training clip is made."""

    format: str  # rawframes | videos
    resolution: str  # 340x256 | short256 (how the frames were extracted / resized on disk)
    sampler: str = "uniform"  # uniform (SampleFrames) | dense (DenseSampleFrames)
    lazy: bool = False  # MMAction2 lazy=True + Fuse for train/val geometry
    clip_len: int = 32
    frame_interval: int = 2
    num_clips: int = 1  # training clips per video
    filename_tmpl: str = "img_{:05}.jpg"
    start_index: int = 1  # RawframeDataset 1, VideoDataset 0
    resize_short: int = 256  # Resize(scale=(-1, resize_short)) in every pipeline
    train_crop: int = 224  # MultiScaleCrop input_size and the following fixed Resize
    train_scales: tuple[float, ...] = (1.0, 0.8)
    flip_ratio: float = 0.5
    val_crop: int = 224  # CenterCrop
    val_clips: int = 1  # dense sampler: num_sample_positions at val (MMAction2 default 10)
    mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    # How JPEG frames are decoded (rawframes): cv2 (MMAction2's default) | turbojpeg (PyTurboJPEG,
    # the 0.x lazy rows' RawFrameDecode(decoding_backend='turbojpeg')) | pillow.
    jpeg_backend: str = "cv2"
    # How frames are resized: cv2 (mmcv.imresize, OpenCV bilinear, pixel-exact with MMAction2)
    # | tensor (torch bilinear on whole clips, the fast path).
    resize_backend: str = "tensor"


@dataclass(frozen=True)
class TestProtocol:
    num_clips: int = 10  # dense sampler: num_sample_positions
    crop: str = "three_crop"  # three_crop | center_crop
    crop_size: int = 256
    average_clips: str = "prob"  # prob | score
    # Which MMAction2's test-mode SampleFrames the published numbers used: "0.x" (2020 rows)
    # or "1.x" (PySlowFast-aligned offsets, MMAction2 >= 1.0).
    sampler_version: str = "1.x"


@dataclass(frozen=True)
class Recipe:
    """The published training recipe (MMAction2 schedules/sgd_100e + the entry's config)."""

    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    grad_clip: Optional[float] = 40.0
    milestones: tuple[int, ...] = (40, 80)
    gamma: float = 0.1
    epochs: int = 100
    videos_per_gpu: int = 8
    gpus: int = 8  # total GPUs of the published run (lr is for videos_per_gpu * gpus)
    base_batch_size: int = 64  # linear scaling rule reference: lr * batch / base_batch_size
    pretrained: Optional[str] = "torchvision://resnet50"  # ImageNet 2D init, or None
    val_interval: int = 1
    checkpoint_interval: int = 5


@dataclass(frozen=True)
class Tolerance:
    """Accepted deviations; the ranges in the comments are enforced when a manifest loads."""

    top1: float = 0.5  # points, OpenMMLab's regression range; in (0, 100]
    top5: float = 0.5  # points; in (0, 100]
    memory_rel: float = 0.10  # measured/published - 1 within +-10%; in (0, 1]
    speed_min_ratio: float = 1.0  # measured video/s must be >= ratio * published; in (0, 1]
    # `i3dbench compare`: two revisions measured side by side are the SAME speed when the interval of
    # their time ratio lies within [1/x, x]; REGRESSED when it lies wholly above x. In (1, 2].
    compare_speed: float = 1.10


@dataclass(frozen=True)
class Expected:
    """A smoke entry's committed expectation: what its shipped checkpoint gives under its own test
    protocol on the synthetic val set (percent). The quick pass checks every evaluation against it
    with the entry's tolerance, so a big accuracy drop fails CI even without a base revision to
    compare with. A threshold, like a published number: never reported as a measurement."""

    top1: Optional[float] = None
    top5: Optional[float] = None


@dataclass(frozen=True)
class ZooEntry:
    name: str
    config: str  # MMAction2 config name the entry comes from
    mmaction: str  # "0.x" | "1.x" | "smoke"
    dataset: str  # kinetics400 | synthetic
    published: Published
    checkpoint: Checkpoint
    arch: Architecture
    data: DataSpec
    test: TestProtocol
    recipe: Recipe
    tolerance: Tolerance
    notes: str = ""
    expected: Expected = Expected()

    @property
    def views_per_video(self) -> int:
        crops = 3 if self.test.crop == "three_crop" else 1
        return self.test.num_clips * crops


# --------------------------------------------------------------------------- loading


def _show(value: Any, limit: int = 80) -> str:
    """``repr(value)`` as the manifest wrote it (lists, not the tuples they became), cut so
    that one bad value cannot flood the one-line error."""

    def as_written(v: Any) -> Any:
        return [as_written(x) for x in v] if isinstance(v, (list, tuple)) else v

    text = repr(as_written(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _bad(where: str, dotted: str, what: str, value: Any) -> ZooError:
    return ZooError(f"{where}: field '{dotted}' {what}, got {_show(value)}")


def _coerce(value: Any, tp: Any, where: str, dotted: str) -> Any:
    """Check ``value`` against the annotation ``tp``; lists become tuples."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where, dotted)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _bad(where, dotted, "must be a list", value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], where, f"{dotted}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise _bad(where, dotted, f"must be a list of {len(args)} items", value)
        return tuple(_coerce(v, a, where, f"{dotted}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad(where, dotted, "must be a number", value)
        return float(value)
    if tp is int or tp is bool or tp is str:
        if type(value) is not tp:
            raise _bad(where, dotted, f"must be of type {_type_name(tp)}", value)
        return value
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where, dotted)
    raise ZooError(f"{where}: field '{dotted}': unsupported type {tp}")  # pragma: no cover - schema bug


def _build(cls: type, raw: Any, where: str, dotted: str = "") -> Any:
    prefix = f"{dotted}." if dotted else ""
    if not isinstance(raw, dict):
        raise _bad(where, dotted or cls.__name__, "must be a mapping", raw)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(map(str, set(raw) - set(fields)))
    if unknown:
        raise ZooError(
            f"{where}: field '{prefix}{unknown[0]}' is not a known field"
            f"{' (nor ' + ', '.join(repr(u) for u in unknown[1:]) + ')' if unknown[1:] else ''}; "
            f"allowed{' under ' + repr(dotted) if dotted else ''}: {', '.join(fields)}"
        )
    kwargs = {}
    for name, f in fields.items():
        if name in raw:
            kwargs[name] = _coerce(raw[name], hints[name], where, f"{prefix}{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ZooError(f"{where}: field '{prefix}{name}' is missing (set it in the entry or in defaults:)")
    return cls(**kwargs)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key defined twice in one mapping (YAML keeps the last silently)."""


class _DuplicateKey(yaml.constructor.ConstructorError):
    pass


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *anchor` merges; keys written next to it override, as YAML intends
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
        except TypeError:  # an unhashable key: let PyYAML report it
            break
        if duplicate:
            raise _DuplicateKey(
                None, None, f"'{key}' is defined twice in the same mapping", key_node.start_mark
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one line: ``line L, column C: problem (context)``."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    context = getattr(err, "context", None)
    at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{at}{problem}" + (f" ({context})" if context else "")


def _read_yaml(path: Path, included_by: Optional[Path] = None) -> dict:
    # Problems with an included file name the file that includes it, then the included one.
    lead = f"{included_by}: include: {path}" if included_by else str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except IsADirectoryError:
        raise ZooError(f"{lead}: is a folder, not a manifest file") from None
    except UnicodeDecodeError as err:
        raise ZooError(f"{lead}: not UTF-8 text (byte {err.start}); a manifest is a YAML text file") from None
    except OSError as err:
        raise ZooError(f"{lead}: cannot read manifest ({err.strerror})") from None
    try:
        doc = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: plain data only
    except _DuplicateKey as err:
        raise ZooError(f"{lead}: {_yaml_problem(err)}: remove or rename one of them") from None
    except yaml.YAMLError as err:
        raise ZooError(f"{lead}: not valid YAML: {_yaml_problem(err)}") from None
    if not isinstance(doc, dict):
        raise ZooError(f"{lead}: a manifest is a mapping with 'entries:' (and optional 'include:', 'defaults:'), "
                       f"got {_show(doc)}")
    unknown = sorted(map(str, set(doc) - {"include", "defaults", "entries"}))
    if unknown:
        raise ZooError(f"{lead}: unknown top-level key(s) {', '.join(unknown)} (allowed: include, defaults, entries)")
    if doc.get("defaults") is not None and not isinstance(doc["defaults"], dict):
        raise ZooError(f"{lead}: field 'defaults' must be a mapping of entry fields, got {_show(doc['defaults'])}")
    return doc


def _include_path(doc: dict, path: Path) -> Optional[Path]:
    """The file named by ``include:`` (relative to ``path``'s folder), or None without one."""
    if "include" not in doc:
        return None
    raw = doc["include"]
    if not isinstance(raw, str) or not raw.strip():
        raise ZooError(f"{path}: field 'include' must be the path of another manifest (relative to this file's "
                       f"folder), got {_show(raw)}")
    if "://" in raw:
        raise ZooError(f"{path}: field 'include' must be a file path, not a URL, got {_show(raw)}")
    inc = (path.parent / raw).resolve()
    if inc == path.resolve():
        raise ZooError(f"{path}: field 'include' names this manifest itself, got {_show(raw)}")
    return inc


# resolved manifest path -> (stamps, entries); the stamps are (path, mtime_ns) of the manifest
# and its include, so that editing either is picked up (entries are frozen, so sharing is safe).
_CACHE: dict[Path, tuple[tuple, dict[str, ZooEntry]]] = {}


def _stamp(path: Path) -> Optional[int]:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def load_zoo(path: str | Path | None = None) -> dict[str, ZooEntry]:
    """Load and validate one manifest (default: the published I3D Kinetics-400 zoo)."""
    path = Path(path if path is not None else DEFAULT_ZOO).resolve()
    hit = _CACHE.get(path)
    if hit is not None and all(_stamp(p) == t for p, t in hit[0]):
        return dict(hit[1])
    stamps, zoo = _load_zoo_uncached(path)
    _CACHE[path] = (stamps, zoo)
    return dict(zoo)


def _load_zoo_uncached(path: Path) -> tuple[tuple, dict[str, ZooEntry]]:
    stamps = [(path, _stamp(path))]
    doc = _read_yaml(path)
    defaults: dict = {}
    inc = _include_path(doc, path)
    if inc is not None:
        stamps.append((inc, _stamp(inc)))
        inc_doc = _read_yaml(inc, included_by=path)
        if "include" in inc_doc:
            raise ZooError(f"{path}: include: {inc} has its own include ({_show(inc_doc['include'])}); "
                           "includes are one level deep: include that file directly")
        if not inc_doc.get("defaults"):
            raise ZooError(f"{path}: include: {inc} has no 'defaults:' (an include only contributes its defaults)")
        defaults = inc_doc["defaults"]
    defaults = _deep_merge(defaults, doc.get("defaults") or {})
    entries = doc.get("entries")
    if not isinstance(entries, dict) or not entries:
        raise ZooError(f"{path}: 'entries:' must be a non-empty mapping of name -> entry, got {_show(entries)}")
    zoo: dict[str, ZooEntry] = {}
    for name, raw in entries.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ZooError(f"{path}: entry {_show(name)}: an entry name is letters, digits, '.', '_' or '-' "
                           "(it becomes part of file names), starting with a letter or digit")
        where = f"{path}: entry '{name}'"
        if not isinstance(raw, dict):
            raise ZooError(f"{where}: must be a mapping of fields, got {_show(raw)}")
        merged = _deep_merge(defaults, raw)
        merged["name"] = name
        entry = _build(ZooEntry, merged, where)
        _check_entry(entry, where)
        zoo[name] = _anchor_local_checkpoint(entry, path)
    return tuple(stamps), zoo


def _anchor_local_checkpoint(entry: ZooEntry, manifest: Path) -> ZooEntry:
    """A checkpoint ``url`` / ``log_url`` that is a relative file path is relative to the manifest's folder."""

    def anchored(url: Optional[str]) -> Optional[str]:
        if url is None or "://" in url or Path(url).is_absolute():
            return url
        return str((manifest.parent / url).resolve())

    ck = entry.checkpoint
    return dataclasses.replace(entry, checkpoint=dataclasses.replace(ck, url=anchored(ck.url), log_url=anchored(ck.log_url)))


# --------------------------------------------------------------------------- validation
#
# Types are checked by _build; these are the values a correctly typed entry still cannot run
# with. Each check is (dotted field, ok, what is required, offending value); the first one that
# fails is reported. Checks are lazily evaluated in order, so later ones may assume earlier ones.

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_NL_MODES = (None, "embedded_gaussian", "gaussian", "dot_product")
# Blocks per stage of each ResNet depth (models/resnet3d.py ARCH_SETTINGS; a test keeps them equal).
# Kept here so that loading a manifest does not import torch.
DEPTH_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
# Classes of each dataset, which the head must output (data/synthetic.py CLASSES has 8; a test checks it).
DATASET_CLASSES = {"kinetics400": 400, "synthetic": 8}
DENSE_SAMPLE_RANGE = 64  # DenseSampleFrames' sample_range (data/sampling.py default)
MAX_EPOCHS = 1000  # published schedules run 100-256 epochs; more is a typo


def _finite(x: float) -> bool:
    return math.isfinite(x)


def _in(x: Optional[float], lo: float, hi: float, lo_open: bool = False) -> bool:
    """``x`` is None or a finite number in [lo, hi] (or (lo, hi] with ``lo_open``)."""
    if x is None:
        return True
    return _finite(x) and (lo < x if lo_open else lo <= x) and x <= hi


def _source_ok(url: Optional[str]) -> bool:
    return url is None or ("://" not in url and bool(url.strip())) or url.startswith(("http://", "https://"))


def _formats_an_index(tmpl: str) -> bool:
    try:
        return tmpl.format(1) != tmpl.format(2)
    except (IndexError, KeyError, ValueError, TypeError, AttributeError):
        return False


def _conv_out(n: int, k: int, stride: int, pad: int) -> int:
    return (n + 2 * pad - k) // stride + 1


def _backbone_time(e: ZooEntry) -> int:
    """Frames left at the backbone's output for a clip of ``data.clip_len`` frames (< 1: cannot run)."""
    a = e.arch
    kt = a.conv1_kernel[0]
    t = _conv_out(e.data.clip_len, kt, a.conv1_stride_t, (kt - 1) // 2)  # conv1
    t = _conv_out(t, 1, a.pool1_stride_t, 0)  # max-pool 1x3x3
    return _conv_out(t, 2, 2, 0) if a.with_pool2 else t  # pool2 2x1x1 after layer1


def _backbone_space(e: ZooEntry, size: int) -> int:
    """Pixels left per side at the backbone's output for a ``size`` x ``size`` input."""
    k = e.arch.conv1_kernel[1]
    s = _conv_out(size, k, 2, (k - 1) // 2)  # conv1, spatial stride 2
    for _ in range(4):  # max-pool, then the stride-2 first blocks of layer2..4 (3x3, padding 1)
        s = _conv_out(s, 3, 2, 1)
    return s


def _entry_checks(e: ZooEntry):
    p, ck, a, d, t, r, tol = e.published, e.checkpoint, e.arch, e.data, e.test, e.recipe, e.tolerance
    yield "mmaction", e.mmaction in ("0.x", "1.x", "smoke"), "must be 0.x, 1.x or smoke", e.mmaction
    yield "dataset", e.dataset in DATASET_CLASSES, f"must be one of {', '.join(DATASET_CLASSES)}", e.dataset
    yield "config", bool(e.config.strip()), "must name the MMAction2 config", e.config

    # published numbers
    for key in ("top1", "top5"):
        yield f"published.{key}", _in(getattr(p, key), 0, 100), "must be a percentage in [0, 100] (or null)", getattr(p, key)
    yield ("published.top5", p.top1 is None or p.top5 is None or p.top5 >= p.top1,
           f"cannot be below published.top1 ({p.top1})", p.top5)
    yield "published.video_per_s", _in(p.video_per_s, 0, math.inf, True), "must be > 0 (or null)", p.video_per_s
    yield "published.gpu_mem_mb", p.gpu_mem_mb is None or p.gpu_mem_mb > 0, "must be > 0 MiB (or null)", p.gpu_mem_mb
    yield "published.gflops", _in(p.gflops, 0, math.inf, True), "must be > 0 (or null)", p.gflops
    yield "published.params_m", _in(p.params_m, 0, math.inf, True), "must be > 0 (or null)", p.params_m
    yield "published.gpus", re.fullmatch(r"\d+(x\d+)?", p.gpus) is not None, "must read like 8 or 8x2", p.gpus

    # checkpoint
    yield "checkpoint.url", _source_ok(ck.url), "must be an http(s) URL or a file path (or null)", ck.url
    yield "checkpoint.log_url", _source_ok(ck.log_url), "must be an http(s) URL or a file path (or null)", ck.log_url
    yield ("checkpoint.sha256_prefix", ck.sha256_prefix is None or re.fullmatch(r"[0-9a-f]{8}", ck.sha256_prefix),
           "must be 8 lowercase hex digits", ck.sha256_prefix)
    yield ("checkpoint.sha256_prefix",
           ck.url is None or ck.sha256_prefix is None or ck.url.endswith(f"-{ck.sha256_prefix}.pth"),
           f"must match the -<hash>.pth suffix of checkpoint.url ({ck.url})", ck.sha256_prefix)

    # architecture: what ResNet3d / I3DHead are built from
    yield "arch.depth", a.depth in DEPTH_BLOCKS, f"must be one of {sorted(DEPTH_BLOCKS)}", a.depth
    yield "arch.base_channels", a.base_channels >= 1, "must be >= 1", a.base_channels
    yield ("arch.stage_blocks", a.stage_blocks is None or (len(a.stage_blocks) == 4 and min(a.stage_blocks) >= 1),
           "must be 4 block counts >= 1 (one per stage), or null for the depth's", a.stage_blocks)
    blocks = a.stage_blocks or DEPTH_BLOCKS[a.depth]
    yield "arch.conv1_kernel", min(a.conv1_kernel) >= 1, "must be sizes >= 1", a.conv1_kernel
    yield "arch.conv1_stride_t", a.conv1_stride_t >= 1, "must be >= 1", a.conv1_stride_t
    yield "arch.pool1_stride_t", a.pool1_stride_t >= 1, "must be >= 1", a.pool1_stride_t
    for key in ("inflate", "non_local"):
        rows = getattr(a, key)
        yield f"arch.{key}", len(rows) == 4, "must have one row per stage (4)", rows
        for i, (row, n) in enumerate(zip(rows, blocks)):
            yield (f"arch.{key}[{i}]", len(row) == n,
                   f"must have one flag per block of stage {i + 1} ({n} blocks, arch.stage_blocks {list(blocks)})", row)
            yield f"arch.{key}[{i}]", set(row) <= {0, 1}, "must be 0/1 flags", row
    yield "arch.non_local_mode", a.non_local_mode in _NL_MODES, f"must be one of {', '.join(map(str, _NL_MODES))}", a.non_local_mode
    yield ("arch.non_local", any(any(row) for row in a.non_local) == (a.non_local_mode is not None),
           f"and arch.non_local_mode ({a.non_local_mode}) go together: flags need a mode, a mode needs flags", a.non_local)
    yield ("arch.num_classes", a.num_classes == DATASET_CLASSES.get(e.dataset),
           f"must be the {DATASET_CLASSES.get(e.dataset)} classes of dataset {e.dataset}", a.num_classes)
    yield "arch.dropout_ratio", _in(a.dropout_ratio, 0, 1) and a.dropout_ratio < 1, "must be in [0, 1)", a.dropout_ratio

    # data: sampling and the train/val pipelines
    yield "data.format", d.format in ("rawframes", "videos"), "must be rawframes or videos", d.format
    yield "data.resolution", d.resolution in ("340x256", "short256"), "must be 340x256 or short256", d.resolution
    yield "data.sampler", d.sampler in ("uniform", "dense"), "must be uniform or dense", d.sampler
    yield "data.jpeg_backend", d.jpeg_backend in ("cv2", "turbojpeg", "pillow"), "must be cv2, turbojpeg or pillow", d.jpeg_backend
    yield "data.resize_backend", d.resize_backend in ("cv2", "tensor"), "must be cv2 or tensor", d.resize_backend
    for key in ("clip_len", "frame_interval", "num_clips", "val_clips"):
        yield f"data.{key}", getattr(d, key) >= 1, "must be >= 1", getattr(d, key)
    yield ("data.num_clips", d.sampler != "dense" or DENSE_SAMPLE_RANGE // d.num_clips >= 1,
           f"of a dense entry must be <= {DENSE_SAMPLE_RANGE} (clips are {DENSE_SAMPLE_RANGE} // num_clips frames apart)",
           d.num_clips)
    strides = (f"arch.conv1_stride_t {a.conv1_stride_t}, arch.pool1_stride_t {a.pool1_stride_t}"
               + (", pool2 2" if a.with_pool2 else ""))
    yield ("data.clip_len", _backbone_time(e) >= 1,
           f"leaves no frames after the backbone's temporal strides ({strides})", d.clip_len)
    yield ("data.filename_tmpl", _formats_an_index(d.filename_tmpl),
           "must format the frame number, like img_{:05}.jpg", d.filename_tmpl)
    yield ("data.filename_tmpl", "/" not in d.filename_tmpl and "\\" not in d.filename_tmpl,
           "must be a file name inside the frame folder (no path separators)", d.filename_tmpl)
    yield "data.start_index", d.start_index >= 0, "must be >= 0", d.start_index
    yield "data.resize_short", d.resize_short >= 1, "must be >= 1", d.resize_short
    yield "data.train_crop", d.train_crop >= 1, "must be >= 1", d.train_crop
    yield ("data.val_crop", 1 <= d.val_crop <= d.resize_short,
           f"must fit in the resized frame: 1 to data.resize_short ({d.resize_short})", d.val_crop)
    yield "data.train_scales", len(d.train_scales) >= 1, "must list at least one scale", d.train_scales
    yield ("data.train_scales", all(_in(s, 0, 1, True) and int(d.resize_short * s) >= 1 for s in d.train_scales),
           f"must be fractions in (0, 1] of the resized short side ({d.resize_short})", d.train_scales)
    yield "data.flip_ratio", _in(d.flip_ratio, 0, 1), "must be a probability in [0, 1]", d.flip_ratio
    yield "data.mean", all(map(_finite, d.mean)), "must be finite numbers", d.mean
    yield "data.std", all(_in(v, 0, math.inf, True) for v in d.std), "must be finite numbers > 0", d.std

    # test protocol
    yield "test.num_clips", t.num_clips >= 1, "must be >= 1", t.num_clips
    yield "test.crop", t.crop in ("three_crop", "center_crop"), "must be three_crop or center_crop", t.crop
    yield "test.average_clips", t.average_clips in ("prob", "score"), "must be prob or score", t.average_clips
    yield "test.sampler_version", t.sampler_version in ("0.x", "1.x"), "must be 0.x or 1.x", t.sampler_version
    if t.crop == "three_crop":
        # ThreeCrop slides a crop along the long side: it must span the resized short side exactly.
        yield ("test.crop_size", t.crop_size == d.resize_short,
               f"of a three_crop protocol must equal data.resize_short ({d.resize_short})", t.crop_size)
    else:
        yield ("test.crop_size", 1 <= t.crop_size <= d.resize_short,
               f"must fit in the resized frame: 1 to data.resize_short ({d.resize_short})", t.crop_size)
    for key, size in (("data.train_crop", d.train_crop), ("data.val_crop", d.val_crop), ("test.crop_size", t.crop_size)):
        yield key, _backbone_space(e, size) >= 1, "is too small for the backbone's 32x spatial downsampling", size

    # training recipe
    yield "recipe.lr", _in(r.lr, 0, math.inf, True), "must be > 0", r.lr
    yield "recipe.momentum", _in(r.momentum, 0, 1) and r.momentum < 1, "must be in [0, 1)", r.momentum
    yield "recipe.weight_decay", _in(r.weight_decay, 0, math.inf), "must be >= 0", r.weight_decay
    yield "recipe.grad_clip", _in(r.grad_clip, 0, math.inf, True), "must be > 0 (or null: no clipping)", r.grad_clip
    yield "recipe.epochs", 1 <= r.epochs <= MAX_EPOCHS, f"must be 1 to {MAX_EPOCHS}", r.epochs
    yield ("recipe.milestones", all(1 <= m <= r.epochs for m in r.milestones)
           and all(b > a for a, b in zip(r.milestones, r.milestones[1:])),
           f"must be increasing epochs in 1 to recipe.epochs ({r.epochs})", r.milestones)
    yield "recipe.gamma", _in(r.gamma, 0, 1, True), "must be in (0, 1]", r.gamma
    for key in ("videos_per_gpu", "gpus", "base_batch_size", "val_interval", "checkpoint_interval"):
        yield f"recipe.{key}", getattr(r, key) >= 1, "must be >= 1", getattr(r, key)
    yield ("recipe.pretrained",
           r.pretrained is None or not r.pretrained.startswith("torchvision://") or r.pretrained == f"torchvision://resnet{a.depth}",
           f"must be the 2D ResNet of arch.depth (torchvision://resnet{a.depth}), a file or URL, or null", r.pretrained)
    yield "recipe.pretrained", _source_ok(r.pretrained) or r.pretrained.startswith("torchvision://"), \
        "must be torchvision://resnetN, an http(s) URL or a file path (or null)", r.pretrained

    # tolerances (see Tolerance)
    for key in ("top1", "top5"):
        yield f"expected.{key}", _in(getattr(e.expected, key), 0, 100), "must be in [0, 100] percent", \
            getattr(e.expected, key)
    yield "tolerance.top1", _in(tol.top1, 0, 100, True), "must be in (0, 100] points", tol.top1
    yield "tolerance.top5", _in(tol.top5, 0, 100, True), "must be in (0, 100] points", tol.top5
    yield "tolerance.memory_rel", _in(tol.memory_rel, 0, 1, True), "must be in (0, 1] (a fraction of the published)", tol.memory_rel
    yield ("tolerance.speed_min_ratio", _in(tol.speed_min_ratio, 0, 1, True),
           "must be in (0, 1] (a fraction of the published speed)", tol.speed_min_ratio)
    yield ("tolerance.compare_speed", _in(tol.compare_speed, 1, 2, True),
           "must be in (1, 2] (a time ratio between two revisions)", tol.compare_speed)


def _check_entry(e: ZooEntry, where: str) -> None:
    for dotted, ok, what, value in _entry_checks(e):
        if not ok:
            raise _bad(where, dotted, what, value)


def load_zoos(*paths: str | Path) -> dict[str, ZooEntry]:
    """Load several manifests into one mapping; a name defined twice is an error."""
    out: dict[str, ZooEntry] = {}
    for p in paths or (DEFAULT_ZOO, SMOKE_ZOO):
        for name, entry in load_zoo(p).items():
            if name in out:
                raise ZooError(f"{p}: entry '{name}' is already defined in another manifest")
            out[name] = entry
    return out


def get_entry(entry_or_name: ZooEntry | str, zoo: str | Path | None = None) -> ZooEntry:
    """Resolve a name against ``zoo`` (default: the K400 zoo and the smoke zoo)."""
    if isinstance(entry_or_name, ZooEntry):
        return entry_or_name
    entries = load_zoo(zoo) if zoo is not None else load_zoos()
    try:
        return entries[entry_or_name]
    except KeyError:
        close = [n for n in entries if entry_or_name.lower() in n.lower()]
        hint = f" Did you mean: {', '.join(close[:5])}?" if close else " Run `i3dbench zoo list` to see them."
        raise UnknownEntryError(f"no zoo entry named '{entry_or_name}'.{hint}") from None
