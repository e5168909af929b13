"""The trainer: HiFiC stage 1 ("no GAN") and stage 2 (with D), and the M&S baseline, with one loop.

Per step (paper Sec. 3; official code models/hific/model.py): in stage 2 first one update of D, conditioned
on the quantised latent y_hat (gradient stopped), on real images against E/G's reconstructions; then one
update of E, G, P on the whole batch (G's GAN term through the updated D); then one update of the entropy
bottleneck's auxiliary loss with its own optimiser. D sees the G step's own images and detached
reconstructions (``disc_batch="reuse"``, one E/G forward per step) or, as in the official code, a batch of
its own (``"own"``). Checkpoints hold weights, optimisers, step, RNG state and wall time, so ``resume``
continues exactly.
"""
from __future__ import annotations

import csv
import io
import math
import os
import platform
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from hific.config import MS_WIDTHS, TrainConfig, model_config
from hific.discriminator import Discriminator
from hific.errors import HificError
from hific.image_io import atomic_write_bytes, write_png
from hific.model import HiFiC
from hific.zoo import read_blob, save_checkpoint, write_blob
from hific.train import losses, rate_control
from hific.train.data import ResidentImages, StepSampler, StreamedCrops, list_images, load_validation

CHECKPOINT = "last.pt"
# The decoded training set stays on the device when it takes at most this fraction of its (free) memory.
RESIDENT_FRACTION = 0.25
# Training tensors are channels-last: convolutions and ChannelNorm's layer norm run faster so (CPU and GPU).
MEMORY_FORMAT = torch.channels_last
LOG_FIELDS = ("step", "wall_s", "loss", "bpp", "bpp_q", "rate_weight", "mse", "psnr", "lpips", "g_gan",
              "d_loss", "aux", "lr", "skipped")
VAL_FIELDS = ("step", "wall_s", "bpp", "psnr", "lpips")


class TrainingError(HificError):
    """A training run cannot start or cannot go on (bad data, diverged losses, missing stage-1 run)."""


def pick_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without a GPU is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError("--device cuda: no CUDA GPU is visible to PyTorch")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise TrainingError(f"--device {name}: choose auto, cpu or cuda")
    return torch.device(name)


def setup_distributed(device: torch.device) -> tuple[int, int, torch.device]:
    """(rank, world size, device) under torchrun (WORLD_SIZE > 1: one process per GPU), else (0, 1, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, device
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return dist.get_rank(), world, device


def build_codec_model(cfg: TrainConfig) -> nn.Module:
    """The untrained codec of a training configuration: HiFiC (E, G, P) or CompressAI's M&S."""
    if cfg.kind == "hific":
        return HiFiC(model_config(cfg.model))
    if cfg.kind == "ms":
        from compressai.models import MeanScaleHyperprior

        return MeanScaleHyperprior(*MS_WIDTHS[cfg.model])
    raise TrainingError(f"unknown model kind {cfg.kind!r} in training configuration {cfg.name!r}")


def make_optimizer(cfg: TrainConfig, params: list[nn.Parameter], lr: float,
                   betas: tuple[float, float]) -> torch.optim.Optimizer:
    """Adam (official HiFiC) or AdamW with ``weight_decay`` (MS-ILLM); fused kernels on GPU."""
    fused = {"fused": True} if params and params[0].is_cuda else {}
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=cfg.weight_decay, **fused)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, **fused)
    raise TrainingError(f"unknown optimizer {cfg.optimizer!r} in training configuration {cfg.name!r}")


@contextmanager
def frozen(module: nn.Module):
    """Within the block, ``module``'s parameters take no gradient (gradients still flow through it)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


def compatible(earlier: dict, cfg: TrainConfig) -> bool:
    """Whether a run of ``cfg`` can continue an export trained as ``earlier`` (its train_config): the same
    networks, stage and rate target (a recipe preset, e.g. ``hific-lo-illm``, may continue ``hific-lo``)."""
    keys = ("kind", "model", "gan", "target_bpp", "ms_lambda")
    return all(earlier.get(k) == getattr(cfg, k) for k in keys)


def is_aux(name: str) -> bool:
    """Parameters of the auxiliary loss: the entropy bottleneck's quantiles (CompressAI's convention)."""
    return name.endswith("quantiles")


def read_training_checkpoint(path: Path) -> dict:
    """A training checkpoint written by :meth:`Trainer.save`; one clear error when unusable."""
    blob = read_blob(path, TrainingError, "training checkpoint")
    if "model" not in blob or "step" not in blob:
        raise TrainingError(f"{path}: not a hific training checkpoint")
    return blob


def _append_csv(path: Path, fields: tuple[str, ...], row: dict[str, Any]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def truncate_csv(path: Path, step: int) -> None:
    """Drop the rows logged after ``step`` (a resumed run logs them again), rewriting the file atomically."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    kept = rows[:1] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= step]
    buf = io.StringIO()
    csv.writer(buf).writerows(kept)
    atomic_write_bytes(path, buf.getvalue().encode())


def psnr(mse_255: float) -> float:
    """PSNR in dB from the MSE on the 0-255 scale."""
    return 10 * math.log10(255.0 ** 2 / max(mse_255, 1e-10))


class Trainer:
    """One training run in ``run_dir`` for the configuration ``cfg`` on the images in ``data``."""

    def __init__(self, cfg: TrainConfig, data: list[str | Path], run_dir: str | Path, device: str = "auto",
                 val_files: list[Path] | None = None, init: str | Path | None = None, workers: int = 0,
                 lpips_net: nn.Module | None = None, progress: bool = True, warm_start: str | None = None,
                 stream: bool | None = None, compile: bool = False) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.rank, self.world, self.device = setup_distributed(pick_device(device))
        if cfg.batch_size % self.world:
            raise TrainingError(f"batch size {cfg.batch_size} is not divisible by {self.world} processes")
        self.local_batch = cfg.batch_size // self.world
        self.files = list_images(data)
        self.data_dirs = [str(d) for d in data]
        self.workers, self.progress = workers, progress and self.rank == 0
        self.stream, self._images = stream, None   # see resident()
        self.model = build_codec_model(cfg).to(self.device, memory_format=MEMORY_FORMAT)
        self.disc = Discriminator(self.model.config).to(self.device, memory_format=MEMORY_FORMAT) if cfg.gan else None
        if cfg.kind == "hific":
            if lpips_net is None:
                from hific.weights import lpips_network

                lpips_net = lpips_network(net="alex")
            self.lpips = lpips_net.to(self.device, memory_format=MEMORY_FORMAT).eval().requires_grad_(False)
        else:
            from compressai.losses import RateDistortionLoss

            self.lpips = None
            self.rd_loss = RateDistortionLoss(lmbda=cfg.ms_lambda)
        self.frozen = self.frozen_modules()
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
        self.init_info: dict | None = None      # the stage-1 run stage 2 started from (see init_from)
        self.val = load_validation(val_files, min(256, cfg.crop * 2)).to(self.device) if val_files else None
        if init is not None:
            self.init_from(Path(init))
        if warm_start is not None:
            self.warm_start(warm_start)
        self.net, self.dnet = self._wrap(self.model), self._wrap(self.disc)
        if compile:   # TorchInductor kernels for E/G/P and D (GPU: fewer launches; the first steps compile)
            self.net = torch.compile(self.net)
            self.dnet = torch.compile(self.dnet) if self.dnet is not None else None

    # --- distributed --------------------------------------------------------------------------------------
    def _wrap(self, module: nn.Module | None) -> nn.Module | None:
        if module is None or self.world == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)

    def _average_aux_grads(self) -> None:
        """The auxiliary loss is computed outside DDP's forward; average its gradients by hand."""
        if self.world == 1:
            return
        for group in self.aux_opt.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= self.world

    def _mean_over_ranks(self, value: torch.Tensor) -> torch.Tensor:
        """The batch-wide mean of a per-process scalar (lambda' looks at the whole batch's bpp estimate)."""
        if self.world > 1:
            dist.all_reduce(value)
            value = value / self.world
        return value

    def _autocast(self):
        """bf16 autocast on GPU; full precision on CPU."""
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    # --- losses -------------------------------------------------------------------------------------------
    def frozen_modules(self) -> list[nn.Module]:
        """The networks a stage-2 run with ``freeze_analysis`` keeps fixed: E and P (MS-ILLM)."""
        if not (self.cfg.freeze_analysis and self.cfg.gan and self.cfg.kind == "hific"):
            return []
        return [self.model.encoder, self.model.prior]

    def forward(self, x: torch.Tensor):
        """The codec's training pass on x (a HiFiCOutput, or CompressAI's dict for M&S)."""
        with self._autocast():
            return self.net(x)

    def generator_terms(self, x: torch.Tensor, out=None) -> dict[str, torch.Tensor]:
        """Every term of L_EGP for the batch x (paper Eq. 4), plus the total ``loss`` and monitoring values:
        lambda' r(y) + k_M MSE + k_P LPIPS (+ beta * -log D(x', y_hat) in stage 2). ``out``: the batch's
        forward pass, when already computed."""
        cfg = self.cfg
        out = self.forward(x) if out is None else out
        if cfg.kind == "ms":
            rd = self.rd_loss(out, x)
            return {"loss": rd["loss"], "rate": rd["bpp_loss"], "mse": rd["mse_loss"] * 255.0 ** 2,
                    "bpp_q": rd["bpp_loss"].detach()}
        n_pix = x.shape[0] * x.shape[-2] * x.shape[-1]
        x_hat = out.x_hat.float()
        rate = losses.bpp(tuple(t.float() for t in out.likelihoods), n_pix)
        bpp_q = self._mean_over_ranks(losses.bpp(tuple(t.float() for t in out.likelihoods_q), n_pix).detach())
        terms = {"rate": rate, "mse": losses.mse_255(x, x_hat), "lpips": losses.lpips_loss(self.lpips, x, x_hat),
                 "bpp_q": bpp_q, "rate_weight": rate_control.rate_weight_tensor(cfg, self.step, bpp_q)}
        loss = terms["rate_weight"] * rate + cfg.k_m * terms["mse"] + cfg.k_p * terms["lpips"]
        if self.disc is not None:
            with frozen(self.disc), self._autocast():   # D's weights get no gradient from G's loss
                terms["g_gan"] = losses.generator_gan_loss(self.disc(out.x_hat, out.y_hat).float())
            loss = loss + cfg.beta * terms["g_gan"]
        terms["loss"] = loss
        return terms

    def discriminator_term(self, x: torch.Tensor, out=None) -> torch.Tensor:
        """D's loss on (x, y_hat) against (x', y_hat), both halves in one pass (paper Eq. 5; official code).
        ``out``: the forward pass of x (the G step's); without it E and G run on x without gradients."""
        if out is None:
            with torch.no_grad():
                out = self.forward(x)
        fake, cond = out.x_hat.detach(), out.y_hat.detach()
        with self._autocast():
            logits = self.dnet(torch.cat([x, fake.to(x.dtype)]), torch.cat([cond, cond])).float()
        real, fake_logits = logits.chunk(2)
        return losses.discriminator_loss(real, fake_logits)

    # --- one step -----------------------------------------------------------------------------------------
    @property
    def warm_started_at(self) -> int | None:
        """The step this run continued an earlier one from (``--warm-start``), None for a run from scratch."""
        return began_at(self.history)

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
        """One step: D first (stage 2), then E, G, P on the whole batch, then the auxiliary loss. A non-finite
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
            aux = self.model.aux_loss() if self.cfg.kind == "ms" else self.model.prior.aux_loss()
            self.aux_opt.zero_grad(set_to_none=True)
            aux.backward()
            self._average_aux_grads()
            self.aux_opt.step()
            log["aux"] = float(aux.detach())
        self.bad_steps = 0 if ok else self.bad_steps + 1
        if not ok:
            tqdm.write(f"hific train: step {self.step}: non-finite loss or gradient ({log.get('loss')}), step skipped")
            if self.bad_steps >= self.cfg.max_bad_steps:
                raise TrainingError(f"{self.bad_steps} consecutive steps with NaN/Inf losses at step {self.step}; "
                                    f"the run stops (last good checkpoint: {self.run_dir / CHECKPOINT})")
        self.step += 1
        log.update(step=self.step, lr=lr, skipped=int(not ok), bpp=log.pop("rate"), psnr=psnr(log["mse"]))
        return log

    # --- checkpoints --------------------------------------------------------------------------------------
    def state(self) -> dict:
        """Everything needed to continue exactly: weights, optimisers, step, RNG state, wall time."""
        blob = {"config": self.cfg.to_dict(), "step": self.step, "wall_s": self.wall_s, "bad_steps": self.bad_steps,
                "data": self.data_dirs, "model": self.model.state_dict(), "opt": self.opt.state_dict(),
                "aux_opt": self.aux_opt.state_dict() if self.aux_opt else None, "rng_cpu": torch.get_rng_state(),
                "hardware": hardware(self.device, self.world), "history": self.history, "init": self.init_info}
        if self.device.type == "cuda":
            blob["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        if self.disc is not None:
            blob["disc"], blob["d_opt"] = self.disc.state_dict(), self.d_opt.state_dict()
        return blob

    def save(self, path: Path | None = None) -> Path:
        """Write the training checkpoint atomically (rank 0 only under torchrun)."""
        path = path or self.run_dir / CHECKPOINT
        if self.rank == 0:
            write_blob(self.state(), path)
        return path

    def resume(self, path: Path | None = None) -> None:
        """Continue from a training checkpoint of the same configuration."""
        path = path or self.run_dir / CHECKPOINT
        blob = read_training_checkpoint(path)
        if blob["config"]["name"] != self.cfg.name or blob["config"]["kind"] != self.cfg.kind:
            raise TrainingError(f"{path} is a checkpoint of {blob['config']['name']!r}, not of {self.cfg.name!r}")
        self.model.load_state_dict(blob["model"])
        self.opt.load_state_dict(blob["opt"])
        if self.aux_opt is not None:
            self.aux_opt.load_state_dict(blob["aux_opt"])
        if self.disc is not None:
            self.disc.load_state_dict(blob["disc"])
            self.d_opt.load_state_dict(blob["d_opt"])
        self.step, self.wall_s, self.bad_steps = blob["step"], blob["wall_s"], blob["bad_steps"]
        self.history, self.init_info = blob.get("history", []), blob.get("init")
        torch.set_rng_state(blob["rng_cpu"])
        if "rng_cuda" in blob and self.device.type == "cuda":
            torch.cuda.set_rng_state(blob["rng_cuda"], self.device)

    def init_from(self, source: str | Path) -> None:
        """Stage 2 starts from the E, G, P weights (not the optimisers or step) of a stage-1 training checkpoint,
        or of an exported checkpoint (a shipped name or a path) of the same model, e.g. ``hific-mi`` from
        ``hific-hi``: rate control then moves the rate to this preset's target."""
        path = Path(source)
        if path.exists() and "model" in (blob := read_blob(path, TrainingError, "checkpoint")) and "step" in blob:
            cfg, weights, steps, wall_s = blob["config"], blob["model"], blob["step"], blob["wall_s"]
        else:
            from hific.zoo import resolve

            model, _, meta = resolve(source)
            cfg, weights, steps, wall_s = meta.get("train_config", {}), model.state_dict(), meta["steps"], meta["wall_s"]
        if cfg.get("kind") != self.cfg.kind or cfg.get("model") != self.cfg.model:
            raise TrainingError(f"{source}: a {cfg.get('model')} {cfg.get('kind')} run cannot initialise "
                                f"{self.cfg.name!r}")
        from hific.zoo import load_weights

        load_weights(self.model, weights)
        self.init_info = {"config": cfg["name"], "steps": steps, "wall_s": round(wall_s, 1)}

    def warm_start(self, name_or_path: str) -> None:
        """Continue training an exported checkpoint of this configuration (a shipped name or a path), run after
        run on whatever machine is at hand: its weights, step count (so the schedule goes on where it was) and
        wall time, history and stage-1 origin. Optimisers start afresh, and so does D in stage 2 (exports hold
        E, G, P only)."""
        from hific.zoo import load_weights, resolve

        model, _, meta = resolve(name_or_path)
        cfg = meta.get("train_config", {})
        if not compatible(cfg, self.cfg):
            raise TrainingError(f"--warm-start {name_or_path}: a checkpoint of {cfg.get('name', 'an unknown run')!r}, "
                                f"which {self.cfg.name!r} cannot continue (another model, stage or rate target)")
        if int(meta["steps"]) >= self.cfg.steps:
            raise TrainingError(f"--warm-start {name_or_path}: already at step {meta['steps']}; "
                                f"give --steps above it")
        load_weights(self.model, model.state_dict())
        self.step, self.wall_s = int(meta["steps"]), float(meta["wall_s"])
        self.history = meta.get("history") or [segment(0, self.step, self.wall_s, meta.get("hardware", ""), cfg)]
        self.init_info = meta.get("init")  # a stage-2 export keeps naming the stage-1 run it grew from

    # --- validation ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """bpp (the model's estimate for the quantised latents), PSNR and LPIPS on the held-out images."""
        self.model.eval()
        rows = []
        for x in self.val.split(1):
            with self._autocast():
                out = self.model(x)
            if self.cfg.kind == "ms":
                x_hat, lik = out["x_hat"], tuple(out["likelihoods"].values())
            else:
                x_hat, lik = out.x_hat, out.likelihoods_q
            x_hat = x_hat.float().clamp(0, 1)
            x8, r8 = (x * 255).round(), (x_hat * 255).round()
            row = {"bpp": float(losses.bpp(tuple(t.float() for t in lik), x.shape[-2] * x.shape[-1])),
                   "psnr": psnr(float(((x8 - r8) ** 2).mean())), "x_hat": x_hat}
            if self.lpips is not None:
                row["lpips"] = float(losses.lpips_loss(self.lpips, x, x_hat))
            rows.append(row)
        self.model.train()
        self._snapshot(torch.cat([r.pop("x_hat") for r in rows[:2]]))
        return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}

    def _snapshot(self, x_hat: torch.Tensor) -> None:
        """Originals (top row) and reconstructions (bottom row) as a PNG in snapshots/."""
        if self.rank != 0:
            return
        grid = torch.cat([torch.cat(list(self.val[: len(x_hat)]), dim=2), torch.cat(list(x_hat), dim=2)], dim=1)
        rgb = grid.mul(255).round().clamp(0, 255).byte().permute(1, 2, 0).cpu().numpy()
        write_png(self.run_dir / "snapshots" / f"step_{self.step:07d}.png", rgb)

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

    def out_of_time(self, started: float, budget: float | None) -> bool:
        """True once this invocation has trained ``budget`` seconds (agreed by every process under torchrun)."""
        if budget is None:
            return False
        flag = torch.tensor(float(time.perf_counter() - started >= budget), device=self.device)
        if self.world > 1:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag)

    def fit(self, time_budget: float | None = None) -> None:
        """Train until ``cfg.steps``, logging (CSV, TensorBoard), validating and checkpointing on the way.
        With ``time_budget`` (seconds), stop earlier once that much time has passed, with a checkpoint."""
        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        writer = None
        if self.rank == 0:
            truncate_csv(self.run_dir / "log.csv", self.step)
            truncate_csv(self.run_dir / "val.csv", self.step)
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=self.step)
        bar = tqdm(total=cfg.steps, initial=self.step, desc=cfg.name, unit="step", disable=not self.progress,
                   dynamic_ncols=True)
        t0 = started = time.perf_counter()
        try:
            for batch in self.batches():
                log = self.train_step(batch)
                now = time.perf_counter()
                self.wall_s, t0 = self.wall_s + now - t0, now
                bar.update(1)
                bar.set_postfix({k: f"{log[k]:.4g}" for k in ("loss", "bpp", "lpips", "psnr") if k in log})
                last = self.out_of_time(started, time_budget)
                if self.rank == 0:
                    self._record(log, writer, last)
                if last:
                    self.save()
                    tqdm.write(f"{cfg.name}: time budget of {time_budget:g} s reached at step {self.step}")
                    break
                if self.step % cfg.ckpt_every == 0 or self.step == cfg.steps:
                    self.save()
        finally:
            bar.close()
            if writer is not None:
                writer.close()

    def _record(self, log: dict[str, float], writer, last: bool = False) -> None:
        """Log a step (every ``log_every``) and validate (every ``val_every``) into CSV and TensorBoard; the
        ``last`` step of a run is always logged and validated."""
        cfg = self.cfg
        last = last or self.step == cfg.steps
        if log["step"] % cfg.log_every == 0 or last:
            log["wall_s"] = self.wall_s
            _append_csv(self.run_dir / "log.csv", LOG_FIELDS, log)
            for k, v in log.items():
                if k not in ("step", "wall_s"):
                    writer.add_scalar(f"train/{k}", v, log["step"])
        if self.val is not None and (self.step % cfg.val_every == 0 or last):
            val = self.validate()
            _append_csv(self.run_dir / "val.csv", VAL_FIELDS, {"step": self.step, "wall_s": self.wall_s, **val})
            for k, v in val.items():
                writer.add_scalar(f"val/{k}", v, self.step)
            tqdm.write(f"{cfg.name} step {self.step}: validation " + ", ".join(f"{k} {v:.4g}" for k, v in val.items()))


def hardware(device: torch.device, world: int = 1) -> str:
    """A one-line description of where the run happens (for the model card)."""
    if device.type == "cuda":
        return f"{world} x {torch.cuda.get_device_name(device)}"
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def segment(first: int, last: int, wall_s: float, where: str, cfg: dict, validation: list | None = None) -> dict:
    """One run of a checkpoint's training history: steps first..last, how long, where, with what batch and
    preset, and its validation curve (rows of VAL_FIELDS; wall_s counts every run before it too)."""
    return {"steps": [int(first), int(last)], "wall_s": round(float(wall_s), 1), "hardware": where,
            "batch_size": cfg.get("batch_size"), "crop": cfg.get("crop"), "lr": cfg.get("lr"),
            "config": cfg.get("name"), "validation": validation or []}


def validation_curve(run_dir: Path, first: int, last: int) -> list[list[float]]:
    """The rows of ``run_dir/val.csv`` for steps in (first, last], as lists in VAL_FIELDS order."""
    path = run_dir / "val.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if first < int(r["step"]) <= last]
    return [[float(r.get(k) or "nan") for k in VAL_FIELDS] for r in rows]


def began_at(history: list[dict]) -> int | None:
    """The step a run with these earlier runs began at: where the last of them ended (None: no earlier runs)."""
    return history[-1]["steps"][1] if history else None


def export(checkpoint: str | Path, out: str | Path, name: str | None = None) -> Path:
    """Write the inference checkpoint (float16, :func:`hific.zoo.save_checkpoint`) of a training checkpoint."""

    blob = read_training_checkpoint(Path(checkpoint))
    cfg = TrainConfig.from_dict(blob["config"])
    model = build_codec_model(cfg)
    model.load_state_dict(blob["model"])
    model.update(force=True)
    earlier = blob.get("history", [])
    first = began_at(earlier) or 0
    this_run = segment(first, blob["step"], blob["wall_s"] - sum(h["wall_s"] for h in earlier), blob["hardware"],
                       blob["config"], validation_curve(Path(checkpoint).parent, first, blob["step"]))
    history = earlier + [this_run]
    meta = {"train_config": cfg.to_dict(), "steps": blob["step"], "wall_s": round(blob["wall_s"], 1),
            "data": blob["data"], "hardware": "; ".join(dict.fromkeys(h["hardware"] for h in history)),
            "history": history, "init": blob.get("init")}
    return save_checkpoint(model.eval(), out, name or cfg.name, meta)
