"""The logs of a training run in its directory: log.csv (every ``log_every`` steps), val.csv (every validation),
TensorBoard events (tb/) and image snapshots of the validation images (snapshots/). Written by rank 0 only."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from hific.image_io import atomic_write_bytes, write_png

LOG_FIELDS = ("step", "wall_s", "loss", "bpp", "bpp_q", "rate_weight", "mse", "psnr", "lpips", "g_gan",
              "d_loss", "aux", "lr", "skipped")
VAL_FIELDS = ("step", "wall_s", "bpp", "psnr", "lpips")


def append_csv(path: Path, fields: tuple[str, ...], row: dict[str, Any]) -> None:
    """Append a row (floats with 6 significant digits), writing the header first into a new file."""
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


def validation_curve(run_dir: Path, first: int, last: int) -> list[list[float]]:
    """The rows of ``run_dir/val.csv`` for steps in (first, last], as lists in VAL_FIELDS order."""
    path = run_dir / "val.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if first < int(r["step"]) <= last]
    return [[float(r.get(k) or "nan") for k in VAL_FIELDS] for r in rows]


def write_snapshot(run_dir: Path, step: int, originals: torch.Tensor, x_hat: torch.Tensor) -> None:
    """Originals (top row) and reconstructions (bottom row), both (N, 3, H, W) in [0, 1], as a PNG in snapshots/."""
    grid = torch.cat([torch.cat(list(originals), dim=2), torch.cat(list(x_hat), dim=2)], dim=1)
    rgb = grid.mul(255).round().clamp(0, 255).byte().permute(1, 2, 0).cpu().numpy()
    write_png(run_dir / "snapshots" / f"step_{step:07d}.png", rgb)


class RunLog:
    """The CSV and TensorBoard logs of a run continuing at ``step`` (rows logged after it are dropped first)."""

    def __init__(self, run_dir: Path, step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir = run_dir
        truncate_csv(run_dir / "log.csv", step)
        truncate_csv(run_dir / "val.csv", step)
        self.writer = SummaryWriter(str(run_dir / "tb"), purge_step=step)

    def training(self, log: dict[str, float]) -> None:
        """One step's logged values (``step``, ``wall_s`` and the terms)."""
        append_csv(self.run_dir / "log.csv", LOG_FIELDS, log)
        for k, v in log.items():
            if k not in ("step", "wall_s"):
                self.writer.add_scalar(f"train/{k}", v, log["step"])

    def validation(self, name: str, step: int, wall_s: float, val: dict[str, float]) -> None:
        """One validation's means, also printed above the progress bar."""
        append_csv(self.run_dir / "val.csv", VAL_FIELDS, {"step": step, "wall_s": wall_s, **val})
        for k, v in val.items():
            self.writer.add_scalar(f"val/{k}", v, step)
        tqdm.write(f"{name} step {step}: validation " + ", ".join(f"{k} {v:.4g}" for k, v in val.items()))

    def close(self) -> None:
        self.writer.close()
