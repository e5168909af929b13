"""HiFiC's codec networks together: encoder E, generator G and probability model P (paper Fig. 2).

The discriminator D is only needed for training and lives in :mod:`hific.discriminator`.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from hific.config import ModelConfig, model_config
from hific.encoder import Encoder
from hific.generator import Generator
from hific.hyperprior import Likelihoods, MeanScaleHyperprior


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Rounding with a straight-through gradient."""
    return x + (torch.round(x) - x).detach()


class HiFiCOutput(NamedTuple):
    """Everything the trainer needs from one forward pass."""

    x_hat: torch.Tensor          # G's reconstruction (not clipped)
    y_hat: torch.Tensor          # the quantised latent G decodes: D is conditioned on it (official code)
    likelihoods: Likelihoods     # under additive uniform noise: the differentiable rate r(y)
    likelihoods_q: Likelihoods   # of the quantised latents: the bpp estimate for the rate target


class HiFiC(nn.Module):
    """E, G and P of HiFiC. Images are (N, 3, H, W) in [0, 1] with H, W multiples of 64."""

    kind = "hific"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.generator = Generator(config)
        self.prior = MeanScaleHyperprior(config)

    @classmethod
    def from_config(cls, name: str) -> "HiFiC":
        """A randomly initialised model of the named configuration (``paper`` or ``small``)."""
        return cls(model_config(name))

    def forward(self, x: torch.Tensor) -> HiFiCOutput:
        """Training pass: G sees round(y - mu) + mu with a straight-through gradient (official code). With P in
        eval mode, mu comes from the quantised z, exactly as in the decoder."""
        y = self.encoder(x)
        likelihoods, means, likelihoods_q = self.prior(y)
        y_hat = ste_round(y - means) + means
        return HiFiCOutput(self.generator(y_hat), y_hat, likelihoods, likelihoods_q)

    def update(self, force: bool = True) -> None:
        """Build the entropy coder's tables; call after training or loading weights (CompressAI's signature)."""
        self.prior.update()

    @torch.inference_mode()
    def compress(self, x: torch.Tensor) -> dict:
        """CompressAI-style: {"strings": [y_strings, z_strings], "shape": z's (h, w), "x_hat": reconstruction}."""
        y = self.encoder(x)
        y_strings, z_strings, y_hat = self.prior.compress(y)
        z_shape = (y.shape[-2] // 4, y.shape[-1] // 4)
        return {"strings": [y_strings, z_strings], "shape": z_shape, "x_hat": self.generator(y_hat).clamp_(0, 1)}

    @torch.inference_mode()
    def decompress(self, strings: list[list[bytes]], shape: tuple[int, int]) -> dict:
        """CompressAI-style inverse of :meth:`compress`: {"x_hat": image clipped to [0, 1]}."""
        y_hat = self.prior.decompress(strings[0], strings[1], shape)
        return {"x_hat": self.generator(y_hat).clamp_(0, 1)}

    @torch.inference_mode()
    def likelihoods(self, x: torch.Tensor) -> Likelihoods:
        """Likelihoods of the quantised latents: -sum(log2) is the model's estimate of the coded bits."""
        _, _, likelihoods_q = self.prior(self.encoder(x))
        return likelihoods_q
