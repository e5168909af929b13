"""ChannelNorm (HiFiC paper, Sec. 3 / Appendix A.1).

Each pixel is normalised over the channel dimension, then scaled and shifted by learned per-channel
parameters:  y_c = (x_c - mu) / sqrt(var + eps) * alpha_c + beta_c,  with mu and var taken over the
C channels of that pixel (unbiased variance, divisor C - 1, as in the official code) and eps = 1e-3.
Unlike InstanceNorm its output does not depend on the spatial size of the input, which the paper
introduces it for (InstanceNorm darkens images at resolutions other than the training one).
"""
from __future__ import annotations

import torch
from torch import nn


class ChannelNorm(nn.Module):
    """Normalise each spatial position over channels; learned per-channel scale and offset."""

    def __init__(self, channels: int, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(x, dim=1, keepdim=True, correction=1)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias
