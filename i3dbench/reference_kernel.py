"""How fast the machine itself ran while a loop was timed: a fixed torch workload timed after
every timed iteration.

Why: two runs of the same code on a shared or virtual machine (CI runners, this project's
2-core VM) can differ by far more than the gate's speed tolerance (unchanged code was measured
x1.9 slower than a run two minutes earlier). When both records of a speed comparison carry the
times of the same reference workload, the gate divides out the machine's change in speed
(``median(reference, new) / median(reference, baseline)``) before it judges the model.

The workload depends on torch alone (not on this package's model code, so a slowed model does
not slow it): one fp32 ``conv3d`` of fixed, seeded tensors, about 3 ms on 2 CPU cores. It runs
on the CPU only; CUDA loops carry no reference (their timed region is MMAction2's, unchanged).
"""

from __future__ import annotations

import time

import torch

INPUT_SHAPE = (1, 16, 4, 28, 28)
WEIGHT_SHAPE = (16, 16, 3, 3, 3)
NAME = (f"conv3d fp32 {'x'.join(map(str, INPUT_SHAPE))} * {'x'.join(map(str, WEIGHT_SHAPE))}, padding 1, "
        f"no grad, torch {torch.__version__.split('+')[0]}")


class ReferenceKernel:
    """Call it to run and time the workload once; ``times_s`` keeps the times of the calls made
    with ``keep=True`` (the timed part of a loop; warm-up calls pass ``keep=False``)."""

    name = NAME

    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(0)
        self._x = torch.randn(INPUT_SHAPE, generator=gen)
        self._w = torch.randn(WEIGHT_SHAPE, generator=gen)
        self.times_s: list[float] = []

    def __call__(self, keep: bool = True) -> float:
        with torch.no_grad():
            t0 = time.perf_counter()
            torch.nn.functional.conv3d(self._x, self._w, padding=1)
            dt = time.perf_counter() - t0
        if keep:
            self.times_s.append(dt)
        return dt


def for_device(device: torch.device) -> ReferenceKernel | None:
    """The reference for a loop on ``device``: the CPU's, or None (CUDA)."""
    return ReferenceKernel() if device.type == "cpu" else None
