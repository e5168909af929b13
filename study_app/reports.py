"""What the researcher reads about a study: its judgements (the export layout), each
rater's progress and screening, the counts per method pair, and the benchmark's metrics of
the study's methods (for the paper's Fig. 3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import select

from study_app import db, design
from study_app.score import screen_raters
from study_app.studies import StudyHandle

EXPORT_COLUMNS = ["rater", "image", "winner", "loser", "random_choice", "method_a", "method_b",
                  "choice", "attention", "correct", "crop_x", "crop_y", "crop_w", "crop_h",
                  "shown_at", "answered_at", "duration_s", "source", "excluded"]
RATER_COLUMNS = ["rater_id", "rater", "answered", "total", "attention_checks", "attention_accuracy",
                 "agreement", "outlier_score", "flagged", "median_s", "excluded", "created_at"]
BENCHMARK_METRICS = ["fid", "kid", "lpips"]


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


def benchmark_metrics(h: StudyHandle) -> pd.DataFrame:
    """The benchmark's FID, KID and LPIPS (``summary.csv``) of the study's methods, indexed
    by method, as :func:`analysis.figures.study_figure` takes them (it normalises them); only
    the metrics the benchmark computed, and no columns when it has no summary."""
    path = Path(h.config.benchmark_dir) / "summary.csv" if h.config.benchmark_dir else None
    if path is None or not path.is_file():
        return pd.DataFrame(index=pd.Index([], name="method"))
    summary = pd.read_csv(path)
    summary["method"] = summary["codec"].astype(str) + ":" + summary["setting"].astype(str)
    summary = summary[summary["method"].isin(h.config.methods)].set_index("method")
    return summary[[m for m in BENCHMARK_METRICS if m in summary]].dropna(axis=1, how="all")
