"""HiFiC — High-Fidelity Generative Image Compression (Mentzer et al., NeurIPS 2020) in PyTorch.

>>> import hific
>>> codec = hific.load("hific-lo")            # or a checkpoint path
>>> data = codec.compress("photo.png")         # bytes of a .hfc file
>>> rgb = codec.decompress(data)               # (H, W, 3) uint8
"""
import warnings

# CompressAI's import triggers PyTorch's deprecation notice for torch.jit.script; it is not ours to fix.
warnings.filterwarnings("ignore", message=r"`torch.jit.script` is deprecated", category=FutureWarning)

from hific.codec import Codec, load  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Codec", "load", "__version__"]
