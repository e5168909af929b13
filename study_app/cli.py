"""Command line for running a study without the admin page.

    python -m study_app.cli create NAME --bench OUT [--methods jpeg:q10,hific:hific-lo] ...
    python -m study_app.cli links NAME [-n 5] [--url http://host:8501/]
    python -m study_app.cli export NAME --out judgements.csv
    python -m study_app.cli import-hific NAME userstudy.json

Studies live under ``--root`` (default ``$HIFIC_STUDY_ROOT`` or ``studies``).  Bad input
prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hific.image_io import atomic_write_bytes
from study_app import crops, design, raters, reports, studies, transfer
from study_app.score import JudgementFileError, load_judgements


def _csv_list(text: str | None) -> list[str] | None:
    """Split a comma-separated option; None stays None."""
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _create(args: argparse.Namespace) -> str:
    """Build a study from a benchmark output directory."""
    bench = Path(args.bench).resolve()
    methods = _csv_list(args.methods) or crops.benchmark_methods(bench)
    images = _csv_list(args.images) or crops.benchmark_images(bench)
    config = studies.StudyConfig(benchmark_dir=str(bench), methods=methods, images=images,
                                 crop_size=args.crop, n_positions=args.positions,
                                 comparisons_per_rater=args.comparisons, mode=args.mode,
                                 attention_every=args.attention_every, open_registration=not args.closed,
                                 seed=args.seed)
    h = studies.create_study(args.root, args.name, config)
    return (f"study {h.name!r}: {len(methods)} methods, {len(images)} images, "
            f"{config.total_trials} trials per rater, in {h.directory}")


def _links(args: argparse.Namespace) -> str:
    """New raters and their personal links."""
    h = studies.open_study(args.root, args.name)
    if args.n < 1:
        raise studies.StudyError("-n must be at least 1")
    return "\n".join(f"{args.url}?study={h.name}&token={raters.add_rater(h).token}" for _ in range(args.n))


def _export(args: argparse.Namespace) -> str:
    """All judgements as CSV or JSON, written atomically."""
    h = studies.open_study(args.root, args.name)
    out = Path(args.out)
    fmt = "json" if out.suffix.lower() == ".json" else "csv"
    df = reports.judgements(h)
    atomic_write_bytes(out, transfer.export_bytes(df, fmt))
    return f"{len(df)} judgements written to {out}"


def _import(args: argparse.Namespace) -> str:
    """A new study holding judgements in the HiFiC ``userstudy.json`` schema."""
    df = load_judgements(args.file, fmt="hific-json")
    h = studies.create_import_study(args.root, args.name)
    return f"imported {transfer.import_judgements(h, df)} judgements into study {h.name!r}"


def parser() -> argparse.ArgumentParser:
    """The argument parser."""
    p = argparse.ArgumentParser(prog="python -m study_app.cli", description="Run a rating study.")
    p.add_argument("--root", type=Path, default=studies.default_root())
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("create", help="build a study from a benchmark output directory")
    c.add_argument("name")
    c.add_argument("--bench", required=True, help="benchmark output directory (benchmarks/run.py)")
    c.add_argument("--methods", help="comma-separated codec:setting (default: all)")
    c.add_argument("--images", help="comma-separated image stems (default: all)")
    c.add_argument("--crop", type=int, default=768, help="crop size in pixels (paper: 768)")
    c.add_argument("--positions", type=int, default=3, help="crop positions per image")
    c.add_argument("--comparisons", type=int, default=50, help="comparisons per rater")
    c.add_argument("--mode", choices=design.MODES, default="balanced")
    c.add_argument("--attention-every", type=int, default=10, help="one check after every N (0: none)")
    c.add_argument("--closed", action="store_true", help="raters need a link (no self-registration)")
    c.add_argument("--seed", type=int, default=0, help="seed of the crop positions")
    c.set_defaults(run=_create)
    k = sub.add_parser("links", help="create raters and print their links")
    k.add_argument("name")
    k.add_argument("-n", type=int, default=1)
    k.add_argument("--url", default="http://localhost:8501/")
    k.set_defaults(run=_links)
    e = sub.add_parser("export", help="write all judgements to a .csv or .json file")
    e.add_argument("name")
    e.add_argument("--out", required=True)
    e.set_defaults(run=_export)
    i = sub.add_parser("import-hific", help="import HiFiC's userstudy.json as a new study")
    i.add_argument("name")
    i.add_argument("file", type=Path)
    i.set_defaults(run=_import)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one command; errors print one line and return 2."""
    args = parser().parse_args(argv)
    try:
        print(args.run(args))
    except (studies.StudyError, crops.BenchmarkDirError, JudgementFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
