"""Command line of the benchmark (``python benchmarks/run.py``): parse, build the methods, run, print."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from hific.bench import codecs as codec_registry
from hific.bench import datasets
from hific.bench.codecs import CodecUnavailableError, QualityCodec
from hific.bench.metrics import METRICS
from hific.bench.runner import Method, Run, default_workers
from hific.errors import HificError, InputError


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit status 2."""

    def error(self, message: str) -> None:
        self.exit(2, f"error: {message} (see --help)\n")


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="benchmarks/run.py", description="Rate-perception benchmark of image codecs "
                      "(PSNR, MS-SSIM, LPIPS per image; FID/KID on 256x256 patches), as in HiFiC's Fig. 4.")
    p.add_argument("--codecs", default="hific,bpg",
                   help=f"comma-separated codecs from: {', '.join(codec_registry.CODEC_NAMES)} (default hific,bpg)")
    p.add_argument("--dataset", default=None,
                   help="a directory of images or a named set (kodak) in --data-dir; default: scikit-image's photos")
    p.add_argument("--data-dir", default=None, help="where named sets live (default $HIFIC_DATA or ~/.cache/hific/data)")
    p.add_argument("--settings", action="append", default=[], metavar="[CODEC=]S1,S2",
                   help="explicit settings (qualities like q75/qp32, or model names/checkpoints for learned codecs); "
                        "repeat per codec as CODEC=...; the codec may be left out when only one is run")
    p.add_argument("--match-bpp", default=None, metavar="B1,B2",
                   help="for quality-driven codecs: search each image's quality to land closest to these bpp")
    p.add_argument("--metrics", default=",".join(METRICS), help=f"comma-separated from: {', '.join(METRICS)}")
    p.add_argument("--out", default="results/bench", help="output directory (default results/bench)")
    p.add_argument("--workers", type=int, default=default_workers(), help="processes for the CPU codecs")
    return p


def split_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_settings(entries: list[str], codec_names: list[str]) -> dict[str, list[str]]:
    """``CODEC=S1,S2`` entries (or bare ``S1,S2`` with a single codec) -> settings per codec."""
    result: dict[str, list[str]] = {}
    for entry in entries:
        name, sep, values = entry.partition("=")
        if not sep:
            if len(codec_names) != 1:
                raise InputError(f"--settings {entry!r}: name the codec (CODEC=S1,S2) when running several")
            name, values = codec_names[0], entry
        if name not in codec_names:
            raise InputError(f"--settings {entry!r}: codec {name!r} is not among --codecs")
        result.setdefault(name, []).extend(split_list(values))
    return result


def parse_targets(text: str | None) -> list[float]:
    if text is None:
        return []
    try:
        targets = [float(v) for v in split_list(text)]
    except ValueError:
        raise InputError(f"--match-bpp {text!r}: expected comma-separated numbers of bits per pixel") from None
    if not targets or any(not t > 0 for t in targets):
        raise InputError(f"--match-bpp {text!r}: bpp targets must be positive")
    return targets


def build_methods(names: list[str], settings: dict[str, list[str]], targets: list[float],
                  warn) -> tuple[list[Method], list[str]]:
    """The methods to run and the problems met (codecs skipped because unavailable)."""
    methods, problems = [], []
    for name in names:
        try:
            codec = codec_registry.get(name, warn=warn)
            chosen = settings.get(name)
            if chosen is None and not (targets and isinstance(codec, QualityCodec)):
                chosen = codec.default_settings()
            for setting in chosen or []:
                codec.check_setting(setting)
                methods.append(Method(codec, setting))
            if targets and isinstance(codec, QualityCodec):
                methods += [Method(codec, codec.setting(codec.quality_range[0]), t) for t in targets]
        except CodecUnavailableError as e:
            problems.append(str(e))
            warn(f"skipped: {e}")
    labels = [(m.codec.name, m.label) for m in methods]
    duplicate = next((key for key in labels if labels.count(key) > 1), None)
    if duplicate:
        raise InputError(f"setting {duplicate[1]!r} of codec {duplicate[0]!r} is given twice")
    return methods, problems


def validate(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    names = split_list(args.codecs)
    unknown = [n for n in names if n not in codec_registry.CODEC_NAMES]
    if not names or unknown:
        raise InputError(f"unknown codec {unknown[0]!r}; choose from {', '.join(codec_registry.CODEC_NAMES)}"
                         if unknown else "--codecs is empty")
    wanted = split_list(args.metrics)
    bad = [m for m in wanted if m not in METRICS]
    if not wanted or bad:
        raise InputError(f"unknown metric {bad[0]!r}; choose from {', '.join(METRICS)}" if bad else "--metrics is empty")
    if args.workers < 1:
        raise InputError(f"--workers {args.workers}: must be at least 1")
    return names, wanted


def format_summary(summary: pd.DataFrame) -> str:
    return summary.to_string(index=False, float_format=lambda v: f"{v:.4g}")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    def warn(message: str) -> None:
        print(f"warning: {message}", file=sys.stderr)

    try:
        names, wanted = validate(args)
        settings = parse_settings(args.settings, names)
        targets = parse_targets(args.match_bpp)
        images = datasets.load(args.dataset, args.data_dir, warn=warn)
        methods, problems = build_methods(names, settings, targets, warn)
        if not methods:
            raise InputError("no codec could run: " + "; ".join(problems))
        result = Run(methods, images, wanted, Path(args.out), args.workers, warn).execute()
    except HificError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: finished results are cached and in the CSVs; run again to continue", file=sys.stderr)
        return 130
    print(format_summary(result.summary))
    print(f"\nwrote {args.out}/per_image.csv, summary.csv, images.csv, originals/ and recon/")
    problems += result.warnings
    if problems:
        print(f"finished with {len(problems)} problem(s), listed above as warnings", file=sys.stderr)
        return 1
    return 0
