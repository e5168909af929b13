"""The trainer on real data: gradients reach the right networks, the loss falls, lambda' switches at r_t,
resume is exact, NaN steps are skipped, and the CLI trains, resumes and exports real checkpoints."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hific.cli import main
from hific.config import TrainConfig, train_config
from hific.train import rate_control
from hific.train.data import CropDataset, StepSampler, list_images, random_crop
from hific.train.model_card import render
from hific.train.trainer import Trainer, TrainingError

def tiny(name: str, **kw) -> TrainConfig:
    """A preset shrunk for CPU tests: 64x64 crops, batch 2, a few steps."""
    return dataclasses.replace(train_config(name).scaled(kw.pop("steps", 4)), crop=64, batch_size=2, **kw)


@pytest.fixture(scope="module")
def train_dir(shared_data: Path) -> Path:
    return shared_data / "bsds500" / "val"


@pytest.fixture(scope="module")
def lpips_net():
    from hific.weights import lpips_network

    return lpips_network(net="alex")


@pytest.fixture(scope="module")
def batch(train_dir: Path) -> torch.Tensor:
    ds = CropDataset(list_images([train_dir]), 64, (0.75, 0.95), seed=0)
    return torch.stack([ds[0], ds[1]])


def make(cfg: TrainConfig, train_dir: Path, lpips_net, tmp_path: Path, **kw) -> Trainer:
    torch.manual_seed(0)
    return Trainer(cfg, [train_dir], tmp_path / "run", device="cpu", lpips_net=lpips_net, progress=False, **kw)


def grads_of(module: torch.nn.Module) -> bool:
    """True when some parameter of the module holds a non-zero gradient."""
    return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def test_each_loss_term_reaches_exactly_its_networks(train_dir, lpips_net, batch, tmp_path):
    t = make(tiny("hific-lo"), train_dir, lpips_net, tmp_path)
    m = t.model
    expected = {  # term -> (encoder, generator, hyper-analysis, scale branch of P)
        "rate": (True, False, True, True),
        "mse": (True, True, False, False),
        "lpips": (True, True, False, False),
        "g_gan": (True, True, False, False),
    }
    for term, want in expected.items():
        m.zero_grad(set_to_none=True)
        t.generator_terms(batch[:1])[term].backward()
        got = (grads_of(m.encoder), grads_of(m.generator), grads_of(m.prior.h_a), grads_of(m.prior.h_s_scales))
        assert got == want, term
    m.zero_grad(set_to_none=True)
    t.disc.zero_grad(set_to_none=True)
    t.discriminator_term(batch[1:]).backward()
    assert grads_of(t.disc)
    assert not any(p.grad is not None for p in m.parameters()), "D's loss must not move E, G or P"


def test_overfitting_one_batch_lowers_the_loss(train_dir, lpips_net, batch, tmp_path):
    t = make(dataclasses.replace(tiny("nogan-lo", steps=15), lr=3e-3, warmup_steps=0), train_dir, lpips_net, tmp_path)
    losses = [t.train_step(batch[:1])["loss"] for _ in range(15)]
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3])


def test_rate_weight_switches_at_the_target():
    cfg = train_config("hific-lo").scaled(1000)
    assert cfg.warmup_steps == 50 and cfg.lr_decay_step == 500
    after = cfg.warmup_steps
    assert rate_control.rate_weight(cfg, after, 0.15) == cfg.lambda_a == 2.0
    assert rate_control.rate_weight(cfg, after, 0.13) == cfg.lambda_b == 2.0 ** -6
    # warm-up: weights halved and the target raised to 0.20 bpp
    assert rate_control.rate_weight(cfg, 0, 0.15) == 0.5 * cfg.lambda_b
    assert rate_control.rate_weight(cfg, 0, 0.21) == 0.5 * cfg.lambda_a
    assert rate_control.learning_rate(cfg, 499) == 1e-4 and rate_control.learning_rate(cfg, 500) == pytest.approx(1e-5)
    # after a warm start at step 300 the learning rate ramps up over warm_start_ramp (200) steps
    assert rate_control.learning_rate(cfg, 300, warm_start=300) == pytest.approx(1e-4 / 200)
    assert rate_control.learning_rate(cfg, 399, warm_start=300) == pytest.approx(0.5e-4)
    assert rate_control.learning_rate(cfg, 499, warm_start=300) == 1e-4


def test_ms_gradients_are_clipped_like_compressai(train_dir, batch, tmp_path):
    """M&S clips the gradient norm at 1.0 (CompressAI's examples/train.py default); HiFiC does not."""
    assert train_config("ms-hi").clip_grad_norm == 1.0 and train_config("hific-lo").clip_grad_norm is None
    norms = {}
    for clip in (None, 1.0):
        t = make(dataclasses.replace(tiny("ms-hi"), clip_grad_norm=clip), train_dir, None, tmp_path)
        assert t._apply(t.generator_terms(batch)["loss"], t.opt)
        grads = [p.grad for g in t.opt.param_groups for p in g["params"] if p.grad is not None]
        norms[clip] = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
    assert norms[None] > 1.0 and norms[1.0] == pytest.approx(1.0, rel=1e-4)


def test_warm_start_of_the_shipped_ms_lo_keeps_training(train_dir, tmp_path):
    """Fresh Adam on trained weights: without the lr ramp, the first step at lr 1e-3 takes the shipped ms-lo's
    loss from 0.66 to inf (at 3e-4: inf by the fourth step). With it, training goes on from where the export
    stopped."""
    import hific

    start = hific.load("ms-lo").metadata["steps"]
    cfg = dataclasses.replace(train_config("ms-lo").scaled(4 * start), lr=1e-3, batch_size=4, crop=128)
    t = make(cfg, train_dir, None, tmp_path, warm_start="ms-lo")
    assert t.step == start and t.warm_started_at == start
    batches = torch.utils.data.DataLoader(CropDataset(list_images([train_dir]), 128, (0.75, 0.95), seed=1),
                                          batch_size=4)
    logs = [t.train_step(b) for b, _ in zip(batches, range(6))]
    assert not any(log["skipped"] for log in logs)
    assert max(log["loss"] for log in logs) < 3.0 and min(log["psnr"] for log in logs) > 15


def test_warm_start_of_a_stage_2_export_keeps_its_stage_1_origin(train_dir, lpips_net, tmp_path):
    import hific

    meta = hific.load("hific-lo").metadata
    t = make(train_config("hific-lo").scaled(2 * meta["steps"]), train_dir, lpips_net, tmp_path, warm_start="hific-lo")
    assert t.init_info == meta["init"] and t.init_info["config"] == "nogan-lo"


def test_trainer_switches_lambda_on_the_real_bpp_estimate(train_dir, lpips_net, batch, tmp_path):
    for target, want in ((1e-3, "lambda_a"), (1e3, "lambda_b")):
        cfg = tiny("nogan-hi", target_bpp=target, warmup_steps=0)
        terms = make(cfg, train_dir, lpips_net, tmp_path).generator_terms(batch)
        assert float(terms["rate_weight"]) == getattr(cfg, want)


def test_resume_continues_exactly(train_dir, lpips_net, tmp_path):
    cfg = tiny("hific-lo", steps=4)
    a = make(cfg, train_dir, lpips_net, tmp_path)
    logs_a = []
    for i, b in enumerate(a._loader()):
        if i == 2:
            a.save(tmp_path / "at2.pt")
        logs_a.append(a.train_step(b))
    b_ = make(cfg, train_dir, lpips_net, tmp_path / "b")
    b_.resume(tmp_path / "at2.pt")
    logs_b = [b_.train_step(x) for x in b_._loader()]
    assert b_.step == a.step == 4
    assert [log["loss"] for log in logs_b] == [log["loss"] for log in logs_a[2:]]
    for (k, va), vb in zip(a.model.state_dict().items(), b_.model.state_dict().values()):
        assert torch.equal(va, vb), k
    for va, vb in zip(a.disc.state_dict().values(), b_.disc.state_dict().values()):
        assert torch.equal(va, vb)


def test_stage_two_starts_from_the_stage_one_weights_and_records_it(train_dir, lpips_net, tmp_path):
    from hific.train.trainer import export
    from hific.zoo import load_checkpoint

    one = make(tiny("nogan-lo", steps=2), train_dir, lpips_net, tmp_path / "one")
    one.fit()
    two = make(tiny("hific-lo", steps=1), train_dir, lpips_net, tmp_path / "two", init=one.run_dir / "last.pt")
    for (k, va), vb in zip(one.model.state_dict().items(), two.model.state_dict().values()):
        assert torch.equal(va, vb), k
    assert two.step == 0
    two.fit()
    _, _, meta = load_checkpoint(export(two.run_dir / "last.pt", tmp_path / "hific-lo.pt"))
    assert meta["init"]["config"] == "nogan-lo" and meta["init"]["steps"] == 2 and meta["steps"] == 1


def test_nan_steps_are_skipped_then_the_run_stops(train_dir, lpips_net, batch, tmp_path):
    t = make(dataclasses.replace(tiny("nogan-lo"), max_bad_steps=2), train_dir, lpips_net, tmp_path)
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    bad = batch.clone()
    bad[0, 0, 0, 0] = float("nan")
    assert t.train_step(bad)["skipped"] == 1
    assert all(torch.equal(before[k], v) for k, v in t.model.state_dict().items())
    with pytest.raises(TrainingError, match="consecutive steps with NaN"):
        t.train_step(bad)


def test_crops_are_deterministic_and_small_images_are_handled():
    rng = np.random.default_rng(0)
    small = (rng.random((40, 30, 3)) * 255).astype(np.uint8)
    assert random_crop(small, 64, (0.75, 0.95), np.random.default_rng(1)).shape == (64, 64, 3)
    big = (rng.random((300, 200, 3)) * 255).astype(np.uint8)
    a = random_crop(big, 128, (0.75, 0.95), np.random.default_rng(5))
    assert np.array_equal(a, random_crop(big, 128, (0.75, 0.95), np.random.default_rng(5)))
    assert list(StepSampler(3, 5, 2, rank=1, world=2)) == [14, 15, 18, 19]


def hific_cli(capsys, *args: str) -> tuple[int, str]:
    """(exit status, stderr) of the ``hific`` command run in this process."""
    capsys.readouterr()
    rc = main(list(args))
    return rc, capsys.readouterr().err


def test_cli_trains_resumes_and_exports_a_loadable_model(shared_data, tmp_path, capsys):
    import hific

    run = tmp_path / "ms-lo"
    common = ["train", "--config", "ms-lo", "--data", str(shared_data / "bsds500" / "val"), "--run-dir", str(run),
              "--crop", "64", "--batch-size", "2", "--threads", "1", "--val", str(shared_data / "bsds500" / "val"),
              "--val-count", "1", "--device", "cpu"]
    assert hific_cli(capsys, *common, "--steps", "2")[0] == 0
    assert hific_cli(capsys, *common, "--steps", "3", "--resume")[0] == 0
    steps = [line.split(",")[0] for line in (run / "log.csv").read_text().splitlines()[1:]]
    assert steps == ["1", "2", "3"]
    assert len(list((run / "snapshots").glob("*.png"))) >= 1 and (run / "tb").is_dir()
    out = tmp_path / "ms-lo.pt"
    assert hific_cli(capsys, *common[:3], "--run-dir", str(run), "--export", str(out))[0] == 0
    codec = hific.load(out)
    assert codec.metadata["steps"] == 3
    # Run after run: a new run continues the exported weights, step count and schedule where they were.
    more, out2 = tmp_path / "more", tmp_path / "ms-lo-more.pt"
    again = [a if a != str(run) else str(more) for a in common]
    assert hific_cli(capsys, *again, "--steps", "5", "--warm-start", str(out))[0] == 0
    assert [line.split(",")[0] for line in (more / "log.csv").read_text().splitlines()[1:]] == ["4", "5"]
    assert hific_cli(capsys, *common[:3], "--run-dir", str(more), "--export", str(out2))[0] == 0
    meta = hific.load(out2).metadata
    assert meta["steps"] == 5 and [h["steps"] for h in meta["history"]] == [[0, 3], [3, 5]]
    assert meta["wall_s"] >= sum(h["wall_s"] for h in meta["history"]) - 0.2
    other = [{"ms-lo": "ms-hi", str(more): str(tmp_path / "other")}.get(a, a) for a in again]
    rc, err = hific_cli(capsys, *other, "--warm-start", str(out))
    assert rc == 2 and "a checkpoint of 'ms-lo', not of 'ms-hi'" in err
    img = np.asarray(__import__("PIL.Image").Image.open(shared_data / "kodak" / "kodim23.png"))[:64, :64]
    enc = codec.encode(img)
    assert codec.decompress(enc.data).shape == (64, 64, 3)
    summary = pd.DataFrame([{"setting": "ms-lo", "n_images": 1, "bpp": enc.bpp, "psnr": 20.0, "ms_ssim": 0.5,
                             "lpips": 0.4}])
    card = render(summary, {"ms-lo": out2}, "the command")
    assert "| ms-lo | M&S (CompressAI MeanScaleHyperprior), MSE, lambda 0.0018 | 5 |" in card
    assert "| ms-lo | 0-3 | 2 x 64 |" in card and "| ms-lo | 3-5 | 2 x 64 |" in card
    assert f"| ms-lo | 1 | {enc.bpp:.3f} | 20.00 | 0.5000 | 0.4000 |" in card


@pytest.mark.parametrize("args, message", [
    (["--config", "nogan-lo", "--data", "/nonexistent"], "not a folder of training images"),
    (["--config", "hific-lo", "--data", "."], "stage 2 starts from a stage-1 run"),
    (["--config", "nogan-lo", "--data", ".", "--crop", "100"], "multiple of 64"),
    (["--config", "nogan-lo", "--data", ".", "--resume"], "no such training checkpoint"),
    (["--config", "nogan-lo"], "give at least one folder"),
])
def test_cli_bad_input_is_one_line(args, message, tmp_path, capsys):
    rc, err = hific_cli(capsys, "train", "--run-dir", str(tmp_path / "r"), *args)
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_an_existing_run_is_not_overwritten(shared_data, tmp_path, capsys):
    run = tmp_path / "r"
    run.mkdir()
    shutil.copyfile(shared_data / "kodak" / "kodim01.png", run / "last.pt")
    rc, err = hific_cli(capsys, "train", "--config", "nogan-lo", "--data", ".", "--run-dir", str(run))
    assert rc == 2 and "pass --resume" in err
    rc, err = hific_cli(capsys, "train", "--config", "nogan-lo", "--data", ".", "--run-dir", str(run), "--resume")
    assert rc == 2 and "not a readable training checkpoint" in err


def test_torchrun_two_processes_train_together(shared_data, tmp_path):
    """DistributedDataParallel through torchrun (gloo on CPU): two ranks train, rank 0 logs and checkpoints."""
    import subprocess
    import sys

    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "hific.cli",
           "train", "--config", "nogan-lo", "--data", str(shared_data / "bsds500" / "val"), "--run-dir", str(run),
           "--steps", "2", "--batch-size", "2", "--crop", "64", "--device", "cpu", "--threads", "1"]
    r = subprocess.run(cmd, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 2
    assert [line.split(",")[0] for line in (run / "log.csv").read_text().splitlines()[1:]] == ["1", "2"]
