"""The conditional patch discriminator D of HiFiC (paper Sec. 3, Fig. 2; official code archs.py).

The latent y (gradient stopped) goes through conv3x3 to 12 channels and LeakyReLU(0.2), is
nearest-neighbour up-sampled x16 to the image size and concatenated with the image; then
conv4x4 stride 2 to 64, 128, 256 (LeakyReLU 0.2), conv4x4 stride 1 to 512 (LeakyReLU 0.2) and a
conv4x4 stride 1 to one logit per patch. Spectral normalisation on every layer; weights initialised
as in the official code (:mod:`hific.init`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from hific.config import LATENT_STRIDE, ModelConfig
from hific.init import normal_002_


def _sn_conv(cin: int, cout: int, kernel: int, stride: int) -> nn.Module:
    padding: int | str = 1 if stride == 2 else "same"
    return spectral_norm(normal_002_(nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding)))


class Discriminator(nn.Module):
    """D(x, y): image (N, 3, H, W) in [0, 1] and latent (N, C, H/16, W/16) -> logits (N, 1, H/8, W/8)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        ch = config.discriminator_channels
        self.latent = nn.Sequential(
            _sn_conv(config.latent_channels, config.discriminator_latent_channels, 3, 1),
            nn.LeakyReLU(0.2),
        )
        cin = 3 + config.discriminator_latent_channels
        layers: list[nn.Module] = []
        for cout in ch[:-1]:
            layers += [_sn_conv(cin, cout, 4, 2), nn.LeakyReLU(0.2)]
            cin = cout
        layers += [_sn_conv(cin, ch[-1], 4, 1), nn.LeakyReLU(0.2), _sn_conv(ch[-1], 1, 4, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        cond = F.interpolate(self.latent(y.detach()), scale_factor=LATENT_STRIDE, mode="nearest")
        return self.net(torch.cat([x, cond], dim=1))
