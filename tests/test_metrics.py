"""Metrics and patch tiling on real images from ../shared/data."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio

from hific.bench import metrics
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


@pytest.mark.parametrize("height,width,expected", [(512, 768, 8), (768, 512, 8), (383, 1000, 3), (384, 384, 2),
                                                   (256, 256, 1), (255, 1000, 0)])
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


def test_fid_of_a_patch_set_against_itself_is_about_zero(kodim):
    real = metrics.inception_features(extract_patches(kodim))
    fake = metrics.inception_features(extract_patches(jpeg(kodim, 3)))
    assert real.shape == (8, 2048)
    assert abs(metrics.fid(real, real)) < 1e-3
    assert metrics.fid(real, fake) > 10  # heavy JPEG artefacts move the features
    assert metrics.kid(real, fake) > metrics.kid(real, real)  # subset size adapts to 8 patches
    with pytest.raises(InputError, match="at least 2 patches"):
        metrics.fid(real[:1], fake[:1])
