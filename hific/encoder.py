"""The encoder E of HiFiC (paper Sec. 3, Fig. 2; official code archs.py).

conv7x7 -> C0, then four conv3x3 stride-2 layers to C1..C4, each convolution followed by ChannelNorm and
ReLU, then conv3x3 to the latent channels: 16x down-sampling. The paper's widths are 60, 120, 240, 480,
960 and 220 latent channels. The padding of each convolution is a ModelConfig option (the published
re-implementations differ there; the defaults are the official code's).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hific.channel_norm import ChannelNorm
from hific.config import ModelConfig
from hific.init import glorot_uniform_


class OneSidedReflectConv2d(nn.Conv2d):
    """A convolution without padding of its own, after reflect-padding one row at the top and one column at the
    right: the PyTorch port's ``nn.ReflectionPad2d((0, 1, 1, 0))`` before E's stride-2 convs (src/network/encoder.py)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int) -> None:
        super().__init__(cin, cout, kernel, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (0, 1, 1, 0), mode="reflect"))


def _conv(cin: int, cout: int, kernel: int, stride: int = 1, padding: str = "zeros") -> nn.Conv2d:
    """A "same"-size convolution (output = input / stride) with ``padding`` "zeros", "reflect" or "reflect-0110"."""
    if padding == "reflect-0110":
        return OneSidedReflectConv2d(cin, cout, kernel, stride)
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, padding_mode=padding)


def _conv_norm_relu(cin: int, cout: int, kernel: int, stride: int, eps: float, padding: str) -> nn.Sequential:
    return nn.Sequential(_conv(cin, cout, kernel, stride, padding), ChannelNorm(cout, eps), nn.ReLU(inplace=True))


class Encoder(nn.Module):
    """E: image, shape (N, 3, H, W) with H, W multiples of 16 -> latent y, (N, C, H/16, W/16)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        ch, eps = config.encoder_channels, config.channel_norm_eps
        layers = [_conv_norm_relu(3, ch[0], 7, 1, eps, config.encoder_first_padding)]
        layers += [_conv_norm_relu(cin, cout, 3, 2, eps, config.encoder_down_padding)
                   for cin, cout in zip(ch[:-1], ch[1:])]
        layers.append(_conv(ch[-1], config.latent_channels, 3, padding=config.encoder_last_padding))
        self.net = glorot_uniform_(nn.Sequential(*layers))  # official (Keras) initialisation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
