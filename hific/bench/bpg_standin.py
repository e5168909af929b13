"""How far the BPG stand-in (HEVC intra by x265 through libheif, 4:4:4: :class:`BpgX265Codec`) is from
BPG 0.9.8 on Kodak at equal bpp.

The benchmark harness runs ``bpg-x265`` over a QP sweep (cached and resumable like every run); bpp and PSNR
are averaged per QP as CompressAI does, and the stand-in's PSNR is interpolated (linear in log bpp) at the
bpps of CompressAI's published BPG 0.9.8 4:4:4 Kodak curve (see REFERENCE.md).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from hific.bench.codecs import BpgX265Family
from hific.bench.datasets import BenchImage
from hific.bench.runner import Method, Run, write_csv
from hific.image_io import atomic_write_bytes

# CompressAI's published Kodak results for BPG 0.9.8, 4:4:4, x265 (see REFERENCE.md).
BPG098_BPP = np.array([0.068, 0.161, 0.352, 0.685, 1.20])
BPG098_PSNR = np.array([26.20, 28.68, 31.60, 34.86, 38.26])
QPS = (20, 24, 28, 32, 36, 40, 44, 48, 51)


def compare(curve: pd.DataFrame) -> pd.DataFrame:
    """The stand-in's PSNR at BPG 0.9.8's bpps (NaN outside the measured range) and the difference."""
    curve = curve.sort_values("bpp")
    log_bpp = np.log(curve.bpp.to_numpy())
    inside = (BPG098_BPP >= curve.bpp.min()) & (BPG098_BPP <= curve.bpp.max())
    standin = np.where(inside, np.interp(np.log(BPG098_BPP), log_bpp, curve.psnr.to_numpy()), np.nan)
    return pd.DataFrame({"bpp": BPG098_BPP, "psnr_bpg098": BPG098_PSNR, "psnr_standin": standin,
                         "delta_db": standin - BPG098_PSNR})


def measure_curve(codec: BpgX265Family, images: list[BenchImage], out: Path, workers: int) -> pd.DataFrame:
    """The stand-in's mean bpp and PSNR per QP of :data:`QPS` (columns ``qp, bpp, psnr``), benchmarked
    into ``out/bench``."""
    result = Run([Method(codec, f"qp{q}") for q in QPS], images, ["psnr"], out / "bench", workers).execute()
    return result.summary.assign(qp=[int(s[2:]) for s in result.summary.setting])[["qp", "bpp", "psnr"]]


def write_figure(curve: pd.DataFrame, out: Path) -> None:
    """Both rate-distortion curves as ``bpg_standin.html`` (and ``.png`` when kaleido can render)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_scatter(x=BPG098_BPP, y=BPG098_PSNR, mode="lines+markers", name="BPG 0.9.8 4:4:4 (CompressAI)")
    fig.add_scatter(x=curve.bpp, y=curve.psnr, mode="lines+markers", name="stand-in: x265 via libheif 4:4:4",
                    text=[f"qp{q}" for q in curve.qp])
    fig.update_layout(title="Kodak: BPG 0.9.8 vs the x265/libheif stand-in", xaxis_title="bpp",
                      yaxis_title="PSNR (dB)", template="plotly_white")
    atomic_write_bytes(out / "bpg_standin.html", fig.to_html(include_plotlyjs="cdn").encode())
    try:
        atomic_write_bytes(out / "bpg_standin.png", fig.to_image(format="png", width=800, height=500))
    except Exception as e:  # kaleido needs a browser; the HTML figure is always written
        print(f"note: PNG not written ({type(e).__name__}); see bpg_standin.html", file=sys.stderr)


def run(codec: BpgX265Family, images: list[BenchImage], out: Path, workers: int) -> pd.DataFrame:
    """Measure the stand-in's curve, compare it with BPG 0.9.8 and write ``curve.csv``, ``comparison.csv``
    and the figure into ``out``; returns the comparison."""
    curve = measure_curve(codec, images, out, workers)
    table = compare(curve)
    write_csv(curve, out / "curve.csv")
    write_csv(table, out / "comparison.csv")
    write_figure(curve, out)
    return table
