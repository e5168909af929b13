"""Training speed of the real trainer (data pipeline included) for each model size, stage and recipe.

    python benchmarks/train_speed.py [--models small,paper] [--stages 1,2] [--recipes official,illm]
                                     [--disc-batch reuse,own] [--crop 256] [--batch-size 8] [--steps 3]
                                     [--device auto|cpu|cuda] [--threads N] [--stream] [--workers N] [--csv FILE]

Stage 1 is E, G, P with rate + MSE + LPIPS ("no GAN"); stage 2 adds D, which trains on the G step's
detached reconstructions (``reuse``) or on a batch of its own (``own``, official). ``illm`` is MS-ILLM's
recipe (stage 2 trains G alone). ``g_images_per_s``: images through E/G/P's update per second;
``d_images_per_s``: real images D's update sees per second (each with one reconstruction). The first
step of each run is a warm-up and is not timed. Training images default to ../shared/data/bsds500/train
(decoded once and kept on the device unless --stream). Prints a table; writes nothing else (but --csv).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch

from hific.config import illm_name, train_config
from hific.errors import HificError
from hific.bench.speed_tables import print_table
from hific.train.trainer import Trainer

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bsds500" / "train"


def preset(model: str, stage: int, recipe: str) -> str:
    """The lo-target preset of a model size, stage and recipe, e.g. ``hific-lo-illm-paper``."""
    name = "nogan-lo" if stage == 1 else "hific-lo"
    name += "" if model == "small" else f"-{model}"
    return illm_name(name) if recipe == "illm" else name


def measure(model: str, stage: int, recipe: str, disc_batch: str, args: argparse.Namespace) -> dict:
    """Time ``args.steps`` training steps (after one warm-up step) of one preset."""
    cfg = dataclasses.replace(train_config(preset(model, stage, recipe)).scaled(args.steps + 1), crop=args.crop,
                              batch_size=args.batch_size, disc_batch=disc_batch)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, [args.data], tmp, device=args.device, progress=False, workers=args.workers,
                          stream=args.stream or None)
        s_per_step = trainer.seconds_per_step()
    images_per_s = args.batch_size / s_per_step
    return {"model": model, "stage": stage, "recipe": recipe, "disc_batch": disc_batch if stage == 2 else "",
            "device": str(trainer.device), "crop": args.crop, "batch": args.batch_size, "steps": args.steps,
            "s_per_step": s_per_step, "g_images_per_s": images_per_s,
            "d_images_per_s": images_per_s if stage == 2 else 0.0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="small,paper")
    ap.add_argument("--stages", default="1,2")
    ap.add_argument("--recipes", default="official", help="official and/or illm (MS-ILLM's)")
    ap.add_argument("--disc-batch", default="reuse", help="stage 2: reuse and/or own")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per run (+1 warm-up)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--stream", action="store_true", help="decode per sample (as hific train --stream)")
    ap.add_argument("--workers", type=int, default=0, help="data-loading processes with --stream")
    ap.add_argument("--csv", type=Path, help="also write the table as CSV")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        stages = [int(s) for s in args.stages.split(",")]
        recipes, discs = args.recipes.split(","), args.disc_batch.split(",")
        if (args.steps < 1 or any(s not in (1, 2) for s in stages) or not set(recipes) <= {"official", "illm"}
                or not set(discs) <= {"reuse", "own"}):
            raise ValueError
    except ValueError:
        print("train_speed: error: --stages takes 1 and/or 2, --recipes official/illm, --disc-batch reuse/own, "
              "--steps a positive number", file=sys.stderr)
        return 2
    runs = [(m, s, r, d) for m in args.models.split(",") for s in stages for r in recipes
            for d in (discs if s == 2 else discs[:1])]
    try:
        rows = [measure(*run, args) for run in runs]
    except HificError as e:
        print(f"train_speed: error: {e}", file=sys.stderr)
        return 2
    print_table(pd.DataFrame(rows), args.csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
