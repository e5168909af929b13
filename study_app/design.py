"""Which comparison a rater sees next (HiFiC Sec. 4.3: pairs were chosen adaptively).

Three modes:

* ``balanced``: every (method pair, image) is shown equally often, across all raters;
* ``adaptive``: pairs whose outcome is most uncertain under the current Bradley-Terry fit
  come first (largest p (1 - p), discounted by how often the pair was already judged);
* ``information``: the pair whose answer is expected to reduce the uncertainty of the score
  vector most, under a Gaussian posterior of the Thurstone Case V model (the expected
  information gain of ASAP, Mikhailiuk et al. 2020).  Trials assigned but not yet answered
  count as the information they are expected to bring, so that a batch of pairs for one
  rater, and the open trials of raters working at the same time, spread over the pairs;
  the posterior is recomputed from all answers whenever a pair is chosen.

All first avoid repeating a (pair, image) for the same rater; the image is the one the pair
was shown with least.  Attention checks (the original against a heavily degraded version)
take every ``every + 1``-th slot.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter

import numpy as np
import pandas as pd
from scipy import special

from study_app.score import (ELO_SCALE, JOD_SIGMA, LOG_SQRT_2PI, WEAK_PRIOR_SD, bradley_terry, fit_jod,
                             jod_hessian, preference_counts)

MODES = ("balanced", "adaptive", "information")
ANSWER_MODES = ("adaptive", "information")  # the modes that read the answers so far
Pair = tuple[str, str]


def all_pairs(methods: list[str]) -> list[Pair]:
    """Every unordered pair of methods, each sorted."""
    return list(itertools.combinations(sorted(methods), 2))


def pair_key(a: str, b: str) -> Pair:
    """The unordered pair of ``a`` and ``b`` as a sorted tuple."""
    return (a, b) if a <= b else (b, a)


def n_trials(comparisons: int, attention_every: int) -> int:
    """Trials per rater: the comparisons plus one attention check after every
    ``attention_every`` of them (none when 0)."""
    return comparisons + (comparisons // attention_every if attention_every > 0 else 0)


def is_attention_slot(seq: int, attention_every: int) -> bool:
    """Whether the trial at 0-based position ``seq`` is an attention check."""
    return attention_every > 0 and (seq + 1) % (attention_every + 1) == 0


def _coded(methods: list[str], judged: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Winner and loser indices into ``methods``, and draw flags, of the judgements
    ``judged`` (columns ``winner``, ``loser``, ``random_choice``) between two of ``methods``."""
    index = pd.Index(methods)
    winners, losers = index.get_indexer(judged["winner"]), index.get_indexer(judged["loser"])
    keep = (winners >= 0) & (losers >= 0)
    return winners[keep], losers[keep], judged["random_choice"].to_numpy(dtype=bool)[keep]


def pair_uncertainty(methods: list[str], judged: pd.DataFrame) -> dict[Pair, float]:
    """Priority of each pair for the adaptive mode: p (1 - p) under the Bradley-Terry fit of
    the judgements so far, divided by sqrt(1 + times judged).  ``judged`` has ``winner``,
    ``loser``, ``random_choice`` columns."""
    winners, losers, draws = _coded(methods, judged)
    strength = bradley_terry(winners, losers, draws, len(methods)) if len(winners) else np.zeros(len(methods))
    seen = np.zeros((len(methods), len(methods)))
    np.add.at(seen, (winners, losers), 1)
    seen += seen.T
    index = {m: i for i, m in enumerate(methods)}
    out = {}
    for a, b in all_pairs(methods):
        i, j = index[a], index[b]
        p = 1.0 / (1.0 + 10.0 ** ((strength[j] - strength[i]) / ELO_SCALE))
        out[(a, b)] = p * (1.0 - p) / math.sqrt(1.0 + seen[i, j])
    return out


def expected_kl(mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Expected information gain of one answer on a pair whose score difference has a
    Gaussian posterior N(mean, var): the expected Kullback-Leibler divergence of the updated
    from the current posterior, over the two answers, the update being the probit
    moment-matching step of assumed density filtering (as in ASAP and TrueSkill).  The
    divergence lies along the pair's difference only, so it is one-dimensional."""
    total = np.sqrt(var + JOD_SIGMA**2)
    gain = np.zeros_like(mean)
    for sign in (1.0, -1.0):  # "first preferred" and "second preferred"
        z = sign * mean / total
        p = special.ndtr(z)
        mills = np.exp(-0.5 * z**2 - LOG_SQRT_2PI - special.log_ndtr(z))
        shift = var * mills / total
        ratio = 1.0 - var / total**2 * mills * (mills + z)  # updated / current variance
        gain += p * 0.5 * (ratio - 1.0 + shift**2 / var - np.log(ratio))
    return gain


def _pending_information(q: np.ndarray, pending: Counter, index: dict[str, int]) -> np.ndarray:
    """Expected (Fisher) information of the open trials ``pending`` (pair counts) about the
    scores ``q``: a graph Laplacian with weight φ(z)² / (Φ(z) Φ(-z)) / σ² per trial."""
    info = np.zeros((len(q), len(q)))
    for (a, b), count in pending.items():
        if a in index and b in index:
            i, j = index[a], index[b]
            z = (q[i] - q[j]) / JOD_SIGMA
            density = math.exp(-0.5 * z * z - LOG_SQRT_2PI)
            w = count * density**2 / (special.ndtr(z) * special.ndtr(-z)) / JOD_SIGMA**2
            info[[i, j], [i, j]] += w
            info[[i, j], [j, i]] -= w
    return info


def information_gain(methods: list[str], judged: pd.DataFrame, pending: Counter) -> dict[Pair, float]:
    """Priority of each pair for the information mode: the expected information gain of one
    more answer on it (ASAP, Mikhailiuk et al. 2020).  The posterior of the Thurstone
    Case V scores is the Laplace approximation at the JOD fit of ``judged`` under a weak
    Gaussian prior (in place of ASAP's message passing), its precision raised by the
    expected information of the ``pending`` open trials (pair counts)."""
    counts = preference_counts(*_coded(methods, judged), len(methods))
    q = fit_jod(counts, WEAK_PRIOR_SD)
    index = {m: i for i, m in enumerate(methods)}
    cov = np.linalg.inv(jod_hessian(q, counts, WEAK_PRIOR_SD)[0] + _pending_information(q[0], pending, index))
    pairs = all_pairs(methods)
    i = np.array([index[a] for a, _ in pairs])
    j = np.array([index[b] for _, b in pairs])
    gain = expected_kl(q[0, i] - q[0, j], cov[i, i] + cov[j, j] - 2.0 * cov[i, j])
    return dict(zip(pairs, gain.tolist()))


def choose_comparison(methods: list[str], images: list[str], assigned: Counter,
                      rater_assigned: Counter, mode: str, judged: pd.DataFrame,
                      rng: random.Random, pending: Counter | None = None) -> tuple[Pair, str]:
    """The next (pair, image) for a rater.  ``assigned`` counts (pair, image) over all
    trials of the study, ``rater_assigned`` over this rater's; ``judged`` holds the answers
    so far (read by the adaptive and information modes) and ``pending`` counts the pairs of
    trials assigned but not answered yet (read by the information mode)."""
    if mode not in MODES:
        raise ValueError(f"unknown pair mode {mode!r}; use one of {', '.join(MODES)}")
    candidates = [(pair, image) for pair in all_pairs(methods) for image in images]
    if mode in ANSWER_MODES:
        priority = (pair_uncertainty(methods, judged) if mode == "adaptive"
                    else information_gain(methods, judged, pending or Counter()))
        return min(candidates, key=lambda c: (rater_assigned[c], -round(priority[c[0]], 9),
                                              assigned[c], rng.random()))
    rater_pairs = Counter({p: 0 for p in all_pairs(methods)})
    all_assigned = Counter({p: 0 for p in all_pairs(methods)})
    for (p, _), n in rater_assigned.items():
        rater_pairs[p] += n
    for (p, _), n in assigned.items():
        all_assigned[p] += n
    return min(candidates, key=lambda c: (rater_assigned[c], rater_pairs[c[0]], assigned[c],
                                          all_assigned[c[0]], rng.random()))
