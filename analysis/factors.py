"""Bitrate factors: how many times the bitrate a baseline codec needs to match a reference
codec's quality (HiFiC paper, Sec. 4.3: HiFiC-Mi "is preferred to BPG even when BPG uses
2.1x the bitrate").

For each point of the reference codec (e.g. HiFiC-Lo/Mi/Hi) and each baseline (BPG, M&S), the
baseline's rate curve (its points sorted by bpp) is followed until it first reaches the
reference's value of a quality measure (LPIPS, FID, PSNR, a human score); the bitrate there,
linearly interpolated between the two neighbouring points, divided by the reference's bitrate
is the factor.  When the baseline never gets that good within its measured range, the factor
is only bounded from below by its highest bitrate (``bound`` ">"); when even its lowest
bitrate is better, it is bounded from above (``bound`` "<").
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.data import LOWER_IS_BETTER, method_names

FACTOR_COLUMNS = ["reference", "ref_bpp", "metric", "ref_value", "baseline", "baseline_bpp",
                  "bound", "factor"]


def bitrate_to_reach(bpp: np.ndarray, values: np.ndarray, target: float,
                     lower_is_better: bool) -> tuple[float, str]:
    """The bitrate at which the rate curve (``bpp`` ascending, ``values``) first reaches
    ``target``: ``(bpp, "=")`` interpolated, ``(max bpp, ">")`` if never reached, ``(min bpp, "<")``
    if already better than needed at its lowest bitrate."""
    quality = -values if lower_is_better else values
    goal = -target if lower_is_better else target
    if quality[0] > goal:
        return float(bpp[0]), "<"
    for i, q in enumerate(quality):
        if q >= goal:
            if i == 0 or q == goal:
                return float(bpp[i]), "="
            t = (goal - quality[i - 1]) / (q - quality[i - 1])
            return float(bpp[i - 1] + t * (bpp[i] - bpp[i - 1])), "="
    return float(bpp[-1]), ">"


def bitrate_factors(points: pd.DataFrame, metric: str, reference: str,
                    baselines: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Factors for every point of codec ``reference`` against every codec in ``baselines``.

    ``points`` has columns ``codec, setting, bpp`` and ``metric`` (one row per method).  Returns
    the table (columns ``FACTOR_COLUMNS``) and notes on what could not be compared.
    """
    notes: list[str] = []
    if metric not in points.columns or "bpp" not in points.columns:
        return pd.DataFrame(columns=FACTOR_COLUMNS), [f"no {metric} or bpp column: no {metric} factors"]
    usable = points.dropna(subset=["bpp", metric])
    if usable.empty:
        return pd.DataFrame(columns=FACTOR_COLUMNS), [f"no method has both bpp and {metric}: no {metric} factors"]
    dropped = method_names(points[points[["bpp", metric]].isna().any(axis=1)])
    if dropped:
        notes.append(f"{metric} factors leave out methods without bpp or {metric}: {', '.join(dropped)}")
    refs = usable[usable["codec"] == reference].sort_values("bpp")
    if refs.empty:
        return pd.DataFrame(columns=FACTOR_COLUMNS), notes + [f"no {reference} points with {metric}: no {metric} factors"]
    rows = []
    for baseline in baselines:
        curve = usable[usable["codec"] == baseline].sort_values("bpp")
        if curve.empty:
            notes.append(f"no {baseline} points with {metric}: no {metric} factors against {baseline}")
            continue
        if len(curve) == 1:
            notes.append(f"{baseline} has a single {metric} point: its factors are only bounds")
        for ref in refs.itertuples(index=False):
            value = float(getattr(ref, metric))
            bpp, bound = bitrate_to_reach(curve["bpp"].to_numpy(float), curve[metric].to_numpy(float),
                                          value, LOWER_IS_BETTER[metric])
            rows.append({"reference": f"{ref.codec}:{ref.setting}", "ref_bpp": float(ref.bpp),
                         "metric": metric, "ref_value": value, "baseline": baseline,
                         "baseline_bpp": bpp, "bound": bound, "factor": bpp / float(ref.bpp)})
    return pd.DataFrame(rows, columns=FACTOR_COLUMNS), notes


def factor_text(row: pd.Series) -> str:
    """A factor as the paper words it, e.g. ``2.1x`` or ``>2.1x`` for a lower bound."""
    prefix = "" if row["bound"] == "=" else row["bound"]
    return f"{prefix}{row['factor']:.1f}x"
