"""The ``hific`` command: compress, decompress, inspect files, list models (and train, see hific.train)."""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from hific import bitstream
from hific.config import DEFAULT_MODEL
from hific.errors import HificError, InputError


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory")
    try:
        return path.read_bytes()
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None


def cmd_compress(args: argparse.Namespace) -> None:
    from hific.codec import load
    from hific.image_io import atomic_write_bytes

    codec = load(args.model, device=args.device)
    enc = codec.encode(args.input, estimate=True)   # the file's size is checked from its header first
    atomic_write_bytes(args.output, enc.data)
    print(f"{args.output}: {len(enc.data)} bytes, {enc.bpp:.4f} bpp ({enc.width}x{enc.height}, model {codec.name}, "
          f"file/estimate {len(enc.data) * 8 / enc.estimated_bits:.3f})")


def cmd_decompress(args: argparse.Namespace) -> None:
    from hific.codec import load
    from hific.image_io import write_png

    data = _read_bytes(args.input)
    header = bitstream.unpack(data).header
    codec = load(args.model or header.model_name, device=args.device)
    rgb = codec.decompress(data)
    write_png(args.output, rgb)
    print(f"{args.output}: {header.width}x{header.height}, {len(data) * 8 / (header.width * header.height):.4f} bpp")


def cmd_info(args: argparse.Namespace) -> None:
    data = _read_bytes(args.input)
    p = bitstream.unpack(data)
    h = p.header
    print(f"model {h.model_name} (weights {h.fingerprint.hex()}), {h.width}x{h.height} "
          f"(padding {h.pad_bottom} rows, {h.pad_right} columns), {len(data)} bytes = "
          f"{len(data) * 8 / (h.width * h.height):.4f} bpp: header {bitstream.header_size(h.model_name)}, "
          f"z {len(p.z_string)}, y {len(p.y_string)}")


def cmd_models(args: argparse.Namespace) -> None:
    from hific import zoo

    for e in zoo.catalogue():
        if args.all or e.available:
            print(f"{e.name}\t{e.status}\t{e.source}\tlicence: {e.licence}\t{e.location}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hific", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("compress", help="image -> .hfc file")
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--model", "-m", default=DEFAULT_MODEL,
                   help=f"shipped model name, ms-qN, or checkpoint path (default {DEFAULT_MODEL})")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser("decompress", help=".hfc file -> PNG")
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--model", "-m", help="defaults to the model named in the file")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_decompress)

    p = sub.add_parser("info", help="print a .hfc file's header")
    p.add_argument("input", type=Path)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("models", help="list the models that load on this machine (name, status, source, licence, file)")
    p.add_argument("--all", action="store_true",
                   help="also the published and CompressAI models not in the torch hub cache, with their URLs")
    p.set_defaults(func=cmd_models)

    from hific.train.cli import add_train_parser

    add_train_parser(sub)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"hific: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point; errors become one line on stderr and a non-zero exit (HIFIC_DEBUG=1 shows tracebacks)."""
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():  # warnings as one line each, restored afterwards
            warnings.showwarning = _show_warning
            args.func(args)
    except HificError as e:
        print(f"hific: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hific: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug: still one line unless debugging
        if os.environ.get("HIFIC_DEBUG"):
            raise
        print(f"hific: internal error: {type(e).__name__}: {e} (set HIFIC_DEBUG=1 for a traceback)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
