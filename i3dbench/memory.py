"""Peak memory of inference and of a training step, measured the same way for every entry.

Memory kinds (a record names the kind of each number; numbers of different kinds are never
compared or shown under one header):

* ``cuda_max_memory_allocated`` — CUDA's allocator peak in MiB, truncated to int as MMAction2's
  logger prints it, after ``reset_peak_memory_stats``. For a training step at the recipe batch
  this is the quantity behind the published ``gpu_mem`` (a training-log figure).
* ``cpu_tensor_peak`` — the CPU counterpart: bytes of tensors alive at the start (weights,
  inputs, optimizer state) plus the peak of what the measured code allocates on top, counted
  by torch.profiler's allocator events. It does not depend on what the process did before
  (peak RSS does: freed heap pages and oneDNN scratch buffers are reused), so it is free of
  run-order effects.

The profiler of some torch builds prints ``USDT ... profiler_start/stop`` lines on the C-level
stderr; :func:`cpu_tensor_peak` filters those two lines out and passes everything else through.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .fastpath import is_oom
from .zoo import ZooEntry, get_entry

CUDA_KIND = "cuda_max_memory_allocated"
CPU_KIND = "cpu_tensor_peak"
_PROFILER_NOISE = re.compile(rb"^USDT:.*profiler_(start|stop)\s*$")


def memory_kind(device: torch.device) -> str:
    return CUDA_KIND if torch.device(device).type == "cuda" else CPU_KIND


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


@contextlib.contextmanager
def _quiet_profiler_stderr():
    """Route the C-level stderr through a temp file and give back all but the profiler's USDT lines."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        # sys.stderr replaced by an object without a descriptor (pytest's capture, a notebook):
        # the C++ profiler still writes to descriptor 2.
        fd = 2
    try:
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        pass
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            kept = [line for line in tmp.read().splitlines(keepends=True) if not _PROFILER_NOISE.match(line)]
            if kept:
                os.write(fd, b"".join(kept))


def cpu_tensor_peak(fn: Callable[[], object]) -> int | None:
    """Peak bytes of CPU tensor memory ``fn`` allocates above what was live when it started
    (``None`` when the profiler reports no memory events)."""
    from torch.profiler import ProfilerActivity, profile

    with _quiet_profiler_stderr():
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
        with tempfile.TemporaryDirectory() as tmp:
            trace = Path(tmp) / "trace.json"
            prof.export_chrome_trace(str(trace))
            events = json.loads(trace.read_text()).get("traceEvents", [])
    mem = [e["args"] for e in events if e.get("name") == "[memory]" and "Total Allocated" in e.get("args", {})]
    if not mem:
        return None
    # "Total Allocated" is the allocator's running total as the profiler tracks it, which carries
    # over what earlier profiling sessions allocated and freed after they ended: the session's
    # own baseline is the total before its first event.
    base = mem[0]["Total Allocated"] - mem[0].get("Bytes", 0)
    return max(0, max(m["Total Allocated"] for m in mem) - base)


def peak_of(fn: Callable[[], object], device: torch.device, live: tuple = ()) -> dict:
    """Peak memory (MiB) of one call of ``fn`` on ``device``, with its kind.

    CUDA: ``max_memory_allocated`` after a reset (everything allocated, weights included).
    CPU: ``tensor_bytes(*live)`` + :func:`cpu_tensor_peak` of ``fn`` — pass in ``live`` what the
    call needs that already exists (model, inputs) so the two kinds count the same things.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return {"peak_mb": int(torch.cuda.max_memory_allocated(device) / 2**20), "kind": CUDA_KIND}
    base = tensor_bytes(*live)
    grown = cpu_tensor_peak(fn)
    if grown is None:
        return {"peak_mb": None, "kind": CPU_KIND, "error": "the profiler reported no memory events"}
    return {"peak_mb": round((base + grown) / 2**20, 1), "kind": CPU_KIND,
            "live_at_start_mb": round(base / 2**20, 1)}


@dataclass
class TrainMemory:
    """Peak memory of training steps at the recipe batch (``peak_mb`` None when it ran out of memory)."""

    peak_mb: float | None
    kind: str
    batch: int
    steps: int
    input_shape: tuple[int, int, int, int]
    details: dict = field(default_factory=dict)


def measure_train_memory(
    entry: ZooEntry | str,
    *,
    device: str | torch.device = "cpu",
    batch: int | None = None,
    steps: int | None = None,
    model: nn.Module | None = None,
    threads: int | None = None,
    seed: int = 0,
) -> TrainMemory:
    """Peak memory of ``steps`` training steps at the published batch (default: the recipe's
    videos per GPU, 8) of the entry's train input (3 x clip_len x train_crop^2), fp32, SGD with
    the recipe's momentum and weight decay, cross-entropy and gradient clipping. ``steps``
    defaults to 2 on CUDA (the momentum buffers exist from the second step on, as in a long run)
    and 1 on CPU, where a full-size step takes about half a minute. ``zero_grad`` keeps the
    gradient tensors, as 2020's optimizer hook did. An out-of-memory is reported in ``details``,
    not raised. ``threads``: CPU intra-op threads for the duration (changes the time, not the memory).
    """
    from .timing import random_model

    entry = get_entry(entry)
    dev = torch.device(device)
    batch = int(batch or entry.recipe.videos_per_gpu)
    steps = int(steps or (2 if dev.type == "cuda" else 1))
    shape = (3, entry.data.clip_len, entry.data.train_crop, entry.data.train_crop)
    base = model if model is not None else random_model(entry, seed)
    gen = torch.Generator().manual_seed(seed)
    r = entry.recipe
    process_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        net = copy.deepcopy(base).to(dev).train()
        for p in net.parameters():
            p.requires_grad_(True)
        opt = torch.optim.SGD(net.parameters(), lr=r.lr, momentum=r.momentum, weight_decay=r.weight_decay)
        x = torch.randn((batch,) + shape, generator=gen).to(dev)
        y = torch.randint(0, entry.arch.num_classes, (batch,), generator=gen).to(dev)

        def run() -> None:
            for _ in range(steps):
                loss = nn.functional.cross_entropy(net(x), y)
                opt.zero_grad(set_to_none=False)
                loss.backward()
                if r.grad_clip:
                    nn.utils.clip_grad_norm_(net.parameters(), r.grad_clip)
                opt.step()

        got = peak_of(run, dev, live=(net, opt, x, y))
        details = {k: v for k, v in got.items() if k not in ("peak_mb", "kind")}
        details["threads"] = torch.get_num_threads()
        return TrainMemory(got["peak_mb"], got["kind"], batch, steps, shape, details)
    except Exception as err:  # only an OOM is reported; the rest is re-raised
        if not is_oom(err):
            raise
        return TrainMemory(None, memory_kind(dev), batch, steps, shape,
                           {"oom": f"{type(err).__name__}: {str(err)[:300]}"})
    finally:
        torch.set_num_threads(process_threads)
        if dev.type == "cuda":
            torch.cuda.empty_cache()


__all__ = ["CPU_KIND", "CUDA_KIND", "TrainMemory", "cpu_tensor_peak", "measure_train_memory", "memory_kind",
           "peak_of", "tensor_bytes"]
