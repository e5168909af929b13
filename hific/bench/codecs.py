"""Codec families for the benchmark: each names a codec and its settings, and ``at(setting)`` is that codec at
one setting, an :class:`~hific.codec_interface.ImageCodec` — the interface :func:`hific.load` returns too
(``get("bpg").at("qp32").compress(rgb)``). The benchmark measures exactly that object's ``compress`` and
``decompress``; bpp is always taken from the bytes.

Classical codecs (JPEG, WebP, AVIF through Pillow; BPG through ``bpgenc``/``bpgdec`` or, when those are
missing, HEVC intra coding by x265 through libheif as the labelled stand-in ``bpg-x265``) and the learned
codecs of this package (``hific``, ``nogan``, ``ms``) and the published ones of :mod:`hific.published`
(``msillm``, ``noganms``, ``port``) via :func:`hific.load`. The registry (:func:`get`, :func:`names`) adds
the command-line codecs of the shipped TOML specs (:mod:`hific.bench.spec_codecs`) and the codecs that
installed packages register (:mod:`hific.bench.plugins`).
"""
from __future__ import annotations

import functools
import hashlib
import io
import re
import shutil
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from hific.bench.datasets import BenchImage
from hific.codec_interface import ImageCodec
from hific.errors import HificError, InputError

if TYPE_CHECKING:
    from hific.codec import Codec

SAFE_SETTING = re.compile(r"[^A-Za-z0-9._-]+")


class CodecUnavailableError(HificError):
    """A codec's binary or library is missing on this machine."""


@dataclass(frozen=True)
class Coded:
    """One image through a coder: the compressed size, the reconstruction and the timings (NaN when unknown)."""

    n_bytes: int
    recon: np.ndarray
    encode_s: float
    decode_s: float
    data: bytes | None = None  # the bitstream, when the coder has it


class Coder(ABC):
    """What the benchmark runs: anything that turns an original into a reconstruction and a compressed size,
    over settings — a :class:`CodecFamily`, or reconstructions made elsewhere
    (:class:`hific.bench.external.ReconDir`), which are results, not codecs. A *setting* is a filesystem-safe
    label, e.g. ``q75`` or ``qp32``."""

    name: str
    in_process = False  # learned codecs run in the main process, classical ones in the worker pool

    @abstractmethod
    def version(self, setting: str) -> str:
        """Identifies the implementation, weights or files behind ``setting``; part of the result cache key."""

    @abstractmethod
    def default_settings(self) -> list[str]:
        """The default quality sweep."""

    @abstractmethod
    def code(self, image: BenchImage, setting: str) -> Coded:
        """The compressed size and reconstruction of ``image`` at ``setting``."""

    def check_setting(self, setting: str) -> None:
        """Raise InputError for a setting this coder does not understand."""

    def label(self, setting: str) -> str:
        """The filesystem-safe label written to the outputs."""
        return setting


class CodecFamily(Coder):
    """A codec over its settings: what built-in codecs, TOML specs and ``hific.codecs`` plugins implement
    (:meth:`at` and :meth:`default_settings`)."""

    @abstractmethod
    def at(self, setting: str) -> ImageCodec:
        """The codec at ``setting``; InputError for a setting this family does not understand."""

    def check_setting(self, setting: str) -> None:
        codec = self.at(setting)
        if not isinstance(codec, ImageCodec):
            raise InputError(f"codec {self.name!r}: at({setting!r}) returned a {type(codec).__name__}, not an "
                             "ImageCodec (name, fingerprint, compress, decompress)")

    def version(self, setting: str) -> str:
        """The fingerprint of the codec at ``setting``."""
        return self.at(setting).fingerprint

    def code(self, image: BenchImage, setting: str) -> Coded:
        """Compress, then decompress the bytes, each timed, with the codec at ``setting``."""
        codec = self.at(setting)
        start = time.perf_counter()
        data = codec.compress(image.rgb)
        encode_s = time.perf_counter() - start
        start = time.perf_counter()
        recon = codec.decompress(data)
        return Coded(len(data), recon, encode_s, time.perf_counter() - start, data)


class QualityFamily(CodecFamily):
    """A classical codec driven by one integer quality knob, labelled ``<prefix><int>``."""

    prefix = "q"
    quality_range = (1, 100)
    higher_is_better = True  # a larger knob value gives more bytes
    defaults: tuple[int, ...] = ()

    def default_settings(self) -> list[str]:
        return [self.setting(q) for q in self.defaults]

    def setting(self, quality: int) -> str:
        return f"{self.prefix}{quality}"

    def quality(self, setting: str) -> int:
        """The knob value of a setting label; InputError when it does not parse or is out of range."""
        match = re.fullmatch(rf"{self.prefix}(\d+)", setting)
        lo, hi = self.quality_range
        if not match or not lo <= int(match.group(1)) <= hi:
            raise InputError(f"{self.name}: setting {setting!r} is not {self.prefix}N with N in {lo}..{hi}")
        return int(match.group(1))


@dataclass(frozen=True)
class PillowCodec:
    """JPEG, WebP or AVIF through Pillow at one quality (its default chroma subsampling, as users get it)."""

    name: str
    fingerprint: str
    fmt: str
    quality: int
    options: dict

    def compress(self, rgb: np.ndarray) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(rgb, "RGB").save(buf, format=self.fmt, quality=self.quality, **self.options)
        return buf.getvalue()

    def decompress(self, data: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


class PillowFamily(QualityFamily):
    """:class:`PillowCodec` over its quality knob."""

    def __init__(self, name: str, fmt: str, defaults: tuple[int, ...], quality_range: tuple[int, int],
                 options: dict | None = None) -> None:
        from PIL import features

        feature = {"JPEG": "jpg", "WEBP": "webp", "AVIF": "avif"}[fmt]
        if not features.check(feature):
            raise CodecUnavailableError(f"codec {name!r}: this Pillow build has no {fmt} support")
        self.name, self.fmt, self.defaults, self.quality_range = name, fmt, defaults, quality_range
        self.options = options or {}

    def at(self, setting: str) -> PillowCodec:
        import PIL

        return PillowCodec(f"{self.name}-{setting}", f"pillow-{PIL.__version__}-{_digest(self.options)}", self.fmt,
                           self.quality(setting), self.options)


def run_tool(args: list[str], who: str) -> None:
    """Run a codec's command line; InputError naming ``who`` and the tool, with its last words, when it fails."""
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        message = " ".join((result.stderr or result.stdout).split())[-200:]
        raise InputError(f"{who}: {Path(args[0]).name} failed (exit {result.returncode}): {message}")


def tool_version(args: list[str]) -> str:
    """The first line a tool prints for ``args`` (e.g. ``-h``, ``--version``), filesystem-safe; part of the
    result cache key."""
    result = subprocess.run(args, capture_output=True, text=True)
    lines = (result.stdout or result.stderr).strip().splitlines() or ["unknown"]
    return SAFE_SETTING.sub("_", lines[0].strip())


@dataclass(frozen=True)
class BpgCodec:
    """Fabrice Bellard's BPG 0.9.8 at one QP, as the HiFiC authors ran it: ``bpgenc -q QP -m 9 -f 444``."""

    name: str
    fingerprint: str
    encoder: str
    decoder: str
    qp: int

    def compress(self, rgb: np.ndarray) -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            src, out = Path(tmp) / "in.png", Path(tmp) / "out.bpg"
            Image.fromarray(rgb, "RGB").save(src)
            run_tool([self.encoder, "-q", str(self.qp), "-m", "9", "-f", "444", "-o", str(out), str(src)], self.name)
            return out.read_bytes()

    def decompress(self, data: bytes) -> np.ndarray:
        with tempfile.TemporaryDirectory() as tmp:
            src, out = Path(tmp) / "in.bpg", Path(tmp) / "out.png"
            src.write_bytes(data)
            run_tool([self.decoder, "-o", str(out), str(src)], self.name)
            with Image.open(out) as img:
                return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


class QpFamily(QualityFamily):
    """An HEVC-based codec over its quantiser: ``qpN``, N in 0..51, a larger N giving fewer bytes."""

    prefix = "qp"
    quality_range = (0, 51)
    higher_is_better = False
    defaults = (32, 36, 40, 44)  # ~0.7 to ~0.14 bpp on Kodak: HiFiC's range and twice it


class BpgFamily(QpFamily):
    """:class:`BpgCodec` over its QP, through ``bpgenc``/``bpgdec`` on PATH."""

    name = "bpg"

    def __init__(self) -> None:
        self.encoder, self.decoder = shutil.which("bpgenc"), shutil.which("bpgdec")
        if not (self.encoder and self.decoder):
            raise CodecUnavailableError("codec 'bpg': bpgenc/bpgdec are not on PATH (use 'bpg-x265', the stand-in)")

    @functools.cached_property
    def _version(self) -> str:
        return "bpgenc-" + tool_version([self.encoder, "-h"])

    def at(self, setting: str) -> BpgCodec:
        return BpgCodec(f"bpg-{setting}", self._version, self.encoder, self.decoder, self.quality(setting))


@dataclass(frozen=True)
class BpgX265Codec:
    """Stand-in for BPG when bpgenc is missing: HEVC intra coding by x265 through libheif at one fixed QP, 4:4:4.

    Mirrors bpgenc's x265 set-up as far as libheif exposes it: constant QP (``x265:qp``), 4:4:4 chroma,
    8 bits, BT.601 full-range YCbCr, preset placebo with the "ssim" tune. The files are HEIF: about 300
    bytes of container and parameter sets more than a .bpg file, all counted in the bpp.
    """

    name: str
    fingerprint: str
    qp: int
    enc_params: dict[str, str]

    def compress(self, rgb: np.ndarray) -> bytes:
        import pillow_heif

        params = {**self.enc_params, "x265:qp": str(self.qp)}
        heif = pillow_heif.from_bytes(mode="RGB", size=(rgb.shape[1], rgb.shape[0]), data=np.ascontiguousarray(rgb).tobytes())
        buf = io.BytesIO()
        heif.save(buf, quality=50, chroma=444, enc_params=params)  # quality is overridden by x265:qp
        return buf.getvalue()

    def decompress(self, data: bytes) -> np.ndarray:
        import pillow_heif

        heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
        return np.asarray(heif.to_pillow().convert("RGB"), dtype=np.uint8).copy()


class BpgX265Family(QpFamily):
    """:class:`BpgX265Codec` over its QP."""

    name = "bpg-x265"
    # bpgenc -m 9 runs x265 with preset "placebo" and tune "ssim"; libheif does not forward the tune, so its
    # effect (no psycho-visual RD, auto-variance AQ) is spelled out; it gains ~0.5 dB at equal bpp.
    ENC_PARAMS = {"preset": "placebo", "tune": "ssim", "x265:psy-rd": "0", "x265:psy-rdoq": "0",
                  "x265:aq-mode": "2"}

    def __init__(self, enc_params: dict[str, str] | None = None) -> None:
        import pillow_heif

        self.enc_params = dict(self.ENC_PARAMS if enc_params is None else enc_params)
        if "x265" not in pillow_heif.libheif_info().get("encoders", {}):
            raise CodecUnavailableError("codec 'bpg-x265': this pillow-heif build has no x265 encoder")

    def at(self, setting: str) -> BpgX265Codec:
        import pillow_heif

        info = pillow_heif.libheif_info()
        x265 = SAFE_SETTING.sub("_", info["encoders"]["x265"])
        fingerprint = f"libheif-{info['libheif']}-{x265}-{_digest(self.enc_params)}"
        return BpgX265Codec(f"bpg-x265-{setting}", fingerprint, self.quality(setting), self.enc_params)


class LearnedFamily(CodecFamily):
    """HiFiC, its "no GAN" ablation, M&S or a published model; a setting names a model or a checkpoint, and
    :meth:`at` is :func:`hific.load`'s codec for it.

    The output label is the loaded model's name made filesystem-safe; the cache key's version is its fingerprint.
    """

    in_process = True

    def __init__(self, name: str) -> None:
        self.name = name
        self._models: dict[str, Codec] = {}

    def at(self, setting: str) -> Codec:
        """The loaded codec for a model name or checkpoint path (loaded once)."""
        import hific

        if setting not in self._models:
            self._models[setting] = hific.load(setting)
        return self._models[setting]

    def label(self, setting: str) -> str:
        return SAFE_SETTING.sub("_", self.at(setting).name)

    def default_settings(self) -> list[str]:
        from hific import zoo

        names = [n for n in zoo.available() if n.split("-")[0] == self.name]
        if not names:
            raise CodecUnavailableError(f"codec {self.name!r}: no model available on this machine; "
                                        f"pass checkpoints with --settings {self.name}=PATH")
        return names


def _digest(obj: dict) -> str:
    return hashlib.sha256(repr(sorted(obj.items())).encode()).hexdigest()[:8]


FACTORIES = {
    "jpeg": lambda: PillowFamily("jpeg", "JPEG", (20, 40, 60, 80), (1, 95)),
    "webp": lambda: PillowFamily("webp", "WEBP", (20, 40, 60, 80), (0, 100), {"method": 6}),
    "avif": lambda: PillowFamily("avif", "AVIF", (20, 40, 60, 80), (0, 100)),
    "bpg-x265": BpgX265Family,
    "hific": lambda: LearnedFamily("hific"),
    "nogan": lambda: LearnedFamily("nogan"),
    "ms": lambda: LearnedFamily("ms"),
    "msillm": lambda: LearnedFamily("msillm"),
    "noganms": lambda: LearnedFamily("noganms"),
    "port": lambda: LearnedFamily("port"),
}
BUILT_IN = ("hific", "nogan", "ms", "msillm", "noganms", "port", "bpg", "bpg-x265", "jpeg", "webp", "avif")


def names() -> list[str]:
    """Every codec name :func:`get` knows: the built-in ones, the shipped specs', then the plugins'."""
    from hific.bench import plugins, spec_codecs

    return [*BUILT_IN, *spec_codecs.shipped(), *(n for n in plugins.discovered() if n not in BUILT_IN)]


def get(name: str, warn=print) -> CodecFamily:
    """The codec family called ``name``; ``bpg`` falls back to the labelled x265 stand-in when bpgenc is missing."""
    from hific.bench import plugins, spec_codecs

    if name == "bpg":
        try:
            return BpgFamily()
        except CodecUnavailableError:
            warn("bpgenc/bpgdec not found: using HEVC intra (x265 via libheif, 4:4:4) as the stand-in, "
                 "labelled 'bpg-x265' in every output")
            return BpgX265Family()
    if name in FACTORIES:
        return FACTORIES[name]()
    if name in spec_codecs.shipped():
        return spec_codecs.load(spec_codecs.shipped()[name])
    if name in plugins.discovered():
        return plugins.load(plugins.discovered()[name])
    raise InputError(f"unknown codec {name!r}; choose from {', '.join(names())}")
