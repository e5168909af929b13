"""The .hfc file format: a small header, then the two entropy-coded strings.

Layout (all integers big-endian)::

    magic      4 bytes  b"HiFC"
    version    1 byte   FORMAT_VERSION
    name_len   1 byte   length of the model name (<= 32)
    name       name_len bytes, UTF-8: the model the file needs (e.g. "hific-lo")
    fingerprint 4 bytes  first bytes of the model weights' SHA-256 (detects a wrong model of the same name)
    height     2 bytes  image height in pixels (before padding)
    width      2 bytes  image width in pixels (before padding)
    pad_bottom 1 byte   rows of reflect padding added to reach a multiple of 64
    pad_right  1 byte   columns of reflect padding
    z_len      4 bytes  length of the hyper-latent string (factorized entropy bottleneck)
    y_len      4 bytes  length of the latent string (Gaussian conditional)
    crc32      4 bytes  CRC-32 of everything before it and of both strings
    z string, y string

The fixed part is 29 bytes, so the header is at most 61 bytes. bpp is always len(file) * 8 / (H * W).
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from hific.errors import BitstreamError

MAGIC = b"HiFC"
FORMAT_VERSION = 1
MAX_NAME_BYTES = 32
_PRE = struct.Struct(">4sBB")          # magic, version, name_len
_POST = struct.Struct(">4sHHBBII")     # fingerprint, height, width, pad_bottom, pad_right, z_len, y_len
_CRC = struct.Struct(">I")


@dataclass(frozen=True)
class Header:
    """Everything the decoder needs besides the two strings."""

    model_name: str
    fingerprint: bytes
    height: int
    width: int
    pad_bottom: int
    pad_right: int


@dataclass(frozen=True)
class Payload:
    header: Header
    z_string: bytes
    y_string: bytes


def header_size(model_name: str) -> int:
    """Bytes taken by the header for a model name."""
    return _PRE.size + len(model_name.encode()) + _POST.size + _CRC.size


def pack(payload: Payload) -> bytes:
    """Serialise a payload into the bytes of a .hfc file."""
    h = payload.header
    name = h.model_name.encode()
    if len(name) > MAX_NAME_BYTES:
        raise BitstreamError(f"model name {h.model_name!r} is longer than {MAX_NAME_BYTES} bytes")
    if not (0 < h.height <= 0xFFFF and 0 < h.width <= 0xFFFF):
        raise BitstreamError(f"image size {h.width}x{h.height} is outside 1..65535 pixels per side")
    body = (_PRE.pack(MAGIC, FORMAT_VERSION, len(name)) + name
            + _POST.pack(h.fingerprint, h.height, h.width, h.pad_bottom, h.pad_right,
                         len(payload.z_string), len(payload.y_string)))
    crc = zlib.crc32(payload.y_string, zlib.crc32(payload.z_string, zlib.crc32(body)))
    return body + _CRC.pack(crc) + payload.z_string + payload.y_string


def unpack(data: bytes) -> Payload:
    """Parse and verify the bytes of a .hfc file; BitstreamError names what is wrong."""
    if len(data) < _PRE.size:
        raise BitstreamError(f"not a .hfc file: only {len(data)} bytes")
    magic, version, name_len = _PRE.unpack_from(data)
    if magic != MAGIC:
        raise BitstreamError("not a .hfc file (wrong magic number)")
    if version != FORMAT_VERSION:
        raise BitstreamError(f"unsupported .hfc format version {version} (this toolkit reads version {FORMAT_VERSION})")
    pos = _PRE.size + name_len
    if len(data) < pos + _POST.size + _CRC.size:
        raise BitstreamError("truncated .hfc file: header incomplete")
    try:
        name = data[_PRE.size:pos].decode()
    except UnicodeDecodeError:
        raise BitstreamError("corrupted .hfc file: model name is not UTF-8") from None
    fingerprint, height, width, pad_b, pad_r, z_len, y_len = _POST.unpack_from(data, pos)
    pos += _POST.size
    (crc,) = _CRC.unpack_from(data, pos)
    pos += _CRC.size
    if len(data) < pos + z_len + y_len:
        raise BitstreamError(f"truncated .hfc file: {len(data)} bytes, the header announces {pos + z_len + y_len}")
    if len(data) > pos + z_len + y_len:
        raise BitstreamError(f"corrupted .hfc file: {len(data) - pos - z_len - y_len} unexpected trailing bytes")
    z_string, y_string = data[pos:pos + z_len], data[pos + z_len:pos + z_len + y_len]
    if zlib.crc32(y_string, zlib.crc32(z_string, zlib.crc32(data[:pos - _CRC.size]))) != crc:
        raise BitstreamError("corrupted .hfc file: checksum mismatch")
    if height == 0 or width == 0:
        raise BitstreamError("corrupted .hfc file: zero image size")
    return Payload(Header(name, fingerprint, height, width, pad_b, pad_r), z_string, y_string)
