"""Rate matching (``--match-bpp``): per image, the quality of a quality-driven codec whose bpp is closest to a
target — a fixed bpp, or a multiple of the bpp another method reached on the same image (HiFiC's headline
question, abstract and Fig. 3: is HiFiC preferred to BPG even when BPG uses twice the bitrate?).
"""
from __future__ import annotations

from dataclasses import dataclass

from hific.bench.codecs import QualityFamily
from hific.bench.datasets import BenchImage


@dataclass(frozen=True)
class RelativeRate:
    """``factor`` times the bpp that the method ``codec``/``setting`` (its output label) reached per image."""

    factor: float
    codec: str
    setting: str

    @property
    def label(self) -> str:
        """The output label, e.g. ``x2.00-hific-lo`` (filesystem-safe, as the study app requires)."""
        return f"x{self.factor:.2f}-{self.setting}"


def bpp_of(n_bytes: int, width: int, height: int) -> float:
    """Bits per pixel from the real file size."""
    return n_bytes * 8 / (width * height)


def encoded_bpp(codec: QualityFamily, quality: int, image: BenchImage) -> float:
    """The bpp of one compress by the codec at ``quality``."""
    height, width = image.rgb.shape[:2]
    return bpp_of(len(codec.at(codec.setting(quality)).compress(image.rgb)), width, height)


def search_quality(codec: QualityFamily, target: float, image: BenchImage) -> int:
    """The integer quality whose bpp is closest to ``target`` (binary search; bpp is monotone in quality)."""
    lo, hi = codec.quality_range
    sizes: dict[int, float] = {}

    def bpp(q: int) -> float:
        if q not in sizes:
            sizes[q] = encoded_bpp(codec, q, image)
        return sizes[q]

    def rises(q: int) -> bool:  # does this knob value give at least the target bpp?
        return bpp(q) >= target

    if codec.higher_is_better:
        a, b = lo, hi  # find the smallest q with bpp >= target
        while a < b:
            mid = (a + b) // 2
            a, b = (a, mid) if rises(mid) else (mid + 1, b)
    else:
        a, b = lo, hi  # find the largest q with bpp >= target
        while a < b:
            mid = (a + b + 1) // 2
            a, b = (mid, b) if rises(mid) else (a, mid - 1)
    neighbours = {q for q in (a - 1, a, a + 1) if lo <= q <= hi}
    return min(neighbours, key=lambda q: (abs(bpp(q) - target), q))
