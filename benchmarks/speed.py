"""Codec speed benchmark: encode and decode seconds per Kodak-size image, and file bits / estimated bits.

    python benchmarks/speed.py [--models small,paper,hific-lo] [--data DIR] [--images 4] [--device cpu|cuda|auto]

`small` and `paper` are random-initialised configurations (speed does not depend on the weights);
any other entry is a shipped model name or a checkpoint path. Timings exclude model loading; the first
image of each model is a warm-up and is not counted. Writes nothing but the table it prints (and --csv).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

import hific
from hific.codec import Codec
from hific.config import MODEL_CONFIGS
from hific.bench.speed_tables import print_table
from hific.image_io import read_image
from hific.model import HiFiC

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kodak"


def make_codec(spec: str, device: str) -> Codec:
    if spec in MODEL_CONFIGS:
        torch.manual_seed(0)
        return Codec(HiFiC.from_config(spec), name=f"{spec}-random", device=device)
    return hific.load(spec, device=device)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_codec(codec: Codec, images: list[np.ndarray], device: str) -> dict:
    rows = []
    for i, rgb in enumerate(tqdm(images, desc=codec.name, leave=False)):
        sync(device)
        t0 = time.perf_counter()
        enc = codec.encode(rgb)
        sync(device)
        t1 = time.perf_counter()
        codec.decompress(enc.data)
        sync(device)
        t2 = time.perf_counter()
        estimate = codec.encode(rgb, estimate=True).estimated_bits
        if i > 0 or len(images) == 1:
            rows.append((t1 - t0, t2 - t1, len(enc.data) * 8 / estimate, enc.bpp))
    enc_s, dec_s, ratio, bpp = np.mean(rows, axis=0)
    return {"model": codec.name, "device": device, "images": len(rows), "encode_s": enc_s, "decode_s": dec_s,
            "file_over_estimate": ratio, "bpp": bpp}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="small,paper")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--images", type=int, default=4, help="images timed per model (+1 warm-up)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--csv", type=Path, help="also write the table as CSV")
    args = ap.parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    files = sorted(args.data.glob("*.png"))[: args.images + 1]
    if not files:
        print(f"speed: error: no PNG images in {args.data}", file=sys.stderr)
        return 2
    images = [read_image(f) for f in files]
    results = []
    for spec in args.models.split(","):
        results.append(time_codec(make_codec(spec, device), images, device))
    print_table(pd.DataFrame(results), args.csv, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
