"""The generator G of HiFiC (paper Sec. 3, Fig. 2; official code archs.py).

ChannelNorm, conv3x3 to the generator width, ChannelNorm; a stack of residual blocks
(conv3x3, ChannelNorm, ReLU, conv3x3, ChannelNorm, plus skip) with a global skip around the stack;
four transposed conv3x3 stride-2 layers (each with ChannelNorm and ReLU); conv7x7 to RGB.
The paper's width is 960 with 9 residual blocks and up-sampling widths 480, 240, 120, 60. The convolutions
reflect-pad (this toolkit's default, which its checkpoints were trained with); ModelConfig.generator_padding
"zeros" is the official code's ``padding="same"`` and NeuralCompression's HiFiCGenerator.
"""
from __future__ import annotations

import torch
from torch import nn

from hific.channel_norm import ChannelNorm
from hific.config import ModelConfig
from hific.init import glorot_uniform_


class ResidualBlock(nn.Module):
    """x + ChannelNorm(conv(ReLU(ChannelNorm(conv(x)))))."""

    def __init__(self, channels: int, eps: float, padding: str = "reflect") -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, padding_mode=padding),
            ChannelNorm(channels, eps),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, padding_mode=padding),
            ChannelNorm(channels, eps),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _up_norm_relu(cin: int, cout: int, eps: float) -> nn.Sequential:
    up = nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1)
    return nn.Sequential(up, ChannelNorm(cout, eps), nn.ReLU(inplace=True))


class Generator(nn.Module):
    """G: quantised latent y_hat (N, C, h, w) -> image (N, 3, 16h, 16w), nominally in [0, 1].

    The output is not clipped here (training sees the raw output); the codec clips it at inference.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        width, eps, pad = config.generator_channels, config.channel_norm_eps, config.generator_padding
        self.head = nn.Sequential(
            ChannelNorm(config.latent_channels, eps),
            nn.Conv2d(config.latent_channels, width, 3, padding=1, padding_mode=pad),
            ChannelNorm(width, eps),
        )
        self.residual = nn.Sequential(*[ResidualBlock(width, eps, pad) for _ in range(config.residual_blocks)])
        up = (width, *config.generator_up_channels)
        self.upsample = nn.Sequential(*[_up_norm_relu(cin, cout, eps) for cin, cout in zip(up[:-1], up[1:])])
        self.tail = nn.Conv2d(up[-1], 3, 7, padding=3, padding_mode=pad)
        glorot_uniform_(self)  # official (Keras) initialisation

    def forward(self, y_hat: torch.Tensor) -> torch.Tensor:
        h = self.head(y_hat)
        h = h + self.residual(h)
        return self.tail(self.upsample(h))
