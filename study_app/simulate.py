"""Simulated rating studies, to compare the pair-selection modes and to plan a study.

Simulated raters are Thurstone (1927) Case V observers with known true scores q in JOD: a
rater prefers A to B with probability Φ((q_A - q_B) / σ), σ = 1 / Φ⁻¹(0.75) (the model of
:mod:`study_app.score`), independently of every other answer, and never answers "can't
decide".  Raters arrive one after another; each gets ``comparisons`` pairs chosen by
:func:`study_app.design.choose_comparison` in batches of ``batch``: a batch's pairs are all
chosen (its open trials counted as pending) before any of its answers arrive, as with raters
working at the same time.  After each rater the judgements so far are put on the JOD scale
(:func:`study_app.score.score_methods`, no prior, bootstrap over raters) and compared with
the truth: Spearman's rank correlation and the mean width of the 95 % intervals.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pandas as pd
from scipy import special, stats

from study_app import design
from study_app.score import JOD_SIGMA, ScaleError, score_methods


# The interval target counts only from this many raters on: a bootstrap over R raters
# estimates a variance (R - 1) / R times too small, and coarsely when R is small (with one
# rater every resample is the same and the interval has no width); from 10 raters on the
# widths are at most 5 % short.
MIN_INTERVAL_RATERS = 10


class SimulationError(ValueError):
    """A simulation that cannot run as asked, as one line."""


@dataclasses.dataclass(frozen=True)
class Simulation:
    """One simulated study: true JOD per method, the pair-selection mode, comparisons per
    rater, pairs chosen per batch, images to spread the pairs over, bootstrap resamples of
    each JOD fit, when to give up, and the seed of answers, tie-breaks and bootstrap."""

    truth: dict[str, float]
    mode: str = "balanced"
    comparisons: int = 50
    batch: int = 10
    n_images: int = 20
    n_bootstrap: int = 200
    max_judgements: int = 20000
    seed: int = 0

    def check(self) -> None:
        """Raise :class:`SimulationError` naming the first bad field."""
        if len(self.truth) < 2:
            raise SimulationError("a study needs at least two methods")
        if self.mode not in design.MODES:
            raise SimulationError(f"unknown mode {self.mode!r}; use one of {', '.join(design.MODES)}")
        if min(self.comparisons, self.batch, self.n_images, self.n_bootstrap, self.max_judgements) < 1:
            raise SimulationError("comparisons, batch, images, bootstrap and the judgement limit must be "
                                  "at least 1")


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """The state of a simulated study after a rater: raters and judgements so far, Spearman's
    rank correlation of the fitted JOD with the truth and the mean width of its 95 %
    intervals (both NaN while the JOD scale cannot be computed without a prior)."""

    raters: int
    judgements: int
    spearman: float
    mean_width: float


def evenly_spread(n_methods: int, span: float) -> dict[str, float]:
    """True scores of ``n_methods`` methods ``m01``, ``m02``, ... evenly spread over ``span``
    JOD, the first worst."""
    return {f"m{k + 1:02d}": v for k, v in enumerate(np.linspace(0.0, span, n_methods).tolist())}


def _evaluate(judged: pd.DataFrame, truth: dict[str, float], sim: Simulation, raters: int) -> Checkpoint:
    """Score the judgements so far on the JOD scale and compare with the truth."""
    try:
        scores = score_methods(judged, n_bootstrap=sim.n_bootstrap, seed=sim.seed, scales=("jod",))
    except ScaleError:
        return Checkpoint(raters, len(judged), math.nan, math.nan)
    scores = scores.set_index("method").reindex(list(truth))
    if scores["jod"].isna().any():  # a method not compared yet
        return Checkpoint(raters, len(judged), math.nan, math.nan)
    rho = stats.spearmanr(list(truth.values()), scores["jod"]).statistic
    return Checkpoint(raters, len(judged), float(rho), float((scores["jod_high"] - scores["jod_low"]).mean()))


def run_raters(sim: Simulation) -> Iterator[pd.DataFrame]:
    """Run the simulated study ``sim`` rater by rater, yielding all judgements so far
    (columns as :func:`study_app.score.load_judgements`) after each, until
    ``max_judgements`` answers are in."""
    sim.check()
    methods = list(sim.truth)
    images = [f"img{k:02d}" for k in range(sim.n_images)]
    answer_rng, tie_rng = np.random.default_rng(sim.seed), random.Random(sim.seed)
    assigned: Counter = Counter()
    rows: list[dict] = []
    judged = pd.DataFrame(columns=["rater", "image", "winner", "loser", "random_choice"])
    while len(rows) < sim.max_judgements:
        rater, mine = f"r{len(rows) // sim.comparisons:04d}", Counter()
        for start in range(0, sim.comparisons, sim.batch):
            pending: Counter = Counter()
            chosen = []
            for _ in range(min(sim.batch, sim.comparisons - start)):
                pair, image = design.choose_comparison(methods, images, assigned, mine, sim.mode, judged,
                                                       tie_rng, pending)
                assigned[(pair, image)] += 1
                mine[(pair, image)] += 1
                pending[pair] += 1
                chosen.append((pair, image))
            rows += [_answer(rater, pair, image, sim.truth, answer_rng) for pair, image in chosen]
            judged = pd.DataFrame(rows)
        yield judged


def simulate(sim: Simulation) -> Iterator[Checkpoint]:
    """Run the simulated study ``sim``, yielding a :class:`Checkpoint` after each rater."""
    for raters, judged in enumerate(run_raters(sim), start=1):
        yield _evaluate(judged, sim.truth, sim, raters)


def _answer(rater: str, pair: design.Pair, image: str, truth: dict[str, float],
            rng: np.random.Generator) -> dict:
    """A Thurstone Case V observer's judgement of ``pair``."""
    a, b = pair
    first = rng.random() < special.ndtr((truth[a] - truth[b]) / JOD_SIGMA)
    winner, loser = (a, b) if first else (b, a)
    return {"rater": rater, "image": image, "winner": winner, "loser": loser, "random_choice": False}


def first_reached(sim: Simulation, min_spearman: float | None = None,
                  max_width: float | None = None) -> dict[str, Checkpoint | None]:
    """The first checkpoints at which the JOD fit reaches Spearman's correlation
    ``min_spearman`` with the truth and a mean 95 % interval width of ``max_width`` JOD
    with at least :data:`MIN_INTERVAL_RATERS` raters (each None when not asked for or not
    reached within ``max_judgements``), keyed ``spearman`` and ``width``; the simulation
    stops once every target asked for is met."""
    targets = {"spearman": (min_spearman, lambda c: c.spearman >= min_spearman),
               "width": (max_width, lambda c: c.raters >= MIN_INTERVAL_RATERS and c.mean_width <= max_width)}
    wanted = {name: test for name, (target, test) in targets.items() if target is not None}
    found: dict[str, Checkpoint | None] = {name: None for name in targets}
    for checkpoint in simulate(sim):
        for name, test in wanted.items():
            if found[name] is None and test(checkpoint):
                found[name] = checkpoint
        if all(found[name] is not None for name in wanted):
            break
    return found
