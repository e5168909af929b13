"""Codecs that installed packages register in the entry-point group ``hific.codecs``.

A package declares ``[project.entry-points."hific.codecs"] mycodec = "mypackage:MyCodec"``, where
``MyCodec`` subclasses :class:`hific.bench.codecs.CodecFamily` (``default_settings`` and ``at(setting)``,
which returns an :class:`hific.codec_interface.ImageCodec`: ``name``, ``fingerprint``, ``compress``,
``decompress``) and takes no constructor arguments; the entry point's name is the codec's name in
``--codecs`` and in every output. Built-in names cannot be taken.
"""
from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from hific.bench.codecs import CodecFamily, CodecUnavailableError
from hific.errors import InputError

GROUP = "hific.codecs"


def discovered() -> dict[str, EntryPoint]:
    """The registered entry points by name (importlib.metadata; nothing is imported yet)."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def load(ep: EntryPoint) -> CodecFamily:
    """An instance of the codec family class behind ``ep``; one-line InputError when the plugin is broken
    (an ``at`` that returns no :class:`~hific.codec_interface.ImageCodec` is caught by its ``check_setting``)."""
    where = f"codec plugin {ep.name!r} ({ep.value})"
    try:
        cls = ep.load()
    except Exception as e:  # third-party code: any import failure is the plugin's problem, told in one line
        raise InputError(f"{where} failed to import: {type(e).__name__}: {e}") from None
    if not (isinstance(cls, type) and issubclass(cls, CodecFamily)):
        raise InputError(f"{where} is not a subclass of hific.bench.codecs.CodecFamily")
    try:
        codec = cls()
    except CodecUnavailableError:
        raise
    except Exception as e:  # as above
        raise InputError(f"{where} failed to start: {type(e).__name__}: {e}") from None
    codec.name = ep.name
    return codec
