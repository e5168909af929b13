"""Human scores for the analysis: judgements from a study database, the study app's CSV export
or HiFiC's published ``userstudy.json``, scored by :mod:`study_app.score` on one of its scales
(``bt`` Bradley-Terry by default, ``elo`` or ``jod``) and joined with the methods' bitrates, and
the paper's Fig. 3 normalisation (best method 0, worst 1) of the metrics drawn next to them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.data import LOWER_IS_BETTER, study_methods
from study_app.score import (DEFAULT_SCALES, SCALES, JudgementFileError, load_judgements, normalize_inverted,
                             score_methods)

REPO = Path(__file__).resolve().parents[1]
PUBLISHED_JUDGEMENTS = REPO.parent / "shared" / "data" / "hific_userstudy" / "userstudy.json"
DB_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def study_judgements(path: Path) -> pd.DataFrame:
    """Scored judgements (no attention checks, no excluded raters) of the study app's study
    whose ``study.db`` or directory is ``path``."""
    from study_app import reports, studies

    directory = path.parent if path.suffix.lower() in DB_SUFFIXES else path
    if not (directory / "study.json").is_file():
        raise JudgementFileError(f"{path}: not a study directory or study database (no study.json beside it)")
    return reports.scored_judgements(studies.open_study(directory.parent, directory.name))


def load_study(path: str | Path) -> pd.DataFrame:
    """Judgements from a study database/directory, a CSV export or a HiFiC-style JSON file,
    without attention checks and without the raters the researcher excluded."""
    path = Path(path)
    if path.is_dir() or path.suffix.lower() in DB_SUFFIXES:
        return study_judgements(path)
    return load_judgements(path)


def human_scores(path: str | Path | None, n_orderings: int, n_bootstrap: int, seed: int = 0,
                 scale: str = "bt") -> tuple[pd.DataFrame | None, list[str]]:
    """Per-method scores (see :func:`study_app.score.score_methods`) of the judgements at
    ``path``, on Elo, Bradley-Terry and ``scale``, or ``None`` and a note saying why there
    are none."""
    if path is None:
        return None, ["no study was given: no human scores"]
    try:
        df = load_study(path)
    except (JudgementFileError, ValueError) as exc:
        return None, [f"study not usable: {exc}"]
    if df.empty:
        return None, [f"{path}: the study holds no judgements yet"]
    scales = tuple(dict.fromkeys((*DEFAULT_SCALES, scale)))
    try:
        return score_methods(df, n_orderings=n_orderings, n_bootstrap=n_bootstrap, seed=seed, scales=scales), []
    except ValueError as exc:
        return None, [f"{path}: {exc}"]


def normalized_metric(values: pd.Series, metric: str) -> pd.Series:
    """A metric normalised as in Fig. 3: the best method 0, the worst 1 (NaN stays NaN)."""
    known = values.dropna().to_numpy(float)
    if known.size == 0:
        return values.astype(float)
    signed = -known if LOWER_IS_BETTER[metric] else known
    out = pd.Series(np.nan, index=values.index)
    out[values.notna()] = normalize_inverted(signed)
    return out


def published_points(scores: pd.DataFrame, scale: str = "bt") -> pd.DataFrame:
    """The published study's scores joined with the paper's labels and bitrates: columns
    ``method, codec, setting`` (the paper's label), ``bpp, human`` (the score on ``scale``)."""
    joined = study_methods().merge(scores, on="method", how="inner")
    return pd.DataFrame({"method": joined["method"], "codec": joined["codec"], "setting": joined["label"],
                         "bpp": joined["bpp"], "human": joined[SCALES[scale].point]})


def own_points(scores: pd.DataFrame, summary: pd.DataFrame, scale: str = "bt") -> tuple[pd.DataFrame, list[str]]:
    """Scores of a study whose methods are ``codec:setting`` of the benchmark, joined with the
    benchmark's bitrates: columns ``method, codec, setting, bpp, human`` (the score on
    ``scale``)."""
    parts = scores["method"].astype(str).str.partition(":")
    points = pd.DataFrame({"method": scores["method"], "codec": parts[0], "setting": parts[2],
                           "human": scores[SCALES[scale].point]})
    points = points.merge(summary[["codec", "setting", "bpp"]], on=["codec", "setting"], how="left")
    unmatched = points.loc[points["bpp"].isna(), "method"].tolist()
    notes = [f"study methods without a benchmark bitrate: {', '.join(unmatched)}"] if unmatched else []
    return points, notes
