"""Training speed: steps per second of the real trainer (data pipeline included) for each model size.

    python benchmarks/train_speed.py [--models small,paper] [--stages 1,2] [--crop 256] [--batch-size 8]
                                     [--steps 3] [--device auto|cpu|cuda] [--threads N] [--workers N] [--csv FILE]

Stage 1 is E, G, P with rate + MSE + LPIPS ("no GAN"); stage 2 adds D and its own update on its own
half of the batch. The first step of each run is a warm-up and is not timed. Training images default to
../shared/data/bsds500/train. Prints a table; writes nothing else (but --csv).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from hific.config import train_config
from hific.errors import HificError
from hific.bench.tables import print_table
from hific.train.trainer import Trainer

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bsds500" / "train"


def steps_per_second(model: str, stage: int, args: argparse.Namespace) -> dict:
    """Time ``args.steps`` training steps (after one warm-up step) of the lo-target preset of a model size."""
    name = ("nogan-lo" if stage == 1 else "hific-lo") + ("" if model == "small" else f"-{model}")
    cfg = dataclasses.replace(train_config(name).scaled(args.steps + 1), crop=args.crop, batch_size=args.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, [args.data], tmp, device=args.device, progress=False, workers=args.workers)
        sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
        loader = iter(trainer._loader())
        trainer.train_step(next(loader))
        sync()
        t0 = time.perf_counter()
        for batch in loader:
            trainer.train_step(batch)
        sync()
        elapsed = time.perf_counter() - t0
    return {"model": model, "stage": stage, "device": str(trainer.device), "crop": args.crop,
            "batch": args.batch_size, "steps": args.steps, "s_per_step": elapsed / args.steps,
            "steps_per_s": args.steps / elapsed, "images_per_s": args.steps * args.batch_size / elapsed}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="small,paper")
    ap.add_argument("--stages", default="1,2")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per run (+1 warm-up)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--workers", type=int, default=0, help="data-loading processes (as hific train --workers)")
    ap.add_argument("--csv", type=Path, help="also write the table as CSV")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        stages = [int(s) for s in args.stages.split(",")]
        if args.steps < 1 or any(s not in (1, 2) for s in stages):
            raise ValueError
    except ValueError:
        print("train_speed: error: --stages takes 1 and/or 2, --steps a positive number", file=sys.stderr)
        return 2
    try:
        rows = [steps_per_second(m, s, args) for m in args.models.split(",") for s in stages]
    except HificError as e:
        print(f"train_speed: error: {e}", file=sys.stderr)
        return 2
    print_table(pd.DataFrame(rows), args.csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
