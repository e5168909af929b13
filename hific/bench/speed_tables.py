"""Printing a speed benchmark's table with the machine it ran on (benchmarks/speed.py, train_speed.py)."""
from __future__ import annotations

import platform
import resource
from pathlib import Path

import pandas as pd
import torch

from hific.image_io import atomic_write_bytes


def print_table(table: pd.DataFrame, csv: Path | None = None, device: str | None = None) -> None:
    """Print the machine, threads, torch version and peak memory, then the table; also write it as CSV."""
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    where = f", device {device}" if device else ""
    print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}{where}, peak RSS {peak_gb:.1f} GB")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if csv:
        atomic_write_bytes(csv, table.to_csv(index=False).encode())
