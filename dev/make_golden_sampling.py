"""Write tests/golden/sampling/: MMAction2 1.2.0's SampleFrames / DenseSampleFrames indices.

Run once with MMAction2 installed (development oracle; the tests never import it):

    python3 dev/make_golden_sampling.py

Test mode: every total_frames 1..400 for each case, stored as one int16 array per case
(rows: total_frames - 1; MMAction2's indices minus its start_index, so 0-based).
Training mode: a few (case, total_frames, seed) triples with MMAction2 drawing from
``np.random.seed(seed)``; ``i3dbench`` fed ``np.random.RandomState(seed)`` must draw the same.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from mmaction.datasets.transforms.loading import DenseSampleFrames, SampleFrames

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "sampling"
MAX_FRAMES = 400

# name -> (kind, kwargs)
TEST_CASES = {
    "uniform_32x2x10": ("uniform", dict(clip_len=32, frame_interval=2, num_clips=10)),
    "uniform_32x2x1": ("uniform", dict(clip_len=32, frame_interval=2, num_clips=1)),
    "uniform_8x8x10": ("uniform", dict(clip_len=8, frame_interval=8, num_clips=10)),
    "uniform_16x4x1": ("uniform", dict(clip_len=16, frame_interval=4, num_clips=1)),
    "uniform_32x2x10_repeat_last": ("uniform", dict(clip_len=32, frame_interval=2, num_clips=10,
                                                    out_of_bound_opt="repeat_last")),
    "uniform_16x4x1_repeat_last": ("uniform", dict(clip_len=16, frame_interval=4, num_clips=1,
                                                   out_of_bound_opt="repeat_last")),
    "uniform_1x1x8": ("uniform", dict(clip_len=1, frame_interval=1, num_clips=8)),
    "uniform_1x4x3": ("uniform", dict(clip_len=1, frame_interval=4, num_clips=3)),
    "uniform_8x4x2": ("uniform", dict(clip_len=8, frame_interval=4, num_clips=2)),  # smoke zoo test
    "dense_32x2x1_pos10": ("dense", dict(clip_len=32, frame_interval=2, num_clips=1,
                                         sample_range=64, num_sample_positions=10)),
    "dense_4x2x2_pos3_range16": ("dense", dict(clip_len=4, frame_interval=2, num_clips=2,
                                               sample_range=16, num_sample_positions=3)),
}

# training mode: (case kwargs, total_frames values, seeds)
TRAIN_CASES = {
    "uniform_32x2x1": ("uniform", dict(clip_len=32, frame_interval=2, num_clips=1)),
    "uniform_8x8x10": ("uniform", dict(clip_len=8, frame_interval=8, num_clips=10)),
    "uniform_4x2x3": ("uniform", dict(clip_len=4, frame_interval=2, num_clips=3)),
    "uniform_32x2x10_repeat_last": ("uniform", dict(clip_len=32, frame_interval=2, num_clips=10,
                                                    out_of_bound_opt="repeat_last")),
    "dense_32x2x1": ("dense", dict(clip_len=32, frame_interval=2, num_clips=1)),
    "dense_4x2x2_range16": ("dense", dict(clip_len=4, frame_interval=2, num_clips=2, sample_range=16)),
}
TRAIN_TOTALS = (1, 5, 12, 30, 63, 64, 65, 70, 100, 250, 400)
TRAIN_SEEDS = (0, 1, 2)


def build(kind: str, kwargs: dict, test_mode: bool):
    cls = SampleFrames if kind == "uniform" else DenseSampleFrames
    return cls(test_mode=test_mode, **kwargs)


def run(transform, total_frames: int, start_index: int = 0) -> np.ndarray:
    res = transform(dict(total_frames=total_frames, start_index=start_index))
    return res["frame_inds"].astype(np.int64) - start_index


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name, (kind, kwargs) in TEST_CASES.items():
        t = build(kind, kwargs, test_mode=True)
        rows = [run(t, n, start_index=1) for n in range(1, MAX_FRAMES + 1)]
        assert len({len(r) for r in rows}) == 1
        arrays[f"test__{name}"] = np.stack(rows).astype(np.int16)
    train_meta = {}
    for name, (kind, kwargs) in TRAIN_CASES.items():
        t = build(kind, kwargs, test_mode=False)
        rows = []
        for n in TRAIN_TOTALS:
            for seed in TRAIN_SEEDS:
                np.random.seed(seed)
                rows.append(run(t, n))
        arrays[f"train__{name}"] = np.stack(rows).astype(np.int16)
        train_meta[name] = dict(kind=kind, kwargs=kwargs)
    np.savez_compressed(OUT / "indices.npz", **arrays)
    meta = dict(
        generator="dev/make_golden_sampling.py",
        mmaction=__import__("mmaction").__version__,
        max_frames=MAX_FRAMES,
        test_cases={k: dict(kind=v[0], kwargs=v[1]) for k, v in TEST_CASES.items()},
        train_cases=train_meta,
        train_totals=list(TRAIN_TOTALS),
        train_seeds=list(TRAIN_SEEDS),
        layout="test__<case>: row n-1 = indices for total_frames n; "
               "train__<case>: rows in (total, seed) order; all 0-based",
    )
    (OUT / "cases.json").write_text(json.dumps(meta, indent=1) + "\n")
    size = (OUT / "indices.npz").stat().st_size
    print(f"wrote {OUT}/indices.npz ({size / 1024:.0f} KiB), {len(arrays)} arrays")


if __name__ == "__main__":
    main()
