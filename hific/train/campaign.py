"""A time-budgeted training campaign: several presets trained side by side (one process each, on one device),
exported, measured on Kodak, and packed into a few files of bounded size.

Made for a borrowed GPU machine that takes a bounded working tree and returns at most a few files: every
run stops by itself with ``--time-budget``; the exported checkpoints go into one tar cut into pieces of at
most ``piece_bytes``; logs, validation curves, the Kodak results and a manifest (sha256 of the tar) go
into ``campaign.tar.gz``. :func:`join` puts the pieces together again and verifies them.
"""
from __future__ import annotations

import hashlib
import io
import json
import shlex
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from hific.errors import InputError
from hific.image_io import atomic_write_bytes

PIECE_BYTES = 16 * 2 ** 20
CHECKPOINTS_TAR = "checkpoints.tar"
RESULTS_TAR = "campaign.tar.gz"
MANIFEST = "manifest.json"
# Seconds a run may take beyond its budget (start-up, data decoding, the last step and checkpoint).
GRACE_S = 120


@dataclass(frozen=True)
class CampaignRun:
    """One run: a preset and its own ``hific train`` options (e.g. ``--warm-start hific-lo --steps 60000``)."""

    config: str
    options: tuple[str, ...] = ()

    @classmethod
    def parse(cls, spec: str) -> "CampaignRun":
        """``"CONFIG [hific train options]"`` -> a run."""
        words = shlex.split(spec)
        if not words or words[0].startswith("-"):
            raise InputError(f"--run {spec!r}: start with a training preset name, then its hific train options")
        return cls(words[0], tuple(words[1:]))

    @property
    def codec(self) -> str:
        """The benchmark codec that measures this preset's export (hific, nogan or ms)."""
        return self.config.split("-")[0]


def train_command(run: CampaignRun, common: list[str], work: Path, budget_s: float) -> list[str]:
    """The ``hific train`` command line of one run."""
    return [sys.executable, "-m", "hific.cli", "train", "--config", run.config, "--run-dir",
            str(work / run.config), "--time-budget", str(budget_s), *common, *run.options]


def ended_by(proc: subprocess.Popen, when: float) -> bool:
    """Wait for ``proc`` until the monotonic time ``when``; True when it has ended."""
    try:
        proc.wait(timeout=max(0.0, when - time.monotonic()))
    except subprocess.TimeoutExpired:
        return False
    return True


def train_all(runs: list[CampaignRun], common: list[str], work: Path, budget_s: float) -> dict[str, int]:
    """Start every run at once and wait for all; those still going at budget + GRACE_S / 2 get SIGTERM (each
    stops after its step, with a checkpoint) and those still going at budget + GRACE_S, SIGKILL. Exit codes
    by preset."""
    work.mkdir(parents=True, exist_ok=True)
    procs, logs = {}, []
    for run in runs:
        logs.append(open(work / f"{run.config}.log", "wb"))
        procs[run.config] = subprocess.Popen(train_command(run, common, work, budget_s), stdout=logs[-1],
                                             stderr=subprocess.STDOUT)
    started = time.monotonic()
    for stop_at, stop in ((started + budget_s + GRACE_S / 2, "terminate"), (started + budget_s + GRACE_S, "kill")):
        for proc in [p for p in procs.values() if not ended_by(p, stop_at)]:
            getattr(proc, stop)()
    for log in logs:
        log.close()
    return {name: proc.wait() for name, proc in procs.items()}


def export_all(runs: list[CampaignRun], work: Path) -> dict[str, Path]:
    """Export every run that left a checkpoint; the inference checkpoints by preset."""
    from hific.train.checkpoints import CHECKPOINT, export

    out = {}
    for run in runs:
        ckpt = work / run.config / CHECKPOINT
        if ckpt.exists():
            out[run.config] = export(ckpt, work / "export" / f"{run.config}.pt", run.config)
    return out


def measure_kodak(exports: dict[str, Path], runs: list[CampaignRun], kodak: Path, out: Path) -> int:
    """PSNR, MS-SSIM and LPIPS of every export on Kodak (benchmarks/run.py), into ``out``; its exit code."""
    from hific.bench.command import main as bench

    by_codec: dict[str, list[str]] = {}
    for run in runs:
        if run.config in exports:
            by_codec.setdefault(run.codec, []).append(str(exports[run.config]))
    if not by_codec:
        return 1
    args = ["--dataset", str(kodak), "--codecs", ",".join(by_codec), "--metrics", "psnr,msssim,lpips",
            "--out", str(out), "--workers", "1"]
    for codec, paths in by_codec.items():
        args += ["--settings", f"{codec}={','.join(paths)}"]
    return bench(args)


def split(path: Path, piece_bytes: int = PIECE_BYTES) -> list[Path]:
    """Cut a file into ``NAME.00``, ``NAME.01``, ... of at most ``piece_bytes`` each; the pieces."""
    pieces = []
    with open(path, "rb") as f:
        while chunk := f.read(piece_bytes):
            piece = path.with_name(f"{path.name}.{len(pieces):02d}")
            atomic_write_bytes(piece, chunk)
            pieces.append(piece)
    return pieces


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2 ** 20), b""):
            h.update(block)
    return h.hexdigest()


def pack(exports: dict[str, Path], work: Path, out: Path, codes: dict[str, int], bench_rc: int | None,
         piece_bytes: int = PIECE_BYTES) -> list[Path]:
    """Write ``checkpoints.tar.NN`` pieces and ``campaign.tar.gz`` (logs, CSVs, Kodak results, manifest) into
    ``out``; the files written."""
    out.mkdir(parents=True, exist_ok=True)
    tar_path = work / CHECKPOINTS_TAR
    with tarfile.open(tar_path, "w") as tar:
        for name, path in exports.items():
            tar.add(path, arcname=f"{name}.pt")
    pieces = split(tar_path, piece_bytes)
    for piece in pieces:
        piece.replace(out / piece.name)
    manifest = {"checkpoints": sorted(exports), "sha256": sha256(tar_path),
                "pieces": [p.name for p in pieces], "exit_codes": codes, "kodak_exit_code": bench_rc}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(work.rglob("*")):
            rel = path.relative_to(work)
            if path.is_file() and (path.suffix in (".csv", ".log", ".png") or path.name.startswith("events.")) \
                    and not {"recon", "originals", "cache"} & set(rel.parts):
                tar.add(path, arcname=str(rel))
        data = json.dumps(manifest, indent=1).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    atomic_write_bytes(out / RESULTS_TAR, buf.getvalue())
    return [out / p.name for p in pieces] + [out / RESULTS_TAR]


def run_campaign(runs: list[CampaignRun], common: list[str], out: Path, work: Path, budget_s: float,
                 kodak: Path | None, piece_bytes: int = PIECE_BYTES) -> list[Path]:
    """Train, export, measure and pack (see the module docstring): run directories, exports and the Kodak
    benchmark in ``work``, only the packed files in ``out``; the files written into ``out``."""
    names = [r.config for r in runs]
    if not runs or len(set(names)) != len(names):
        raise InputError("give each preset once (--run CONFIG ...)")
    if out.resolve() in work.resolve().parents or out.resolve() == work.resolve():
        raise InputError(f"--work {work} must lie outside --out {out} (only the packed files go there)")
    codes = train_all(runs, common, work, budget_s)
    exports = export_all(runs, work)
    bench_rc = measure_kodak(exports, runs, kodak, work / "kodak") if kodak is not None and exports else None
    files = pack(exports, work, out, codes, bench_rc, piece_bytes)
    return files


def join(folder: Path, into: Path) -> list[Path]:
    """Put ``checkpoints.tar`` together from its pieces in ``folder``, check it against the manifest in
    ``campaign.tar.gz`` and unpack the checkpoints into ``into``; the checkpoints written."""
    with tarfile.open(folder / RESULTS_TAR) as tar:
        manifest = json.load(tar.extractfile(MANIFEST))
    missing = [p for p in manifest["pieces"] if not (folder / p).is_file()]
    if missing:
        raise InputError(f"{folder}: missing piece {missing[0]} of {CHECKPOINTS_TAR}")
    whole = b"".join((folder / p).read_bytes() for p in manifest["pieces"])
    if hashlib.sha256(whole).hexdigest() != manifest["sha256"]:
        raise InputError(f"{folder}: the pieces of {CHECKPOINTS_TAR} do not match its sha256 in the manifest")
    written = []
    with tarfile.open(fileobj=io.BytesIO(whole)) as tar:
        for member in tar.getmembers():
            if not member.isfile() or "/" in member.name or not member.name.endswith(".pt"):
                raise InputError(f"{folder}: unexpected entry {member.name!r} in {CHECKPOINTS_TAR}")
            target = into / member.name
            atomic_write_bytes(target, tar.extractfile(member).read())
            written.append(target)
    return written
