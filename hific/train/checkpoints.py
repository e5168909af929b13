"""A run's checkpoints: the training checkpoint (``last.pt``: weights, optimisers, step, RNG state, wall time,
so that ``resume`` continues exactly), the starting points of a run (stage 2 from a stage-1 run, ``--init``; an
export continued, ``--warm-start``) and the export of an inference checkpoint with the run's history."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from hific.config import TrainConfig
from hific.errors import TrainingError
from hific.train.run_log import validation_curve
from hific.zoo import build_model, load_weights, read_blob, resolve, save_checkpoint, write_blob

if TYPE_CHECKING:
    from hific.train.trainer import Trainer

CHECKPOINT = "last.pt"


def read_training_checkpoint(path: Path) -> dict:
    """A training checkpoint written by :func:`save`; one clear error when unusable."""
    blob = read_blob(path, TrainingError, "training checkpoint")
    if "model" not in blob or "step" not in blob:
        raise TrainingError(f"{path}: not a hific training checkpoint")
    return blob


def compatible(earlier: dict, cfg: TrainConfig) -> bool:
    """Whether a run of ``cfg`` can continue an export trained as ``earlier`` (its train_config): the same
    networks, stage and rate target (a recipe preset, e.g. ``hific-lo-illm``, may continue ``hific-lo``)."""
    keys = ("kind", "model", "gan", "target_bpp", "ms_lambda")
    return all(earlier.get(k) == getattr(cfg, k) for k in keys)


def segment(first: int, last: int, wall_s: float, where: str, cfg: dict, validation: list | None = None) -> dict:
    """One run of a checkpoint's training history: steps first..last, how long, where, with what batch and
    preset, and its validation curve (rows of VAL_FIELDS; wall_s counts every run before it too)."""
    return {"steps": [int(first), int(last)], "wall_s": round(float(wall_s), 1), "hardware": where,
            "batch_size": cfg.get("batch_size"), "crop": cfg.get("crop"), "lr": cfg.get("lr"),
            "config": cfg.get("name"), "validation": validation or []}


def began_at(history: list[dict]) -> int | None:
    """The step a run with these earlier runs began at: where the last of them ended (None: no earlier runs)."""
    return history[-1]["steps"][1] if history else None


def state(trainer: Trainer) -> dict:
    """Everything needed to continue exactly: weights, optimisers, step, RNG state, wall time."""
    t = trainer
    blob = {"config": t.cfg.to_dict(), "step": t.step, "wall_s": t.wall_s, "bad_steps": t.bad_steps,
            "data": t.data_dirs, "model": t.model.state_dict(), "opt": t.opt.state_dict(),
            "aux_opt": t.aux_opt.state_dict() if t.aux_opt else None, "rng_cpu": torch.get_rng_state(),
            "hardware": t.placement.hardware(), "history": t.history, "init": t.init_info}
    if t.device.type == "cuda":
        blob["rng_cuda"] = torch.cuda.get_rng_state(t.device)
    if t.disc is not None:
        blob["disc"], blob["d_opt"] = t.disc.state_dict(), t.d_opt.state_dict()
    return blob


def save(trainer: Trainer, path: Path) -> Path:
    """Write the training checkpoint atomically (rank 0 only under torchrun)."""
    if trainer.rank == 0:
        write_blob(state(trainer), path)
    return path


def resume(trainer: Trainer, path: Path) -> None:
    """Continue from a training checkpoint of the same configuration."""
    t = trainer
    blob = read_training_checkpoint(path)
    if blob["config"]["name"] != t.cfg.name or blob["config"]["kind"] != t.cfg.kind:
        raise TrainingError(f"{path} is a checkpoint of {blob['config']['name']!r}, not of {t.cfg.name!r}")
    t.model.load_state_dict(blob["model"])
    t.opt.load_state_dict(blob["opt"])
    if t.aux_opt is not None:
        t.aux_opt.load_state_dict(blob["aux_opt"])
    if t.disc is not None:
        t.disc.load_state_dict(blob["disc"])
        t.d_opt.load_state_dict(blob["d_opt"])
    t.step, t.wall_s, t.bad_steps = blob["step"], blob["wall_s"], blob["bad_steps"]
    t.history, t.init_info = blob.get("history", []), blob.get("init")
    torch.set_rng_state(blob["rng_cpu"])
    if "rng_cuda" in blob and t.device.type == "cuda":
        torch.cuda.set_rng_state(blob["rng_cuda"], t.device)


def model_of(source: str | Path) -> str | None:
    """The model configuration of a run's starting point (a stage-1 training checkpoint, or an export: a shipped
    name or a path), which the run goes on training whatever its preset's default; None when the file does not
    name one (a converted published file)."""
    path = Path(source)
    if path.exists() and "model" in (blob := read_blob(path, TrainingError, "checkpoint")) and "step" in blob:
        return blob["config"].get("model")
    return resolve(source)[2].get("train_config", {}).get("model")


def init_from(trainer: Trainer, source: str | Path) -> None:
    """A run starts at step 0 from the E, G, P weights (not the optimisers or step) of a stage-1 training
    checkpoint (stage 2), or of an exported checkpoint (a shipped name or a path) of the same model and kind,
    e.g. ``hific-mi`` from ``hific-hi`` or ``nogan-hi`` from ``nogan-lo``: rate control then moves the rate
    to this preset's target."""
    path = Path(source)
    if path.exists() and "model" in (blob := read_blob(path, TrainingError, "checkpoint")) and "step" in blob:
        cfg, weights, steps, wall_s = blob["config"], blob["model"], blob["step"], blob["wall_s"]
    else:
        model, _, meta = resolve(source)
        cfg, weights, steps, wall_s = meta.get("train_config", {}), model.state_dict(), meta["steps"], meta["wall_s"]
    if cfg.get("kind") != trainer.cfg.kind or cfg.get("model") != trainer.cfg.model:
        raise TrainingError(f"{source}: a {cfg.get('model')} {cfg.get('kind')} run cannot initialise "
                            f"{trainer.cfg.name!r}")
    load_weights(trainer.model, weights)
    trainer.init_info = {"config": cfg["name"], "steps": steps, "wall_s": round(wall_s, 1)}


def warm_start(trainer: Trainer, name_or_path: str) -> None:
    """Continue training an exported checkpoint of this configuration (a shipped name or a path), run after
    run on whatever machine is at hand: its weights, step count (so the schedule goes on where it was) and
    wall time, history and stage-1 origin. Optimisers start afresh, and so does D in stage 2 (exports hold
    E, G, P only)."""
    t = trainer
    model, _, meta = resolve(name_or_path)
    cfg = meta.get("train_config", {})
    if not compatible(cfg, t.cfg):
        raise TrainingError(f"--warm-start {name_or_path}: a checkpoint of {cfg.get('name', 'an unknown run')!r}, "
                            f"which {t.cfg.name!r} cannot continue (another model, stage or rate target)")
    if int(meta["steps"]) >= t.cfg.steps:
        raise TrainingError(f"--warm-start {name_or_path}: already at step {meta['steps']}; "
                            f"give --steps above it")
    load_weights(t.model, model.state_dict())
    t.step, t.wall_s = int(meta["steps"]), float(meta["wall_s"])
    t.history = meta.get("history") or [segment(0, t.step, t.wall_s, meta.get("hardware", ""), cfg)]
    t.init_info = meta.get("init")  # a stage-2 export keeps naming the stage-1 run it grew from


def export(checkpoint: str | Path, out: str | Path, name: str | None = None) -> Path:
    """Write the inference checkpoint (float16, :func:`hific.zoo.save_checkpoint`) of a training checkpoint."""
    blob = read_training_checkpoint(Path(checkpoint))
    cfg = TrainConfig.from_dict(blob["config"])
    model = build_model(cfg.kind, cfg.model)
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
