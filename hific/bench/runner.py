"""The benchmark run: every (codec, setting) on every image, cached and resumable, written as CSVs and PNGs.

Output directory (read by the study app and the analysis notebooks)::

    per_image.csv  summary.csv  images.csv  originals/<image>.png  recon/<codec>/<setting>/<image>.png
    cache/   (see :mod:`hific.bench.cache`)

The tables' columns are defined in :mod:`hific.bench.columns`; FID/KID come from :mod:`hific.bench.set_metrics`.
"""
from __future__ import annotations

import math
import os
import signal
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from tqdm import tqdm

from hific.bench import metrics as M
from hific.bench import set_metrics
from hific.bench.cache import entry_dir, read_json, write_json
from hific.bench.codecs import Coder
from hific.bench.columns import IMAGES_COLUMNS, PER_IMAGE_COLUMNS, SUMMARY_COLUMNS
from hific.bench.datasets import BenchImage
from hific.bench.patches import count_patches
from hific.bench.rate_matching import RelativeRate, bpp_of, search_quality
from hific.errors import HificError, InputError
from hific.image_io import atomic_write_bytes, read_image, write_png

COLUMN_OF_METRIC = {"psnr": "psnr", "msssim": "ms_ssim", "lpips": "lpips"}


@dataclass(frozen=True)
class Method:
    """A (coder, setting) pair to run; ``target`` set means: search the quality per image to hit that bpp, or
    that multiple of another method's bpp on the same image."""

    codec: Coder
    setting: str
    target: float | RelativeRate | None = None

    @property
    def label(self) -> str:
        if isinstance(self.target, RelativeRate):
            return self.target.label
        return f"bpp{self.target:.3f}" if self.target is not None else self.codec.label(self.setting)


@dataclass
class RunResult:
    """What a run produced: the two tables and the warnings it printed."""

    per_image: pd.DataFrame
    summary: pd.DataFrame
    warnings: list[str] = field(default_factory=list)


def code_one(codec: Coder, setting: str, image: BenchImage, cache: Path) -> dict:
    """Code one image (or reuse the cache); returns the entry's record with its file stem."""
    stem = entry_dir(cache, codec, setting) / image.sha256[:16]
    record = read_json(stem.with_suffix(".json"))
    if record is not None and stem.with_suffix(".png").exists():
        return {**record, "stem": str(stem)}
    coded = codec.code(image, setting)
    if coded.recon.shape != image.rgb.shape or coded.recon.dtype != np.uint8:
        raise InputError(f"{codec.name}:{setting} decoded {image.name} to shape {coded.recon.shape}, "
                         f"expected {image.rgb.shape}")
    if coded.data is not None:
        atomic_write_bytes(stem.with_suffix(".bin"), coded.data)
    write_png(stem.with_suffix(".png"), coded.recon)
    record = {"setting": setting, "bytes": coded.n_bytes, "encode_s": coded.encode_s, "decode_s": coded.decode_s}
    write_json(stem.with_suffix(".json"), record)
    return {**record, "stem": str(stem)}


def resolve_setting(method: Method, image: BenchImage, cache: Path) -> str:
    """The concrete setting for this image: the method's own, or the cached/searched match-bpp quality (for a
    bpp target; :meth:`Run.task` turns a relative one into the image's bpp)."""
    if method.target is None:
        return method.setting
    codec = method.codec
    path = cache / codec.name / codec.version(method.setting) / method.label / f"{image.sha256[:16]}.json"
    found = read_json(path)
    if found is None:
        found = {"setting": codec.setting(search_quality(codec, method.target, image))}
        write_json(path, found)
    return found["setting"]


def wants_features(wanted: list[str]) -> bool:
    """Whether the run computes FID/KID, so that every image's patch features are needed."""
    return any(m in set_metrics.SET_METRICS for m in wanted)


def measure_task(record: dict, image: BenchImage, wanted: list[str], where: str) -> tuple[dict, list[str]]:
    """The per-image metrics a coded image's cache entry lacks and, for FID/KID, its patch features (cached
    beside it); returns the record and the warnings. Runs in the worker pool, beside the coding."""
    warnings: list[str] = []
    record = add_image_metrics(record, image, wanted, warnings.append, where)
    if wants_features(wanted) and count_patches(*image.rgb.shape[:2]):
        set_metrics.recon_features(Path(record["stem"]))
    return record, warnings


def run_task(method: Method, image: BenchImage, cache: Path, wanted: list[str], where: str) -> tuple[dict, list[str]]:
    """Resolve the setting, code one image and measure it; the unit of work of the worker pool."""
    return measure_task(code_image(method, image, cache), image, wanted, where)


def code_image(method: Method, image: BenchImage, cache: Path) -> dict:
    """Resolve the setting and code one image (or reuse the cache)."""
    return code_one(method.codec, resolve_setting(method, image, cache), image, cache)


def original_features_task(image: BenchImage, root: Path) -> None:
    """Cache the reference side's patch features of one original (FID/KID), in the worker pool."""
    set_metrics.original_features(image, root)


class InlineExecutor(Executor):
    """The worker pool's interface for ``--workers 1``: every task runs at once in this process."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as e:  # re-raised by future.result(), as from a process pool
            future.set_exception(e)
        return future


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
        write_json(Path(record["stem"]).with_suffix(".json"), stored)
    return record


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

    def set_metrics(self, mi: int, compute: bool) -> dict:
        """``n_patches`` of one method and, when ``compute``, its FID/KID against the originals' patches."""
        method = self.methods[mi]
        pairs = [(self.images[ii], Path(self.rows[(mi, ii)]["stem"])) for ii in range(len(self.images))
                 if (mi, ii) in self.rows]
        return set_metrics.method_set_metrics(pairs, self.wanted if compute else [], self.cache, self.warn,
                                              f"{method.codec.name}:{method.label}")

    def summary(self, with_set_metrics: bool) -> pd.DataFrame:
        per_image = self.per_image()
        rows = []
        show = with_set_metrics and any(m in self.wanted for m in set_metrics.SET_METRICS)
        for mi, method in enumerate(tqdm(self.methods, desc="FID/KID on patches", unit="method", disable=not show)):
            part = per_image[(per_image.codec == method.codec.name) & (per_image.setting == method.label)]
            if part.empty:
                continue
            row = {"codec": method.codec.name, "setting": method.label, "n_images": len(part),
                   "bpp": part.bpp.mean(), "psnr": part.psnr.mean(), "ms_ssim": part.ms_ssim.mean(),
                   "lpips": part.lpips.mean()}
            row.update(self.set_metrics(mi, with_set_metrics))
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
        """Run everything (resuming from the cache) and write the CSVs.

        The worker pool codes the classical codecs and measures every coded image (per-image metrics and, for
        FID/KID, patch features) while this process codes with the learned codecs, so that neither waits for
        the other; FID/KID at the end only compare cached features."""
        self.out.mkdir(parents=True, exist_ok=True)
        self.write_originals()
        pairs = [(mi, ii) for mi in range(len(self.methods)) for ii in range(len(self.images))]
        relative = [p for p in pairs if isinstance(self.methods[p[0]].target, RelativeRate)]
        completed = False
        try:
            with self._pool() as pool, tqdm(total=len(pairs), desc="coding + metrics", unit="img") as bar:
                references = ([pool.submit(original_features_task, image, self.cache) for image in self.images]
                              if wants_features(self.wanted) else [])
                for phase in ([p for p in pairs if p not in relative], relative):  # references first
                    self._run_phase(phase, pool, bar)
                for future in references:
                    future.result()
            completed = True
        finally:
            if not completed:
                self.write_tables(with_set_metrics=False)
        summary = self.write_tables(with_set_metrics=True)
        return RunResult(self.per_image(), summary, self.warnings)

    def _pool(self) -> Executor:
        if self.workers == 1:
            return InlineExecutor()
        return ProcessPoolExecutor(self.workers, initializer=_worker_init)

    def task(self, mi: int, ii: int) -> Method:
        """The method that codes image ``ii``: a relative rate becomes that multiple of the reference's bpp."""
        method = self.methods[mi]
        if not isinstance(method.target, RelativeRate):
            return method
        rate = method.target
        rows = [row for (mj, ij), row in self.rows.items() if ij == ii
                and (self.methods[mj].codec.name, self.methods[mj].label) == (rate.codec, rate.setting)]
        if not rows:
            raise InputError(f"{rate.codec}:{rate.setting} has no bpp on {self.images[ii].name} to match")
        return replace(method, target=rate.factor * rows[0]["bpp"])

    def where(self, mi: int, ii: int) -> str:
        return f"{self.methods[mi].codec.name}:{self.methods[mi].label} on {self.images[ii].name}"

    def _run_phase(self, pairs: list[tuple[int, int]], pool: Executor, bar: tqdm) -> None:
        """Code and measure ``pairs``: classical codecs as pool tasks, learned ones here (then measured in the
        pool); results are collected as they finish."""
        futures: dict[Future, tuple[int, int]] = {}
        try:
            for mi, ii in pairs:
                if not self.methods[mi].codec.in_process:
                    self._submit(futures, (mi, ii), bar, lambda mi=mi, ii=ii: pool.submit(
                        run_task, self.task(mi, ii), self.images[ii], self.cache, self.wanted, self.where(mi, ii)))
            for mi, ii in pairs:
                if self.methods[mi].codec.in_process:
                    self._submit(futures, (mi, ii), bar, lambda mi=mi, ii=ii: pool.submit(
                        measure_task, code_image(self.task(mi, ii), self.images[ii], self.cache),
                        self.images[ii], self.wanted, self.where(mi, ii)))
            self._collect(futures, bar, wait=True)
        except BaseException:
            for future in futures:
                future.cancel()
            raise

    def _submit(self, futures: dict[Future, tuple[int, int]], pair: tuple[int, int], bar: tqdm,
                submit: Callable[[], Future]) -> None:
        """Submit one pair's task, then finish whichever tasks are done (with ``--workers 1``: this one)."""
        try:
            futures[submit()] = pair
        except HificError as e:
            self._failed(*pair, e)
            bar.update()
        self._collect(futures, bar, wait=False)

    def _collect(self, futures: dict[Future, tuple[int, int]], bar: tqdm, wait: bool) -> None:
        """Finish the pairs whose tasks are done (all of them, when ``wait``)."""
        done = list(as_completed(futures)) if wait else [f for f in futures if f.done()]
        for future in done:
            mi, ii = futures.pop(future)
            try:
                record, warnings = future.result()
                for message in warnings:
                    self.warn(message)
                self.finish_pair(mi, ii, record)
            except HificError as e:
                self._failed(mi, ii, e)
            bar.update()


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))
