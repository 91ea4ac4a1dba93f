"""test_throughput[entry]: inference video/s under MMAction2's benchmark protocol (heavy suite).

Per video: its test views (10 clips x 3 crops = 30 for K400 entries) as one batch of
normalised float32 on the host -> device copy -> forward -> ``average_clips`` -> ``.cpu()``,
synchronised, random weights, fp32, no conv-BN fusion (``reference/mmaction2_0x_i3d.md`` §4).
pytest-benchmark times each video (one round = one video); its machine_info names the GPU
and ``extra_info`` carries video/s. Counts: CUDA 200 videos with the first 5 as warm-up (as
MMAction2); CPU: the measure module's budget for full-size entries (a video is tens of
seconds on 2 cores; one entry per architecture, the others share its numbers) and 30 for
the tiny smoke entries. A ``bench`` record (protocol ``published``) is written per entry.
On CUDA the published video/s (where the table has one) must hold, by the gate's rule.
"""

from __future__ import annotations

import math

import pytest
import torch

from i3dbench import measure
from i3dbench.gate import speed_check
from i3dbench.metrics import average_views
from i3dbench.models import build_model
from i3dbench.records import collect_conditions, make_record, write_record

pytestmark = pytest.mark.heavy
_MEASURED: dict = {}  # CPU: architecture key -> the entry measured for it in this session


def _counts(entry, dev: torch.device) -> tuple[int, int]:
    if dev.type == "cuda":
        return measure.PUBLISHED_VIDEOS, measure.PUBLISHED_WARMUP
    if entry.dataset == "synthetic":
        return 30, 3
    return measure.CPU_VIDEOS, measure.CPU_WARMUP


def _once_per_architecture(entry, dev: torch.device) -> None:
    if dev.type != "cpu" or entry.dataset == "synthetic":
        return
    key = measure.architecture_key(entry)
    if key in _MEASURED:
        pytest.skip(f"CPU budget: same architecture and input shapes as {_MEASURED[key]}, measured there "
                    "(`i3dbench run` records the shared numbers for every entry)")
    _MEASURED[key] = entry.name


def test_throughput(zoo_entry, device, benchmark, records_dir, written_records):
    e, dev = zoo_entry, torch.device(device)
    _once_per_architecture(e, dev)
    n_videos, warmup = _counts(e, dev)
    views = e.views_per_video
    shape = (3, e.data.clip_len, e.test.crop_size, e.test.crop_size)
    torch.manual_seed(0)
    model = build_model(e).to(dev).eval()
    x = torch.randn((views,) + shape, generator=torch.Generator().manual_seed(0))
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)

    def one_video():
        sync()
        with torch.no_grad():
            scores = average_views(model(x.to(dev)), views, e.test.average_clips).cpu()
        sync()
        return scores

    probe = measure.MemoryProbe(dev).start()
    benchmark.pedantic(one_video, rounds=n_videos - warmup, warmup_rounds=warmup, iterations=1)
    memory = probe.stop()
    if benchmark.stats is None:
        pytest.skip("pytest-benchmark timing is disabled (--benchmark-disable)")
    times = list(benchmark.stats.stats.data)

    tp = measure.ThroughputResult(
        entry=e.name, device=str(dev), protocol="published", num_videos=n_videos, warmup=warmup,
        videos_per_iteration=1, views_per_video=views, views_per_forward=views, view_shape=shape, times_s=times,
        conditions={}, peak_memory=memory,
    )
    metrics = tp.metrics()
    cond = collect_conditions(dev, precision="fp32", batch=1, views=views)
    extra = {"protocol": "published", "weights": "random", "timer": "pytest-benchmark", "times_s": times,
             "num_videos": n_videos, "warmup_videos": warmup, "memory_kind": memory["kind"], "loop_memory": memory}
    written_records.append(write_record(make_record(e.name, "bench", metrics, cond, extra), records_dir))
    benchmark.extra_info.update(entry=e.name, device=cond["device_name"], video_per_s=metrics["video_per_s"],
                                rel_std=metrics["rel_std"], views_per_video=views, peak_memory_mb=metrics["peak_memory_mb"])

    assert math.isfinite(metrics["video_per_s"]) and metrics["video_per_s"] > 0
    if dev.type == "cuda" and e.published.video_per_s:
        check = speed_check(e, (e.name, "bench", cond["device_name"], "published"), metrics["video_per_s"],
                            e.published.video_per_s, metrics["rel_std"], "published")
        assert check.status != "REGRESSED", f"{e.name}: {check.measured:.2f} video/s is {check.change} of the published " \
                                            f"{check.reference} (allowed {check.allowed})"


def test_gate_is_quiet_on_reruns(device, tmp_path, pytestconfig):
    """The same benchmark run 6 times: gating reruns 2-6 against run 1 raises no alarm.

    Checks that the gate's noise-aware speed threshold fits this machine's run-to-run
    variation (the records live in a temporary folder; nothing is added to results/).
    """
    from i3dbench.gate import run_gate
    from i3dbench.zoo import get_entry

    dev = torch.device(device)
    name = "i3d_r50_32x2x1_100e_kinetics400_rgb" if dev.type == "cuda" else "smoke_i3d_tiny_video"
    entry = get_entry(name)
    runs = []
    for i in range(6):
        out = tmp_path / f"run{i}"
        measure.bench(entry, device=device, protocol="published", num_videos=None if dev.type == "cuda" else 25,
                      warmup=None if dev.type == "cuda" else 3, memory=False, records_dir=out, progress=False)
        runs.append(out)
    alarms = []
    for out in runs[1:]:
        res = run_gate(out, baseline=runs[0])
        assert res.exit_code in (0, 1), res.problems
        alarms += [f"{out.name}: {c.metric} {c.change} (allowed {c.allowed})" for c in res.regressions]
    assert not alarms, f"false alarms on identical reruns: {alarms}"
