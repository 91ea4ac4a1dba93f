"""A zoo entry's data pipelines as a torch Dataset: (views, label, index) per video.

``build_dataset(entry, split, data_root, ann_file)`` reads the entry's annotation list and
returns a :class:`ClipDataset` whose items follow the entry's MMAction2 pipeline:

- ``train``: SampleFrames / DenseSampleFrames in training mode (``data.clip_len`` x
  ``data.frame_interval`` x ``data.num_clips``) -> Resize((-1, resize_short)) ->
  MultiScaleCrop(train_crop, train_scales, fixed corners) -> Resize(train_crop^2) ->
  Flip(flip_ratio); fused into one crop + one resize when ``data.lazy``.
- ``val``: ``data.val_clips`` clips in test mode (dense: ``val_clips`` start positions) ->
  Resize((-1, resize_short)) -> CenterCrop(val_crop); lazy when ``data.lazy``.
- ``test``: ``test.num_clips`` clips in test mode (dense: ``test.num_clips`` start positions of
  ``data.num_clips`` clips) -> Resize((-1, resize_short)) -> ThreeCrop / CenterCrop(crop_size).

Frames are resized with the entry's ``data.resize_backend`` ("cv2": bitwise MMAction2's
mmcv.imresize; "tensor": one torch call per clip) and JPEG frames decoded with its
``data.jpeg_backend`` (decoders.py); both are protocol settings a record names.

Views are uint8 ``V x 3 x T x H x W`` (V = clips x crops, crop-major as MMAction2 orders
them), or float normalised with ``data.mean/std`` when ``normalize=True`` (normalising later,
on the device, moves 4x fewer bytes). Each distinct frame of a video is decoded once.

Random draws (training only) come from a numpy Generator seeded with ``(seed, epoch, index)``,
so an item is the same whichever DataLoader worker makes it; call ``set_epoch`` each epoch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from i3dbench.data import transforms as T
from i3dbench.data.decoders import BackendUnavailable, DecodeError, get_decoder
from i3dbench.data.sampling import (
    FrameSample,
    plan_dense_sample_frames,
    plan_sample_frames,
)

SPLITS = ("train", "val", "test")
ON_ERROR = ("raise", "report")


@dataclass(frozen=True)
class DecodeFailure:
    """Stands in for the views of a video that could not be decoded (``on_error="report"``)."""

    path: str
    reason: str


@dataclass
class DecodedVideo:
    """A test video as the workers hand it over (``handover="frames"``): the distinct frames the
    test clips need, decoded once at native resolution, and which of them make up each clip.

    ``frames``: ``U x H x W x 3`` uint8; ``clips``: ``C x T`` int64 indices into ``frames`` (clip
    ``c``'s ``t``-th frame). Resize, crops, normalisation and layout are the evaluating process's
    job (``i3dbench.loader.views_from_decoded``), so no per-view copy is made in a worker.
    """

    index: int
    label: int
    frames: torch.Tensor
    clips: np.ndarray
    total_frames: int | None = None  # the video's frame count (the list's, or the decoder's for a video)

    def pin_memory(self) -> DecodedVideo:  # DataLoader(pin_memory=True) calls this in its pinning thread
        self.frames = self.frames.pin_memory()
        return self


@dataclass(frozen=True)
class ItemPlan:
    """Everything random or size-dependent about one item, decided before any pixel is touched."""

    sample: FrameSample
    geometry: T.Geometry | None  # train / val; None for test (fixed crops)


class ClipDataset(torch.utils.data.Dataset):
    """Videos of one annotation list through one of an entry's pipelines (see module doc).

    ``records``: the annotation's VideoRecords (``path`` relative to ``data_root``);
    ``decoder``: a Decoder (decoders.py). Picklable, so DataLoader workers can use it.
    """

    def __init__(self, entry, split: str, records: Sequence[Any], data_root: str | os.PathLike, decoder,
                 normalize: bool = False, on_error: str = "raise", seed: int | None = None, handover: str = "views"):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if handover not in ("views", "frames") or (handover == "frames" and split != "test"):
            raise ValueError(f"handover must be 'views', or 'frames' for the test split, got {handover!r} ({split})")
        self.handover = handover
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        self.entry = entry
        self.split = split
        self.records = list(records)
        self.data_root = Path(data_root)
        self.decoder = decoder
        self.normalize = normalize
        self.on_error = on_error
        # the entry's resize backend (a protocol setting); fail now, not in a worker, when it cannot run
        self.resize_backend = getattr(entry.data, "resize_backend", "tensor")
        _check_backend(entry, "data.resize_backend", T.check_resize_backend, self.resize_backend)
        # no seed: draw one now, so that every worker (a pickled copy) shares it
        self.seed = int(np.random.SeedSequence().entropy % 2**63) if seed is None else int(seed)
        self.epoch = 0

    # ------------------------------------------------------------------ bookkeeping

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Training draws depend on the epoch; call before each epoch (before workers start:
        persistent workers keep the epoch they were started with)."""
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        """The generator of item ``index`` in the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    @property
    def clips_per_video(self) -> int:
        d, t = self.entry.data, self.entry.test
        if self.split == "train":
            return d.num_clips
        positions = d.val_clips if self.split == "val" else t.num_clips
        return positions * d.num_clips if d.sampler == "dense" else positions

    @property
    def views_per_video(self) -> int:
        crops = 3 if self.split == "test" and self.entry.test.crop == "three_crop" else 1
        return self.clips_per_video * crops

    def path(self, index: int) -> Path:
        return self.data_root / self.records[index].path

    # ------------------------------------------------------------------ planning

    def _sample(self, total_frames: int, rng) -> FrameSample:
        d, split = self.entry.data, self.split
        test_mode = split != "train"
        if d.sampler == "dense":
            positions = d.val_clips if split == "val" else self.entry.test.num_clips
            return plan_dense_sample_frames(total_frames, d.clip_len, d.frame_interval, d.num_clips,
                                            num_sample_positions=positions, test_mode=test_mode, seed=rng)
        clips = {"train": d.num_clips, "val": d.val_clips, "test": self.entry.test.num_clips}[split]
        # val and test both use test-mode sampling, of the MMAction2 version the entry was
        # evaluated with (0.x's validation used the same _get_test_clips as its test)
        return plan_sample_frames(total_frames, d.clip_len, d.frame_interval, clips, test_mode=test_mode, seed=rng,
                                  version=self.entry.test.sampler_version)

    def _geometry(self, frame_hw: tuple[int, int], rng) -> T.Geometry | None:
        d, (h, w) = self.entry.data, frame_hw
        if self.split == "train":
            return T.plan_train_geometry(h, w, d.resize_short, d.train_crop, d.train_scales, d.flip_ratio,
                                         lazy=d.lazy, rng=rng)
        if self.split == "val":
            return T.plan_val_geometry(h, w, d.resize_short, d.val_crop, lazy=d.lazy)
        return None

    def plan(self, index: int, total_frames: int, frame_hw: tuple[int, int]) -> ItemPlan:
        """Frames and geometry of item ``index`` for a video of ``total_frames`` frames of
        size ``frame_hw``; draws in MMAction2's order: frames, then crop, then flip."""
        rng = self.rng(index) if self.split == "train" else None
        sample = self._sample(total_frames, rng)
        return ItemPlan(sample, self._geometry(frame_hw, rng))

    # ------------------------------------------------------------------ loading

    def total_frames(self, index: int) -> int:
        """From the annotation when it says (rawframe lists), else from the decoder."""
        n = getattr(self.records[index], "total_frames", None)
        return int(n) if n is not None else self.decoder.num_frames(self.path(index))

    def decode(self, index: int) -> DecodedVideo:
        """Decode the distinct frames of test item ``index`` (native resolution) and its clip plan."""
        path = self.path(index)
        total = self.total_frames(index)
        if total < 1:
            raise DecodeError(path, "it has no frames (0 in the container / annotation)")
        sample = self._sample(total, None)
        wanted, positions = _frames_to_decode(sample.indices, contiguous_ok=self.decoder.name != "rawframes")
        frames = self.decoder.read(path, wanted)  # each distinct frame decoded once
        return DecodedVideo(int(index), int(self.records[index].label), frames,
                            np.asarray(positions, dtype=np.int64).reshape(sample.num_clips, sample.clip_len), int(total))

    def load(self, index: int) -> tuple[torch.Tensor, ItemPlan]:
        """Decode and transform item ``index``: views ``V x 3 x T x H x W`` (uint8, or float
        normalised when the dataset normalises) and its plan."""
        path = self.path(index)
        total = self.total_frames(index)
        if total < 1:
            raise DecodeError(path, "it has no frames (0 in the container / annotation)")
        rng = self.rng(index) if self.split == "train" else None
        sample = self._sample(total, rng)  # the same draws, in the same order, as plan()
        wanted, positions = _frames_to_decode(sample.indices, contiguous_ok=self.decoder.name != "rawframes")
        frames = self.decoder.read(path, wanted)  # each distinct frame decoded once
        plan = ItemPlan(sample, self._geometry(tuple(frames.shape[1:3]), rng))
        index2d = positions.reshape(sample.num_clips, sample.clip_len)
        norm = (self.entry.data.mean, self.entry.data.std) if self.normalize else (None, None)
        if plan.geometry is not None:
            out = T.apply_geometry(frames, plan.geometry, self.resize_backend)  # once per distinct frame
            views = T.views_from_frames(out, index2d, [(0, 0, out.shape[2], out.shape[1])], *norm)
        else:
            frames = T.resize_short(frames, self.entry.data.resize_short, self.resize_backend)
            h, w = frames.shape[1:3]
            size = self.entry.test.crop_size
            three = self.entry.test.crop == "three_crop"
            boxes = T.three_crop_boxes(h, w, size) if three else [T.center_crop_box(h, w, size)]
            views = T.views_from_frames(frames, index2d, boxes, *norm)
        return views, plan

    def __getitem__(self, index: int):
        label = int(self.records[index].label)
        try:
            if self.handover == "frames":
                return self.decode(index), label, index
            views, _ = self.load(index)
        except DecodeError as err:
            if self.on_error == "raise":
                raise
            return DecodeFailure(err.path, err.reason), label, index
        return views, label, index

    def __repr__(self) -> str:
        return (f"ClipDataset({self.entry.name!r}, split={self.split!r}, videos={len(self)}, "
                f"views/video={self.views_per_video}, decoder={getattr(self.decoder, 'name', self.decoder)!r})")


def _frames_to_decode(indices: np.ndarray, contiguous_ok: bool) -> tuple[np.ndarray, np.ndarray]:
    """Which frames to ask the decoder for, and where each sampled index lands among them.

    The distinct indices, or, when they fill most of their span and the decoder reads a video
    (which decodes every frame of the span anyway), the whole contiguous span: then each clip is
    an evenly spaced run of decoded frames and its views are sliced out without a gather.
    """
    unique, inverse = np.unique(indices, return_inverse=True)
    lo, hi = int(unique[0]), int(unique[-1])
    if contiguous_ok and hi - lo + 1 <= 1.5 * len(unique):
        return np.arange(lo, hi + 1), indices - lo
    return unique, inverse


def _check_backend(entry, field: str, build, *args, **kwargs):
    """``build(*args, **kwargs)``; a missing backend library becomes a UserError naming the entry's field."""
    try:
        return build(*args, **kwargs)
    except BackendUnavailable as e:
        value = getattr(entry.data, field.split(".")[-1], None)
        raise BackendUnavailable(f"entry {entry.name!r}: {field}: {value!r}: {e}") from None


def default_decoder(entry, name: str | None = None):
    """The decoder an entry's data needs: rawframes (with its file template, start index and
    JPEG backend) for rawframes entries, decord for videos; ``name`` overrides the video decoder."""
    d = entry.data
    if d.format == "rawframes":
        if name not in (None, "rawframes"):
            raise ValueError(f"entry {entry.name!r} reads rawframes; decoder {name!r} reads videos")
        return _check_backend(entry, "data.jpeg_backend", get_decoder, "rawframes", filename_tmpl=d.filename_tmpl,
                              start_index=d.start_index, backend=getattr(d, "jpeg_backend", "cv2"))
    if name == "rawframes":
        raise ValueError(f"entry {entry.name!r} reads videos; choose a video decoder (decord, pyav)")
    return get_decoder(name or "decord")


def build_dataset(entry, split: str, data_root: str | os.PathLike, ann_file: str | os.PathLike, decoder=None,
                  normalize: bool = False, on_error: str = "raise", seed: int | None = None,
                  handover: str = "views") -> ClipDataset:
    """The dataset of ``entry`` (a ZooEntry or its name) for ``split`` in train/val/test.

    ``ann_file``: a rawframe list (``<dir> <total_frames> <label>``) for rawframes entries, a
    video list (``<file> <label>``) for video entries, paths relative to ``data_root``.
    ``decoder``: None (the entry's default), a decoder name, or a Decoder object.
    ``on_error="report"``: an undecodable video yields ``(DecodeFailure, label, index)``
    instead of raising :class:`~i3dbench.data.decoders.DecodeError`.
    ``seed``: base of the per-item training draws (None: a fresh random one).
    ``handover="frames"`` (test split): items are :class:`DecodedVideo` (decoded frames + clip
    plan) instead of views; the evaluation builds the views (``i3dbench.loader``).
    The list is refused (AnnotationError naming file and line) when a label is outside the
    entry's classes, a path leaves the data root or holds whitespace, or it lists no video.
    """
    from i3dbench.data import annotations
    from i3dbench.data.validate import require_data_root, validate_records
    from i3dbench.zoo import get_entry

    entry = get_entry(entry) if isinstance(entry, str) else entry
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    require_data_root(data_root, ann_file)
    read = annotations.read_rawframe_list if entry.data.format == "rawframes" else annotations.read_video_list
    records = read(ann_file, num_classes=entry.arch.num_classes)
    # Text-only checks (no file is touched: a training list may hold 240k videos).
    validate_records(records, entry, data_root, ann_file, check_files=False).raise_errors(
        hint=f"`i3dbench data check {data_root} --ann {ann_file} --entry {entry.name}` lists them all")
    if decoder is None or isinstance(decoder, str):
        decoder = default_decoder(entry, decoder)
    return ClipDataset(entry, split, records, data_root, decoder, normalize=normalize, on_error=on_error, seed=seed,
                       handover=handover)


def collate_views(batch):
    """DataLoader ``collate_fn`` for ClipDataset items that may include DecodeFailures.

    Returns ``(views, labels, indices, failures)``: views stacked ``B x V x 3 x T x H x W`` (None
    when every item failed), labels and indices as int64 tensors of the decoded items, and
    ``failures`` a list of ``(DecodeFailure, label, index)``.
    """
    ok = [b for b in batch if not isinstance(b[0], DecodeFailure)]
    failures = [b for b in batch if isinstance(b[0], DecodeFailure)]
    views = torch.stack([b[0] for b in ok]) if ok else None
    labels = torch.tensor([b[1] for b in ok], dtype=torch.int64)
    indices = torch.tensor([b[2] for b in ok], dtype=torch.int64)
    return views, labels, indices, failures
