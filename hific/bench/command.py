"""Command line of the benchmark (``python benchmarks/run.py``): parse, build the methods, run, print."""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from hific.bench import codecs as codec_registry
from hific.bench import datasets, external, spec_codecs, summary
from hific.bench.codecs import CodecFamily, QualityFamily
from hific.bench.metrics import METRICS
from hific.bench.rate_matching import RelativeRate
from hific.bench.runner import Method, Run, default_workers
from hific.errors import HificError, InputError

DEFAULT_CODECS = "hific,bpg"


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit status 2."""

    def error(self, message: str) -> None:
        self.exit(2, f"error: {message} (see --help)\n")


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="benchmarks/run.py", description="Rate-perception benchmark of image codecs "
                      "(PSNR, MS-SSIM, LPIPS per image; FID/KID on 256x256 patches), as in HiFiC's Fig. 4.")
    p.add_argument("--codecs", default=None,
                   help=f"comma-separated codecs from: {', '.join(codec_registry.names())} (default "
                        f"{DEFAULT_CODECS}, or none when --codec-spec or --recon bring their own)")
    p.add_argument("--codec-spec", action="append", default=[], metavar="SPEC.toml",
                   help="also run the command-line codec this TOML spec describes (see the README); repeatable")
    p.add_argument("--recon", action="append", default=[], metavar="NAME:SETTING=DIR",
                   help="also score reconstructions made elsewhere: DIR/<image stem>.* and the compressed sizes "
                        "in DIR/bits.csv (image,bytes) or DIR/bitstreams/<image stem>.*; repeatable")
    p.add_argument("--dataset", default=None,
                   help="a directory of images or a named set (kodak) in --data-dir; default: scikit-image's photos")
    p.add_argument("--data-dir", default=None, help="where named sets live (default $HIFIC_DATA or ~/.cache/hific/data)")
    p.add_argument("--settings", action="append", default=[], metavar="[CODEC=]S1,S2",
                   help="explicit settings (qualities like q75/qp32, or model names/checkpoints for learned codecs); "
                        "repeat per codec as CODEC=...; the codec may be left out when only one is run")
    p.add_argument("--match-bpp", default=None, metavar="B1,xF:CODEC:SETTING",
                   help="for quality-driven codecs: search each image's quality to land closest to these bpp, or "
                        "to F times the bpp CODEC:SETTING reached on that image (e.g. x2:hific:hific-lo)")
    p.add_argument("--metrics", default=",".join(METRICS), help=f"comma-separated from: {', '.join(METRICS)}")
    p.add_argument("--out", default="results/bench", help="output directory (default results/bench)")
    p.add_argument("--workers", type=int, default=default_workers(), help="processes for the CPU codecs")
    p.add_argument("--anchor", default="auto", help="codec the BD-rates (bd_rate.csv) are against; auto (default): "
                   "bpg, else bpg-x265, when run; none: no BD-rate")
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


def parse_target(text: str) -> float | RelativeRate:
    """``0.15`` (bpp) or ``x2:CODEC:SETTING`` (twice the bpp of that method, per image)."""
    factor, _, reference = text.partition(":")
    codec, _, setting = reference.partition(":")
    try:
        value = float(factor[1:] if reference else factor)
    except ValueError:
        value = math.nan
    well_formed = not reference or (factor.startswith("x") and codec and setting)
    if not (well_formed and value > 0 and math.isfinite(value)):
        raise InputError(f"--match-bpp {text!r}: expected a positive bpp or xFACTOR:CODEC:SETTING "
                         "(e.g. 0.15 or x2:hific:hific-lo)")
    return RelativeRate(value, codec, setting) if reference else value


def parse_targets(text: str | None) -> list[float | RelativeRate]:
    """The comma-separated targets of ``--match-bpp``."""
    if text is None:
        return []
    targets = [parse_target(v) for v in split_list(text)]
    if not targets:
        raise InputError(f"--match-bpp {text!r}: no bpp target given")
    return targets


def check_references(methods: list[Method], targets: list[float | RelativeRate]) -> None:
    """Every relative target names a method of this run (not itself rate-matched to another)."""
    plain = {f"{m.codec.name}:{m.label}" for m in methods if not isinstance(m.target, RelativeRate)}
    for rate in (t for t in targets if isinstance(t, RelativeRate)):
        reference = f"{rate.codec}:{rate.setting}"
        if reference not in plain:
            raise InputError(f"--match-bpp x{rate.factor:g}:{reference}: no method {reference} in this run "
                             f"(have {', '.join(sorted(plain))})")


def build_methods(names: list[str], settings: dict[str, list[str]], targets: list[float | RelativeRate],
                  own: dict[str, CodecFamily], recons: list[external.ReconDir], warn) -> list[Method]:
    """The methods to run: each codec's settings (``own`` holds the spec codecs), then the reconstructions."""
    methods = []
    for name in names:
        codec = own[name] if name in own else codec_registry.get(name, warn=warn)
        chosen = settings.get(name)
        if chosen is None and not (targets and isinstance(codec, QualityFamily)):
            chosen = codec.default_settings()
        for setting in chosen or []:
            codec.check_setting(setting)
            methods.append(Method(codec, setting))
        if targets and isinstance(codec, QualityFamily):
            methods += [Method(codec, codec.setting(codec.quality_range[0]), t) for t in targets]
    methods += [Method(recon, recon.setting) for recon in recons]
    check_references(methods, targets)
    labels = [(m.codec.name, m.label) for m in methods]
    duplicate = next((key for key in labels if labels.count(key) > 1), None)
    if duplicate:
        raise InputError(f"setting {duplicate[1]!r} of codec {duplicate[0]!r} is given twice")
    return methods


def load_specs(paths: list[str]) -> dict[str, CodecFamily]:
    """The codecs of the ``--codec-spec`` files, by name; their names may not shadow registered codecs."""
    own: dict[str, CodecFamily] = {}
    for path in paths:
        codec = spec_codecs.load(Path(path))
        if codec.name in codec_registry.names() or codec.name in own:
            raise InputError(f"{path}: codec name {codec.name!r} is taken; give the spec another name")
        own[codec.name] = codec
    return own


def validate(args: argparse.Namespace, own: dict[str, CodecFamily]) -> tuple[list[str], list[str]]:
    """The codecs to run (registered ones from ``--codecs``, then the spec codecs) and the metrics."""
    brought = bool(own or args.recon)
    names = split_list(DEFAULT_CODECS if args.codecs is None and not brought else args.codecs or "")
    known = [*codec_registry.names(), *own]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(f"unknown codec {unknown[0]!r}; choose from {', '.join(known)}")
    names += [n for n in own if n not in names]
    if not names and not args.recon:
        raise InputError("--codecs is empty")
    wanted = split_list(args.metrics)
    bad = [m for m in wanted if m not in METRICS]
    if not wanted or bad:
        raise InputError(f"unknown metric {bad[0]!r}; choose from {', '.join(METRICS)}" if bad else "--metrics is empty")
    if args.workers < 1:
        raise InputError(f"--workers {args.workers}: must be at least 1")
    return names, wanted


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    def warn(message: str) -> None:
        print(f"warning: {message}", file=sys.stderr)

    try:
        own = load_specs(args.codec_spec)
        names, wanted = validate(args, own)
        settings = parse_settings(args.settings, names)
        targets = parse_targets(args.match_bpp)
        images = datasets.load(args.dataset, args.data_dir, warn=warn)
        recons = [external.ReconDir(*external.parse(entry), images) for entry in args.recon]
        methods = build_methods(names, settings, targets, own, recons, warn)
        if not methods:
            raise InputError("nothing to run: no codec has a setting")
        result = Run(methods, images, wanted, Path(args.out), args.workers, warn).execute()
    except HificError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished results are cached and in the CSVs; run again to continue", file=sys.stderr)
        return 130
    print(summary.report(result.summary, Path(args.out), args.dataset, args.anchor))
    print(f"\nwrote {args.out}/per_image.csv, summary.csv, images.csv, originals/ and recon/")
    if result.warnings:
        print(f"finished with {len(result.warnings)} problem(s), listed above as warnings", file=sys.stderr)
        return 1
    return 0
