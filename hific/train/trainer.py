"""The training loop: HiFiC stage 1 ("no GAN") and stage 2 (with D), and the M&S baseline, with one loop.

Per step (paper Sec. 3; official code models/hific/model.py): in stage 2 first one update of D, conditioned
on the quantised latent y_hat (gradient stopped), on real images against E/G's reconstructions; then one
update of the codec's networks on the whole batch (G's GAN term through the updated D); then one update of the
entropy bottleneck's auxiliary loss with its own optimiser. D sees the G step's own images and detached
reconstructions (``disc_batch="reuse"``, one E/G forward per step) or, as in the official code, a batch of
its own (``"own"``). What each model kind minimises is its :class:`~hific.train.objectives.Objective`; the
checkpoints are :mod:`hific.train.checkpoints`', the processes :mod:`hific.train.distributed`'s and the logs
:mod:`hific.train.run_log`'s.
"""
from __future__ import annotations

import dataclasses
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from hific.config import TrainConfig
from hific.discriminator import Discriminator
from hific.errors import TrainingError
from hific.train import checkpoints, losses, rate_control
from hific.train.checkpoints import CHECKPOINT
from hific.train.data import ResidentImages, StepSampler, StreamedCrops, list_images, load_validation
from hific.train.distributed import MEMORY_FORMAT, Placement
from hific.train.objectives import objective_for
from hific.train.run_log import RunLog, write_snapshot
from hific.zoo import build_model

# The decoded training set stays on the device when it takes at most this fraction of its (free) memory.
RESIDENT_FRACTION = 0.25


@contextmanager
def stop_requests() -> Iterator[list[str]]:
    """Within the block, SIGTERM (and SIGINT, unless this process ignores it, as ``nohup ... &`` makes it)
    asks for a stop instead of killing: the name of the first signal is appended to the yielded list, and the
    signal's earlier handling comes back at once, so that a second one stops the process as before. Signals
    reach Python's main thread only: elsewhere nothing is watched."""
    requests: list[str] = []
    main = threading.current_thread() is threading.main_thread()
    watched = [s for s in (signal.SIGTERM, signal.SIGINT) if main and signal.getsignal(s) is not signal.SIG_IGN]
    previous = {s: signal.getsignal(s) or signal.SIG_DFL for s in watched}   # None: not set from Python

    def request(signum: int, frame: object) -> None:
        requests.append(signal.Signals(signum).name)
        for s, handler in previous.items():
            signal.signal(s, handler)

    for s in watched:
        signal.signal(s, request)
    try:
        yield requests
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def make_optimizer(cfg: TrainConfig, params: list[nn.Parameter], lr: float,
                   betas: tuple[float, float]) -> torch.optim.Optimizer:
    """Adam (official HiFiC) or AdamW with ``weight_decay`` (MS-ILLM); fused kernels on GPU."""
    fused = {"fused": True} if params and params[0].is_cuda else {}
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=cfg.weight_decay, **fused)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, **fused)
    raise TrainingError(f"unknown optimizer {cfg.optimizer!r} in training configuration {cfg.name!r}")


def is_aux(name: str) -> bool:
    """Parameters of the auxiliary loss: the entropy bottleneck's quantiles (CompressAI's convention)."""
    return name.endswith("quantiles")


class Trainer:
    """One training run in ``run_dir`` for the configuration ``cfg`` on the images in ``data``."""

    def __init__(self, cfg: TrainConfig, data: list[str | Path], run_dir: str | Path, device: str = "auto",
                 val_files: list[Path] | None = None, init: str | Path | None = None, workers: int = 0,
                 lpips_net: nn.Module | None = None, progress: bool = True, warm_start: str | None = None,
                 stream: bool | None = None, compile: bool = False) -> None:
        start = init if init is not None else warm_start
        if start is not None and (model := checkpoints.model_of(start)) is not None:
            cfg = dataclasses.replace(cfg, model=model)  # a run goes on with its starting point's networks
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.placement = Placement.setup(device)
        self.rank, self.world, self.device = self.placement.rank, self.placement.world, self.placement.device
        if cfg.batch_size % self.world:
            raise TrainingError(f"batch size {cfg.batch_size} is not divisible by {self.world} processes")
        self.local_batch = cfg.batch_size // self.world
        self.files = list_images(data)
        self.data_dirs = [str(d) for d in data]
        self.workers, self.progress = workers, progress and self.rank == 0
        self.stream, self._images = stream, None   # see resident()
        self.model = build_model(cfg.kind, cfg.model).to(self.device, memory_format=MEMORY_FORMAT)
        self.disc = Discriminator(self.model.config).to(self.device, memory_format=MEMORY_FORMAT) if cfg.gan else None
        self.objective = objective_for(cfg, self.placement, self.disc, lpips_net)
        self.frozen = self.objective.frozen(self.model)
        for module in self.frozen:
            module.requires_grad_(False)
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        self.opt = make_optimizer(cfg, [p for n, p in named if not is_aux(n)], cfg.lr, cfg.betas)
        aux = [p for n, p in named if is_aux(n)]
        self.aux_opt = torch.optim.Adam(aux, lr=self.aux_lr) if aux else None
        self.d_opt = (make_optimizer(cfg, list(self.disc.parameters()), self.d_lr, cfg.d_betas)
                      if self.disc is not None else None)
        self.step, self.bad_steps, self.wall_s = 0, 0, 0.0
        self.history: list[dict] = []           # earlier runs this one continues (see warm_start)
        self.init_info: dict | None = None      # the run this one started from (see init_from)
        self.val = load_validation(val_files, min(256, cfg.crop * 2)).to(self.device) if val_files else None
        if init is not None:
            checkpoints.init_from(self, init)
        if warm_start is not None:
            checkpoints.warm_start(self, warm_start)
        self.net, self.dnet = self.placement.wrap(self.model), self.placement.wrap(self.disc)
        if compile:   # TorchInductor kernels for the codec and D (GPU: fewer launches; the first steps compile)
            self.net = torch.compile(self.net)
            self.dnet = torch.compile(self.dnet) if self.dnet is not None else None

    # --- checkpoints (hific.train.checkpoints) --------------------------------------------------------------
    def save(self, path: Path | None = None) -> Path:
        """Write the training checkpoint atomically (rank 0 only under torchrun)."""
        return checkpoints.save(self, path or self.run_dir / CHECKPOINT)

    def resume(self, path: Path | None = None) -> None:
        """Continue from a training checkpoint of the same configuration."""
        checkpoints.resume(self, path or self.run_dir / CHECKPOINT)

    @property
    def warm_started_at(self) -> int | None:
        """The step this run continued an earlier one from (``--warm-start``), None for a run from scratch."""
        return checkpoints.began_at(self.history)

    # --- losses (the objective of the model kind) ------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> dict[str, Any]:
        """The codec's training pass on x (CompressAI's dict: x_hat, likelihoods and what the objective needs)."""
        with self.placement.autocast():
            return self.net(x)

    def generator_terms(self, x: torch.Tensor, out: dict[str, Any] | None = None) -> dict[str, torch.Tensor]:
        """The objective's terms for the batch x (for HiFiC every term of L_EGP, paper Eq. 4), with the total
        ``loss``. ``out``: the batch's forward pass, when already computed."""
        return self.objective.terms(x, self.forward(x) if out is None else out, self.step)

    def discriminator_term(self, x: torch.Tensor, out: dict[str, Any] | None = None) -> torch.Tensor:
        """D's loss on x and its reconstructions (paper Eq. 5). ``out``: the forward pass of x (the G step's);
        without it E and G run on x without gradients."""
        if out is None:
            with torch.no_grad():
                out = self.forward(x)
        return self.objective.discriminator_loss(x, out, self.dnet)

    # --- one step -----------------------------------------------------------------------------------------
    @property
    def aux_lr(self) -> float:
        return self.cfg.lr if self.cfg.aux_lr is None else self.cfg.aux_lr

    @property
    def d_lr(self) -> float:
        return self.cfg.lr if self.cfg.d_lr is None else self.cfg.d_lr

    def _set_lr(self) -> float:
        for opt, base in ((self.opt, self.cfg.lr), (self.d_opt, self.d_lr), (self.aux_opt, self.aux_lr)):
            for group in (opt.param_groups if opt is not None else []):
                group["lr"] = rate_control.learning_rate(self.cfg, self.step, base, self.warm_started_at)
        return rate_control.learning_rate(self.cfg, self.step, warm_start=self.warm_started_at)

    def _apply(self, loss: torch.Tensor, opt: torch.optim.Optimizer) -> bool:
        """Back-propagate, clip the gradient norm to ``clip_grad_norm`` (if set) and step, unless the loss or a
        gradient is NaN/Inf; True when applied."""
        opt.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            return False
        loss.backward()
        params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
        if not torch.isfinite(torch.nn.utils.clip_grad_norm_(params, self.cfg.clip_grad_norm or math.inf)):
            opt.zero_grad(set_to_none=True)
            return False
        opt.step()
        return True

    def _train_mode(self) -> None:
        self.model.train()
        for module in self.frozen:
            module.eval()   # P in eval mode: z is quantised, so G is trained on the decoder's exact input

    def train_step(self, batch: torch.Tensor) -> dict[str, float]:
        """One step: D first (stage 2), then the codec on the whole batch, then the auxiliary loss. A non-finite
        loss or gradient skips the update it belongs to, and the steps after it that depend on it.

        ``batch`` holds ``batch_size`` images per process (twice that with ``disc_batch="own"``: the second
        half is D's). Returns the logged values; ``step`` is the number of steps done after this one.
        """
        batch = batch.to(self.device, non_blocking=True).contiguous(memory_format=MEMORY_FORMAT)
        self._train_mode()
        lr = self._set_lr()
        own = self.disc is not None and self.cfg.disc_batch == "own"
        x, x_d = batch.chunk(2) if own else (batch, None)
        out = self.forward(x)
        log: dict[str, float] = {}
        ok = True
        if self.disc is not None:
            d_loss = self.discriminator_term(x_d) if own else self.discriminator_term(x, out)
            ok = self._apply(d_loss, self.d_opt)
            log["d_loss"] = float(d_loss.detach())
        terms = self.generator_terms(x, out)
        ok = ok and self._apply(terms["loss"], self.opt)
        log.update({k: float(v.detach()) for k, v in terms.items()})
        if ok and self.aux_opt is not None:
            aux = self.model.aux_loss()
            self.aux_opt.zero_grad(set_to_none=True)
            aux.backward()
            self.placement.average_grads([p for g in self.aux_opt.param_groups for p in g["params"]])
            self.aux_opt.step()
            log["aux"] = float(aux.detach())
        self.bad_steps = 0 if ok else self.bad_steps + 1
        if not ok:
            tqdm.write(f"hific train: step {self.step}: non-finite loss or gradient ({log.get('loss')}), step skipped")
            if self.bad_steps >= self.cfg.max_bad_steps:
                raise TrainingError(f"{self.bad_steps} consecutive steps with NaN/Inf losses at step {self.step}; "
                                    f"the run stops (last good checkpoint: {self.run_dir / CHECKPOINT})")
        self.step += 1
        log.update(step=self.step, lr=lr, skipped=int(not ok), bpp=log.pop("rate"), psnr=losses.psnr(log["mse"]))
        return log

    # --- validation ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """bpp (the model's estimate for the quantised latents), PSNR and LPIPS (when the objective has it) on the
        held-out images; a snapshot of the first two."""
        self.model.eval()
        rows = []
        for x in self.val.split(1):
            with self.placement.autocast():
                out = self.model(x)   # eval mode: the likelihoods of the quantised latents
            x_hat = out["x_hat"].float().clamp(0, 1)
            x8, r8 = (x * 255).round(), (x_hat * 255).round()
            row = {"bpp": float(losses.bpp(out["likelihoods"], x.shape[-2] * x.shape[-1])),
                   "psnr": losses.psnr(float(((x8 - r8) ** 2).mean())), "x_hat": x_hat}
            if self.objective.lpips is not None:
                row["lpips"] = float(losses.lpips_loss(self.objective.lpips, x, x_hat))
            rows.append(row)
        self.model.train()
        x_hat = torch.cat([r.pop("x_hat") for r in rows[:2]])
        if self.rank == 0:
            write_snapshot(self.run_dir, self.step, self.val[: len(x_hat)], x_hat)
        return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}

    # --- the loop -----------------------------------------------------------------------------------------
    @property
    def step_batch(self) -> int:
        """Images drawn per step and process: the batch, and as many again for D with ``disc_batch="own"``."""
        own = self.cfg.gan and self.cfg.disc_batch == "own"
        return self.local_batch * (2 if own else 1)

    def resident(self) -> bool:
        """Keep the decoded training set on the device (``stream`` None: when it fits RESIDENT_FRACTION of
        the device's memory)."""
        if self.stream is not None:
            return not self.stream
        if self.device.type == "cuda":
            budget = torch.cuda.mem_get_info(self.device)[0]
        else:
            budget = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return ResidentImages.nbytes(self.files) <= RESIDENT_FRACTION * budget

    def batches(self) -> Iterator[torch.Tensor]:
        """The batches of the steps from ``self.step`` to ``cfg.steps``, on the device."""
        cfg = self.cfg
        sampler = StepSampler(self.step, cfg.steps, self.step_batch, self.rank, self.world)
        if self.resident():
            if self._images is None:
                self._images = ResidentImages(self.files, cfg.crop, cfg.downscale, cfg.seed, self.device)
            yield from map(self._images.batch, sampler.steps())
            return
        dataset = StreamedCrops(self.files, cfg.crop, cfg.downscale, cfg.seed)
        loader = torch.utils.data.DataLoader(dataset, batch_size=self.step_batch, sampler=sampler,
                                             num_workers=self.workers, pin_memory=self.device.type == "cuda",
                                             persistent_workers=self.workers > 0,
                                             # its own generator: the loader must not draw from the global RNG
                                             generator=torch.Generator().manual_seed(cfg.seed))
        for batch in loader:
            yield batch.to(self.device, non_blocking=True)

    def seconds_per_step(self) -> float:
        """Train through the remaining steps, a warm-up step and then the timed ones (at least one), and return
        the timed steps' mean seconds (GPU work included; data pipeline included; nothing saved or logged)."""
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        batches = self.batches()
        self.train_step(next(batches))
        sync()
        t0, first = time.perf_counter(), self.step
        for batch in batches:
            self.train_step(batch)
        sync()
        if self.step == first:
            raise TrainingError(f"{self.cfg.name}: no step left to time after the warm-up step")
        return (time.perf_counter() - t0) / (self.step - first)

    def should_stop(self, started: float, budget: float | None, requests: list[str]) -> bool:
        """True once this invocation has trained ``budget`` seconds or a stop was requested (agreed by every
        process under torchrun)."""
        spent = budget is not None and time.perf_counter() - started >= budget
        return self.placement.any(spent or bool(requests))

    def fit(self, time_budget: float | None = None) -> None:
        """Train until ``cfg.steps``, logging (CSV, TensorBoard), validating and checkpointing on the way.
        With ``time_budget`` (seconds), or on SIGTERM / SIGINT (:func:`stop_requests`), stop earlier after the
        current step, validated and with a checkpoint."""
        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        run_log = RunLog(self.run_dir, self.step) if self.rank == 0 else None
        bar = tqdm(total=cfg.steps, initial=self.step, desc=cfg.name, unit="step", disable=not self.progress,
                   dynamic_ncols=True)
        t0 = started = saved = time.perf_counter()
        with stop_requests() as requests, bar:
            try:
                for batch in self.batches():
                    log = self.train_step(batch)
                    now = time.perf_counter()
                    self.wall_s, t0 = self.wall_s + now - t0, now
                    bar.update(1)
                    bar.set_postfix({k: f"{log[k]:.4g}" for k in ("loss", "bpp", "lpips", "psnr") if k in log})
                    last = self.should_stop(started, time_budget, requests)
                    if run_log is not None:
                        self._record(log, run_log, last)
                    if last:
                        self.save()
                        why = f"{requests[0]} received" if requests else f"time budget of {time_budget:g} s reached"
                        tqdm.write(f"{cfg.name}: {why}: stopped at step {self.step}, checkpoint in {self.run_dir}")
                        break
                    if (self.step % cfg.ckpt_every == 0 or self.step == cfg.steps
                            or now - saved >= 60 * cfg.ckpt_minutes):
                        self.save()
                        saved = time.perf_counter()
            finally:
                if run_log is not None:
                    run_log.close()

    def _record(self, log: dict[str, float], run_log: RunLog, last: bool = False) -> None:
        """Log a step (every ``log_every``) and validate (every ``val_every``); the ``last`` step of a run is
        always logged and validated."""
        cfg = self.cfg
        last = last or self.step == cfg.steps
        if log["step"] % cfg.log_every == 0 or last:
            log["wall_s"] = self.wall_s
            run_log.training(log)
        if self.val is not None and (self.step % cfg.val_every == 0 or last):
            run_log.validation(cfg.name, self.step, self.wall_s, self.validate())
