"""HiFiC — High-Fidelity Generative Image Compression (Mentzer et al., NeurIPS 2020) in PyTorch.

>>> import hific
>>> codec = hific.load("hific-lo")            # or a checkpoint path
>>> data = codec.compress("photo.png")         # bytes of a .hfc file
>>> rgb = codec.decompress(data)               # (H, W, 3) uint8
>>> isinstance(codec, hific.ImageCodec)       # the one codec interface, as the benchmark's codecs
True
"""
import warnings

# CompressAI's import triggers PyTorch's deprecation notice for torch.jit.script; it is not ours to fix.
warnings.filterwarnings("ignore", message=r"`torch.jit.script` is deprecated", category=FutureWarning)

__version__ = "0.1.0"
__all__ = ["Codec", "ImageCodec", "load", "__version__"]


def __getattr__(name: str) -> object:
    """``hific.Codec``, ``hific.ImageCodec`` (the one codec interface) and ``hific.load``, imported on first
    use (PEP 562): the light modules (``hific.image_io``, ``hific.errors``) that the study app and the
    analysis use then do not pull in PyTorch and CompressAI."""
    if name == "ImageCodec":
        from hific.codec_interface import ImageCodec

        return ImageCodec
    if name in ("Codec", "load"):
        from hific import codec

        return getattr(codec, name)
    raise AttributeError(f"module 'hific' has no attribute {name!r}")
