"""How many raters x comparisons a study needs for a target interval width.

    python -m study_app.plan --methods N --target-ci W [--mode balanced|adaptive|information]
                             [--comparisons 25,50,100] [--span JOD] [--runs 3] [--json]

Simulated studies (:mod:`study_app.simulate`: Thurstone Case V raters, the app's pair
choice) of N methods whose true scores are evenly spread over ``--span`` JOD (by default
the span of HiFiC's published study) run until the 95 % bootstrap intervals of the JOD
scores are W JOD wide on average; for each number of comparisons per rater this prints the
median over ``--runs`` studies of the raters needed (and their range), and the judgements
that makes.  Bad input prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np
import pandas as pd

from study_app import design, simulate

# JOD of the best minus the worst method in HiFiC's published 5,220 judgements
# (python -m study_app.score ../shared/data/hific_userstudy/userstudy.json --scale jod).
PUBLISHED_JOD_SPAN = 3.66
PLAN_COLUMNS = ["comparisons", "raters", "raters_min", "raters_max", "judgements"]


def plan(n_methods: int, target_ci: float, mode: str = "balanced", comparisons: tuple[int, ...] = (25, 50, 100),
         span: float = PUBLISHED_JOD_SPAN, runs: int = 3, **options: int) -> pd.DataFrame:
    """Per number of comparisons per rater: the raters needed for a mean 95 % JOD interval
    width of ``target_ci`` (median over ``runs`` simulated studies, rounded up, and the
    range), and the judgements that makes.  ``options`` are further fields of
    :class:`study_app.simulate.Simulation` (``batch``, ``n_images``, ``n_bootstrap``,
    ``max_judgements``, ``seed``: run k uses ``seed + k``).  Raises
    :class:`study_app.simulate.SimulationError` on bad input or a target not reached."""
    if n_methods < 2 or not target_ci > 0 or not span > 0 or runs < 1 or not comparisons:
        raise simulate.SimulationError("need --methods >= 2, --target-ci > 0, --span > 0, --runs >= 1 and "
                                       "at least one --comparisons value")
    truth = simulate.evenly_spread(n_methods, span)
    seed = options.pop("seed", 0)
    rows = []
    for per_rater in comparisons:
        sims = [simulate.Simulation(truth, mode, per_rater, seed=seed + run, **options) for run in range(runs)]
        reached = [simulate.first_reached(sim, max_width=target_ci)["width"] for sim in sims]
        if any(r is None for r in reached):
            limit = options.get("max_judgements", simulate.Simulation.max_judgements)
            raise simulate.SimulationError(f"with {per_rater} comparisons per rater the intervals did not reach "
                                           f"{target_ci} JOD within {limit} judgements; raise --max-judgements")
        raters = [r.raters for r in reached]
        median = math.ceil(np.median(raters))
        rows.append({"comparisons": per_rater, "raters": median, "raters_min": min(raters),
                     "raters_max": max(raters), "judgements": median * per_rater})
    return pd.DataFrame(rows, columns=PLAN_COLUMNS)


def _int_list(text: str) -> tuple[int, ...]:
    """A comma-separated list of positive integers."""
    try:
        values = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise simulate.SimulationError(f"--comparisons must be comma-separated integers, not {text!r}") from None
    if not values or min(values) < 1:
        raise simulate.SimulationError("--comparisons values must be at least 1")
    return values


def parser() -> argparse.ArgumentParser:
    """The argument parser."""
    p = argparse.ArgumentParser(prog="python -m study_app.plan", description=__doc__.split("\n")[0])
    p.add_argument("--methods", type=int, required=True, help="number of methods compared")
    p.add_argument("--target-ci", type=float, required=True, help="mean width of the 95 %% JOD intervals")
    p.add_argument("--mode", default="balanced",
                   help=f"pair choice: {', '.join(design.MODES)} (default balanced)")
    p.add_argument("--comparisons", default="25,50,100", help="comparisons per rater, comma-separated")
    p.add_argument("--span", type=float, default=PUBLISHED_JOD_SPAN,
                   help=f"JOD from the worst to the best method (default {PUBLISHED_JOD_SPAN}, HiFiC's study)")
    p.add_argument("--runs", type=int, default=3, help="simulated studies per setting (default 3)")
    p.add_argument("--batch", type=int, default=10, help="pairs chosen per rater before their answers arrive")
    p.add_argument("--images", type=int, default=20, help="images the pairs are spread over")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples per JOD fit")
    p.add_argument("--max-judgements", type=int, default=20000, help="give up after this many per study")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    return p


def main(argv: list[str] | None = None) -> int:
    """Print the plan; errors print one line and return 2."""
    args = parser().parse_args(argv)
    try:
        table = plan(args.methods, args.target_ci, args.mode, _int_list(args.comparisons), args.span, args.runs,
                     batch=args.batch, n_images=args.images, n_bootstrap=args.bootstrap,
                     max_judgements=args.max_judgements, seed=args.seed)
    except simulate.SimulationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(table.to_dict(orient="records"), indent=1))
    else:
        print(f"{args.methods} methods spread over {args.span} JOD, {args.mode} pairs, mean 95 % JOD interval "
              f"{args.target_ci} (median of {args.runs} simulated studies):")
        print(table.to_string(index=False))
        if (table["raters_min"] == simulate.MIN_INTERVAL_RATERS).any():
            print(f"note: the intervals resample raters, so no plan has fewer than {simulate.MIN_INTERVAL_RATERS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
