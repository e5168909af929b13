"""How many judgements each pair-selection mode of the study app needs, with simulated raters,
and how fast the information-gain choice is on a real study database.

    python benchmarks/study_design.py [--judgements userstudy.json] [--runs 5] [--comparisons 50]
        [--spearman 0.95] [--target-ci 0.3] [--seed 0] [--out design.json]

The true scores are the JOD of HiFiC's published study (``--judgements``, by default
``../shared/data/hific_userstudy/userstudy.json``).  For each mode (balanced, adaptive,
information), ``--runs`` simulated studies (:mod:`study_app.simulate`) run until the JOD fit
reaches Spearman's correlation ``--spearman`` with the truth and a mean 95 % interval width of
``--target-ci`` JOD (raters choose pairs in batches of 10; a study gives up after 12,000
judgements); the median judgements needed (and the range) are printed.  Then a real SQLite
study of 12 methods (tiny crops) holding 3,000 simulated answers times, 20 times, the
information-gain choice of a new trial: the choice alone
(:func:`study_app.design.choose_comparison`) and :func:`study_app.trials.current_trial`
(database reads, fit, choice, write).  ``--out`` also writes the figures as JSON, atomically.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hific.image_io import atomic_write_bytes, write_png
from study_app import design, raters, reports, simulate, studies, transfer, trials
from study_app.score import JudgementFileError, load_judgements, score_methods

PUBLISHED = Path(__file__).resolve().parents[2] / "shared" / "data" / "hific_userstudy" / "userstudy.json"


TIMING_METHODS, TIMING_JUDGEMENTS, TIMING_REPEATS = 12, 3000, 20
MAX_JUDGEMENTS = 12000


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--judgements", type=Path, default=PUBLISHED, help="HiFiC-style judgements giving the truth")
    p.add_argument("--runs", type=int, default=5, help="simulated studies per mode")
    p.add_argument("--comparisons", type=int, default=50, help="comparisons per simulated rater")
    p.add_argument("--spearman", type=float, default=0.95, help="target rank correlation with the truth")
    p.add_argument("--target-ci", type=float, default=0.3, help="target mean 95 %% interval width (JOD)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="also write the figures here as JSON")
    return p.parse_args(argv)


def modes_needed(truth: dict[str, float], args: argparse.Namespace) -> dict[str, dict[str, list[int | None]]]:
    """Per mode and target, the judgements each simulated study needed (None: not reached)."""
    out = {}
    for mode in tqdm(design.MODES, desc="modes", unit="mode"):
        sims = [simulate.Simulation(truth, mode, args.comparisons, max_judgements=MAX_JUDGEMENTS,
                                    seed=args.seed + run) for run in range(args.runs)]
        found = [simulate.first_reached(sim, args.spearman, args.target_ci) for sim in sims]
        out[mode] = {target: [f[target].judgements if f[target] else None for f in found]
                     for target in ("spearman", "width")}
    return out


def timing_study(root: Path, args: argparse.Namespace, span: float) -> tuple[studies.StudyHandle, list[str]]:
    """A real study (SQLite) of 12 methods spread over ``span`` JOD, with 16x16 crops of
    noise images, holding 3,000 answers of simulated raters (balanced pairs)."""
    rng = np.random.default_rng(args.seed)
    bench = root / "bench"
    truth = {f"sim:{m}": v for m, v in simulate.evenly_spread(TIMING_METHODS, span).items()}
    images = [f"img{k:02d}" for k in range(20)]
    for image in images:
        for folder in [bench / "originals", *(bench / "recon" / "sim" / m.split(":")[1] for m in truth)]:
            write_png(folder / f"{image}.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    config = studies.StudyConfig(benchmark_dir=str(bench), methods=list(truth), images=images, crop_size=16,
                                 n_positions=1, comparisons_per_rater=10, mode="information", attention_every=0)
    h = studies.create_study(root / "studies", "timing", config)
    sim = simulate.Simulation(truth, "balanced", comparisons=50, max_judgements=TIMING_JUDGEMENTS, seed=args.seed)
    judged = list(simulate.run_raters(sim))[-1]
    transfer.import_judgements(h, judged)
    return h, images


def selection_times(args: argparse.Namespace, span: float) -> dict[str, float]:
    """Median and 90th-percentile milliseconds of the information-gain choice on a real study."""
    with tempfile.TemporaryDirectory(prefix="study-design-") as tmp:
        h, images = timing_study(Path(tmp), args, span)
        judged = reports.scored_judgements(h)[["winner", "loser", "random_choice"]]
        choose, trial = [], []
        for k in range(TIMING_REPEATS):
            t0 = time.perf_counter()
            design.choose_comparison(h.config.methods, images, Counter(), Counter(), "information", judged,
                                     random.Random(k))
            choose.append(1000 * (time.perf_counter() - t0))
            rater = raters.add_rater(h, f"timer{k}")
            t0 = time.perf_counter()
            trials.current_trial(h, rater)  # stays open: the next choice counts it as pending
            trial.append(1000 * (time.perf_counter() - t0))
    return {"judgements": len(judged), "methods": len(h.config.methods),
            "choose_ms_median": statistics.median(choose), "choose_ms_p90": float(np.percentile(choose, 90)),
            "current_trial_ms_median": statistics.median(trial),
            "current_trial_ms_p90": float(np.percentile(trial, 90))}


def summary(values: list[int | None]) -> str:
    """Median [min, max] of the runs that reached the target, and how many did not."""
    reached = [v for v in values if v is not None]
    if not reached:
        return "not reached"
    missed = len(values) - len(reached)
    return f"{statistics.median(reached):.0f} [{min(reached)}, {max(reached)}]" + (
        f" ({missed} not reached)" if missed else "")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        scores = score_methods(load_judgements(args.judgements), n_bootstrap=10, scales=("jod",))
    except (JudgementFileError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    truth = dict(zip(scores["method"], scores["jod"]))
    span = float(scores["jod"].max())
    needed = modes_needed(truth, args)
    times = selection_times(args, span)
    print(f"truth: JOD of {args.judgements.name} ({len(truth)} methods over {span:.2f} JOD); "
          f"{args.runs} simulated studies per mode, {args.comparisons} comparisons per rater")
    print(f"{'mode':<12} {'judgements to Spearman ' + str(args.spearman):<34} "
          f"judgements to mean 95 % CI {args.target_ci} JOD")
    for mode, found in needed.items():
        print(f"{mode:<12} {summary(found['spearman']):<34} {summary(found['width'])}")
    print(f"information-gain choice, {times['methods']} methods, {times['judgements']} judgements in SQLite: "
          f"choice {times['choose_ms_median']:.1f} ms (p90 {times['choose_ms_p90']:.1f}), whole current_trial "
          f"{times['current_trial_ms_median']:.1f} ms (p90 {times['current_trial_ms_p90']:.1f})")
    if args.out:
        atomic_write_bytes(args.out, json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "needed": needed,
                                           "timing": times}, indent=1).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
