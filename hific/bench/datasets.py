"""Test images: scikit-image's bundled photos (the embedded default), a directory, or a named set: ``kodak``
(24 images, 768x512), ``clic2020`` (CLIC 2020 test, professional + mobile, 428 images) and ``div2k`` (DIV2K
validation, 100 images), the three evaluation sets of the HiFiC paper (Sec. 4).

A named set is read from ``<data dir>/<name>/`` when that folder exists; otherwise it is downloaded from its
official URL into a staging folder (archives checked against the size and sha256 that TensorFlow Datasets
publishes in ``url_checksums/clic.txt`` and ``div2k.txt``), its image count checked, and the folder renamed
into place, so a set folder is complete or absent.
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hific.errors import InputError
from hific.image_io import atomic_write_bytes, read_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".heic", ".avif"}
# scikit-image photos that ship inside the wheel (no download), in colour and large enough for MS-SSIM.
EMBEDDED = ("astronaut", "chelsea", "coffee", "immunohistochemistry", "rocket")
CLIC = "https://data.vision.ee.ethz.ch/cvl/clic/test/"
DIV2K = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Download:
    """One file of a named set: an image or a zip of images, with its published size and sha256 when known."""

    url: str
    size: int | None = None
    sha256: str | None = None

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[1]


@dataclass(frozen=True)
class NamedSet:
    """A downloadable evaluation set: its files and how many images it holds."""

    downloads: tuple[Download, ...]
    n_images: int


NAMED_SETS = {
    "kodak": NamedSet(tuple(Download(f"http://r0k.us/graphics/kodak/kodak/kodim{i:02d}.png") for i in range(1, 25)),
                      24),
    "clic2020": NamedSet((
        Download(CLIC + "CLIC2020Mobile_test.zip", 721789976,
                 "2025f07a6c652270e534640de4271feef3b3dd3260beed4ac4821064837aa732"),
        Download(CLIC + "CLIC2020Professional_test.zip", 891643809,
                 "857df244fc2bfa5da28d4c66bf0db16ee99bfc79eb807be8afa89cd507852884")), 428),
    "div2k": NamedSet((Download(DIV2K + "DIV2K_valid_HR.zip", 448993893,
                                "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc"),), 100),
}


@dataclass(frozen=True)
class BenchImage:
    """One test image: its name (file stem), pixels (H, W, 3 uint8) and the sha256 of those pixels."""

    name: str
    rgb: np.ndarray

    @property
    def sha256(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.rgb).tobytes()).hexdigest()


def embedded() -> list[BenchImage]:
    """scikit-image's bundled colour photos."""
    import skimage.data

    return [BenchImage(name, getattr(skimage.data, name)()) for name in EMBEDDED]


def from_directory(folder: Path, warn=print) -> list[BenchImage]:
    """Every readable image in ``folder`` (sorted by name); unreadable files are reported and skipped."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    stems = [p.stem for p in files]
    clash = sorted({s for s in stems if stems.count(s) > 1})
    if clash:
        raise InputError(f"{folder}: several files share the name {clash[0]!r}; image names must be unique")
    images = []
    for path in files:
        try:
            images.append(BenchImage(path.stem, read_image(path)))
        except InputError as e:
            warn(f"skipping {e}")
    if not images:
        raise InputError(f"{folder}: no readable images (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return images


def data_dir(flag: str | None) -> Path:
    """Where named sets live: the ``--data-dir`` flag, else ``$HIFIC_DATA``, else ``~/.cache/hific/data``."""
    return Path(flag or os.environ.get("HIFIC_DATA") or Path.home() / ".cache" / "hific" / "data")


def fetch(download: Download, target: Path, bar: tqdm) -> None:
    """Stream one file to ``target`` (through a temporary file beside it), checking its size and sha256."""
    digest, size = hashlib.sha256(), 0
    with urllib.request.urlopen(download.url, timeout=30) as response, \
            tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", delete=False) as out:
        for block in iter(lambda: response.read(CHUNK), b""):
            out.write(block)
            digest.update(block)
            size += len(block)
            bar.update(len(block))
    if (download.size is not None and size != download.size) or download.sha256 not in (None, digest.hexdigest()):
        Path(out.name).unlink()
        raise InputError(f"{download.url}: got {size} bytes with sha256 {digest.hexdigest()[:16]}..., expected "
                         f"{download.size} bytes with sha256 {(download.sha256 or '?')[:16]}...; refusing it")
    os.replace(out.name, target)


def extract_images(archive: Path, folder: Path) -> None:
    """Write every image of a zip into ``folder`` (flat, each atomically) and delete the zip."""
    with zipfile.ZipFile(archive) as zf:
        for member in zf.infolist():
            name = Path(member.filename).name
            if not member.is_dir() and Path(name).suffix.lower() in IMAGE_SUFFIXES and not name.startswith("."):
                atomic_write_bytes(folder / name, zf.read(member))
    archive.unlink()


def download_named(name: str, folder: Path) -> None:
    """Fetch a named set into ``folder``: into a staging folder beside it (resumed file by file), then renamed."""
    named = NAMED_SETS[name]
    staging = folder.parent / f".{name}.partial"
    staging.mkdir(parents=True, exist_ok=True)
    with tqdm(desc=f"downloading {name}", unit="B", unit_scale=True, file=sys.stderr) as bar:
        for download in named.downloads:
            target = staging / download.filename
            done = staging / f".{download.filename}.done"
            if done.exists() or (target.exists() and target.suffix != ".zip"):
                continue
            try:
                fetch(download, target, bar)
            except (urllib.error.URLError, OSError) as e:
                raise InputError(f"dataset {name!r} is not in {folder.parent} and cannot be downloaded ({e})") from None
            if target.suffix == ".zip":
                extract_images(target, staging)
                atomic_write_bytes(done, b"")
    found = sum(1 for p in staging.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if found != named.n_images:
        raise InputError(f"dataset {name!r}: the download gave {found} images, expected {named.n_images}")
    for marker in staging.glob(".*.done"):
        marker.unlink()
    os.replace(staging, folder)


def load(spec: str | None, data_dir_flag: str | None = None, warn=print) -> list[BenchImage]:
    """Images of the embedded default (``spec`` None), a directory path, or a named set."""
    if spec is None:
        return embedded()
    path = Path(spec)
    if path.is_dir():
        return from_directory(path, warn)
    named = data_dir(data_dir_flag) / spec
    if named.is_dir():
        return from_directory(named, warn)
    if spec in NAMED_SETS:
        download_named(spec, named)
        return from_directory(named, warn)
    raise InputError(f"dataset {spec!r}: not a directory nor a set in {named.parent} "
                     f"(known downloadable sets: {', '.join(NAMED_SETS)})")
