"""Non-local block (Wang et al., 2018) as mmcv's ``NonLocal3d`` computes it.

Three pairwise functions, as MMAction2's I3D-NL configs use them (``reduction=2``,
``sub_sample=True``, ``use_scale=False``, BN on the output projection):

* ``embedded_gaussian``: softmax over j of theta(x_i) . phi(x_j)
* ``dot_product``:       theta(x_i) . phi(x_j) / N_j
* ``gaussian``:          softmax over j of x_i . x_j (no theta / phi convolutions)

The output is ``x + conv_out(sum_j f(i, j) g(x_j))``. With ``sub_sample`` the keys/values
(``phi``, ``g``) are max-pooled 2x2 in space, so ``g`` and ``phi`` are
``Sequential(conv, pool)`` (``phi`` is the pool alone in gaussian mode): this nesting is what
produces MMAction2's key names ``g.0.conv.weight`` / ``phi.0.conv.weight``.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import ConvBNAct

NON_LOCAL_MODES = ("embedded_gaussian", "gaussian", "dot_product")


class NonLocal3d(nn.Module):
    """Non-local block on ``N x C x T x H x W`` features; output has the input's shape."""

    def __init__(
        self,
        in_channels: int,
        *,
        mode: str = "embedded_gaussian",
        reduction: int = 2,
        sub_sample: bool = True,
        use_scale: bool = False,
    ) -> None:
        super().__init__()
        if mode not in NON_LOCAL_MODES:
            raise ValueError(f"non-local mode must be one of {NON_LOCAL_MODES}, got {mode!r}")
        self.mode = mode
        self.in_channels = in_channels
        self.inter_channels = max(in_channels // reduction, 1)
        self.sub_sample = sub_sample
        self.use_scale = use_scale

        self.g = ConvBNAct(in_channels, self.inter_channels, 1, norm=False, act=False)
        self.conv_out = ConvBNAct(self.inter_channels, in_channels, 1, norm=True, act=False)
        if mode != "gaussian":
            self.theta = ConvBNAct(in_channels, self.inter_channels, 1, norm=False, act=False)
            self.phi = ConvBNAct(in_channels, self.inter_channels, 1, norm=False, act=False)
        if sub_sample:
            pool = nn.MaxPool3d(kernel_size=(1, 2, 2))
            self.g = nn.Sequential(self.g, pool)
            self.phi = nn.Sequential(self.phi, pool) if mode != "gaussian" else pool
        elif mode == "gaussian":
            self.phi = nn.Identity()
        self.reset_parameters()

    def reset_parameters(self, std: float = 0.01) -> None:
        """mmcv's init: normal(std) for g/theta/phi, zero BN on the output (block = identity)."""
        self.conv_out.reset_parameters()  # Kaiming conv (as mmcv ConvModule), fresh BN statistics
        convs = [self.g, self.theta, self.phi] if self.mode != "gaussian" else [self.g]
        for m in convs:
            conv = m[0].conv if isinstance(m, nn.Sequential) else m.conv
            nn.init.normal_(conv.weight, 0.0, std)
            nn.init.zeros_(conv.bias)
        nn.init.zeros_(self.conv_out.bn.weight)
        nn.init.zeros_(self.conv_out.bn.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, t, h, w = x.shape
        # Keys/values: N x C' x M; queries: N x C' x L (L = T*H*W, M = L or L/4 when sub-sampled).
        g_x = self.g(x).flatten(2)
        if self.mode == "gaussian":
            theta_x = x.flatten(2)
            phi_x = self.phi(x).flatten(2)
        else:
            theta_x = self.theta(x).flatten(2)
            phi_x = self.phi(x).flatten(2)

        # f: N x L x M. Transposed operands are passed as views; matmul handles the strides
        # without copying them.
        f = torch.matmul(theta_x.transpose(1, 2), phi_x)
        if self.mode == "dot_product":
            f.div_(f.shape[-1])
        else:
            if self.mode == "embedded_gaussian" and self.use_scale:
                f.div_(theta_x.shape[1] ** 0.5)
            f = f.softmax(dim=-1)

        # y = f @ g^T computed directly in channel-first layout: N x C' x L = g (N x C' x M) @ f^T,
        # which avoids the permute + contiguous copy of an N x L x C' result.
        y = torch.matmul(g_x, f.transpose(1, 2)).view(n, self.inter_channels, t, h, w)
        return x + self.conv_out(y)
