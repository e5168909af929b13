"""The benchmark's private result cache (``<out>/cache``): coded images, their metrics and patch features.

Layout::

    cache/<codec>/<codec version>/<setting>/<image sha256[:16]>.{bin,png,json,fid.npy}
    cache/originals/<image sha256[:16]>.fid.npy      Inception features of the originals' patches
    cache/sets/<inputs sha256[:24]>.json             FID/KID of one method's set of reconstructions

An entry is committed by its ``.json`` (written last, atomically), so an interrupted run resumes where it
stopped and never reads a half-written result.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from hific.image_io import atomic_write_bytes

if TYPE_CHECKING:
    from hific.bench.codecs import Coder


def entry_dir(cache: Path, codec: Coder, setting: str) -> Path:
    """The folder of one (codec, codec version, setting)'s entries."""
    return cache / codec.name / codec.version(setting) / codec.label(setting)


def read_json(path: Path) -> dict | None:
    """A committed record, or ``None`` when it is absent or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, obj: dict) -> None:
    """Commit a record atomically."""
    atomic_write_bytes(path, json.dumps(obj, indent=1).encode())


def cached_array(path: Path, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """The array stored at ``path`` (``.npy``), computed and written atomically on the first call."""
    if path.exists():
        return np.load(path)
    array = compute()
    buf = io.BytesIO()
    np.save(buf, array)
    atomic_write_bytes(path, buf.getvalue())
    return array
