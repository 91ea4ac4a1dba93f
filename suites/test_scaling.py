"""Scale of cost (issue 7 goal 4): eval time vs videos, views and clip length; memory vs batch.

    pytest suites/test_scaling.py --benchmark -s

On the smoke I3D (8 base channels, random weights) so that the whole file takes about a
minute on 2 CPU cores. Each series is measured with its points interleaved (every
repetition visits every point once, in a rotating order) and fitted with a straight line
(times: the minimum over repetitions, the least disturbed; memory: the median). Slope,
intercept and R^2 are printed, stored in pytest-benchmark's ``extra_info`` and written to
``<results-dir>/perf/scaling.json`` with a figure ``scaling.png``. The cost must be linear: R^2 >= 0.9 for times, >= 0.95 for memory.

* videos:      the eval loop (decode + test pipeline + model + view averaging) over N
               synthetic val videos; time ~ N
(one torch thread throughout: see ``setup``)
* views:       one forward of V views (8 x 112 x 112); time ~ V
* clip length: one forward of 6 views of T frames (112 x 112); time ~ T
* batch:       peak memory of a training step (measure.measure_memory: forward, backward,
               clipping, SGD step) on B clips of the entry's train input; memory ~ B
               (CUDA: max_memory_allocated; CPU: peak live tensor bytes, torch.profiler)
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pytest
import torch

ENTRY = "smoke_i3d_tiny_video"
REPS = int(os.environ.get("I3DBENCH_SCALING_REPS", "3"))
SIZE = 112  # crop for the model-only series: large enough that a forward is not all overhead
_FITS: dict = {}


def linear_fit(x, y) -> dict:
    """Least squares y = intercept + slope * x, with R^2 (1 for a perfect line)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (intercept + slope * x)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else 1.0
    return {"slope": float(slope), "intercept": float(intercept), "r2": r2, "x": x.tolist(), "y": y.tolist()}


def _interleaved(points, fn, reps=REPS, reduce=min) -> list[float]:
    """``reduce`` (min for times: the least disturbed run; median for memory) over ``reps`` of
    fn(point), visiting every point once per repetition in a rotating order."""
    out = {p: [] for p in points}
    for p in points:  # warm-up: kernels for every shape
        fn(p)
    for r in range(reps):
        order = points[r % len(points):] + points[: r % len(points)]
        for p in order:
            out[p].append(fn(p))
    return [reduce(out[p]) for p in points]


@pytest.fixture(scope="module")
def setup(request, device):
    if not request.config.getoption("--benchmark", default=False):
        pytest.skip("scaling benchmark: run with --benchmark")
    from i3dbench.models import build_model
    from i3dbench.zoo import get_entry

    torch.manual_seed(0)
    entry = get_entry(ENTRY)
    # One thread: the claim is about cost, and on a shared machine a 2-thread OpenMP team waits
    # at every barrier for whichever thread the scheduler parked, which swamps small forwards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield entry, build_model(entry).to(device).eval(), torch.device(device)
    torch.set_num_threads(threads)


def _timed(dev, fn) -> float:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    fn()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return time.perf_counter() - t0


def _report(name, xlabel, ylabel, fit, benchmark, capsys, min_r2):
    _FITS[name] = dict(fit, xlabel=xlabel, ylabel=ylabel)
    benchmark.extra_info.update({f"{name}_fit": {k: fit[k] for k in ("slope", "intercept", "r2")}, f"{name}_points": fit})
    with capsys.disabled():
        pts = ", ".join(f"{x:g}->{y:.4g}" for x, y in zip(fit["x"], fit["y"]))
        print(f"\n[scaling] {name}: {ylabel} = {fit['intercept']:.4g} + {fit['slope']:.4g} * {xlabel}, "
              f"R^2 = {fit['r2']:.4f}  ({pts})")
    assert fit["r2"] >= min_r2, f"{name}: cost is not linear in {xlabel} (R^2 {fit['r2']:.3f})"
    assert fit["slope"] > 0


def test_scaling_eval_time_vs_videos(benchmark, capsys, setup):
    from i3dbench.data import synthetic
    from i3dbench.data.dataset import build_dataset
    from i3dbench.metrics import average_views

    entry, model, dev = setup
    root = synthetic.ensure_synthetic(progress=False)
    data_root, ann = synthetic.synthetic_paths(root, entry.data.format, entry.data.resolution, "val")
    ds = build_dataset(entry, "test", data_root, ann, normalize=True)
    points = [2, 4, 8, 16]

    def eval_n(n):
        def run():
            with torch.no_grad():
                for i in range(n):
                    views, _, _ = ds[i]
                    average_views(model(views.to(dev)), views.shape[0], entry.test.average_clips).cpu()
        return _timed(dev, run)

    y = benchmark.pedantic(lambda: _interleaved(points, eval_n), rounds=1, iterations=1)
    _report("videos", "videos", "eval time (s)", linear_fit(points, y), benchmark, capsys, 0.9)


def test_scaling_time_vs_views(benchmark, capsys, setup):
    entry, model, dev = setup
    points = [2, 4, 8, 16, 32]
    t = entry.data.clip_len
    x = torch.randn((max(points), 3, t, SIZE, SIZE), device=dev)

    def forward(v):
        return _timed(dev, lambda: _no_grad(lambda: model(x[:v])))

    y = benchmark.pedantic(lambda: _interleaved(points, forward), rounds=1, iterations=1)
    _report("views", "views", "forward time (s)", linear_fit(points, y), benchmark, capsys, 0.9)


def test_scaling_time_vs_clip_length(benchmark, capsys, setup):
    _, model, dev = setup
    points = [8, 16, 32, 64]
    xs = {t: torch.randn((6, 3, t, SIZE, SIZE), device=dev) for t in points}

    def forward(t):
        return _timed(dev, lambda: _no_grad(lambda: model(xs[t])))

    y = benchmark.pedantic(lambda: _interleaved(points, forward), rounds=1, iterations=1)
    _report("clip_length", "frames", "forward time (s)", linear_fit(points, y), benchmark, capsys, 0.9)


def test_scaling_memory_vs_batch(benchmark, capsys, setup, request):
    from i3dbench.measure import measure_memory

    entry, model, dev = setup
    # From 8 clips up: below that, the step's peak for this small model is in the optimizer
    # update (weights + gradients + momentum), not in the activations that grow with the batch.
    points = [8, 16, 32, 64]
    kinds = set()

    def train_peak(b):
        r = measure_memory(entry, device=dev, batch=b, train=True, inference=False, model=model)
        kinds.add(r.train_kind)
        return r.train_mb

    y = benchmark.pedantic(lambda: _interleaved(points, train_peak, reduce=statistics.median), rounds=1, iterations=1)
    _report("batch_memory", "clips per step", f"train-step peak memory (MiB, {', '.join(sorted(kinds))})",
            linear_fit(points, y), benchmark, capsys, 0.95)
    _write(request)


def _no_grad(fn):
    with torch.no_grad():
        return fn()


def _write(request) -> None:
    """scaling.json and scaling.png under <results-dir>/perf (all fits measured in this session)."""
    from i3dbench.records import atomic_write_text

    out = Path(request.config.getoption("--results-dir", default="results")) / "perf"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "scaling.json", json.dumps({"entry": ENTRY, "reps": REPS, "fits": _FITS}, indent=2) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(_FITS), figsize=(4 * len(_FITS), 3.2))
    for ax, (name, f) in zip(np.atleast_1d(axes), _FITS.items()):
        xs = np.asarray(f["x"])
        ax.plot(xs, f["y"], "o", label="measured (median)")
        ax.plot(xs, f["intercept"] + f["slope"] * xs, "-", label=f"fit, R²={f['r2']:.3f}")
        ax.set_xlabel(f["xlabel"])
        ax.set_ylabel(f["ylabel"], fontsize=8)
        ax.set_title(name)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "scaling.png", dpi=100)
    plt.close(fig)
