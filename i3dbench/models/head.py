"""I3DHead: global average pool over T x H x W, dropout, one linear layer (``fc_cls``)."""

from __future__ import annotations

import torch
from torch import nn


class I3DHead(nn.Module):
    """``N x C x T x H x W`` features -> ``N x num_classes`` class scores (before softmax)."""

    def __init__(
        self, *, num_classes: int, in_channels: int, dropout_ratio: float = 0.5, init_std: float = 0.01
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.init_std = init_std
        self.avg_pool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.dropout = nn.Dropout(p=dropout_ratio) if dropout_ratio > 0 else nn.Identity()
        self.fc_cls = nn.Linear(in_channels, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """MMAction2's init: normal(0, init_std) weight, zero bias."""
        nn.init.normal_(self.fc_cls.weight, 0.0, self.init_std)
        nn.init.zeros_(self.fc_cls.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.avg_pool(x)).flatten(1)
        return self.fc_cls(x)
