"""The raters of a study: their IDs, their unguessable tokens (the personal links) and the
researcher's exclusions."""

from __future__ import annotations

import re
import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from study_app import db
from study_app.studies import StudyError, StudyHandle

TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
LABEL = re.compile(r"^[\w.@ -]{1,64}$")


def new_rater(s: Session, h: StudyHandle, label: str | None = None, where: str = "") -> db.Rater:
    """Add a rater with a fresh unguessable token in session ``s``; ``label`` is the ID shown
    to the researcher (default: made from the token).  Refuses a malformed ID, naming
    ``where`` it came from."""
    token = secrets.token_urlsafe(24)
    label = f"rater-{token[:8]}" if label is None else label
    if not LABEL.match(str(label)):
        raise StudyError(f"malformed rater ID {label!r}{where} "
                         "(letters, digits, spaces, '.', '@', '-', '_'; at most 64)")
    rater = db.Rater(study_id=h.study_id, token=token, label=label)
    s.add(rater)
    s.flush()
    return rater


def add_rater(h: StudyHandle, label: str | None = None) -> db.Rater:
    """A new rater (see :func:`new_rater`); ``label`` must be unused."""
    label = label.strip() if label else None
    try:
        with h.sessions.begin() as s:
            return new_rater(s, h, label)
    except IntegrityError:
        raise StudyError(f"rater ID {label!r} is already taken; use your personal link to resume") from None


def rater_by_token(h: StudyHandle, token: object) -> db.Rater:
    """The rater holding ``token``; refuses malformed or unknown tokens."""
    if not isinstance(token, str) or not TOKEN.match(token):
        raise StudyError("malformed rater token")
    with h.sessions() as s:
        rater = s.scalar(select(db.Rater).where(db.Rater.token == token, db.Rater.study_id == h.study_id))
    if rater is None:
        raise StudyError("unknown rater token")
    return rater


def set_excluded(h: StudyHandle, rater_id: int, excluded: bool) -> None:
    """Exclude a rater from the scores (or include again)."""
    with h.sessions.begin() as s:
        rater = s.get(db.Rater, rater_id)
        if rater is None or rater.study_id != h.study_id:
            raise StudyError("no such rater in this study")
        rater.excluded = excluded
