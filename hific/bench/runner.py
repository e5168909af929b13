"""The benchmark run: every (codec, setting) on every image, cached and resumable, written as CSVs and PNGs.

Output directory (read by the study app and the analysis notebooks)::

    per_image.csv  summary.csv  images.csv  originals/<image>.png  recon/<codec>/<setting>/<image>.png
    cache/<codec>/<codec version>/<setting>/<image sha256[:16]>.{bin,png,json,fid.npy}

A cache entry is committed by its ``.json`` (written last, atomically), so an interrupted run resumes
where it stopped and never reads a half-written result.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import signal
import time
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from tqdm import tqdm

from hific.bench import metrics as M
from hific.bench.codecs import Codec, QualityCodec
from hific.bench.datasets import BenchImage
from hific.bench.patches import count_patches, extract_patches
from hific.errors import HificError, InputError
from hific.image_io import atomic_write_bytes, read_image, write_png

PER_IMAGE_COLUMNS = ["codec", "setting", "image", "width", "height", "bytes", "bpp", "psnr", "ms_ssim", "lpips",
                     "encode_s", "decode_s"]
SUMMARY_COLUMNS = ["codec", "setting", "n_images", "bpp", "psnr", "ms_ssim", "lpips", "fid", "kid", "n_patches"]
IMAGES_COLUMNS = ["image", "width", "height", "sha256"]
COLUMN_OF_METRIC = {"psnr": "psnr", "msssim": "ms_ssim", "lpips": "lpips"}


@dataclass(frozen=True)
class Method:
    """A (codec, setting) pair to run; ``target_bpp`` set means: search the quality per image to hit it."""

    codec: Codec
    setting: str
    target_bpp: float | None = None

    @property
    def label(self) -> str:
        return f"bpp{self.target_bpp:.3f}" if self.target_bpp is not None else self.codec.label(self.setting)


@dataclass
class RunResult:
    """What a run produced: the two tables and the warnings it printed."""

    per_image: pd.DataFrame
    summary: pd.DataFrame
    warnings: list[str] = field(default_factory=list)


def bpp_of(n_bytes: int, width: int, height: int) -> float:
    """Bits per pixel from the real file size."""
    return n_bytes * 8 / (width * height)


def entry_dir(cache: Path, codec: Codec, setting: str) -> Path:
    return cache / codec.name / codec.version(setting) / codec.label(setting)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, obj: dict) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1).encode())


def code_one(codec: Codec, setting: str, image: BenchImage, cache: Path) -> dict:
    """Encode and decode one image (or reuse the cache); returns the entry's record with its file stem."""
    stem = entry_dir(cache, codec, setting) / image.sha256[:16]
    record = _read_json(stem.with_suffix(".json"))
    if record is not None and stem.with_suffix(".png").exists():
        return {**record, "stem": str(stem)}
    start = time.perf_counter()
    data = codec.encode(image.rgb, setting)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    recon = codec.decode(data, setting)
    decode_s = time.perf_counter() - start
    if recon.shape != image.rgb.shape or recon.dtype != np.uint8:
        raise InputError(f"{codec.name}:{setting} decoded {image.name} to shape {recon.shape}, "
                         f"expected {image.rgb.shape}")
    atomic_write_bytes(stem.with_suffix(".bin"), data)
    write_png(stem.with_suffix(".png"), recon)
    record = {"setting": setting, "bytes": len(data), "encode_s": encode_s, "decode_s": decode_s}
    _write_json(stem.with_suffix(".json"), record)
    return {**record, "stem": str(stem)}


def encoded_bpp(codec: QualityCodec, quality: int, image: BenchImage) -> float:
    """The bpp of one encode at ``quality`` (used by the match-bpp search)."""
    height, width = image.rgb.shape[:2]
    return bpp_of(len(codec.encode(image.rgb, codec.setting(quality))), width, height)


def search_quality(codec: QualityCodec, target: float, image: BenchImage) -> int:
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


def resolve_setting(method: Method, image: BenchImage, cache: Path) -> str:
    """The concrete setting for this image: the method's own, or the cached/searched match-bpp quality."""
    if method.target_bpp is None:
        return method.setting
    codec = method.codec
    path = cache / codec.name / codec.version("") / method.label / f"{image.sha256[:16]}.json"
    found = _read_json(path)
    if found is None:
        found = {"setting": codec.setting(search_quality(codec, method.target_bpp, image))}
        _write_json(path, found)
    return found["setting"]


def run_task(method: Method, image: BenchImage, cache: Path) -> dict:
    """Resolve the setting and code one image; the unit of work of the worker pool."""
    return code_one(method.codec, resolve_setting(method, image, cache), image, cache)


def _worker_init() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process handles Ctrl-C
    import torch

    torch.set_num_threads(1)


def add_image_metrics(record: dict, image: BenchImage, wanted: list[str], warn: Callable[[str], None],
                      where: str) -> dict:
    """Compute the per-image metrics the cache entry lacks (stored back into its .json)."""
    missing = [m for m in wanted if m in M.PER_IMAGE_METRICS and m not in record]
    if missing:
        recon = read_image(Path(record["stem"]).with_suffix(".png"))
        for name in missing:
            try:
                record[name] = M.PER_IMAGE_FUNCTIONS[name](image.rgb, recon)
            except InputError as e:
                warn(f"{where}: {name} not computed: {e}")
                record[name] = math.nan
        stored = {k: v for k, v in record.items() if k != "stem"}
        _write_json(Path(record["stem"]).with_suffix(".json"), stored)
    return record


def patch_features(load: Callable[[], np.ndarray], cache_file: Path) -> np.ndarray:
    """Inception features of an image's 256x256 patches (the image from ``load()``), cached as .npy."""
    if cache_file.exists():
        return np.load(cache_file)
    features = M.inception_features(extract_patches(load())).astype(np.float32)
    atomic_write_bytes(cache_file, _npy_bytes(features))
    return features


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def copy_atomic(src: Path, dst: Path) -> None:
    """Copy a file so that ``dst`` is either absent, the old file or the complete new one."""
    if dst.exists() and dst.stat().st_size == src.stat().st_size and dst.read_bytes() == src.read_bytes():
        return
    atomic_write_bytes(dst, src.read_bytes())


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """Write a CSV atomically."""
    atomic_write_bytes(path, df.to_csv(index=False).encode())


class Run:
    """One benchmark run over ``images`` for ``methods`` into ``out``."""

    def __init__(self, methods: list[Method], images: list[BenchImage], wanted: list[str], out: Path,
                 workers: int = 1, warn: Callable[[str], None] = print) -> None:
        self.methods, self.images, self.wanted, self.out = methods, images, wanted, out
        self.cache = out / "cache"
        self.workers = max(1, workers)
        self.warnings: list[str] = []
        self._warn = warn
        self.rows: dict[tuple[int, int], dict] = {}

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self._warn(message)

    def write_originals(self) -> None:
        rows = []
        for image in self.images:
            height, width = image.rgb.shape[:2]
            target = self.out / "originals" / f"{image.name}.png"
            if not target.exists() or read_image(target).tobytes() != image.rgb.tobytes():
                write_png(target, image.rgb)
            rows.append({"image": image.name, "width": width, "height": height, "sha256": image.sha256})
        write_csv(pd.DataFrame(rows, columns=IMAGES_COLUMNS), self.out / "images.csv")

    def finish_pair(self, mi: int, ii: int, record: dict) -> None:
        """Metrics, the reconstruction PNG and the per-image row of one finished (method, image) pair."""
        method, image = self.methods[mi], self.images[ii]
        where = f"{method.codec.name}:{method.label} on {image.name}"
        record = add_image_metrics(record, image, self.wanted, self.warn, where)
        copy_atomic(Path(record["stem"]).with_suffix(".png"),
                    self.out / "recon" / method.codec.name / method.label / f"{image.name}.png")
        height, width = image.rgb.shape[:2]
        row = {"codec": method.codec.name, "setting": method.label, "image": image.name, "width": width,
               "height": height, "bytes": record["bytes"], "bpp": bpp_of(record["bytes"], width, height),
               "encode_s": record["encode_s"], "decode_s": record["decode_s"], "stem": record["stem"]}
        for metric, column in COLUMN_OF_METRIC.items():
            row[column] = record.get(metric, math.nan) if metric in self.wanted else math.nan
        self.rows[(mi, ii)] = row

    def per_image(self) -> pd.DataFrame:
        rows = [self.rows[key] for key in sorted(self.rows)]
        return pd.DataFrame(rows, columns=PER_IMAGE_COLUMNS)

    def set_metrics(self, mi: int) -> dict:
        """FID/KID of one method over all its images' patches against the originals' patches (cached by inputs)."""
        wanted = [m for m in M.SET_METRICS if m in self.wanted]
        used = [(self.images[ii], Path(self.rows[(mi, ii)]["stem"])) for ii in range(len(self.images))
                if (mi, ii) in self.rows and count_patches(*self.images[ii].rgb.shape[:2]) > 0]
        if not wanted or not any((mi, ii) in self.rows for ii in range(len(self.images))):
            return {}
        key = hashlib.sha256("\n".join(f"{image.sha256} {stem}" for image, stem in used).encode()).hexdigest()
        record_path = self.cache / "sets" / f"{key[:24]}.json"
        record = _read_json(record_path) or {}
        record["n_patches"] = sum(count_patches(*image.rgb.shape[:2]) for image, _ in used)
        missing = [name for name in wanted if name not in record]
        if missing:
            real = [patch_features(lambda image=image: image.rgb,
                                   self.cache / "originals" / f"{image.sha256[:16]}.fid.npy") for image, _ in used]
            fake = [patch_features(lambda stem=stem: read_image(stem.with_suffix(".png")), stem.with_suffix(".fid.npy"))
                    for _, stem in used]
            real_f, fake_f = (np.concatenate(f) if f else np.zeros((0, 2048), np.float32) for f in (real, fake))
            for name in missing:
                try:
                    record[name] = M.SET_FUNCTIONS[name](real_f, fake_f)
                except InputError as e:
                    method = self.methods[mi]
                    self.warn(f"{method.codec.name}:{method.label}: {name} not computed: {e} "
                              f"(images need both sides >= 256 for 256x256 patches)")
            _write_json(record_path, record)
        return {name: record[name] for name in ["n_patches", *wanted] if name in record}

    def summary(self, with_set_metrics: bool) -> pd.DataFrame:
        per_image = self.per_image()
        rows = []
        show = with_set_metrics and any(m in self.wanted for m in M.SET_METRICS)
        for mi, method in enumerate(tqdm(self.methods, desc="FID/KID on patches", unit="method", disable=not show)):
            part = per_image[(per_image.codec == method.codec.name) & (per_image.setting == method.label)]
            if part.empty:
                continue
            row = {"codec": method.codec.name, "setting": method.label, "n_images": len(part),
                   "bpp": part.bpp.mean(), "psnr": part.psnr.mean(), "ms_ssim": part.ms_ssim.mean(),
                   "lpips": part.lpips.mean()}
            if with_set_metrics:
                row.update(self.set_metrics(mi))
            rows.append(row)
        return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)

    def write_tables(self, with_set_metrics: bool) -> pd.DataFrame:
        write_csv(self.per_image(), self.out / "per_image.csv")
        summary = self.summary(with_set_metrics)
        write_csv(summary, self.out / "summary.csv")
        return summary

    def _failed(self, mi: int, ii: int, error: HificError) -> None:
        method = self.methods[mi]
        self.warn(f"{method.codec.name}:{method.label} on {self.images[ii].name}: {error}")

    def execute(self) -> RunResult:
        """Run everything (resuming from the cache) and write the CSVs."""
        self.out.mkdir(parents=True, exist_ok=True)
        self.write_originals()
        pairs = [(mi, ii) for mi in range(len(self.methods)) for ii in range(len(self.images))]
        pooled = [p for p in pairs if not self.methods[p[0]].codec.in_process]
        local = [p for p in pairs if self.methods[p[0]].codec.in_process]
        completed = False
        try:
            with tqdm(total=len(pairs), desc="coding + metrics", unit="img") as bar:
                self._run_pooled(pooled, bar)
                for mi, ii in local:
                    self._run_local(mi, ii)
                    bar.update()
            completed = True
        finally:
            if not completed:
                self.write_tables(with_set_metrics=False)
        summary = self.write_tables(with_set_metrics=True)
        return RunResult(self.per_image(), summary, self.warnings)

    def _run_local(self, mi: int, ii: int) -> None:
        try:
            record = run_task(self.methods[mi], self.images[ii], self.cache)
            self.finish_pair(mi, ii, record)
        except HificError as e:
            self._failed(mi, ii, e)

    def _run_pooled(self, pairs: list[tuple[int, int]], bar: tqdm) -> None:
        if not pairs:
            return
        if self.workers == 1:
            for mi, ii in pairs:
                self._run_local(mi, ii)
                bar.update()
            return
        with ProcessPoolExecutor(self.workers, initializer=_worker_init) as pool:
            futures: dict[Future, tuple[int, int]] = {}
            for mi, ii in pairs:
                futures[pool.submit(run_task, self.methods[mi], self.images[ii], self.cache)] = (mi, ii)
            try:
                for future in as_completed(futures):
                    mi, ii = futures[future]
                    try:
                        self.finish_pair(mi, ii, future.result())
                    except HificError as e:
                        self._failed(mi, ii, e)
                    bar.update()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))
