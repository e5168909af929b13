"""Scores from pairwise human judgements (HiFiC, Mentzer et al. 2020, Sec. 4.3 and Fig. 3).

Raters saw two reconstructions of the same crop next to the original and picked the one
closer to it (two-alternative forced choice with reference).  This module turns such
judgements into per-method scores:

* sequential Elo (start 2000, K = 30, scale 400) as used by the CLIC challenge, averaged
  over many random orderings of the judgements, with its spread across orderings;
* Bradley-Terry maximum likelihood (``choix``) on the same Elo scale, with percentile
  bootstrap confidence intervals;
* the paper's "inverted" normalised score: best method 0, worst 1 (Fig. 3), computed from
  the Elo mean.

"Can't decide" answers (``random_choice``) are stored, as in the paper's data, with the
random pick as the winner.  Both scores treat them as draws: Elo scores them 0.5 for each
side and Bradley-Terry counts them as half a win for each side.  Comparisons of a method
with itself (the published data holds two, both "can't decide") carry no information: they
are loaded but left out of the scores.

Command line::

    python -m study_app.score FILE [--format hific-json|csv] [--json] [--by-image]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import choix
import numpy as np
import pandas as pd

ELO_START = 2000.0
ELO_K = 30.0
ELO_SCALE = 400.0
# Regularisation of choix's spectral ranking (a pseudo-count of comparisons between every
# pair) that keeps Bradley-Terry estimates finite when a method never loses, which happens
# per image and in small bootstrap resamples.
BT_ALPHA = 1e-2
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


def _encode(df: pd.DataFrame) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Method names and integer-coded winner, loser and draw arrays."""
    methods = sorted(set(df["winner"]) | set(df["loser"]))
    index = {m: i for i, m in enumerate(methods)}
    winners = df["winner"].map(index).to_numpy(dtype=np.int64)
    losers = df["loser"].map(index).to_numpy(dtype=np.int64)
    draws = df["random_choice"].to_numpy(dtype=bool)
    return methods, winners, losers, draws


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
    wins = np.zeros((n_methods, n_methods))
    weight = np.where(draws, 0.5, 1.0)
    np.add.at(wins, (winners, losers), weight)
    np.add.at(wins, (losers[draws], winners[draws]), 0.5)
    theta = choix.ilsr_pairwise_dense(wins, alpha=BT_ALPHA)
    return ELO_START + ELO_SCALE / math.log(10.0) * (theta - theta.mean())


def _score_group(df: pd.DataFrame, n_orderings: int, n_bootstrap: int,
                 rng: np.random.Generator) -> pd.DataFrame:
    """Elo, Bradley-Terry and normalised scores for one set of judgements."""
    methods, winners, losers, draws = _encode(df)
    n = len(methods)
    elo = elo_orderings(winners, losers, draws, n, n_orderings, rng)
    bt = bradley_terry(winners, losers, draws, n)
    boots = np.empty((n_bootstrap, n))
    for b in range(n_bootstrap):
        pick = rng.integers(0, len(winners), len(winners))
        boots[b] = bradley_terry(winners[pick], losers[pick], draws[pick], n)
    counts = np.bincount(winners, minlength=n) + np.bincount(losers, minlength=n)
    elo_mean = elo.mean(axis=0)
    return pd.DataFrame({
        "method": methods, "n": counts, "elo_mean": elo_mean, "elo_std": elo.std(axis=0),
        "bt": bt, "bt_lo": np.percentile(boots, 2.5, axis=0),
        "bt_hi": np.percentile(boots, 97.5, axis=0), "normalized": normalize_inverted(elo_mean),
    })


def normalize_inverted(values: np.ndarray) -> np.ndarray:
    """The paper's Fig. 3 "inverted" normalisation of higher-is-better scores: the best
    method gets 0 and the worst 1."""
    values = np.asarray(values, dtype=float)
    span = values.max() - values.min()
    return (values.max() - values) / span if span > 0 else np.zeros_like(values)


def score_methods(df: pd.DataFrame, n_orderings: int = 100, n_bootstrap: int = 200,
                  seed: int = 0, by_image: bool = False) -> pd.DataFrame:
    """Score every method in judgements ``df`` (columns as :func:`load_judgements`).

    Returns columns ``method, n, elo_mean, elo_std, bt, bt_lo, bt_hi, normalized`` (plus
    ``image`` first when ``by_image``), sorted best first.  ``elo_std`` is the spread of the
    Elo rating over ``n_orderings`` random orderings; ``bt_lo``/``bt_hi`` is the 95 %
    percentile bootstrap interval over ``n_bootstrap`` resamples of the judgements;
    ``normalized`` is the inverted Elo-mean score (best 0, worst 1).
    """
    missing = [c for c in JUDGEMENT_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"judgements lack column(s) {', '.join(missing)}")
    df = df[df["winner"] != df["loser"]]
    if df.empty:
        raise ValueError("no judgements between two different methods to score")
    rng = np.random.default_rng(seed)
    if not by_image:
        return _score_group(df, n_orderings, n_bootstrap, rng).sort_values(
            "elo_mean", ascending=False, ignore_index=True)
    parts = [_score_group(group, n_orderings, n_bootstrap, rng).assign(image=image)
             for image, group in df.groupby("image", sort=True)]
    out = pd.concat(parts, ignore_index=True)
    out = out[["image"] + [c for c in out.columns if c != "image"]]
    return out.sort_values(["image", "elo_mean"], ascending=[True, False], ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    """Command line: print per-method scores of a judgement file."""
    parser = argparse.ArgumentParser(prog="python -m study_app.score", description=__doc__.split("\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="input format (default: from the file suffix)")
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
    except JudgementFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    scores = score_methods(df, args.orderings, args.bootstrap, args.seed, args.by_image)
    if args.json:
        print(json.dumps(scores.to_dict(orient="records"), indent=1))
    else:
        print(f"{len(df)} judgements, {df['rater'].nunique()} raters, {df['image'].nunique()} images")
        print(scores.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
