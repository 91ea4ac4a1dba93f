"""measure.py: the published loop's structure, OOM back-off in the fast loop, memory probes, records.

Runs the smoke I3D (8 base channels, 2x3 views of 8x64x64) on CPU with a handful of videos.
Only counts, shapes and record contents are asserted, never speed.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from i3dbench import measure as M
from i3dbench.fastpath import FastConfig
from i3dbench.models import build_model
from i3dbench.zoo import get_entry

SMOKE = "smoke_i3d_tiny_video"


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models on a shared machine: one thread avoids OpenMP barrier stalls (and is faster)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Counting(nn.Module):
    """Wraps a model; records the batch size of every forward; can fake an OOM above a batch."""

    def __init__(self, inner: nn.Module, oom_above: int | None = None):
        super().__init__()
        self.inner = inner
        self.oom_above = oom_above
        self.batches: list[int] = []

    def forward(self, x):
        self.batches.append(x.shape[0])
        if self.oom_above is not None and x.shape[0] > self.oom_above:
            raise torch.OutOfMemoryError(f"CUDA out of memory (fake, batch {x.shape[0]})")
        return self.inner(x)


def test_timed_loop_skips_warmup_and_syncs_around_each_step():
    steps, syncs = [], []
    times = M.timed_loop(steps.append, 7, 3, sync=lambda: syncs.append(1), progress=False)
    assert steps == list(range(7))
    assert len(times) == 4 and all(t >= 0 for t in times)
    assert len(syncs) == 14
    with pytest.raises(ValueError, match="must exceed warmup"):
        M.timed_loop(steps.append, 3, 3, progress=False)


def test_summarize_times():
    s = M.summarize_times([1.0, 2.0, 3.0, 6.0], videos_per_iteration=2)
    assert (s.n, s.total_s, s.mean_s, s.median_s, s.min_s, s.max_s) == (4, 12.0, 3.0, 2.5, 1.0, 6.0)
    assert s.stdev_s == pytest.approx(2.160247, rel=1e-6)
    assert s.video_per_s == pytest.approx(8 / 12) and s.rel_std == pytest.approx(2.160247 / 3, rel=1e-6)
    assert M.summarize_times([2.0]).stdev_s == 0.0
    with pytest.raises(ValueError, match="no timed"):
        M.summarize_times([])


def test_default_video_counts_follow_the_published_protocol_on_cuda():
    assert M._default_counts(torch.device("cuda"), None, None) == (200, 5)
    assert M._default_counts(torch.device("cpu"), None, None) == (3, 1)
    assert M._default_counts(torch.device("cpu"), 1, None) == (1, 0)
    assert M._default_counts(torch.device("cpu"), 10, 4) == (10, 4)
    with pytest.raises(ValueError, match="larger than warmup"):
        M._default_counts(torch.device("cpu"), 2, 2)


def test_published_protocol_runs_every_video_as_one_batch_of_its_views():
    entry = get_entry(SMOKE)
    model = Counting(build_model(SMOKE).eval())
    r = M.measure_throughput(entry, protocol="published", num_videos=5, warmup=2, model=model, progress=False)
    views = entry.views_per_video
    assert views == 6
    assert model.batches == [views] * 5  # 5 videos, all views in one forward each
    assert len(r.times_s) == r.stats.n == 3 and r.warmup == 2 and r.num_videos == 5
    assert r.view_shape == (3, entry.data.clip_len, entry.test.crop_size, entry.test.crop_size)
    assert r.views_per_forward == views and r.videos_per_iteration == 1
    c = r.conditions
    assert (c["precision"], c["memory_format"], c["fold_bn"], c["compile"]) == ("fp32", "contiguous", False, False)
    assert c["input_dtype"] == "float32" and c["no_grad"] and not c["normalize_on_device"]
    m = r.metrics()
    assert m["n_timed"] == 3 and m["video_per_s"] == pytest.approx(3 / sum(r.times_s))
    # MMAction2's printout counts the last iteration twice
    assert m["video_per_s_mmaction_formula"] == pytest.approx(3 / (sum(r.times_s) + r.times_s[-1]))
    assert r.peak_memory["kind"].startswith("cpu_peak_rss")


def test_fast_protocol_backs_off_views_per_forward_on_oom():
    entry = get_entry(SMOKE)
    model = Counting(build_model(SMOKE).eval(), oom_above=2)
    r = M.measure_throughput(entry, protocol="fast", num_videos=3, warmup=1, model=model,
                             config=FastConfig(), progress=False)
    assert r.oom_backoffs == [6, 3]
    assert r.views_per_forward == 1  # 6 -> 3 -> 1 (halving, floored)
    assert r.stats.n == 2 and r.warmup == 1
    assert r.conditions["input_dtype"] == "uint8" and r.conditions["normalize_on_device"]


def test_fast_protocol_restores_the_thread_count():
    torch.set_num_threads(2)
    r = M.measure_throughput(SMOKE, protocol="fast", num_videos=2, warmup=1, model=build_model(SMOKE).eval(),
                             config=FastConfig(threads=1), progress=False)
    assert r.conditions["threads"] == 1 and torch.get_num_threads() == 2


def test_fast_protocol_batches_videos_when_asked():
    entry = get_entry(SMOKE)
    model = build_model(SMOKE).eval()
    r = M.measure_throughput(entry, protocol="fast", num_videos=6, warmup=2, model=model, batch_videos=2,
                             config=FastConfig(), progress=False)
    assert r.videos_per_iteration == 2 and r.views_per_forward == 12
    assert r.stats.n == 2 and r.warmup == 2 and r.num_videos == 6
    assert r.metrics()["videos_timed"] == 4


def test_one_chunked_video_takes_its_noise_from_the_forwards():
    entry = get_entry(SMOKE)
    r = M.measure_throughput(entry, protocol="fast", num_videos=1, warmup=0, model=build_model(SMOKE).eval(),
                             views_per_forward=2, config=FastConfig(), progress=False)
    assert r.stats.n == 1 and len(r.chunk_times_s) == 3  # 6 views in forwards of 2
    m = r.metrics()
    assert m["rel_std_basis"] == "forward" and m["rel_std"] == pytest.approx(M.summarize_times(r.chunk_times_s).rel_std)
    assert sum(r.chunk_times_s) <= r.times_s[0]


def test_peak_rss_sees_a_temporary_allocation():
    # An anonymous mapping of its own, so the pages are fresh whatever earlier tests left in
    # glibc's heap (a malloc'ed buffer may be served from freed, still resident memory).
    import mmap

    probe = M.PeakRSS().start()
    if probe.scope != "measurement":
        pytest.skip("/proc/self/clear_refs is not writable here: peak RSS cannot be reset")
    buf = mmap.mmap(-1, 64 * 2**20)
    buf.write(b"\x01" * (64 * 2**20))  # touch every page
    buf.close()
    probe.stop()
    assert probe.delta_mb >= 48


def test_cpu_tensor_peak_counts_what_a_function_allocates():
    def alloc():
        a = torch.ones(4 * 2**20 // 4)  # 4 MiB
        b = torch.ones(2 * 2**20 // 4)  # + 2 MiB live together
        del a, b
        c = torch.ones(2**20 // 4)  # 1 MiB afterwards: not the peak
        return c

    peak = M.cpu_tensor_peak(alloc)
    assert peak is not None and 6 * 2**20 <= peak < 6.5 * 2**20
    assert M.tensor_bytes(torch.ones(10), [torch.ones(5)]) == 60


def test_train_step_memory_at_the_recipe_batch():
    entry = get_entry(SMOKE)
    r = M.measure_memory(entry, device="cpu", train=True, inference=True)
    assert r.train_batch == entry.recipe.videos_per_gpu == 8 and r.train_steps == 1
    assert r.train_input == (3, entry.data.clip_len, entry.data.train_crop, entry.data.train_crop)
    assert r.train_mb is not None and r.inference_mb is not None
    assert r.train_mb > 0 and r.train_kind == "cpu_tensor_peak" and r.inference_kind.startswith("cpu_peak_rss")
    # the tensor peak holds at least the weights, the input and one copy of the gradients
    weights = M.tensor_bytes(build_model(SMOKE)) / 2**20
    assert r.train_mb > 2 * weights
    assert r.details["train"]["live_at_start_mb"] >= weights
    assert set(r.metrics()) == {"peak_memory_mb", "train_memory_mb"}


def test_bench_writes_a_record_with_every_condition(tmp_path):
    path = M.bench(SMOKE, "cpu", "fast", num_videos=3, warmup=1, records_dir=tmp_path, progress=False,
                   overrides={"precision": "fp32"})
    rec = json.loads(path.read_text())
    assert rec["kind"] == "bench" and rec["entry"] == SMOKE
    x, c, m = rec["extra"], rec["conditions"], rec["metrics"]
    assert x["protocol"] == "fast" and x["weights"] == "random"
    assert len(x["times_s"]) == m["n_timed"] == 2 and x["warmup_videos"] == 1 and x["num_videos"] == 3
    for key in ("video_per_s", "latency_ms", "latency_median_ms", "latency_std_ms", "rel_std", "peak_memory_mb",
                "train_memory_mb"):
        assert isinstance(m[key], (int, float)), key
    for key in ("precision", "memory_format", "compile", "fold_bn", "batch", "views", "views_per_forward",
                "num_threads", "input_dtype", "device_name", "torch"):
        assert key in c, key
    assert c["precision"] == "fp32" and c["fold_bn"] and c["views"] == 6 and c["batch"] == 1
    assert c["checkpoint_sha256"] is None
    assert x["memory"]["train_batch"] == 8 and x["loop_memory"]["kind"].startswith("cpu_peak_rss")
    assert x["train_memory_kind"] == "cpu_tensor_peak"
    assert x["memory_kind"] == "inference cpu_peak_rss_delta; train cpu_tensor_peak"


def test_zoo_cpu_measures_each_architecture_once_and_says_who_shares(tmp_path):
    names = ["smoke_i3d_tiny_video", "smoke_i3d_tiny_rawframes_lazy", "smoke_i3d_nl_tiny_video"]
    groups = M.group_by_architecture(names)
    assert [len(g) for g in groups.values()] == [2, 1]
    paths = M.measure_zoo_cpu(names, budget_s=600, protocol="published", num_videos=2, warmup=1,
                              train_memory=False, records_dir=tmp_path, progress=False)
    recs = {r["entry"]: r for r in (json.loads(p.read_text()) for p in paths)}
    assert set(recs) == set(names)
    a, b, nl = (recs[n] for n in names)
    assert a["metrics"]["video_per_s"] == b["metrics"]["video_per_s"]  # one measurement, shared
    assert a["extra"]["times_s"] == b["extra"]["times_s"]
    assert a["extra"]["shared_measurement"]["measured_with_entry"] == names[0]
    assert b["extra"]["shared_measurement"]["entries_sharing"] == names[:2]
    assert nl["extra"]["shared_measurement"]["entries_sharing"] == names[2:]
    assert "nl-embedded_gaussian" in nl["extra"]["shared_measurement"]["group"]
    assert all(r["extra"]["skipped"] == [] for r in recs.values())


def test_zoo_cpu_out_of_budget_records_what_was_skipped(tmp_path):
    paths = M.measure_zoo_cpu(["smoke_i3d_tiny_video"], budget_s=0, records_dir=tmp_path, progress=False)
    rec = json.loads(paths[0].read_text())
    assert rec["metrics"] == {}
    assert any("throughput" in s for s in rec["extra"]["skipped"])
    assert any("train memory" in s for s in rec["extra"]["skipped"])
