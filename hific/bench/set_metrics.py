"""FID and KID on 256x256 patches (HiFiC paper, Sec. 4 "Metrics"; NeuralCompression's patch FID): the Inception
features, the two distances, and the set metrics of one benchmark method over all its images.

The originals' patches are the reference set. Features are cached per image (:mod:`hific.bench.cache`): the
originals' once per run directory, each reconstruction's once per cache entry; a method's FID/KID are cached
by the exact set of inputs.
"""
from __future__ import annotations

import functools
import hashlib
import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from hific.bench import cache
from hific.bench.datasets import BenchImage
from hific.bench.patches import count_patches, extract_patches
from hific.errors import InputError
from hific.image_io import read_image

SET_METRICS = ("fid", "kid")
FEATURE_DIM = 2048  # the pool features of the FID Inception network
KID_MAX_SUBSET = 1000
KID_SUBSETS = 100
BATCH = 32


def fold_batch_norms(net: torch.nn.Module) -> torch.nn.Module:
    """Fold every (conv, eval-mode BatchNorm) pair of Inception's BasicConv2d blocks into one conv with a bias
    (PyTorch's ``fuse_conv_bn_eval``): the same function up to float rounding, one pass over each activation
    fewer."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for block in net.modules():
        if isinstance(getattr(block, "bn", None), torch.nn.BatchNorm2d) and isinstance(block.conv, torch.nn.Conv2d):
            block.conv, block.bn = fuse_conv_bn_eval(block.conv, block.bn), torch.nn.Identity()
    return net


@functools.lru_cache(maxsize=1)
def _inception() -> torch.nn.Module:
    """torch-fidelity's FID Inception (2048-d pool features), its batch norms folded into the convolutions and
    the weights in channels-last layout: on CPU its convolutions and poolings run about twice as fast so (the
    input stays NCHW for the resize)."""
    from torch_fidelity.utils import create_feature_extractor

    from hific.weights import fid_extractor

    extractor = fid_extractor()
    net = create_feature_extractor(extractor.name, ["2048"], cuda=False, verbose=False,
                                   feature_extractor_weights_path=extractor.weights_path)
    return fold_batch_norms(net.eval()).to(memory_format=torch.channels_last)


def inception_features(patches: np.ndarray, batch_size: int = BATCH) -> np.ndarray:
    """2048-d pool features (float32) of the FID Inception network for (N, H, W, 3) uint8 patches."""
    net = _inception()
    out = []
    with torch.inference_mode():
        for start in range(0, len(patches), batch_size):
            chunk = torch.from_numpy(np.ascontiguousarray(patches[start:start + batch_size])).permute(0, 3, 1, 2)
            out.append(net(chunk.contiguous())[0].float().numpy())
    return np.concatenate(out) if out else np.zeros((0, FEATURE_DIM), dtype=np.float32)


def _covariance_factor(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean and a factor A with A^T A = the unbiased sample covariance (float64), at most d x d: the centred
    features / sqrt(n - 1) when there are no more than d of them, else the R of their QR decomposition."""
    x = features.astype(np.float64)
    mean = x.mean(axis=0)
    centred = (x - mean) / math.sqrt(len(x) - 1)
    return mean, centred if len(x) <= x.shape[1] else np.linalg.qr(centred, mode="r")


def fid(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet Inception Distance (Heusel et al. 2017): |m1 - m2|^2 + tr S1 + tr S2 - 2 tr (S1 S2)^(1/2).

    With S_i = A_i^T A_i, the eigenvalues of S1 S2 are the squared singular values of A1 A2^T, so
    tr (S1 S2)^(1/2) is the nuclear norm of A1 A2^T: exact, and one SVD of an at most 2048 x 2048 matrix (n x n
    for n <= 2048 patches) instead of the eigenvalues of a non-symmetric 2048 x 2048 product (torch-fidelity's
    way, about 10 s per FID on 2 cores). tests/test_metrics.py checks it against clean-fid's scipy sqrtm.
    """
    if min(len(real), len(fake)) < 2:
        raise InputError(f"FID needs at least 2 patches per set, got {len(real)} and {len(fake)}")
    (m1, a1), (m2, a2) = _covariance_factor(real), _covariance_factor(fake)
    tr_sqrt = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum()
    return float(np.sum((m1 - m2) ** 2) + np.sum(a1 ** 2) + np.sum(a2 ** 2) - 2 * tr_sqrt)


def kid(real: np.ndarray, fake: np.ndarray) -> float:
    """Kernel Inception Distance (Bińkowski et al. 2018; torch-fidelity): the mean unbiased MMD^2 with the cubic
    polynomial kernel over random subsets of up to 1000 patches (fewer when a set is smaller). When both sets
    fit in one subset, every subset is the same sets in another order and gives the same value: one is drawn."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, kid_features_to_metric

    subset = min(KID_MAX_SUBSET, len(real), len(fake))
    if subset < 2:
        raise InputError(f"KID needs at least 2 patches per set, got {len(real)} and {len(fake)}")
    subsets = 1 if subset == len(real) == len(fake) else KID_SUBSETS
    result = kid_features_to_metric(torch.from_numpy(real), torch.from_numpy(fake), kid_subset_size=subset,
                                    kid_subsets=subsets, verbose=False)
    return result[KEY_METRIC_KID_MEAN]


SET_FUNCTIONS = {"fid": fid, "kid": kid}


def patch_features(load: Callable[[], np.ndarray], cache_file: Path) -> np.ndarray:
    """Inception features of an image's patches (the image from ``load()``), cached as ``.npy``."""
    return cache.cached_array(cache_file, lambda: inception_features(extract_patches(load())))


def original_features(image: BenchImage, root: Path) -> np.ndarray:
    """The reference side: features of an original's patches, cached once per run directory (``root``)."""
    return patch_features(lambda: image.rgb, root / "originals" / f"{image.sha256[:16]}.fid.npy")


def recon_features(stem: Path) -> np.ndarray:
    """Features of the patches of the reconstruction ``stem.png``, cached beside it."""
    return patch_features(lambda: read_image(stem.with_suffix(".png")), stem.with_suffix(".fid.npy"))


def reliable(n_patches: int) -> bool:
    """Whether FID/KID on ``n_patches`` patches can be trusted: at least one patch per feature dimension."""
    return n_patches >= FEATURE_DIM


def method_set_metrics(pairs: list[tuple[BenchImage, Path]], wanted: list[str], root: Path,
                       warn: Callable[[str], None], where: str) -> dict:
    """``n_patches`` of one method's (original, reconstruction stem) pairs and, for the ``wanted`` set metrics,
    their values and ``fid_reliable``; FID/KID are computed once per set of inputs (cached under ``root``)."""
    counts = [count_patches(*image.rgb.shape[:2]) for image, _ in pairs]
    used = [pair for pair, n in zip(pairs, counts) if n > 0]
    n_patches = sum(counts)
    wanted = [m for m in SET_METRICS if m in wanted]
    if not wanted:
        return {"n_patches": n_patches}
    key = hashlib.sha256("\n".join(f"{image.sha256} {stem}" for image, stem in used).encode()).hexdigest()
    record_path = root / "sets" / f"{key[:24]}.json"
    record = cache.read_json(record_path) or {}
    missing = [name for name in wanted if name not in record]
    if missing:
        real = [original_features(image, root) for image, _ in used]
        fake = [recon_features(stem) for _, stem in used]
        real_f, fake_f = (np.concatenate(f) if f else np.zeros((0, FEATURE_DIM), np.float32) for f in (real, fake))
        for name in missing:
            try:
                record[name] = SET_FUNCTIONS[name](real_f, fake_f)
            except InputError as e:
                warn(f"{where}: {name} not computed: {e} (images need both sides >= 256 for 256x256 patches)")
        cache.write_json(record_path, record)
    return {"n_patches": n_patches, "fid_reliable": reliable(n_patches),
            **{name: record[name] for name in wanted if name in record}}
