"""Judgements in and out of a study: CSV/JSON exports and the import of judgements loaded
by :func:`study_app.score.load_judgements` (e.g. HiFiC's published ``userstudy.json``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sqlalchemy import select

from hific.image_io import atomic_write_bytes
from study_app import db
from study_app.raters import new_rater
from study_app.studies import StudyError, StudyHandle, check_lengths

CROP_COLUMNS = ("crop_x", "crop_y", "crop_w", "crop_h")
FORMATS = ("csv", "json")


def _optional_int(value: object) -> int | None:
    """An integer cell, or None when empty."""
    return None if value is None or pd.isna(value) else int(value)


def import_judgements(h: StudyHandle, df: pd.DataFrame) -> int:
    """Add judgements loaded by :func:`study_app.score.load_judgements` to the study as
    source ``import``, one rater per rater ID.  Returns the number of rows added."""
    check_lengths([*df["image"], *df["winner"], *df["loser"]], "the import")
    with h.sessions.begin() as s:
        raters = {label: rid for rid, label in s.execute(
            select(db.Rater.id, db.Rater.label).where(db.Rater.study_id == h.study_id))}
        for label in sorted(set(df["rater"]) - set(raters)):
            raters[label] = new_rater(s, h, label, " in the import").id
        s.add_all(db.Judgement(
            study_id=h.study_id, rater_id=raters[r.rater], image=r.image, winner=r.winner, loser=r.loser,
            random_choice=bool(r.random_choice), source="import",
            **{c: _optional_int(getattr(r, c, None)) for c in CROP_COLUMNS})
            for r in df.itertuples(index=False))
    return len(df)


def export_bytes(df: pd.DataFrame, fmt: str) -> bytes:
    """Judgements as CSV or JSON (records) bytes."""
    if fmt == "csv":
        return df.to_csv(index=False).encode()
    if fmt == "json":
        return df.to_json(orient="records", date_format="iso", indent=1).encode()
    raise StudyError(f"unknown export format {fmt!r}")


def save_export(h: StudyHandle, df: pd.DataFrame, fmt: str) -> Path:
    """Write the export to ``exports/judgements.<fmt>`` in the study folder, atomically."""
    return atomic_write_bytes(h.directory / "exports" / f"judgements.{fmt}", export_bytes(df, fmt))
