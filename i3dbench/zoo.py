"""The zoo manifest: published I3D configurations as typed entries.

A manifest is a YAML file with an optional ``include:`` (another manifest whose
``defaults`` this one starts from, one level deep), a ``defaults:`` mapping, and an
``entries:`` mapping of name -> entry. Each entry is the defaults deep-merged with its
own keys (the entry's keys win), then validated against the dataclasses below. Any
unknown or missing field, wrong type, or duplicate name is a :class:`ZooError` that
names the file, the entry and the field.

Published numbers live here and nowhere else in the project.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
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
    top1: float = 0.5  # points, OpenMMLab's regression range
    top5: float = 0.5
    memory_rel: float = 0.10  # measured/published - 1 within +-10%
    speed_min_ratio: float = 1.0  # measured video/s must be >= ratio * published


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

    @property
    def views_per_video(self) -> int:
        crops = 3 if self.test.crop == "three_crop" else 1
        return self.test.num_clips * crops


# --------------------------------------------------------------------------- loading


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


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; lists become tuples."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ZooError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ZooError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ZooError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int or tp is bool or tp is str:
        if type(value) is not tp:
            raise ZooError(f"{where}: expected {_type_name(tp)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    raise ZooError(f"{where}: unsupported type {tp}")  # pragma: no cover - schema bug


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ZooError(f"{where}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ZooError(f"{where}: unknown field(s) {', '.join(unknown)} (allowed: {', '.join(fields)})")
    kwargs = {}
    for name, f in fields.items():
        if name in raw:
            kwargs[name] = _coerce(raw[name], hints[name], f"{where}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ZooError(f"{where}: missing field '{name}'")
    return cls(**kwargs)


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as err:
        raise ZooError(f"{path}: cannot read manifest ({err.strerror})") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ZooError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(doc, dict):
        raise ZooError(f"{path}: a manifest is a mapping with 'entries:'")
    unknown = sorted(set(doc) - {"include", "defaults", "entries"})
    if unknown:
        raise ZooError(f"{path}: unknown top-level key(s) {', '.join(unknown)} (allowed: include, defaults, entries)")
    return doc


def _check_unique_keys(path: Path) -> None:
    """YAML silently keeps the last of two equal keys; a manifest must not."""

    class Loader(yaml.SafeLoader):
        pass

    def construct_mapping(loader, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise ZooError(f"{path}: line {key_node.start_mark.line + 1}: '{key}' is defined twice")
            seen.add(key)
        return yaml.SafeLoader.construct_mapping(loader, node, deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    yaml.load(path.read_text(), Loader=Loader)  # noqa: S506 - SafeLoader subclass


def load_zoo(path: str | Path | None = None) -> dict[str, ZooEntry]:
    """Load and validate one manifest (default: the published I3D Kinetics-400 zoo)."""
    path = Path(path) if path is not None else DEFAULT_ZOO
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = None  # _read_yaml reports the missing file
    # Entries are frozen dataclasses, so a cached parse can be shared; the mtime in the key
    # keeps an edited manifest from being served stale.
    return dict(_load_zoo_cached(path.resolve(), stamp))


@functools.lru_cache(maxsize=16)
def _load_zoo_cached(path: Path, _stamp: int | None) -> dict[str, ZooEntry]:
    doc = _read_yaml(path)
    _check_unique_keys(path)
    defaults: dict = {}
    if doc.get("include"):
        inc = (path.parent / doc["include"]).resolve()
        if inc == path.resolve():
            raise ZooError(f"{path}: include: a manifest cannot include itself")
        inc_doc = _read_yaml(inc)
        if inc_doc.get("include"):
            raise ZooError(f"{path}: include: {inc} includes another file; one level only")
        defaults = inc_doc.get("defaults") or {}
    defaults = _deep_merge(defaults, doc.get("defaults") or {})
    entries = doc.get("entries")
    if not isinstance(entries, dict) or not entries:
        raise ZooError(f"{path}: 'entries:' must be a non-empty mapping of name -> entry")
    zoo: dict[str, ZooEntry] = {}
    for name, raw in entries.items():
        if not isinstance(raw, dict):
            raise ZooError(f"{path}: entry '{name}': expected a mapping")
        merged = _deep_merge(defaults, raw)
        merged["name"] = name
        entry = _build(ZooEntry, merged, f"{path}: entry '{name}'")
        _check_entry(entry, path)
        zoo[name] = _anchor_local_checkpoint(entry, path)
    return zoo


def _anchor_local_checkpoint(entry: ZooEntry, manifest: Path) -> ZooEntry:
    """A checkpoint ``url`` / ``log_url`` that is a relative file path is relative to the manifest's folder."""

    def anchored(url: Optional[str]) -> Optional[str]:
        if url is None or "://" in url or Path(url).is_absolute():
            return url
        return str((manifest.parent / url).resolve())

    ck = entry.checkpoint
    return dataclasses.replace(entry, checkpoint=dataclasses.replace(ck, url=anchored(ck.url), log_url=anchored(ck.log_url)))


_NL_MODES = {None, "embedded_gaussian", "gaussian", "dot_product"}


def _check_entry(e: ZooEntry, path: Path) -> None:
    where = f"{path}: entry '{e.name}'"
    checks = [
        (e.arch.non_local_mode in _NL_MODES, "arch.non_local_mode", f"must be one of {sorted(map(str, _NL_MODES))}"),
        (e.data.format in ("rawframes", "videos"), "data.format", "must be rawframes or videos"),
        (e.data.resolution in ("340x256", "short256"), "data.resolution", "must be 340x256 or short256"),
        (e.data.sampler in ("uniform", "dense"), "data.sampler", "must be uniform or dense"),
        (e.test.crop in ("three_crop", "center_crop"), "test.crop", "must be three_crop or center_crop"),
        (e.test.average_clips in ("prob", "score"), "test.average_clips", "must be prob or score"),
        (e.test.sampler_version in ("0.x", "1.x"), "test.sampler_version", "must be 0.x or 1.x"),
        (e.data.jpeg_backend in ("cv2", "turbojpeg", "pillow"), "data.jpeg_backend", "must be cv2, turbojpeg or pillow"),
        (e.data.resize_backend in ("cv2", "tensor"), "data.resize_backend", "must be cv2 or tensor"),
        (e.dataset in ("kinetics400", "synthetic"), "dataset", "must be kinetics400 or synthetic"),
        (
            e.checkpoint.sha256_prefix is None
            or (len(e.checkpoint.sha256_prefix) == 8 and all(c in "0123456789abcdef" for c in e.checkpoint.sha256_prefix)),
            "checkpoint.sha256_prefix",
            "must be 8 lowercase hex digits",
        ),
        (
            e.checkpoint.url is None
            or e.checkpoint.sha256_prefix is None
            or e.checkpoint.url.endswith(f"-{e.checkpoint.sha256_prefix}.pth"),
            "checkpoint.sha256_prefix",
            "must match the -<hash>.pth suffix of checkpoint.url",
        ),
        (
            any(any(row) for row in e.arch.non_local) == (e.arch.non_local_mode is not None),
            "arch.non_local",
            "a non-local pattern needs non_local_mode and vice versa",
        ),
    ]
    for ok, fld, msg in checks:
        if not ok:
            raise ZooError(f"{where}: field '{fld}' {msg}")


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
