"""Inference throughput of a zoo entry's model: time-based loops under two protocols.

``published``
    MMAction2's ``tools/analysis/benchmark.py`` (0.x): random weights, fp32, no conv-BN fusion,
    cudnn.benchmark off; an iteration is ONE video: its test views (10 clips x 3 crops = 30 for
    the K400 entries) as one batch; the timed region is the host->device copy of the normalised
    float views + forward + ``average_clips`` (softmax, mean over views) + ``.cpu()``,
    synchronised before and after. On CUDA: 200 videos, the first 5 untimed, as the script.
``fast``
    The same output computed as fast as this library can (:mod:`~i3dbench.fastpath`: bf16,
    channels_last_3d, conv-BN folding, torch.compile, inference_mode, uint8 input normalised on
    the device, several videos per forward on CUDA, OOM back-off). On CPU the configuration is
    autotuned on the spot among candidates that include the published configuration itself,
    so ``fast`` is never knowingly slower than ``published``; the record keeps every candidate's
    time.

Loops are time-based (:class:`LoopBudget`): warm-up (at least ``warmup_iterations`` and
``warmup_s``), then timed iterations until both ``min_iterations`` and ``min_seconds`` are
reached (a ``max_seconds`` cap is recorded when it cuts a loop short). Speed is reported as
the **median** iteration time (robust to a scheduler hiccup) with its spread (IQR / median);
every raw time is kept for the gate's two-sample test. An iteration may be a part of a video
(``views_per_forward`` views on CPU for the full-size models): video/s is then
``views_per_iteration / views_per_video / median``, and the record says so.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from .errors import UsageError
from .fastpath import (
    FastConfig,
    autotune,
    cpu_candidates,
    default_fast_config,
    prepare_model,
    published_config,
    run_with_oom_backoff,
)
from .metrics import average_views
from .reference_kernel import ReferenceKernel, for_device
from .zoo import ZooEntry, get_entry

PROTOCOLS = ("published", "fast")
CUDA_FAST_BATCH_VIDEOS = 4  # videos per forward to start the OOM back-off from on CUDA


@dataclass(frozen=True)
class LoopBudget:
    """How long a timed loop runs: both minimums are met ("whichever is longer")."""

    warmup_iterations: int = 2
    warmup_s: float = 1.0
    min_iterations: int = 20
    min_seconds: float = 5.0
    max_seconds: float | None = None  # a safety cap; a loop it cut short says so

    def __post_init__(self) -> None:
        for name in ("warmup_iterations", "min_iterations"):
            if int(getattr(self, name)) < (1 if name == "min_iterations" else 0):
                raise UsageError(f"{name} must be >= {1 if name == 'min_iterations' else 0}, got {getattr(self, name)}")
        for name in ("warmup_s", "min_seconds"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise UsageError(f"{name} must be a finite number >= 0, got {v!r}")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise UsageError(f"max_seconds must be > 0, got {self.max_seconds!r}")

    def as_dict(self) -> dict:
        return {"warmup_iterations": self.warmup_iterations, "warmup_s": self.warmup_s,
                "min_iterations": self.min_iterations, "min_seconds": self.min_seconds,
                "max_seconds": self.max_seconds}


# MMAction2's benchmark.py: 200 videos, the first 5 untimed (no time minimum).
PUBLISHED_CUDA_BUDGET = LoopBudget(warmup_iterations=5, warmup_s=0.0, min_iterations=195, min_seconds=0.0)
# CPU: sized so that the spread of a small model's iterations stays within a few percent on an
# idle 2-core machine (median of >= 20 iterations over >= 5 s after >= 1 s of warm-up).
CPU_BUDGET = LoopBudget(warmup_iterations=2, warmup_s=1.0, min_iterations=20, min_seconds=5.0)
CUDA_FAST_BUDGET = LoopBudget(warmup_iterations=5, warmup_s=2.0, min_iterations=50, min_seconds=10.0)


def default_budget(device: torch.device, protocol: str) -> LoopBudget:
    if device.type == "cuda":
        return PUBLISHED_CUDA_BUDGET if protocol == "published" else CUDA_FAST_BUDGET
    return CPU_BUDGET


@dataclass(frozen=True)
class TimingStats:
    """Per-iteration times (s): median-based speed and spread."""

    times_s: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.times_s)

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)

    @property
    def spread(self) -> float:
        """IQR / median of the iteration times (0 for fewer than 2 times)."""
        if self.n < 2:
            return 0.0
        q1, _, q3 = statistics.quantiles(self.times_s, n=4, method="inclusive")
        return (q3 - q1) / self.median_s if self.median_s > 0 else math.nan

    @property
    def total_s(self) -> float:
        return sum(self.times_s)


def timed_loop(
    step: Callable[[int], object],
    budget: LoopBudget,
    *,
    sync: Callable[[], None] = lambda: None,
    progress: bool = True,
    desc: str = "bench",
    reference: ReferenceKernel | None = None,
) -> tuple[list[float], list[float], bool]:
    """Run ``step(i)`` under ``budget``; returns (warm-up times, timed times, cut short by max_seconds).

    Each time is ``perf_counter`` between two ``sync()`` calls (CUDA: synchronize), so it covers
    all device work queued by the step. ``reference``: run after every iteration, outside the
    timed region; it keeps the times of the timed part (how fast the machine ran meanwhile).
    """
    from tqdm import tqdm

    def once(i: int) -> float:
        sync()
        t0 = time.perf_counter()
        step(i)
        sync()
        return time.perf_counter() - t0

    warm, timed, i = [], [], 0
    bar = tqdm(desc=f"{desc}: warm-up", unit="it", disable=not progress, leave=False)
    t_start = time.perf_counter()
    while len(warm) < budget.warmup_iterations or time.perf_counter() - t_start < budget.warmup_s:
        warm.append(once(i))
        if reference is not None:
            reference(keep=False)
        i += 1
        bar.update(1)
    bar.set_description(f"{desc}: timing")
    t_start = time.perf_counter()
    cut = False
    while len(timed) < budget.min_iterations or time.perf_counter() - t_start < budget.min_seconds:
        if budget.max_seconds is not None and timed and time.perf_counter() - t_start >= budget.max_seconds:
            cut = True
            break
        timed.append(once(i))
        if reference is not None:
            reference()
        i += 1
        bar.update(1)
    bar.close()
    return warm, timed, cut


@dataclass
class ThroughputResult:
    """What :func:`measure_throughput` measured, with the conditions that shaped it."""

    entry: str
    device: str
    protocol: str
    views_per_video: int
    views_per_iteration: int  # views processed per timed iteration (a video, several, or a part)
    views_per_forward: int
    view_shape: tuple[int, int, int, int]  # 3 x T x H x W
    times_s: list[float]  # per timed iteration
    warmup_times_s: list[float]
    budget: LoopBudget
    cut_short: bool
    conditions: dict  # fast-path settings as they took effect + protocol details
    oom_backoffs: list[int] = field(default_factory=list)
    wall_s: float = 0.0
    weights: str = "random"
    # The machine's speed meanwhile (reference_kernel.py): times of the fixed workload run after
    # each timed iteration; empty when the loop ran none (CUDA).
    reference_times_s: list[float] = field(default_factory=list)
    reference_kernel: str | None = None
    # What the loop ran, to measure one iteration's memory afterwards: the model (nn.Module or
    # FastModel), its input buffers, and the step itself.
    model: object = None
    inputs: list = field(default_factory=list)
    step: Callable | None = None

    @property
    def stats(self) -> TimingStats:
        return TimingStats(tuple(self.times_s))

    @property
    def videos_per_iteration(self) -> float:
        return self.views_per_iteration / self.views_per_video

    @property
    def video_per_s(self) -> float:
        med = self.stats.median_s
        return self.videos_per_iteration / med if med > 0 else math.nan

    def metrics(self) -> dict:
        s = self.stats
        return {
            "video_per_s": self.video_per_s,
            "latency_median_ms": 1000.0 * s.median_s / self.videos_per_iteration,
            "spread": s.spread,
            "n_timed": s.n,
            "timed_s": s.total_s,
        }

    def method(self) -> dict:
        interleaved = self.conditions.get("interleaved_with")
        return {
            **({"interleaved_with": interleaved} if interleaved else {}),
            "name": "timed_loop",
            "protocol": self.protocol,
            "statistic": "median iteration time",
            "views_per_iteration": self.views_per_iteration,
            "views_per_video": self.views_per_video,
            "iteration": (f"{self.views_per_iteration} views = {self.videos_per_iteration:g} video(s); "
                          f"{self.views_per_forward} views per forward"),
            "budget": self.budget.as_dict(),
            "cut_short": self.cut_short,
            "weights": self.weights,
            **({"reference_kernel": self.reference_kernel} if self.reference_kernel else {}),
        }


def _view_shape(entry: ZooEntry) -> tuple[int, int, int, int]:
    size = entry.test.crop_size
    return (3, entry.data.clip_len, size, size)


def random_model(entry: ZooEntry, seed: int = 0) -> nn.Module:
    """The entry's model with seeded random weights (speed and memory do not depend on the weights)."""
    from .models import build_model

    torch.manual_seed(seed)
    return build_model(entry).eval()


def sync_fn(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def measure_throughput(
    entry: ZooEntry | str,
    *,
    device: str | torch.device = "cpu",
    protocol: str = "published",
    budget: LoopBudget | None = None,
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

    ``budget``: the loop's warm-up and minimum length (default per device and protocol).
    ``fast`` only: ``config`` (default: on CPU the autotuned winner, on CUDA
    :func:`~i3dbench.fastpath.default_fast_config`), ``overrides`` (FastConfig fields applied
    on top), ``batch_videos`` (videos per iteration; default 4 on CUDA, 1 on CPU) and
    ``views_per_forward`` (default: all views of the iteration; fewer on CPU makes an iteration
    a part of a video), halved on out-of-memory. ``model`` replaces the entry's randomly
    initialised model (same input shape). ``threads``: torch intra-op threads for the loop.
    """
    entry = get_entry(entry)
    if protocol not in PROTOCOLS:
        raise UsageError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for but this machine has no CUDA device; use --device cpu")
    for name, v in (("batch_videos", batch_videos), ("views_per_forward", views_per_forward), ("threads", threads)):
        if v is not None and int(v) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    budget = budget or default_budget(dev, protocol)
    wall0 = time.perf_counter()
    base = model if model is not None else random_model(entry, seed)
    gen = torch.Generator().manual_seed(seed)
    process_threads = torch.get_num_threads()
    try:
        if threads:
            torch.set_num_threads(int(threads))
        if protocol == "published":
            result = _published(entry, base, dev, budget, gen, progress)
        else:
            fixed = dict(overrides or {})
            if threads:
                fixed["threads"] = int(threads)
            cfg, tuned = _fast_config(entry, base, dev, config, fixed, gen)
            result = _fast(entry, base, dev, cfg, budget, gen, batch_videos, views_per_forward, progress)
            if tuned is not None:
                result.conditions["autotune"] = tuned
                if tuned.get("winner_is_published"):
                    result.conditions["fast_note"] = ("no fast-path lever beat the published configuration on this "
                                                      "device for this model: fast runs it")
    finally:
        torch.set_num_threads(process_threads)  # a measurement leaves the process as it found it
    result.wall_s = time.perf_counter() - wall0
    return result


def _published(entry, model, dev, budget, gen, progress) -> ThroughputResult:
    cfg = published_config()
    model = model.to(dev).eval()
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = False  # the I3D configs set no cudnn_benchmark
    views, shape = entry.views_per_video, _view_shape(entry)
    # What the dataloader hands the model: 1 x V x 3 x T x H x W normalised float32, pageable
    # host memory. Two buffers on CUDA so consecutive copies do not come from the same pages.
    pool = [torch.randn((1, views) + shape, generator=gen) for _ in range(2 if dev.type == "cuda" else 1)]

    def step(i: int):
        x = pool[i % len(pool)].to(dev)
        with torch.no_grad():
            scores = model(x.reshape((-1,) + shape))
            return average_views(scores, scores.shape[0], entry.test.average_clips).cpu().numpy()

    ref = for_device(dev)
    warm, times, cut = timed_loop(step, budget, sync=sync_fn(dev), progress=progress, desc=f"{entry.name} published",
                                  reference=ref)
    cond = cfg.as_conditions()
    cond.update(threads=torch.get_num_threads(), inference_mode=False, no_grad=True, input_dtype="float32",
                normalize_on_device=False, pinned_memory=False, folded_pairs=0)
    return ThroughputResult(
        entry=entry.name, device=str(dev), protocol="published", views_per_video=views, views_per_iteration=views,
        views_per_forward=views, view_shape=shape, times_s=times, warmup_times_s=warm, budget=budget, cut_short=cut,
        conditions=cond, model=model, inputs=pool, step=step,
        reference_times_s=ref.times_s if ref else [], reference_kernel=ref.name if ref else None,
    )


def _fast_config(entry, model, dev, config, overrides, gen) -> tuple[FastConfig, dict | None]:
    """The fast configuration: ``config`` as given; on CPU without one, the autotuned winner of
    :func:`~i3dbench.fastpath.cpu_candidates` plus the published configuration (unless
    ``overrides`` fixes the precision); on CUDA :func:`~i3dbench.fastpath.default_fast_config`.
    ``overrides`` apply last; ``compile`` is applied to the winner only (compiling every
    candidate costs ~25 s each on CPU)."""
    if config is not None:
        return config.replace(**overrides), None
    if dev.type != "cpu" or "precision" in overrides:
        return default_fast_config(dev).replace(**overrides), None
    compile_over = {k: overrides.pop(k) for k in ("compile", "compile_mode") if k in overrides}
    shape = _view_shape(entry)
    # Convolution widths and input shape decide the winner; entries sharing them (e.g. the R50
    # with and without non-local blocks) reuse the choice within a process.
    a = entry.arch
    key = (a.depth, a.base_channels, a.stage_blocks, shape, entry.views_per_video, tuple(sorted(overrides.items())),
           torch.get_num_threads())
    if key not in _AUTOTUNED:
        published = published_config().replace(**overrides)
        cands = [c.replace(**overrides) for c in cpu_candidates(try_one_thread="threads" not in overrides)]
        cands = [published] + [c for c in cands if c != published]
        sample = torch.randint(0, 256, (entry.views_per_video,) + shape, dtype=torch.uint8, generator=gen)
        cfg, times = autotune(model, sample, cands, mean=entry.data.mean, std=entry.data.std, rounds=3)
        _AUTOTUNED[key] = (cfg, {"times_s": {k: round(v, 5) for k, v in times.items()}, "measured_with": entry.name,
                                 "winner_is_published": cfg == published})
    cfg, tuned = _AUTOTUNED[key]
    return cfg.replace(**compile_over), tuned


_AUTOTUNED: dict = {}  # see _fast_config


def _fast(entry, model, dev, cfg, budget, gen, batch_videos, views_per_forward, progress) -> ThroughputResult:
    fm = prepare_model(model, dev, cfg, mean=entry.data.mean, std=entry.data.std)
    if cfg.threads:  # for the whole loop (measure_throughput restores the process's count after it)
        torch.set_num_threads(cfg.threads)
    views, shape = entry.views_per_video, _view_shape(entry)
    b0 = batch_videos or (CUDA_FAST_BATCH_VIDEOS if dev.type == "cuda" else 1)
    vpf0 = min(views_per_forward or b0 * views, b0 * views)
    pin = dev.type == "cuda"

    def attempt(vpf: int):
        # An iteration: b videos when vpf covers whole videos, else one forward of vpf views.
        b = max(1, vpf // views) if vpf >= views else 0
        per_iter = b * views if b else vpf
        pool = []
        for _ in range(2 if pin else 1):
            t = torch.randint(0, 256, (per_iter,) + shape, dtype=torch.uint8, generator=gen)
            pool.append(t.pin_memory() if pin else t)

        def step(i: int):
            scores = fm(pool[i % len(pool)])
            n_vid = max(1, per_iter // views) if b else 1
            return average_views(scores, scores.shape[0] // n_vid, entry.test.average_clips).cpu().numpy()

        fm(pool[0])  # creates the kernels for this shape (and compiles, if asked): never timed
        ref = for_device(dev)
        warm, times, cut = timed_loop(step, budget, sync=sync_fn(dev), progress=progress, desc=f"{entry.name} fast",
                                      reference=ref)
        return warm, times, cut, per_iter, step, pool, ref

    (warm, times, cut, per_iter, step, pool, ref), vpf, failed = run_with_oom_backoff(attempt, vpf0, min_batch=1)
    cond = fm.conditions()
    cond.update(no_grad=False, input_dtype="uint8", normalize_on_device=True, pinned_memory=pin, primed=True)
    return ThroughputResult(
        entry=entry.name, device=str(dev), protocol="fast", views_per_video=views, views_per_iteration=per_iter,
        views_per_forward=min(vpf, per_iter), view_shape=shape, times_s=times, warmup_times_s=warm, budget=budget,
        cut_short=cut, conditions=cond, oom_backoffs=failed, model=fm, inputs=pool, step=step,
        reference_times_s=ref.times_s if ref else [], reference_kernel=ref.name if ref else None,
    )


def measure_interleaved(entry: ZooEntry | str, models: dict, *, device: str | torch.device = "cpu",
                        protocol: str = "published", budget: LoopBudget | None = None, threads: int | None = None,
                        progress: bool = True) -> dict[str, ThroughputResult]:
    """Time several models (or the same one twice) in ONE loop whose iterations take turns, in a
    rotating order: each result gets its own iteration times, all from the same span of time.

    Why: on a shared or virtual machine the speed drifts between windows seconds apart (up to
    ~1.4x measured on this project's 2-core machine), which no test on two separate windows can
    tell from a regression; interleaved, the drift lands on every model alike. ``budget`` applies
    to each model (``min_iterations`` iterations each, ``min_seconds`` in all). ``fast``: each
    model gets the configuration :func:`measure_throughput` would choose (autotuned once).
    """
    entry = get_entry(entry)
    budget = budget or default_budget(torch.device(device), protocol)
    names = list(models)
    process_threads = torch.get_num_threads()
    try:
        if threads:
            torch.set_num_threads(int(threads))
        # Each model's own loop set-up (inputs, prepared model, its step), primed by one untimed
        # iteration: the protocol functions with a one-iteration budget.
        one = LoopBudget(warmup_iterations=0, warmup_s=0.0, min_iterations=1, min_seconds=0.0)
        results = {n: measure_throughput(entry, device=device, protocol=protocol, budget=one, model=models[n],
                                         threads=threads, progress=False) for n in names}
        if threads:
            torch.set_num_threads(int(threads))
        dev = torch.device(device)
        sync = sync_fn(dev)
        ref = for_device(dev)  # once per round: every model's record carries the same reference times
        times: dict[str, list[float]] = {n: [] for n in names}
        warm: dict[str, list[float]] = {n: [] for n in names}

        def one_round(r: int, into: dict) -> None:
            for k in range(len(names)):
                n = names[(r + k) % len(names)]
                step = results[n].step
                sync()
                t0 = time.perf_counter()
                step(r)
                sync()
                into[n].append(time.perf_counter() - t0)
            if ref is not None:
                ref(keep=into is times)

        from tqdm import tqdm

        bar = tqdm(desc=f"{entry.name} {protocol} x{len(names)} interleaved: warm-up", unit="round",
                   disable=not progress, leave=False)
        r, t_start = 0, time.perf_counter()
        while r < budget.warmup_iterations or time.perf_counter() - t_start < budget.warmup_s:
            one_round(r, warm)
            r += 1
            bar.update(1)
        bar.set_description(f"{entry.name} {protocol} x{len(names)} interleaved: timing")
        t_start, cut = time.perf_counter(), False
        while (min(len(v) for v in times.values()) < budget.min_iterations
               or time.perf_counter() - t_start < budget.min_seconds):
            if budget.max_seconds is not None and time.perf_counter() - t_start >= budget.max_seconds:
                cut = True
                break
            one_round(r, times)
            r += 1
            bar.update(1)
        bar.close()
    finally:
        torch.set_num_threads(process_threads)
    out = {}
    for n in names:
        tp = results[n]
        tp.times_s, tp.warmup_times_s, tp.budget, tp.cut_short = times[n], warm[n], budget, cut
        tp.conditions["interleaved_with"] = [m for m in names if m != n]
        tp.reference_times_s = list(ref.times_s) if ref else []
        tp.reference_kernel = ref.name if ref else None
        out[n] = tp
    return out


def ratio_note(fast: ThroughputResult, published: ThroughputResult) -> dict:
    """How the two protocols compare when measured side by side in one run (for the fast record)."""
    r = fast.video_per_s / published.video_per_s if published.video_per_s else math.nan
    note = None
    if r < 1.0:
        why = fast.conditions.get("fast_note") or "the autotuned configuration lost to the published one in the timed loop"
        note = f"fast was slower than published here (x{r:.3f}): {why}; within timing noise when the spreads overlap"
    return {"fast_over_published": r, "published_video_per_s": published.video_per_s, "note": note}


__all__ = ["CPU_BUDGET", "PROTOCOLS", "LoopBudget", "ThroughputResult", "TimingStats", "measure_interleaved",
           "measure_throughput",
           "random_model", "ratio_note", "timed_loop"]
