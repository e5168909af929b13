"""ChannelNorm (HiFiC paper, Sec. 3 / Appendix A.1).

Each pixel is normalised over the channel dimension, then scaled and shifted by learned per-channel
parameters:  y_c = (x_c - mu) / sqrt(var + eps) * alpha_c + beta_c,  with mu and var taken over the
C channels of that pixel (unbiased variance, divisor C - 1, as in the official code) and eps = 1e-3.
Unlike InstanceNorm its output does not depend on the spatial size of the input, which the paper
introduces it for (InstanceNorm darkens images at resolutions other than the training one).

It is computed with PyTorch's fused layer norm over the channel axis: with the biased variance v_b =
v (C - 1) / C, (x - mu) / sqrt(v + eps) = sqrt((C - 1) / C) (x - mu) / sqrt(v_b + eps (C - 1) / C).
Forward and backward take about half the time of the explicit var_mean form on CPU (less again with
channels-last tensors, where the channel axis is contiguous).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ChannelNorm(nn.Module):
    """Normalise each spatial position over channels; learned per-channel scale and offset."""

    def __init__(self, channels: int, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        unbias = (c - 1) / c
        y = F.layer_norm(x.permute(0, 2, 3, 1), (c,), eps=self.eps * unbias).permute(0, 3, 1, 2)
        return torch.addcmul(self.bias, y, self.weight, value=unbias ** 0.5)
