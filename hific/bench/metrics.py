"""Image quality metrics of the HiFiC paper (Sec. 4): PSNR, MS-SSIM, LPIPS per image; FID and KID on patches.

Every metric compares 8-bit RGB arrays (H, W, 3). The networks are loaded once per process.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch

from hific.errors import InputError

PER_IMAGE_METRICS = ("psnr", "msssim", "lpips")
SET_METRICS = ("fid", "kid")
METRICS = PER_IMAGE_METRICS + SET_METRICS
MS_SSIM_MIN_SIDE = 161  # pytorch-msssim: the side must exceed (win_size - 1) * 2**4 with 5 scales
KID_MAX_SUBSET = 1000
KID_SUBSETS = 100


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


@functools.lru_cache(maxsize=1)
def _inception() -> torch.nn.Module:
    from torch_fidelity.utils import create_feature_extractor

    from hific.weights import fid_extractor

    extractor = fid_extractor()
    return create_feature_extractor(extractor.name, ["2048"], cuda=False, verbose=False,
                                    feature_extractor_weights_path=extractor.weights_path)


def inception_features(patches: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """2048-d pool features of the FID Inception network for (N, H, W, 3) uint8 patches."""
    net = _inception()
    out = []
    with torch.inference_mode():
        for start in range(0, len(patches), batch_size):
            chunk = torch.tensor(patches[start:start + batch_size]).permute(0, 3, 1, 2)
            out.append(net(chunk)[0].numpy())
    return np.concatenate(out) if out else np.zeros((0, 2048), dtype=np.float32)


def fid(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet Inception Distance between two feature sets (torch-fidelity's statistics)."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

    if min(len(real), len(fake)) < 2:
        raise InputError(f"FID needs at least 2 patches per set, got {len(real)} and {len(fake)}")
    stats = [fid_features_to_statistics(torch.from_numpy(f.astype(np.float64))) for f in (real, fake)]
    return fid_statistics_to_metric(stats[0], stats[1], verbose=False)[KEY_METRIC_FID]


def kid(real: np.ndarray, fake: np.ndarray) -> float:
    """Kernel Inception Distance (mean over subsets); the subset size shrinks to the smaller set when below 1000."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, kid_features_to_metric

    subset = min(KID_MAX_SUBSET, len(real), len(fake))
    if subset < 2:
        raise InputError(f"KID needs at least 2 patches per set, got {len(real)} and {len(fake)}")
    result = kid_features_to_metric(torch.from_numpy(real), torch.from_numpy(fake), kid_subset_size=subset,
                                    kid_subsets=KID_SUBSETS, verbose=False)
    return result[KEY_METRIC_KID_MEAN]


SET_FUNCTIONS = {"fid": fid, "kid": kid}
