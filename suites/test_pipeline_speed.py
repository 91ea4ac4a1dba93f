"""Data pipeline speed: i3dbench's test pipeline vs MMAction2 1.2.0's, side by side in one run.

    pytest suites/test_pipeline_speed.py --benchmark -s

Per video, both sides do the published test protocol of the short-side-256 video entry:
decode + SampleFrames(32x2, 10 clips, test mode) + Resize((-1, 256)) + ThreeCrop(256) +
FormatShape (30 views of 3 x 32 x 256 x 256), and, where ``normalise`` is on, the float
normalisation (MMAction2: its ActionDataPreprocessor; i3dbench: ``transforms.normalize``).
MMAction2 runs its own transforms (DecordInit, SampleFrames, DecordDecode, Resize, ThreeCrop,
FormatShape, PackActionInputs) on the same files.

Rounds alternate: each i3dbench round follows one MMAction2 round (both timed with
``time.perf_counter``, one untimed warm-up round each first), so both see the same machine
load. The ratio (MMAction2 median / i3dbench median) and both sides' CPU time go, with the
conditions and the method, to ``<run>/perf/pipeline_speed-<videos>-<normalise>.json``.
Skipped with --quick (minutes), and without MMAction2 (the reference).

Both run with one torch thread, as each DataLoader worker does (torch sets one thread per
worker), which also keeps the figures steady on a shared machine.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest
import torch
from suite_support import SESSION_RESULTS, write_perf

from i3dbench.records import collect_conditions

ENTRY = "i3d_r50_video_32x2x1_100e_kinetics400_rgb"
VIDEOS_PER_ROUND = 4
ROUNDS = 3
pytestmark = [pytest.mark.heavy, pytest.mark.perf]


def _mmaction_or_skip():
    try:
        from mmaction.models.data_preprocessors import ActionDataPreprocessor
        from mmaction.utils import register_all_modules
        from mmengine.dataset import Compose
    except Exception as err:  # ImportError, or a broken install
        pytest.skip(f"MMAction2 is not importable ({type(err).__name__}: {err}); it is the reference to compare against")
    register_all_modules()
    return Compose, ActionDataPreprocessor


def _video_set(kind: str) -> tuple[Path, Path]:
    """(data_root, ann_file) of the short-side-256 videos to time."""
    from i3dbench.data import synthetic

    if kind == "synthetic":  # the project's default synthetic set (40-frame videos)
        return synthetic.synthetic_paths(synthetic.ensure_synthetic(), "videos", "short256", "val")
    # Kinetics-length clips: 10 s at 25 fps, so the 10 test clips spread over the video as on K400
    root = synthetic.default_synthetic_root().with_name("synthetic_bench_250f")
    if not (root / "synthetic.json").exists():
        synthetic.generate_synthetic(root, seed=1, videos_per_class=1, val_videos_per_class=1, num_frames=250,
                                     sizes=("short256",), formats=("videos",), classes=synthetic.CLASSES[:VIDEOS_PER_ROUND],
                                     workers=2, progress=False)
    return synthetic.synthetic_paths(root, "videos", "short256", "val")


@pytest.mark.parametrize(("videos", "normalise"), [("k400_length", True), ("k400_length", False), ("synthetic", True)])
def test_test_pipeline_vs_mmaction(capsys, run_dir, videos, normalise):
    Compose, ActionDataPreprocessor = _mmaction_or_skip()
    from i3dbench.data.dataset import build_dataset
    from i3dbench.zoo import get_entry

    entry = get_entry(ENTRY)
    data_root, ann_file = _video_set(videos)
    ds = build_dataset(entry, "test", data_root, ann_file, decoder="decord", normalize=normalise)
    items = range(min(VIDEOS_PER_ROUND, len(ds)))
    d = entry.data
    mm_pipeline = Compose([
        dict(type="DecordInit"),
        dict(type="SampleFrames", clip_len=d.clip_len, frame_interval=d.frame_interval,
             num_clips=entry.test.num_clips, test_mode=True),
        dict(type="DecordDecode"),
        dict(type="Resize", scale=(-1, d.resize_short)),
        dict(type="ThreeCrop", crop_size=entry.test.crop_size),
        dict(type="FormatShape", input_format="NCTHW"),
        dict(type="PackActionInputs"),
    ])
    preprocessor = ActionDataPreprocessor(mean=list(d.mean), std=list(d.std), format_shape="NCTHW")

    def mmaction_video(i):
        packed = mm_pipeline(dict(filename=str(ds.path(i)), label=int(ds.records[i].label), start_index=0,
                                  modality="RGB"))
        if not normalise:
            return packed["inputs"]
        return preprocessor(dict(inputs=[packed["inputs"]], data_samples=[packed["data_samples"]]))["inputs"][0]

    # same output before timing anything: shapes equal, pixels equal (decord, same-size resize)
    ours0, mm0 = ds[0][0], mmaction_video(0)
    assert ours0.shape == mm0.shape == (entry.views_per_video, 3, d.clip_len, 256, 256)
    assert torch.equal(ours0, mm0.to(ours0.dtype)), "pipelines disagree: the comparison would be meaningless"

    mm_wall, mm_cpu, our_wall, our_cpu = [], [], [], []

    def mmaction_round():
        w, c = time.perf_counter(), time.process_time()
        for i in items:
            mmaction_video(i)
        mm_wall.append(time.perf_counter() - w)
        mm_cpu.append(time.process_time() - c)

    def our_round():
        w, c = time.perf_counter(), time.process_time()
        for i in items:
            ds[i]
        our_wall.append(time.perf_counter() - w)
        our_cpu.append(time.process_time() - c)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    conditions = collect_conditions("cpu", views=entry.views_per_video, decoder="decord")  # as measured: 1 thread
    try:
        for _ in range(ROUNDS + 1):  # round 0 of each side is the warm-up
            mmaction_round()
            our_round()
    finally:
        torch.set_num_threads(threads)
    ours = statistics.median(our_wall[1:])
    mm = statistics.median(mm_wall[1:])
    ratio = mm / ours
    cpu_ratio = statistics.median(mm_cpu[1:]) / statistics.median(our_cpu[1:])
    results = dict(
        videos=videos, normalise=normalise, videos_per_round=len(items), entry=ENTRY,
        views_per_video=entry.views_per_video, torch_threads=1,
        mmaction_median_s=mm, i3dbench_median_s=ours, mmaction_rounds_s=mm_wall[1:], i3dbench_rounds_s=our_wall[1:],
        ratio_vs_mmaction=ratio, cpu_time_ratio_vs_mmaction=cpu_ratio,
        i3dbench_videos_per_s=len(items) / ours, mmaction_videos_per_s=len(items) / mm,
    )
    SESSION_RESULTS.setdefault("pipeline", []).append(results)
    method = {
        "name": "pipeline_speed",
        "protocol": "published test pipeline of the entry: decode + SampleFrames + Resize + ThreeCrop + FormatShape"
                    + (" + normalisation" if normalise else ""),
        "compared": "MMAction2's own transforms vs i3dbench's dataset, same files, pixel-identical output checked first",
        "rounds": ROUNDS, "warmup_rounds": 1, "videos_per_round": len(items),
        "interleaving": "MMAction2 round, then i3dbench round, repeated",
        "statistic": "ratio of median round wall times (time.perf_counter); CPU time from time.process_time",
        "torch_threads": 1,
    }
    write_perf(run_dir, f"pipeline_speed-{videos}-{'normalise' if normalise else 'uint8'}", results,
               conditions=conditions, method=method)
    with capsys.disabled():
        print(f"\n[pipeline speed] {videos}, normalise={normalise}: MMAction2 {len(items) / mm:.2f} video/s, "
              f"i3dbench {len(items) / ours:.2f} video/s -> {ratio:.2f}x (CPU time {cpu_ratio:.2f}x; "
              "goal >= 2x; 1 torch thread)")
