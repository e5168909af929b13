"""HiFiC's codec networks together: encoder E, generator G and probability model P (paper Fig. 2).

The discriminator D is only needed for training and lives in :mod:`hific.discriminator`. Two ModelConfig
options of the PyTorch port live here: its [-1, 1] input range with a tanh output (``input_range``) and its
two-stage padding, which pads the latent y to a multiple of 4 for the hyperprior (``padding``).

HiFiC is a CompressAI ``CompressionModel``, as the M&S baseline (:mod:`hific.mean_scale`) is: every learned model
of the toolkit has the same interface (``forward``, ``aux_loss``, ``update``, ``compress``, ``decompress``, and
``likelihoods``, ``from_config``, ``config_dict``, ``kind`` and the image-size limits the codec pads to).
"""
from __future__ import annotations

from typing import Any

import torch
from compressai.models import CompressionModel

from hific.config import LATENT_STRIDE, PAD_MULTIPLE, ModelConfig, model_config
from hific.config import scale_table as default_scale_table
from hific.encoder import Encoder
from hific.generator import Generator
from hific.hyperprior import Likelihoods, ProbabilityModel
from hific.padding import pad_to


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Rounding with a straight-through gradient."""
    return x + (torch.round(x) - x).detach()


class HiFiC(CompressionModel):
    """E, G and P of HiFiC. Images are (N, 3, H, W) in [0, 1] with H, W multiples of 64 (of 16 with two-stage
    padding)."""

    kind = "hific"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.generator = Generator(config)
        self.prior = ProbabilityModel(config)

    @classmethod
    def from_config(cls, config: str | dict[str, Any]) -> "HiFiC":
        """A randomly initialised model of a named configuration (``paper``, ``small``...) or of a checkpoint's
        configuration dict."""
        return cls(model_config(config) if isinstance(config, str) else ModelConfig.from_dict(config))

    def config_dict(self) -> dict[str, Any]:
        """The configuration a checkpoint stores (:meth:`from_config` rebuilds the model from it)."""
        return self.config.to_dict()

    @property
    def max_pixels(self) -> int:
        """The largest padded image the codec accepts (ModelConfig.max_pixels)."""
        return self.config.max_pixels

    @property
    def image_multiple(self) -> int:
        """Images are padded to a multiple of this (64, or 16 with two-stage padding)."""
        return self.config.image_multiple

    @property
    def min_image_side(self) -> int:
        """Images are padded to at least this side (the port's reflect-padded h_a needs it)."""
        return self.config.min_image_side

    def analyse(self, x: torch.Tensor) -> torch.Tensor:
        """The latent y of an image in [0, 1]: E sees 2x - 1 with the "symmetric" input range; with two-stage
        padding y is reflect-padded to a multiple of 4 (the port's Model.compress)."""
        y = self.encoder(x * 2 - 1 if self.config.input_range == "symmetric" else x)
        return pad_to(y, PAD_MULTIPLE // LATENT_STRIDE) if self.config.padding == "two-stage" else y

    def synthesise(self, y_hat: torch.Tensor) -> torch.Tensor:
        """The image G decodes from y_hat, nominally in [0, 1]: (tanh(G) + 1) / 2 with the "symmetric" range."""
        x_hat = self.generator(y_hat)
        return (torch.tanh(x_hat) + 1) / 2 if self.config.input_range == "symmetric" else x_hat

    def forward(self, x: torch.Tensor) -> dict[str, Any]:
        """Training pass, CompressAI's ``{"x_hat", "likelihoods"}`` and what HiFiC's trainer needs besides:
        ``y_hat``, the quantised latent G decodes and D is conditioned on, and ``likelihoods_q``, those of the
        quantised latents, whose bpp the rate target looks at (``likelihoods`` are under additive uniform noise
        in training mode, the differentiable rate r(y); in eval mode both are those of the quantised latents).

        G sees round(y - mu) + mu with a straight-through gradient (official code). With P in eval mode, mu comes
        from the quantised z, exactly as in the decoder. ``x_hat`` is not clipped."""
        y = self.analyse(x)
        likelihoods, means, likelihoods_q = self.prior(y)
        y_hat = ste_round(y - means) + means
        return {"x_hat": self.synthesise(y_hat), "likelihoods": likelihoods, "y_hat": y_hat,
                "likelihoods_q": likelihoods_q}

    def update(self, scale_table: list[float] | None = None, force: bool = False,
               update_quantiles: bool = False) -> bool:
        """Build the entropy coder's tables (CompressAI's, with HiFiC's scale table by default); call after
        training or loading weights."""
        table = default_scale_table() if scale_table is None else scale_table
        return super().update(table, force=force, update_quantiles=update_quantiles)

    @torch.inference_mode()
    def compress(self, x: torch.Tensor) -> dict[str, Any]:
        """CompressAI-style: {"strings": [y_strings, z_strings], "shape": z's (h, w)}. Only E and P run: the
        means and scales of y come from the decoded z, as in the decoder, so the strings are the same without
        the pass through G that the decoder makes."""
        y = self.analyse(x)
        y_strings, z_strings = self.prior.compress(y)
        return {"strings": [y_strings, z_strings], "shape": (y.shape[-2] // 4, y.shape[-1] // 4)}

    @torch.inference_mode()
    def decompress(self, strings: list[list[bytes]], shape: tuple[int, int]) -> dict[str, torch.Tensor]:
        """CompressAI-style inverse of :meth:`compress`: {"x_hat": image clipped to [0, 1]}."""
        y_hat = self.prior.decompress(strings[0], strings[1], shape)
        return {"x_hat": self.synthesise(y_hat).clamp_(0, 1)}

    @torch.inference_mode()
    def likelihoods(self, x: torch.Tensor) -> Likelihoods:
        """Likelihoods of the quantised latents, without G: -sum(log2) is the model's estimate of the coded bits."""
        _, _, likelihoods_q = self.prior(self.analyse(x))
        return likelihoods_q
