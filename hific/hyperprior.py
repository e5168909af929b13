"""The probability model P of HiFiC: the mean-and-scale hyperprior (Minnen et al. 2018, the paper's [6]).

Hyper-analysis h_a: conv3x3 s1, ReLU, conv5x5 s2, ReLU, conv5x5 s2 (320 filters in the paper).
The side information z is coded with a factorized entropy bottleneck (Balle et al. 2018).
Hyper-synthesis h_s: two branches (means, scales), each conv5x5 up2, ReLU, conv5x5 up2, ReLU,
conv3x3 to the latent channels. y is coded with a Gaussian conditional whose scales are drawn from
the table exp(linspace(log 0.11, log 256, 64)). Entropy models and the rANS coder are CompressAI's.

ModelConfig options give the PyTorch port's variant (src/hyperprior.py, src/network/hyper.py,
src/compression/hyperprior_model.py): reflect padding in h_a's strided convs, a factorized prior with
filters (3, 3, 3) and a tanh factor on its last layer (CompressAI's filters (3, 3, 3, 1) whose extra 1 -> 1
layer the converter makes the identity), z rounded without the median offset, and a logistic likelihood.
"""
from __future__ import annotations

import scipy.stats
import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from torch import nn

from hific.config import ModelConfig, scale_table


def _up(cin: int, cout: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, 5, stride=2, padding=2, output_padding=1)


def _synthesis_branch(filters: int, latent: int) -> nn.Sequential:
    return nn.Sequential(
        _up(filters, filters), nn.ReLU(inplace=True),
        _up(filters, filters), nn.ReLU(inplace=True),
        nn.Conv2d(filters, latent, 3, padding=1),
    )


class ZeroOffsetBottleneck(EntropyBottleneck):
    """CompressAI's factorized entropy bottleneck coding round(z) instead of round(z - median) + median (the
    port's HyperpriorDensity.quantization_offset is 0); its tables are centred on 0 accordingly."""

    def _get_medians(self) -> torch.Tensor:
        return torch.zeros_like(self.quantiles[:, :, 1:2])

    def update(self, force: bool = False, update_quantiles: bool = False) -> bool:
        """CompressAI's tables, built around the median quantile, which is pinned at 0 first."""
        if update_quantiles:
            self._update_quantiles()
        with torch.no_grad():
            self.quantiles[:, 0, 1] = 0.0
        return super().update(force=force)


class LogisticConditional(GaussianConditional):
    """CompressAI's Gaussian conditional with a logistic density of scale sigma: CDF sigmoid(v / sigma) (the
    port's likelihood_type "logistic", src/helpers/maths.py)."""

    def _standardized_cumulative(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(inputs)

    @staticmethod
    def _standardized_quantile(quantile: float) -> float:
        return scipy.stats.logistic.ppf(quantile)


CONDITIONALS = {"gaussian": GaussianConditional, "logistic": LogisticConditional}
BOTTLENECKS = {"median": EntropyBottleneck, "zero": ZeroOffsetBottleneck}


# Per-element likelihoods of the latents by name, "y" and "z" (CompressAI's convention; training: under additive
# uniform noise, eval: of the rounded values).
Likelihoods = dict[str, torch.Tensor]


def bits(likelihoods: Likelihoods) -> torch.Tensor:
    """Total information content -sum(log2 p) of all latents (y and side information z), in float32."""
    return sum(-torch.log2(lik.float()).sum() for lik in likelihoods.values())


class ProbabilityModel(nn.Module):
    """HiFiC's probability model P (paper Sec. 3, Fig. 2): entropy model of the latent y given the hyper-latent z."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        n, c, pad = config.hyperprior_filters, config.latent_channels, config.hyper_analysis_padding
        self.h_a = nn.Sequential(
            nn.Conv2d(c, n, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(n, n, 5, stride=2, padding=2, padding_mode=pad), nn.ReLU(inplace=True),
            nn.Conv2d(n, n, 5, stride=2, padding=2, padding_mode=pad),
        )
        self.h_s_means = _synthesis_branch(n, c)
        self.h_s_scales = _synthesis_branch(n, c)
        self.entropy_bottleneck = BOTTLENECKS[config.hyperlatent_offset](n, filters=config.hyperlatent_filters)
        self.gaussian_conditional = CONDITIONALS[config.latent_likelihood](scale_table())

    def params(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(means, scales) of y predicted from the (quantised or noisy) hyper-latent."""
        return self.h_s_means(z_hat), self.h_s_scales(z_hat)

    def forward(self, y: torch.Tensor) -> tuple[Likelihoods, torch.Tensor, Likelihoods]:
        """Rate terms for training.

        Returns (noisy likelihoods, means, quantised likelihoods). The noisy ones (additive uniform noise
        in training mode) give the differentiable rate r(y); the quantised ones (rounding around the
        mean for y, around the medians for z) give the bpp estimate the rate target looks at
        (official code; paper Sec. 3 "rate-controlled training").
        """
        z = self.h_a(y)
        z_tilde, z_lik = self.entropy_bottleneck(z)
        means, scales = self.params(z_tilde)
        _, y_lik = self.gaussian_conditional(y, scales, means=means)
        with torch.no_grad():
            z_hat, z_lik_q = self.entropy_bottleneck(z, training=False)
            means_q, scales_q = self.params(z_hat)
            _, y_lik_q = self.gaussian_conditional(y, scales_q, means=means_q, training=False)
        return {"y": y_lik, "z": z_lik}, means, {"y": y_lik_q, "z": z_lik_q}

    def compress(self, y: torch.Tensor) -> tuple[list[bytes], list[bytes]]:
        """Entropy-code y (batch of one or more) -> (y strings, z strings). The means and scales of y come from the
        decoded z_hat, as in the decoder; y_hat itself is the decoder's business."""
        z = self.h_a(y)
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.shape[-2:])
        means, scales = self.params(z_hat)
        indexes = self.gaussian_conditional.build_indexes(scales)
        return self.gaussian_conditional.compress(y, indexes, means=means), z_strings

    def decompress(self, y_strings: list[bytes], z_strings: list[bytes], z_shape: tuple[int, int]) -> torch.Tensor:
        """Decode y_hat = round(y - mu) + mu from the two strings."""
        z_hat = self.entropy_bottleneck.decompress(z_strings, z_shape)
        means, scales = self.params(z_hat)
        indexes = self.gaussian_conditional.build_indexes(scales)
        return self.gaussian_conditional.decompress(y_strings, indexes, means=means)
