"""A rating study: set-up from a benchmark directory, raters, trials, answers and exports.

A study lives in its own directory (``<root>/<name>/``) holding ``study.db`` (unless
``HIFIC_STUDY_DB_URL`` points at another database, e.g. PostgreSQL) and the crops under
``crops/``.  Pages call these functions; they hold no study logic themselves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import json
import os
import random
import re
import secrets
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from tqdm import tqdm

from study_app import crops, db, design
from study_app.crops import DEGRADED, ORIGINAL
from study_app.files import write_atomic
from study_app.score import screen_raters

DB_URL_ENV = "HIFIC_STUDY_DB_URL"
ROOT_ENV = "HIFIC_STUDY_ROOT"
STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
LABEL = re.compile(r"^[\w.@ -]{1,64}$")
CHOICES = ("A", "B", "undecided")
_RNG = random.SystemRandom()


class StudyError(ValueError):
    """A bad study name, configuration, token, submission or import, as one line."""


def _check_lengths(names: list[str], where: str) -> None:
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
        _check_lengths(self.methods + self.images, "the study")

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
                crops.save_png_atomic(crop, directory / rel)
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
    write_atomic(directory / "study.json", json.dumps(dataclasses.asdict(config), indent=1).encode())
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


def add_rater(h: StudyHandle, label: str | None = None) -> db.Rater:
    """A new rater with an unguessable token; ``label`` (the ID shown to the researcher)
    must be unused."""
    token = secrets.token_urlsafe(24)
    label = label.strip() if label else f"rater-{token[:8]}"
    if not LABEL.match(label):
        raise StudyError("malformed rater ID (letters, digits, spaces, '.', '@', '-', '_'; at most 64)")
    try:
        with h.sessions.begin() as s:
            rater = db.Rater(study_id=h.study_id, token=token, label=label)
            s.add(rater)
    except IntegrityError:
        raise StudyError(f"rater ID {label!r} is already taken; use your personal link to resume") from None
    return rater


def rater_by_token(h: StudyHandle, token: object) -> db.Rater:
    """The rater holding ``token``; refuses malformed or unknown tokens."""
    if not isinstance(token, str) or not TOKEN.match(token):
        raise StudyError("malformed rater token")
    with h.sessions() as s:
        rater = s.scalar(select(db.Rater).where(db.Rater.token == token, db.Rater.study_id == h.study_id))
    if rater is None:
        raise StudyError("unknown rater token")
    return rater


def _answered(s: Session, rater_id: int) -> int:
    """How many trials a rater has answered."""
    return s.scalar(select(func.count()).select_from(db.Judgement).where(
        db.Judgement.rater_id == rater_id, db.Judgement.trial_id.is_not(None))) or 0


def progress(h: StudyHandle, rater: db.Rater) -> tuple[int, int]:
    """(answered, total) trials of a rater."""
    with h.sessions() as s:
        return _answered(s, rater.id), h.config.total_trials


def _judged_frame(s: Session, study_id: int) -> pd.DataFrame:
    """Scored answers so far (no attention checks, no excluded raters)."""
    rows = s.execute(select(db.Judgement.winner, db.Judgement.loser, db.Judgement.random_choice)
                     .join(db.Rater, db.Rater.id == db.Judgement.rater_id)
                     .where(db.Judgement.study_id == study_id, db.Judgement.attention.is_(False),
                            db.Rater.excluded.is_(False))).all()
    return pd.DataFrame(rows, columns=["winner", "loser", "random_choice"])


def _new_trial(s: Session, h: StudyHandle, rater: db.Rater, seq: int) -> db.Trial:
    """Choose and add the rater's ``seq``-th trial."""
    cfg = h.config
    if design.is_attention_slot(seq, cfg.attention_every):
        pair, image, attention = (ORIGINAL, DEGRADED), _RNG.choice(cfg.images), True
    else:
        trials = s.execute(select(db.Trial.rater_id, db.Trial.image, db.Trial.method_a, db.Trial.method_b,
                                  db.Judgement.id.is_not(None))
                           .outerjoin(db.Judgement, db.Judgement.trial_id == db.Trial.id)
                           .where(db.Trial.study_id == h.study_id, db.Trial.attention.is_(False))).all()
        assigned = Counter((design.pair_key(a, b), img) for _, img, a, b, _ in trials)
        mine = Counter((design.pair_key(a, b), img) for r, img, a, b, _ in trials if r == rater.id)
        pending = Counter(design.pair_key(a, b) for _, _, a, b, answered in trials if not answered)
        judged = _judged_frame(s, h.study_id) if cfg.mode in design.ANSWER_MODES else pd.DataFrame(
            columns=["winner", "loser", "random_choice"])
        pair, image = design.choose_comparison(cfg.methods, cfg.images, assigned, mine, cfg.mode, judged, _RNG,
                                               pending)
        attention = False
    a, b = _RNG.sample(list(pair), 2)
    trial = db.Trial(study_id=h.study_id, rater_id=rater.id, seq=seq, image=image,
                     position=_RNG.randrange(cfg.n_positions), method_a=a, method_b=b,
                     attention=attention, nonce=secrets.token_urlsafe(16))
    s.add(trial)
    return trial


def current_trial(h: StudyHandle, rater: db.Rater) -> db.Trial | None:
    """The rater's open trial (created on demand, its display time recorded once), or None
    when the rater has answered them all."""
    if not h.config.methods:
        raise StudyError("this study holds imported judgements and takes no new answers")
    for _ in range(3):  # a concurrent session of the same rater may win the race for a seq
        try:
            with h.sessions.begin() as s:
                answered = select(db.Judgement.trial_id).where(db.Judgement.rater_id == rater.id,
                                                               db.Judgement.trial_id.is_not(None))
                trial = s.scalar(select(db.Trial).where(db.Trial.rater_id == rater.id,
                                                        db.Trial.id.not_in(answered)).order_by(db.Trial.seq))
                if trial is None:
                    n = s.scalar(select(func.count()).select_from(db.Trial).where(db.Trial.rater_id == rater.id))
                    if n >= h.config.total_trials:
                        return None
                    trial = _new_trial(s, h, rater, n)
                if trial.shown_at is None:
                    trial.shown_at = db.utcnow()
                s.flush()
                return trial
        except IntegrityError:
            continue
    raise StudyError("could not assign a trial; please reload the page")


def trial_item_paths(h: StudyHandle, trial: db.Trial) -> dict[str, Path]:
    """Files of the reference, A and B crops of ``trial``, each checked to lie inside the
    study directory."""
    with h.sessions() as s:
        items = {i.method: i for i in s.scalars(select(db.Item).where(
            db.Item.study_id == h.study_id, db.Item.image == trial.image,
            db.Item.position == trial.position))}
    out = {}
    for role, method in (("reference", ORIGINAL), ("A", trial.method_a), ("B", trial.method_b)):
        if method not in items:
            raise StudyError(f"the study lacks a crop for trial {trial.id}")
        out[role] = safe_path(h, items[method].path)
    return out


def safe_path(h: StudyHandle, relative: str) -> Path:
    """``relative`` resolved inside the study directory; refuses anything outside it."""
    root = h.directory.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise StudyError("file outside the study directory or missing")
    return path


def submit(h: StudyHandle, token: str, trial_id: int, nonce: str, choice: str) -> str:
    """Store a rater's answer to one trial exactly once.  Returns ``"stored"`` or
    ``"duplicate"`` (already answered: double click, refresh, replay).  Refuses, with
    :class:`StudyError`, forged answers: a token, trial or nonce that do not belong together,
    or an unknown choice.  "Can't decide" stores a random pick with ``random_choice``."""
    if choice not in CHOICES:
        raise StudyError(f"unknown choice {choice!r}")
    rater = rater_by_token(h, token)
    try:
        with h.sessions.begin() as s:
            trial = s.get(db.Trial, trial_id) if isinstance(trial_id, int) else None
            if (trial is None or trial.rater_id != rater.id or not isinstance(nonce, str)
                    or not hmac.compare_digest(trial.nonce.encode(), nonce.encode())):
                raise StudyError("this answer does not match a trial of this rater")
            if s.scalar(select(db.Judgement.id).where(db.Judgement.trial_id == trial.id)) is not None:
                return "duplicate"
            item = s.scalar(select(db.Item).where(db.Item.study_id == h.study_id, db.Item.image == trial.image,
                                                  db.Item.position == trial.position, db.Item.method == ORIGINAL))
            random_choice = choice == "undecided"
            pick = _RNG.choice("AB") if random_choice else choice
            winner, loser = (trial.method_a, trial.method_b) if pick == "A" else (trial.method_b, trial.method_a)
            now = db.utcnow()
            s.add(db.Judgement(
                study_id=h.study_id, rater_id=rater.id, trial_id=trial.id, image=trial.image,
                crop_x=item.x if item else None, crop_y=item.y if item else None,
                crop_w=item.w if item else None, crop_h=item.h if item else None,
                method_a=trial.method_a, method_b=trial.method_b, choice=choice, winner=winner,
                loser=loser, random_choice=random_choice, attention=trial.attention,
                correct=(not random_choice and winner == ORIGINAL) if trial.attention else None,
                shown_at=trial.shown_at, answered_at=now,
                duration_s=(now - trial.shown_at).total_seconds() if trial.shown_at else None))
    except IntegrityError:
        return "duplicate"
    return "stored"


EXPORT_COLUMNS = ["rater", "image", "winner", "loser", "random_choice", "method_a", "method_b",
                  "choice", "attention", "correct", "crop_x", "crop_y", "crop_w", "crop_h",
                  "shown_at", "answered_at", "duration_s", "source", "excluded"]


def judgements(h: StudyHandle, include_excluded: bool = True) -> pd.DataFrame:
    """All judgements of the study with the rater's ID (never the token), in the CSV/JSON
    export layout that :func:`study_app.score.load_judgements` reads."""
    query = (select(db.Judgement, db.Rater.label, db.Rater.excluded)
             .join(db.Rater, db.Rater.id == db.Judgement.rater_id)
             .where(db.Judgement.study_id == h.study_id).order_by(db.Judgement.id))
    with h.sessions() as s:
        rows = [{**{c: getattr(j, c) for c in EXPORT_COLUMNS if hasattr(j, c)}, "rater": label,
                 "excluded": excluded} for j, label, excluded in s.execute(query)]
    df = pd.DataFrame(rows, columns=EXPORT_COLUMNS)
    return df if include_excluded else df[~df["excluded"].astype(bool)].reset_index(drop=True)


def scored_judgements(h: StudyHandle) -> pd.DataFrame:
    """Judgements that enter the scores: no attention checks, no excluded raters."""
    df = judgements(h, include_excluded=False)
    return df[~df["attention"].astype(bool)].reset_index(drop=True)


RATER_COLUMNS = ["rater_id", "rater", "answered", "total", "attention_checks", "attention_accuracy",
                 "agreement", "outlier_score", "flagged", "median_s", "excluded", "created_at"]


def rater_summary(h: StudyHandle) -> pd.DataFrame:
    """Per rater: answered/total trials, attention-check accuracy, the screening of
    :func:`study_app.score.screen_raters` against the consensus of the other raters
    (``agreement``, ``outlier_score``, ``flagged``; over every rater's comparisons, the
    excluded ones' too, so that excluding a rater leaves the flags as they were), median
    seconds per trial, whether excluded.  Flagged raters are only shown: excluding them is
    the researcher's decision."""
    with h.sessions() as s:
        raters = s.execute(select(db.Rater.id, db.Rater.label, db.Rater.excluded, db.Rater.created_at)
                           .where(db.Rater.study_id == h.study_id).order_by(db.Rater.id)).all()
    df = judgements(h)
    screening = screen_raters(df[~df["attention"].astype(bool)]).set_index("rater")
    rows = []
    for rid, label, excluded, created in raters:
        mine = df[df["rater"] == label]
        checks = mine[mine["attention"].astype(bool)]
        screen = screening.loc[label] if label in screening.index else None
        rows.append({"rater_id": rid, "rater": label, "answered": len(mine),
                     "total": h.config.total_trials if h.config.methods else len(mine),
                     "attention_checks": len(checks),
                     "attention_accuracy": checks["correct"].astype(float).mean() if len(checks) else np.nan,
                     "agreement": screen["agreement"] if screen is not None else np.nan,
                     "outlier_score": screen["outlier_score"] if screen is not None else np.nan,
                     "flagged": bool(screen["flagged"]) if screen is not None else False,
                     "median_s": mine["duration_s"].median() if len(mine) else np.nan,
                     "excluded": bool(excluded), "created_at": created})
    return pd.DataFrame(rows, columns=RATER_COLUMNS)


def pair_summary(h: StudyHandle) -> pd.DataFrame:
    """Per method pair: number of scored judgements and how often the first method won."""
    df = scored_judgements(h)
    if df.empty:
        return pd.DataFrame(columns=["method_1", "method_2", "n", "wins_1"])
    pairs = [design.pair_key(w, l) for w, l in zip(df["winner"], df["loser"])]
    df = df.assign(method_1=[p[0] for p in pairs], method_2=[p[1] for p in pairs])
    df["win_1"] = (df["winner"] == df["method_1"]).astype(int)
    return (df.groupby(["method_1", "method_2"]).agg(n=("win_1", "size"), wins_1=("win_1", "sum"))
            .reset_index())


def set_excluded(h: StudyHandle, rater_id: int, excluded: bool) -> None:
    """Exclude a rater from the scores (or include again)."""
    with h.sessions.begin() as s:
        rater = s.get(db.Rater, rater_id)
        if rater is None or rater.study_id != h.study_id:
            raise StudyError("no such rater in this study")
        rater.excluded = excluded


CROP_COLUMNS = ("crop_x", "crop_y", "crop_w", "crop_h")


def _optional_int(value: object) -> int | None:
    """An integer cell, or None when empty."""
    return None if value is None or pd.isna(value) else int(value)


def import_judgements(h: StudyHandle, df: pd.DataFrame) -> int:
    """Add judgements loaded by :func:`study_app.score.load_judgements` (e.g. HiFiC's
    ``userstudy.json``) to the study as source ``import``, one rater per rater ID.
    Returns the number of rows added."""
    _check_lengths([*df["image"], *df["winner"], *df["loser"]], "the import")
    with h.sessions.begin() as s:
        raters = {label: rid for rid, label in s.execute(
            select(db.Rater.id, db.Rater.label).where(db.Rater.study_id == h.study_id))}
        for label in sorted(set(df["rater"]) - set(raters)):
            if not LABEL.match(str(label)):
                raise StudyError(f"malformed rater ID {label!r} in the import")
            rater = db.Rater(study_id=h.study_id, token=secrets.token_urlsafe(24), label=label)
            s.add(rater)
            s.flush()
            raters[label] = rater.id
        s.add_all(db.Judgement(
            study_id=h.study_id, rater_id=raters[r.rater], image=r.image, winner=r.winner, loser=r.loser,
            random_choice=bool(r.random_choice), source="import",
            **{c: _optional_int(getattr(r, c, None)) for c in CROP_COLUMNS})
            for r in df.itertuples(index=False))
    return len(df)


def benchmark_metrics(h: StudyHandle) -> pd.DataFrame:
    """The benchmark's FID, KID and LPIPS for the study's methods (``summary.csv``),
    each normalised so that the best method is 0 and the worst 1 (as in Fig. 3); empty when
    the benchmark directory has no summary."""
    path = Path(h.config.benchmark_dir) / "summary.csv" if h.config.benchmark_dir else None
    if path is None or not path.is_file():
        return pd.DataFrame(columns=["method", "metric", "value", "normalized"])
    summary = pd.read_csv(path)
    summary["method"] = summary["codec"].astype(str) + ":" + summary["setting"].astype(str)
    summary = summary[summary["method"].isin(h.config.methods)]
    rows = []
    for metric in ("fid", "kid", "lpips"):
        values = summary.set_index("method")[metric].dropna() if metric in summary else pd.Series(dtype=float)
        span = values.max() - values.min() if len(values) else 0.0
        rows += [{"method": m, "metric": metric, "value": v,
                  "normalized": (v - values.min()) / span if span > 0 else 0.0} for m, v in values.items()]
    return pd.DataFrame(rows, columns=["method", "metric", "value", "normalized"])


def save_export(h: StudyHandle, df: pd.DataFrame, fmt: str) -> Path:
    """Write the export to ``exports/judgements.<fmt>`` in the study folder, atomically."""
    return write_atomic(h.directory / "exports" / f"judgements.{fmt}", export_bytes(df, fmt))


def export_bytes(df: pd.DataFrame, fmt: str) -> bytes:
    """Judgements as CSV or JSON (records) bytes."""
    if fmt == "csv":
        return df.to_csv(index=False).encode()
    if fmt == "json":
        return df.to_json(orient="records", date_format="iso", indent=1).encode()
    raise StudyError(f"unknown export format {fmt!r}")
