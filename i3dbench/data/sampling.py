"""Which frames of a video make up each clip: MMAction2's SampleFrames / DenseSampleFrames.

The index arithmetic reproduces MMAction2 1.2.0 (``mmaction/datasets/transforms/loading.py``)
for the arguments the I3D configurations use: in test mode the indices are identical, in
training mode they follow the same distribution.

Test-mode ``SampleFrames`` has two versions, chosen with ``version``: ``"1.x"`` (MMAction2
>= 1.0, offsets spread evenly from the first to the last possible start) and ``"0.x"``
(MMAction2 0.x, which tested the 2020 model zoo: each clip centred in one of ``num_clips``
equal segments of the start positions). For 280 frames at 32x2x10 the clips start at
0, 24, 48, 72, ... (1.x) and 10, 32, 54, 75, ... (0.x). Both are pinned by golden fixtures
from each version's own code. Training mode and ``DenseSampleFrames`` are the same in both
versions (0.x's goldens check that too), so they take no version. Given a ``numpy.random.RandomState`` the
training draws are even the same numbers MMAction2 takes from ``np.random`` in the same state,
because the same calls are made in the same order.

Indices are 0-based. MMAction2 adds the dataset's ``start_index`` at the end of the transform;
here that is the decoder's job (the rawframes decoder adds it when it builds file names).

``plan_sample_frames`` / ``plan_dense_sample_frames`` return a typed :class:`FrameSample`;
``sample_frames`` / ``dense_sample_frames`` (the public API of ARCHITECTURE.md) return its
``indices`` array.
"""

from __future__ import annotations

import random
from typing import NamedTuple, Union

import numpy as np

RandomSource = Union[None, int, np.random.Generator, np.random.RandomState, random.Random]

OUT_OF_BOUND_OPTS = ("loop", "repeat_last")
SAMPLER_VERSIONS = ("0.x", "1.x")  # which MMAction2's test-mode SampleFrames


class FrameSample(NamedTuple):
    """Frames to decode for one video.

    ``indices``: int64, shape ``(num_clips * clip_len,)``, clip-major, 0-based, each in
    ``[0, total_frames)``. ``clip_offsets``: the first frame of each clip before wrapping
    (float where MMAction2 computes it in floats). ``num_clips`` counts every clip returned
    (for dense test sampling that is ``num_sample_positions * num_clips``).
    """

    indices: np.ndarray
    clip_offsets: np.ndarray
    num_clips: int
    clip_len: int

    def clips(self) -> np.ndarray:
        """Indices as ``(num_clips, clip_len)``."""
        return self.indices.reshape(self.num_clips, self.clip_len)


def as_rng(seed: RandomSource) -> np.random.Generator | np.random.RandomState | random.Random:
    """A random source from a seed: ``None`` (fresh entropy), an int, or a generator as is.

    A ``numpy.random.RandomState`` makes the draws MMAction2 makes from the global
    ``np.random`` in the same state; a ``numpy.random.Generator`` gives the same distribution.
    """
    if seed is None or isinstance(seed, (int, np.integer)):
        return np.random.default_rng(seed)
    if isinstance(seed, (np.random.Generator, np.random.RandomState, random.Random)):
        return seed
    raise TypeError(f"seed must be None, an int or a numpy Generator/RandomState, got {type(seed).__name__}")


def randint(rng, high: int, size: int | None = None, low: int = 0):
    """Integers uniform in ``[low, high)``, drawn the way each kind of generator does it.

    RandomState.randint and random.Random.randrange consume their state exactly as
    MMAction2's ``np.random.randint`` / ``random.choice`` do, which is what lets a test feed
    both libraries the same state.
    """
    if isinstance(rng, np.random.RandomState):
        return rng.randint(low, high, size=size)
    if isinstance(rng, np.random.Generator):
        return rng.integers(low, high, size=size)
    if isinstance(rng, random.Random):
        if size is None:
            return rng.randrange(low, high)
        return np.array([rng.randrange(low, high) for _ in range(size)], dtype=np.int64)
    raise TypeError(f"unsupported random source {type(rng).__name__}")


def _check(total_frames: int, clip_len: int, frame_interval: int, num_clips: int) -> None:
    for name, value, lo in (("total_frames", total_frames, 1), ("clip_len", clip_len, 1),
                            ("frame_interval", frame_interval, 1), ("num_clips", num_clips, 1)):
        if int(value) != value or value < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}"
                             + (" (a video with no frames cannot be sampled)" if name == "total_frames" else ""))


def _finish(offsets: np.ndarray, total_frames: int, clip_len: int, frame_interval: int,
            out_of_bound_opt: str) -> np.ndarray:
    """Expand clip offsets into frame indices and fold out-of-range ones back in."""
    inds = offsets[:, None] + np.arange(clip_len)[None, :] * frame_interval
    if out_of_bound_opt == "loop":
        inds = np.mod(inds, total_frames)
    elif out_of_bound_opt == "repeat_last":
        # every index past the end becomes the clip's last in-range index (0 if it has none)
        safe = inds < total_frames
        last = np.max(np.where(safe, inds, 0), axis=1, keepdims=True)
        inds = np.where(safe, inds, last)
    else:
        raise ValueError(f"out_of_bound_opt must be one of {OUT_OF_BOUND_OPTS}, got {out_of_bound_opt!r}")
    # MMAction2 truncates (astype int32) after the arithmetic, which may be in floats
    return inds.reshape(-1).astype(np.int64)


def _train_offsets(rng, total_frames: int, ori_clip_len: int, num_clips: int) -> np.ndarray:
    avg_interval = (total_frames - ori_clip_len + 1) // num_clips
    if avg_interval > 0:
        return np.arange(num_clips) * avg_interval + randint(rng, avg_interval, size=num_clips)
    if total_frames > max(num_clips, ori_clip_len):
        return np.sort(randint(rng, total_frames - ori_clip_len + 1, size=num_clips))
    if avg_interval == 0:
        ratio = (total_frames - ori_clip_len + 1.0) / num_clips
        return np.around(np.arange(num_clips) * ratio)
    return np.zeros(num_clips, dtype=np.int64)


def _test_offsets_0x(total_frames: int, clip_len: int, frame_interval: int, num_clips: int) -> np.ndarray:
    """MMAction2 0.x: the ``total_frames - clip_len * frame_interval + 1`` start positions cut
    into ``num_clips`` equal segments, each clip starting mid-segment (truncated)."""
    # 0.x measures a clip as clip_len * frame_interval frames (one interval more than it
    # spans) and has no special case for clip_len == 1.
    ori_clip_len = clip_len * frame_interval
    if total_frames < ori_clip_len:  # 0.x: `num_frames > ori_clip_len - 1` fails
        return np.zeros(num_clips, dtype=np.int64)
    avg_interval = (total_frames - ori_clip_len + 1) / float(num_clips)
    # the same float operations in the same order as 0.x, then truncation (astype int)
    return (np.arange(num_clips) * avg_interval + avg_interval / 2.0).astype(np.int64)


def _test_offsets(total_frames: int, clip_len: int, frame_interval: int, num_clips: int) -> np.ndarray:
    """MMAction2 1.x (PySlowFast-aligned since 1.0)."""
    if clip_len == 1:  # 2D models: the middle frame of each of num_clips equal segments
        avg_interval = total_frames / float(num_clips)
        return np.arange(num_clips) * avg_interval + avg_interval / 2.0
    ori_clip_len = (clip_len - 1) * frame_interval + 1
    max_offset = max(total_frames - ori_clip_len, 0)
    if num_clips > 1:
        # evenly spread first-frames from 0 to max_offset, rounded half to even (np.round)
        return np.round(np.arange(num_clips) * (max_offset / float(num_clips - 1)))
    return np.array([max_offset // 2])


def _check_version(version: str) -> None:
    if version not in SAMPLER_VERSIONS:
        raise ValueError(f"version must be one of {SAMPLER_VERSIONS} (which MMAction2's test-mode sampling), "
                         f"got {version!r}")


def plan_sample_frames(total_frames: int, clip_len: int, frame_interval: int = 1, num_clips: int = 1,
                       test_mode: bool = False, out_of_bound_opt: str = "loop",
                       seed: RandomSource = None, version: str = "1.x") -> FrameSample:
    """MMAction2 ``SampleFrames`` (no jitter, no twice-sample, no target fps) as a FrameSample.

    Test mode is deterministic: ``num_clips`` clips spread over the video, placed the way
    MMAction2 ``version`` ("1.x" or "0.x", see the module doc) places them. Training mode
    (the same in both versions) draws one random first frame per segment of
    ``total_frames / num_clips`` from ``seed``.
    """
    _check(total_frames, clip_len, frame_interval, num_clips)
    _check_version(version)
    if test_mode:
        offsets_of = _test_offsets_0x if version == "0.x" else _test_offsets
        offsets = offsets_of(total_frames, clip_len, frame_interval, num_clips)
    else:
        offsets = _train_offsets(as_rng(seed), total_frames, clip_len * frame_interval, num_clips)
    inds = _finish(offsets, total_frames, clip_len, frame_interval, out_of_bound_opt)
    return FrameSample(inds, offsets, num_clips, clip_len)


def plan_dense_sample_frames(total_frames: int, clip_len: int, frame_interval: int = 1, num_clips: int = 1,
                             sample_range: int = 64, num_sample_positions: int = 10,
                             test_mode: bool = False, seed: RandomSource = None,
                             out_of_bound_opt: str = "loop") -> FrameSample:
    """MMAction2 ``DenseSampleFrames`` as a FrameSample.

    Clips start inside the first ``sample_range`` frames' worth of start positions: training
    picks one start at random, test mode takes ``num_sample_positions`` evenly spaced starts,
    each followed by ``num_clips`` clips ``sample_range // num_clips`` frames apart, so test
    mode returns ``num_sample_positions * num_clips`` clips.
    """
    _check(total_frames, clip_len, frame_interval, num_clips)
    sample_position = max(1, 1 + total_frames - sample_range)
    interval = sample_range // num_clips
    base = np.arange(num_clips) * interval
    if test_mode:
        starts = np.linspace(0, sample_position - 1, num=num_sample_positions, dtype=int)
        offsets = ((starts[:, None] + base[None, :]) % total_frames).reshape(-1)
    else:
        # MMAction2 draws from [0, sample_position - 1): the last position is never drawn
        start = 0 if sample_position == 1 else randint(as_rng(seed), sample_position - 1)
        offsets = (base + start) % total_frames
    inds = _finish(offsets, total_frames, clip_len, frame_interval, out_of_bound_opt)
    return FrameSample(inds, offsets, len(offsets), clip_len)


def sample_frames(total_frames: int, clip_len: int, frame_interval: int, num_clips: int,
                  test_mode: bool = False, out_of_bound_opt: str = "loop",
                  seed: RandomSource = None, version: str = "1.x") -> np.ndarray:
    """0-based frame indices (int64, ``num_clips * clip_len``, clip-major) of MMAction2's
    ``SampleFrames``; identical in test mode (to MMAction2 ``version``'s: "1.x" or "0.x"),
    same distribution in training mode (where ``version`` makes no difference)."""
    return plan_sample_frames(total_frames, clip_len, frame_interval, num_clips,
                              test_mode, out_of_bound_opt, seed, version).indices


def dense_sample_frames(total_frames: int, clip_len: int, frame_interval: int, num_clips: int,
                        sample_range: int = 64, num_sample_positions: int = 10,
                        test_mode: bool = False, seed: RandomSource = None,
                        out_of_bound_opt: str = "loop") -> np.ndarray:
    """0-based frame indices of MMAction2's ``DenseSampleFrames`` (int64; test mode returns
    ``num_sample_positions * num_clips * clip_len`` of them, training ``num_clips * clip_len``)."""
    return plan_dense_sample_frames(total_frames, clip_len, frame_interval, num_clips, sample_range,
                                    num_sample_positions, test_mode, seed, out_of_bound_opt).indices
