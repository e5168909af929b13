"""Rate-controlled training (paper Sec. 3): the rate weight lambda' switches on the bpp estimate, and the
official schedules (a warm-up with halved rate weights and a raised target; learning-rate decay)."""
from __future__ import annotations

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


def learning_rate(cfg: TrainConfig, step: int, base: float | None = None, warm_start: int | None = None) -> float:
    """The learning rate at ``step``: ``base`` (default ``cfg.lr``), times ``lr_decay`` after ``lr_decay_step``;
    in a run warm-started at step ``warm_start``, ramped up linearly over its first ``warm_start_ramp`` steps."""
    base = cfg.lr if base is None else base
    ramp = 1.0 if warm_start is None else min(1.0, (step - warm_start + 1) / cfg.warm_start_ramp)
    return base * ramp * (cfg.lr_decay if step >= cfg.lr_decay_step else 1.0)
