"""Padding to the networks' strides (the official evaluation: reflect-pad at the bottom and right, crop after
decoding). The codec pads images; a model with two-stage padding (ModelConfig.padding) also pads its latent."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from hific.config import PAD_MULTIPLE


def pad_amounts(height: int, width: int, multiple: int = PAD_MULTIPLE, minimum: int = 0) -> tuple[int, int]:
    """Rows and columns to add at the bottom and right to reach a multiple (and at least ``minimum``)."""
    return max(height + (-height) % multiple, minimum) - height, max(width + (-width) % multiple, minimum) - width


def pad_image(x: torch.Tensor, pad_bottom: int, pad_right: int) -> torch.Tensor:
    """Reflect padding (official evaluation); replicate where the image is too small to reflect."""
    h, w = x.shape[-2:]
    mode = "reflect" if pad_bottom < h and pad_right < w else "replicate"
    return F.pad(x, (0, pad_right, 0, pad_bottom), mode=mode)


def pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """``x`` (N, C, H, W) padded at the bottom and right to a multiple of ``multiple``."""
    return pad_image(x, *pad_amounts(*x.shape[-2:], multiple))
