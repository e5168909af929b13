"""Which comparison a rater sees next (HiFiC Sec. 4.3: pairs were chosen adaptively).

Two modes:

* ``balanced``: every (method pair, image) is shown equally often, across all raters;
* ``adaptive``: pairs whose outcome is most uncertain under the current Bradley-Terry fit
  come first (largest p (1 - p), discounted by how often the pair was already judged).

Both first avoid repeating a (pair, image) for the same rater.  Attention checks (the
original against a heavily degraded version) take every ``every + 1``-th slot.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter

import numpy as np
import pandas as pd

from study_app.score import ELO_SCALE, bradley_terry

MODES = ("balanced", "adaptive")
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


def pair_uncertainty(methods: list[str], judged: pd.DataFrame) -> dict[Pair, float]:
    """Priority of each pair for the adaptive mode: p (1 - p) under the Bradley-Terry fit of
    the judgements so far, divided by sqrt(1 + times judged).  ``judged`` has ``winner``,
    ``loser``, ``random_choice`` columns."""
    index = {m: i for i, m in enumerate(methods)}
    judged = judged[judged["winner"].isin(index) & judged["loser"].isin(index)]
    strength = np.zeros(len(methods))
    if len(judged):
        strength = bradley_terry(judged["winner"].map(index).to_numpy(),
                                 judged["loser"].map(index).to_numpy(),
                                 judged["random_choice"].to_numpy(dtype=bool), len(methods))
    seen = Counter(pair_key(w, l) for w, l in zip(judged["winner"], judged["loser"]))
    out = {}
    for a, b in all_pairs(methods):
        p = 1.0 / (1.0 + 10.0 ** ((strength[index[b]] - strength[index[a]]) / ELO_SCALE))
        out[(a, b)] = p * (1.0 - p) / math.sqrt(1.0 + seen[(a, b)])
    return out


def choose_comparison(methods: list[str], images: list[str], assigned: Counter,
                      rater_assigned: Counter, mode: str, judged: pd.DataFrame,
                      rng: random.Random) -> tuple[Pair, str]:
    """The next (pair, image) for a rater.  ``assigned`` counts (pair, image) over all
    trials of the study, ``rater_assigned`` over this rater's; ``judged`` holds the answers
    so far (used by the adaptive mode)."""
    if mode not in MODES:
        raise ValueError(f"unknown pair mode {mode!r}; use one of {', '.join(MODES)}")
    candidates = [(pair, image) for pair in all_pairs(methods) for image in images]
    if mode == "adaptive":
        priority = pair_uncertainty(methods, judged)
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
