"""Scores from pairwise human judgements (HiFiC, Mentzer et al. 2020, Sec. 4.3 and Fig. 3).

Raters saw two reconstructions of the same crop next to the original and picked the one
closer to it (two-alternative forced choice with reference).  This module turns such
judgements into per-method scores on three scales (:data:`SCALES`), all behind
:func:`score_methods`:

* ``elo``: sequential Elo (start 2000, K = 30, scale 400) as used by the CLIC challenge,
  averaged over many random orderings of the judgements, with its spread across orderings;
* ``bt``: Bradley-Terry maximum likelihood (``choix``) on the same Elo scale, with
  percentile bootstrap confidence intervals;
* ``jod``: Thurstone's (1927) Case V maximum-likelihood scaling in just-objectionable
  differences, as Mantiuk's pwcmp does it: P(A preferred to B) = Φ((q_A - q_B) / σ) with
  σ = 1 / Φ⁻¹(0.75), so that 1 JOD means 75 % of answers prefer A; the worst method is 0;
  95 % percentile bootstrap intervals over resamples of the raters; an optional Gaussian
  prior for sparse or disconnected designs;

and the paper's "inverted" normalised score of the first scale asked for: best method 0,
worst 1 (Fig. 3).  :func:`screen_raters` scores how far each rater's answers are from the
consensus of the others (pwcmp's outlier analysis).

"Can't decide" answers (``random_choice``) are stored, as in the paper's data, with the
random pick as the winner.  Every scale treats them as draws: Elo scores them 0.5 for each
side, Bradley-Terry and JOD count them as half a preference each way.  Comparisons of a
method with itself (the published data holds two, both "can't decide") carry no
information: they are loaded but left out of the scores.

Command line::

    python -m study_app.score FILE [--format hific-json|csv] [--scale elo,bt,jod] [--prior SD]
                                   [--json] [--by-image]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import choix
import numpy as np
import pandas as pd
from scipy import optimize, special, stats

ELO_START = 2000.0
ELO_K = 30.0
ELO_SCALE = 400.0
# Regularisation of choix's spectral ranking (a pseudo-count of comparisons between every
# pair) that keeps Bradley-Terry estimates finite when a method never loses, which happens
# per image and in small bootstrap resamples.
BT_ALPHA = 1e-2
# Thurstone Case V (JOD): P(A preferred to B) = Φ((q_A - q_B) / σ) with σ = 1 / Φ⁻¹(0.75)
# ≈ 1.4826, so that a difference of 1 JOD means 75 % of answers prefer A (pwcmp's scale).
JOD_SIGMA = 1.0 / stats.norm.ppf(0.75)
LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
FIT_GTOL = 1e-8  # gradient norm (in answers) at which a JOD fit stops, per problem
# A weak Gaussian prior (standard deviation in JOD) for fits that must exist whatever the
# design: the consensus of rater screening and the posterior of the information-gain pair
# choice.  HiFiC's published study spans 3.7 JOD, within two standard deviations of the mean.
WEAK_PRIOR_SD = 2.0
JUDGEMENT_COLUMNS = ["rater", "image", "winner", "loser", "random_choice"]
FORMATS = ("hific-json", "csv")


class JudgementFileError(ValueError):
    """A judgement file is missing, unreadable or does not follow its format."""


def _parse_hific_record(rater: str, cid: str, rec: object) -> dict:
    """Check one comparison of the HiFiC ``userstudy.json`` and return its judgement row."""
    where = f"rater {rater!r}, comparison {cid!r}"
    if not isinstance(rec, dict):
        raise JudgementFileError(f"{where}: expected an object, got {type(rec).__name__}")
    for key in ("image", "greater", "lesser"):
        if not isinstance(rec.get(key), str) or not rec[key]:
            raise JudgementFileError(f"{where}: field {key!r} must be a non-empty string")
    crop = rec.get("crop")
    if crop is not None and not (
        isinstance(crop, list) and len(crop) == 4 and all(isinstance(v, int) for v in crop)
    ):
        raise JudgementFileError(f"{where}: 'crop' must be a list of 4 integers [x, y, w, h]")
    random_choice = rec.get("random_choice", False)
    if not isinstance(random_choice, bool):
        raise JudgementFileError(f"{where}: 'random_choice' must be true or false")
    x, y, w, h = crop if crop is not None else (None,) * 4
    return {"rater": rater, "image": rec["image"], "winner": rec["greater"],
            "loser": rec["lesser"], "random_choice": random_choice,
            "crop_x": x, "crop_y": y, "crop_w": w, "crop_h": h}


def parse_hific_json(data: object) -> pd.DataFrame:
    """Judgements from the HiFiC study schema ``{rater: {comparison: {image, crop, greater,
    lesser, random_choice?}}}``; ``greater`` (judged closer to the original) is the winner."""
    if not isinstance(data, dict) or not data:
        raise JudgementFileError("expected a non-empty object {rater_id: {comparison_id: {...}}}")
    rows = []
    for rater, comparisons in data.items():
        if not isinstance(comparisons, dict):
            raise JudgementFileError(f"rater {rater!r}: expected an object of comparisons")
        rows.extend(_parse_hific_record(rater, cid, rec) for cid, rec in comparisons.items())
    if not rows:
        raise JudgementFileError("the file holds no comparisons")
    return pd.DataFrame(rows)


def _parse_bool(value: object) -> bool:
    """Read a CSV truth value (True/False, 1/0, empty = False)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no", ""):
        return False
    raise JudgementFileError(f"cannot read {value!r} as true/false")


def parse_csv(path: Path) -> pd.DataFrame:
    """Judgements from the study app's CSV export; attention-check rows and rows of raters
    the researcher excluded are left out."""
    try:
        df = pd.read_csv(path, dtype={"rater": str, "image": str, "winner": str, "loser": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise JudgementFileError(f"{path}: not a readable CSV ({exc.__class__.__name__})") from None
    missing = [c for c in JUDGEMENT_COLUMNS if c not in df.columns]
    if missing:
        raise JudgementFileError(f"{path}: missing column(s) {', '.join(missing)}")
    if df[["rater", "image", "winner", "loser"]].isna().any().any():
        raise JudgementFileError(f"{path}: empty rater/image/winner/loser cells")
    df["random_choice"] = df["random_choice"].map(_parse_bool)
    for flag in ("attention", "excluded"):
        if flag in df.columns:
            df = df[~df[flag].map(_parse_bool)]
    return df.reset_index(drop=True)


def load_judgements(path: str | Path, fmt: str | None = None) -> pd.DataFrame:
    """Load judgements as a DataFrame with columns ``rater, image, winner, loser,
    random_choice`` (plus crop columns when known).

    ``fmt`` is ``"hific-json"`` (the paper's ``userstudy.json``) or ``"csv"`` (this app's
    export, without its attention checks and excluded raters); ``None`` guesses from the
    file suffix.  For the HiFiC JSON, ``greater`` is the
    winner.  ``random_choice`` rows keep the rater's random pick as the winner, as the paper's
    data does; the scores in this module count them as draws.  Raises
    :class:`JudgementFileError` with a one-line message on any malformed input.
    """
    path = Path(path)
    fmt = fmt or ("hific-json" if path.suffix.lower() == ".json" else "csv")
    if fmt not in FORMATS:
        raise JudgementFileError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise JudgementFileError(f"{path}: no such file")
    if fmt == "csv":
        return parse_csv(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise JudgementFileError(f"{path}: not valid JSON ({exc})") from None
    try:
        return parse_hific_json(data)
    except JudgementFileError as exc:
        raise JudgementFileError(f"{path}: {exc}") from None


class Encoded(NamedTuple):
    """Judgements as integer codes: the method and rater names, and per judgement the
    winner, the loser, whether it was a draw and the rater."""

    methods: list[str]
    raters: list[str]
    winners: np.ndarray
    losers: np.ndarray
    draws: np.ndarray
    rater_codes: np.ndarray


def encode(df: pd.DataFrame) -> Encoded:
    """Integer codes of judgements ``df`` (columns as :func:`load_judgements`)."""
    methods = sorted(set(df["winner"]) | set(df["loser"]))
    index = {m: i for i, m in enumerate(methods)}
    rater_names = df["rater"].astype(str)
    raters = sorted(set(rater_names))
    rater_index = {r: i for i, r in enumerate(raters)}
    return Encoded(methods, raters, df["winner"].map(index).to_numpy(dtype=np.int64),
                   df["loser"].map(index).to_numpy(dtype=np.int64), df["random_choice"].to_numpy(dtype=bool),
                   rater_names.map(rater_index).to_numpy(dtype=np.int64))


def preference_counts(winners: np.ndarray, losers: np.ndarray, draws: np.ndarray, n_methods: int,
                      groups: np.ndarray | None = None, n_groups: int = 1) -> np.ndarray:
    """Counts ``C[g, i, j]`` of how often method i was preferred to method j in group g (a
    rater, say; one group when ``groups`` is None), shape (n_groups, n, n).  A draw counts
    as half a preference each way."""
    groups = np.zeros(len(winners), dtype=np.int64) if groups is None else groups
    counts = np.zeros((n_groups, n_methods, n_methods))
    np.add.at(counts, (groups, winners, losers), np.where(draws, 0.5, 1.0))
    np.add.at(counts, (groups[draws], losers[draws], winners[draws]), 0.5)
    return counts


def elo_orderings(winners: np.ndarray, losers: np.ndarray, draws: np.ndarray, n_methods: int,
                  n_orderings: int, rng: np.random.Generator) -> np.ndarray:
    """Sequential Elo ratings after each of ``n_orderings`` random orderings of the
    judgements, shape (n_orderings, n_methods).  Update: R += K (S - E) with
    E = 1 / (1 + 10^((R_other - R) / 400)); S is 1, 0, or 0.5 for a draw."""
    ratings = np.full((n_orderings, n_methods), ELO_START)
    rows = np.arange(n_orderings)
    orders = np.argsort(rng.random((n_orderings, len(winners))), axis=1)
    scores = np.where(draws, 0.5, 1.0)
    for step in range(len(winners)):
        j = orders[:, step]
        w, l, s = winners[j], losers[j], scores[j]
        expected = 1.0 / (1.0 + 10.0 ** ((ratings[rows, l] - ratings[rows, w]) / ELO_SCALE))
        delta = ELO_K * (s - expected)
        ratings[rows, w] += delta
        ratings[rows, l] -= delta
    return ratings


def bradley_terry(winners: np.ndarray, losers: np.ndarray, draws: np.ndarray,
                  n_methods: int) -> np.ndarray:
    """Bradley-Terry maximum-likelihood strengths on the Elo scale (mean ``ELO_START``):
    P(i beats j) = 1 / (1 + 10^((s_j - s_i) / 400)).  A draw counts as half a win for each
    side.  Fitted with choix's iterative Luce spectral ranking on the win-count matrix."""
    wins = preference_counts(winners, losers, draws, n_methods)[0]
    theta = choix.ilsr_pairwise_dense(wins, alpha=BT_ALPHA)
    return ELO_START + ELO_SCALE / math.log(10.0) * (theta - theta.mean())


class ScaleError(ValueError):
    """Judgements that cannot be put on a scale as asked (a disconnected or unanimous design
    without a prior), as one line."""


def _thurstone_terms(q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For B score vectors ``q`` (B, n): z = (q_i - q_j) / σ, log Φ(z) and the inverse Mills
    ratio φ(z) / Φ(z), each (B, n, n)."""
    z = (q[:, :, None] - q[:, None, :]) / JOD_SIGMA
    log_cdf = special.log_ndtr(z)
    return z, log_cdf, np.exp(-0.5 * z**2 - LOG_SQRT_2PI - log_cdf)


def _prior_precision(prior_sd: float | None) -> float:
    """1 / prior_sd², or 0 without a prior."""
    return 0.0 if prior_sd is None else prior_sd**-2.0


def _jod_objective(x: np.ndarray, counts: np.ndarray, prior_sd: float | None) -> tuple[float, np.ndarray]:
    """The Thurstone Case V negative log-likelihood -Σ C_ij log Φ((q_i - q_j) / σ), summed
    over the B problems of ``counts`` (B, n, n), plus (Σ q)² / 2 (which fixes the free
    offset at mean 0) and, with a prior, Σ q² / (2 prior_sd²); and its gradient.  ``x``
    holds the B score vectors, flattened."""
    q = x.reshape(counts.shape[:2])
    _, log_cdf, mills = _thurstone_terms(q)
    total = q.sum(axis=1, keepdims=True)
    precision = _prior_precision(prior_sd)
    value = -(counts * log_cdf).sum() + 0.5 * (total**2).sum() + 0.5 * precision * (q**2).sum()
    flow = counts * mills
    grad = (flow.sum(axis=1) - flow.sum(axis=2)) / JOD_SIGMA + total + precision * q
    return value, grad.ravel()


def jod_hessian(q: np.ndarray, counts: np.ndarray, prior_sd: float | None) -> np.ndarray:
    """Hessian (B, n, n) of the objective of :func:`fit_jod` at scores ``q`` (B, n): the
    observed information, a graph Laplacian with weights C_ij λ (z + λ) / σ² (λ the inverse
    Mills ratio at z_ij), plus the offset term and the prior's precision.  Its inverse at
    the fit is the Laplace approximation of the scores' posterior covariance."""
    z, _, mills = _thurstone_terms(q)
    weight = counts * mills * (z + mills)
    weight = (weight + weight.transpose(0, 2, 1)) / JOD_SIGMA**2
    diagonal = np.arange(q.shape[1])
    hess = 1.0 - weight
    hess[:, diagonal, diagonal] += weight.sum(axis=2) + _prior_precision(prior_sd)
    return hess


def fit_jod(counts: np.ndarray, prior_sd: float | None = None) -> np.ndarray:
    """Thurstone Case V scores in JOD, mean 0, shape (B, n), of each of the B sets of
    preference counts ``counts`` (B, n, n): the maximum-likelihood fit of Mantiuk's pwcmp,
    or with ``prior_sd`` the maximum a posteriori fit under a Gaussian prior N(0, prior_sd²)
    on each score.  All B problems are solved in one trust-region Newton minimisation
    (scipy's ``trust-krylov``, analytic gradient and Hessian), so bootstrap resamples cost
    little more than one fit.  Without a prior the counts must pass :func:`check_scalable`."""
    shape = counts.shape[:2]
    last: dict[bytes, np.ndarray] = {}  # the Hessian at the current iterate, for its many products

    def hessp(x: np.ndarray, v: np.ndarray, *_: object) -> np.ndarray:
        key = x.tobytes()
        if key not in last:
            last.clear()
            last[key] = jod_hessian(x.reshape(shape), counts, prior_sd)
        return (last[key] @ v.reshape(*shape, 1)).ravel()

    # near the optimum trlib's Lanczos solver can form 0 x inf in its work arrays; that step is
    # rejected and the next one converges, so the floating-point warning is noise
    with np.errstate(invalid="ignore"):
        result = optimize.minimize(_jod_objective, np.zeros(shape[0] * shape[1]), args=(counts, prior_sd),
                                   jac=True, hessp=hessp, method="trust-krylov",
                                   options={"gtol": FIT_GTOL * math.sqrt(shape[0])})
    return result.x.reshape(shape)


def _reach(graph: np.ndarray) -> np.ndarray:
    """Transitive closure of directed graphs ``graph`` (B, n, n): whether method j can be
    reached from method i along the graph's edges (i itself included), by repeated squaring."""
    reach = graph | np.eye(graph.shape[-1], dtype=bool)
    for _ in range(math.ceil(math.log2(graph.shape[-1]))):
        reach = reach @ reach
    return reach


def _strongly_connected(counts: np.ndarray) -> np.ndarray:
    """Per set of preference counts (B, n, n): whether every method was, directly or through
    others, both preferred to and less preferred than every other one, so that the JOD
    maximum-likelihood scores are finite."""
    return _reach(counts > 0).all(axis=(1, 2))


def _groups(reach: np.ndarray, members: np.ndarray, methods: list[str]) -> str:
    """The methods in ``members`` (a mask), grouped by mutual reachability in ``reach``."""
    groups = dict.fromkeys(tuple(m for m, r in zip(methods, row & reach[:, i]) if r)
                           for i, row in enumerate(reach) if members[i])
    return " | ".join(", ".join(g) for g in groups)


def check_scalable(counts: np.ndarray, methods: list[str]) -> None:
    """Raise :class:`ScaleError` when preference counts ``counts`` (n, n) have no finite
    JOD maximum-likelihood scores: the comparison graph is disconnected, or some methods
    were never less preferred than the others they were compared with (unanimous answers
    put them infinitely far apart).  A prior makes either case finite."""
    preferred = counts > 0
    linked = _reach((preferred | preferred.T)[None])[0]
    if not linked.all():
        groups = _groups(linked, np.ones(len(methods), dtype=bool), methods)
        raise ScaleError(f"the comparison graph is disconnected ({groups}): the JOD scale cannot place these "
                         "groups relative to each other without a prior")
    reach = _reach(preferred[None])[0]
    if not reach.all():
        # the methods that every method which was ever preferred to them can reach back
        top = np.array([(reach[j] | ~reach[:, j]).all() for j in range(len(methods))])
        raise ScaleError(f"{_groups(reach, top, methods)} never lost to the other methods compared with them: "
                         "their JOD distance to the rest is unbounded without a prior")


@dataclasses.dataclass(frozen=True)
class ScoreSettings:
    """How the scales are computed: random Elo orderings, bootstrap resamples, and the
    standard deviation in JOD of the JOD fit's Gaussian prior (None: no prior)."""

    n_orderings: int = 100
    n_bootstrap: int = 200
    prior_sd: float | None = None


def _elo_scores(enc: Encoded, settings: ScoreSettings, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Elo averaged over random orderings of the judgements, and its spread."""
    elo = elo_orderings(enc.winners, enc.losers, enc.draws, len(enc.methods), settings.n_orderings, rng)
    return {"elo_mean": elo.mean(axis=0), "elo_std": elo.std(axis=0)}


def _bt_scores(enc: Encoded, settings: ScoreSettings, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Bradley-Terry strengths with their 95 % percentile bootstrap interval over resamples
    of the judgements."""
    n, m = len(enc.methods), len(enc.winners)
    boots = np.empty((settings.n_bootstrap, n))
    for b in range(settings.n_bootstrap):
        pick = rng.integers(0, m, m)
        boots[b] = bradley_terry(enc.winners[pick], enc.losers[pick], enc.draws[pick], n)
    return {"bt": bradley_terry(enc.winners, enc.losers, enc.draws, n),
            "bt_lo": np.percentile(boots, 2.5, axis=0), "bt_hi": np.percentile(boots, 97.5, axis=0)}


def rater_resamples(n_raters: int, n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    """How often each rater is drawn in each of ``n_bootstrap`` resamples of the raters
    with replacement, shape (n_bootstrap, n_raters)."""
    picks = rng.integers(0, n_raters, (n_bootstrap, n_raters)) + n_raters * np.arange(n_bootstrap)[:, None]
    return np.bincount(picks.ravel(), minlength=n_bootstrap * n_raters).reshape(n_bootstrap, n_raters)


def _jod_scores(enc: Encoded, settings: ScoreSettings, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """JOD scores (worst method 0) with their 95 % percentile bootstrap interval over
    resamples of the raters, as pwcmp's ``pw_scale_bootstrp``.  Every fit has mean 0, so an
    interval is that of a score relative to the mean of all scores."""
    n = len(enc.methods)
    per_rater = preference_counts(enc.winners, enc.losers, enc.draws, n, enc.rater_codes, len(enc.raters))
    total = per_rater.sum(axis=0)
    if settings.prior_sd is None:
        check_scalable(total, enc.methods)
    jod = fit_jod(total[None], settings.prior_sd)[0]
    resampled = np.einsum("br,rij->bij", rater_resamples(len(enc.raters), settings.n_bootstrap, rng), per_rater)
    if settings.prior_sd is None:
        bad = int((~_strongly_connected(resampled)).sum())
        if bad:
            raise ScaleError(f"{bad} of {len(resampled)} bootstrap resamples of the raters cannot be put on "
                             "the JOD scale (too few raters compared some methods): use a prior")
    low, high = np.percentile(fit_jod(resampled, settings.prior_sd), [2.5, 97.5], axis=0)
    return {"jod": jod - jod.min(), "jod_low": low - jod.min(), "jod_high": high - jod.min()}


@dataclasses.dataclass(frozen=True)
class Scale:
    """One scale of :func:`score_methods`: its label, how it is computed, the column of its
    point estimate, and those of its interval (``low``, ``high``) or of its spread."""

    label: str
    compute: Callable[[Encoded, ScoreSettings, np.random.Generator], dict[str, np.ndarray]]
    point: str
    low: str | None = None
    high: str | None = None
    spread: str | None = None

    def inverted(self, scores: pd.DataFrame) -> pd.DataFrame:
        """The Fig. 3 view of ``scores``: per method the inverted normalised score (best 0,
        worst 1) and its error bars through the same normalisation, ``err_plus`` towards
        worse and ``err_minus`` towards better: to the ends of the interval (0 on a side
        that a short bootstrap's interval misses), or the spread both ways."""
        point = scores[self.point].to_numpy(float)
        span = point.max() - point.min()
        unit = 1.0 / span if span > 0 else 0.0
        if self.spread is not None:
            below = above = scores[self.spread].to_numpy(float)
        else:
            below = np.clip(point - scores[self.low].to_numpy(float), 0.0, None)
            above = np.clip(scores[self.high].to_numpy(float) - point, 0.0, None)
        return pd.DataFrame({"method": scores["method"].to_numpy(), "normalized": normalize_inverted(point),
                             "err_plus": below * unit, "err_minus": above * unit})


SCALES = {"elo": Scale("Elo", _elo_scores, "elo_mean", spread="elo_std"),
          "bt": Scale("Bradley-Terry", _bt_scores, "bt", "bt_lo", "bt_hi"),
          "jod": Scale("JOD", _jod_scores, "jod", "jod_low", "jod_high")}
DEFAULT_SCALES = ("elo", "bt")


def _score_group(df: pd.DataFrame, scales: tuple[str, ...], settings: ScoreSettings,
                 rng: np.random.Generator) -> pd.DataFrame:
    """The ``scales`` and the normalised score of the first for one set of judgements."""
    enc = encode(df)
    n = len(enc.methods)
    shown = np.bincount(enc.winners, minlength=n) + np.bincount(enc.losers, minlength=n)
    columns: dict[str, object] = {"method": enc.methods, "n": shown}
    for name in scales:
        columns.update(SCALES[name].compute(enc, settings, rng))
    columns["normalized"] = normalize_inverted(columns[SCALES[scales[0]].point])
    return pd.DataFrame(columns)


def normalize_inverted(values: np.ndarray) -> np.ndarray:
    """The paper's Fig. 3 "inverted" normalisation of higher-is-better scores: the best
    method gets 0 and the worst 1."""
    values = np.asarray(values, dtype=float)
    span = values.max() - values.min()
    return (values.max() - values) / span if span > 0 else np.zeros_like(values)


def score_methods(df: pd.DataFrame, n_orderings: int = 100, n_bootstrap: int = 200,
                  seed: int = 0, by_image: bool = False, scales: tuple[str, ...] = DEFAULT_SCALES,
                  prior_sd: float | None = None) -> pd.DataFrame:
    """Score every method in judgements ``df`` (columns as :func:`load_judgements`).

    Returns columns ``method, n``, then those of each scale in ``scales`` (see
    :data:`SCALES`): ``elo_mean, elo_std`` (Elo averaged over ``n_orderings`` random
    orderings, and its spread); ``bt, bt_lo, bt_hi`` (Bradley-Terry with the 95 % percentile
    bootstrap interval over ``n_bootstrap`` resamples of the judgements); ``jod, jod_low,
    jod_high`` (Thurstone Case V JOD, worst method 0, with the 95 % percentile bootstrap
    interval over ``n_bootstrap`` resamples of the raters; ``prior_sd`` adds a Gaussian
    prior); and ``normalized``, the first scale's inverted score (best 0, worst 1).  Plus
    ``image`` first when ``by_image``; sorted best first by the first scale.  Raises
    ``ValueError`` on bad arguments and :class:`ScaleError` when the JOD scale needs a prior.
    """
    missing = [c for c in JUDGEMENT_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"judgements lack column(s) {', '.join(missing)}")
    scales = tuple(scales)
    if not scales or any(s not in SCALES for s in scales):
        raise ValueError(f"unknown scale in {', '.join(scales) or 'nothing'}: use one or more of "
                         f"{', '.join(SCALES)}")
    if prior_sd is not None and not prior_sd > 0:
        raise ValueError("the prior's standard deviation must be positive")
    df = df[df["winner"] != df["loser"]]
    if df.empty:
        raise ValueError("no judgements between two different methods to score")
    settings = ScoreSettings(n_orderings, n_bootstrap, prior_sd)
    rng = np.random.default_rng(seed)
    order = SCALES[scales[0]].point
    if not by_image:
        return _score_group(df, scales, settings, rng).sort_values(order, ascending=False, ignore_index=True)
    parts = []
    for image, group in df.groupby("image", sort=True):
        try:
            parts.append(_score_group(group, scales, settings, rng).assign(image=image))
        except ScaleError as exc:
            raise ScaleError(f"image {image}: {exc}") from None
    out = pd.concat(parts, ignore_index=True)
    out = out[["image"] + [c for c in out.columns if c != "image"]]
    return out.sort_values(["image", order], ascending=[True, False], ignore_index=True)


SCREEN_COLUMNS = ["rater", "answers", "agreement", "loglik", "outlier_score", "flagged"]
OUTLIER_FENCE = 1.5  # Tukey's fence: 1.5 interquartile ranges below the lower quartile


def screen_raters(df: pd.DataFrame, prior_sd: float = WEAK_PRIOR_SD) -> pd.DataFrame:
    """How far each rater's answers are from the consensus of all the others, as pwcmp's
    outlier analysis (Mantiuk, ``pw_outlier_analysis``) does it.  Per rater, JOD scores are
    fitted to everyone else's judgements (under a weak Gaussian prior, so that the fit
    exists whichever pairs the others left out); then ``agreement`` is the share of the
    rater's answers (draws half) that prefer the method the consensus scores higher,
    ``loglik`` the mean log-likelihood per answer under the consensus (per answer, so that
    raters with more answers are not penalised), and ``outlier_score`` how far ``loglik``
    lies below the lower quartile of all raters', in interquartile ranges (0 above it).
    ``flagged`` raters lie beyond Tukey's fence (1.5); with fewer than four raters no
    one can be.  Comparisons of a method with itself are left out."""
    df = df[df["winner"] != df["loser"]]
    if df.empty:
        return pd.DataFrame(columns=SCREEN_COLUMNS)
    enc = encode(df)
    per_rater = preference_counts(enc.winners, enc.losers, enc.draws, len(enc.methods), enc.rater_codes,
                                  len(enc.raters))
    z, log_cdf, _ = _thurstone_terms(fit_jod(per_rater.sum(axis=0) - per_rater, prior_sd))
    answers = per_rater.sum(axis=(1, 2))
    loglik = (per_rater * log_cdf).sum(axis=(1, 2)) / answers
    q1, q3 = np.percentile(loglik, [25, 75])
    below = np.clip(q1 - loglik, 0.0, None)
    outlier = np.divide(below, q3 - q1, out=np.zeros_like(below), where=q3 > q1)
    return pd.DataFrame({"rater": enc.raters, "answers": answers,
                         "agreement": (per_rater * (np.sign(z) + 1.0) / 2.0).sum(axis=(1, 2)) / answers,
                         "loglik": loglik, "outlier_score": outlier, "flagged": outlier > OUTLIER_FENCE},
                        columns=SCREEN_COLUMNS)


def main(argv: list[str] | None = None) -> int:
    """Command line: print per-method scores of a judgement file."""
    parser = argparse.ArgumentParser(prog="python -m study_app.score", description=__doc__.split("\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="input format (default: from the file suffix)")
    parser.add_argument("--scale", default=",".join(DEFAULT_SCALES),
                        help=f"comma-separated scales of {', '.join(SCALES)}; the first orders and normalises "
                             f"(default {','.join(DEFAULT_SCALES)})")
    parser.add_argument("--prior", type=float, default=None, metavar="SD",
                        help="Gaussian prior of the JOD fit, standard deviation in JOD (default: none)")
    parser.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    parser.add_argument("--by-image", action="store_true", help="score each image separately")
    parser.add_argument("--orderings", type=int, default=100, help="random Elo orderings")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.orderings < 1 or args.bootstrap < 1:
        print("error: --orderings and --bootstrap must be at least 1", file=sys.stderr)
        return 2
    try:
        df = load_judgements(args.file, args.format)
        scores = score_methods(df, args.orderings, args.bootstrap, args.seed, args.by_image,
                               tuple(s.strip() for s in args.scale.split(",") if s.strip()), args.prior)
    except (JudgementFileError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(scores.to_dict(orient="records"), indent=1))
    else:
        print(f"{len(df)} judgements, {df['rater'].nunique()} raters, {df['image'].nunique()} images")
        print(scores.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
