"""Errors the toolkit reports to users as one clear line (no traceback)."""


class HificError(Exception):
    """Base class: a problem with the user's input or environment, reported as one line."""


class InputError(HificError):
    """An input file is missing, unreadable, not an image, or otherwise unusable."""


class BitstreamError(HificError):
    """A .hfc file is truncated, corrupted, of another format version, or needs another model."""


class ModelNotFoundError(HificError):
    """A model name or checkpoint path cannot be resolved."""


class WeightsUnavailableError(HificError):
    """Pretrained weights (LPIPS, FID Inception, M&S) are neither cached, downloadable nor installable offline."""


class TrainingError(HificError):
    """A training run cannot start or cannot go on (bad data, diverged losses, missing stage-1 run)."""
