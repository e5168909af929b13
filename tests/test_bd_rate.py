"""BD-rate against published worked examples with known answers, and over a benchmark summary."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hific.bench.bd_rate import bd_rate, bd_rate_table
from hific.bench.columns import BD_RATE_COLUMNS

# VCEG-M33's example curves (kbit/s, dB) and the ETRO barb512 curves (bpp, dB), with the answers of the reference
# tools as published in tbr/bjontegaard_cpp's example.cpp: BD-rate -13.261773 % and -0.903450 %.
M33_ANCHOR = np.array([[90.33, 27.95], [181.03, 31.17], [332.99, 34.44], [547.79, 38.11]])
M33_TEST = np.array([[127.1719, 29.9286], [186.14, 32.4165], [307.2924, 34.7013], [481.5588, 37.4561]])
ETRO_ANCHOR = np.array([[2.99899, 48.6681], [1.99884, 43.8357], [1.49673, 41.3982], [0.99707, 38.0124],
                        [0.745941, 35.5122], [0.596436, 33.8673], [0.495148, 32.6658], [0.29425, 29.4505],
                        [0.244049, 28.484]])
ETRO_TEST = np.array([[2.997253, 48.5637], [1.968292, 43.7318], [1.472565, 41.2727], [0.994965, 38.0001],
                      [0.748871, 35.6375], [0.58902, 33.9057], [0.499176, 32.8318], [0.296753, 29.6851],
                      [0.249634, 28.8244]])


@pytest.mark.parametrize("anchor,test,expected", [(M33_ANCHOR, M33_TEST, -13.261773),
                                                  (ETRO_ANCHOR, ETRO_TEST, -0.903450)])
def test_bd_rate_matches_the_published_examples(anchor, test, expected):
    assert bd_rate(anchor[:, 0], anchor[:, 1], test[:, 0], test[:, 1]) == pytest.approx(expected, abs=5e-6)


def test_bd_rate_of_a_curve_at_half_the_rate_is_minus_fifty_percent():
    rate, quality = M33_ANCHOR[:, 0], M33_ANCHOR[:, 1]
    assert bd_rate(rate, quality, rate / 2, quality) == pytest.approx(-50.0)
    assert math.isnan(bd_rate(rate, quality, rate, quality + 100))  # no common quality range


def summary_of(points: dict[str, list[tuple[float, float, float]]]) -> pd.DataFrame:
    """A benchmark summary from (bpp, psnr, lpips) points per codec; FID = 100 x LPIPS on 192 patches."""
    rows = [{"codec": codec, "setting": f"s{i}", "bpp": bpp, "psnr": psnr, "lpips": lpips, "fid": 100 * lpips,
             "n_patches": 192, "fid_reliable": False}
            for codec, curve in points.items() for i, (bpp, psnr, lpips) in enumerate(curve)]
    return pd.DataFrame(rows)


def test_table_negates_lower_is_better_metrics_and_flags_fid():
    anchor = [(0.1, 28.0, 0.20), (0.2, 30.0, 0.12), (0.4, 32.0, 0.07), (0.8, 34.0, 0.04)]
    half = [(b / 2, p, lp) for b, p, lp in anchor]  # the same qualities at half the rate
    table, notes = bd_rate_table(summary_of({"bpg-x265": anchor, "ours": half, "one": half[:1]}), "auto")
    assert list(table.columns) == BD_RATE_COLUMNS and set(table["anchor"]) == {"bpg-x265"}
    ours = table[table["codec"] == "ours"].set_index("metric")
    assert ours["bd_rate"].to_dict() == pytest.approx({"psnr": -50.0, "lpips": -50.0, "fid": -50.0})
    assert ours["reliable"].to_dict() == {"psnr": True, "lpips": True, "fid": False}
    assert (ours["fit_degree"] == 3).all()
    assert table[table["codec"] == "one"]["bd_rate"].isna().all()
    assert "psnr: one or the anchor bpg-x265 has a single point: no BD-rate" in notes


def test_table_without_an_anchor_says_why():
    summary = summary_of({"jpeg": [(0.5, 30.0, 0.1), (1.0, 33.0, 0.05)]})
    assert bd_rate_table(summary, "auto")[1] == ["no anchor codec (pass --anchor CODEC): no BD-rate"]
    assert bd_rate_table(summary, "webp")[1] == ["anchor 'webp' is not among the codecs: no BD-rate"]
    table, notes = bd_rate_table(summary, "jpeg")
    assert table.empty and notes == []  # the anchor is the only codec
