"""The benchmark harness on real images, real codecs and the real command (subprocess)."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hific.bench import codecs, datasets
from hific.bench.codecs import LearnedFamily
from hific.bench.command import main
from hific.bench.datasets import BenchImage
from hific.bench.metrics import psnr
from hific.bench.rate_matching import bpp_of, search_quality
from hific.bench.runner import IMAGES_COLUMNS, PER_IMAGE_COLUMNS, SUMMARY_COLUMNS
from hific.errors import InputError
from hific.image_io import read_image

REPO = Path(__file__).resolve().parents[1]
RUN = [sys.executable, str(REPO / "benchmarks" / "run.py")]


@pytest.fixture(scope="module")
def crop(kodak) -> np.ndarray:
    return read_image(kodak / "kodim05.png")[100:228, 200:392]


@pytest.fixture(scope="module")
def crops_dir(kodak, tmp_path_factory) -> Path:
    """Two 256x256 Kodak crops (one patch each)."""
    folder = tmp_path_factory.mktemp("crops")
    for name in ("kodim07", "kodim23"):
        Image.fromarray(read_image(kodak / f"{name}.png")[:256, 64:320]).save(folder / f"{name}.png")
    return folder


def run_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """The real command in a subprocess."""
    return subprocess.run([*RUN, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    """The same command in this process (saves the start-up and model loading of a subprocess)."""
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


@pytest.mark.parametrize("name,setting,worse_setting", [("jpeg", "q60", "q10"), ("webp", "q60", "q10"),
                                                       ("avif", "q60", "q10"), ("bpg-x265", "qp30", "qp45")])
def test_every_classical_codec_round_trips(crop, name, setting, worse_setting):
    family = codecs.get(name)
    codec, worse = family.at(setting), family.at(worse_setting)
    data = codec.compress(crop)
    recon = codec.decompress(data)
    assert recon.shape == crop.shape and recon.dtype == np.uint8
    assert psnr(crop, recon) > 28
    assert family.version(setting) == codec.fingerprint
    worse_data = worse.compress(crop)
    assert len(worse_data) < len(data)
    assert psnr(crop, worse.decompress(worse_data)) < psnr(crop, recon)


@pytest.mark.skipif(not os.environ.get("PATH") or not __import__("shutil").which("bpgenc"),
                    reason="bpgenc is not installed (Debian has no package); bpg-x265 stands in")
def test_real_bpg_round_trips(crop):
    family = codecs.get("bpg")
    assert family.name == "bpg"
    codec = family.at("qp30")
    recon = codec.decompress(codec.compress(crop))
    assert recon.shape == crop.shape and psnr(crop, recon) > 28


def test_bpg_without_bpgenc_is_the_labelled_stand_in(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda _name: None)
    messages = []
    codec = codecs.get("bpg", warn=messages.append)
    assert codec.name == "bpg-x265" and "stand-in" in messages[0]


def test_bad_settings_are_refused():
    with pytest.raises(InputError, match="not qpN"):
        codecs.get("bpg-x265").check_setting("q30")
    with pytest.raises(InputError, match="1..95"):
        codecs.get("jpeg").check_setting("q200")
    with pytest.raises(InputError, match="unknown codec"):
        codecs.get("flif")


def test_learned_codec_round_trips(crop, random_small_checkpoint):
    import hific

    family = LearnedFamily("hific")
    setting = str(random_small_checkpoint)
    codec = family.at(setting)
    recon = codec.decompress(codec.compress(crop))
    assert recon.shape == crop.shape and recon.dtype == np.uint8
    assert family.label(setting) == "random-small"
    assert family.version(setting) == hific.load(setting).fingerprint


def bpp_at(codec, image: np.ndarray, quality: int) -> float:
    return bpp_of(len(codec.at(codec.setting(quality)).compress(image)), image.shape[1], image.shape[0])


def test_match_bpp_search_lands_closest(crop):
    """JPEG: the search finds what trying every quality finds."""
    codec = codecs.get("jpeg")
    every = {q: bpp_at(codec, crop, q) for q in range(1, 96)}
    found = search_quality(codec, 1.5, BenchImage("crop", crop))
    assert abs(every[found] - 1.5) == pytest.approx(min(abs(b - 1.5) for b in every.values()))


def test_match_bpp_search_for_bpg_beats_the_neighbouring_qps(crop):
    codec = codecs.get("bpg-x265")
    found = search_quality(codec, 0.8, BenchImage("crop", crop))
    errors = {q: abs(bpp_at(codec, crop, q) - 0.8) for q in (found - 1, found, found + 1)}
    assert errors[found] == min(errors.values())


def test_datasets(shared_data, tmp_path):
    embedded = datasets.load(None)
    assert [i.name for i in embedded] == list(datasets.EMBEDDED) and all(i.rgb.ndim == 3 for i in embedded)
    kodak = datasets.load("kodak", str(shared_data))
    assert len(kodak) == 24 and kodak[0].name == "kodim01"
    published = {line.split()[1]: line.split()[0]
                 for line in (shared_data / "kodak" / "PIXEL_SHA256.txt").read_text().splitlines()}
    assert all(image.sha256 == published[f"{image.name}.png"] for image in kodak)
    with pytest.raises(InputError, match="no readable images"):
        datasets.load(str(tmp_path))
    with pytest.raises(InputError, match="not a directory nor a set"):
        datasets.load("clic2099", str(shared_data))


def cache_snapshot(out: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in (out / "cache").rglob("*") if p.is_file()}


@pytest.mark.slow
def test_full_command_writes_the_contract_and_resumes(crops_dir, random_small_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--codecs", "jpeg,bpg,hific", "--dataset", str(crops_dir), "--settings", "jpeg=q30",
            "--settings", f"hific={random_small_checkpoint}", "--match-bpp", "1.0",
            "--metrics", "psnr,msssim,lpips,fid,kid", "--out", str(out), "--workers", "2"]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr[-2000:]
    per_image = pd.read_csv(out / "per_image.csv")
    summary = pd.read_csv(out / "summary.csv")
    images = pd.read_csv(out / "images.csv")
    assert list(per_image.columns) == PER_IMAGE_COLUMNS
    assert list(summary.columns) == SUMMARY_COLUMNS and list(images.columns) == IMAGES_COLUMNS
    methods = set(zip(summary.codec, summary.setting))
    assert methods == {("jpeg", "q30"), ("jpeg", "bpp1.000"), ("bpg-x265", "bpp1.000"), ("hific", "random-small")}
    assert len(per_image) == 4 * 2 and (summary.n_images == 2).all()
    assert (summary.n_patches == 2).all() and summary.fid.notna().all() and summary.kid.notna().all()
    assert np.allclose(per_image.bpp, per_image.bytes * 8 / (per_image.width * per_image.height))
    for row in per_image.itertuples():
        original = read_image(out / "originals" / f"{row.image}.png")
        recon = read_image(out / "recon" / row.codec / row.setting / f"{row.image}.png")
        assert row.psnr == pytest.approx(psnr(original, recon), abs=1e-6)
        assert 0 < row.ms_ssim <= 1 and row.lpips >= 0
    for row in images.itertuples():
        assert hashlib.sha256(read_image(out / "originals" / f"{row.image}.png").tobytes()).hexdigest() == row.sha256
    matched = per_image[per_image.setting == "bpp1.000"]
    assert (abs(matched.bpp - 1.0) < 0.25).all()
    assert "bpg-x265" in first.stdout and "random-small" in first.stdout

    before = cache_snapshot(out)
    code, _, err = run_main(capsys, *args[:-2], "--workers", "1")
    assert code == 0, err[-2000:]
    assert cache_snapshot(out) == before  # nothing was recomputed
    pd.testing.assert_frame_equal(pd.read_csv(out / "per_image.csv"), per_image)


def wait_for_entries(out: Path, count: int, proc: subprocess.Popen, limit: float = 240) -> None:
    deadline = time.time() + limit
    while len(list((out / "cache").rglob("*.json"))) < count:
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline, "the run made no progress"
        time.sleep(0.2)


@pytest.mark.slow
def test_killed_run_leaves_valid_files_and_continues(kodak, tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    for name in ("kodim01", "kodim02", "kodim03", "kodim04"):
        (data / f"{name}.png").symlink_to(kodak / f"{name}.png")
    args = ["--codecs", "bpg-x265", "--settings", "qp30,qp38", "--dataset", str(data), "--metrics", "psnr",
            "--out", str(out), "--workers", "1"]
    proc = subprocess.Popen([*RUN, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_entries(out, 3, proc)
    proc.send_signal(signal.SIGTERM)  # a polite stop writes the finished rows
    assert proc.wait(timeout=120) == 130
    partial = pd.read_csv(out / "per_image.csv")
    assert list(partial.columns) == PER_IMAGE_COLUMNS and 0 < len(partial) < 8

    proc = subprocess.Popen([*RUN, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_entries(out, len(partial) + 3, proc)
    proc.kill()  # no chance to clean up
    proc.wait()
    for path in (out / "cache").rglob("*.json"):
        assert read_image(path.with_suffix(".png")).shape[2] == 3  # committed entries are complete
    assert list(pd.read_csv(out / "per_image.csv").columns) == PER_IMAGE_COLUMNS

    code, _, err = run_main(capsys, *args)
    assert code == 0, err[-2000:]
    done = pd.read_csv(out / "per_image.csv")
    assert len(done) == 8 and done.psnr.notna().all()


@pytest.mark.parametrize("args,message", [
    (["--codecs", "jpeg,flif"], "unknown codec 'flif'"),
    (["--codecs", "jpeg", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_input_through_the_real_command(args, message, tmp_path):
    out = tmp_path / "out"
    result = run_cli(*args, "--out", str(out))
    assert result.returncode == 2
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.stderr
    assert not out.exists()


@pytest.mark.parametrize("args,message", [
    (["--codecs", "jpeg", "--metrics", "psnr,niqe"], "unknown metric 'niqe'"),
    (["--codecs", "jpeg", "--settings", "q500"], "not qN with N in 1..95"),
    (["--codecs", "jpeg", "--match-bpp", "fast"], "--match-bpp 'fast'"),
    (["--codecs", "hific", "--settings", "hific=/nonexistent/model.pt"], "/nonexistent/model.pt"),
    (["--codecs", "jpeg", "--dataset", "/nonexistent-dir"], "not a directory nor a set"),
    (["--codecs", "jpeg", "--settings", "bpg=qp30"], "codec 'bpg' is not among --codecs"),
])
def test_bad_input_is_one_line_and_nothing_written(args, message, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run_main(capsys, *args, "--out", str(out))
    assert code == 2
    lines = error_lines(err)
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], err
    assert not out.exists()


def test_bad_images_are_reported_and_the_rest_runs(kodak, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    Image.fromarray(read_image(kodak / "kodim03.png")[:300, :300]).save(data / "good.png")
    Image.fromarray(read_image(kodak / "kodim03.png")[:100, :120]).save(data / "tiny.png")
    out = tmp_path / "out"
    code, _, err = run_main(capsys, "--codecs", "jpeg", "--settings", "q50", "--dataset", str(data),
                            "--metrics", "psnr,msssim,fid", "--out", str(out), "--workers", "1")
    assert code == 1
    assert "broken.png: not an image file" in err
    assert "tiny: msssim not computed" in err and "too small for MS-SSIM" in err
    assert "fid not computed" in err and "256x256 patches" in err
    per_image = pd.read_csv(out / "per_image.csv")
    assert sorted(per_image.image) == ["good", "tiny"] and per_image.psnr.notna().all()
    assert per_image.set_index("image").ms_ssim.isna().tolist() == [False, True]
    summary = pd.read_csv(out / "summary.csv")
    assert summary.n_patches.tolist() == [1] and summary.fid.isna().all()


def test_bpg_standin_comparison_interpolates_at_the_published_bpps():
    from hific.bench import bpg_standin

    same = pd.DataFrame({"qp": range(5), "bpp": bpg_standin.BPG098_BPP, "psnr": bpg_standin.BPG098_PSNR + 0.5})
    table = bpg_standin.compare(same)
    assert np.allclose(table.delta_db, 0.5)
    narrow = bpg_standin.compare(same.iloc[1:4])
    assert narrow.delta_db.isna().tolist() == [True, False, False, False, True]
