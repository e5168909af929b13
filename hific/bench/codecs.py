"""Image codecs behind one interface: encode to bytes, decode to pixels; bpp is always taken from the bytes.

Classical codecs (JPEG, WebP, AVIF through Pillow; BPG through ``bpgenc``/``bpgdec`` or, when those are
missing, HEVC intra coding by x265 through libheif as the labelled stand-in ``bpg-x265``) and the learned
codecs of this package (``hific``, ``nogan``, ``ms``) and the published ones of :mod:`hific.published`
(``msillm``, ``noganms``, ``port``) via :func:`hific.load`.
"""
from __future__ import annotations

import functools
import hashlib
import io
import re
import shutil
import subprocess
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
from PIL import Image

from hific.errors import HificError, InputError

SAFE_SETTING = re.compile(r"[^A-Za-z0-9._-]+")


class CodecUnavailableError(HificError):
    """A codec's binary or library is missing on this machine."""


class Codec(ABC):
    """One codec. A *setting* is a filesystem-safe label, e.g. ``q75`` or ``qp32``."""

    name: str
    in_process = False  # learned codecs run in the main process, classical ones in the worker pool

    @abstractmethod
    def version(self, setting: str) -> str:
        """Identifies the implementation or weights behind ``setting``; part of the result cache key."""

    @abstractmethod
    def default_settings(self) -> list[str]:
        """The default quality sweep."""

    @abstractmethod
    def encode(self, rgb: np.ndarray, setting: str) -> bytes:
        """(H, W, 3) uint8 -> compressed bytes."""

    @abstractmethod
    def decode(self, data: bytes, setting: str) -> np.ndarray:
        """Compressed bytes -> (H, W, 3) uint8."""

    def check_setting(self, setting: str) -> None:
        """Raise InputError for a setting this codec does not understand."""

    def label(self, setting: str) -> str:
        """The filesystem-safe label written to the outputs."""
        return setting


class QualityCodec(Codec):
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

    def check_setting(self, setting: str) -> None:
        self.quality(setting)


class PillowCodec(QualityCodec):
    """JPEG, WebP or AVIF through Pillow (its default chroma subsampling, as users get it)."""

    def __init__(self, name: str, fmt: str, defaults: tuple[int, ...], quality_range: tuple[int, int],
                 options: dict | None = None) -> None:
        from PIL import features

        feature = {"JPEG": "jpg", "WEBP": "webp", "AVIF": "avif"}[fmt]
        if not features.check(feature):
            raise CodecUnavailableError(f"codec {name!r}: this Pillow build has no {fmt} support")
        self.name, self.fmt, self.defaults, self.quality_range = name, fmt, defaults, quality_range
        self.options = options or {}

    def version(self, setting: str) -> str:
        import PIL

        return f"pillow-{PIL.__version__}-{_digest(self.options)}"

    def encode(self, rgb: np.ndarray, setting: str) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(rgb, "RGB").save(buf, format=self.fmt, quality=self.quality(setting), **self.options)
        return buf.getvalue()

    def decode(self, data: bytes, setting: str) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


class BpgCodec(QualityCodec):
    """Fabrice Bellard's BPG 0.9.8 as the HiFiC authors ran it: ``bpgenc -q QP -m 9 -f 444``."""

    name = "bpg"
    prefix = "qp"
    quality_range = (0, 51)
    higher_is_better = False
    defaults = (32, 36, 40, 44)  # ~0.7 to ~0.14 bpp on Kodak: HiFiC's range and twice it

    def __init__(self) -> None:
        self.encoder, self.decoder = shutil.which("bpgenc"), shutil.which("bpgdec")
        if not (self.encoder and self.decoder):
            raise CodecUnavailableError("codec 'bpg': bpgenc/bpgdec are not on PATH (use 'bpg-x265', the stand-in)")

    @functools.cache
    def version(self, setting: str) -> str:
        result = subprocess.run([self.encoder, "-h"], capture_output=True, text=True)
        first = (result.stdout or result.stderr).splitlines()[0] if (result.stdout or result.stderr) else "unknown"
        return "bpgenc-" + SAFE_SETTING.sub("_", first.strip())

    def _run(self, args: list[str]) -> None:
        result = subprocess.run(args, capture_output=True, text=True)
        if result.returncode != 0:
            raise InputError(f"{Path(args[0]).name} failed: {(result.stderr or result.stdout).strip()[:200]}")

    def encode(self, rgb: np.ndarray, setting: str) -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            src, out = Path(tmp) / "in.png", Path(tmp) / "out.bpg"
            Image.fromarray(rgb, "RGB").save(src)
            self._run([self.encoder, "-q", str(self.quality(setting)), "-m", "9", "-f", "444", "-o", str(out), str(src)])
            return out.read_bytes()

    def decode(self, data: bytes, setting: str) -> np.ndarray:
        with tempfile.TemporaryDirectory() as tmp:
            src, out = Path(tmp) / "in.bpg", Path(tmp) / "out.png"
            src.write_bytes(data)
            self._run([self.decoder, "-o", str(out), str(src)])
            with Image.open(out) as img:
                return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


class BpgX265Codec(QualityCodec):
    """Stand-in for BPG when bpgenc is missing: HEVC intra coding by x265 through libheif, 4:4:4, fixed QP.

    Mirrors bpgenc's x265 set-up as far as libheif exposes it: constant QP (``x265:qp``), 4:4:4 chroma,
    8 bits, BT.601 full-range YCbCr, preset placebo with the "ssim" tune. The files are HEIF: about 300
    bytes of container and parameter sets more than a .bpg file, all counted in the bpp.
    """

    name = "bpg-x265"
    prefix = "qp"
    quality_range = (0, 51)
    higher_is_better = False
    defaults = (32, 36, 40, 44)  # ~0.7 to ~0.14 bpp on Kodak: HiFiC's range and twice it
    # bpgenc -m 9 runs x265 with preset "placebo" and tune "ssim"; libheif does not forward the tune, so its
    # effect (no psycho-visual RD, auto-variance AQ) is spelled out; it gains ~0.5 dB at equal bpp.
    ENC_PARAMS = {"preset": "placebo", "tune": "ssim", "x265:psy-rd": "0", "x265:psy-rdoq": "0",
                  "x265:aq-mode": "2"}

    def __init__(self, enc_params: dict[str, str] | None = None) -> None:
        import pillow_heif

        self.enc_params = dict(self.ENC_PARAMS if enc_params is None else enc_params)
        if "x265" not in pillow_heif.libheif_info().get("encoders", {}):
            raise CodecUnavailableError("codec 'bpg-x265': this pillow-heif build has no x265 encoder")

    def version(self, setting: str) -> str:
        import pillow_heif

        info = pillow_heif.libheif_info()
        return f"libheif-{info['libheif']}-{SAFE_SETTING.sub('_', info['encoders']['x265'])}-{_digest(self.enc_params)}"

    def encode(self, rgb: np.ndarray, setting: str) -> bytes:
        import pillow_heif

        params = {**self.enc_params, "x265:qp": str(self.quality(setting))}
        heif = pillow_heif.from_bytes(mode="RGB", size=(rgb.shape[1], rgb.shape[0]), data=np.ascontiguousarray(rgb).tobytes())
        buf = io.BytesIO()
        heif.save(buf, quality=50, chroma=444, enc_params=params)  # quality is overridden by x265:qp
        return buf.getvalue()

    def decode(self, data: bytes, setting: str) -> np.ndarray:
        import pillow_heif

        heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
        return np.asarray(heif.to_pillow().convert("RGB"), dtype=np.uint8).copy()


class LearnedCodec(Codec):
    """HiFiC, its "no GAN" ablation, M&S or a published model through :func:`hific.load`; a setting names a model
    or a checkpoint.

    The output label is the loaded model's name made filesystem-safe; the cache key's version is its fingerprint.
    """

    in_process = True

    def __init__(self, name: str) -> None:
        self.name = name
        self._models: dict[str, object] = {}

    def model(self, setting: str):
        """The loaded codec for a model name or checkpoint path (loaded once)."""
        import hific

        if setting not in self._models:
            self._models[setting] = hific.load(setting)
        return self._models[setting]

    def label(self, setting: str) -> str:
        return SAFE_SETTING.sub("_", self.model(setting).name)

    def version(self, setting: str) -> str:
        return self.model(setting).fingerprint

    def default_settings(self) -> list[str]:
        from hific import zoo

        names = [n for n in zoo.available() if n.split("-")[0] == self.name]
        if not names:
            raise CodecUnavailableError(f"codec {self.name!r}: no model available on this machine; "
                                        f"pass checkpoints with --settings {self.name}=PATH")
        return names

    def check_setting(self, setting: str) -> None:
        self.model(setting)

    def encode(self, rgb: np.ndarray, setting: str) -> bytes:
        return self.model(setting).compress(rgb)

    def decode(self, data: bytes, setting: str) -> np.ndarray:
        return self.model(setting).decompress(data)


def _digest(obj: dict) -> str:
    return hashlib.sha256(repr(sorted(obj.items())).encode()).hexdigest()[:8]


FACTORIES = {
    "jpeg": lambda: PillowCodec("jpeg", "JPEG", (20, 40, 60, 80), (1, 95)),
    "webp": lambda: PillowCodec("webp", "WEBP", (20, 40, 60, 80), (0, 100), {"method": 6}),
    "avif": lambda: PillowCodec("avif", "AVIF", (20, 40, 60, 80), (0, 100)),
    "bpg-x265": BpgX265Codec,
    "hific": lambda: LearnedCodec("hific"),
    "nogan": lambda: LearnedCodec("nogan"),
    "ms": lambda: LearnedCodec("ms"),
    "msillm": lambda: LearnedCodec("msillm"),
    "noganms": lambda: LearnedCodec("noganms"),
    "port": lambda: LearnedCodec("port"),
}
CODEC_NAMES = ("hific", "nogan", "ms", "msillm", "noganms", "port", "bpg", "bpg-x265", "jpeg", "webp", "avif")


def get(name: str, warn=print) -> Codec:
    """The codec called ``name``; ``bpg`` falls back to the labelled x265 stand-in when bpgenc is missing."""
    if name == "bpg":
        try:
            return BpgCodec()
        except CodecUnavailableError:
            warn("bpgenc/bpgdec not found: using HEVC intra (x265 via libheif, 4:4:4) as the stand-in, "
                 "labelled 'bpg-x265' in every output")
            return BpgX265Codec()
    if name not in FACTORIES:
        raise InputError(f"unknown codec {name!r}; choose from {', '.join(CODEC_NAMES)}")
    return FACTORIES[name]()
