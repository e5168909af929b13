"""Published reference curves for the paper's evaluation sets (``clic2020``, ``div2k``, ``kodak``), in the benchmark
summary's columns: HiFiC's official ``data.csv`` and NeuralCompression's MS-ILLM / No-GAN results, shipped in
``hific/bench/published/`` (sources and licences in its ``SOURCE.txt``)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

PUBLISHED_DIR = Path(__file__).resolve().with_name("published")
HIFIC_CSV = PUBLISHED_DIR / "hific_data.csv"
ILLM_CSV = PUBLISHED_DIR / "neuralcompression_illm_results.csv"
DATASETS = ("clic2020", "div2k", "kodak")
LABELS = {"hific": "HiFiC", "msillm": "MS-ILLM", "noganms": "No-GAN"}
ILLM_CODECS = {"MS-ILLM": "msillm", "No-GAN": "noganms"}
COLUMNS = ["dataset", "codec", "setting", "bpp", "fid", "kid", "lpips", "ms_ssim", "psnr"]


def illm_points() -> pd.DataFrame:
    """NeuralCompression's rows, the model renamed to the toolkit's codec name and ranked by rate (``r1``...)."""
    table = pd.read_csv(ILLM_CSV).rename(columns={"model": "codec"})
    table["codec"] = table["codec"].map(ILLM_CODECS)
    table = table.sort_values(["dataset", "codec", "bpp"], kind="stable")
    table["setting"] = "r" + (table.groupby(["dataset", "codec"]).cumcount() + 1).astype(str)
    return table


def published_points() -> pd.DataFrame:
    """Every published point, HiFiC's first."""
    return pd.concat([pd.read_csv(HIFIC_CSV, comment="#"), illm_points()], ignore_index=True)[COLUMNS]


def dataset_name(spec: str | None) -> str | None:
    """The evaluation set a ``--dataset`` value names (``kodak`` or a folder called so), else ``None``."""
    name = Path(spec).name.lower() if spec else None
    return name if name in DATASETS else None


def load(dataset: str | None) -> tuple[pd.DataFrame, list[str]]:
    """The published points of ``dataset``; an empty table and a note when it has none."""
    points = published_points()
    if dataset is None:
        return points.iloc[0:0], ["the dataset is unknown: no published reference curves are drawn "
                                  f"(pass one of {', '.join(DATASETS)})"]
    rows = points[points["dataset"] == dataset.lower()].reset_index(drop=True)
    if rows.empty:
        return rows, [f"no published points for dataset {dataset!r} (known: {', '.join(DATASETS)})"]
    return rows, []


def label(codec: str) -> str:
    """A published codec's name in figures and tables."""
    return f"{LABELS.get(codec, codec)} (published)"
