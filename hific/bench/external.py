"""Reconstructions made elsewhere (``--recon NAME:SETTING=DIR``), scored exactly like a codec's.

``DIR`` holds one reconstruction per original, named by the original's stem (any format Pillow reads), and
the compressed sizes: either ``DIR/bits.csv`` (columns ``image,bytes``) or the compressed files themselves,
``DIR/bitstreams/<stem>.*``. bpp = bytes x 8 / pixels, as for every codec. Everything is checked before the
run starts: a missing or unreadable file, a size that differs from the original's, or a bad CSV row is one
InputError naming the file.
"""
from __future__ import annotations

import csv
import glob
import hashlib
import math
from pathlib import Path

from hific.bench.codecs import SAFE_SETTING, Coded, Coder
from hific.bench.datasets import BenchImage
from hific.errors import InputError
from hific.image_io import read_image

BITS_CSV = "bits.csv"
BITSTREAMS = "bitstreams"


def parse(entry: str) -> tuple[str, str, Path]:
    """``NAME:SETTING=DIR`` -> (name, setting, folder); NAME and SETTING become folder names in the outputs."""
    method, sep, folder = entry.partition("=")
    name, colon, setting = method.partition(":")
    if not (sep and colon and name and setting and folder):
        raise InputError(f"--recon {entry!r}: expected NAME:SETTING=DIR")
    for part in (name, setting):
        if SAFE_SETTING.search(part):
            raise InputError(f"--recon {entry!r}: {part!r} may only hold letters, digits, '.', '_' and '-'")
    if not Path(folder).is_dir():
        raise InputError(f"--recon {entry!r}: {folder} is not a directory")
    return name, setting, Path(folder)


def read_bits_csv(path: Path, stems: list[str]) -> dict[str, int]:
    """The ``image,bytes`` rows of ``path`` for ``stems``; InputError naming the file and line of a bad row."""
    sizes: dict[str, int] = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"image", "bytes"} <= set(reader.fieldnames):
            raise InputError(f"{path}: needs the columns image,bytes (has {','.join(reader.fieldnames or [])})")
        for row in reader:
            where = f"{path} line {reader.line_num}"
            image, value = (row["image"] or "").strip(), (row["bytes"] or "").strip()
            if not image or image in sizes:
                raise InputError(f"{where}: " + (f"image {image!r} is listed twice" if image else "no image name"))
            if not value.isdigit() or int(value) == 0:
                raise InputError(f"{where}: bytes {value!r} is not a positive whole number")
            sizes[image] = int(value)
    missing = [s for s in stems if s not in sizes]
    if missing:
        raise InputError(f"{path}: no row for image {missing[0]!r}")
    return {s: sizes[s] for s in stems}


def only_file(folder: Path, stem: str, what: str) -> Path:
    """The one file ``folder/<stem>.*``; InputError when there is none or several."""
    found = sorted(p for p in folder.glob(f"{glob.escape(stem)}.*")
                   if p.is_file() and p.stem == stem and p.name != BITS_CSV)
    if len(found) != 1:
        raise InputError(f"{folder}: " + (f"no {what} of {stem} ({stem}.*)" if not found else
                                          f"several {what}s of {stem}: {', '.join(p.name for p in found)}"))
    return found[0]


class ReconDir(Coder):
    """The reconstructions and sizes in one folder, as the single setting of the coder ``name``.

    These are results, not a codec: there is nothing to compress or decompress, so a ReconDir is a
    :class:`~hific.bench.codecs.Coder` (a source of reconstructions and sizes) but no
    :class:`~hific.bench.codecs.CodecFamily`, and it has no ``at(setting)``."""

    def __init__(self, name: str, setting: str, folder: Path, images: list[BenchImage]) -> None:
        self.name, self.setting, self.folder = name, setting, folder
        stems = [image.name for image in images]
        has_csv, has_streams = (folder / BITS_CSV).is_file(), (folder / BITSTREAMS).is_dir()
        if has_csv == has_streams:
            raise InputError(f"{folder}: give the compressed sizes as either {BITS_CSV} or {BITSTREAMS}/"
                             + (", not both" if has_csv else ""))
        if has_csv:
            self.sizes = read_bits_csv(folder / BITS_CSV, stems)
        else:
            self.sizes = {s: only_file(folder / BITSTREAMS, s, "bitstream").stat().st_size for s in stems}
        self.recons = {s: only_file(folder, s, "reconstruction") for s in stems}
        for image in images:
            shape = read_image(self.recons[image.name]).shape
            if shape != image.rgb.shape:
                raise InputError(f"{self.recons[image.name]}: {shape[1]}x{shape[0]} pixels, the original "
                                 f"{image.name} is {image.rgb.shape[1]}x{image.rgb.shape[0]}")

    def version(self, setting: str) -> str:
        """A hash of the files' names, sizes and modification times and of the compressed sizes."""
        stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in self.recons.values()]
        return "dir-" + hashlib.sha256(repr((stats, sorted(self.sizes.items()))).encode()).hexdigest()[:12]

    def default_settings(self) -> list[str]:
        return [self.setting]

    def check_setting(self, setting: str) -> None:
        if setting != self.setting:
            raise InputError(f"{self.name}: the reconstructions in {self.folder} are setting {self.setting!r}")

    def code(self, image: BenchImage, setting: str) -> Coded:
        return Coded(self.sizes[image.name], read_image(self.recons[image.name]), math.nan, math.nan)
