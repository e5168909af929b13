"""Where a rating study lives and how it is set up: its configuration, its directory and
database, and the crops cut from a benchmark directory.

A study lives in its own directory (``<root>/<name>/``) holding ``study.json``, ``study.db``
(unless ``HIFIC_STUDY_DB_URL`` points at another database, e.g. PostgreSQL) and the crops
under ``crops/``.  Raters, trials, reports and import/export live in :mod:`study_app.raters`,
:mod:`study_app.trials`, :mod:`study_app.reports` and :mod:`study_app.transfer`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker
from tqdm import tqdm

from hific.image_io import atomic_write_bytes, write_png
from study_app import crops, db, design
from study_app.crops import DEGRADED, ORIGINAL

DB_URL_ENV = "HIFIC_STUDY_DB_URL"
ROOT_ENV = "HIFIC_STUDY_ROOT"
STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class StudyError(ValueError):
    """A bad study name, configuration, token, submission or import, as one line."""


def check_lengths(names: list[str], where: str) -> None:
    """Refuse image or method names longer than the database columns hold."""
    long = next((str(n) for n in names if len(str(n)) > db.NAME_LENGTH), None)
    if long is not None:
        raise StudyError(f"a name in {where} is longer than {db.NAME_LENGTH} characters: {long[:40]}…")


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """How a study is built and run.  ``crop_size`` 768 is the paper's; ``n_positions`` crop
    positions per image (the first centred, the rest random) vary across trials;
    ``mode`` is ``balanced``, ``adaptive`` or ``information`` (:mod:`study_app.design`); one attention check follows every
    ``attention_every`` comparisons (0: none); ``open_registration`` lets raters without a
    link enter an ID."""

    benchmark_dir: str
    methods: list[str]
    images: list[str]
    crop_size: int = 768
    n_positions: int = 3
    comparisons_per_rater: int = 50
    mode: str = "balanced"
    attention_every: int = 10
    open_registration: bool = True
    seed: int = 0

    def check(self) -> None:
        """Raise :class:`StudyError` naming the first bad field."""
        if len(set(self.methods)) < 2:
            raise StudyError("choose at least two methods")
        if not self.images:
            raise StudyError("choose at least one image")
        if self.crop_size < 16 or self.n_positions < 1 or self.comparisons_per_rater < 1:
            raise StudyError("crop size must be >= 16, positions and comparisons >= 1")
        if self.mode not in design.MODES:
            raise StudyError(f"pair mode must be one of {', '.join(design.MODES)}")
        if self.attention_every < 0:
            raise StudyError("attention_every must be >= 0")
        check_lengths(self.methods + self.images, "the study")

    @property
    def total_trials(self) -> int:
        """Trials per rater, attention checks included."""
        return design.n_trials(self.comparisons_per_rater, self.attention_every)


@dataclasses.dataclass(frozen=True)
class StudyHandle:
    """An opened study: its directory, database sessions, row id and configuration."""

    directory: Path
    sessions: sessionmaker
    study_id: int
    config: StudyConfig

    @property
    def name(self) -> str:
        return self.directory.name


def default_root() -> Path:
    """Where studies live: ``$HIFIC_STUDY_ROOT``, else ``studies/`` in the working directory."""
    return Path(os.environ.get(ROOT_ENV, "studies"))


def study_dir(root: Path, name: str) -> Path:
    """The directory of study ``name`` under ``root``; refuses names that could leave it."""
    if not isinstance(name, str) or not STUDY_NAME.match(name):
        raise StudyError("malformed study name (letters, digits, '-' and '_' only)")
    root = Path(root).resolve()
    path = (root / name).resolve()
    if path.parent != root:
        raise StudyError("malformed study name")
    return path


def list_studies(root: Path) -> list[str]:
    """Names of the studies under ``root``."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if STUDY_NAME.match(p.name) and (p / "study.json").is_file())


def safe_path(h: StudyHandle, relative: str) -> Path:
    """``relative`` resolved inside the study directory; refuses anything outside it."""
    root = h.directory.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise StudyError("file outside the study directory or missing")
    return path


def _db_url(directory: Path) -> str:
    """The database URL of a study: ``HIFIC_STUDY_DB_URL`` or ``study.db`` in its directory."""
    return os.environ.get(DB_URL_ENV) or db.sqlite_url(directory)


def _make_items(directory: Path, config: StudyConfig) -> list[db.Item]:
    """Cut and save every crop (original, degraded, each method) and return their rows."""
    bench = Path(config.benchmark_dir)
    rng = np.random.default_rng(config.seed)
    methods = sorted(set(config.methods))
    items = []
    for image in tqdm(config.images, desc="cutting crops", unit="image"):
        original = crops.load_rgb(crops.original_path(bench, image))
        recons = {m: crops.load_rgb(crops.recon_path(bench, m, image)) for m in methods}
        for m, img in recons.items():
            if img.size != original.size:
                raise StudyError(f"{m} reconstruction of {image} is {img.size}, original {original.size}")
        boxes = crops.crop_boxes(*original.size, config.crop_size, config.n_positions, rng)
        for pos, box in enumerate(boxes):
            sources = {ORIGINAL: crops.cut(original, box), DEGRADED: crops.degrade(crops.cut(original, box))}
            sources.update({m: crops.cut(recons[m], box) for m in methods})
            for k, (method, crop) in enumerate(sources.items()):
                rel = f"crops/{image}/{pos}/{k}.png"
                write_png(directory / rel, np.asarray(crop))
                items.append(db.Item(image=image, method=method, position=pos, x=box[0], y=box[1],
                                     w=box[2], h=box[3], path=rel))
    return items


@contextlib.contextmanager
def _new_directory(root: Path, name: str) -> Iterator[Path]:
    """The fresh directory of study ``name``; removed again when its set-up fails, so that
    no half-built study is left behind.  Refuses an existing study."""
    directory = study_dir(root, name)
    if directory.exists() and any(directory.iterdir()):
        raise StudyError(f"study {name!r} already exists")
    directory.mkdir(parents=True, exist_ok=True)
    try:
        yield directory
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


def create_study(root: Path, name: str, config: StudyConfig) -> StudyHandle:
    """Build study ``name`` under ``root`` from a benchmark directory: cut the crops and
    record the study and its items.  Refuses an existing study."""
    config.check()
    available = set(crops.benchmark_methods(Path(config.benchmark_dir)))
    unknown = sorted(set(config.methods) - available)
    if unknown:
        raise StudyError(f"methods not in the benchmark directory: {', '.join(unknown)}")
    missing = sorted(set(config.images) - set(crops.benchmark_images(Path(config.benchmark_dir))))
    if missing:
        raise StudyError(f"images not in the benchmark directory: {', '.join(missing)}")
    with _new_directory(root, name) as directory:
        return _register(directory, config, _make_items(directory, config))


def create_import_study(root: Path, name: str) -> StudyHandle:
    """An empty study without crops, to hold imported judgements (e.g. the HiFiC data)."""
    config = StudyConfig(benchmark_dir="", methods=[], images=[], comparisons_per_rater=1,
                         attention_every=0, open_registration=False)
    with _new_directory(root, name) as directory:
        return _register(directory, config, [])


def _register(directory: Path, config: StudyConfig, items: list[db.Item]) -> StudyHandle:
    """Write the study's rows, then ``study.json``.  A shared database (``HIFIC_STUDY_DB_URL``)
    holds the studies of every root and host, so the name must be new there too."""
    sessions = db.session_factory(_db_url(directory))
    try:
        with sessions.begin() as s:
            study = db.Study(name=directory.name, config=json.dumps(dataclasses.asdict(config)))
            s.add(study)
            s.flush()
            for item in items:
                item.study_id = study.id
            s.add_all(items)
            study_id = study.id
    except IntegrityError:
        raise StudyError(f"study {directory.name!r} already exists in the study database") from None
    atomic_write_bytes(directory / "study.json", json.dumps(dataclasses.asdict(config), indent=1).encode())
    return StudyHandle(directory, sessions, study_id, config)


def open_study(root: Path, name: str) -> StudyHandle:
    """Open an existing study."""
    directory = study_dir(root, name)
    if not (directory / "study.json").is_file():
        raise StudyError(f"no study named {name!r}")
    sessions = db.session_factory(_db_url(directory))
    with sessions() as s:
        study = s.scalar(select(db.Study).where(db.Study.name == directory.name))
    if study is None:
        raise StudyError(f"study {name!r} is not in its database")
    return StudyHandle(directory, sessions, study.id, StudyConfig(**json.loads(study.config)))
