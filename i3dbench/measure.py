"""Inference throughput and peak memory of a zoo entry's model, on CUDA or CPU.

Two protocols (``protocol=``):

``published``
    MMAction2's ``tools/analysis/benchmark.py`` (0.x): random weights, fp32, no conv-BN
    fusion, cudnn.benchmark off; per video, its test views (10 clips x 3 crops = 30 for the
    K400 entries) as ONE batch; the timed region is host->device copy of the normalised float
    views + forward + ``average_clips`` (softmax, mean over views) + ``.cpu()``; synchronised
    before and after; 200 videos, the first 5 not timed. We report ``timed / sum(times)``;
    the script's own printout adds the last iteration twice (``video_per_s_mmaction_formula``
    reproduces that number too).
``fast``
    The same output (per-video averaged class probabilities on the host) computed as fast as
    this library can on the device: uint8 views moved (pinned on CUDA) and normalised on the
    device, the :mod:`~i3dbench.fastpath` levers (bf16, channels_last_3d, conv-BN folding,
    torch.compile, inference_mode, cudnn.benchmark, thread count), several videos per
    forward on CUDA, and an out-of-memory back-off that halves the views per forward. On CPU
    the precision and thread count are autotuned on the spot (bf16 is not faster for every
    model; one thread beats two when other work shares the cores): the record keeps the
    candidates' times (``conditions.autotune``).

Video counts: ``num_videos`` includes the ``warmup`` videos that are not timed (MMAction2:
200 and 5). A full-size video is ~1.3 TMAC (30 views x 43.5 GMAC), tens of seconds on two CPU
cores, so on CPU the defaults are 3 videos with 1 warm-up; every record states its counts.

Peak memory (``memory_kind`` says which):
* CUDA: ``torch.cuda.max_memory_allocated`` in MiB — during the timed loop, and for training
  steps at the published batch (8 videos of 3 x 32 x 224 x 224): the figure MMAction2's logs
  print as ``memory`` and its README as gpu_mem.
* CPU, timed loops: peak resident set size (``VmHWM`` after resetting it through
  ``/proc/self/clear_refs``) minus the resident size when the measurement started: the memory
  the measurement itself added (weights, inputs, activations, allocator overhead).
* CPU, training steps: peak bytes of live tensors, counted by torch.profiler
  (:func:`cpu_tensor_peak`) — what CUDA's ``max_memory_allocated`` counts on a GPU, and
  independent of what the process did before (peak RSS is not: freed heap pages and oneDNN
  scratch buffers get reused). The RSS growth is kept in the details.

Speed does not depend on the weights, so everything here runs with random weights and the
record says ``weights: random``.
"""

from __future__ import annotations

import gc
import math
import os
import re
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .fastpath import (
    FastConfig,
    autotune,
    cpu_candidates,
    default_fast_config,
    is_oom,
    prepare_model,
    published_config,
    run_with_oom_backoff,
)
from .metrics import average_views
from .zoo import ZooEntry, get_entry

PROTOCOLS = ("published", "fast")
PUBLISHED_VIDEOS = 200  # MMAction2 benchmark.py: stops at the 200th video
PUBLISHED_WARMUP = 5  # ... and does not time the first 5
CPU_VIDEOS = 3  # CPU defaults: a full-size video is tens of seconds on 2 cores
CPU_WARMUP = 1
CUDA_FAST_BATCH_VIDEOS = 4  # videos per forward to start the OOM back-off from on CUDA


# --------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class TimingStats:
    """Statistics of per-iteration times (seconds); ``videos_per_iteration`` videos each."""

    n: int
    total_s: float
    mean_s: float
    median_s: float
    stdev_s: float
    min_s: float
    max_s: float
    videos_per_iteration: int = 1

    @property
    def video_per_s(self) -> float:
        return self.n * self.videos_per_iteration / self.total_s if self.total_s > 0 else math.nan

    @property
    def rel_std(self) -> float:
        return self.stdev_s / self.mean_s if self.mean_s > 0 else math.nan


def summarize_times(times_s: Sequence[float], videos_per_iteration: int = 1) -> TimingStats:
    """Mean / median / sample standard deviation (0 for one time) of per-iteration times."""
    if not times_s:
        raise ValueError("no timed iterations: num_videos must exceed warmup")
    ts = [float(t) for t in times_s]
    return TimingStats(
        n=len(ts),
        total_s=sum(ts),
        mean_s=statistics.fmean(ts),
        median_s=statistics.median(ts),
        stdev_s=statistics.stdev(ts) if len(ts) > 1 else 0.0,
        min_s=min(ts),
        max_s=max(ts),
        videos_per_iteration=videos_per_iteration,
    )


def _sync(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def timed_loop(
    step: Callable[[int], object],
    iterations: int,
    warmup: int,
    *,
    sync: Callable[[], None] = lambda: None,
    progress: bool = True,
    desc: str = "bench",
) -> list[float]:
    """Run ``step(i)`` for ``i < iterations``; return the times of iterations ``i >= warmup``.

    Each time is ``perf_counter`` between two ``sync()`` calls (CUDA: synchronize), so it
    covers all device work queued by the step.
    """
    if iterations <= warmup:
        raise ValueError(f"iterations ({iterations}) must exceed warmup ({warmup}): nothing would be timed")
    from tqdm import tqdm

    times = []
    for i in tqdm(range(iterations), desc=desc, unit="it", disable=not progress, leave=False):
        sync()
        t0 = time.perf_counter()
        step(i)
        sync()
        elapsed = time.perf_counter() - t0
        if i >= warmup:
            times.append(elapsed)
    return times


# --------------------------------------------------------------------------- memory probes


_KB = re.compile(r"^(VmHWM|VmRSS):\s+(\d+)\s+kB", re.MULTILINE)


def _proc_status() -> dict[str, float]:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return {}
    return {k: int(v) / 1024.0 for k, v in _KB.findall(text)}


class PeakRSS:
    """Peak resident memory (MiB) of this process between :meth:`start` and :meth:`stop`.

    Linux resets the high-water mark when ``5`` is written to ``/proc/self/clear_refs``; where
    that is not allowed, the peak is since process start and ``scope`` says ``"process"``.
    """

    def __init__(self) -> None:
        self.baseline_mb = math.nan
        self.peak_mb = math.nan
        self.scope = "unavailable"

    def start(self) -> PeakRSS:
        gc.collect()
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.scope = "measurement"
        except OSError:
            self.scope = "process"
        self.baseline_mb = _proc_status().get("VmRSS", math.nan)
        if math.isnan(self.baseline_mb):
            self.scope = "unavailable"
        return self

    def stop(self) -> PeakRSS:
        self.peak_mb = _proc_status().get("VmHWM", math.nan)
        return self

    @property
    def delta_mb(self) -> float:
        return self.peak_mb - self.baseline_mb


def tensor_bytes(*objs) -> int:
    """Bytes of the distinct tensor storages in ``objs`` (tensors, modules, optimizers, lists)."""
    seen, total = set(), 0

    def add(t: torch.Tensor) -> None:
        nonlocal total
        key = t.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()

    for obj in objs:
        if isinstance(obj, torch.Tensor):
            add(obj)
        elif isinstance(obj, nn.Module):
            for t in list(obj.parameters()) + list(obj.buffers()):
                add(t)
                if t.grad is not None:
                    add(t.grad)
        elif isinstance(obj, torch.optim.Optimizer):
            for state in obj.state.values():
                for v in state.values():
                    if isinstance(v, torch.Tensor):
                        add(v)
        elif isinstance(obj, (list, tuple)):
            total += tensor_bytes(*obj) if obj else 0
    return total


def cpu_tensor_peak(fn: Callable[[], object]) -> int | None:
    """Peak bytes of CPU tensor memory allocated by ``fn`` above what was live when it started
    (``None`` when the profiler reports no memory events).

    The CPU counterpart of ``torch.cuda.max_memory_allocated``: torch.profiler with
    ``profile_memory`` records every allocation and free of the CPU allocator with the running
    total; the peak of that total is the answer. Unlike peak RSS it does not depend on what
    the process did before (glibc keeps freed heap pages, oneDNN/MKL keep scratch buffers,
    both of which a later, smaller step reuses without growing the RSS).
    """
    import json
    import tempfile

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(trace))
        events = json.loads(trace.read_text()).get("traceEvents", [])
    totals = [e["args"]["Total Allocated"] for e in events
              if e.get("name") == "[memory]" and "Total Allocated" in e.get("args", {})]
    return max(0, max(totals)) if totals else None


class MemoryProbe:
    """Peak memory of a region on ``device``: CUDA allocator peak, or CPU peak RSS above baseline."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._rss = PeakRSS()
        self.kind = "cuda_max_memory_allocated" if device.type == "cuda" else "cpu_peak_rss_delta"

    def start(self) -> MemoryProbe:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._rss.start()
            if self._rss.scope != "measurement":
                self.kind = f"cpu_peak_rss_delta ({self._rss.scope} scope)"
        return self

    def stop(self) -> dict:
        """``{"peak_mb", "kind", ...}``; on CPU also the absolute baseline and peak RSS."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            # MMAction2 (mmcv) logs int(bytes / 2**20): the same truncation here.
            return {"peak_mb": int(torch.cuda.max_memory_allocated(self.device) / 2**20), "kind": self.kind}
        self._rss.stop()
        return {
            "peak_mb": round(self._rss.delta_mb, 1),
            "kind": self.kind,
            "rss_baseline_mb": round(self._rss.baseline_mb, 1),
            "rss_peak_mb": round(self._rss.peak_mb, 1),
        }


# --------------------------------------------------------------------------- throughput


@dataclass
class ThroughputResult:
    """What :func:`measure_throughput` measured, with the conditions that shaped it."""

    entry: str
    device: str
    protocol: str
    num_videos: int  # including warm-up videos
    warmup: int  # videos not timed
    videos_per_iteration: int  # videos per timed step (fast on CUDA may batch several)
    views_per_video: int
    views_per_forward: int
    view_shape: tuple[int, int, int, int]  # 3 x T x H x W
    times_s: list[float]  # per timed iteration
    conditions: dict  # fast-path settings as they took effect + protocol details
    peak_memory: dict  # MemoryProbe.stop() of the whole loop
    oom_backoffs: list[int] = field(default_factory=list)  # views-per-forward that ran out of memory
    wall_s: float = 0.0
    chunk_times_s: list[float] = field(default_factory=list)  # per forward, when a step has several
    weights: str = "random"

    @property
    def stats(self) -> TimingStats:
        return summarize_times(self.times_s, self.videos_per_iteration)

    @property
    def video_per_s(self) -> float:
        return self.stats.video_per_s

    def metrics(self) -> dict:
        """The record's bench metrics (see records.py): speed, its noise, and loop peak memory."""
        s = self.stats
        per_video = [t / self.videos_per_iteration for t in self.times_s]
        # Noise: the spread of per-iteration times; with a single timed iteration made of several
        # equal forwards, the spread of those forwards (rel_std_basis says which).
        rel_std, basis = s.rel_std, "iteration"
        if s.n < 2 and len(self.chunk_times_s) >= 2:
            rel_std, basis = summarize_times(self.chunk_times_s).rel_std, "forward"
        # MMAction2's printout: timed videos / (sum of times + the last time again).
        mm_formula = s.n * s.videos_per_iteration / (s.total_s + self.times_s[-1])
        return {
            "video_per_s": s.video_per_s,
            "video_per_s_mmaction_formula": mm_formula,
            "latency_ms": 1000.0 * statistics.fmean(per_video),
            "latency_median_ms": 1000.0 * statistics.median(per_video),
            "latency_std_ms": 1000.0 * (statistics.stdev(per_video) if len(per_video) > 1 else 0.0),
            "rel_std": rel_std,
            "rel_std_basis": basis,
            "n_timed": s.n,
            "videos_timed": s.n * s.videos_per_iteration,
            "peak_memory_mb": self.peak_memory.get("peak_mb"),
        }


def _view_shape(entry: ZooEntry) -> tuple[int, int, int, int]:
    size = entry.test.crop_size
    return (3, entry.data.clip_len, size, size)


def _default_counts(device: torch.device, num_videos: int | None, warmup: int | None) -> tuple[int, int]:
    if device.type == "cuda":
        n, w = PUBLISHED_VIDEOS, PUBLISHED_WARMUP
    else:
        n, w = CPU_VIDEOS, CPU_WARMUP
    n = n if num_videos is None else int(num_videos)
    w = (w if num_videos is None else min(w, max(n - 1, 0))) if warmup is None else int(warmup)
    if n <= w:
        raise ValueError(f"num_videos ({n}) must be larger than warmup ({w}): nothing would be timed")
    return n, w


def _random_model(entry: ZooEntry, seed: int) -> nn.Module:
    from .models import build_model

    torch.manual_seed(seed)
    return build_model(entry).eval()


def measure_throughput(
    entry: ZooEntry | str,
    *,
    device: str | torch.device = "cpu",
    protocol: str = "published",
    num_videos: int | None = None,
    warmup: int | None = None,
    config: FastConfig | None = None,
    overrides: dict | None = None,
    batch_videos: int | None = None,
    views_per_forward: int | None = None,
    threads: int | None = None,
    model: nn.Module | None = None,
    seed: int = 0,
    progress: bool = True,
) -> ThroughputResult:
    """Time the entry's model under ``protocol`` on ``device`` (see the module docstring).

    ``num_videos`` counts all videos including ``warmup`` (defaults: 200/5 on CUDA, 3/1 on
    CPU). ``fast`` only: ``config`` (default: on CPU the faster of fp32 / bf16, both folded and
    channels_last_3d, timed on one video's views or on one view, whichever is affordable —
    see :func:`~i3dbench.fastpath.autotune`; on CUDA
    :func:`~i3dbench.fastpath.default_fast_config`), ``overrides`` (FastConfig fields applied on
    top), ``batch_videos`` (videos per step; default 4 on CUDA, 1 on CPU) and ``views_per_forward``
    (default: all views of the step), halved on out-of-memory. ``model`` replaces the entry's
    randomly initialised model (same input shape). The result carries every per-iteration time.
    """
    entry = get_entry(entry)
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' asked for but torch.cuda.is_available() is False; use --device cpu")
    n_videos, n_warm = _default_counts(dev, num_videos, warmup)
    views = entry.views_per_video
    shape = _view_shape(entry)
    wall0 = time.perf_counter()
    probe = MemoryProbe(dev).start()
    base = model if model is not None else _random_model(entry, seed)
    gen = torch.Generator().manual_seed(seed)
    process_threads = torch.get_num_threads()
    try:
        if protocol == "published":
            if threads:
                torch.set_num_threads(int(threads))
            result = _published(entry, base, dev, n_videos, n_warm, views, shape, gen, probe, progress)
        else:
            fixed = dict(overrides or {})
            if threads:
                fixed["threads"] = int(threads)
            cfg, tuned = _fast_config(entry, base, dev, config, fixed, shape, gen)
            result = _fast(entry, base, dev, cfg, n_videos, n_warm, views, shape, gen, probe, batch_videos,
                           views_per_forward, progress)
            if tuned is not None:
                result.conditions["autotune"] = tuned
    finally:
        torch.set_num_threads(process_threads)  # a measurement leaves the process as it found it
    result.wall_s = time.perf_counter() - wall0
    return result


def _published(entry, model, dev, n_videos, n_warm, views, shape, gen, probe, progress) -> ThroughputResult:
    cfg = published_config()
    model = model.to(dev).eval()
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = False  # the I3D configs set no cudnn_benchmark
    # What the dataloader hands the model: 1 x V x 3 x T x H x W normalised float32, pageable
    # host memory. Two buffers on CUDA so consecutive copies do not come from the same pages.
    pool = [torch.randn((1, views) + shape, generator=gen) for _ in range(2 if dev.type == "cuda" else 1)]

    def step(i: int):
        x = pool[i % len(pool)].to(dev)
        with torch.no_grad():
            scores = model(x.reshape((-1,) + shape))
            return average_views(scores, scores.shape[0], entry.test.average_clips).cpu().numpy()

    times = timed_loop(step, n_videos, n_warm, sync=_sync(dev), progress=progress, desc=f"{entry.name} published")
    cond = cfg.as_conditions()
    cond.update(threads=torch.get_num_threads(), inference_mode=False, no_grad=True, input_dtype="float32",
                normalize_on_device=False, pinned_memory=False, folded_pairs=0)
    return ThroughputResult(
        entry=entry.name, device=str(dev), protocol="published", num_videos=n_videos, warmup=n_warm,
        videos_per_iteration=1, views_per_video=views, views_per_forward=views, view_shape=shape,
        times_s=times, conditions=cond, peak_memory=probe.stop(),
    )


def _fast_config(entry, model, dev, config, overrides, shape, gen) -> tuple[FastConfig, dict | None]:
    """The fast configuration: ``config`` as given; on CPU without one, the autotuned winner
    of :func:`~i3dbench.fastpath.cpu_candidates` (unless ``overrides`` fixes the precision);
    on CUDA :func:`~i3dbench.fastpath.default_fast_config`. ``overrides`` (FastConfig fields)
    apply last; ``compile`` is applied to the winner only (compiling every candidate costs
    ~25 s each on CPU)."""
    if config is not None:
        return config.replace(**overrides), None
    if dev.type != "cpu" or "precision" in overrides:
        return default_fast_config(dev).replace(**overrides), None
    compile_over = {k: overrides.pop(k) for k in ("compile", "compile_mode") if k in overrides}
    # Convolution widths and input shape decide the winner; entries sharing them (e.g. the R50
    # with and without non-local blocks) reuse the choice within a process.
    key = (entry.arch.depth, entry.arch.base_channels, entry.arch.stage_blocks, shape, entry.views_per_video,
           tuple(sorted(overrides.items())), torch.get_num_threads())
    if key not in _AUTOTUNED:
        cands = [c.replace(**overrides) for c in cpu_candidates(try_one_thread="threads" not in overrides)]
        sample = torch.randint(0, 256, (entry.views_per_video,) + shape, dtype=torch.uint8, generator=gen)
        cfg, times = autotune(model, sample, cands, mean=entry.data.mean, std=entry.data.std)
        _AUTOTUNED[key] = (cfg, {"times_s": {k: round(v, 5) for k, v in times.items()}, "measured_with": entry.name})
    cfg, tuned = _AUTOTUNED[key]
    return cfg.replace(**compile_over), tuned


_AUTOTUNED: dict = {}  # see _fast_config


def _fast(entry, model, dev, cfg, n_videos, n_warm, views, shape, gen, probe, batch_videos, views_per_forward, progress):
    fm = prepare_model(model, dev, cfg, mean=entry.data.mean, std=entry.data.std)
    b0 = batch_videos or (CUDA_FAST_BATCH_VIDEOS if dev.type == "cuda" else 1)
    vpf0 = views_per_forward or b0 * views
    pin = dev.type == "cuda"

    def attempt(vpf: int):
        # vpf >= views: whole videos per forward (vpf // views of them); below: chunks of a video.
        b = max(1, vpf // views)
        chunk = b * views if vpf >= views else vpf
        steps = max(1, math.ceil((n_videos - n_warm) / b)) + math.ceil(n_warm / b)
        warm_steps = math.ceil(n_warm / b)
        pool = []
        for _ in range(2 if pin else 1):
            t = torch.randint(0, 256, (b * views,) + shape, dtype=torch.uint8, generator=gen)
            pool.append(t.pin_memory() if pin else t)

        sync = _sync(dev)
        chunk_times: list[list[float]] = []

        def step(i: int):
            vids = pool[i % len(pool)]
            outs, ts = [], []
            for s in range(0, vids.shape[0], chunk):
                t0 = time.perf_counter()
                outs.append(fm(vids[s : s + chunk]))
                if chunk < vids.shape[0]:  # several forwards per step: time each (noise estimate)
                    sync()
                    ts.append(time.perf_counter() - t0)
            chunk_times.append(ts)
            scores = torch.cat(outs)
            return average_views(scores, scores.shape[0] // b, entry.test.average_clips).cpu().numpy()

        # Prime: one untimed forward of one chunk creates the kernels for the chunk's shape (and
        # compiles, if asked), so that even warmup=0 does not time first-call costs.
        fm(pool[0][:chunk])
        times = timed_loop(step, steps, warm_steps, sync=sync, progress=progress, desc=f"{entry.name} fast")
        timed_chunks = [t for ts in chunk_times[warm_steps:] for t in ts]
        return times, b, chunk, steps * b, warm_steps * b, timed_chunks

    (times, b, chunk, n_done, warm_done, chunk_s), _, failed = run_with_oom_backoff(attempt, vpf0, min_batch=1)
    cond = fm.conditions()
    cond.update(no_grad=False, input_dtype="uint8", normalize_on_device=True, pinned_memory=pin, primed=True)
    return ThroughputResult(
        entry=entry.name, device=str(dev), protocol="fast", num_videos=n_done, warmup=warm_done,
        videos_per_iteration=b, views_per_video=views, views_per_forward=chunk, view_shape=shape,
        times_s=times, conditions=cond, peak_memory=probe.stop(), oom_backoffs=failed, chunk_times_s=chunk_s,
    )


# --------------------------------------------------------------------------- memory


@dataclass
class MemoryResult:
    """Peak memory of inference (one video, published protocol) and of training steps."""

    entry: str
    device: str
    inference_mb: float | None
    train_mb: float | None
    train_batch: int | None
    train_steps: int
    train_input: tuple[int, int, int, int] | None  # 3 x T x crop x crop
    details: dict = field(default_factory=dict)
    weights: str = "random"
    inference_kind: str | None = None  # cuda_max_memory_allocated | cpu_peak_rss_delta
    train_kind: str | None = None  # cuda_max_memory_allocated | cpu_tensor_peak (| cpu_peak_rss_delta)

    @property
    def kind(self) -> str:
        """What the numbers are, e.g. ``inference: cpu_peak_rss_delta; train: cpu_tensor_peak``."""
        parts = [f"{what}: {k}" for what, k in (("inference", self.inference_kind), ("train", self.train_kind)) if k]
        return "; ".join(parts) or "nothing measured"

    def metrics(self) -> dict:
        out = {}
        if self.inference_mb is not None:
            out["peak_memory_mb"] = self.inference_mb
        if self.train_mb is not None:
            out["train_memory_mb"] = self.train_mb
        return out


def measure_memory(
    entry: ZooEntry | str,
    *,
    device: str | torch.device = "cpu",
    batch: int | None = None,
    train: bool = True,
    inference: bool = True,
    steps: int | None = None,
    model: nn.Module | None = None,
    threads: int | None = None,
    seed: int = 0,
) -> MemoryResult:
    """Peak memory of one published-protocol inference and of training at the published batch.

    Training: ``batch`` videos (default: the recipe's videos per GPU, 8) of the entry's train
    input (3 x clip_len x train_crop^2), fp32, SGD with the recipe's momentum / weight decay,
    cross-entropy, gradient clipping; ``steps`` steps (default 2 on CUDA so the momentum
    buffers exist, as in a long run; 1 on CPU, where a full-size step takes ~half a minute).
    ``zero_grad`` keeps the gradient tensors, as the optimizer hooks of 2020 did.
    An out-of-memory is reported (``details["train_oom"]``), not raised. ``threads`` (CPU
    intra-op threads for the duration) changes how long it takes, not the memory.
    """
    entry = get_entry(entry)
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' asked for but torch.cuda.is_available() is False; use --device cpu")
    base = model if model is not None else _random_model(entry, seed)
    details: dict = {}
    inference_mb = train_mb = inference_kind = train_kind = None
    gen = torch.Generator().manual_seed(seed)
    if inference:
        r = measure_throughput(entry, device=dev, protocol="published", num_videos=1, warmup=0, model=base, progress=False)
        inference_mb = r.peak_memory["peak_mb"]
        inference_kind = r.peak_memory["kind"]
        details["inference"] = r.peak_memory
    batch = int(batch or entry.recipe.videos_per_gpu)
    steps = int(steps or (2 if dev.type == "cuda" else 1))
    train_shape = (3, entry.data.clip_len, entry.data.train_crop, entry.data.train_crop)
    if train:
        process_threads = torch.get_num_threads()
        if threads:
            torch.set_num_threads(int(threads))
        try:
            mem = _train_steps_memory(entry, base, dev, batch, steps, train_shape, gen)
            mem["threads"] = torch.get_num_threads()
            train_mb, train_kind = mem["peak_mb"], mem["kind"]
            details["train"] = mem
        except Exception as err:  # only an OOM is reported; the rest is re-raised
            if not is_oom(err):
                raise
            details["train_oom"] = f"{type(err).__name__}: {str(err)[:300]}"
        finally:
            torch.set_num_threads(process_threads)
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    return MemoryResult(
        entry=entry.name, device=str(dev), inference_mb=inference_mb, train_mb=train_mb,
        train_batch=batch if train else None, train_steps=steps if train else 0,
        train_input=train_shape if train else None, details=details,
        inference_kind=inference_kind, train_kind=train_kind,
    )


def _train_steps_memory(entry, base, dev, batch, steps, shape, gen) -> dict:
    """Peak memory of ``steps`` training steps. CUDA: max_memory_allocated. CPU: live tensor
    bytes at the start (weights, inputs) + :func:`cpu_tensor_peak` of the steps — the same
    quantity CUDA's allocator counts — with the peak RSS growth in the details for reference."""
    import copy

    r = entry.recipe
    probe = MemoryProbe(dev).start()
    model = copy.deepcopy(base).to(dev).train()
    for p in model.parameters():
        p.requires_grad_(True)
    opt = torch.optim.SGD(model.parameters(), lr=r.lr, momentum=r.momentum, weight_decay=r.weight_decay)
    x = torch.randn((batch,) + shape, generator=gen).to(dev)
    y = torch.randint(0, entry.arch.num_classes, (batch,), generator=gen).to(dev)

    def run() -> None:
        for _ in range(steps):
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=False)
            loss.backward()
            if r.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), r.grad_clip)
            opt.step()

    if dev.type == "cuda":
        run()
        out = probe.stop()
    else:
        live = tensor_bytes(model, opt, x, y)
        grown = cpu_tensor_peak(run)
        rss = probe.stop()
        if grown is None:  # no profiler memory events: fall back to the RSS figure, labelled
            out = rss
        else:
            out = {"peak_mb": round((live + grown) / 2**20, 1), "kind": "cpu_tensor_peak",
                   "live_at_start_mb": round(live / 2**20, 1), "rss": rss}
    return out


# --------------------------------------------------------------------------- records


def _record(entry: ZooEntry, device: torch.device, tp: ThroughputResult | None, mem: MemoryResult | None,
            protocol: str, extra: dict | None = None) -> dict:
    from .records import collect_conditions, make_record

    fast = tp.conditions if tp is not None else published_config().as_conditions()
    cond = collect_conditions(
        str(device),
        precision=fast["precision"],
        memory_format=fast["memory_format"],
        compile=bool(fast.get("compile")),
        batch=tp.videos_per_iteration if tp is not None else None,
        views=entry.views_per_video,
    )
    cond["num_threads"] = fast.get("threads") or cond["num_threads"]  # what the timed loop ran with
    # Every lever of the fast path, and how the input reached the model, next to the standard ones.
    for key in ("fold_bn", "folded_pairs", "autocast", "cudnn_benchmark", "compile_mode", "compile_error",
                "autotune", "inference_mode", "no_grad", "input_dtype", "normalize_on_device", "pinned_memory",
                "primed"):
        if key in fast:
            cond[key] = fast[key]
    metrics: dict = {}
    ext: dict = {"protocol": protocol, "weights": "random"}
    if tp is not None:
        cond["views_per_forward"] = tp.views_per_forward
        cond["view_shape"] = list(tp.view_shape)
        metrics.update(tp.metrics())
        ext.update(
            times_s=tp.times_s,
            chunk_times_s=tp.chunk_times_s,
            num_videos=tp.num_videos,
            warmup_videos=tp.warmup,
            videos_per_iteration=tp.videos_per_iteration,
            oom_backoffs=tp.oom_backoffs,
            memory_kind=tp.peak_memory.get("kind"),
            loop_memory=tp.peak_memory,
            wall_s=tp.wall_s,
        )
    if mem is not None:
        metrics.update(mem.metrics())
        if mem.inference_kind:
            ext["memory_kind"] = mem.inference_kind
        if mem.train_kind:
            ext["train_memory_kind"] = mem.train_kind
            # one string for tables with a single "memory kind" column: say which is which
            inf_kind = ext.get("memory_kind")
            if inf_kind and inf_kind != mem.train_kind:
                ext["memory_kind"] = f"inference {inf_kind}; train {mem.train_kind}"
            elif not inf_kind:
                ext["memory_kind"] = mem.train_kind
        ext["memory"] = {
            "inference_mb": mem.inference_mb,
            "inference_protocol": "published (1 video, fp32)" if mem.inference_mb is not None else None,
            "train_mb": mem.train_mb,
            "train_batch": mem.train_batch,
            "train_steps": mem.train_steps,
            "train_input": list(mem.train_input) if mem.train_input else None,
            "train_precision": "fp32",
            "details": mem.details,
        }
    ext.update(extra or {})
    return make_record(entry.name, "bench", metrics, cond, ext)


def bench(
    entry: ZooEntry | str,
    device: str = "cpu",
    protocol: str = "published",
    *,
    num_videos: int | None = None,
    warmup: int | None = None,
    memory: bool = True,
    train_memory: bool = True,
    config: FastConfig | None = None,
    overrides: dict | None = None,
    batch_videos: int | None = None,
    views_per_forward: int | None = None,
    threads: int | None = None,
    records_dir: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """Measure throughput and peak memory of ``entry`` and write a ``bench`` record; its path.

    What `i3dbench bench` runs. The inference peak memory is that of the timed loop; with
    ``memory`` and ``train_memory`` the record also gets :func:`measure_memory`'s training-step
    peak at the published batch.
    """
    entry = get_entry(entry)
    dev = torch.device(device)
    model = _random_model(entry, 0)
    tp = measure_throughput(entry, device=dev, protocol=protocol, num_videos=num_videos, warmup=warmup,
                            config=config, overrides=overrides, batch_videos=batch_videos,
                            views_per_forward=views_per_forward, threads=threads, model=model, progress=progress)
    mem = None
    if memory and train_memory:
        # Inference peak memory is the timed loop's own (tp.peak_memory); this adds training.
        mem = measure_memory(entry, device=dev, train=True, inference=False, model=model)
    from .records import write_record

    return write_record(_record(entry, dev, tp, mem, protocol), records_dir)


# --------------------------------------------------------------------------- the zoo on CPU


def architecture_key(entry: ZooEntry) -> tuple:
    """What speed and memory depend on: the network and the shapes it sees (not data or weights)."""
    return (entry.arch, entry.data.clip_len, entry.data.train_crop, entry.views_per_video, entry.test.crop_size,
            entry.test.average_clips, entry.recipe.videos_per_gpu)


def architecture_label(entry: ZooEntry) -> str:
    a = entry.arch
    nl = f"nl-{a.non_local_mode}" if a.non_local_mode else "plain"
    return f"r{a.depth}w{a.base_channels}-{nl}-{entry.data.clip_len}f-{entry.views_per_video}v-{entry.test.crop_size}px"


def group_by_architecture(entries: Iterable[ZooEntry | str]) -> dict[tuple, list[ZooEntry]]:
    """Entries grouped by :func:`architecture_key`, in first-seen order."""
    groups: dict[tuple, list[ZooEntry]] = {}
    for e in entries:
        e = get_entry(e)
        groups.setdefault(architecture_key(e), []).append(e)
    return groups


def measure_zoo_cpu(
    entries: Iterable[ZooEntry | str],
    *,
    budget_s: float = 180.0,
    protocol: str = "fast",
    num_videos: int = 1,
    warmup: int = 0,
    views_per_forward: int | None = 5,
    train_memory: bool = True,
    records_dir: str | Path | None = None,
    progress: bool = True,
) -> list[Path]:
    """CPU throughput and peak memory for many entries within ``budget_s``; one record per entry.

    Speed and memory depend on the architecture and input shapes, not on the data variant
    or the weights, so entries are grouped (:func:`architecture_key`: the 15 K400 entries make
    4 groups: plain, and non-local embedded-gaussian / gaussian / dot-product) and each group
    is measured once, with the first entry's model (random weights). Every entry still gets
    its own record, whose ``extra["shared_measurement"]`` names the group, the entry that was
    measured and all entries sharing the numbers.

    Order of work: throughput for every group first (``protocol``, ``num_videos`` with
    ``warmup`` untimed, peak RSS of the loop; ``fast`` runs ``views_per_forward`` views per
    forward and primes the kernels with one untimed forward of that size, which is what makes
    ``warmup=0`` honest; with one timed video, the noise estimate ``rel_std`` comes from its 6
    forwards), then training-step memory (batch 8, one step, on the thread count the autotune
    chose) for as many groups as the remaining budget allows, each step's cost estimated from
    the previous one. What was skipped for lack of budget is written in the record
    (``extra["skipped"]``), never filled in. Used by `i3dbench run` (the embedded default).
    Measured on the 2 shared cores of this project's machine under load: ~40-55 s per group
    for throughput and ~35 s per training step, so 180 s cover the 4 throughputs only when
    the machine is quiet; the runner passes what is left of its 10-minute budget.
    """
    from tqdm import tqdm

    from .records import write_record

    t_start = time.perf_counter()
    groups = group_by_architecture(entries)
    dev = torch.device("cpu")
    done: dict[tuple, dict] = {}
    bar = tqdm(total=2 * len(groups) if train_memory else len(groups), desc="CPU bench (zoo)", disable=not progress)
    tp_cost: list[float] = []
    for key, members in groups.items():
        first = members[0]
        info = done.setdefault(key, {"tp": None, "mem": None, "skipped": []})
        left = budget_s - (time.perf_counter() - t_start)
        est = tp_cost[-1] if tp_cost else 0.0  # the first group's cost includes the one-time autotune
        if left <= est:
            info["skipped"].append(f"throughput: {left:.0f} s of the {budget_s:.0f} s budget left, ~{est:.0f} s needed")
        else:
            t0 = time.perf_counter()
            info["tp"] = measure_throughput(first, device=dev, protocol=protocol, num_videos=num_videos, warmup=warmup,
                                            views_per_forward=views_per_forward if protocol == "fast" else None,
                                            progress=False)
            tp_cost.append(time.perf_counter() - t0)
        bar.update(1)
    if train_memory:
        tr_cost: list[float] = []
        for key, members in groups.items():
            info = done[key]
            left = budget_s - (time.perf_counter() - t_start)
            # Before the first step we only know the forward cost: a train step is ~3x a forward
            # of 8/30 of a test video's views at (224/256)^2 the pixels (fwd + 2x for backward).
            tp = info["tp"]
            guess = (tp.stats.mean_s * tp.videos_per_iteration * 3 * 8 / 30 * (224 / 256) ** 2 * 2.5) if tp else 60.0
            est = tr_cost[-1] if tr_cost else guess
            if left <= est:
                info["skipped"].append(f"train memory: {left:.0f} s of the {budget_s:.0f} s budget left, ~{est:.0f} s needed")
            else:
                t0 = time.perf_counter()
                # the thread count the throughput autotune found fastest right now (memory is the same)
                thr = tp.conditions.get("threads") if tp is not None else None
                info["mem"] = measure_memory(members[0], device=dev, train=True, inference=False, threads=thr)
                tr_cost.append(time.perf_counter() - t0)
            bar.update(1)
    bar.close()

    paths = []
    for key, members in groups.items():
        info = done[key]
        shared = {
            "group": architecture_label(members[0]),
            "measured_with_entry": members[0].name,
            "entries_sharing": [m.name for m in members],
            "why": "speed and memory depend on architecture and input shapes only (not data variant or weights)",
            "budget_s": budget_s,
        }
        for e in members:
            if info["tp"] is None and info["mem"] is None:
                extra = {"shared_measurement": shared, "skipped": info["skipped"], "protocol": protocol, "weights": "random"}
                from .records import collect_conditions, make_record

                rec = make_record(e.name, "bench", {}, collect_conditions("cpu", views=e.views_per_video), extra)
            else:
                rec = _record(e, dev, info["tp"], info["mem"], protocol,
                              extra={"shared_measurement": shared, "skipped": info["skipped"]})
            paths.append(write_record(rec, records_dir))
    return paths


# --------------------------------------------------------------------------- the loader side


def measure_loader(
    entry: ZooEntry | str,
    data_root: str | Path,
    ann_file: str | Path,
    *,
    workers: int = 2,
    num_videos: int = 8,
    decoder: str | None = None,
    normalize: bool = False,
    progress: bool = True,
) -> dict:
    """CPU-side rate of the entry's test pipeline (decode + sample + views), videos/s.

    The end-to-end eval overlaps this with the model: its speed is the lower of this rate and
    the model's. Videos go through a DataLoader with ``workers`` processes (0: in this
    process) as uint8 views (``normalize=False``: normalising belongs on the device); the
    list is cycled when it has fewer than ``num_videos`` videos. The clock starts when the
    first ``max(workers, 1)`` videos have arrived (worker start-up and first decodes are not
    the steady state) and stops at the last one.
    """
    from tqdm import tqdm

    from .data.dataset import build_dataset, collate_views

    entry = get_entry(entry)
    ds = build_dataset(entry, "test", data_root, ann_file, decoder=decoder, normalize=normalize)
    lead = max(workers, 1)
    order = [i % len(ds) for i in range(num_videos + lead)]
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(ds, order), batch_size=1, num_workers=workers, collate_fn=collate_views,
        persistent_workers=False,
    )
    arrivals, nbytes = [], 0
    for views, _, _, failures in tqdm(loader, total=len(order), desc=f"loader x{workers}", disable=not progress, leave=False):
        arrivals.append(time.perf_counter())
        if failures:
            raise RuntimeError(f"{len(failures)} video(s) failed to decode: {failures[0][0]}")
        nbytes = views.element_size() * views.numel()
    timed = arrivals[lead - 1 :]
    rate = (len(timed) - 1) / (timed[-1] - timed[0])
    return {
        "entry": entry.name,
        "video_per_s": rate,
        "videos_timed": len(timed) - 1,
        "workers": workers,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "views_per_video": entry.views_per_video,
        "bytes_per_video": nbytes,
        "dtype": "float32" if normalize else "uint8",
        "decoder": getattr(ds.decoder, "name", str(ds.decoder)),
        "videos_listed": len(ds),
    }
