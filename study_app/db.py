"""Storage of a rating study: studies, items (crops), raters, trials and judgements.

SQLAlchemy over SQLite in WAL mode by default (``study.db`` in the study directory); any
SQLAlchemy URL, e.g. PostgreSQL through psycopg 3 (``postgresql+psycopg://user:pw@host/db``,
tested against a real server), works for studies with many raters on several hosts.
Exactly-once answers rest on the database: a judgement's ``trial_id`` is unique, so double
clicks, refreshes, replays and concurrent sessions can never store a trial twice.
"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

from sqlalchemy import (Boolean, DateTime, Float, ForeignKey, Integer, String, Text,
                        UniqueConstraint, create_engine, event)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

DB_FILE = "study.db"
NAME_LENGTH = 255  # image and method names; PostgreSQL enforces it, SQLite would not


def utcnow() -> dt.datetime:
    """The current time in UTC (naive, as stored)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    """Declarative base of the study tables."""


class Study(Base):
    """One study: its name and configuration (JSON text, see ``study_app.studies.StudyConfig``)."""

    __tablename__ = "studies"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    config: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Item(Base):
    """One crop shown to raters: a method's reconstruction (or the original, or the degraded
    attention-check version) of an image at one crop position; ``path`` is relative to the
    study directory."""

    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("study_id", "image", "position", "method"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    image: Mapped[str] = mapped_column(String(NAME_LENGTH))
    method: Mapped[str] = mapped_column(String(NAME_LENGTH))
    position: Mapped[int] = mapped_column(Integer)
    x: Mapped[int] = mapped_column(Integer)
    y: Mapped[int] = mapped_column(Integer)
    w: Mapped[int] = mapped_column(Integer)
    h: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(512))


class Rater(Base):
    """A rater, known by an unguessable token; ``label`` is the ID shown to the researcher."""

    __tablename__ = "raters"
    __table_args__ = (UniqueConstraint("study_id", "label"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    token: Mapped[str] = mapped_column(String(128), unique=True)
    label: Mapped[str] = mapped_column(String(NAME_LENGTH))
    excluded: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Trial(Base):
    """The ``seq``-th comparison assigned to a rater: image, crop position and the methods
    shown as A (``method_a``) and B; ``nonce`` must come back with the answer."""

    __tablename__ = "trials"
    __table_args__ = (UniqueConstraint("rater_id", "seq"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    image: Mapped[str] = mapped_column(String(NAME_LENGTH))
    position: Mapped[int] = mapped_column(Integer)
    method_a: Mapped[str] = mapped_column(String(NAME_LENGTH))
    method_b: Mapped[str] = mapped_column(String(NAME_LENGTH))
    attention: Mapped[bool] = mapped_column(Boolean, default=False)
    nonce: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    shown_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class Judgement(Base):
    """One answer.  ``winner`` is the method judged closer to the original (for "can't
    decide", a random pick with ``random_choice`` set, as in the HiFiC data); ``choice`` is
    what the rater pressed (``A``, ``B`` or ``undecided``); ``trial_id`` is unique (NULL for
    imported judgements)."""

    __tablename__ = "judgements"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"), index=True)
    trial_id: Mapped[int | None] = mapped_column(ForeignKey("trials.id"), unique=True, nullable=True)
    image: Mapped[str] = mapped_column(String(NAME_LENGTH))
    crop_x: Mapped[int | None] = mapped_column(Integer, nullable=True)
    crop_y: Mapped[int | None] = mapped_column(Integer, nullable=True)
    crop_w: Mapped[int | None] = mapped_column(Integer, nullable=True)
    crop_h: Mapped[int | None] = mapped_column(Integer, nullable=True)
    method_a: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    method_b: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    choice: Mapped[str | None] = mapped_column(String(16), nullable=True)
    winner: Mapped[str] = mapped_column(String(NAME_LENGTH))
    loser: Mapped[str] = mapped_column(String(NAME_LENGTH))
    random_choice: Mapped[bool] = mapped_column(Boolean, default=False)
    attention: Mapped[bool] = mapped_column(Boolean, default=False)
    correct: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    shown_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    answered_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    source: Mapped[str] = mapped_column(String(16), default="app")


def sqlite_url(study_dir: Path) -> str:
    """The default database URL of a study: ``study.db`` in its directory."""
    return f"sqlite:///{Path(study_dir).resolve() / DB_FILE}"


def _configure_sqlite(engine: Engine) -> None:
    """WAL journal, a 30 s busy timeout and ``BEGIN IMMEDIATE`` transactions, so that
    concurrent writers queue for the lock instead of failing on a read-to-write upgrade."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" event issue BEGIN
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@functools.lru_cache(maxsize=32)
def get_engine(url: str) -> Engine:
    """One engine per database URL and process, with the tables created."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        _configure_sqlite(engine)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    Base.metadata.create_all(engine)
    return engine


def session_factory(url: str) -> sessionmaker:
    """A session factory bound to the engine of ``url``."""
    return sessionmaker(get_engine(url), expire_on_commit=False)
