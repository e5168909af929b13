"""The GPU campaign's code path on CPU: side-by-side time-budgeted runs, export, Kodak measurement, packing
into bounded pieces and joining them again."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd

import hific
from hific import zoo
from hific.train.checkpoints import read_training_checkpoint

REPO = Path(__file__).resolve().parents[1]


def test_campaign_trains_exports_measures_and_packs_within_the_limits(shared_data, tmp_path):
    kodak = tmp_path / "kodak2"
    kodak.mkdir()
    for stem in ("kodim05", "kodim23"):
        shutil.copy(shared_data / "kodak" / f"{stem}.png", kodak)
    data = shared_data / "bsds500" / "val"
    out, kit = tmp_path / "out", tmp_path / "carry"
    common = f"--device cpu --threads 1 --crop 64 --batch-size 2 --data {data} --val {data} --val-count 1"
    campaign = [sys.executable, str(REPO / "benchmarks" / "campaign.py")]
    args = ["--time-budget", "4", "--kodak", str(kodak), "--piece-mib", "8", "--common", common,
            "--run", "hific-lo --warm-start hific-lo --steps 100000", "--run", "ms-lo --steps 100000"]
    # the kit: everything the runs read, in one folder, within the GPU machine's limit, and the command there
    packed = subprocess.run([*campaign, "kit", "--into", str(kit), "--no-wheels", *args], capture_output=True,
                            text=True, cwd=REPO, timeout=300)
    assert packed.returncode == 0, packed.stderr
    assert (kit / "start" / "hific-lo.pt").read_bytes() == zoo.shipped()["hific-lo"].read_bytes()
    images = sorted(p.name for p in data.glob("*.jpg"))
    assert sorted(p.name for p in (kit / "data" / "0-val").iterdir()) == images
    assert [p.name for p in (kit / "val").iterdir()] == images[:1]  # --val-count 1: the trainer's one image
    assert (kit / "cache" / "converted" / "lpips-alex-backbone.pt").is_file()
    assert "travel" in packed.stdout and str(shared_data) not in (kit / "run.sh").read_text()
    over = subprocess.run([*campaign, "kit", "--into", str(tmp_path / "big"), "--no-wheels", "--limit-mib", "8", *args],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert over.returncode == 2 and over.stderr.count("\n") == 1 and "over the 8 MiB limit" in over.stderr
    # run there (here: on CPU, from the repository's root, with the kit's paths only)
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(kit / "run.sh")], capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    files = sorted(p.name for p in out.iterdir())
    assert "campaign.tar.gz" in files and len(files) <= 8
    pieces = [p for p in out.iterdir() if p.name.startswith("checkpoints.tar.")]
    assert len(pieces) >= 2 and all(p.stat().st_size <= 8 * 2 ** 20 for p in pieces)
    with tarfile.open(out / "campaign.tar.gz") as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))
        summary = pd.read_csv(tar.extractfile("kodak/summary.csv"))
    assert manifest["exit_codes"] == {"hific-lo": 0, "ms-lo": 0} and manifest["kodak_exit_code"] == 0
    assert "hific-lo/val.csv" in names and "hific-lo/log.csv" in names
    assert set(summary["codec"]) == {"hific", "ms"} and (summary["n_images"] == 2).all()
    joined = subprocess.run([sys.executable, str(REPO / "benchmarks" / "campaign.py"), "join", str(out), "--into",
                             str(tmp_path / "ckpt")], capture_output=True, text=True, cwd=REPO)
    assert joined.returncode == 0, joined.stderr
    shipped = hific.load("hific-lo").metadata["steps"]
    for name, first in (("hific-lo", shipped + 1), ("ms-lo", 1)):
        codec = hific.load(tmp_path / "ckpt" / f"{name}.pt")
        assert first <= codec.metadata["steps"] < 100000   # stopped by the time budget, not by the step count
    # a damaged piece is refused with one line
    pieces[0].write_bytes(pieces[0].read_bytes()[:-1] + b"x")
    bad = subprocess.run([sys.executable, str(REPO / "benchmarks" / "campaign.py"), "join", str(out), "--into",
                          str(tmp_path / "bad")], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "sha256" in bad.stderr


def test_a_run_past_its_budget_is_stopped_with_a_checkpoint(shared_data, tmp_path, monkeypatch):
    """A run that outlasts the campaign (here its own --time-budget overrides the campaign's) gets SIGTERM at
    budget + GRACE_S / 2, ends its step with a checkpoint and exits 0, well before SIGKILL at budget + GRACE_S."""
    from hific.train import campaign

    monkeypatch.setattr(campaign, "GRACE_S", 60)
    data = shared_data / "bsds500" / "val"
    common = ["--device", "cpu", "--threads", "1", "--crop", "64", "--batch-size", "2", "--data", str(data),
              "--steps", "100000"]
    run = campaign.CampaignRun("ms-lo", ("--time-budget", "3600"))
    codes = campaign.train_all([run], common, tmp_path, budget_s=10)
    log = (tmp_path / "ms-lo.log").read_text()
    assert codes == {"ms-lo": 0}, log[-2000:]
    step = int(log.split("SIGTERM received: stopped at step ")[1].split(",")[0])
    assert read_training_checkpoint(tmp_path / "ms-lo" / "last.pt")["step"] == step
