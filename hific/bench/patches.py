"""256x256 patch tiling for FID/KID on high-resolution images (HiFiC paper, Sec. 4 "Metrics").

The paper follows NeuralCompression's patch FID: tile the image with stride 256 (the remainder is
dropped); when both sides are at least 384, tile ``img[128:, 128:]`` again. A 768x512 Kodak image
gives 6 + 2 = 8 patches.
"""
from __future__ import annotations

import numpy as np

PATCH = 256
SHIFT = 128
MIN_SIDE_FOR_SHIFT = 384


def patch_origins(height: int, width: int) -> list[tuple[int, int]]:
    """Top-left corners (y, x) of every patch, the unshifted grid first."""
    origins = [(y, x) for y in range(0, height - PATCH + 1, PATCH) for x in range(0, width - PATCH + 1, PATCH)]
    if height >= MIN_SIDE_FOR_SHIFT and width >= MIN_SIDE_FOR_SHIFT:
        origins += [(y, x) for y in range(SHIFT, height - PATCH + 1, PATCH)
                    for x in range(SHIFT, width - PATCH + 1, PATCH)]
    return origins


def count_patches(height: int, width: int) -> int:
    """How many patches an image of this size yields (0 when a side is under 256)."""
    return len(patch_origins(height, width))


def extract_patches(rgb: np.ndarray) -> np.ndarray:
    """All patches of an (H, W, 3) image as an (N, 256, 256, 3) array of the same dtype."""
    height, width = rgb.shape[:2]
    patches = [rgb[y:y + PATCH, x:x + PATCH] for y, x in patch_origins(height, width)]
    if not patches:
        return np.zeros((0, PATCH, PATCH, rgb.shape[2]), dtype=rgb.dtype)
    return np.stack(patches)
