"""HiFiC's codec networks together: encoder E, generator G and probability model P (paper Fig. 2).

The discriminator D is only needed for training and lives in :mod:`hific.discriminator`. Two ModelConfig
options of the PyTorch port live here: its [-1, 1] input range with a tanh output (``input_range``) and its
two-stage padding, which pads the latent y to a multiple of 4 for the hyperprior (``padding``).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from hific.config import LATENT_STRIDE, PAD_MULTIPLE, ModelConfig, model_config
from hific.encoder import Encoder
from hific.generator import Generator
from hific.hyperprior import Likelihoods, MeanScaleHyperprior
from hific.padding import pad_to


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
    """E, G and P of HiFiC. Images are (N, 3, H, W) in [0, 1] with H, W multiples of 64 (of 16 with two-stage
    padding)."""

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

    def analyse(self, x: torch.Tensor) -> torch.Tensor:
        """The latent y of an image in [0, 1]: E sees 2x - 1 with the "symmetric" input range; with two-stage
        padding y is reflect-padded to a multiple of 4 (the port's Model.compress)."""
        y = self.encoder(x * 2 - 1 if self.config.input_range == "symmetric" else x)
        return pad_to(y, PAD_MULTIPLE // LATENT_STRIDE) if self.config.padding == "two-stage" else y

    def synthesise(self, y_hat: torch.Tensor) -> torch.Tensor:
        """The image G decodes from y_hat, nominally in [0, 1]: (tanh(G) + 1) / 2 with the "symmetric" range."""
        x_hat = self.generator(y_hat)
        return (torch.tanh(x_hat) + 1) / 2 if self.config.input_range == "symmetric" else x_hat

    def forward(self, x: torch.Tensor) -> HiFiCOutput:
        """Training pass: G sees round(y - mu) + mu with a straight-through gradient (official code). With P in
        eval mode, mu comes from the quantised z, exactly as in the decoder."""
        y = self.analyse(x)
        likelihoods, means, likelihoods_q = self.prior(y)
        y_hat = ste_round(y - means) + means
        return HiFiCOutput(self.synthesise(y_hat), y_hat, likelihoods, likelihoods_q)

    def update(self, force: bool = True) -> None:
        """Build the entropy coder's tables; call after training or loading weights (CompressAI's signature)."""
        self.prior.update()

    @torch.inference_mode()
    def compress(self, x: torch.Tensor) -> dict:
        """CompressAI-style: {"strings": [y_strings, z_strings], "shape": z's (h, w), "x_hat": reconstruction}."""
        y = self.analyse(x)
        y_strings, z_strings, y_hat = self.prior.compress(y)
        z_shape = (y.shape[-2] // 4, y.shape[-1] // 4)
        return {"strings": [y_strings, z_strings], "shape": z_shape, "x_hat": self.synthesise(y_hat).clamp_(0, 1)}

    @torch.inference_mode()
    def decompress(self, strings: list[list[bytes]], shape: tuple[int, int]) -> dict:
        """CompressAI-style inverse of :meth:`compress`: {"x_hat": image clipped to [0, 1]}."""
        y_hat = self.prior.decompress(strings[0], strings[1], shape)
        return {"x_hat": self.synthesise(y_hat).clamp_(0, 1)}

    @torch.inference_mode()
    def likelihoods(self, x: torch.Tensor) -> Likelihoods:
        """Likelihoods of the quantised latents: -sum(log2) is the model's estimate of the coded bits."""
        _, _, likelihoods_q = self.prior(self.analyse(x))
        return likelihoods_q
