"""How far is the BPG stand-in (x265 via libheif, 4:4:4) from BPG 0.9.8 on Kodak at equal bpp?

Runs the benchmark harness for ``bpg-x265`` over a QP sweep on Kodak (768x512, 24 images; cached and
resumable like every run) and compares it with CompressAI's published BPG 0.9.8 4:4:4 curve
(:mod:`hific.bench.bpg_standin`); writes ``curve.csv``, ``comparison.csv`` and ``bpg_standin.html`` (plus
``.png`` when kaleido can render)::

    python benchmarks/bpg_standin.py --data-dir ../shared/data --out results/bpg_standin
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from hific.bench import bpg_standin, datasets  # noqa: E402
from hific.bench.codecs import BpgX265Family  # noqa: E402
from hific.bench.runner import default_workers  # noqa: E402
from hific.errors import HificError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None, help="folder holding kodak/ (default $HIFIC_DATA)")
    p.add_argument("--out", default="results/bpg_standin")
    p.add_argument("--workers", type=int, default=default_workers())
    args = p.parse_args(argv)
    try:
        codec = BpgX265Family()
        table = bpg_standin.run(codec, datasets.load("kodak", args.data_dir), Path(args.out), args.workers)
    except HificError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\nmean PSNR difference at equal bpp: {np.nanmean(table.delta_db):+.2f} dB "
          f"(stand-in minus BPG 0.9.8; settings {codec.enc_params}, HEIF container included in bpp)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
