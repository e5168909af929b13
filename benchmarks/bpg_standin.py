"""How far is the BPG stand-in (x265 via libheif, 4:4:4) from BPG 0.9.8 on Kodak at equal bpp?

Runs the benchmark harness for ``bpg-x265`` over a QP sweep on Kodak (768x512, 24 images; cached and
resumable like every run), averages bpp and PSNR per QP as CompressAI does, interpolates the stand-in's
PSNR (linear in log bpp) at the bpps of CompressAI's published BPG 0.9.8 4:4:4 curve, and writes
``curve.csv``, ``comparison.csv`` and ``bpg_standin.html`` (plus ``.png`` when kaleido can render)::

    python benchmarks/bpg_standin.py --data-dir ../shared/data --out results/bpg_standin
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from hific.bench import datasets  # noqa: E402
from hific.bench.codecs import BpgX265Codec  # noqa: E402
from hific.bench.runner import Method, Run, default_workers, write_csv  # noqa: E402
from hific.errors import HificError  # noqa: E402
from hific.image_io import atomic_write_bytes  # noqa: E402

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


def write_figure(curve: pd.DataFrame, out: Path) -> None:
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None, help="folder holding kodak/ (default $HIFIC_DATA)")
    p.add_argument("--out", default="results/bpg_standin")
    p.add_argument("--workers", type=int, default=default_workers())
    args = p.parse_args(argv)
    out = Path(args.out)
    try:
        images = datasets.load("kodak", args.data_dir)
        codec = BpgX265Codec()
        result = Run([Method(codec, f"qp{q}") for q in QPS], images, ["psnr"], out / "bench", args.workers).execute()
    except HificError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    curve = result.summary.assign(qp=[int(s[2:]) for s in result.summary.setting])[["qp", "bpp", "psnr"]]
    table = compare(curve)
    write_csv(curve, out / "curve.csv")
    write_csv(table, out / "comparison.csv")
    write_figure(curve, out)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\nmean PSNR difference at equal bpp: {np.nanmean(table.delta_db):+.2f} dB "
          f"(stand-in minus BPG 0.9.8; settings {codec.enc_params}, HEIF container included in bpp)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
