"""Bjøntegaard delta rate (G. Bjøntegaard, "Calculation of average PSNR differences between RD-curves",
VCEG-M33, 2001): the average bitrate difference, in percent, of a codec against an anchor at equal quality.

Each curve's log-rate is fitted as a cubic polynomial of the quality (least squares, as VCEG-M33 and its
JCTVC tools with more than four points); the fits are integrated over the quality range both curves cover,
and the mean log-rate difference d gives BD-rate = (e^d - 1) x 100. Negative: the codec needs less rate.
For lower-is-better metrics (LPIPS, FID, KID) the quality is the negated metric. With fewer than four points
on a curve the degree drops to points - 1 (``fit_degree`` says so); with one point there is no BD-rate.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from numpy.polynomial import Polynomial

from hific.bench.columns import BD_RATE_COLUMNS, LOWER_IS_BETTER
from hific.bench.set_metrics import SET_METRICS

CUBIC = 3


def bd_rate(anchor_rate: np.ndarray, anchor_quality: np.ndarray, rate: np.ndarray, quality: np.ndarray,
            degree: int = CUBIC) -> float:
    """BD-rate in percent of the curve (``rate``, ``quality``) against the anchor's; NaN when the quality
    ranges do not overlap. Rates must be positive; the quality must grow with the rate."""
    low = max(np.min(anchor_quality), np.min(quality))
    high = min(np.max(anchor_quality), np.max(quality))
    if not high > low:
        return math.nan
    fits = [Polynomial.fit(q, np.log(r), degree).integ() for r, q in ((anchor_rate, anchor_quality), (rate, quality))]
    anchor_area, area = (fit(high) - fit(low) for fit in fits)
    return float((math.exp((area - anchor_area) / (high - low)) - 1) * 100)


def curve(summary: pd.DataFrame, codec: str, metric: str) -> pd.DataFrame:
    """One codec's (bpp, quality, reliable) points for ``metric``, quality signed so that higher is better."""
    points = summary[summary["codec"] == codec].dropna(subset=["bpp", metric])
    points = points[points["bpp"] > 0]
    sign = -1.0 if LOWER_IS_BETTER[metric] else 1.0
    reliable = (points["fid_reliable"].astype(float) == 1.0 if metric in SET_METRICS and "fid_reliable"
                in points.columns else pd.Series(True, index=points.index))
    return pd.DataFrame({"bpp": points["bpp"].to_numpy(float), "quality": sign * points[metric].to_numpy(float),
                         "reliable": reliable.to_numpy(bool)})


def resolve_anchor(summary: pd.DataFrame, anchor: str | None) -> str | None:
    """The anchor codec: ``anchor`` itself, or for ``auto`` BPG (``bpg``, else its stand-in ``bpg-x265``) when
    the summary has it; ``None`` or ``none``: no anchor."""
    if anchor is None or anchor == "none":
        return None
    if anchor != "auto":
        return anchor
    present = set(summary["codec"].dropna())
    return next((name for name in ("bpg", "bpg-x265") if name in present), None)


def bd_rate_table(summary: pd.DataFrame, anchor: str | None) -> tuple[pd.DataFrame, list[str]]:
    """BD-rate of every other codec of a benchmark summary against ``anchor`` for each metric it has, and the
    notes (one line each) on what could not be computed."""
    anchor = resolve_anchor(summary, anchor)
    notes: list[str] = []
    if anchor is None:
        return pd.DataFrame(columns=BD_RATE_COLUMNS), ["no anchor codec (pass --anchor CODEC): no BD-rate"]
    if anchor not in set(summary["codec"].dropna()):
        return pd.DataFrame(columns=BD_RATE_COLUMNS), [f"anchor {anchor!r} is not among the codecs: no BD-rate"]
    rows = []
    for metric in (m for m in LOWER_IS_BETTER if m in summary.columns):
        base = curve(summary, anchor, metric)
        for codec in sorted(c for c in set(summary["codec"].dropna()) if c != anchor):
            points = curve(summary, codec, metric)
            if points.empty:
                continue
            degree = min(CUBIC, len(base) - 1, len(points) - 1)
            value = (bd_rate(base["bpp"], base["quality"], points["bpp"], points["quality"], degree)
                     if degree >= 1 else math.nan)
            if degree < 1:
                notes.append(f"{metric}: {codec} or the anchor {anchor} has a single point: no BD-rate")
            elif math.isnan(value):
                notes.append(f"{metric}: {codec} and the anchor {anchor} cover no common quality range: no BD-rate")
            rows.append({"codec": codec, "anchor": anchor, "metric": metric, "bd_rate": value,
                         "n_points": len(points), "n_anchor_points": len(base), "fit_degree": max(degree, 0),
                         "reliable": bool(base["reliable"].all() and points["reliable"].all())})
    return pd.DataFrame(rows, columns=BD_RATE_COLUMNS), notes
