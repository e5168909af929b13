"""Training data: random down-scaled crops of the images in one or more folders (paper Sec. 3 / App. A.1:
each image is down-scaled by a random factor in [0.75, 0.95], then randomly cropped).

Every sample is a pure function of (seed, sample number): the image is drawn from a per-epoch permutation
and the augmentation from a generator seeded with the sample number. Resuming at step s therefore draws
exactly the batches an uninterrupted run would have drawn, with any number of loader workers or ranks.

Two sources give the same samples: :class:`ResidentImages` decodes the training set once and keeps it on
the training device (CPU or GPU), where each crop is cut and down-scaled (no JPEG decode per sample, no
host-to-device copy of batches); :class:`StreamedCrops` decodes per sample in DataLoader workers, for sets
too large to keep decoded. Both cut a crop with :func:`cut_crop`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler
from torchvision.transforms.v2 import functional as TF

from hific.errors import InputError
from hific.image_io import read_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm"}


def list_images(folders: list[str | Path]) -> list[Path]:
    """All image files under the folders (recursively), sorted; one clear error when there are none."""
    files: list[Path] = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise InputError(f"{folder}: not a folder of training images")
        files += sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise InputError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {', '.join(map(str, folders))}")
    return files


def decode(path: Path) -> torch.Tensor:
    """An image file as a (3, H, W) uint8 tensor."""
    return torch.from_numpy(np.ascontiguousarray(read_image(path))).permute(2, 0, 1).contiguous()


class Crop(NamedTuple):
    """Where sample k comes from: image ``index``, a ``size`` x ``size`` square at (top, left) of the original,
    which is resized to the crop size (so the image is down-scaled by crop / size)."""

    index: int
    top: int
    left: int
    size: int


class CropPlan:
    """Sample number k -> :class:`Crop`, for images of the given (H, W) sizes; k may grow without bound."""

    def __init__(self, sizes: list[tuple[int, int]], crop: int, downscale: tuple[float, float], seed: int) -> None:
        self.sizes, self.crop, self.downscale, self.seed = sizes, crop, downscale, seed

    def image_for(self, k: int) -> int:
        epoch, pos = divmod(k, len(self.sizes))
        return int(np.random.default_rng([self.seed, epoch]).permutation(len(self.sizes))[pos])

    def __call__(self, k: int) -> Crop:
        """Down-scale by a random factor in ``downscale`` (washes out JPEG artefacts), crop ``crop`` x ``crop``:
        the square of side crop / factor of the original. A short side below it is taken whole."""
        index = self.image_for(k)
        h, w = self.sizes[index]
        rng = np.random.default_rng([self.seed, 1_000_003, k])
        size = min(h, w, round(self.crop / rng.uniform(*self.downscale)))
        return Crop(index, int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1)), size)


def cut_crop(image: torch.Tensor, where: Crop, crop: int) -> torch.Tensor:
    """The crop of a (3, H, W) uint8 image as a (3, crop, crop) float tensor in [0, 1], resized in float
    (antialiased bicubic, as Pillow's resize; on the image's device, CPU or GPU)."""
    patch = TF.crop(image, where.top, where.left, where.size, where.size).float().div_(255)
    patch = TF.resize(patch, [crop, crop], interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
    return patch.clamp_(0, 1)


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image file from its header (EXIF rotation applied, as :func:`read_image` does)."""
    with Image.open(path) as img:
        w, h = img.size
        if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):
            w, h = h, w
    return h, w


class ResidentImages:
    """The decoded training set on the training device; ``batch(ks)`` cuts the crops of sample numbers ks."""

    def __init__(self, files: list[Path], crop: int, downscale: tuple[float, float], seed: int,
                 device: torch.device) -> None:
        self.images = [decode(p).to(device) for p in files]
        self.crop = crop
        self.plan = CropPlan([tuple(im.shape[1:]) for im in self.images], crop, downscale, seed)

    @staticmethod
    def nbytes(files: list[Path]) -> int:
        """Memory the decoded set would take (from the file headers)."""
        return sum(3 * h * w for h, w in map(image_size, files))

    def batch(self, ks: list[int]) -> torch.Tensor:
        plan = [self.plan(k) for k in ks]
        return torch.stack([cut_crop(self.images[c.index], c, self.crop) for c in plan])


class StreamedCrops(Dataset):
    """Sample number k -> its (3, crop, crop) crop, decoding the image file each time (DataLoader workers)."""

    def __init__(self, files: list[Path], crop: int, downscale: tuple[float, float], seed: int) -> None:
        self.files, self.crop = files, crop
        self.plan = CropPlan([image_size(p) for p in files], crop, downscale, seed)

    def __len__(self) -> int:
        return 2 ** 62

    def __getitem__(self, k: int) -> torch.Tensor:
        where = self.plan(k)
        return cut_crop(decode(self.files[where.index]), where, self.crop)


class StepSampler(Sampler[int]):
    """Sample numbers of the batches of steps start, start+1, ...: rank r of W takes its slice of each step."""

    def __init__(self, start_step: int, end_step: int, batch_size: int, rank: int = 0, world: int = 1) -> None:
        self.start, self.end, self.batch, self.rank, self.world = start_step, end_step, batch_size, rank, world

    def __len__(self) -> int:
        return max(0, self.end - self.start) * self.batch

    def steps(self) -> Iterator[list[int]]:
        """The sample numbers of each step, one list per step."""
        for step in range(self.start, self.end):
            first = (step * self.world + self.rank) * self.batch
            yield list(range(first, first + self.batch))

    def __iter__(self) -> Iterator[int]:
        for ks in self.steps():
            yield from ks


def load_validation(files: list[Path], size: int) -> torch.Tensor:
    """Held-out images, centre-cropped to size x size (up-scaled first when smaller): (N, 3, size, size)."""
    crops = []
    for path in files:
        rgb = read_image(path)
        h, w = rgb.shape[:2]
        if min(h, w) < size:
            f = size / min(h, w)
            rgb = np.asarray(Image.fromarray(rgb).resize((max(size, round(w * f)), max(size, round(h * f))),
                                                           Image.Resampling.BICUBIC))
            h, w = rgb.shape[:2]
        top, left = (h - size) // 2, (w - size) // 2
        crops.append(torch.from_numpy(np.ascontiguousarray(rgb[top:top + size, left:left + size])))
    return torch.stack(crops).permute(0, 3, 1, 2).float().div_(255)
