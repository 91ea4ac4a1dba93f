"""The evaluation input path: workers decode, the evaluating process builds the views.

Workers (DataLoader processes) decode each video's sampled frames once — the distinct ones,
native resolution, uint8 (``ClipDataset(handover="frames")`` → ``DecodedVideo``) — and hand
over just those frames and the clip plan. The evaluating process then, per video and for
every model that shares the input:

1. resizes the frames to the protocol's short side (once per distinct frame, on the CPU:
   both resize backends are exact there — mmcv's cv2 bilinear and torch's uint8 kernel — and
   a CUDA resize would round differently, so the pixels would no longer be today's or
   MMAction2's; Kinetics copies stored at 340x256 or short side 256 need no resize at all);
2. moves the frames to the device (pinned memory on CUDA: ~U x 256 x 340 x 3 bytes, not the
   30 views' 189 MB);
3. cuts the ThreeCrop / CenterCrop views of every clip and normalises them straight into one
   float tensor in MMAction2's NCTHW layout (``transforms.views_from_frames``), on the device.

The views that reach the model are bitwise those of the per-view path (``handover="views"``
followed by ``transforms.normalize``): same indices, crops and pixels; a test checks it.

Entries whose test input is identical share the decode and the views: :func:`input_key` says
what must be equal (data variant, sampler and its version, views, crop, resize), and
:func:`group_by_input` groups a list of entries by it.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .data import transforms as T
from .data.dataset import DecodedVideo
from .zoo import ZooEntry


def decode_key(entry: ZooEntry) -> tuple:
    """Everything that decides which frames of a test video are decoded, and how."""
    d, t = entry.data, entry.test
    return (d.format, d.resolution, d.filename_tmpl, d.start_index, d.jpeg_backend if d.format == "rawframes" else None,
            d.sampler, d.clip_len, d.frame_interval, d.num_clips, t.num_clips, t.sampler_version)


def view_key(entry: ZooEntry) -> tuple:
    """What turns the decoded frames into uint8 views: resize and crops (normalisation is per model)."""
    d, t = entry.data, entry.test
    return (d.resize_short, d.resize_backend, t.crop, t.crop_size)


def input_key(entry: ZooEntry) -> tuple:
    """Everything that decides the uint8 views of a test video: entries with equal keys share them."""
    return decode_key(entry) + view_key(entry)


def input_label(entry: ZooEntry) -> str:
    d, t = entry.data, entry.test
    crops = 3 if t.crop == "three_crop" else 1
    return (f"{d.format}-{d.resolution}-{d.sampler}-{d.clip_len}x{d.frame_interval}x{t.num_clips}-sampler"
            f"{t.sampler_version}-{crops}crop{t.crop_size}-short{d.resize_short}-{d.resize_backend}")


def group_by_input(entries: Iterable[ZooEntry]) -> list[list[ZooEntry]]:
    """Entries grouped by :func:`input_key`, groups and members in first-seen order."""
    groups: dict[tuple, list[ZooEntry]] = {}
    for e in entries:
        groups.setdefault(input_key(e), []).append(e)
    return list(groups.values())


def crop_boxes(entry: ZooEntry, h: int, w: int) -> list:
    size = entry.test.crop_size
    return T.three_crop_boxes(h, w, size) if entry.test.crop == "three_crop" else [T.center_crop_box(h, w, size)]


def views_from_decoded(decoded: DecodedVideo, entry: ZooEntry, device: str | torch.device = "cpu",
                       normalize: bool = True, out: torch.Tensor | None = None) -> torch.Tensor:
    """The entry's test views of one decoded video on ``device``: ``V x 3 x T x h x w``, float32
    normalised with ``data.mean/std`` (uint8 with ``normalize=False``), crop-major (MMAction2's order).
    ``out``: a buffer to write them into, reused when it fits (``transforms.views_from_frames``)."""
    frames = T.resize_short(decoded.frames, entry.data.resize_short, entry.data.resize_backend)
    h, w = frames.shape[1:3]
    frames = frames.to(device, non_blocking=True)
    norm = (entry.data.mean, entry.data.std) if normalize else (None, None)
    return T.views_from_frames(frames, decoded.clips, crop_boxes(entry, h, w), *norm, out=out)


__all__ = ["crop_boxes", "decode_key", "group_by_input", "input_key", "input_label", "view_key", "views_from_decoded"]
