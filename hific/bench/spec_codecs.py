"""Command-line codecs described by a TOML spec (``--codec-spec my.toml``; the shipped ones in ``specs/``).

A spec names the encoder and decoder commands as argument lists with placeholders: ``{input}`` and
``{output}`` (temporary files: a PNG in and the bitstream out for the encoder, the bitstream in and a PNG out
for the decoder), ``{width}`` and ``{height}`` (the image's), and an element ``"{args}"`` that stands for the
setting's own arguments. Settings are named argument lists (``[settings]``) and/or one numeric knob
(``[quality]``: settings ``<prefix><N>``), which ``--match-bpp`` searches like a built-in codec's quality.
bpp comes from the size of the encoder's output file. See the README for an example (bpgenc).
"""
from __future__ import annotations

import functools
import hashlib
import importlib.resources
import shutil
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from hific.bench.codecs import SAFE_SETTING, CodecFamily, CodecUnavailableError, QualityFamily, run_tool, tool_version
from hific.errors import InputError
from hific.image_io import read_image

ARGS = "{args}"
PLACEHOLDERS = {"input": "", "output": "", "width": 0, "height": 0}


@dataclass(frozen=True)
class Knob:
    """The ``[quality]`` table: settings ``<prefix><N>`` for N in ``range``, passed on as ``args``."""

    prefix: str
    range: tuple[int, int]
    higher_is_better: bool
    args: tuple[str, ...]


@dataclass(frozen=True)
class Spec:
    """A validated codec spec."""

    path: Path
    name: str
    encode: tuple[str, ...]
    decode: tuple[str, ...]
    version: tuple[str, ...]
    suffix: str
    install: str
    defaults: tuple[str, ...]
    settings: dict[str, tuple[str, ...]]
    quality: Knob | None

    @property
    def digest(self) -> str:
        """The spec file's content hash (part of the result cache key)."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()[:8]


def shipped() -> dict[str, Path]:
    """The specs that ship with the package (``hific/bench/specs/*.toml``), by codec name (the file stem)."""
    folder = importlib.resources.files("hific.bench") / "specs"
    return {Path(f.name).stem: Path(str(f)) for f in sorted(folder.iterdir(), key=lambda f: f.name)
            if f.name.endswith(".toml")}


def _words(table: dict, key: str, path: Path, required: bool = True) -> tuple[str, ...]:
    """A list-of-strings field; InputError naming the file when it has another type."""
    value = table.get(key)
    if value is None and not required:
        return ()
    if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
        raise InputError(f"{path}: {key!r} must be a non-empty list of strings")
    return tuple(value)


def _check_template(words: tuple[str, ...], key: str, path: Path, needs: tuple[str, ...]) -> None:
    """Every placeholder is known and the ones in ``needs`` occur."""
    for word in words:
        if word == ARGS:
            continue
        try:
            word.format_map(PLACEHOLDERS)
        except (KeyError, ValueError, IndexError) as e:
            raise InputError(f"{path}: {key}: bad placeholder in {word!r} ({e}); use {{input}}, {{output}}, "
                             f"{{width}}, {{height}} or an element \"{{args}}\"") from None
    missing = [n for n in needs if not any(f"{{{n}}}" in w for w in words)]
    if missing:
        raise InputError(f"{path}: {key} has no {{{missing[0]}}} placeholder")


def _knob(table: object, path: Path) -> Knob | None:
    """The ``[quality]`` table, validated."""
    if table is None:
        return None
    rng = table.get("range") if isinstance(table, dict) else None
    if not (isinstance(rng, list) and len(rng) == 2 and all(type(v) is int for v in rng) and rng[0] < rng[1]):
        raise InputError(f"{path}: [quality] needs range = [LOW, HIGH] (integers, LOW < HIGH)")
    prefix = table.get("prefix", "q")
    if not (isinstance(prefix, str) and prefix.isascii() and prefix.isalpha()):
        raise InputError(f"{path}: [quality] prefix must be letters, e.g. \"q\"")
    args = _words(table, "args", path)
    try:
        [word.format(quality=0) for word in args]
    except (KeyError, ValueError, IndexError) as e:
        raise InputError(f"{path}: [quality] args: bad placeholder ({e}); use {{quality}}") from None
    if not any("{quality}" in w for w in args):
        raise InputError(f"{path}: [quality] args has no {{quality}} placeholder")
    return Knob(prefix, (rng[0], rng[1]), bool(table.get("higher_is_better", True)), args)


def read_spec(path: Path) -> Spec:
    """Parse and validate a spec file; InputError naming the file and the problem."""
    try:
        table = tomllib.loads(path.read_text())
    except OSError as e:
        raise InputError(f"{path}: cannot read the codec spec ({e.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not valid TOML ({e})") from None
    name = table.get("name", path.stem)
    if not (isinstance(name, str) and name and not SAFE_SETTING.search(name)):
        raise InputError(f"{path}: name must be letters, digits, '.', '_' or '-'")
    encode, decode = _words(table, "encode", path), _words(table, "decode", path)
    _check_template(encode, "encode", path, ("input", "output"))
    _check_template(decode, "decode", path, ("input", "output"))
    raw_settings = table.get("settings", {})
    if not isinstance(raw_settings, dict):
        raise InputError(f"{path}: [settings] must be a table of NAME = [arguments]")
    settings = {}
    for label in raw_settings:
        if SAFE_SETTING.search(label):
            raise InputError(f"{path}: setting name {label!r} must be letters, digits, '.', '_' or '-'")
        settings[label] = _words(raw_settings, label, path)
    suffix = table.get("suffix", ".bin")
    if not (isinstance(suffix, str) and suffix.startswith(".") and not SAFE_SETTING.search(suffix)):
        raise InputError(f"{path}: suffix must look like \".jxl\"")
    spec = Spec(path, name, encode, decode, _words(table, "version", path, required=False), suffix,
                str(table.get("install", "")), _words(table, "defaults", path), settings,
                _knob(table.get("quality"), path))
    if spec.quality is None and not settings:
        raise InputError(f"{path}: give [settings] or [quality]")
    return spec


def _program(spec: Spec, word: str) -> str:
    """The executable: a name on PATH, or a path (relative ones are relative to the spec's folder)."""
    path = shutil.which(word) if "/" not in word else shutil.which(str(spec.path.parent / word))
    if path is None:
        hint = f" (install: {spec.install})" if spec.install else ""
        raise CodecUnavailableError(f"codec {spec.name!r}: {word} is not on PATH{hint}")
    return path


@dataclass(frozen=True)
class SpecCodec:
    """A :class:`Spec`'s codec at one setting: its commands run on files in a temporary directory."""

    name: str
    fingerprint: str
    spec: Spec
    encoder: str
    decoder: str
    arguments: tuple[str, ...]  # the words that replace ``{args}``

    def _run(self, template: tuple[str, ...], program: str, values: dict) -> None:
        command = [program]
        for word in template[1:]:
            command += list(self.arguments) if word == ARGS else [word.format_map(values)]
        run_tool(command, self.spec.name)
        if not Path(values["output"]).is_file():
            raise InputError(f"{self.spec.name}: {Path(program).name} wrote no {Path(values['output']).name}")

    def compress(self, rgb: np.ndarray) -> bytes:
        with tempfile.TemporaryDirectory(prefix="hific-spec-") as tmp:
            src, out = Path(tmp) / "original.png", Path(tmp) / f"bitstream{self.spec.suffix}"
            Image.fromarray(rgb, "RGB").save(src, compress_level=1)
            values = {"input": str(src), "output": str(out), "width": rgb.shape[1], "height": rgb.shape[0]}
            self._run(self.spec.encode, self.encoder, values)
            return out.read_bytes()

    def decompress(self, data: bytes) -> np.ndarray:
        with tempfile.TemporaryDirectory(prefix="hific-spec-") as tmp:
            src, out = Path(tmp) / f"bitstream{self.spec.suffix}", Path(tmp) / "decoded.png"
            src.write_bytes(data)
            self._run(self.spec.decode, self.decoder, {**PLACEHOLDERS, "input": str(src), "output": str(out)})
            return read_image(out)


class SpecFamily(CodecFamily):
    """The codec of a :class:`Spec` over its named settings."""

    def __init__(self, spec: Spec) -> None:
        self.spec, self.name = spec, spec.name
        self.encoder, self.decoder = _program(spec, spec.encode[0]), _program(spec, spec.decode[0])
        for setting in spec.defaults:
            self.check_setting(setting)

    @functools.cached_property
    def _version(self) -> str:
        if not self.spec.version:
            return f"spec-{self.spec.digest}"
        version = tool_version([_program(self.spec, self.spec.version[0]), *self.spec.version[1:]])
        return f"spec-{self.spec.digest}-{version[:80].strip('_')}"

    def default_settings(self) -> list[str]:
        return list(self.spec.defaults)

    def arguments(self, setting: str) -> list[str]:
        """The words that replace ``{args}`` for ``setting``; InputError for an unknown setting."""
        if setting not in self.spec.settings:
            raise InputError(f"{self.name}: unknown setting {setting!r}; the spec {self.spec.path} has "
                             f"{', '.join(self.spec.settings)}")
        return list(self.spec.settings[setting])

    def at(self, setting: str) -> SpecCodec:
        arguments = tuple(self.arguments(setting))
        return SpecCodec(f"{self.name}-{setting}", self._version, self.spec, self.encoder, self.decoder, arguments)


class QualitySpecFamily(SpecFamily, QualityFamily):
    """A spec codec with a ``[quality]`` knob: settings ``<prefix><N>`` besides the named ones."""

    def __init__(self, spec: Spec) -> None:
        knob = spec.quality
        self.prefix, self.quality_range, self.higher_is_better = knob.prefix, knob.range, knob.higher_is_better
        super().__init__(spec)

    def arguments(self, setting: str) -> list[str]:
        if setting in self.spec.settings:
            return list(self.spec.settings[setting])
        try:
            quality = self.quality(setting)
        except InputError as e:
            named = f" nor one of {', '.join(self.spec.settings)}" if self.spec.settings else ""
            raise InputError(f"{e}{named}") from None
        return [word.format(quality=quality) for word in self.spec.quality.args]


def load(path: Path) -> SpecFamily:
    """The codec family a spec file describes; CodecUnavailableError when one of its tools is missing."""
    spec = read_spec(Path(path))
    return QualitySpecFamily(spec) if spec.quality else SpecFamily(spec)
