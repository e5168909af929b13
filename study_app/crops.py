"""Crops shown to raters, cut from a benchmark output directory.

The benchmark layout (``benchmarks/run.py``): ``originals/<image>.png`` and
``recon/<codec>/<setting>/<image>.png``; a method is ``codec:setting``.  The HiFiC study
showed 768x768 crops whose positions varied across raters (Sec. 4.3); smaller images get
crops no larger than the image.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, UnidentifiedImageError

ORIGINAL = "@original"  # pseudo-method: the original crop (attention checks)
DEGRADED = "@degraded"  # pseudo-method: a heavily degraded crop (attention checks)
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
Box = tuple[int, int, int, int]


class BenchmarkDirError(ValueError):
    """A benchmark directory does not follow the output layout, or lacks a file."""


def _safe(name: str) -> bool:
    """Whether ``name`` is a plain file-name component (no separators, no ``..``)."""
    return bool(SAFE_NAME.match(name)) and ".." not in name


def benchmark_images(bench_dir: Path) -> list[str]:
    """Image stems that have an original under ``originals/``."""
    originals = Path(bench_dir) / "originals"
    if not originals.is_dir():
        raise BenchmarkDirError(f"{bench_dir}: no originals/ folder (not a benchmark output directory)")
    return sorted(p.stem for p in originals.glob("*.png") if _safe(p.stem))


def benchmark_methods(bench_dir: Path) -> list[str]:
    """Methods ``codec:setting`` that have a ``recon/<codec>/<setting>/`` folder."""
    recon = Path(bench_dir) / "recon"
    if not recon.is_dir():
        raise BenchmarkDirError(f"{bench_dir}: no recon/ folder (not a benchmark output directory)")
    return sorted(f"{c.name}:{s.name}" for c in recon.iterdir() if c.is_dir() and _safe(c.name)
                  for s in c.iterdir() if s.is_dir() and _safe(s.name))


def recon_path(bench_dir: Path, method: str, image: str) -> Path:
    """Path of ``method``'s reconstruction of ``image``; refuses names that would leave the
    benchmark directory."""
    codec, _, setting = method.partition(":")
    if not (_safe(codec) and _safe(setting) and _safe(image)):
        raise BenchmarkDirError(f"bad method or image name: {method!r}, {image!r}")
    return Path(bench_dir) / "recon" / codec / setting / f"{image}.png"


def original_path(bench_dir: Path, image: str) -> Path:
    """Path of the original of ``image``."""
    if not _safe(image):
        raise BenchmarkDirError(f"bad image name: {image!r}")
    return Path(bench_dir) / "originals" / f"{image}.png"


def load_rgb(path: Path) -> Image.Image:
    """An 8-bit RGB image, or a one-line :class:`BenchmarkDirError`."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError:
        raise BenchmarkDirError(f"missing file {path}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise BenchmarkDirError(f"{path}: not a readable image ({exc})") from None


def crop_boxes(width: int, height: int, size: int, n: int, rng: np.random.Generator) -> list[Box]:
    """``n`` crop boxes (x, y, w, h) of ``size`` x ``size`` (clipped to the image) at random
    positions; the first is centred."""
    w, h = min(size, width), min(size, height)
    boxes = [((width - w) // 2, (height - h) // 2, w, h)]
    boxes += [(int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h)
              for _ in range(n - 1)]
    return boxes


def degrade(img: Image.Image) -> Image.Image:
    """A heavily degraded version for attention checks: blurred and re-encoded as JPEG at
    quality 5, so any attentive rater sees it is farther from the original."""
    buf = io.BytesIO()
    img.filter(ImageFilter.GaussianBlur(radius=max(2, min(img.size) // 64))).save(
        buf, format="JPEG", quality=5)
    buf.seek(0)
    with Image.open(buf) as out:
        return out.convert("RGB")


def cut(img: Image.Image, box: Box) -> Image.Image:
    """The crop ``box`` = (x, y, w, h) of ``img``."""
    x, y, w, h = box
    return img.crop((x, y, x + w, y + h))
