"""The benchmark's output tables and their columns: one definition for the writer (:mod:`hific.bench.runner`)
and every reader (``analysis/``, the study app)."""
from __future__ import annotations

PER_IMAGE_COLUMNS = ["codec", "setting", "image", "width", "height", "bytes", "bpp", "psnr", "ms_ssim", "lpips",
                     "encode_s", "decode_s"]
# fid_reliable: FID/KID were computed on at least as many patches as the Inception features have dimensions.
SUMMARY_COLUMNS = ["codec", "setting", "n_images", "bpp", "psnr", "ms_ssim", "lpips", "fid", "kid", "n_patches",
                   "fid_reliable"]
IMAGES_COLUMNS = ["image", "width", "height", "sha256"]
BD_RATE_COLUMNS = ["codec", "anchor", "metric", "bd_rate", "n_points", "n_anchor_points", "fit_degree", "reliable"]
TEXT_COLUMNS = {"codec", "setting", "image", "sha256", "anchor", "metric"}
BOOLEAN_COLUMNS = {"fid_reliable", "reliable"}
# The summary's quality columns and their direction: True when a lower value is better.
LOWER_IS_BETTER = {"psnr": False, "ms_ssim": False, "lpips": True, "fid": True, "kid": True}
