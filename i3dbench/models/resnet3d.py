"""ResNet3d, the I3D backbone, as MMAction2's ``ResNet3d`` builds it.

What the I3D configs use: ``style='pytorch'`` (the spatial stride sits in the 3x3 conv),
spatial strides (1, 2, 2, 2), temporal strides 1, no dilation, ``inflate_style='3x1x1'``
(an inflated bottleneck has a 3x1x1 first conv, the 3x3 conv stays 1x3x3), BN3d + ReLU,
a max-pool stem (1x3x3, temporal stride ``pool1_stride_t``) and ``pool2`` (2x1x1 temporal
max-pool after layer1). Per-block inflate / non-local patterns select which blocks get a
temporal kernel and which are followed by a :class:`NonLocal3d`.

Depths 18/34 use MMAction2's BasicBlock3d (3x3x3 convs where inflated, 1x3x3 elsewhere).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .layers import ConvBNAct
from .nonlocal3d import NonLocal3d


class BasicBlock3d(nn.Module):
    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        *,
        spatial_stride: int = 1,
        temporal_stride: int = 1,
        downsample: nn.Module | None = None,
        inflate: bool = True,
        non_local_mode: str | None = None,
    ) -> None:
        super().__init__()
        kt, pt = (3, 1) if inflate else (1, 0)
        self.conv1 = ConvBNAct(
            inplanes, planes, (kt, 3, 3), stride=(temporal_stride, spatial_stride, spatial_stride), padding=(pt, 1, 1)
        )
        self.conv2 = ConvBNAct(planes, planes, (kt, 3, 3), padding=(pt, 1, 1), act=False)
        self.downsample = downsample
        self.relu = nn.ReLU(inplace=True)
        self.with_non_local = non_local_mode is not None
        if self.with_non_local:
            self.non_local_block = NonLocal3d(planes, mode=non_local_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.conv2(self.conv1(x))
        out += identity  # in place: `out` is the BN output, owned here
        out = self.relu(out)
        if self.with_non_local:
            out = self.non_local_block(out)
        return out


class Bottleneck3d(nn.Module):
    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        *,
        spatial_stride: int = 1,
        temporal_stride: int = 1,
        downsample: nn.Module | None = None,
        inflate: bool = True,
        non_local_mode: str | None = None,
    ) -> None:
        super().__init__()
        # 3x1x1 inflation: only the first 1x1 conv gets a temporal extent.
        k1, p1 = ((3, 1, 1), (1, 0, 0)) if inflate else ((1, 1, 1), (0, 0, 0))
        self.conv1 = ConvBNAct(inplanes, planes, k1, padding=p1)
        self.conv2 = ConvBNAct(
            planes, planes, (1, 3, 3), stride=(temporal_stride, spatial_stride, spatial_stride), padding=(0, 1, 1)
        )
        self.conv3 = ConvBNAct(planes, planes * self.expansion, 1, act=False)
        self.downsample = downsample
        self.relu = nn.ReLU(inplace=True)
        self.with_non_local = non_local_mode is not None
        if self.with_non_local:
            self.non_local_block = NonLocal3d(planes * self.expansion, mode=non_local_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.conv3(self.conv2(self.conv1(x)))
        out += identity  # in place: `out` is the BN output, owned here
        out = self.relu(out)
        if self.with_non_local:
            out = self.non_local_block(out)
        return out


ARCH_SETTINGS: dict[int, tuple[type[nn.Module], tuple[int, ...]]] = {
    18: (BasicBlock3d, (2, 2, 2, 2)),
    34: (BasicBlock3d, (3, 4, 6, 3)),
    50: (Bottleneck3d, (3, 4, 6, 3)),
    101: (Bottleneck3d, (3, 4, 23, 3)),
    152: (Bottleneck3d, (3, 8, 36, 3)),
}

SPATIAL_STRIDES = (1, 2, 2, 2)


def _per_block(pattern: Sequence[int] | int, blocks: int, what: str, stage: int) -> tuple[int, ...]:
    """A stage's per-block 0/1 flags; an int applies to every block (as MMAction2)."""
    flags = (pattern,) * blocks if isinstance(pattern, int) else tuple(pattern)
    if len(flags) != blocks:
        raise ValueError(f"{what} pattern of stage {stage + 1} has {len(flags)} flags for {blocks} blocks: {pattern!r}")
    return flags


class ResNet3d(nn.Module):
    """The I3D backbone: ``N x 3 x T x H x W`` -> ``N x feat_dim x T' x H' x W'`` (last stage)."""

    def __init__(
        self,
        *,
        depth: int = 50,
        base_channels: int = 64,
        stage_blocks: Sequence[int] | None = None,
        conv1_kernel: Sequence[int] = (5, 7, 7),
        conv1_stride_t: int = 2,
        pool1_stride_t: int = 2,
        with_pool2: bool = True,
        inflate: Sequence[Sequence[int] | int] = ((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0)),
        non_local: Sequence[Sequence[int] | int] = (0, 0, 0, 0),
        non_local_mode: str | None = None,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if depth not in ARCH_SETTINGS:
            raise ValueError(f"depth must be one of {sorted(ARCH_SETTINGS)}, got {depth}")
        block, default_blocks = ARCH_SETTINGS[depth]
        stage_blocks = tuple(stage_blocks) if stage_blocks is not None else default_blocks
        if len(stage_blocks) != 4 or len(inflate) != 4 or len(non_local) != 4:
            raise ValueError("stage_blocks, inflate and non_local must have one item per stage (4)")
        self.with_pool2 = with_pool2

        # Stem: conv (padding (k-1)//2) + BN + ReLU, then a 1x3x3 max-pool.
        k = tuple(int(v) for v in conv1_kernel)
        self.conv1 = ConvBNAct(
            in_channels, base_channels, k, stride=(conv1_stride_t, 2, 2), padding=tuple((v - 1) // 2 for v in k)
        )
        self.maxpool = nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(pool1_stride_t, 2, 2), padding=(0, 1, 1))
        self.pool2 = nn.MaxPool3d(kernel_size=(2, 1, 1), stride=(2, 1, 1))

        inplanes = base_channels
        self.res_layers: list[str] = []
        for i, num_blocks in enumerate(stage_blocks):
            planes = base_channels * 2**i
            inflate_flags = _per_block(inflate[i], num_blocks, "inflate", i)
            nl_flags = _per_block(non_local[i], num_blocks, "non_local", i)
            if any(nl_flags) and non_local_mode is None:
                raise ValueError(f"stage {i + 1} asks for non-local blocks but non_local_mode is None")
            layer = self._make_layer(
                block, inplanes, planes, SPATIAL_STRIDES[i], inflate_flags, nl_flags, non_local_mode
            )
            inplanes = planes * block.expansion
            self.add_module(f"layer{i + 1}", layer)
            self.res_layers.append(f"layer{i + 1}")
        self.feat_dim = inplanes  # every submodule initialised itself (see reset_parameters)

    @staticmethod
    def _make_layer(block, inplanes, planes, spatial_stride, inflate_flags, nl_flags, non_local_mode) -> nn.Sequential:
        out_channels = planes * block.expansion
        downsample = None
        if spatial_stride != 1 or inplanes != out_channels:
            downsample = ConvBNAct(inplanes, out_channels, 1, stride=(1, spatial_stride, spatial_stride), act=False)
        blocks = []
        for j, (inf, nl) in enumerate(zip(inflate_flags, nl_flags)):
            blocks.append(
                block(
                    inplanes if j == 0 else out_channels,
                    planes,
                    spatial_stride=spatial_stride if j == 0 else 1,
                    downsample=downsample if j == 0 else None,
                    inflate=inf == 1,
                    non_local_mode=non_local_mode if nl == 1 else None,
                )
            )
        return nn.Sequential(*blocks)

    def reset_parameters(self) -> None:
        """MMAction2's from-scratch init of every parameter and buffer.

        Convs Kaiming-normal (fan_out, ReLU), BN weight 1 / bias 0 with fresh statistics.
        Non-local blocks get mmcv's own init (small normal g/theta/phi, zero output BN, so a
        fresh block is the identity), which is what they have in MMAction2's training recipe,
        where the backbone is inflated from ImageNet weights and the non-local blocks are not.
        """
        for m in self.modules():
            if isinstance(m, ConvBNAct):
                m.reset_parameters()
        for m in self.modules():
            if isinstance(m, NonLocal3d):
                m.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i == 0 and self.with_pool2:
                x = self.pool2(x)
        return x
