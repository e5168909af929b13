"""The inputs of a campaign (:mod:`hific.train.campaign`) for a borrowed GPU machine, packed into one folder.

Such a machine reaches no network and takes a bounded working tree (64 MiB: the code, the data and the
starting checkpoints together). :func:`build_kit` takes the campaign's own arguments, copies everything its
runs read into the folder — each ``--warm-start`` / ``--init`` checkpoint, the ``--data`` images, the
``--val`` images the trainer uses, the Kodak images, LPIPS's backbone weights as :mod:`hific.weights` caches
them, and the wheels of the packages that machine's image lacks — and writes ``run.sh``, the campaign's command
with every path pointing into the folder. It checks the size of what would travel before anything is sent.
"""
from __future__ import annotations

import importlib.metadata
import io
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from hific.errors import InputError
from hific.image_io import atomic_write_bytes
from hific.train.campaign import CampaignRun
from hific.train.data import list_images
from hific.weights.lpips_backbone import backbone_cache_name, lpips_backbone_tensors

# The borrowed machine's Python (its image: CPython 3.12 on glibc 2.34+, PyTorch, numpy, pandas, scipy, Pillow,
# tqdm, tensorboard) and what `hific train` and the Kodak benchmark need beyond it.
DEVICE_PYTHON = "3.12"
DEVICE_PLATFORM = "manylinux_2_34_x86_64"
DEVICE_WHEELS = ("compressai", "lpips", "pytorch-msssim")
TRAVEL_LIMIT = 64 * 2 ** 20
SCRIPT = "run.sh"
# Options of `hific train` whose values are files or folders the runs read.
CHECKPOINT_OPTIONS = ("--warm-start", "--init")


@dataclass(frozen=True)
class Kit:
    """A packed campaign: its folder, the script that runs it there, and the bytes of each part."""

    folder: Path
    script: Path
    sizes: dict[str, int]

    @property
    def total(self) -> int:
        """Bytes that travel to the machine: the code and every part of the kit."""
        return sum(self.sizes.values())


def option_values(words: list[str], option: str) -> list[str]:
    """The values given to ``option`` in a hific train command line (``--data`` takes several)."""
    values: list[str] = []
    for i, word in enumerate(words):
        if word == option:
            for value in words[i + 1:]:
                if value.startswith("-"):
                    break
                values.append(value)
                if option != "--data":
                    break
    return values


def replace_values(words: list[str], option: str, new: list[str]) -> list[str]:
    """``words`` with the values of ``option`` replaced by ``new`` (in the same count)."""
    old = option_values(words, option)
    if not old:
        return words
    i = words.index(option)
    return words[: i + 1] + new + words[i + 1 + len(old):]


def folder_bytes(path: Path) -> int:
    """Bytes of every file under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def copy_start(source: str, into: Path) -> str:
    """Copy a run's starting checkpoint (a shipped name, or a path) into ``into/start``; its path there."""
    from hific.zoo import shipped

    path = shipped().get(source) or Path(source)
    if not path.is_file():
        raise InputError(f"{source}: no shipped checkpoint or file of that name to start a run from")
    target = into / "start" / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    return str(target.relative_to(into))


def copy_images(files: list[Path], target: Path) -> None:
    """Copy image files into one folder, keeping their names (a repeated name gets its position as a prefix)."""
    target.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(files):
        name = path.name if not (target / path.name).exists() else f"{i}-{path.name}"
        shutil.copyfile(path, target / name)


def write_lpips_cache(into: Path) -> None:
    """LPIPS-Alex's backbone weights in :func:`hific.weights.pinned.cached_tensors`'s format, under ``cache``
    (the machine's ``HIFIC_CACHE``): the training loss's network without a download there."""
    buf = io.BytesIO()
    torch.save(lpips_backbone_tensors("alex"), buf)
    atomic_write_bytes(into / "cache" / "converted" / backbone_cache_name("alex"), buf.getvalue())


def download_wheels(into: Path) -> None:
    """pip-download this machine's versions of :data:`DEVICE_WHEELS` built for the borrowed machine's Python."""
    target = into / "wheels"
    target.mkdir(parents=True, exist_ok=True)
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in DEVICE_WHEELS]
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
           "--python-version", DEVICE_PYTHON, "--implementation", "cp", "--platform", DEVICE_PLATFORM,
           "--dest", str(target), *pins]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise InputError(f"wheels for the GPU machine ({', '.join(pins)}): {last}")


def travelling_code(repo: Path, kit: Path) -> int:
    """Bytes of the working tree that travels besides the kit: tracked and untracked-not-ignored files,
    without the shipped checkpoints (``hific/checkpoints/*.pt``, moved aside for the call)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=repo,
                            capture_output=True, check=True).stdout.decode().split("\0")
    total = 0
    for name in filter(None, listed):
        path = repo / name
        if path.is_file() and not (name.startswith("hific/checkpoints/") and name.endswith(".pt")) \
                and kit.resolve() not in path.resolve().parents:
            total += path.stat().st_size
    return total


def script_text(runs: list[str], common: list[str], budget_s: float, kodak: str | None, piece_mib: float) -> str:
    """``run.sh``: install the wheels, point HIFIC_CACHE at the kit, run the campaign from the kit's folder
    (run from the repository's root, with OUT set; PYTHON overrides python3)."""
    args = ["run", "--out", "$OUT", "--work", "work", "--time-budget", f"{budget_s:g}", "--piece-mib", f"{piece_mib:g}"]
    args += ["--kodak", kodak] if kodak else []
    for spec in runs:
        args += ["--run", spec]
    args += ["--common", shlex.join(common)]
    quoted = " ".join('"$OUT"' if a == "$OUT" else shlex.quote(a) for a in args)
    return "\n".join([
        "#!/bin/bash",
        "# A hific training campaign packed by `python benchmarks/campaign.py kit`; run from the repository's root:",
        "#   OUT=... bash KIT/run.sh",
        "set -euo pipefail",
        'REPO="$PWD"; KIT="$(cd "$(dirname "$0")" && pwd)"; PY="${PYTHON:-python3}"',
        'if compgen -G "$KIT/wheels/*.whl" > /dev/null; then',
        '  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/hific-site '
        '"$KIT"/wheels/*.whl',
        "fi",
        'export PYTHONPATH="/tmp/hific-site:$REPO" HIFIC_CACHE="$KIT/cache" PYTHONUNBUFFERED=1',
        'cd "$KIT"',
        f'"$PY" "$REPO/benchmarks/campaign.py" {quoted}',
        "",
    ])


def build_kit(into: Path, runs: list[CampaignRun], common: list[str], budget_s: float, kodak: Path | None,
              repo: Path, piece_mib: float = 16.0, wheels: bool = True, limit: int = TRAVEL_LIMIT) -> Kit:
    """Pack the campaign's inputs into ``into`` (a fresh folder) and write its ``run.sh``; refuses with one
    line when what would travel (the code and the kit) exceeds ``limit`` bytes. The kit is built beside
    ``into`` and moved there when complete, so a refused or interrupted kit leaves nothing behind."""
    if into.exists() and (not into.is_dir() or any(into.iterdir())):
        raise InputError(f"{into}: not an empty folder; the kit goes into a fresh one")
    partial = into.with_name(f".{into.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        sizes = _fill(partial, runs, common, budget_s, kodak, piece_mib, wheels)
        sizes = {"code": travelling_code(repo, partial), **sizes}
        if (total := sum(sizes.values())) > limit:
            listing = ", ".join(f"{k} {v / 2 ** 20:.1f}" for k, v in sizes.items())
            raise InputError(f"{into}: {total / 2 ** 20:.1f} MiB would travel ({listing}), over the "
                             f"{limit / 2 ** 20:g} MiB limit: carry fewer checkpoints or images")
        if into.exists():
            into.rmdir()
        partial.rename(into)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return Kit(into, into / SCRIPT, sizes)


def _fill(into: Path, runs: list[CampaignRun], common: list[str], budget_s: float, kodak: Path | None,
          piece_mib: float, wheels: bool) -> dict[str, int]:
    """Copy every input of the runs into ``into``, write ``run.sh`` with the paths there; bytes by part."""
    into.mkdir(parents=True)
    specs = []
    for run in runs:
        words = list(run.options)
        for option in CHECKPOINT_OPTIONS:
            words = replace_values(words, option, [copy_start(v, into) for v in option_values(words, option)])
        specs.append(shlex.join([run.config, *words]))
    data = option_values(common, "--data")
    if not data:
        raise InputError("--common: name the training images with --data")
    for i, folder in enumerate(data):
        copy_images(list_images([folder]), into / "data" / f"{i}-{Path(folder).name}")
    common = replace_values(common, "--data", [f"data/{i}-{Path(f).name}" for i, f in enumerate(data)])
    if val := option_values(common, "--val"):
        count = option_values(common, "--val-count")
        copy_images(list_images(val)[: int(count[0]) if count else 4], into / "val")
        common = replace_values(common, "--val", ["val"])
    if kodak is not None:
        copy_images(list_images([kodak]), into / "kodak")
    write_lpips_cache(into)
    if wheels:
        download_wheels(into)
    script = script_text(specs, common, budget_s, "kodak" if kodak else None, piece_mib)
    atomic_write_bytes(into / SCRIPT, script.encode())
    parts = ("start", "data", "val", "kodak", "cache", "wheels")
    return {p: folder_bytes(into / p) for p in parts if (into / p).is_dir()}
