"""The one codec interface: what :func:`hific.load` returns and what the benchmark measures.

An :class:`ImageCodec` is one codec at one operating point. The learned models (:class:`hific.codec.Codec`)
implement it, and so does what a benchmark codec family hands out for a setting
(``hific.bench.codecs.get("bpg").at("qp32")``: Pillow's JPEG, WebP and AVIF, BPG and its x265 stand-in, the
command-line codecs of TOML specs, ``hific.codecs`` plugins). The benchmark times exactly these two calls, and
the bitrate is always the length of the bytes. A light module: it imports neither PyTorch nor CompressAI.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class ImageCodec(Protocol):
    """(H, W, 3) uint8 pixels -> bytes -> (H, W, 3) uint8 pixels, at one fixed operating point."""

    @property
    def name(self) -> str:
        """The codec at this operating point: a model name (``hific-lo``, ``ms-lo``) or ``<codec>-<setting>``
        (``jpeg-q75``, ``bpg-x265-qp32``)."""

    @property
    def fingerprint(self) -> str:
        """What makes the bytes what they are: a learned model's weights (8 hex digits), a tool's version and
        options; part of the benchmark's result cache key."""

    def compress(self, rgb: np.ndarray) -> bytes:
        """(H, W, 3) uint8 -> the complete compressed file."""

    def decompress(self, data: bytes) -> np.ndarray:
        """The bytes of :meth:`compress` -> (H, W, 3) uint8."""
