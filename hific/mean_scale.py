"""The M&S baseline (Minnen et al. 2018, the paper's [6]; "M&S" in its user study, Fig. 3): CompressAI's
``MeanScaleHyperprior`` with the model interface HiFiC has (:class:`hific.model.HiFiC`), so that the codec, the
zoo and the trainer treat every learned model alike. Its weights and state-dict keys are CompressAI's."""
from __future__ import annotations

from typing import Any

import torch
from compressai.models import MeanScaleHyperprior

from hific.config import MS_WIDTHS, PAD_MULTIPLE
from hific.errors import ModelNotFoundError
from hific.hyperprior import Likelihoods


class MeanScale(MeanScaleHyperprior):
    """M&S of widths N (hyper-latent, intermediate layers) and M (latent)."""

    kind = "ms"
    # No ModelConfig: its activations are narrower than HiFiC-paper's, so a fixed limit.
    max_pixels = 40_000_000
    image_multiple = PAD_MULTIPLE
    min_image_side = 0

    @classmethod
    def from_config(cls, config: str | dict[str, Any]) -> "MeanScale":
        """A randomly initialised M&S of a model size (``small``: N, M = 128, 192; ``paper``: 192, 320) or of a
        checkpoint's configuration dict ({"N", "M"})."""
        if isinstance(config, str):
            if config not in MS_WIDTHS:
                raise ModelNotFoundError(f"unknown M&S size {config!r}; choose one of {', '.join(MS_WIDTHS)}")
            return cls(*MS_WIDTHS[config])
        return cls(int(config["N"]), int(config["M"]))

    def config_dict(self) -> dict[str, Any]:
        """The configuration a checkpoint stores (:meth:`from_config` rebuilds the model from it)."""
        return {"N": self.N, "M": self.M}

    @torch.inference_mode()
    def likelihoods(self, x: torch.Tensor) -> Likelihoods:
        """Likelihoods of the quantised latents (the eval-mode forward's): -sum(log2) is the estimated bits."""
        return self(x)["likelihoods"]
