"""Test images: scikit-image's bundled photos (the embedded default), a directory, or a named set (``kodak``)."""
from __future__ import annotations

import hashlib
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hific.errors import InputError
from hific.image_io import atomic_write_bytes, read_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".heic", ".avif"}
# scikit-image photos that ship inside the wheel (no download), in colour and large enough for MS-SSIM.
EMBEDDED = ("astronaut", "chelsea", "coffee", "immunohistochemistry", "rocket")
NAMED_SETS = {
    "kodak": [f"http://r0k.us/graphics/kodak/kodak/kodim{i:02d}.png" for i in range(1, 25)],
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


def download_named(name: str, folder: Path) -> None:
    """Fetch a named set into ``folder`` file by file (each written atomically)."""
    from tqdm import tqdm

    for url in tqdm(NAMED_SETS[name], desc=f"downloading {name}", unit="img", file=sys.stderr):
        target = folder / url.rsplit("/", 1)[1]
        if target.exists():
            continue
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                atomic_write_bytes(target, response.read())
        except (urllib.error.URLError, OSError) as e:
            raise InputError(f"dataset {name!r} is not in {folder.parent} and cannot be downloaded ({e})") from None


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
