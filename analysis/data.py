"""Loading and checking the analysis inputs: a benchmark results directory, HiFiC's
published numbers and user-study judgements.

Every loader returns what it could read plus a list of notes, one line each, that say what is
missing or unusable (a missing file or column, no rows, NaN metrics); the notebooks print the
notes and still draw what the data allows.  The results directory follows the benchmark's
contract: ``per_image.csv``, ``summary.csv`` and ``images.csv`` (see ``benchmarks/run.py``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hific.bench import references
from hific.bench.columns import BOOLEAN_COLUMNS, IMAGES_COLUMNS, PER_IMAGE_COLUMNS, SUMMARY_COLUMNS, TEXT_COLUMNS
from hific.bench.columns import LOWER_IS_BETTER as BENCH_LOWER_IS_BETTER

ANALYSIS_DIR = Path(__file__).resolve().parent
STUDY_METHODS_CSV = ANALYSIS_DIR / "hific_userstudy_methods.csv"

METRICS = ["fid", "kid", "lpips", "psnr", "ms_ssim"]
# Direction of each quantity: True when a lower value is better.
LOWER_IS_BETTER = {**BENCH_LOWER_IS_BETTER, "niqe": True, "mse": True, "human": False}
LABELS = {"bpp": "bits per pixel", "fid": "FID", "kid": "KID", "lpips": "LPIPS", "niqe": "NIQE",
          "psnr": "PSNR (dB)", "ms_ssim": "MS-SSIM", "mse": "MSE (0-255)", "human": "human score (Bradley-Terry, Elo scale)"}


@dataclass
class Results:
    """One benchmark results directory: its three tables and the notes on what is missing."""

    directory: Path | None
    per_image: pd.DataFrame
    summary: pd.DataFrame
    images: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def empty_table(columns: list[str]) -> pd.DataFrame:
    """An empty table with the given columns (text columns as str, the rest as float)."""
    return pd.DataFrame({c: pd.Series(dtype=str if c in TEXT_COLUMNS else float) for c in columns})


def numeric(cells: pd.Series, boolean: bool) -> pd.Series:
    """A column's numbers (NaN where a cell is none); a boolean column's True/False become 1/0."""
    if boolean:
        cells = cells.map(lambda v: {"true": 1.0, "false": 0.0}.get(str(v).lower(), v))
    return pd.to_numeric(cells, errors="coerce")


def read_table(path: Path, columns: list[str], notes: list[str]) -> pd.DataFrame:
    """Read one CSV of the results directory; missing columns become NaN columns and non-numeric
    cells in numeric columns become NaN, each with a note."""
    if not path.is_file():
        notes.append(f"{path.name} is missing in {path.parent}")
        return empty_table(columns)
    try:
        df = pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        notes.append(f"{path.name} is not a readable CSV ({exc.__class__.__name__})")
        return empty_table(columns)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        notes.append(f"{path.name} lacks column(s) {', '.join(missing)}: treated as not computed")
        df = df.assign(**{c: np.nan for c in missing})
    for column in (c for c in columns if c not in TEXT_COLUMNS):
        values = numeric(df[column], column in BOOLEAN_COLUMNS)
        bad = int((values.isna() & df[column].notna()).sum())
        if bad:
            notes.append(f"{path.name}: {bad} non-numeric value(s) in column {column} treated as missing")
        df[column] = values.astype(float)
    if df.empty:
        notes.append(f"{path.name} has no rows")
    return df


def summary_from_per_image(per_image: pd.DataFrame) -> pd.DataFrame:
    """Per-method means of the per-image table, in the summary's columns (FID/KID left NaN)."""
    grouped = per_image.groupby(["codec", "setting"], sort=True)
    out = grouped[["bpp", "psnr", "ms_ssim", "lpips"]].mean().reset_index()
    out["n_images"] = grouped["image"].nunique().to_numpy(dtype=float)
    return out.assign(fid=np.nan, kid=np.nan, n_patches=np.nan, fid_reliable=np.nan)[SUMMARY_COLUMNS]


def method_names(df: pd.DataFrame) -> list[str]:
    """``codec:setting`` for every row of a table with codec and setting columns."""
    return (df["codec"].astype(str) + ":" + df["setting"].astype(str)).tolist()


def metric_notes(summary: pd.DataFrame, metrics: list[str]) -> list[str]:
    """One note per metric that is not computed for some methods, naming them."""
    notes = []
    for metric in metrics:
        if metric not in summary.columns or summary.empty:
            continue
        missing = method_names(summary[summary[metric].isna()])
        if len(missing) == len(summary):
            notes.append(f"{metric} is not computed for any method")
        elif missing:
            notes.append(f"{metric} is not computed for {', '.join(missing)}")
    return notes


def load_results(directory: str | Path | None) -> Results:
    """Read a benchmark results directory; whatever is missing is described in ``notes``."""
    if directory is None or not Path(directory).is_dir():
        where = "no results directory was given" if directory is None else f"{directory} is not a directory"
        return Results(None, empty_table(PER_IMAGE_COLUMNS), empty_table(SUMMARY_COLUMNS),
                       empty_table(IMAGES_COLUMNS), [f"{where}: no benchmark results to draw"])
    directory = Path(directory)
    notes: list[str] = []
    per_image = read_table(directory / "per_image.csv", PER_IMAGE_COLUMNS, notes)
    summary = read_table(directory / "summary.csv", SUMMARY_COLUMNS, notes)
    images = read_table(directory / "images.csv", IMAGES_COLUMNS, notes)
    if summary.empty and not per_image.empty:
        notes.append("summary.csv gives no methods: using the means of per_image.csv (no FID/KID)")
        summary = summary_from_per_image(per_image)
    summary = summary.dropna(subset=["codec", "setting"]).reset_index(drop=True)
    notes += metric_notes(summary, ["bpp"] + METRICS)
    return Results(directory, per_image, summary, images, notes)


def detect_dataset(images: pd.DataFrame) -> str | None:
    """The published dataset the images come from, when their names tell (Kodak ``kodimNN``,
    DIV2K validation ``0801``-``0900``); CLIC 2020's hashed names must be named explicitly."""
    names = images["image"].dropna().astype(str).tolist() if "image" in images.columns else []
    if not names:
        return None
    if all(re.fullmatch(r"kodim\d\d", n) for n in names):
        return "kodak"
    if all(re.fullmatch(r"0(8\d\d|900)(x\d)?", n) for n in names):
        return "div2k"
    return None


def load_published(dataset: str | None) -> tuple[pd.DataFrame, list[str]]:
    """The published reference points for ``dataset`` (``kodak``, ``div2k``, ``clic2020``): HiFiC's official
    ``data.csv`` and NeuralCompression's MS-ILLM / No-GAN; an empty table and a note when it has none."""
    return references.load(dataset)


def study_methods() -> pd.DataFrame:
    """The nine methods of HiFiC's user study with the paper's labels and bitrates."""
    return pd.read_csv(STUDY_METHODS_CSV, comment="#")


def mean_mse(per_image: pd.DataFrame) -> pd.DataFrame:
    """Per-method mean MSE (0-255 scale) from the per-image PSNR: MSE = 255^2 / 10^(PSNR/10)."""
    mse = 255.0 ** 2 / 10.0 ** (per_image["psnr"] / 10.0)
    return (per_image.assign(mse=mse).groupby(["codec", "setting"], sort=True)["mse"]
            .mean().reset_index())
