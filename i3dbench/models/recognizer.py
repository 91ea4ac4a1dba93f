"""Recognizer3D: backbone + head, and the builders that make one from a zoo entry."""

from __future__ import annotations

import torch
from torch import nn

from ..zoo import Architecture, ZooEntry, get_entry
from .head import I3DHead
from .resnet3d import ResNet3d


class Recognizer3D(nn.Module):
    """``forward(x)``: normalised clips ``N x 3 x T x H x W`` -> ``N x num_classes`` scores.

    The scores are what MMAction2's ``Recognizer3D`` computes per view in test mode before
    ``average_clips`` (softmax + mean over views is the caller's job, see evaluate.py).
    """

    def __init__(self, backbone: ResNet3d, cls_head: I3DHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.cls_head = cls_head

    def reset_parameters(self) -> None:
        """MMAction2's init of the whole model (see ResNet3d / I3DHead.reset_parameters)."""
        self.backbone.reset_parameters()
        self.cls_head.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1] != 3:
            raise ValueError(
                f"expected clips shaped N x 3 x T x H x W, got {tuple(x.shape)}; "
                "flatten views into the batch dimension first"
            )
        return self.cls_head(self.backbone(x))


def build_i3d(arch: Architecture) -> Recognizer3D:
    """Build the I3D (ResNet3d + I3DHead) that ``arch`` describes, with MMAction2's init.

    Every field of :class:`~i3dbench.zoo.Architecture` is used; the head's input width is
    the backbone's output width (``base_channels * 8 * expansion``: 2048 for R50).
    """
    backbone = ResNet3d(
        depth=arch.depth,
        base_channels=arch.base_channels,
        stage_blocks=arch.stage_blocks,
        conv1_kernel=arch.conv1_kernel,
        conv1_stride_t=arch.conv1_stride_t,
        pool1_stride_t=arch.pool1_stride_t,
        with_pool2=arch.with_pool2,
        inflate=arch.inflate,
        non_local=arch.non_local,
        non_local_mode=arch.non_local_mode,
    )
    head = I3DHead(num_classes=arch.num_classes, in_channels=backbone.feat_dim, dropout_ratio=arch.dropout_ratio)
    return Recognizer3D(backbone, head)


def build_model(entry_or_name: ZooEntry | str) -> Recognizer3D:
    """The model of a zoo entry (an entry or its name in the K400 + smoke zoos)."""
    return build_i3d(get_entry(entry_or_name).arch)
