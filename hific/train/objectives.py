"""What each model kind trains to minimise, behind one interface: HiFiC's L_EGP (paper Eq. 4) with the GAN terms
of its stage 2 (D's loss, Eq. 5), and the rate-distortion loss of the M&S baseline (CompressAI's)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from hific.config import TrainConfig
from hific.train import losses, rate_control
from hific.train.distributed import MEMORY_FORMAT, Placement


@contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Within the block, ``module``'s parameters take no gradient (gradients still flow through it)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


class Objective(ABC):
    """The loss of the codec's networks for a batch and its forward pass, with its terms for the logs."""

    # The perceptual distance validation reports, for an objective that has one.
    lpips: nn.Module | None = None

    def frozen(self, model: nn.Module) -> list[nn.Module]:
        """The networks of ``model`` this objective keeps fixed (none by default)."""
        return []

    @abstractmethod
    def terms(self, x: torch.Tensor, out: dict[str, Any], step: int) -> dict[str, torch.Tensor]:
        """``loss`` (what the optimiser minimises at ``step``) and the logged terms: ``rate`` (bpp of the
        training-mode likelihoods), ``mse`` (0-255 scale), ``bpp_q`` (of the quantised latents) and the
        objective's own."""


class RateDistortion(Objective):
    """M&S: lambda * 255^2 * MSE + bpp, CompressAI's RateDistortionLoss (its examples/train.py)."""

    def __init__(self, cfg: TrainConfig) -> None:
        from compressai.losses import RateDistortionLoss

        self.rd_loss = RateDistortionLoss(lmbda=cfg.ms_lambda)

    def terms(self, x: torch.Tensor, out: dict[str, Any], step: int) -> dict[str, torch.Tensor]:
        rd = self.rd_loss(out, x)
        return {"loss": rd["loss"], "rate": rd["bpp_loss"], "mse": rd["mse_loss"] * 255.0 ** 2,
                "bpp_q": rd["bpp_loss"].detach()}


class HiFiCObjective(Objective):
    """L_EGP = lambda' r(y) + k_M MSE + k_P LPIPS (+ beta * -log D(x', y_hat) with D, stage 2), rate-controlled
    (paper Sec. 3; official code models/hific/model.py); and D's loss."""

    def __init__(self, cfg: TrainConfig, placement: Placement, disc: nn.Module | None,
                 lpips_net: nn.Module | None = None) -> None:
        if lpips_net is None:
            from hific.weights import lpips_network

            lpips_net = lpips_network(net="alex")
        self.cfg, self.placement, self.disc = cfg, placement, disc
        self.lpips = lpips_net.to(placement.device, memory_format=MEMORY_FORMAT).eval().requires_grad_(False)

    def frozen(self, model: nn.Module) -> list[nn.Module]:
        """E and P in a stage-2 run with ``freeze_analysis`` (MS-ILLM: G alone trains against D)."""
        return [model.encoder, model.prior] if self.cfg.freeze_analysis and self.cfg.gan else []

    def terms(self, x: torch.Tensor, out: dict[str, Any], step: int) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        n_pix = x.shape[0] * x.shape[-2] * x.shape[-1]
        x_hat = out["x_hat"].float()
        rate = losses.bpp(out["likelihoods"], n_pix)
        bpp_q = self.placement.mean(losses.bpp(out["likelihoods_q"], n_pix).detach())
        terms = {"rate": rate, "mse": losses.mse_255(x, x_hat), "lpips": losses.lpips_loss(self.lpips, x, x_hat),
                 "bpp_q": bpp_q, "rate_weight": rate_control.rate_weight_tensor(cfg, step, bpp_q)}
        loss = terms["rate_weight"] * rate + cfg.k_m * terms["mse"] + cfg.k_p * terms["lpips"]
        if self.disc is not None:
            with frozen(self.disc), self.placement.autocast():   # D's weights get no gradient from G's loss
                terms["g_gan"] = losses.generator_gan_loss(self.disc(out["x_hat"], out["y_hat"]).float())
            loss = loss + cfg.beta * terms["g_gan"]
        terms["loss"] = loss
        return terms

    def discriminator_loss(self, x: torch.Tensor, out: dict[str, Any], dnet: nn.Module) -> torch.Tensor:
        """D's loss on (x, y_hat) against (x', y_hat) of ``out``, the forward pass of x, both halves in one pass
        through ``dnet`` (D, wrapped for the processes; paper Eq. 5, official code). No gradient reaches E or G."""
        fake, cond = out["x_hat"].detach(), out["y_hat"].detach()
        with self.placement.autocast():
            logits = dnet(torch.cat([x, fake.to(x.dtype)]), torch.cat([cond, cond])).float()
        real, fake_logits = logits.chunk(2)
        return losses.discriminator_loss(real, fake_logits)


def objective_for(cfg: TrainConfig, placement: Placement, disc: nn.Module | None,
                  lpips_net: nn.Module | None = None) -> Objective:
    """The objective of a training configuration's model kind (HiFiC's loads LPIPS unless ``lpips_net``)."""
    if cfg.kind == "ms":
        return RateDistortion(cfg)
    return HiFiCObjective(cfg, placement, disc, lpips_net)
