"""Metrics and patch tiling on real images from ../shared/data."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio

from hific.bench import metrics, set_metrics
from hific.bench.patches import PATCH, count_patches, extract_patches
from hific.errors import InputError
from hific.image_io import read_image


@pytest.fixture(scope="module")
def kodim(kodak):
    return read_image(kodak / "kodim23.png")


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def test_psnr_agrees_with_scikit_image(kodim):
    for quality in (10, 50, 90):
        rec = jpeg(kodim, quality)
        assert metrics.psnr(kodim, rec) == pytest.approx(peak_signal_noise_ratio(kodim, rec, data_range=255), abs=1e-9)
    assert metrics.psnr(kodim, kodim) == math.inf


def test_ms_ssim_of_an_image_with_itself_is_one(kodim):
    assert metrics.ms_ssim(kodim, kodim) == pytest.approx(1.0, abs=1e-6)
    low, high = metrics.ms_ssim(kodim, jpeg(kodim, 5)), metrics.ms_ssim(kodim, jpeg(kodim, 80))
    assert low < high < 1.0
    with pytest.raises(InputError, match="too small for MS-SSIM"):
        metrics.ms_ssim(kodim[:150, :300], kodim[:150, :300])


def test_lpips_of_the_example_patches_matches_the_official_weights(shared_data):
    """richzhang/PerceptualSimilarity's example: alex v0.1 gives d(ref, p0) = 0.722 and d(ref, p1) = 0.138."""
    ref, p0, p1 = (read_image(shared_data / "lpips_examples" / f"{n}.png") for n in ("ex_ref", "ex_p0", "ex_p1"))
    assert metrics.lpips(ref, p0) == pytest.approx(0.722, abs=0.001)
    assert metrics.lpips(ref, p1) == pytest.approx(0.138, abs=0.001)
    assert metrics.lpips(ref, ref) == pytest.approx(0.0, abs=1e-6)


# NeuralCompression's protocol: 256 x 256 at stride 256, then img[128:, 128:] again when both sides are >= 384.
# Kodak 768x512: 3 x 2 + 2 x 1 = 8; a CLIC-sized 2048x1365: 8 x 5 + 7 x 4 = 68; DIV2K 2040x1356: 7 x 5 + 7 x 4.
@pytest.mark.parametrize("height,width,expected", [(512, 768, 8), (768, 512, 8), (383, 1000, 3), (384, 384, 2),
                                                   (256, 256, 1), (255, 1000, 0), (1365, 2048, 68),
                                                   (1356, 2040, 63)])
def test_patch_counts(height, width, expected):
    assert count_patches(height, width) == expected
    patches = extract_patches(np.zeros((height, width, 3), np.uint8))
    assert patches.shape == (expected, PATCH, PATCH, 3)


def test_patches_are_the_specified_tiles(kodim):
    patches = extract_patches(kodim)
    assert np.array_equal(patches[0], kodim[:256, :256])
    assert np.array_equal(patches[5], kodim[256:512, 512:768])
    assert np.array_equal(patches[6], kodim[128:384, 128:384])  # the grid shifted by 128
    assert np.array_equal(patches[7], kodim[128:384, 384:640])


@pytest.fixture(scope="module")
def kodak_features(kodak) -> tuple[np.ndarray, np.ndarray]:
    """Inception features of the patches of three Kodak images (24) and of their JPEG q10 versions."""
    images = [read_image(kodak / f"kodim{i:02d}.png") for i in (3, 14, 23)]
    real = np.concatenate([set_metrics.inception_features(extract_patches(rgb)) for rgb in images])
    fake = np.concatenate([set_metrics.inception_features(extract_patches(jpeg(rgb, 10))) for rgb in images])
    return real, fake


def test_inception_features_are_torch_fidelity_s(kodak):
    """The folded, channels-last network gives torch-fidelity's own extractor's features (1e-5 relative)."""
    from torch_fidelity.utils import create_feature_extractor

    from hific.weights import fid_extractor

    extractor = fid_extractor()
    theirs = create_feature_extractor(extractor.name, ["2048"], cuda=False, verbose=False,
                                      feature_extractor_weights_path=extractor.weights_path).eval()
    patches = extract_patches(read_image(kodak / "kodim07.png"))[:4]
    with torch.inference_mode():
        want = theirs(torch.from_numpy(patches).permute(0, 3, 1, 2).contiguous())[0].numpy()
    got = set_metrics.inception_features(patches)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in set_metrics._inception().modules())
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def test_fid_of_a_patch_set_against_itself_is_about_zero(kodak_features):
    real, fake = kodak_features
    assert real.shape == (24, set_metrics.FEATURE_DIM) and real.dtype == np.float32
    assert abs(set_metrics.fid(real, real)) < 1e-3
    assert set_metrics.fid(real, fake) > 10  # JPEG artefacts move the features
    assert set_metrics.kid(real, fake) > set_metrics.kid(real, real)  # subset size adapts to 24 patches
    with pytest.raises(InputError, match="at least 2 patches"):
        set_metrics.fid(real[:1], fake[:1])


def test_fid_and_kid_agree_with_clean_fid(kodak_features):
    """The same Kodak features through clean-fid agree to 1e-3 relative: its FID (scipy's sqrtm of S1 S2, a
    minute per call at 2048 dimensions, so on the first 256 features: 24 patches, and 300 jittered copies for
    the case of more patches than dimensions), its KID with one subset of all 24 patches (which every subset of
    the toolkit's then equals), and torch-fidelity's eigenvalue FID on all 2048 dimensions."""
    from cleanfid.fid import frechet_distance, kernel_distance
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

    def clean(a: np.ndarray, b: np.ndarray) -> float:
        a, b = a.astype(np.float64), b.astype(np.float64)
        return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))

    real, fake = kodak_features
    low, low_fake = real[:, :256], fake[:, :256]
    assert set_metrics.fid(low, low_fake) == pytest.approx(clean(low, low_fake), rel=1e-3)
    many = np.repeat(low, 13, axis=0)[:300] + np.random.default_rng(0).normal(0, 0.05, (300, 256)).astype(np.float32)
    assert set_metrics.fid(many, low_fake) == pytest.approx(clean(many, low_fake), rel=1e-3)
    assert set_metrics.kid(real, fake) == pytest.approx(kernel_distance(real, fake, num_subsets=1), rel=1e-3)
    stats = [fid_features_to_statistics(torch.from_numpy(f.astype(np.float64))) for f in (real, fake)]
    eigen = fid_statistics_to_metric(*stats, verbose=False)[KEY_METRIC_FID]
    assert set_metrics.fid(real, fake) == pytest.approx(eigen, rel=1e-3)


def test_reliability_needs_a_patch_per_feature_dimension():
    assert not set_metrics.reliable(192) and not set_metrics.reliable(2047) and set_metrics.reliable(2048)
