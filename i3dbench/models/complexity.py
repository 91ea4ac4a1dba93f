"""Parameters and multiply-accumulates of a model, and the two "FLOPs" MMAction2 published.

``macs`` comes from ``torch.utils.flop_counter.FlopCounterMode`` divided by 2: the
multiply-adds of convolutions, linear layers and matrix products (the non-local blocks'
``theta^T phi`` and ``f g`` included). Elementwise ops, BN, pooling and softmax count 0.

The two metafiles used other counters, reproduced here from the same forward:

* MMAction2 1.x (mmengine's fvcore-style counter, ``tools/analysis_tools/get_flops.py`` on
  the backbone): one per multiply-add of conv / linear / matmul, plus 2 per element of each
  eval-mode BatchNorm -> :attr:`Complexity.flops_1x` = ``macs + norm_ops``.
* MMAction2 0.x (mmcv 1.x's module-hook counter): conv / linear multiply-adds, conv bias
  adds, 2 per BN element, 1 per element entering a ReLU, a max-pool or an average-pool —
  but nothing for ``torch.matmul`` called inside a module's forward, which is invisible to
  module hooks -> :attr:`Complexity.flops_0x` = ``macs - matmul_macs + norm_ops + other_ops``.
  This is why the 0.x metafile's non-local figures are ~5 G (dot-product / embedded
  Gaussian) and ~7.5 G (Gaussian) lower than the 1.x ones at the same input.

The forward runs on a ``meta`` copy of the model: shapes only, no arithmetic and no memory,
so a 43 GMAC I3D is counted in a fraction of a second and the caller's model (and its
device memory) is left alone.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool3d, nn.AdaptiveAvgPool3d, nn.AdaptiveAvgPool2d)


class Complexity(NamedTuple):
    params: int  # parameters (buffers such as BN statistics excluded)
    macs: int  # multiply-accumulates of conv / linear / matmul in one forward
    matmul_macs: int  # the part of ``macs`` from matrix products outside nn.Linear (non-local blocks)
    norm_ops: int  # 2 per BatchNorm element (scale and shift)
    other_ops: int  # 1 per element into ReLU / pooling, 1 per conv-bias add (mmcv 0.x counter)

    @property
    def flops_1x(self) -> int:
        """What MMAction2 1.x's metafile calls FLOPs (mmengine's counter)."""
        return self.macs + self.norm_ops

    @property
    def flops_0x(self) -> int:
        """What MMAction2 0.x's metafile calls FLOPs (mmcv 1.x's module-hook counter)."""
        return self.macs - self.matmul_macs + self.norm_ops + self.other_ops

    def flops_as_published(self, mmaction: str) -> int:
        """The figure in the convention of the metafile an entry comes from (``"0.x"`` or ``"1.x"``)."""
        return self.flops_0x if mmaction == "0.x" else self.flops_1x


def meta_copy(model: nn.Module) -> nn.Module:
    """A structural copy of ``model`` whose parameters and buffers live on the meta device."""
    memo: dict[int, object] = {}
    for p in model.parameters():
        memo[id(p)] = nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
    for b in model.buffers():
        memo[id(b)] = torch.empty_like(b, device="meta")
    return copy.deepcopy(model, memo)


def _passthrough(x: torch.Tensor) -> torch.Tensor:
    return x


def _count(net: nn.Module, x: torch.Tensor) -> tuple[int, int, int, int]:
    norm_ops = other_ops = 0

    def hook(mod: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        nonlocal norm_ops, other_ops
        n_in = inputs[0].numel()
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            norm_ops += n_in * (2 if mod.affine else 1)
        elif isinstance(mod, (nn.ReLU, *_POOLS)):
            other_ops += n_in
        elif isinstance(mod, nn.modules.conv._ConvNd) and mod.bias is not None:
            other_ops += out.numel()

    hooks = [m.register_forward_hook(hook) for m in net.modules()]
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net(x)
    finally:
        net.train(was_training)
        for h in hooks:
            h.remove()
    by_op = {str(op): n for op, n in counter.get_flop_counts().get("Global", {}).items()}
    matmul = sum(n for op, n in by_op.items() if op.split(".")[-1] in ("bmm", "mm", "baddbmm"))
    return counter.get_total_flops() // 2, matmul // 2, norm_ops, other_ops


def count_params_macs(
    model: nn.Module, input_shape: Sequence[int] = (1, 3, 32, 256, 256), *, on_meta: bool = True
) -> Complexity:
    """Parameters and operation counts of one eval-mode forward at ``input_shape`` (float32).

    The default shape is the one both metafiles used, 1 x 3 x 32 x 256 x 256. ``on_meta=False``
    runs the real forward on the model's own device instead (slow; used to check that the
    meta count is identical).
    """
    params = sum(p.numel() for p in model.parameters())
    if on_meta:
        net, x = meta_copy(model), torch.empty(tuple(input_shape), device="meta")
        # BN keeps shapes and costs no MACs; on meta tensors its decomposition is slow
        # Python, so the private copy's BNs pass their input through (the hook still counts them).
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.forward = _passthrough
    else:
        ref = next(model.parameters())
        net, x = model, torch.zeros(tuple(input_shape), device=ref.device, dtype=ref.dtype)
    macs, matmul, norm_ops, other_ops = _count(net, x)
    return Complexity(params, macs, matmul, norm_ops, other_ops)
