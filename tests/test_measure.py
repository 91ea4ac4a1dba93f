"""timing.py, memory.py and measure.py: loop budgets, protocols, memory kinds, bench records.

Runs the smoke I3D (2x3 views of 8x48x48) on CPU with small budgets. Only counts, shapes,
budgets and record contents are asserted, never speed (speed ratios live in suites/).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from torch import nn

from i3dbench import measure as M
from i3dbench import memory as Mem
from i3dbench import timing as T
from i3dbench.errors import UsageError
from i3dbench.fastpath import FastConfig
from i3dbench.models import build_model
from i3dbench.zoo import get_entry

SMOKE = "smoke_i3d_tiny_video"
TINY = T.LoopBudget(warmup_iterations=1, warmup_s=0.0, min_iterations=3, min_seconds=0.0)


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


# --------------------------------------------------------------------------- loops


def test_timed_loop_meets_both_minimums_and_syncs_around_each_step():
    steps, syncs = [], []
    warm, timed, cut = T.timed_loop(steps.append, T.LoopBudget(2, 0.0, 4, 0.0), sync=lambda: syncs.append(1),
                                    progress=False)
    assert (len(warm), len(timed), cut) == (2, 4, False) and steps == list(range(6)) and len(syncs) == 12
    # A time minimum keeps it going past the iteration minimum ("whichever is longer").
    import time

    _, timed, _ = T.timed_loop(lambda i: time.sleep(0.01), T.LoopBudget(0, 0.0, 2, 0.15), progress=False)
    assert len(timed) >= 10
    _, timed, cut = T.timed_loop(lambda i: time.sleep(0.01), T.LoopBudget(0, 0.0, 1000, 0.0, max_seconds=0.05),
                                 progress=False)
    assert cut and len(timed) < 1000


@pytest.mark.parametrize("kw, msg", [({"min_iterations": 0}, "min_iterations"), ({"warmup_iterations": -1}, "warmup"),
                                     ({"min_seconds": float("nan")}, "min_seconds"), ({"max_seconds": 0}, "max_seconds")])
def test_loop_budget_refuses_impossible_values(kw, msg):
    with pytest.raises(UsageError, match=msg):
        T.LoopBudget(**kw)


def test_timing_stats_are_median_based():
    s = T.TimingStats((1.0, 2.0, 3.0, 100.0))  # one hiccup does not move the median much
    assert s.median_s == 2.5 and s.n == 4 and s.total_s == 106.0
    assert s.spread == pytest.approx((27.25 - 1.75) / 2.5)  # IQR / median, inclusive quartiles
    assert T.TimingStats((2.0,)).spread == 0.0


# --------------------------------------------------------------------------- protocols


def test_published_protocol_runs_every_video_as_one_batch_of_its_views():
    entry = get_entry(SMOKE)
    model = Counting(build_model(SMOKE).eval())
    r = T.measure_throughput(entry, protocol="published", budget=T.LoopBudget(2, 0.0, 3, 0.0), model=model,
                             progress=False)
    views = entry.views_per_video
    assert views == 6
    assert model.batches == [views] * 5  # 2 warm-up + 3 timed videos, all views in one forward each
    assert len(r.times_s) == 3 and len(r.warmup_times_s) == 2
    assert r.view_shape == (3, entry.data.clip_len, entry.test.crop_size, entry.test.crop_size)
    assert r.views_per_forward == r.views_per_iteration == views and r.videos_per_iteration == 1
    c = r.conditions
    assert (c["precision"], c["memory_format"], c["fold_bn"], c["compile"]) == ("fp32", "contiguous", False, False)
    assert c["input_dtype"] == "float32" and c["no_grad"] and not c["normalize_on_device"]
    m = r.metrics()
    assert m["n_timed"] == 3 and m["video_per_s"] == pytest.approx(1 / r.stats.median_s)
    meth = r.method()
    assert meth["protocol"] == "published" and meth["statistic"] == "median iteration time"
    assert meth["views_per_iteration"] == 6 and meth["budget"]["min_iterations"] == 3


def test_cuda_published_budget_is_mmaction2s_200_videos_5_untimed():
    b = T.default_budget(torch.device("cuda"), "published")
    assert (b.warmup_iterations, b.min_iterations, b.min_seconds) == (5, 195, 0.0)
    cpu = T.default_budget(torch.device("cpu"), "published")
    assert cpu.min_iterations >= 20 and cpu.min_seconds >= 5.0


def test_fast_protocol_backs_off_views_per_forward_on_oom():
    model = Counting(build_model(SMOKE).eval(), oom_above=2)
    r = T.measure_throughput(SMOKE, protocol="fast", budget=TINY, model=model, config=FastConfig(), progress=False)
    assert r.oom_backoffs == [6, 3]
    assert r.views_per_forward == r.views_per_iteration == 1  # 6 -> 3 -> 1 (halving, floored)
    assert r.videos_per_iteration == pytest.approx(1 / 6)
    assert r.metrics()["video_per_s"] == pytest.approx((1 / 6) / r.stats.median_s)
    assert r.conditions["input_dtype"] == "uint8" and r.conditions["normalize_on_device"]


def test_fast_protocol_restores_the_thread_count():
    torch.set_num_threads(2)
    r = T.measure_throughput(SMOKE, protocol="fast", budget=TINY, model=build_model(SMOKE).eval(),
                             config=FastConfig(threads=1), progress=False)
    assert r.conditions["threads"] == 1 and torch.get_num_threads() == 2


def test_a_measurement_leaves_the_thread_count_as_it_found_it():
    torch.set_num_threads(2)
    r = T.measure_throughput(SMOKE, protocol="fast", budget=TINY, model=build_model(SMOKE).eval(),
                             config=FastConfig(threads=1), progress=False)
    assert torch.get_num_threads() == 2
    M.inference_memory(r)  # runs the 1-thread FastModel once more
    assert torch.get_num_threads() == 2


def test_fast_protocol_batches_videos_when_asked():
    r = T.measure_throughput(SMOKE, protocol="fast", budget=TINY, model=build_model(SMOKE).eval(), batch_videos=2,
                             config=FastConfig(), progress=False)
    assert r.videos_per_iteration == 2 and r.views_per_forward == 12 and r.views_per_iteration == 12


def test_fast_autotune_includes_the_published_configuration(monkeypatch):
    T._AUTOTUNED.clear()
    seen = {}

    def fake_autotune(model, sample, candidates, **kw):
        seen["candidates"] = candidates
        return candidates[0], {"fp32@1": 0.01}

    monkeypatch.setattr(T, "autotune", fake_autotune)
    r = T.measure_throughput(SMOKE, protocol="fast", budget=TINY, model=build_model(SMOKE).eval(), progress=False)
    from i3dbench.fastpath import published_config

    assert seen["candidates"][0] == published_config()
    assert r.conditions["autotune"]["winner_is_published"] is True
    assert "no fast-path lever beat the published configuration" in r.conditions["fast_note"]
    T._AUTOTUNED.clear()


def test_ratio_note_says_why_fast_lost():
    def fake(median, protocol, note=None):
        r = T.ThroughputResult(SMOKE, "cpu", protocol, 6, 6, 6, (3, 8, 48, 48), [median] * 3, [], TINY, False,
                               {"fast_note": note} if note else {})
        return r

    assert T.ratio_note(fake(0.1, "fast"), fake(0.2, "published"))["note"] is None
    slower = T.ratio_note(fake(0.2, "fast"), fake(0.1, "published"))
    assert slower["fast_over_published"] == pytest.approx(0.5) and "slower than published" in slower["note"]


def test_bad_arguments_are_usage_errors():
    with pytest.raises(UsageError, match="protocol"):
        T.measure_throughput(SMOKE, protocol="turbo", budget=TINY, progress=False)
    with pytest.raises(UsageError, match="views-per-forward"):
        T.measure_throughput(SMOKE, protocol="fast", budget=TINY, views_per_forward=0, progress=False)


# --------------------------------------------------------------------------- memory


def test_cpu_tensor_peak_counts_what_a_function_allocates():
    def alloc():
        a = torch.ones(4 * 2**20 // 4)  # 4 MiB
        b = torch.ones(2 * 2**20 // 4)  # + 2 MiB live together
        del a, b
        c = torch.ones(2**20 // 4)  # 1 MiB afterwards: not the peak
        return c

    peak = Mem.cpu_tensor_peak(alloc)
    assert peak is not None and 6 * 2**20 <= peak < 6.5 * 2**20
    assert Mem.tensor_bytes(torch.ones(10), [torch.ones(5)]) == 60
    got = Mem.peak_of(alloc, torch.device("cpu"), live=(torch.ones(2**20 // 4),))
    assert got["kind"] == "cpu_tensor_peak" and 7.0 <= got["peak_mb"] < 7.6


def test_the_profilers_usdt_lines_are_silenced_and_other_stderr_kept():
    script = textwrap.dedent("""
        import os, sys, torch
        from i3dbench.memory import cpu_tensor_peak
        def fn():
            os.write(2, b"a real warning\\n")
            return torch.ones(1000)
        cpu_tensor_peak(fn)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=os.getcwd()))
    assert out.returncode == 0, out.stderr
    assert "USDT" not in out.stderr and "profiler_start" not in out.stderr
    assert "a real warning" in out.stderr


def test_memory_is_the_same_whatever_ran_before():
    # Peak RSS depended on run order (0 and 7 MB for the same model); tensor peaks do not.
    first = Mem.measure_train_memory(SMOKE)
    _ = [torch.ones(2**22) for _ in range(8)]  # churn the allocator
    del _
    second = Mem.measure_train_memory(SMOKE)
    assert first.peak_mb == second.peak_mb and first.kind == second.kind == "cpu_tensor_peak"


def test_train_step_memory_at_the_recipe_batch():
    entry = get_entry(SMOKE)
    r = Mem.measure_train_memory(entry)
    assert r.batch == entry.recipe.videos_per_gpu == 8 and r.steps == 1
    assert r.input_shape == (3, entry.data.clip_len, entry.data.train_crop, entry.data.train_crop)
    # the tensor peak holds at least the weights, the input and one copy of the gradients
    weights = Mem.tensor_bytes(build_model(SMOKE)) / 2**20
    assert r.peak_mb > 2 * weights and r.details["live_at_start_mb"] >= weights


# --------------------------------------------------------------------------- records


def test_bench_writes_a_record_with_every_condition(tmp_path):
    path = M.bench(SMOKE, "cpu", "fast", budget=TINY, records_dir=tmp_path, progress=False,
                   overrides={"precision": "fp32"})
    rec = json.loads(path.read_text())
    assert rec["kind"] == "bench" and rec["entry"] == SMOKE and rec["obtained"]["how"] == "computed"
    x, c, m, meth = rec["extra"], rec["conditions"], rec["metrics"], rec["method"]
    assert meth["protocol"] == "fast" and meth["weights"] == "random" and meth["name"] == "timed_loop"
    assert len(x["times_s"]) == m["n_timed"] == 3 and len(x["warmup_times_s"]) == 1
    for key in ("video_per_s", "latency_median_ms", "spread", "inference_memory_mb", "train_memory_mb"):
        assert isinstance(m[key], (int, float)), key
    for key in ("precision", "memory_format", "compile", "fold_bn", "batch", "views", "views_per_forward",
                "num_threads", "input_dtype", "device_name", "device_class", "torch", "code"):
        assert key in c, key
    assert c["precision"] == "fp32" and c["fold_bn"] and c["views"] == 6 and c["batch"] == 1
    assert c["checkpoint_sha256"] is None
    assert c["inference_memory_kind"] == c["train_memory_kind"] == "cpu_tensor_peak"
    assert "batch 8" in meth["train_memory"] and "one more iteration" in meth["inference_memory"]
    # the machine's speed alongside: one reference-workload time per timed iteration, named
    assert len(x["reference_times_s"]) == 3 and all(t > 0 for t in x["reference_times_s"])
    assert meth["reference_kernel"].startswith("conv3d fp32")


def test_the_reference_workload_runs_after_every_timed_iteration_and_not_in_the_timed_region():
    order = []

    class Ref:
        def __call__(self, keep=True):
            order.append("ref" if keep else "ref-warm")

    _, timed, _ = T.timed_loop(lambda i: order.append("step"), T.LoopBudget(1, 0.0, 3, 0.0), progress=False,
                               reference=Ref())
    assert order == ["step", "ref-warm"] + ["step", "ref"] * 3 and len(timed) == 3
    # A slow reference does not lengthen the iterations' times.
    _, timed, _ = T.timed_loop(lambda i: None, T.LoopBudget(0, 0.0, 3, 0.0), progress=False,
                               reference=lambda keep=True: time.sleep(0.05))
    assert max(timed) < 0.05


def test_bench_pair_measures_both_protocols_and_compares_them(tmp_path):
    paths = M.bench_pair(SMOKE, "cpu", budget=TINY, records_dir=tmp_path, progress=False, train_memory=False)
    pub, fast = (json.loads(p.read_text()) for p in paths)
    assert (pub["method"]["protocol"], fast["method"]["protocol"]) == ("published", "fast")
    vs = fast["extra"]["vs_published"]
    assert vs["published_video_per_s"] == pytest.approx(pub["metrics"]["video_per_s"])
    assert vs["fast_over_published"] == pytest.approx(fast["metrics"]["video_per_s"] / pub["metrics"]["video_per_s"])
    assert (vs["note"] is None) == (vs["fast_over_published"] >= 1.0)


def test_bench_pair_measures_a_twin_in_the_same_interleaved_loop(tmp_path):
    from i3dbench.records import load_records

    main_dir, twin_dir = tmp_path / "main", tmp_path / "twin"
    paths = M.bench_pair(SMOKE, "cpu", budget=TINY, records_dir=main_dir, progress=False, train_memory=False,
                         twin_dir=twin_dir)
    main, twin = load_records(main_dir), load_records(twin_dir)
    assert sorted(p.name for p in paths) == sorted(r["_file"] for r in main)
    assert [r["method"]["protocol"] for r in main] == [r["method"]["protocol"] for r in twin] == ["published", "fast"]
    for a, b in zip(main, twin):
        assert a["method"]["interleaved_with"] == [str(twin_dir)] and b["method"]["interleaved_with"] == [str(main_dir)]
        assert len(a["extra"]["times_s"]) >= 3 and len(b["extra"]["times_s"]) >= 3
    assert twin[1]["extra"]["vs_published"]["published_video_per_s"] == pytest.approx(twin[0]["metrics"]["video_per_s"])


def test_interleaved_iterations_take_turns():
    calls = []

    class Tagged(nn.Module):
        def __init__(self, tag):
            super().__init__()
            self.tag, self.inner = tag, build_model(SMOKE).eval()

        def forward(self, x):
            calls.append(self.tag)
            return self.inner(x)

    res = T.measure_interleaved(SMOKE, {"a": Tagged("a"), "b": Tagged("b"), "c": Tagged("c")}, budget=TINY,
                                progress=False)
    assert {n: len(r.times_s) for n, r in res.items()} == {"a": 3, "b": 3, "c": 3}
    timed = calls[-9:]
    assert timed[:3] == ["a", "b", "c"] or sorted(timed[:3]) == ["a", "b", "c"]  # one of each per round
    assert all(sorted(timed[i:i + 3]) == ["a", "b", "c"] for i in (0, 3, 6))
    assert len({tuple(timed[i:i + 3]) for i in (0, 3, 6)}) > 1  # the order rotates
    # one reference time per round, the same for every model (their machine was the same)
    refs = [r.reference_times_s for r in res.values()]
    assert len(refs[0]) == 3 and refs[0] == refs[1] == refs[2]


def test_zoo_cpu_measures_each_architecture_once_and_says_who_shares(tmp_path):
    names = ["smoke_i3d_tiny_video", "smoke_i3d_tiny_rawframes_lazy", "smoke_i3d_nl_tiny_video"]
    groups = M.group_by_architecture(names)
    assert [len(g) for g in groups.values()] == [2, 1]
    paths = M.measure_zoo_cpu(names, budget_s=600, train_memory=False, records_dir=tmp_path, progress=False)
    recs = {r["entry"]: r for r in (json.loads(p.read_text()) for p in paths)}
    assert set(recs) == set(names)
    a, b, nl = (recs[n] for n in names)
    assert a["metrics"]["video_per_s"] == b["metrics"]["video_per_s"]  # one measurement, shared
    assert a["extra"]["times_s"] == b["extra"]["times_s"]
    assert a["measurement"]["id"] == b["measurement"]["id"] != nl["measurement"]["id"]
    assert a["measurement"]["measured_entry"] == names[0] and b["measurement"]["shared_by"] == names[:2]
    assert nl["measurement"]["shared_by"] == names[2:]
    assert "nl-embedded_gaussian" in nl["measurement"]["group"]
    assert all(r["extra"]["skipped"] == [] for r in recs.values())


def test_zoo_cpu_out_of_budget_records_what_was_skipped(tmp_path):
    paths = M.measure_zoo_cpu(["smoke_i3d_tiny_video"], budget_s=0, records_dir=tmp_path, progress=False)
    rec = json.loads(paths[0].read_text())
    assert rec["metrics"] == {}
    assert any("throughput" in s for s in rec["extra"]["skipped"])
    assert any("train memory" in s for s in rec["extra"]["skipped"])
