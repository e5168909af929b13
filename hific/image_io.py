"""Reading any common image as 8-bit RGB, and writing files atomically."""
from __future__ import annotations

import io
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from hific.errors import InputError

# Pillow warns above MAX_IMAGE_PIXELS and refuses twice that as a decompression bomb. The largest image any
# model accepts is 40 MP (ModelConfig.max_pixels), so 50 MP keeps the guard meaningful (refused above 100 MP).
Image.MAX_IMAGE_PIXELS = 50_000_000


def umask() -> int:
    """The process's file-creation mask (read without changing it for good)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same directory and an atomic rename, so an
    interrupted run never leaves a half-written file; the folder is created when needed and the file gets
    the mode ``open()`` would give it (0666 & ~umask).  The project's one atomic writer; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), 0o666 & ~umask())  # as open() would create it, not mkstemp's 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def to_rgb8(img: Image.Image) -> np.ndarray:
    """Convert any Pillow image to an (H, W, 3) uint8 array.

    Grayscale is replicated to three channels; alpha is dropped with a warning; palette and CMYK are
    converted by Pillow; 16-bit and 32-bit integer images are scaled to 8 bits (not clipped).
    """
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info):
        warnings.warn("the image has an alpha channel; it is dropped (compositing is not done)", stacklevel=2)
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img).astype(np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        gray = np.clip(np.round(arr / peak * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        scale = 255.0 if arr.max() <= 1.0 else 1.0
        gray = np.clip(np.round(arr * scale), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def read_image(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB; raise InputError with one clear line on failure. An image
    of more than ``max_pixels`` pixels is refused from its header, before any decoding."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not an image")
    try:
        with Image.open(path) as img:
            w, h = img.size
            if max_pixels is not None and w * h > max_pixels:
                raise InputError(f"{path}: image of {w}x{h} pixels ({w * h / 1e6:.1f} MP) exceeds the limit of "
                                 f"{max_pixels / 1e6:.0f} MP")
            img.load()
            return to_rgb8(img)
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image file (or a format Pillow cannot read)") from None
    except Image.DecompressionBombError as e:
        raise InputError(f"{path}: image too large ({e})") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{path}: cannot read image ({e})") from None


def write_png(path: str | Path, rgb: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 array as PNG, atomically (the project's one PNG writer)."""
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
