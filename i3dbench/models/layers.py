"""The one building block every I3D module is made of: a 3D conv, optionally BN3d and ReLU.

Attribute names are ``conv`` and ``bn`` because MMAction2 wraps each of its convolutions
in mmcv's ``ConvModule`` (which names its norm layer ``bn`` for BN3d); keeping the names
is what makes our ``state_dict()`` keys equal to MMAction2's checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn

Triple = tuple[int, int, int]


def _triple(v: int | tuple[int, ...]) -> Triple:
    if isinstance(v, int):
        return (v, v, v)
    if len(v) != 3:
        raise ValueError(f"expected an int or 3 values (t, h, w), got {v!r}")
    return tuple(int(x) for x in v)  # type: ignore[return-value]


class Conv3d(nn.Conv3d):
    """``nn.Conv3d`` whose own init is mmcv ConvModule's: Kaiming-normal (fan_out, ReLU), zero bias.

    Overriding ``reset_parameters`` (which ``nn.Conv3d.__init__`` calls) makes construction
    initialise each weight once, instead of PyTorch's default init followed by ours.
    """

    def reset_parameters(self) -> None:
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")
        if self.bias is not None:
            nn.init.zeros_(self.bias)


class ConvBNAct(nn.Module):
    """``Conv3d -> [BatchNorm3d] -> [ReLU]``.

    Without a norm the conv has a bias (as mmcv's ConvModule with ``bias='auto'``); with a
    norm it has none, since BN's shift makes it redundant.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        *,
        stride: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] = 0,
        norm: bool = True,
        act: bool = True,
    ) -> None:
        super().__init__()
        self.conv = Conv3d(
            in_channels,
            out_channels,
            _triple(kernel_size),
            stride=_triple(stride),
            padding=_triple(padding),
            bias=not norm,
        )
        self.bn = nn.BatchNorm3d(out_channels) if norm else None
        # In-place ReLU: the conv/BN output is a fresh tensor nobody else holds.
        self.act = nn.ReLU(inplace=True) if act else None

    def reset_parameters(self) -> None:
        """mmcv ConvModule's init: Kaiming-normal (fan_out, ReLU) conv, zero bias, BN 1 / 0, fresh statistics."""
        self.conv.reset_parameters()
        if self.bn is not None:
            self.bn.reset_parameters()  # weight 1, bias 0, running mean 0 / var 1, counter 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.act is not None:
            x = self.act(x)
        return x
