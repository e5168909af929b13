"""The encoder E of HiFiC (paper Sec. 3, Fig. 2; official code archs.py).

conv7x7 -> C0, then four conv3x3 stride-2 layers to C1..C4, each convolution followed by ChannelNorm and
ReLU, then conv3x3 to the latent channels: 16x down-sampling. The paper's widths are 60, 120, 240, 480,
960 and 220 latent channels.
"""
from __future__ import annotations

import torch
from torch import nn

from hific.channel_norm import ChannelNorm
from hific.config import ModelConfig
from hific.init import glorot_uniform_


def _conv_norm_relu(cin: int, cout: int, kernel: int, stride: int, eps: float, reflect: bool = False) -> nn.Sequential:
    conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2,
                     padding_mode="reflect" if reflect else "zeros")
    return nn.Sequential(conv, ChannelNorm(cout, eps), nn.ReLU(inplace=True))


class Encoder(nn.Module):
    """E: image in [0, 1], shape (N, 3, H, W) with H, W multiples of 16 -> latent y, (N, C, H/16, W/16)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        ch, eps = config.encoder_channels, config.channel_norm_eps
        layers = [_conv_norm_relu(3, ch[0], 7, 1, eps, reflect=True)]
        layers += [_conv_norm_relu(cin, cout, 3, 2, eps) for cin, cout in zip(ch[:-1], ch[1:])]
        layers.append(nn.Conv2d(ch[-1], config.latent_channels, 3, padding=1))
        self.net = glorot_uniform_(nn.Sequential(*layers))  # official (Keras) initialisation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
