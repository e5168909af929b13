"""A rater's trials: choosing the next comparison (:mod:`study_app.design`), the crops it
shows, and storing its answer exactly once (two-alternative forced choice with the
original as reference, HiFiC Sec. 4.3)."""

from __future__ import annotations

import hmac
import random
import secrets
from collections import Counter
from pathlib import Path

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from study_app import db, design
from study_app.crops import DEGRADED, ORIGINAL
from study_app.raters import rater_by_token
from study_app.studies import StudyError, StudyHandle, safe_path

CHOICES = ("A", "B", "undecided")
_RNG = random.SystemRandom()


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
