"""Rate-controlled training (paper Sec. 3): the rate weight lambda' switches on the bpp estimate, and the
official schedules (a warm-up with halved rate weights and a raised target; learning-rate decay)."""
from __future__ import annotations

import math

import torch

from hific.config import TrainConfig


def in_warmup(cfg: TrainConfig, step: int) -> bool:
    """True during the first ``warmup_steps`` steps."""
    return step < cfg.warmup_steps


def rate_target(cfg: TrainConfig, step: int) -> float:
    """r_t, raised by ``warmup_target_factor`` (0.20 / 0.14) during the warm-up."""
    return cfg.target_bpp * (cfg.warmup_target_factor if in_warmup(cfg, step) else 1.0)


def rate_weight(cfg: TrainConfig, step: int, bpp_estimate: float) -> float:
    """lambda' = lambda_a if the quantised bpp estimate is above r_t, else lambda_b (both scaled in warm-up)."""
    lam = cfg.lambda_a if bpp_estimate > rate_target(cfg, step) else cfg.lambda_b
    return lam * (cfg.warmup_rate_factor if in_warmup(cfg, step) else 1.0)


def rate_weight_tensor(cfg: TrainConfig, step: int, bpp_estimate: torch.Tensor) -> torch.Tensor:
    """:func:`rate_weight` on the device, without a host sync: its value above r_t where the estimate is."""
    above, below = rate_weight(cfg, step, math.inf), rate_weight(cfg, step, -math.inf)
    return torch.where(bpp_estimate > rate_target(cfg, step), above, below).to(bpp_estimate.dtype)


def schedule_factor(cfg: TrainConfig, step: int) -> float:
    """The learning-rate schedule at ``step``: x ``lr_decay`` after ``lr_decay_step`` (official HiFiC), or
    a linear warm-up over ``lr_warmup`` steps and a cosine decay to 0 at ``steps`` (MS-ILLM)."""
    if cfg.lr_schedule == "cosine":
        warm = min(1.0, (step + 1) / cfg.lr_warmup) if cfg.lr_warmup else 1.0
        return warm * 0.5 * (1.0 + math.cos(math.pi * min(step, cfg.steps) / cfg.steps))
    return cfg.lr_decay if step >= cfg.lr_decay_step else 1.0


def learning_rate(cfg: TrainConfig, step: int, base: float | None = None, warm_start: int | None = None) -> float:
    """The learning rate at ``step``: ``base`` (default ``cfg.lr``) times :func:`schedule_factor`; in a run
    warm-started at step ``warm_start``, ramped up linearly over its first ``warm_start_ramp`` steps."""
    base = cfg.lr if base is None else base
    ramp = 1.0 if warm_start is None else min(1.0, (step - warm_start + 1) / cfg.warm_start_ramp)
    return base * ramp * schedule_factor(cfg, step)
