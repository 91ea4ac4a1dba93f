"""The fast inference path: the same scores as the plain model, computed faster.

Levers, each a field of :class:`FastConfig` so that a record can name every one of them:

* **conv-BN folding** (:func:`fold_conv_bn`): every ``conv -> bn`` pair (MMAction2's
  ``ConvModule`` naming, which our ``ConvBNAct`` keeps) becomes one convolution with a bias.
  Exact in real arithmetic; in fp32 it differs from the unfolded model by rounding only.
* **precision**: ``bf16`` / ``fp16`` weights and activations. On CPU the weights are cast once
  (measured faster than autocast, which re-casts every weight on every call); on CUDA the
  weights are cast too and autocast stays on, so that the ops autocast keeps in fp32 (softmax,
  reductions) stay there.
* **memory format** ``channels_last_3d`` (NDHWC): what oneDNN and cuDNN convolutions prefer.
* **torch.compile** (inductor; on CPU with ``freezing`` so oneDNN weights are pre-packed), and
  on CUDA optionally CUDA graphs (``mode="reduce-overhead"``).
* ``torch.inference_mode``, ``cudnn.benchmark``, a thread count (set on every call: on cores
  shared with other work one thread can be 3x faster than two, see :func:`cpu_candidates`).

No configuration wins everywhere, so on CPU :func:`autotune` times candidates on the spot.

The prepared model (:class:`FastModel`) takes what the data pipeline produces — views
``V x 3 x T x H x W``, either uint8 (then normalised on the device, which moves 4x fewer
bytes to a GPU) or already-normalised float — and returns fp32 logits ``V x num_classes``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
MEMORY_FORMATS = {"contiguous": torch.contiguous_format, "channels_last_3d": torch.channels_last_3d}
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BNS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass(frozen=True)
class FastConfig:
    """How to run the model. Every field ends up in the record's conditions."""

    precision: str = "fp32"  # fp32 | bf16 | fp16
    memory_format: str = "contiguous"  # contiguous | channels_last_3d
    fold_bn: bool = False
    compile: bool = False
    compile_mode: str | None = None  # torch.compile mode; "reduce-overhead" = CUDA graphs
    autocast: bool = False  # wrap the forward in torch.autocast(precision) (CUDA default)
    cudnn_benchmark: bool = False
    threads: int | None = None  # intra-op threads, set on every call; None leaves the process's

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"FastConfig.precision must be one of {sorted(PRECISIONS)}, got {self.precision!r}")
        if self.memory_format not in MEMORY_FORMATS:
            raise ValueError(
                f"FastConfig.memory_format must be one of {sorted(MEMORY_FORMATS)}, got {self.memory_format!r}"
            )

    def replace(self, **changes) -> FastConfig:
        return dataclasses.replace(self, **changes)

    def as_conditions(self) -> dict:
        return dataclasses.asdict(self)


def cpu_supports_bf16() -> bool:
    """True when oneDNN has bf16 kernels for this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # older torch without the query
        return False


def published_config() -> FastConfig:
    """MMAction2's benchmark.py settings: fp32, contiguous, no fusion, no compile, cudnn.benchmark off."""
    return FastConfig()


def default_fast_config(device: str | torch.device, *, compile: bool | None = None) -> FastConfig:
    """The best settings we know for ``device``.

    CPU: bf16 weights (when oneDNN has bf16 kernels, else fp32) + channels_last_3d + conv-BN
    folding; ``compile`` (inductor with freezing) is off unless asked, because it costs ~25 s
    per input shape on 2 cores. CUDA: bf16 + autocast, channels_last_3d, folding,
    cudnn.benchmark and torch.compile.
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        return FastConfig(
            precision="bf16",
            memory_format="channels_last_3d",
            fold_bn=True,
            compile=True if compile is None else compile,
            autocast=True,
            cudnn_benchmark=True,
        )
    return FastConfig(
        precision="bf16" if cpu_supports_bf16() else "fp32",
        memory_format="channels_last_3d",
        fold_bn=True,
        compile=bool(compile),
    )


def cpu_candidates(*, try_one_thread: bool = False) -> list[FastConfig]:
    """CPU configurations worth trying: folded + channels_last_3d, in fp32 and (if supported)
    bf16, at torch's thread count; with ``try_one_thread`` also the low-precision one on a
    single thread.

    Why one thread: on a machine whose cores are shared with other work, an OpenMP team
    waits at every barrier for whichever of its threads the scheduler parked; one thread
    never waits. Measured on this project's 2 shared cores under load: 0.55 s per view on 1
    thread vs 1.66 s on 2 (the other way round, ~2x, when the machine is idle).
    """
    base = FastConfig(memory_format="channels_last_3d", fold_bn=True)
    out = [base]
    if cpu_supports_bf16():
        out.append(base.replace(precision="bf16"))
    if try_one_thread and torch.get_num_threads() > 1:
        out.append(out[-1].replace(threads=1))
    return out


def autotune(
    model: nn.Module,
    sample: torch.Tensor,
    candidates: Sequence[FastConfig],
    *,
    device: str | torch.device = "cpu",
    rounds: int = 2,
    max_call_s: float = 1.0,
    margin: float = 0.1,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> tuple[FastConfig, dict[str, float]]:
    """The fastest of ``candidates`` on ``sample`` views, and each one's best time (s).

    Why: no configuration wins everywhere. On this project's CPU bf16 is ~3x faster than fp32
    for the R50 I3D, yet slower than fp32 for the narrow smoke model at some batch sizes
    (oneDNN lacks fast bf16 kernels for such narrow convolutions), and the best thread count
    depends on how busy the machine is. Each candidate is called once untimed on one view
    (kernel creation), then once timed on one view. When the slowest of those times the
    number of views in ``sample`` is at most ``max_call_s``, the whole sample is what gets
    timed (after one more untimed call), ``rounds`` times; else the one-view calls go on for
    ``rounds - 1`` more. Rounds are interleaved across candidates; the best time of each
    counts. ``candidates`` are in order of preference (exact before rounded, all threads
    before one): a later one replaces the choice only when more than ``margin`` faster, so a
    tie within timing noise keeps the preferred one. Time keys are :func:`config_label` plus
    ``@<views>``. The thread count of the process is restored afterwards.
    """
    if not candidates:
        raise ValueError("autotune needs at least one candidate configuration")
    threads = torch.get_num_threads()
    sync = (lambda: torch.cuda.synchronize()) if torch.device(device).type == "cuda" else (lambda: None)

    def timed(fm, x) -> float:
        torch.set_num_threads(fm.config.threads or threads)  # a 1-thread candidate must not leak into the next
        sync()
        t0 = time.perf_counter()
        fm(x)
        sync()
        return time.perf_counter() - t0

    try:
        prepared = {config_label(c): (c, prepare_model(model, device, c, mean=mean, std=std)) for c in candidates}
        one = sample[:1]
        for _, fm in prepared.values():
            torch.set_num_threads(fm.config.threads or threads)
            fm(one)  # the first call creates the kernels: not representative
        best = {key: timed(fm, one) for key, (_, fm) in prepared.items()}
        todo = rounds - 1
        if sample.shape[0] > 1 and max(best.values()) * sample.shape[0] <= max_call_s:
            for _, fm in prepared.values():
                torch.set_num_threads(fm.config.threads or threads)
                fm(sample)
            best = dict.fromkeys(prepared, math.inf)
            todo = rounds
        else:
            sample = one
        for _ in range(todo):
            for key, (_, fm) in prepared.items():
                best[key] = min(best[key], timed(fm, sample))
    finally:
        torch.set_num_threads(threads)
    winner = next(iter(prepared))
    for key in prepared:
        if best[key] < best[winner] * (1.0 - margin):
            winner = key
    return prepared[winner][0], {f"{k}@{sample.shape[0]}": v for k, v in best.items()}


def config_label(c: FastConfig) -> str:
    """Short name of a configuration, e.g. ``bf16-cl3d-fold``."""
    parts = [c.precision]
    if c.memory_format == "channels_last_3d":
        parts.append("cl3d")
    if c.fold_bn:
        parts.append("fold")
    if c.compile:
        parts.append("compiled")
    if c.threads:
        parts.append(f"{c.threads}thr")
    return "-".join(parts)


# --------------------------------------------------------------------------- conv-BN folding


def _fold_pair(conv: nn.Module, bn: nn.Module) -> nn.Module:
    """One conv with the eval-mode BN affine map applied to its output folded into it.

    bn(conv(x)) = gamma * (W*x + b - mu) / sqrt(var + eps) + beta
                = (s W) * x + (s (b - mu) + beta),   s = gamma / sqrt(var + eps)
    Computed in float64 so the folded fp32 weights round once.
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(f"cannot fold {bn}: it keeps no running statistics (track_running_stats=False)")
    w = conv.weight.detach().double()
    mean = bn.running_mean.detach().double()
    scale = (bn.weight.detach().double() if bn.weight is not None else torch.ones_like(mean)) / torch.sqrt(
        bn.running_var.detach().double() + bn.eps
    )
    shift = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(mean)
    bias = conv.bias.detach().double() if conv.bias is not None else torch.zeros_like(mean)
    fused = copy.deepcopy(conv)
    if fused.bias is None:
        fused.bias = nn.Parameter(torch.empty(conv.out_channels, dtype=conv.weight.dtype, device=conv.weight.device))
    with torch.no_grad():
        fused.weight.copy_((w * scale.reshape((-1,) + (1,) * (w.dim() - 1))).to(conv.weight.dtype))
        fused.bias.copy_(((bias - mean) * scale + shift).to(conv.weight.dtype))
    return fused


def fold_conv_bn(model: nn.Module, *, inplace: bool = False) -> tuple[nn.Module, int]:
    """Fold every ``conv``/``bn`` attribute pair into the conv; returns (model in eval mode, pairs).

    A pair is a module with a child ``conv`` (Conv1d/2d/3d) and a child ``bn`` (BatchNorm)
    whose forward applies ``bn`` right after ``conv`` — the contract of our ``ConvBNAct`` and of
    mmcv's ``ConvModule`` (conv, norm, act order). ``bn`` becomes ``nn.Identity()``. Only valid
    for inference with frozen statistics, so the result is put in eval mode.
    """
    out = model if inplace else copy.deepcopy(model)
    out.eval()
    count = 0
    for module in out.modules():
        conv, bn = getattr(module, "conv", None), getattr(module, "bn", None)
        if isinstance(conv, _CONVS) and isinstance(bn, _BNS):
            if bn.num_features != conv.out_channels:
                raise ValueError(
                    f"{type(module).__name__}: bn has {bn.num_features} features but conv has "
                    f"{conv.out_channels} output channels; not a conv->bn pair"
                )
            module.conv = _fold_pair(conv, bn)
            module.bn = nn.Identity()
            count += 1
    return out, count


# --------------------------------------------------------------------------- the prepared model


class FastModel:
    """A model prepared for inference under a :class:`FastConfig` on one device.

    Call it with views ``V x 3 x T x H x W`` (uint8 or normalised float, on any device); it
    returns fp32 logits ``V x num_classes`` on the model's device. ``mean``/``std`` are needed
    only for uint8 input.
    """

    def __init__(
        self,
        module: nn.Module,
        device: torch.device,
        config: FastConfig,
        *,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        folded_pairs: int = 0,
        compiled: bool = False,
        compile_error: str | None = None,
    ) -> None:
        self.module = module
        self.device = device
        self.config = config
        self.dtype = PRECISIONS[config.precision]
        self.memory_format = MEMORY_FORMATS[config.memory_format]
        self.folded_pairs = folded_pairs
        self.compiled = compiled
        self.compile_error = compile_error
        self._compile_ok = False
        self._eager = getattr(module, "_orig_mod", module)
        self._mean = self._std = None
        if mean is not None and std is not None:
            shape = (1, 3, 1, 1, 1)
            self._mean = torch.tensor(mean, dtype=torch.float32, device=device).reshape(shape)
            self._std = torch.tensor(std, dtype=torch.float32, device=device).reshape(shape)

    def to_input(self, views: torch.Tensor) -> torch.Tensor:
        """Move views to the device, normalise uint8 there, cast, set the memory format."""
        x = views.to(self.device, non_blocking=True)
        if x.dtype == torch.uint8:
            if self._mean is None:
                raise ValueError("uint8 views need mean/std: pass them to prepare_model()")
            x = (x.float() - self._mean) / self._std
        return x.to(dtype=self.dtype, memory_format=self.memory_format)

    def __call__(self, views: torch.Tensor) -> torch.Tensor:
        if self.config.threads and torch.get_num_threads() != self.config.threads:
            # the configuration owns the process's intra-op thread count while it runs
            torch.set_num_threads(self.config.threads)
        with torch.inference_mode(), self._autocast():
            x = self.to_input(views)
            if self.compiled and not self._compile_ok:
                out = self._first_compiled_call(x)
            else:
                out = self.module(x).float()
            # CUDA graphs ("reduce-overhead") reuse their output buffers on the next replay:
            # hand out a copy, or a caller holding several chunks' outputs would see them change.
            return out.clone() if self.compiled and "reduce-overhead" in (self.config.compile_mode or "") else out

    def _first_compiled_call(self, x: torch.Tensor) -> torch.Tensor:
        # torch.compile is lazy: backend failures (no compiler, unsupported op) show up at the
        # first call. Fall back to the eager module then, and say so in conditions().
        try:
            out = self.module(x).float()
        except Exception as err:  # any backend failure; an OOM is re-raised below
            if is_oom(err):
                raise
            self.compile_error = f"{type(err).__name__}: {str(err)[:500]}"
            self.module, self.compiled = self._eager, False
            return self.module(x).float()
        self._compile_ok = True
        return out

    def _autocast(self):
        if self.config.autocast and self.dtype != torch.float32:
            return torch.autocast(self.device.type, dtype=self.dtype)
        return torch.autocast(self.device.type, enabled=False)

    def conditions(self) -> dict:
        """The settings as they took effect (e.g. compile may have failed and fallen back)."""
        out = self.config.as_conditions()
        out.update(
            compile=self.compiled,
            folded_pairs=self.folded_pairs,
            threads=self.config.threads or torch.get_num_threads(),
            inference_mode=True,
        )
        if self.compile_error:
            out["compile_error"] = self.compile_error
        return out


def prepare_model(
    model: nn.Module,
    device: str | torch.device = "cpu",
    config: FastConfig | None = None,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> FastModel:
    """Copy ``model`` and apply ``config`` (default: :func:`default_fast_config`) for ``device``.

    The original model is not modified. A failing ``torch.compile`` falls back to eager and is
    reported in :meth:`FastModel.conditions` (``compile: False`` + ``compile_error``), never
    silently.
    """
    dev = torch.device(device)
    config = config or default_fast_config(dev)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = config.cudnn_benchmark
    module = copy.deepcopy(model).eval()
    folded = 0
    if config.fold_bn:
        module, folded = fold_conv_bn(module, inplace=True)
    module = module.to(dev, dtype=PRECISIONS[config.precision], memory_format=MEMORY_FORMATS[config.memory_format])
    for p in module.parameters():
        p.requires_grad_(False)
    compiled, error = False, None
    if config.compile:
        module, compiled, error = _compile(module, dev, config)
    return FastModel(module, dev, config, mean=mean, std=std, folded_pairs=folded, compiled=compiled, compile_error=error)


def _compile(module: nn.Module, device: torch.device, config: FastConfig):
    """torch.compile, or the eager module and the reason it could not be compiled."""
    # torch.compile takes a mode or inductor options, not both. On CPU, "freezing" lets inductor
    # treat the weights as constants and pre-pack them for oneDNN (most of its CPU gain).
    if device.type == "cpu" and config.compile_mode is None:
        kwargs = {"options": {"freezing": True}}
    else:
        kwargs = {"mode": config.compile_mode}
    try:
        compiled = torch.compile(module, dynamic=False, **kwargs)
        return compiled, True, None
    except Exception as err:  # noqa: BLE001 - compile backends fail in many ways; fall back, but say so
        return module, False, f"{type(err).__name__}: {err}"


# --------------------------------------------------------------------------- OOM back-off


def is_oom(err: BaseException) -> bool:
    """True for CUDA's OutOfMemoryError and for the CPU allocator's 'can't allocate' error."""
    if isinstance(err, torch.OutOfMemoryError):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def run_with_oom_backoff(
    fn: Callable[[int], object], batch: int, *, min_batch: int = 1, on_backoff: Callable[[int, int], None] | None = None
) -> tuple[object, int, list[int]]:
    """Call ``fn(batch)``; on out-of-memory halve ``batch`` and retry down to ``min_batch``.

    Returns ``(fn's result, the batch that worked, the batches that ran out of memory)``.
    The OOM of the smallest batch is re-raised. ``on_backoff(failed, next)`` is told each step.
    """
    failed: list[int] = []
    while True:
        try:
            return fn(batch), batch, failed
        except Exception as err:  # only an OOM is handled; the rest is re-raised
            if not is_oom(err) or batch <= min_batch:
                raise
            failed.append(batch)
            nxt = max(min_batch, batch // 2)
            del err  # drop the traceback's frame references so the memory can be freed
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if on_backoff is not None:
                on_backoff(failed[-1], nxt)
            batch = nxt
