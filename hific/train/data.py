"""Training data: random down-scaled crops of the images in one or more folders (official HiFiC pipeline).

Every sample is a pure function of (seed, sample number): the image is drawn from a per-epoch permutation
and the augmentation from a generator seeded with the sample number. Resuming at step s therefore draws
exactly the batches an uninterrupted run would have drawn, with any number of loader workers or ranks.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

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


def random_crop(rgb: np.ndarray, crop: int, downscale: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Down-scale by a random factor in ``downscale`` (washes out JPEG artefacts), then crop crop x crop.

    An image whose scaled short side is below ``crop`` is scaled up to exactly ``crop`` instead.
    """
    h, w = rgb.shape[:2]
    factor = max(rng.uniform(*downscale), crop / min(h, w))
    size = (max(crop, round(w * factor)), max(crop, round(h * factor)))
    img = Image.fromarray(rgb).resize(size, Image.Resampling.BICUBIC, reducing_gap=None)
    top = int(rng.integers(0, size[1] - crop + 1))
    left = int(rng.integers(0, size[0] - crop + 1))
    return np.asarray(img)[top:top + crop, left:left + crop]


class CropDataset(Dataset):
    """Sample number k -> a (3, crop, crop) float tensor in [0, 1]; k may grow without bound (epochs repeat)."""

    def __init__(self, files: list[Path], crop: int, downscale: tuple[float, float], seed: int) -> None:
        self.files, self.crop, self.downscale, self.seed = files, crop, downscale, seed

    def __len__(self) -> int:
        return 2 ** 62

    def file_for(self, k: int) -> Path:
        epoch, pos = divmod(k, len(self.files))
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.files))
        return self.files[order[pos]]

    def __getitem__(self, k: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, 1_000_003, k])
        crop = random_crop(read_image(self.file_for(k)), self.crop, self.downscale, rng)
        return torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float().div_(255)


class StepSampler(Sampler[int]):
    """Sample numbers of the batches of steps start, start+1, ...: rank r of W takes its slice of each step."""

    def __init__(self, start_step: int, end_step: int, batch_size: int, rank: int = 0, world: int = 1) -> None:
        self.start, self.end, self.batch, self.rank, self.world = start_step, end_step, batch_size, rank, world

    def __len__(self) -> int:
        return max(0, self.end - self.start) * self.batch

    def __iter__(self):
        for step in range(self.start, self.end):
            first = (step * self.world + self.rank) * self.batch
            yield from range(first, first + self.batch)


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
