"""The codec: image in, .hfc bytes out, and back (the paper's evaluation protocol, Sec. 4).

Images of any size are reflect-padded on the bottom and right to a multiple of 64 (the hyperprior's
total stride; 16 for models that pad their latent themselves, ModelConfig.padding) and cropped after
decoding. The bitrate is always the file's length: bpp = bytes * 8 / (H * W).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hific import bitstream
from hific.config import PAD_MULTIPLE
from hific.errors import BitstreamError, InputError
from hific.hyperprior import bits
from hific.image_io import read_image, to_rgb8
from hific.padding import pad_amounts, pad_image
from hific.zoo import Model, fingerprint

ImageLike = np.ndarray | Image.Image | str | Path


@dataclass(frozen=True)
class Encoded:
    """Result of :meth:`Codec.encode`: the file, the image's size and the model's estimate of the bits."""

    data: bytes
    height: int
    width: int
    estimated_bits: float

    @property
    def bpp(self) -> float:
        return len(self.data) * 8 / (self.height * self.width)


def as_rgb8(image: ImageLike, max_pixels: int | None = None) -> np.ndarray:
    """Any accepted image input -> (H, W, 3) uint8; a file above ``max_pixels`` is refused from its header."""
    if isinstance(image, (str, Path)):
        return read_image(image, max_pixels)
    if isinstance(image, Image.Image):
        return to_rgb8(image)
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.dtype != np.uint8:
        raise InputError(f"expected an (H, W, 3) uint8 array, got shape {arr.shape} dtype {arr.dtype}")
    return np.ascontiguousarray(arr[..., :3])


class Codec:
    """A learned image codec with a real entropy-coded bitstream (HiFiC, "no GAN" or M&S): an
    :class:`~hific.codec_interface.ImageCodec` (:meth:`compress` also takes a PIL image or a path), the same
    object the benchmark measures for this model (``hific.bench.codecs.get("hific").at("hific-lo")``)."""

    def __init__(self, model: Model, name: str, metadata: dict | None = None, device: str = "cpu") -> None:
        self.model = model.to(device).eval()
        self.model.update(force=True)  # entropy-coder tables always match the weights
        self.name = name
        self.metadata = metadata or {}
        self.device = torch.device(device)
        self.kind = model.kind
        self._fingerprint = fingerprint(model)
        self.max_pixels, self.pad_multiple, self.min_side = (model.max_pixels, model.image_multiple,
                                                             model.min_image_side)

    @property
    def fingerprint(self) -> str:
        """8 hex digits identifying the weights (stored in every file this codec writes)."""
        return self._fingerprint.hex()

    def __repr__(self) -> str:
        return f"Codec(name={self.name!r}, kind={self.kind!r}, fingerprint={self.fingerprint})"

    def _to_tensor(self, rgb: np.ndarray) -> tuple[torch.Tensor, int, int]:
        h, w = rgb.shape[:2]
        pad_b, pad_r = pad_amounts(h, w, self.pad_multiple, self.min_side)
        if (h + pad_b) * (w + pad_r) > self.max_pixels:
            raise InputError(
                f"image of {w}x{h} pixels ({(h + pad_b) * (w + pad_r) / 1e6:.1f} MP padded) exceeds the limit of "
                f"{self.max_pixels / 1e6:.0f} MP for model {self.name!r} (ModelConfig.max_pixels)")
        if max(h, w) > 0xFFFF:
            raise InputError(f"image of {w}x{h} pixels: sides above 65535 pixels are not supported")
        x = torch.from_numpy(rgb).to(self.device).permute(2, 0, 1)[None].float().div_(255)
        return pad_image(x, pad_b, pad_r), pad_b, pad_r

    def _to_rgb8(self, x_hat: torch.Tensor, h: int, w: int) -> np.ndarray:
        x = x_hat[0, :, :h, :w].clamp(0, 1).mul(255).round().to(torch.uint8)
        return x.permute(1, 2, 0).cpu().numpy()

    def encode(self, image: ImageLike, estimate: bool = False) -> Encoded:
        """Compress (the encoder only: no decoding pass); when ``estimate``, also the model's -log2 likelihood of
        the quantised latents, what a perfect entropy coder would spend (else NaN)."""
        rgb = as_rgb8(image, self.max_pixels)
        h, w = rgb.shape[:2]
        x, pad_b, pad_r = self._to_tensor(rgb)
        with torch.inference_mode():
            out = self.model.compress(x)
            estimated_bits = float(bits(self.model.likelihoods(x))) if estimate else math.nan
        header = bitstream.Header(self.name, self._fingerprint, h, w, pad_b, pad_r)
        data = bitstream.pack(bitstream.Payload(header, out["strings"][1][0], out["strings"][0][0]))
        return Encoded(data, h, w, estimated_bits)

    def compress(self, image: ImageLike) -> bytes:
        """Image (array, PIL image or path) -> bytes of a complete .hfc file."""
        return self.encode(image).data

    def decompress(self, data: bytes) -> np.ndarray:
        """Bytes of a .hfc file -> (H, W, 3) uint8 reconstruction."""
        payload = bitstream.unpack(bytes(data))
        h = payload.header
        if h.model_name != self.name or h.fingerprint != self._fingerprint:
            raise BitstreamError(
                f"this file needs model {h.model_name!r} (weights {h.fingerprint.hex()}), "
                f"not {self.name!r} (weights {self.fingerprint})")
        z_shape = (math.ceil((h.height + h.pad_bottom) / PAD_MULTIPLE), math.ceil((h.width + h.pad_right) / PAD_MULTIPLE))
        try:
            with torch.inference_mode():
                x_hat = self.model.decompress([[payload.y_string], [payload.z_string]], z_shape)["x_hat"]
        except (RuntimeError, ValueError) as e:
            raise BitstreamError(f"corrupted .hfc file: entropy decoding failed ({e})") from None
        return self._to_rgb8(x_hat, h.height, h.width)


def load(name_or_path: str | Path, device: str = "cpu") -> Codec:
    """Load a shipped model by name (``hific-lo``...), CompressAI's M&S (``ms-q1``..``ms-q8``) or a checkpoint."""
    from hific.zoo import resolve

    model, name, metadata = resolve(name_or_path)
    return Codec(model, name, metadata, device)
