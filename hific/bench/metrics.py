"""Image quality metrics of the HiFiC paper (Sec. 4): PSNR, MS-SSIM, LPIPS per image (here); FID and KID on
patches (:mod:`hific.bench.set_metrics`).

Every metric compares 8-bit RGB arrays (H, W, 3). The networks are loaded once per process.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch

from hific.bench.set_metrics import SET_METRICS
from hific.errors import InputError

PER_IMAGE_METRICS = ("psnr", "msssim", "lpips")
METRICS = PER_IMAGE_METRICS + SET_METRICS
MS_SSIM_MIN_SIDE = 161  # pytorch-msssim: the side must exceed (win_size - 1) * 2**4 with 5 scales


def _check_pair(ref: np.ndarray, rec: np.ndarray) -> None:
    if ref.shape != rec.shape or ref.dtype != np.uint8 or rec.dtype != np.uint8:
        raise InputError(f"cannot compare images of shapes {ref.shape}/{rec.shape} and dtypes {ref.dtype}/{rec.dtype}")


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float in [0, 255]."""
    return torch.tensor(rgb).permute(2, 0, 1)[None].float()


def psnr(ref: np.ndarray, rec: np.ndarray) -> float:
    """PSNR in dB on RGB in [0, 255]: 20 log10(255) - 10 log10(MSE); inf for identical images."""
    _check_pair(ref, rec)
    mse = float(np.mean((ref.astype(np.float64) - rec.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 20 * math.log10(255.0) - 10 * math.log10(mse)


def ms_ssim(ref: np.ndarray, rec: np.ndarray) -> float:
    """MS-SSIM (Wang et al. 2003) on RGB with data range 255, through pytorch-msssim."""
    from pytorch_msssim import ms_ssim as _ms_ssim

    _check_pair(ref, rec)
    if min(ref.shape[:2]) < MS_SSIM_MIN_SIDE:
        raise InputError(f"image of {ref.shape[1]}x{ref.shape[0]} is too small for MS-SSIM "
                         f"(both sides must be at least {MS_SSIM_MIN_SIDE})")
    with torch.inference_mode():
        return float(_ms_ssim(_to_tensor(ref), _to_tensor(rec), data_range=255, size_average=True))


@functools.lru_cache(maxsize=1)
def _lpips_alex() -> torch.nn.Module:
    from hific.weights import lpips_network

    return lpips_network("alex")


def lpips(ref: np.ndarray, rec: np.ndarray) -> float:
    """LPIPS v0.1 with AlexNet (Zhang et al. 2018), the paper's perceptual metric; inputs scaled to [-1, 1]."""
    _check_pair(ref, rec)
    with torch.inference_mode():
        return float(_lpips_alex()(_to_tensor(ref) / 127.5 - 1, _to_tensor(rec) / 127.5 - 1).mean())


PER_IMAGE_FUNCTIONS = {"psnr": psnr, "msssim": ms_ssim, "lpips": lpips}
