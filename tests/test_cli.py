"""The `hific` command: round trips, every bad input named in one line, no partial output."""
from __future__ import annotations

import struct
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hific import zoo
from hific.cli import main
from hific.image_io import read_image
from hific.model import HiFiC


def run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def hfc(random_small_checkpoint: Path, kodak: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid .hfc file of a Kodak crop."""
    d = tmp_path_factory.mktemp("hfc")
    crop = d / "crop.png"
    Image.fromarray(read_image(kodak / "kodim19.png")[:96, :80]).save(crop)
    out = d / "crop.hfc"
    assert main(["compress", str(crop), str(out), "--model", str(random_small_checkpoint)]) == 0
    return out


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if not line.startswith("hific: warning:")]
    assert len(lines) == 1 and lines[0].startswith("hific: error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_compress_decompress_info(hfc: Path, random_small_checkpoint: Path, tmp_path: Path, capsys) -> None:
    rec = tmp_path / "rec.png"
    code, out, _ = run(["decompress", hfc, rec, "--model", random_small_checkpoint], capsys)
    assert code == 0 and "80x96" in out
    assert read_image(rec).shape == (96, 80, 3)
    code, out, _ = run(["info", hfc], capsys)
    assert code == 0 and "model random-small" in out and f"{hfc.stat().st_size} bytes" in out


def mutate(data: bytes, kind: str) -> bytes:
    if kind == "truncated":
        return data[: len(data) - 7]
    if kind == "corrupted":
        b = bytearray(data)
        b[-5] ^= 0x5A
        return bytes(b)
    if kind == "wrong-magic":
        return b"JFIF" + data[4:]
    if kind == "wrong-version":
        return data[:4] + struct.pack(">B", 99) + data[5:]
    if kind == "empty":
        return b""
    raise ValueError(kind)


@pytest.mark.parametrize("kind,message", [
    ("truncated", "truncated .hfc file"),
    ("corrupted", "corrupted .hfc file: checksum mismatch"),
    ("wrong-magic", "not a .hfc file (wrong magic number)"),
    ("wrong-version", "unsupported .hfc format version 99"),
    ("empty", "not a .hfc file: only 0 bytes"),
])
def test_bad_hfc_files(hfc: Path, random_small_checkpoint: Path, tmp_path: Path, capsys, kind: str, message: str) -> None:
    bad = tmp_path / f"{kind}.hfc"
    bad.write_bytes(mutate(hfc.read_bytes(), kind))
    rec = tmp_path / "rec.png"
    code, _, err = run(["decompress", bad, rec, "--model", random_small_checkpoint], capsys)
    assert code == 2
    assert message in one_error_line(err)
    assert not rec.exists() and not list(tmp_path.glob("*.tmp"))


def test_wrong_model(hfc: Path, tmp_path: Path, capsys) -> None:
    torch.manual_seed(7)
    other = zoo.save_checkpoint(HiFiC.from_config("small"), tmp_path / "other.pt", name="other-small")
    code, _, err = run(["decompress", hfc, tmp_path / "rec.png", "--model", other], capsys)
    assert code == 2 and "this file needs model 'random-small'" in one_error_line(err)


def test_unknown_model_named_in_file(hfc: Path, tmp_path: Path, capsys) -> None:
    code, _, err = run(["decompress", hfc, tmp_path / "rec.png"], capsys)
    assert code == 2 and "unknown model 'random-small'" in one_error_line(err)


@pytest.mark.parametrize("make,message", [
    (lambda d: d / "missing.png", "no such file"),
    (lambda d: d, "is a directory"),
    (lambda d: (d / "notes.txt").write_text("hello") and d / "notes.txt", "not an image file"),
    (lambda d: (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40) and d / "broken.png", "broken.png"),
    (lambda d: (d / "dangling.png").symlink_to(d / "nowhere.png") or d / "dangling.png", "no such file"),
])
def test_bad_input_images(random_small_checkpoint: Path, tmp_path: Path, capsys, make, message: str) -> None:
    src = make(tmp_path)
    out = tmp_path / "out.hfc"
    code, _, err = run(["compress", src, out, "--model", random_small_checkpoint], capsys)
    assert code == 2 and message in one_error_line(err)
    assert not out.exists()


def test_missing_checkpoint(kodak: Path, tmp_path: Path, capsys) -> None:
    code, _, err = run(["compress", kodak / "kodim01.png", tmp_path / "o.hfc", "--model", tmp_path / "nope.pt"], capsys)
    assert code == 2 and "no such checkpoint" in one_error_line(err)


def image_variants(rgb: np.ndarray, d: Path) -> dict[str, tuple[Path, np.ndarray]]:
    """Real image files of many modes made from a Kodak crop, with the RGB each must read as."""
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    out: dict[str, tuple[Path, np.ndarray]] = {}
    Image.fromarray(gray).save(d / "gray.png")
    out["gray"] = (d / "gray.png", np.repeat(gray[..., None], 3, 2))
    alpha = np.full(rgb.shape[:2], 128, np.uint8)
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(d / "rgba.png")
    out["rgba"] = (d / "rgba.png", rgb)
    pal = Image.fromarray(rgb).quantize(64)
    pal.save(d / "palette.png")
    out["palette"] = (d / "palette.png", np.asarray(pal.convert("RGB")))
    Image.fromarray(gray.astype(np.uint16) * 257).save(d / "gray16.png")
    out["gray16"] = (d / "gray16.png", np.repeat(gray[..., None], 3, 2))
    Image.fromarray(rgb).convert("CMYK").save(d / "cmyk.jpg", quality=95)
    with Image.open(d / "cmyk.jpg") as im:
        assert im.mode == "CMYK"
        out["cmyk"] = (d / "cmyk.jpg", np.asarray(im.convert("RGB")))
    return out


def test_every_image_mode_compresses(random_small_checkpoint: Path, kodak: Path, tmp_path: Path, capsys) -> None:
    rgb = np.ascontiguousarray(read_image(kodak / "kodim15.png")[:40, :70])
    for name, (path, expected) in image_variants(rgb, tmp_path).items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            np.testing.assert_array_equal(read_image(path), expected)
        assert any("alpha channel" in str(w.message) for w in caught) == (name == "rgba")
        out, rec = tmp_path / f"{name}.hfc", tmp_path / f"{name}.rec.png"
        code, _, err = run(["compress", path, out, "--model", random_small_checkpoint], capsys)
        assert code == 0, err
        assert run(["decompress", out, rec, "--model", random_small_checkpoint], capsys)[0] == 0
        assert read_image(rec).shape == (40, 70, 3)


def test_16bit_rgb_png_reads_as_8bit(tmp_path: Path, kodak: Path) -> None:
    """A 48-bit PNG (written by hand: Pillow cannot write one) reads as its high bytes."""
    import zlib

    rgb = read_image(kodak / "kodim03.png")[:8, :12]
    rgb16 = rgb.astype(">u2") * 257
    raw = b"".join(b"\0" + row.tobytes() for row in rgb16)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))  # noqa: E731
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 12, 8, 16, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    (tmp_path / "rgb48.png").write_bytes(png)
    np.testing.assert_array_equal(read_image(tmp_path / "rgb48.png"), rgb)


def test_real_process_exit_code_and_one_line(hfc: Path, random_small_checkpoint: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.hfc"
    bad.write_bytes(hfc.read_bytes()[:30])
    proc = subprocess.run([sys.executable, "-m", "hific.cli", "decompress", str(bad), str(tmp_path / "r.png"),
                           "--model", str(random_small_checkpoint)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["hific: error: truncated .hfc file: header incomplete"]


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares width x height (8-bit RGB) and whose pixel data is missing: any decoding
    would fail, so refusing it by size proves the size is checked from the header."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        import zlib

        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("width, height, message", [
    (8000, 6000, "8000x6000 pixels (48.0 MP) exceeds the limit of 40 MP"),   # the model's limit
    (20000, 20000, "image too large"),                                        # Pillow's decompression-bomb guard
])
def test_a_huge_image_is_refused_from_its_header(random_small_checkpoint: Path, tmp_path: Path, capsys,
                                                 width: int, height: int, message: str) -> None:
    """A PNG declaring tens or hundreds of megapixels (a few bytes on disk) is refused before decoding."""
    src = png_header_only(tmp_path / "huge.png", width, height)
    out = tmp_path / "out.hfc"
    code, _, err = run(["compress", src, out, "--model", random_small_checkpoint], capsys)
    assert code == 2 and message in one_error_line(err) and not out.exists()


def test_outputs_honour_the_umask(hfc: Path, random_small_checkpoint: Path, tmp_path: Path, capsys) -> None:
    """Files are created as any tool creates them (0666 & ~umask), not with mkstemp's 0600."""
    import os

    old = os.umask(0o022)
    try:
        rec = tmp_path / "rec.png"
        assert run(["decompress", hfc, rec, "--model", random_small_checkpoint], capsys)[0] == 0
        again = tmp_path / "again.hfc"
        assert run(["compress", rec, again, "--model", random_small_checkpoint], capsys)[0] == 0
        os.umask(0o077)
        private = tmp_path / "private.png"
        assert run(["decompress", hfc, private, "--model", random_small_checkpoint], capsys)[0] == 0
    finally:
        os.umask(old)
    assert [oct(p.stat().st_mode & 0o777) for p in (rec, again, private)] == ["0o644", "0o644", "0o600"]


def test_compress_without_a_model_uses_the_default(kodak: Path, tmp_path: Path, capsys) -> None:
    from hific.config import DEFAULT_MODEL

    crop = tmp_path / "crop.png"
    Image.fromarray(read_image(kodak / "kodim19.png")[:64, :64]).save(crop)
    code, out, _ = run(["compress", crop, tmp_path / "c.hfc"], capsys)
    assert code == 0 and f"model {DEFAULT_MODEL}" in out
    code, out, _ = run(["info", tmp_path / "c.hfc"], capsys)
    assert f"model {DEFAULT_MODEL}" in out
