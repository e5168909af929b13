"""``hific train``: train HiFiC, "no GAN" or M&S from a preset of :data:`hific.config.TRAIN_CONFIGS`."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from hific.config import MODEL_CONFIGS, TRAIN_CONFIGS, TrainConfig, train_config
from hific.errors import TrainingError


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand to the ``hific`` command's subparsers."""
    p = sub.add_parser("train", help="train a model (HiFiC stage 1/2, M&S) from a preset",
                       description=__doc__ + f" Presets: {', '.join(TRAIN_CONFIGS)}.")
    p.add_argument("--config", "-c", required=True, choices=sorted(TRAIN_CONFIGS), metavar="NAME",
                   help="training preset: hific-/nogan-/ms-{lo,mi,hi}, '-paper' suffix for the paper's widths")
    p.add_argument("--data", nargs="+", type=Path, help="folder(s) of training images (searched recursively)")
    p.add_argument("--run-dir", type=Path, help="checkpoints, logs, snapshots (default runs/<config>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    p.add_argument("--init", metavar="PT|NAME",
                   help="the weights a run starts from at step 0: for stage 2 a stage-1 training checkpoint (default "
                        "runs/<init config>/last.pt); for any preset an exported checkpoint of the same model and kind "
                        "(a shipped name or path, e.g. hific-mi from hific-hi, nogan-hi from nogan-lo)")
    p.add_argument("--warm-start", metavar="NAME|PT",
                   help="continue an exported checkpoint of this preset (e.g. the shipped one of the same name): "
                        "its weights, step count and wall time, with fresh optimisers")
    p.add_argument("--model", choices=sorted(MODEL_CONFIGS), metavar="NAME",
                   help=f"HiFiC / no-GAN presets: another model configuration ({', '.join(MODEL_CONFIGS)}) for a "
                        "run from scratch (default: the preset's; a run from --init or --warm-start trains its "
                        "starting point's)")
    p.add_argument("--steps", type=int, help="run length; the schedule's boundaries scale with it")
    p.add_argument("--batch-size", type=int, help="global batch (split over torchrun processes)")
    p.add_argument("--crop", type=int, help="training crop size (multiple of 64)")
    p.add_argument("--target-bpp", type=float, metavar="R_T",
                   help="HiFiC / no-GAN: the rate target r_t in bpp (default: the preset's, paper Table 2), e.g. to "
                        "land a model on a rate it drifted from")
    p.add_argument("--lambda-b", type=float, help="rate weight below the target (default 2^-6, official)")
    p.add_argument("--lr", type=float, help="learning rate of E, G, P and D (default 1e-4, official)")
    p.add_argument("--disc-batch", choices=("own", "reuse"),
                   help="stage 2: D trains on a batch of its own (default, official) or on the G step's images "
                        "and detached reconstructions (one E/G forward per step instead of two)")
    p.add_argument("--ckpt-every", type=int, help=f"steps between checkpoints (default {TrainConfig.ckpt_every}, not scaled "
                   f"with --steps; one is also written every {TrainConfig.ckpt_minutes:g} minutes)")
    p.add_argument("--val-every", type=int, help="steps between validations and snapshots (after scaling)")
    p.add_argument("--val", type=Path, help="folder of held-out validation images")
    p.add_argument("--val-count", type=int, default=4, help="how many of the --val images to use")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--threads", type=int, help="CPU threads for PyTorch")
    p.add_argument("--workers", type=int, default=0, help="data-loading processes (with --stream)")
    p.add_argument("--stream", action="store_true",
                   help="decode each training image per sample instead of keeping the decoded set on the device "
                        "(the default when it takes more than a quarter of the device's memory)")
    p.add_argument("--compile", action="store_true", help="torch.compile E/G/P and D (worth it on a GPU)")
    p.add_argument("--lr-scaling", choices=("none", "linear", "sqrt"), default="none",
                   help="scale every learning rate with --batch-size / the preset's batch (default none)")
    p.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help="stop after this many seconds of training, with a checkpoint (continue with --resume)")
    p.add_argument("--export", type=Path, metavar="PT",
                   help="do not train: write the run's inference checkpoint (float16) to PT")
    p.set_defaults(func=cmd_train)


def _overrides(cfg: TrainConfig, args: argparse.Namespace) -> TrainConfig:
    if args.steps is not None:
        if args.steps < 1:
            raise TrainingError("--steps must be positive")
        cfg = cfg.scaled(args.steps)
    if args.crop is not None and (args.crop < 64 or args.crop % 64):
        raise TrainingError(f"--crop {args.crop}: must be a positive multiple of 64")
    if args.batch_size is not None and args.batch_size < 1:
        raise TrainingError("--batch-size must be positive")
    if args.model is not None and cfg.kind != "hific":
        raise TrainingError(f"--model: {cfg.name} is M&S, whose widths come from its preset")
    if args.target_bpp is not None and (cfg.kind != "hific" or args.target_bpp <= 0):
        raise TrainingError(f"--target-bpp {args.target_bpp}: a positive rate target, for HiFiC and no-GAN presets "
                            f"({cfg.name} is {cfg.kind})")
    kw = {"model": args.model, "batch_size": args.batch_size, "crop": args.crop, "target_bpp": args.target_bpp,
          "lambda_b": args.lambda_b, "lr": args.lr, "disc_batch": args.disc_batch, "ckpt_every": args.ckpt_every,
          "val_every": args.val_every}
    new = dataclasses.replace(cfg, **{k: v for k, v in kw.items() if v is not None})
    return scale_lr(new, new.batch_size / cfg.batch_size, args.lr_scaling) if args.lr_scaling != "none" else new


def scale_lr(cfg: TrainConfig, ratio: float, rule: str) -> TrainConfig:
    """Learning rates (E/G/P, D, aux) x ratio ("linear") or x sqrt(ratio) ("sqrt") for a batch ``ratio`` times
    the preset's (Goyal et al. 2017's linear rule; the square-root rule suits Adam)."""
    f = ratio if rule == "linear" else ratio ** 0.5
    return dataclasses.replace(cfg, lr=cfg.lr * f, d_lr=None if cfg.d_lr is None else cfg.d_lr * f,
                               aux_lr=None if cfg.aux_lr is None else cfg.aux_lr * f)


def cmd_train(args: argparse.Namespace) -> None:
    """Train (or resume, or export) the run of ``--config`` in ``--run-dir``."""
    import torch

    from hific.train.checkpoints import CHECKPOINT, export, read_training_checkpoint
    from hific.train.data import list_images
    from hific.train.trainer import Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    run_dir = args.run_dir or Path("runs") / args.config
    ckpt = run_dir / CHECKPOINT
    if args.export is not None:
        path = export(ckpt, args.export, args.config)
        print(f"{path}: inference checkpoint of {args.config} ({path.stat().st_size / 1e6:.1f} MB)")
        return
    if not args.data:
        raise TrainingError("--data: give at least one folder of training images")
    if args.resume:
        cfg = TrainConfig.from_dict(read_training_checkpoint(ckpt)["config"])
        if args.model not in (None, cfg.model):
            raise TrainingError(f"--model {args.model}: {run_dir} trains {cfg.model!r}; a resumed run keeps its model")
        cfg = _overrides(cfg, args)
    else:
        if ckpt.exists():
            raise TrainingError(f"{run_dir} already holds a run; pass --resume to continue it or another --run-dir")
        cfg = _overrides(train_config(args.config), args)
    if args.warm_start and (args.resume or args.init):
        raise TrainingError("--warm-start starts a run: it cannot be combined with --resume or --init")
    if args.resume and args.init:
        raise TrainingError("--init starts a run: a resumed run goes on from its own checkpoint")
    init = None
    if (cfg.init_from or args.init) and not args.resume and not args.warm_start:
        init = args.init or run_dir.parent / cfg.init_from / CHECKPOINT
        if args.init is None and not init.exists():
            raise TrainingError(f"stage 2 starts from a stage-1 run: {init} does not exist "
                                f"(train --config {cfg.init_from} first, or pass --init)")
    val = list_images([args.val])[: args.val_count] if args.val else None
    if args.time_budget is not None and args.time_budget <= 0:
        raise TrainingError("--time-budget must be positive (seconds)")
    trainer = Trainer(cfg, args.data, run_dir, device=args.device, val_files=val, init=init, workers=args.workers,
                      warm_start=args.warm_start, stream=True if args.stream else None, compile=args.compile)
    if args.model not in (None, trainer.cfg.model):
        raise TrainingError(f"--model {args.model}: {args.warm_start or init} is a {trainer.cfg.model} checkpoint; "
                            "a run goes on with its starting point's model")
    if args.resume:
        trainer.resume(ckpt)
    trainer.fit(args.time_budget)
    if trainer.rank == 0:
        print(f"{run_dir}: {cfg.name} at step {trainer.step} of {cfg.steps} ({trainer.wall_s / 3600:.2f} h)")
