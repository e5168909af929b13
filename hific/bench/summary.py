"""What a finished benchmark run prints and writes beside ``summary.csv``: the summary with unreliable FID/KID
flagged, the published reference points of the dataset, and the BD-rates against the anchor (``bd_rate.csv``)."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from hific.bench import references
from hific.bench.bd_rate import bd_rate_table
from hific.bench.runner import write_csv
from hific.bench.set_metrics import FEATURE_DIM, SET_METRICS

FLAG = "*"


def number(value: object) -> str:
    """A cell of a console table: floats to 4 significant digits, NaN as empty."""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def format_summary(summary: pd.DataFrame) -> str:
    """The summary as a console table; FID/KID on fewer patches than feature dimensions carry a ``*`` and a
    footnote, never a bare number."""
    table = summary.drop(columns="fid_reliable").map(number)
    flagged = (summary["fid_reliable"].astype(float) == 0.0) & summary[list(SET_METRICS)].notna().any(axis=1)
    for metric in SET_METRICS:
        table.loc[flagged & summary[metric].notna(), metric] += FLAG
    text = table.to_string(index=False)
    if flagged.any():
        text += (f"\n{FLAG} unreliable: FID/KID on fewer 256x256 patches (n_patches) than the {FEATURE_DIM} "
                 "Inception feature dimensions; the covariance is rank-deficient (fid_reliable = False)")
    return text


def report(summary: pd.DataFrame, out: Path, dataset: str | None, anchor: str | None) -> str:
    """The console text of a finished run; writes ``out/bd_rate.csv`` when there is an anchor."""
    parts = [format_summary(summary)]
    name = references.dataset_name(dataset)
    if name is not None:
        published, _ = references.load(name)
        parts.append(f"published reference points ({name}; hific/bench/published/SOURCE.txt):\n"
                     + published.drop(columns="dataset").to_string(index=False, float_format=number, na_rep=""))
    table, notes = bd_rate_table(summary, anchor)
    if not table.empty:
        write_csv(table, out / "bd_rate.csv")
        parts.append(f"BD-rate in % against {table['anchor'].iloc[0]} (negative: less rate for the same quality; "
                     "cubic fit of log-rate, VCEG-M33) -> bd_rate.csv:\n"
                     + table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    parts += [f"note: {n}" for n in notes]
    return "\n\n".join(parts)
