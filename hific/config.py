"""All configuration of the toolkit in one place.

Model configurations follow the HiFiC paper (Mentzer et al. 2020, Sec. 3 and Fig. 2/ Appendix A.1) and
its official code (tensorflow/compression, models/hific/archs.py):

* ``paper``: the published architecture (E: 60-120-240-480-960, 220 latent channels, G: 960 wide with
  9 residual blocks, hyperprior with 320 filters, D: 64-128-256-512).
* ``small``: the same topology, five times narrower, for CPU work and the shipped checkpoints
  (checkpoint <= 25 MB in half precision, about a second per Kodak image on 2 CPU cores).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from hific.errors import ModelNotFoundError


@dataclass(frozen=True)
class ModelConfig:
    """Widths of every network of HiFiC. See the module docstring for the two named configurations."""

    name: str
    encoder_channels: tuple[int, ...] = (60, 120, 240, 480, 960)
    latent_channels: int = 220
    generator_channels: int = 960
    residual_blocks: int = 9
    generator_up_channels: tuple[int, ...] = (480, 240, 120, 60)
    hyperprior_filters: int = 320
    discriminator_channels: tuple[int, ...] = (64, 128, 256, 512)
    discriminator_latent_channels: int = 12
    channel_norm_eps: float = 1e-3
    # Largest image (H x W, after padding) the codec accepts; beyond it a clear error names the limit.
    max_pixels: int = 16_000_000

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        fields = {f.name for f in dataclasses.fields(cls)}
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in fields}
        return cls(**kw)


MODEL_CONFIGS: dict[str, ModelConfig] = {
    "paper": ModelConfig(name="paper", max_pixels=13_000_000),
    "small": ModelConfig(
        name="small",
        encoder_channels=(12, 24, 48, 96, 192),
        generator_channels=192,
        generator_up_channels=(96, 48, 24, 12),
        hyperprior_filters=128,
        discriminator_channels=(32, 64, 128, 256),
        max_pixels=40_000_000,
    ),
}

# Downsampling factor of the encoder (four stride-2 convolutions) and of encoder + hyper-analysis
# (two more stride-2 convolutions): images are reflect-padded to a multiple of PAD_MULTIPLE.
LATENT_STRIDE = 16
PAD_MULTIPLE = 64

# Gaussian conditional scale table (Minnen et al. 2018; HiFiC's official code): 64 levels, log-spaced.
SCALES_MIN, SCALES_MAX, SCALES_LEVELS = 0.11, 256.0, 64


def scale_table() -> list[float]:
    """The scale table exp(linspace(log 0.11, log 256, 64)) of the Gaussian conditional."""
    return np.exp(np.linspace(np.log(SCALES_MIN), np.log(SCALES_MAX), SCALES_LEVELS)).tolist()


def model_config(name: str) -> ModelConfig:
    """The named model configuration (``paper`` or ``small``)."""
    try:
        return MODEL_CONFIGS[name]
    except KeyError:
        raise ModelNotFoundError(
            f"unknown model configuration {name!r}; choose one of {', '.join(MODEL_CONFIGS)}"
        ) from None
