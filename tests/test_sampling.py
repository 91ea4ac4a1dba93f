"""Frame sampling against MMAction2 1.2.0 and 0.x (golden fixtures from dev/make_golden_sampling.py
and dev/make_golden_sampling_0x.py, each written by that version's own code)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from i3dbench.data.sampling import (
    FrameSample,
    dense_sample_frames,
    plan_dense_sample_frames,
    plan_sample_frames,
    sample_frames,
)

GOLDEN = Path(__file__).parent / "golden" / "sampling"
META = json.loads((GOLDEN / "cases.json").read_text())
ARRAYS = dict(np.load(GOLDEN / "indices.npz"))
META_0X = json.loads((GOLDEN / "cases_0x.json").read_text())
ARRAYS_0X = dict(np.load(GOLDEN / "indices_0x.npz"))


def _call(kind: str, kwargs: dict, total: int, test_mode: bool, seed=None, version: str | None = None) -> np.ndarray:
    fn = sample_frames if kind == "uniform" else dense_sample_frames
    kw = dict(kwargs)
    if version is not None and kind == "uniform":  # dense sampling is the same in 0.x and 1.x
        kw["version"] = version
    return fn(total, kw.pop("clip_len"), kw.pop("frame_interval"), kw.pop("num_clips"),
              test_mode=test_mode, seed=seed, **kw)


@pytest.mark.parametrize("case", sorted(META["test_cases"]))
def test_test_mode_identical_for_every_length(case):
    spec = META["test_cases"][case]
    want = ARRAYS[f"test__{case}"]
    assert want.shape[0] == META["max_frames"] == 400
    got = np.stack([_call(spec["kind"], spec["kwargs"], n, True) for n in range(1, 401)])
    assert got.dtype == np.int64
    mismatched = [n for n in range(1, 401) if not np.array_equal(got[n - 1], want[n - 1])]
    assert not mismatched, f"{case}: differs from MMAction2 for total_frames {mismatched[:10]}"
    assert got.min() >= 0 and np.all(got < np.arange(1, 401)[:, None])


@pytest.mark.parametrize("case", sorted(META["train_cases"]))
def test_train_mode_same_draws_as_mmaction_global_state(case):
    """Fed a RandomState in the state MMAction2's np.random was in, the draws are identical."""
    spec = META["train_cases"][case]
    want = ARRAYS[f"train__{case}"]
    rows = []
    for n in META["train_totals"]:
        for seed in META["train_seeds"]:
            rows.append(_call(spec["kind"], spec["kwargs"], n, False, seed=np.random.RandomState(seed)))
    np.testing.assert_array_equal(np.stack(rows), want)


def _chi2_z(observed: np.ndarray, expected: np.ndarray) -> float:
    """Wilson-Hilferty z-score of Pearson's chi-square (df = bins - 1)."""
    stat = float(((observed - expected) ** 2 / expected).sum())
    k = len(observed) - 1
    return ((stat / k) ** (1 / 3) - (1 - 2 / (9 * k))) / math.sqrt(2 / (9 * k))


def test_train_offsets_uniform_per_segment():
    # 100 frames, 3 clips of 8x2: segments of (100 - 16 + 1) // 3 = 28 frames
    rng = np.random.default_rng(1234)
    draws = np.stack([plan_sample_frames(100, 8, 2, 3, seed=rng).clip_offsets for _ in range(6000)])
    seg = 28
    rel = draws - np.arange(3) * seg
    assert rel.min() == 0 and rel.max() == seg - 1
    for k in range(3):
        counts = np.bincount(rel[:, k], minlength=seg)
        assert _chi2_z(counts, np.full(seg, len(draws) / seg)) < 3.5


def test_train_offsets_sorted_when_clips_outnumber_positions():
    # 70 frames, 10 clips of 32x2: 7 start positions, drawn with replacement and sorted
    rng = np.random.default_rng(99)
    draws = np.stack([plan_sample_frames(70, 32, 2, 10, seed=rng).clip_offsets for _ in range(3000)])
    assert np.all(np.diff(draws, axis=1) >= 0)
    counts = np.bincount(draws.reshape(-1), minlength=7)
    assert len(counts) == 7
    assert _chi2_z(counts, np.full(7, draws.size / 7)) < 3.5


def test_dense_train_start_uniform_and_last_position_never_drawn():
    # 100 frames, sample_range 64: 37 positions, MMAction2 draws from the first 36
    rng = np.random.default_rng(7)
    starts = np.array([plan_dense_sample_frames(100, 32, 2, 1, seed=rng).clip_offsets[0] for _ in range(7200)])
    counts = np.bincount(starts, minlength=36)
    assert len(counts) == 36
    assert _chi2_z(counts, np.full(36, len(starts) / 36)) < 3.5


def test_seed_determinism_and_types():
    a = sample_frames(300, 32, 2, 1, seed=5)
    b = sample_frames(300, 32, 2, 1, seed=5)
    np.testing.assert_array_equal(a, b)
    assert isinstance(a, np.ndarray) and a.shape == (32,)
    plan = plan_sample_frames(300, 32, 2, 10, test_mode=True)
    assert isinstance(plan, FrameSample) and plan.clips().shape == (10, 32)
    dense = plan_dense_sample_frames(300, 32, 2, 1, num_sample_positions=10, test_mode=True)
    assert dense.num_clips == 10 and dense.indices.shape == (320,)


@pytest.mark.parametrize("bad", [dict(total_frames=0), dict(clip_len=0), dict(num_clips=-1)])
def test_bad_arguments_raise(bad):
    kw = dict(total_frames=10, clip_len=4, frame_interval=1, num_clips=1) | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        sample_frames(**kw, test_mode=True)
    with pytest.raises(ValueError, match="out_of_bound_opt"):
        sample_frames(10, 4, 1, 1, test_mode=True, out_of_bound_opt="clamp")


# --------------------------------------------------------------------------- MMAction2 0.x


@pytest.mark.parametrize("case", sorted(META_0X["test_cases"]))
def test_0x_test_mode_identical_for_every_length(case):
    spec = META_0X["test_cases"][case]
    want = ARRAYS_0X[f"test__{case}"]
    assert want.shape[0] == META_0X["max_frames"] == 400
    got = np.stack([_call(spec["kind"], spec["kwargs"], n, True, version="0.x") for n in range(1, 401)])
    mismatched = [n for n in range(1, 401) if not np.array_equal(got[n - 1], want[n - 1])]
    assert not mismatched, f"{case}: differs from MMAction2 0.x for total_frames {mismatched[:10]}"


def test_0x_and_1x_differ_exactly_where_the_two_mmaction2_differ():
    # The example: 280 frames at 32x2x10
    starts = {v: sample_frames(280, 32, 2, 10, test_mode=True, version=v).reshape(10, 32)[:, 0] for v in ("0.x", "1.x")}
    assert starts["0.x"][:4].tolist() == [10, 32, 54, 75]
    assert starts["1.x"][:4].tolist() == [0, 24, 48, 72]
    for case in sorted(set(META["test_cases"]) & set(META_0X["test_cases"])):
        old, new = ARRAYS_0X[f"test__{case}"], ARRAYS[f"test__{case}"]
        differ = [n for n in range(1, 401) if not np.array_equal(old[n - 1], new[n - 1])]
        spec = META_0X["test_cases"][case]
        ours = [n for n in range(1, 401)
                if not np.array_equal(_call(spec["kind"], spec["kwargs"], n, True, version="0.x"),
                                      _call(spec["kind"], spec["kwargs"], n, True, version="1.x"))]
        assert ours == differ, case
        # the same in both: dense sampling, 2D-style 1x1 clips, and one 32x2 clip (0.x counts one
        # interval more per clip, 64 vs 63 frames, which halves to the same centre); otherwise
        # they differ once the video is longer than a clip
        kw = spec["kwargs"]
        same = spec["kind"] == "dense" or (kw["clip_len"], kw["frame_interval"]) == (1, 1) or case == "uniform_32x2x1"
        assert (differ == []) == same, case


@pytest.mark.parametrize("case", sorted(META_0X["train_cases"]))
def test_0x_train_mode_draws_like_ours_in_either_version(case):
    # 0.x's training sampling is 1.2.0's: the same draws from the same RandomState
    spec = META_0X["train_cases"][case]
    for version in ("0.x", "1.x"):
        rows = [_call(spec["kind"], spec["kwargs"], n, False, seed=np.random.RandomState(s), version=version)
                for n in META_0X["train_totals"] for s in META_0X["train_seeds"]]
        np.testing.assert_array_equal(np.stack(rows), ARRAYS_0X[f"train__{case}"])


def test_0x_goldens_were_cross_checked_against_the_2020_code():
    # dev/make_golden_sampling_0x.py ran the same cases through loading.py of v0.24.1, the 0.x
    # head and the 2020 commits the ten rows were tested with; it stops on any disagreement
    cross = META_0X["cross_checked_loading_py"]
    assert META_0X["oracle"].startswith("mmaction2 0.24.1")
    assert set(cross) == {"v0.24.1", "0.x-head", "2020-06-12", "2020-08-26"}
    i3d = {"uniform_32x2x10", "uniform_32x2x1", "dense_32x2x1_pos10"}
    for label, check in cross.items():
        assert i3d <= set(check["cases_equal_to_wheel"]), label
        assert len(check["commit"]) == 40


def test_version_is_checked():
    with pytest.raises(ValueError, match="version"):
        sample_frames(100, 8, 2, 2, test_mode=True, version="0.24")
    plan = plan_sample_frames(100, 8, 2, 2, test_mode=True, version="0.x")
    assert plan.clip_offsets.tolist() == [21, 63]  # (100 - 16 + 1) / 2 = 42.5: int(21.25), int(63.75)
