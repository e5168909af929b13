"""Loss terms of HiFiC (paper Sec. 3, Eq. 4 and 5) with the constants of the official code."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hific.hyperprior import Likelihoods, bits


def bpp(likelihoods: Likelihoods, num_pixels: int) -> torch.Tensor:
    """Bits per pixel of a batch: total bits (float32) over the batch's pixel count (N * H * W)."""
    return bits(likelihoods) / num_pixels


def mse_255(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Mean squared error on the 0-255 scale (images given in [0, 1]), as weighted by k_M in the official code."""
    return F.mse_loss(x_hat * 255.0, x * 255.0)


def lpips_loss(lpips_net: nn.Module, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Mean LPIPS distance; the network takes inputs in [-1, 1]."""
    return lpips_net(x_hat * 2.0 - 1.0, x * 2.0 - 1.0).mean()


def psnr(mse_255: float) -> float:
    """PSNR in dB from the MSE on the 0-255 scale."""
    return 10 * math.log10(255.0 ** 2 / max(mse_255, 1e-10))


def generator_gan_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss -log D(x', y) = softplus(-logit) (paper Eq. 4, beta term)."""
    return F.softplus(-fake_logits).mean()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(x, y) - log(1 - D(x', y)) in the numerically stable softplus form (paper Eq. 5)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
