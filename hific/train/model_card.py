"""The model card of the shipped checkpoints: how each was trained (from its metadata) and how it scores on
Kodak (from a ``benchmarks/run.py`` summary, i.e. real files and real metrics).

    python -m hific.train.model_card --summary results/shipped/summary.csv [--notes NOTES.md]
                                     [--command "the benchmark command"] [--out hific/checkpoints/MODEL_CARD.md]
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd
import torch

from hific.errors import HificError, InputError
from hific.image_io import atomic_write_bytes
from hific.zoo import CHECKPOINT_DIR, shipped

# Published HiFiC on Kodak (TF data.csv): bpp, PSNR, MS-SSIM, LPIPS of HiFiC-Lo / Mi / Hi.
PUBLISHED = [("HiFiC-Lo (official)", 0.183, 27.56, 0.937, 0.0686), ("HiFiC-Mi (official)", 0.351, 29.65, 0.964, 0.0428),
             ("HiFiC-Hi (official)", 0.538, 31.74, 0.978, 0.0278)]


def metadata(path: Path) -> dict:
    """The ``metadata`` dict stored in an inference checkpoint."""
    return torch.load(path, map_location="cpu", weights_only=True).get("metadata", {})


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table of a data frame."""
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def training_row(name: str, meta: dict) -> dict:
    """What a checkpoint was trained as and for how long, from the metadata the trainer's export writes."""
    cfg = meta.get("train_config", {})
    if cfg.get("kind") == "ms":
        what = f"M&S (CompressAI MeanScaleHyperprior), MSE, lambda {cfg.get('ms_lambda')}"
    elif cfg:
        what = (f"HiFiC {'stage 2 (GAN)' if cfg.get('gan') else 'stage 1 (no GAN)'}, r_t {cfg.get('target_bpp')}, "
                f"lambda_a {cfg.get('lambda_a')}, lambda_b {cfg.get('lambda_b')}")
        if meta.get("init"):
            what += f", from {meta['init']['config']} at step {meta['init']['steps']}"
    else:
        what = "not trained by hific train"
    return {"model": name, "trained as": what, "steps": meta.get("steps", ""),
            "wall time (h)": round(meta.get("wall_s", 0) / 3600, 2), "runs": len(meta.get("history", [])) or 1}


def dataset_folder(path: str) -> str:
    """A training folder as the dataset's own path (``bsds500/train``), whatever machine's copy a run read."""
    posix = Path(path).as_posix()
    parts = f"/{posix}".rsplit("/data/", 1)
    return parts[1] if len(parts) == 2 else posix


def run_rows(name: str, meta: dict) -> list[dict]:
    """One row per run of a checkpoint's ``history`` (run after run, on whatever machine was at hand)."""
    return [{"model": name, "steps": f"{h['steps'][0]}-{h['steps'][1]}", "batch x crop": f"{h['batch_size']} x {h['crop']}",
             "lr": h["lr"], "wall time (h)": round(h["wall_s"] / 3600, 2), "hardware": h["hardware"]}
            for h in meta.get("history", [])]


def validation_rows(name: str, meta: dict, most: int = 8) -> list[dict]:
    """Validation LPIPS, PSNR and bpp against total training time, from each run's curve (at most ``most``
    rows per run, evenly spaced, its last row included)."""
    rows = []
    for h in meta.get("history", []):
        curve = h.get("validation") or []
        k = min(most, len(curve))
        keep = sorted({round(i * (len(curve) - 1) / max(1, k - 1)) for i in range(k)})
        for step, wall_s, bpp, psnr, lpips in (curve[i] for i in keep):
            rows.append({"model": name, "preset": h.get("config") or "", "step": int(step),
                         "hours": f"{wall_s / 3600:.2f}", "hardware": h["hardware"], "val bpp": f"{bpp:.3f}",
                         "val PSNR": f"{psnr:.2f}", "val LPIPS": "" if math.isnan(lpips) else f"{lpips:.4f}"})
    return rows


def render(summary: pd.DataFrame, checkpoints: dict[str, Path], command: str, notes: str = "") -> str:
    """The MODEL_CARD.md text."""
    metas = {n: metadata(p) for n, p in checkpoints.items()}
    train = pd.DataFrame([training_row(n, m) for n, m in metas.items()])
    runs = pd.DataFrame([r for n, m in metas.items() for r in run_rows(n, m)])
    curves = pd.DataFrame([r for n, m in metas.items() for r in validation_rows(n, m)])
    hardware = sorted({h["hardware"] for m in metas.values() for h in m.get("history", [])})
    data = sorted({dataset_folder(d) for m in metas.values() for d in m.get("data", [])})
    kodak = summary.rename(columns={"setting": "model"})[["model", "n_images", "bpp", "psnr", "ms_ssim", "lpips"]]
    kodak = kodak[kodak["model"].isin(checkpoints)]
    published = pd.DataFrame(PUBLISHED, columns=["model", "bpp", "psnr", "ms_ssim", "lpips"])
    fmt = {"bpp": "{:.3f}", "psnr": "{:.2f}", "ms_ssim": "{:.4f}", "lpips": "{:.4f}"}
    for col, f in fmt.items():
        kodak[col] = kodak[col].map(f.format)
        published[col] = published[col].map(f.format)
    return "\n".join([
        "# Shipped checkpoints", "",
        "Trained with `hific train` (hific/train) on " + ("; ".join(hardware) or "an unrecorded machine")
        + "; load with `hific.load(NAME)`. Weights are stored in float16; entropy-coder tables are rebuilt on load.", "",
        "## Training", "",
        "Training images (never Kodak or wikipedia_photos, which are for evaluation): "
        + ", ".join(f"`{d}`" for d in data) + ".",
        "Held-out validation: 4 images of bsds500/val. Every sample is down-scaled by a random factor in "
        "[0.75, 0.95] and randomly cropped.", "",
        markdown_table(train), "",
        *(["Runs (each continued the previous one's weights with `--warm-start`):", "", markdown_table(runs), ""]
          if len(runs) else []),
        *(["Validation during training (4 held-out bsds500/val images, 256x256 centre crops; hours of training "
           "in all, earlier runs included):", "", markdown_table(curves), ""] if len(curves) else []),
        "## Kodak (24 images, 768x512; bpp from the real .hfc file bytes)", "",
        f"Measured with `{command}`.", "",
        markdown_table(kodak), "",
        "Published HiFiC on Kodak for reference (the paper's `paper`-size models, 2M steps on a GPU):", "",
        markdown_table(published), "",
        *([notes.strip(), ""] if notes.strip() else []),
    ])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--summary", type=Path, required=True, help="summary.csv of benchmarks/run.py on Kodak")
    ap.add_argument("--command", default="python benchmarks/run.py ...", help="the benchmark command, for the card")
    ap.add_argument("--notes", type=Path, help="markdown file appended to the card (observations, caveats)")
    ap.add_argument("--out", type=Path, default=CHECKPOINT_DIR / "MODEL_CARD.md")
    args = ap.parse_args(argv)
    try:
        if not args.summary.is_file():
            raise InputError(f"{args.summary}: no such benchmark summary")
        if args.notes is not None and not args.notes.is_file():
            raise InputError(f"{args.notes}: no such notes file")
        notes = args.notes.read_text() if args.notes else ""
        text = render(pd.read_csv(args.summary), shipped(), args.command, notes)
    except HificError as e:
        print(f"model_card: error: {e}", file=sys.stderr)
        return 2
    atomic_write_bytes(args.out, text.encode())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
