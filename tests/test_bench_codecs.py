"""Bring-your-own-codec in the benchmark: reconstructions made elsewhere (--recon), command-line codecs from TOML
specs (the shipped cjxl/avifenc ones and --codec-spec), ``hific.codecs`` entry-point plugins, and rate matching
relative to another method (--match-bpp x2:CODEC:SETTING); on Kodak crops, real tools, the real command."""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hific.bench import codecs, spec_codecs
from hific.bench.command import main
from hific.bench.datasets import BenchImage
from hific.bench.metrics import psnr
from hific.codec_interface import ImageCodec
from hific.image_io import read_image

REPO = Path(__file__).resolve().parents[1]
STEMS = ("kodim03", "kodim19")
needs_jxl = pytest.mark.skipif(not (shutil.which("cjxl") and shutil.which("djxl")),
                               reason="cjxl/djxl are missing (make codec-tools installs Debian's libjxl-tools)")
needs_avif = pytest.mark.skipif(not (shutil.which("avifenc") and shutil.which("avifdec")),
                                reason="avifenc/avifdec are missing (make codec-tools installs Debian's libavif-bin)")


@pytest.fixture(scope="module")
def images(kodak, tmp_path_factory) -> Path:
    """Two 192x256 (width x height) Kodak crops."""
    folder = tmp_path_factory.mktemp("images")
    for stem in STEMS:
        with Image.open(kodak / f"{stem}.png") as img:
            img.convert("RGB").crop((300, 100, 492, 356)).save(folder / f"{stem}.png")
    return folder


@pytest.mark.parametrize("name", [*codecs.BUILT_IN, *spec_codecs.shipped()])
def test_every_built_in_family_at_a_setting_is_an_image_codec(kodak, name):
    """Each built-in family available here hands out an ImageCodec per setting, and the benchmark's ``code``
    runs exactly that codec: the same bytes and pixels as its own compress and decompress."""
    try:
        family = codecs.get(name, warn=lambda _message: None)
        setting = family.default_settings()[-1]
    except codecs.CodecUnavailableError as e:
        pytest.skip(str(e))
    crop = read_image(kodak / "kodim23.png")[100:196, 200:328]
    codec = family.at(setting)
    assert isinstance(codec, ImageCodec) and codec.fingerprint == family.version(setting)
    data = codec.compress(crop)
    recon = codec.decompress(data)
    assert recon.shape == crop.shape and recon.dtype == np.uint8 and psnr(crop, recon) > 20
    coded = family.code(BenchImage("kodim23", crop), setting)
    assert coded.data == data and coded.n_bytes == len(data) and np.array_equal(coded.recon, recon)


def bench(capsys, *args: str) -> tuple[int, list[str]]:
    """The benchmark command in this process: its exit code and non-empty stderr lines."""
    code = main(list(args))
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def jpeg_recon_dir(images: Path, folder: Path, layout: str, quality: int = 30) -> Path:
    """Pillow's JPEG at ``quality`` as reconstructions made elsewhere: the decoded PNGs plus bits.csv, or the
    .jpg files themselves as both the reconstructions and ``bitstreams/``."""
    folder.mkdir()
    rows = []
    for path in sorted(images.glob("*.png")):
        buf = io.BytesIO()
        Image.open(path).save(buf, format="JPEG", quality=quality)
        if layout == "csv":
            Image.open(buf).save(folder / f"{path.stem}.png")
            rows.append(f"{path.stem},{buf.tell()}")
        else:
            (folder / "bitstreams").mkdir(exist_ok=True)
            for target in (folder / f"{path.stem}.jpg", folder / "bitstreams" / f"{path.stem}.jpg"):
                target.write_bytes(buf.getvalue())
    if rows:
        (folder / "bits.csv").write_text("image,bytes\n" + "\n".join(rows) + "\n")
    return folder


@pytest.mark.parametrize("layout", ["csv", "bitstreams"])
def test_recon_dir_scores_exactly_like_the_builtin_codec(images, tmp_path, capsys, layout):
    recon = jpeg_recon_dir(images, tmp_path / "mine", layout)
    out = tmp_path / "out"
    code, err = bench(capsys, "--codecs", "jpeg", "--settings", "jpeg=q30", "--recon", f"mine:q30={recon}",
                      "--dataset", str(images), "--metrics", "psnr,msssim", "--out", str(out), "--workers", "1")
    assert code == 0, err
    per_image = pd.read_csv(out / "per_image.csv").set_index(["codec", "image"])
    columns = ["width", "height", "bytes", "bpp", "psnr", "ms_ssim"]
    pd.testing.assert_frame_equal(per_image.loc["mine", columns], per_image.loc["jpeg", columns])
    assert per_image.loc["mine"].encode_s.isna().all() and (per_image.loc["mine"].setting == "q30").all()
    summary = pd.read_csv(out / "summary.csv").set_index("codec")
    assert summary.loc["mine", "n_images"] == 2 and summary.loc["mine", "bpp"] == summary.loc["jpeg", "bpp"]
    for stem in STEMS:
        assert np.array_equal(read_image(out / "recon" / "mine" / "q30" / f"{stem}.png"),
                              read_image(out / "recon" / "jpeg" / "q30" / f"{stem}.png"))


def break_missing(folder: Path) -> str:
    (folder / "kodim19.png").unlink()
    return "no reconstruction of kodim19"


def break_size(folder: Path) -> str:
    Image.open(folder / "kodim19.png").crop((0, 0, 192, 250)).save(folder / "kodim19.png")
    return "kodim19.png: 192x250 pixels, the original kodim19 is 192x256"


def break_row(folder: Path) -> str:
    (folder / "bits.csv").write_text("image,bytes\nkodim03,1200\nkodim19,12kB\n")
    return "bits.csv line 3: bytes '12kB' is not a positive whole number"


def break_columns(folder: Path) -> str:
    (folder / "bits.csv").write_text("file,size\nkodim03,1200\n")
    return "bits.csv: needs the columns image,bytes"


def break_listing(folder: Path) -> str:
    (folder / "bits.csv").write_text("image,bytes\nkodim03,1200\n")
    return "bits.csv: no row for image 'kodim19'"


def break_sizes(folder: Path) -> str:
    (folder / "bits.csv").unlink()
    return "give the compressed sizes as either bits.csv or bitstreams/"


@pytest.mark.parametrize("damage", [break_missing, break_size, break_row, break_columns, break_listing, break_sizes])
def test_bad_recon_dir_is_one_line_naming_the_file_and_exit_2(images, tmp_path, capsys, damage):
    recon = jpeg_recon_dir(images, tmp_path / "mine", "csv")
    message = damage(recon)
    out = tmp_path / "out"
    code, err = bench(capsys, "--recon", f"mine:q30={recon}", "--dataset", str(images), "--metrics", "psnr",
                      "--out", str(out))
    assert code == 2 and len(err) == 1 and err[0].startswith("error:") and message in err[0], err
    assert str(recon) in err[0] and not out.exists()


def test_missing_bitstream_names_the_file(images, tmp_path, capsys):
    recon = jpeg_recon_dir(images, tmp_path / "mine", "bitstreams")
    (recon / "bitstreams" / "kodim03.jpg").unlink()
    code, err = bench(capsys, "--recon", f"mine:q30={recon}", "--dataset", str(images), "--out", str(tmp_path / "o"))
    assert code == 2 and len(err) == 1 and f"{recon / 'bitstreams'}: no bitstream of kodim03" in err[0], err


@needs_jxl
@needs_avif
def test_shipped_specs_run_cjxl_and_avifenc_end_to_end_and_match_bpp(images, tmp_path):
    assert {"jxl", "avifenc"} <= set(codecs.names())
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "run.py"), "--codecs", "jxl,avifenc",
                             "--settings", "jxl=q10,q40", "--settings", "avifenc=qp50,qp30", "--match-bpp", "0.6",
                             "--dataset", str(images), "--metrics", "psnr", "--out", str(out), "--workers", "2"],
                            capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    per_image = pd.read_csv(out / "per_image.csv")
    assert np.allclose(per_image.bpp, per_image.bytes * 8 / (192 * 256)) and per_image.encode_s.gt(0).all()
    rows = per_image.set_index(["codec", "setting", "image"])
    for codec, worse, better in (("jxl", "q10", "q40"), ("avifenc", "qp50", "qp30")):
        for stem in STEMS:
            assert rows.loc[(codec, worse, stem), "bytes"] < rows.loc[(codec, better, stem), "bytes"]
            assert 25 < rows.loc[(codec, worse, stem), "psnr"] < rows.loc[(codec, better, stem), "psnr"]
            recon = read_image(out / "recon" / codec / better / f"{stem}.png")
            assert recon.shape == (256, 192, 3)
            assert rows.loc[(codec, better, stem), "psnr"] == pytest.approx(psnr(read_image(images / f"{stem}.png"),
                                                                                 recon))
    matched = per_image[per_image.setting == "bpp0.600"]
    assert len(matched) == 4 and (abs(matched.bpp - 0.6) < 0.06).all(), matched


@needs_jxl
def test_user_spec_with_named_settings(images, tmp_path, capsys):
    spec = tmp_path / "jxl-modular.toml"
    spec.write_text(textwrap.dedent("""\
        name = "jxl-modular"
        encode = ["cjxl", "{input}", "{output}", "--modular=1", "--num_threads=0", "{args}"]
        decode = ["djxl", "{input}", "{output}", "--num_threads=1"]
        suffix = ".jxl"
        defaults = ["d1", "d4"]
        [settings]
        d1 = ["--distance=1"]
        d4 = ["--distance=4"]
        lossless = ["--distance=0"]
        """))
    out = tmp_path / "out"
    code, err = bench(capsys, "--codec-spec", str(spec), "--match-bpp", "0.5", "--dataset", str(images),
                      "--metrics", "psnr", "--out", str(out), "--workers", "1")
    assert code == 0, err
    summary = pd.read_csv(out / "summary.csv")
    assert summary.setting.tolist() == ["d1", "d4"] and (summary.codec == "jxl-modular").all()  # no knob to match
    assert summary.bpp[0] > summary.bpp[1] and summary.psnr[0] > summary.psnr[1]
    code, err = bench(capsys, "--codec-spec", str(spec), "--settings", "jxl-modular=lossless", "--dataset",
                      str(images), "--metrics", "psnr", "--out", str(out), "--workers", "1")
    assert code == 0 and pd.read_csv(out / "per_image.csv").psnr.eq(np.inf).all(), err


@pytest.mark.parametrize("text,message", [
    ('encode = ["no-such-encoder-7", "{input}", "{output}"]\ndecode = ["djxl", "{input}", "{output}"]\n'
     'defaults = ["a"]\n[settings]\na = ["-x"]\n', "'bad': no-such-encoder-7 is not on PATH"),
    ('encode = ["cjxl", "{input}"]\ndecode = ["djxl", "{input}", "{output}"]\n', "encode has no {output} placeholder"),
    ('encode = ["cjxl", "{input}", "{output}", "{speed}"]\ndecode = ["djxl", "{input}", "{output}"]\n',
     "bad placeholder in '{speed}'"),
    ('encode = ["cjxl", "{input}", "{output}"]\ndecode = ["djxl", "{input}", "{output}"]\ndefaults = ["q5"]\n'
     '[quality]\nrange = [100, 1]\nargs = ["-q", "{quality}"]\n', "[quality] needs range = [LOW, HIGH]"),
    ('encode = "cjxl {input} {output}"\n', "'encode' must be a non-empty list of strings"),
    ('encode = [\n', "not valid TOML"),
])
def test_bad_spec_is_one_line_naming_it_and_exit_2(tmp_path, capsys, text, message):
    spec = tmp_path / "bad.toml"
    spec.write_text(text)
    code, err = bench(capsys, "--codec-spec", str(spec), "--out", str(tmp_path / "out"))
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert "no-such-encoder" in message or str(spec) in err[0]


def test_missing_tool_of_a_shipped_spec_is_one_line_naming_it(images, tmp_path):
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "run.py"), "--codecs", "jpeg,jxl",
                             "--dataset", str(images), "--out", str(out)], capture_output=True, text=True,
                            env={**os.environ, "PATH": str(tmp_path)}, timeout=300)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and not out.exists()
    assert lines == ["error: codec 'jxl': cjxl is not on PATH (install: apt-get install libjxl-tools)"], lines


PLUGIN = '''\
"""A tiny codec plugin: drops the low bits of every sample, then deflates (zlib)."""
import zlib
from dataclasses import dataclass

import numpy as np

from hific.bench.codecs import CodecFamily


@dataclass(frozen=True)
class PosterizeCodec:
    bits: int
    fingerprint = "posterize-1"

    @property
    def name(self):
        return f"posterize-b{self.bits}"

    def compress(self, rgb):
        header = np.array(rgb.shape[:2], dtype=">u4").tobytes()
        return header + zlib.compress((rgb >> (8 - self.bits)).tobytes(), 9)

    def decompress(self, data):
        shift = 8 - self.bits
        height, width = np.frombuffer(data[:8], dtype=">u4")
        levels = np.frombuffer(zlib.decompress(data[8:]), dtype=np.uint8).reshape(height, width, 3)
        return (levels << shift) + (1 << shift >> 1)


class Posterize(CodecFamily):
    def default_settings(self):
        return ["b4", "b6"]

    def at(self, setting):
        return PosterizeCodec(int(setting[1:]))


class Hollow(CodecFamily):
    def default_settings(self):
        return ["b4"]

    def at(self, setting):
        return zlib


def not_a_codec():
    return None
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """The plugin package pip-installed (no deps, no build isolation) into a folder of its own."""
    root = tmp_path_factory.mktemp("plugin")
    (root / "src").mkdir()
    (root / "src" / "posterize_codec.py").write_text(PLUGIN)
    (root / "src" / "pyproject.toml").write_text(textwrap.dedent("""\
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "posterize-codec"
        version = "0.1"
        [tool.setuptools]
        py-modules = ["posterize_codec"]
        [project.entry-points."hific.codecs"]
        posterize = "posterize_codec:Posterize"
        hollow = "posterize_codec:Hollow"
        broken = "posterize_codec:not_a_codec"
        """))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(root / "site"), str(root / "src")], check=True, capture_output=True, timeout=300)
    return root / "site"


def test_plugin_is_discovered_through_its_entry_point(plugin_site, images, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(plugin_site)}
    out = tmp_path / "out"
    run = [sys.executable, str(REPO / "benchmarks" / "run.py"), "--dataset", str(images), "--metrics", "psnr"]
    result = subprocess.run([*run, "--codecs", "posterize", "--out", str(out), "--workers", "2"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    per_image = pd.read_csv(out / "per_image.csv")
    assert set(zip(per_image.codec, per_image.setting)) == {("posterize", "b4"), ("posterize", "b6")}
    by_setting = per_image.groupby("setting").mean(numeric_only=True)
    assert by_setting.bpp["b4"] < by_setting.bpp["b6"] < 24 and by_setting.psnr["b4"] < by_setting.psnr["b6"]
    assert 28 < by_setting.psnr["b4"] < 36  # 4 bits kept: quantisation step 16, mid-point reconstruction

    for name, message in (("broken", "codec plugin 'broken' (posterize_codec:not_a_codec) is not a subclass of "
                                      "hific.bench.codecs.CodecFamily"),
                          ("hollow", "codec 'hollow': at('b4') returned a module, not an ImageCodec")):
        broken = subprocess.run([*run, "--codecs", name, "--out", str(tmp_path / name)], capture_output=True,
                                text=True, env=env, timeout=300)
        lines = [line for line in broken.stderr.splitlines() if line.strip()]
        assert broken.returncode == 2 and len(lines) == 1 and message in lines[0], broken.stderr


def test_relative_match_lands_at_twice_the_reference_per_image(images, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = bench(capsys, "--codecs", "jpeg,bpg-x265", "--settings", "jpeg=q15", "--settings", "bpg-x265=qp40",
                      "--match-bpp", "x2:jpeg:q15", "--dataset", str(images), "--metrics", "psnr",
                      "--out", str(out), "--workers", "1")
    assert code == 0, err
    per_image = pd.read_csv(out / "per_image.csv").set_index(["codec", "setting", "image"]).bpp
    for stem in STEMS:
        target = 2 * per_image[("jpeg", "q15", stem)]
        assert per_image[("bpg-x265", "x2.00-q15", stem)] == pytest.approx(target, rel=0.08)
        assert per_image[("jpeg", "x2.00-q15", stem)] == pytest.approx(target, rel=0.03)
    assert (out / "recon" / "bpg-x265" / "x2.00-q15" / "kodim03.png").is_file()


@pytest.mark.parametrize("target,message", [
    ("x2:jpeg:q99", "no method jpeg:q99 in this run (have jpeg:q15)"),
    ("x2:jpeg", "expected a positive bpp or xFACTOR:CODEC:SETTING"),
    ("x0:jpeg:q15", "expected a positive bpp or xFACTOR:CODEC:SETTING"),
    ("2:jpeg:q15", "expected a positive bpp or xFACTOR:CODEC:SETTING"),
])
def test_bad_relative_target_is_one_line_and_exit_2(images, tmp_path, capsys, target, message):
    code, err = bench(capsys, "--codecs", "jpeg", "--settings", "jpeg=q15", "--match-bpp", target,
                      "--dataset", str(images), "--out", str(tmp_path / "out"))
    assert code == 2 and len(err) == 1 and message in err[0], err
