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
from hific.config import SMALL_PRESET_MODEL, TrainConfig, model_config, train_config
from hific.errors import TrainingError
from hific.train import rate_control
from hific.train.checkpoints import export, read_training_checkpoint
from hific.train.data import CropPlan, ResidentImages, StepSampler, StreamedCrops, cut_crop, list_images
from hific.train.model_card import render
from hific.train.trainer import Trainer

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
    ds = StreamedCrops(list_images([train_dir]), 64, (0.75, 0.95), seed=0)
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


def record_inputs(module: torch.nn.Module, log: list) -> None:
    """Append the positional inputs of every forward call of ``module`` to ``log``."""
    module.register_forward_pre_hook(lambda m, args: log.append([a.detach().clone() for a in args]))


@pytest.mark.parametrize("disc_batch", ["own", "reuse"])
def test_d_is_conditioned_on_y_hat_and_each_network_sees_its_batch(disc_batch, train_dir, lpips_net, tmp_path):
    """Official code: D sees stop_gradient(latent_quantized) = round(y - mu) + mu; G trains on the whole batch;
    D's update comes first, on its own batch (``own``) or on the G step's images (``reuse``)."""
    t = make(dataclasses.replace(tiny("hific-lo"), batch_size=4, disc_batch=disc_batch), train_dir, lpips_net,
             tmp_path)
    batch = next(t.batches())
    assert batch.shape[0] == (8 if disc_batch == "own" else 4)
    d_inputs, g_inputs = [], []
    record_inputs(t.disc, d_inputs)
    record_inputs(t.model.generator, g_inputs)
    t.train_step(batch)
    x_g = batch[:4]
    x_d = batch[4:] if disc_batch == "own" else x_g
    # D's update first: real images of its batch and reconstructions, in one pass
    (d_images, d_latents), (g_images, g_latents) = d_inputs
    torch.testing.assert_close(d_images[:4], x_d)
    assert d_images.shape[0] == 8 and g_images.shape[0] == 4       # D's step, then G's GAN term
    # G's forward sees the whole batch (then, with "own", D's batch without gradients)
    assert [g[0].shape[0] for g in g_inputs] == [4] * (2 if disc_batch == "own" else 1)
    # the latent D is conditioned on is the quantised latent G decoded
    torch.testing.assert_close(g_latents, g_inputs[0][0])
    torch.testing.assert_close(d_latents[:4], g_inputs[-1][0])
    assert not torch.allclose(g_latents, t.model.encoder(x_g).detach(), atol=1e-3)  # not the continuous y


def test_total_loss_is_the_weighted_sum_of_the_paper_terms(train_dir, lpips_net, batch, tmp_path):
    """L_EGP = lambda' r(y) + k_M MSE(0-255) + k_P LPIPS + beta * -log D(x', y_hat), recomputed by hand."""
    t = make(tiny("hific-lo"), train_dir, lpips_net, tmp_path)
    t.model.train()
    out = t.forward(batch)
    terms = t.generator_terms(batch, out)
    cfg, n_pix = t.cfg, batch.shape[0] * batch.shape[2] * batch.shape[3]
    rate = sum(-torch.log(lik).sum() for lik in out["likelihoods"].values()) / np.log(2) / n_pix
    bpp_q = sum(-torch.log(lik).sum() for lik in out["likelihoods_q"].values()) / np.log(2) / n_pix
    lam = cfg.lambda_a if bpp_q > rate_control.rate_target(cfg, t.step) else cfg.lambda_b
    lam *= cfg.warmup_rate_factor if t.step < cfg.warmup_steps else 1.0
    mse = ((out["x_hat"] * 255 - batch * 255) ** 2).mean()
    lp = lpips_net(out["x_hat"] * 2 - 1, batch * 2 - 1).mean()
    gan = torch.nn.functional.softplus(-t.disc(out["x_hat"], out["y_hat"])).mean()
    want = lam * rate + 0.075 * 2 ** -5 * mse + 1.0 * lp + 0.15 * gan
    torch.testing.assert_close(terms["loss"], want, rtol=1e-5, atol=1e-6)
    assert float(terms["rate_weight"]) == lam


def test_freezing_e_and_p_trains_g_alone(train_dir, lpips_net, tmp_path):
    """MS-ILLM's stage 2 (``freeze_analysis``): a step leaves E and P exactly as they were, moves G and D."""
    cfg = tiny("hific-lo-illm")
    assert cfg.freeze_analysis and cfg.betas == (0.5, 0.9) and cfg.d_lr == 4e-4
    t = make(cfg, train_dir, lpips_net, tmp_path)
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    d_before = {k: v.clone() for k, v in t.disc.state_dict().items()}
    assert t.aux_opt is None and {id(p) for g in t.opt.param_groups for p in g["params"]} == {
        id(p) for p in t.model.generator.parameters()}
    log = t.train_step(next(t.batches()))
    assert not log["skipped"]
    after = t.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("generator."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("generator."))
    assert any(not torch.equal(d_before[k], v) for k, v in t.disc.state_dict().items())


def test_time_budget_stops_with_a_checkpoint_that_exports_and_resumes(train_dir, lpips_net, tmp_path):
    from hific.zoo import load_checkpoint

    cfg = tiny("hific-lo", steps=50)
    t = make(cfg, train_dir, lpips_net, tmp_path, val_files=list_images([train_dir])[:1])
    assert t.resident()   # the decoded set is small: it stays on the device
    t.fit(time_budget=1e-3)
    assert t.step == 1 and (t.run_dir / "last.pt").exists()
    _, _, meta = load_checkpoint(export(t.run_dir / "last.pt", tmp_path / "budget.pt"))
    assert meta["steps"] == 1
    again = make(cfg, train_dir, lpips_net, tmp_path)
    again.resume(t.run_dir / "last.pt")
    again.fit(time_budget=1e-3)
    assert again.step == 2
    val = pd.read_csv(t.run_dir / "val.csv")
    assert list(val.columns) == ["step", "wall_s", "bpp", "psnr", "lpips"]


@pytest.mark.parametrize("minutes, saves", [(60.0, [3]), (0.0, [1, 2, 3])])
def test_checkpoints_follow_the_step_cadence_and_the_clock(minutes, saves, train_dir, lpips_net, tmp_path,
                                                           monkeypatch):
    cfg = dataclasses.replace(tiny("hific-lo", steps=3), ckpt_minutes=minutes)
    assert cfg.ckpt_every == TrainConfig.ckpt_every   # not scaled down with a short run
    t = make(cfg, train_dir, lpips_net, tmp_path)
    saved: list[int] = []
    real_save = Trainer.save
    monkeypatch.setattr(Trainer, "save", lambda self, path=None: (saved.append(self.step), real_save(self, path))[1])
    t.fit()
    assert saved == saves and read_training_checkpoint(t.run_dir / "last.pt")["step"] == 3


def test_stop_requests_catch_the_first_signal_and_hand_the_second_back():
    import os
    import signal

    from hific.train.trainer import stop_requests

    before = signal.getsignal(signal.SIGTERM)
    with stop_requests() as requests:
        assert signal.getsignal(signal.SIGTERM) is not before
        os.kill(os.getpid(), signal.SIGTERM)
        assert requests == ["SIGTERM"]
        assert signal.getsignal(signal.SIGTERM) is before   # a second SIGTERM would stop the process as before
    assert signal.getsignal(signal.SIGTERM) is before
    ignored = signal.signal(signal.SIGINT, signal.SIG_IGN)   # as under `nohup ... &`: Ctrl-C is not for this job
    try:
        with stop_requests():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, ignored)


def test_sigterm_stops_the_command_with_a_validated_checkpoint(shared_data, tmp_path):
    """`kill PID` of a background run: the step in progress ends, is validated and checkpointed, exit status 0."""
    import signal
    import subprocess
    import sys
    import time

    run, val = tmp_path / "ms-lo", shared_data / "bsds500" / "val"
    cmd = [sys.executable, "-m", "hific.cli", "train", "--config", "ms-lo", "--data", str(val), "--run-dir", str(run),
           "--crop", "64", "--batch-size", "2", "--threads", "1", "--val", str(val), "--val-count", "1",
           "--val-every", "1", "--steps", "100000", "--device", "cpu"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while not (run / "val.csv").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-2000:]
    step = int(out.split("SIGTERM received: stopped at step ")[1].split(",")[0])
    assert 1 <= step < 100000
    assert read_training_checkpoint(run / "last.pt")["step"] == step
    assert pd.read_csv(run / "val.csv")["step"].iloc[-1] == step


def test_seconds_per_step_times_the_steps_after_a_warm_up(train_dir, lpips_net, tmp_path):
    """The API benchmarks/train_speed.py is a thin CLI over: every remaining step trained, the first untimed."""
    t = make(tiny("nogan-lo", steps=3), train_dir, lpips_net, tmp_path)
    assert t.seconds_per_step() > 0 and t.step == 3
    assert not (t.run_dir / "last.pt").exists()   # nothing saved
    with pytest.raises(TrainingError, match="no step left to time"):
        make(tiny("nogan-lo", steps=1), train_dir, lpips_net, tmp_path).seconds_per_step()


def test_overfitting_one_batch_lowers_the_loss(train_dir, lpips_net, batch, tmp_path):
    t = make(dataclasses.replace(tiny("nogan-lo", steps=15), lr=1e-3, warmup_steps=0), train_dir, lpips_net, tmp_path)
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
    batches = torch.utils.data.DataLoader(StreamedCrops(list_images([train_dir]), 128, (0.75, 0.95), seed=1),
                                          batch_size=4)
    logs = [t.train_step(b) for b, _ in zip(batches, range(6))]
    assert not any(log["skipped"] for log in logs)
    assert max(log["loss"] for log in logs) < 3.0 and min(log["psnr"] for log in logs) > 15


def test_warm_start_of_an_export_keeps_the_run_it_grew_from(train_dir, lpips_net, tmp_path):
    import hific

    # the shipped hific-hi is a fresh stage-2 schedule (--init) of the previous hific-hi at step 22,960
    meta = hific.load("hific-hi").metadata
    cfg = dataclasses.replace(train_config("hific-hi"), target_bpp=meta["train_config"]["target_bpp"])  # r_t 0.415
    t = make(cfg.scaled(2 * meta["steps"]), train_dir, lpips_net, tmp_path, warm_start="hific-hi")
    assert t.init_info == meta["init"] and t.init_info["config"] == "hific-hi" and t.init_info["steps"] == 22960
    # the preset trains SMALL_PRESET_MODEL from scratch; continuing the shipped export keeps its `small` networks
    assert train_config("hific-hi").model == SMALL_PRESET_MODEL != "small"
    assert t.cfg.model == meta["train_config"]["model"] == "small"
    assert t.model.config == model_config("small") and t.model.config.generator_padding == "reflect"


def test_trainer_switches_lambda_on_the_real_bpp_estimate(train_dir, lpips_net, batch, tmp_path):
    for target, want in ((1e-3, "lambda_a"), (1e3, "lambda_b")):
        cfg = tiny("nogan-hi", target_bpp=target, warmup_steps=0)
        terms = make(cfg, train_dir, lpips_net, tmp_path).generator_terms(batch)
        assert float(terms["rate_weight"]) == getattr(cfg, want)


def test_resume_continues_exactly(train_dir, lpips_net, tmp_path):
    cfg = tiny("hific-lo", steps=4)
    a = make(cfg, train_dir, lpips_net, tmp_path)
    logs_a = []
    for i, b in enumerate(a.batches()):
        if i == 2:
            a.save(tmp_path / "at2.pt")
        logs_a.append(a.train_step(b))
    b_ = make(cfg, train_dir, lpips_net, tmp_path / "b")
    b_.resume(tmp_path / "at2.pt")
    logs_b = [b_.train_step(x) for x in b_.batches()]
    assert b_.step == a.step == 4
    assert [log["loss"] for log in logs_b] == [log["loss"] for log in logs_a[2:]]
    for (k, va), vb in zip(a.model.state_dict().items(), b_.model.state_dict().values()):
        assert torch.equal(va, vb), k
    for va, vb in zip(a.disc.state_dict().values(), b_.disc.state_dict().values()):
        assert torch.equal(va, vb)


def test_stage_two_starts_from_the_stage_one_weights_and_records_it(train_dir, lpips_net, tmp_path):
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


def test_stage_two_can_start_from_an_export_of_another_rate(train_dir, lpips_net, tmp_path):
    """hific-mi from the shipped hific-hi: its E, G, P weights; rate control then moves the rate to r_t 0.30."""
    import hific

    shipped = hific.load("hific-hi")
    t = make(tiny("hific-mi"), train_dir, lpips_net, tmp_path, init="hific-hi")
    for (k, va), vb in zip(shipped.model.state_dict().items(), t.model.state_dict().values()):
        if va.is_floating_point() and va.dim() > 1:
            assert torch.equal(va.float(), vb), k
    assert t.step == 0 and t.init_info["config"] == "hific-hi" and t.init_info["steps"] == shipped.metadata["steps"]
    with pytest.raises(TrainingError, match="cannot initialise"):
        make(tiny("hific-mi"), train_dir, lpips_net, tmp_path, init="ms-lo")


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
    small = torch.from_numpy((rng.random((3, 40, 30)) * 255).astype(np.uint8))
    plan = CropPlan([(40, 30)], 64, (0.75, 0.95), seed=1)
    assert plan(0).size == 30 and cut_crop(small, plan(0), 64).shape == (3, 64, 64)  # short side scaled up
    big = torch.from_numpy((rng.random((3, 300, 200)) * 255).astype(np.uint8))
    plan = CropPlan([(300, 200)], 128, (0.75, 0.95), seed=5)
    assert all(128 / 0.95 - 1 <= plan(k).size <= 128 / 0.75 + 1 for k in range(20))
    a = cut_crop(big, plan(3), 128)
    assert a.shape == (3, 128, 128) and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, cut_crop(big, CropPlan([(300, 200)], 128, (0.75, 0.95), seed=5)(3), 128))
    assert list(StepSampler(3, 5, 2, rank=1, world=2)) == [14, 15, 18, 19]


def test_resident_and_streamed_crops_are_the_same_samples(train_dir):
    """The decoded set kept on the device and per-sample decoding give identical batches."""
    files = list_images([train_dir])[:5]
    resident = ResidentImages(files, 64, (0.75, 0.95), 3, torch.device("cpu"))
    streamed = StreamedCrops(files, 64, (0.75, 0.95), 3)
    ks = [0, 4, 5, 11, 23]
    torch.testing.assert_close(resident.batch(ks), torch.stack([streamed[k] for k in ks]), rtol=0, atol=0)
    assert ResidentImages.nbytes(files) == sum(im.numel() for im in resident.images)


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
    assert rc == 2 and "a checkpoint of 'ms-lo', which 'ms-hi' cannot continue" in err
    img = np.asarray(__import__("PIL.Image").Image.open(shared_data / "kodak" / "kodim23.png"))[:64, :64]
    enc = codec.encode(img)
    assert codec.decompress(enc.data).shape == (64, 64, 3)
    summary = pd.DataFrame([{"setting": "ms-lo", "n_images": 1, "bpp": enc.bpp, "psnr": 20.0, "ms_ssim": 0.5,
                             "lpips": 0.4}])
    card = render(summary, {"ms-lo": out2}, "the command")
    assert "| ms-lo | M&S (CompressAI MeanScaleHyperprior), MSE, lambda 0.0018 | 5 |" in card
    assert "| ms-lo | 0-3 | 2 x 64 |" in card and "| ms-lo | 3-5 | 2 x 64 |" in card
    assert f"| ms-lo | 1 | {enc.bpp:.3f} | 20.00 | 0.5000 | 0.4000 |" in card
    # each run's validation curve travels with the export into the card
    assert "Validation during training" in card
    assert "| ms-lo | ms-lo | 3 |" in card and "| ms-lo | ms-lo | 5 |" in card


@pytest.mark.parametrize("args, message", [
    (["--config", "nogan-lo", "--data", "/nonexistent"], "not a folder of training images"),
    (["--config", "hific-lo", "--data", "."], "stage 2 starts from a stage-1 run"),
    (["--config", "nogan-lo", "--data", ".", "--crop", "100"], "multiple of 64"),
    (["--config", "nogan-lo", "--data", ".", "--resume"], "no such training checkpoint"),
    (["--config", "nogan-lo"], "give at least one folder"),
    (["--config", "ms-lo", "--data", ".", "--model", "small-wide"], "whose widths come from its preset"),
    (["--config", "ms-lo", "--data", ".", "--target-bpp", "0.3"], "for HiFiC and no-GAN presets (ms-lo is ms)"),
    (["--config", "nogan-lo", "--data", ".", "--target-bpp", "0"], "a positive rate target"),
])
def test_cli_bad_input_is_one_line(args, message, tmp_path, capsys):
    rc, err = hific_cli(capsys, "train", "--run-dir", str(tmp_path / "r"), *args)
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_cli_model_and_disc_batch_reach_the_run(shared_data, tmp_path, capsys):
    """``--model`` trains another model configuration from scratch (kept on --resume, which refuses another);
    ``--disc-batch`` picks D's batch."""
    run = tmp_path / "wide"
    common = ["train", "--config", "hific-lo", "--data", str(shared_data / "bsds500" / "val"), "--run-dir", str(run),
              "--crop", "64", "--batch-size", "2", "--threads", "1", "--device", "cpu"]
    stage1 = [{"hific-lo": "nogan-lo", str(run): str(tmp_path / "nogan-lo")}.get(a, a) for a in common]
    assert hific_cli(capsys, *stage1, "--model", "small-wide", "--steps", "1")[0] == 0
    init = ["--init", str(tmp_path / "nogan-lo" / "last.pt")]
    assert hific_cli(capsys, *common, *init, "--model", "small-wide", "--disc-batch", "reuse", "--steps", "1")[0] == 0
    blob = torch.load(run / "last.pt", weights_only=True)
    assert (blob["config"]["model"], blob["config"]["disc_batch"]) == ("small-wide", "reuse")
    blocks = {k.split(".")[2] for k in blob["model"] if k.startswith("generator.residual.")}
    assert blocks == {"0", "1", "2", "3", "4"}  # small-wide: five residual blocks
    rc, err = hific_cli(capsys, *common, "--model", "small", "--steps", "2", "--resume")
    assert rc == 2 and "a resumed run keeps its model" in err
    other = [str(tmp_path / "other") if a == str(run) else a for a in common]
    rc, err = hific_cli(capsys, *other, *init, "--model", "small", "--steps", "1")  # init: a small-wide run
    assert rc == 2 and "a run goes on with its starting point's model" in err and len(err.strip().splitlines()) == 1
    assert hific_cli(capsys, *common, "--steps", "2", "--resume")[0] == 0


def test_cli_init_starts_any_preset_from_an_export(shared_data, tmp_path, capsys):
    """``--init`` starts a stage-1 preset too (nogan-hi from the shipped nogan-lo: its model and weights, step
    0), ``--target-bpp`` moves its rate target, and a resumed run refuses ``--init`` rather than ignoring it."""
    run = tmp_path / "nogan-hi"
    common = ["train", "--config", "nogan-hi", "--data", str(shared_data / "bsds500" / "val"), "--run-dir", str(run),
              "--crop", "64", "--batch-size", "2", "--threads", "1", "--device", "cpu", "--steps", "1"]
    assert hific_cli(capsys, *common, "--init", "nogan-lo", "--target-bpp", "0.42")[0] == 0
    blob = torch.load(run / "last.pt", weights_only=True)
    assert blob["step"] == 1 and blob["init"]["config"] == "nogan-lo" and blob["config"]["model"] == "small"
    assert blob["config"]["target_bpp"] == 0.42 and train_config("nogan-hi").target_bpp == 0.45
    rc, err = hific_cli(capsys, *common, "--init", "nogan-lo", "--resume")
    assert rc == 2 and "--init starts a run" in err and len(err.strip().splitlines()) == 1


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


def test_learning_rates_scale_with_the_batch():
    from hific.train.cli import scale_lr

    cfg = train_config("hific-lo-illm")
    lin, sq = scale_lr(cfg, 4.0, "linear"), scale_lr(cfg, 4.0, "sqrt")
    assert (lin.lr, lin.d_lr, lin.aux_lr) == (4e-4, 1.6e-3, None)
    assert (sq.lr, sq.d_lr) == (2e-4, 8e-4)
    assert scale_lr(train_config("ms-lo"), 2.0, "linear").aux_lr == 2e-3
