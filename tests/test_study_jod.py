"""JOD scaling (Thurstone Case V, as pwcmp), information-gain pair choice (ASAP), rater
screening and study planning: on HiFiC's published judgements, simulated raters with fixed
seeds, a real study database and the admin page."""
from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from analysis import factors, figures
from analysis import human
from study_app import design, plan, raters, reports, simulate, studies, transfer, trials
from study_app.score import (JOD_SIGMA, ScaleError, fit_jod, load_judgements, main, preference_counts,
                             score_methods, screen_raters)

JOD_COLUMNS = {"method", "n", "jod", "jod_low", "jod_high", "normalized"}


@pytest.fixture(scope="module")
def published(shared_data: Path) -> pd.DataFrame:
    return load_judgements(shared_data / "hific_userstudy" / "userstudy.json")


def judgements(rows: list[tuple[str, str, bool]], rater: str = "r") -> pd.DataFrame:
    """Judgements (winner, loser, can't decide) of one rater on one image."""
    return pd.DataFrame([{"rater": rater, "image": "i", "winner": w, "loser": l, "random_choice": d}
                         for w, l, d in rows])


def honest_raters(truth: dict[str, float], n_raters: int, seed: int) -> pd.DataFrame:
    """Judgements of simulated Thurstone Case V raters, 60 balanced comparisons each."""
    sim = simulate.Simulation(truth, "balanced", comparisons=60, n_images=4, max_judgements=60 * n_raters,
                              seed=seed)
    return list(simulate.run_raters(sim))[-1]


def test_published_jod_orders_methods_as_elo_and_bradley_terry(published: pd.DataFrame) -> None:
    scores = score_methods(published, n_orderings=100, n_bootstrap=500, scales=("jod", "elo", "bt"))
    assert set(scores.columns) == JOD_COLUMNS | {"elo_mean", "elo_std", "bt", "bt_lo", "bt_hi"}
    # Bradley-Terry's order; Elo's too, but where Elo itself cannot tell two methods apart (a
    # gap within its spread over orderings: HiFiC-Lo and BPG 0.390, which it also swaps against
    # Bradley-Terry)
    assert list(scores["method"]) == list(scores.sort_values("bt", ascending=False)["method"])
    s = scores.set_index("method")
    for a, b in itertools.combinations(s.index, 2):
        elo_gap = s.loc[a, "elo_mean"] - s.loc[b, "elo_mean"]
        if np.sign(elo_gap) != np.sign(s.loc[a, "jod"] - s.loc[b, "jod"]):
            assert abs(elo_gap) < min(s.loc[a, "elo_std"], s.loc[b, "elo_std"]) / 4, (a, b)
    # worst method 0; the paper's headline: HiFiC-Mi over BPG at 0.504 bpp over M&S at 0.405 bpp
    assert s["jod"].min() == 0.0 and s["jod"].idxmin() == "minnen_mse_low"
    assert s["jod"].idxmax() == "ours_gan_high"
    assert s.loc["ours_gan_med", "jod"] > s.loc["bpg_med_3_v2", "jod"] > s.loc["minnen_mse_high", "jod"]
    assert 3.0 < s["jod"].max() < 4.5
    assert ((scores["jod_low"] < scores["jod"]) & (scores["jod"] < scores["jod_high"])).all()
    assert scores["normalized"].iloc[0] == 0.0 and scores["normalized"].iloc[-1] == 1.0


def test_fit_matches_an_independent_minimisation(published: pd.DataFrame) -> None:
    """The same likelihood written per judgement (draws as half a preference each way), the
    worst method fixed at 0, minimised by BFGS with numerical gradients."""
    df = published[published["winner"] != published["loser"]]
    methods = sorted(set(df["winner"]) | set(df["loser"]))
    w = df["winner"].map(methods.index).to_numpy()
    l = df["loser"].map(methods.index).to_numpy()
    draw = df["random_choice"].to_numpy()
    sigma = 1.0 / stats.norm.ppf(0.75)
    worst = methods.index("minnen_mse_low")

    def nll(free: np.ndarray) -> float:
        d = (np.insert(free, worst, 0.0)[w] - np.insert(free, worst, 0.0)[l]) / sigma
        half = 0.5 * stats.norm.logcdf(d) + 0.5 * stats.norm.logcdf(-d)
        return -np.where(draw, half, stats.norm.logcdf(d)).sum()

    direct = np.insert(optimize.minimize(nll, np.zeros(len(methods) - 1), method="BFGS").x, worst, 0.0)
    jod = score_methods(df, n_bootstrap=10, scales=("jod",)).set_index("method").loc[methods, "jod"]
    assert np.abs(jod.to_numpy() - direct).max() < 1e-5
    assert JOD_SIGMA == pytest.approx(1.4826, abs=1e-4)


def test_one_jod_is_75_percent_and_ties_count_half() -> None:
    def gap(rows: list[tuple[str, str, bool]]) -> float:
        s = score_methods(judgements(rows), n_bootstrap=5, scales=("jod",)).set_index("method")["jod"]
        return s["a"] - s["b"]

    assert gap([("a", "b", False)] * 75 + [("b", "a", False)] * 25) == pytest.approx(1.0, abs=1e-6)
    # 3 wins, 1 loss, 2 can't-decide (stored with either pick) = 4 of 6 preferences
    with_draws = [("a", "b", False)] * 3 + [("b", "a", False)] + [("a", "b", True), ("b", "a", True)]
    assert gap(with_draws) == pytest.approx(JOD_SIGMA * stats.norm.ppf(4 / 6), abs=1e-6)
    assert gap(with_draws) == pytest.approx(gap([("a", "b", False)] * 4 + [("b", "a", False)] * 2), abs=1e-6)
    counts = preference_counts(np.array([0, 1]), np.array([1, 0]), np.array([True, False]), 2)[0]
    assert counts.tolist() == [[0.0, 0.5], [1.5, 0.0]]


def test_disconnected_or_unanimous_designs_need_a_prior(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    split = judgements([("a", "b", False), ("b", "a", False), ("c", "d", False), ("d", "c", False)] * 3)
    with pytest.raises(ScaleError, match=r"disconnected \(a, b \| c, d\)"):
        score_methods(split, n_bootstrap=5, scales=("jod",))
    with pytest.raises(ScaleError, match=r"^image i: the comparison graph is disconnected"):
        score_methods(split, n_bootstrap=5, scales=("jod",), by_image=True)
    with_prior = score_methods(split, n_bootstrap=5, scales=("jod",), prior_sd=1.0)
    assert np.isfinite(with_prior[["jod", "jod_low", "jod_high"]].to_numpy()).all()
    unanimous = judgements([("a", "b", False)] * 5 + [("b", "c", False), ("c", "b", False)])
    with pytest.raises(ScaleError, match=r"^a never lost to the other methods"):
        score_methods(unanimous, n_bootstrap=5, scales=("jod",))
    s = score_methods(unanimous, n_bootstrap=5, scales=("jod",), prior_sd=1.0).set_index("method")["jod"]
    assert s["a"] - max(s["b"], s["c"]) > 1 and min(s["b"], s["c"]) == 0
    path = tmp_path / "split.csv"
    split.to_csv(path, index=False)
    assert main([str(path), "--scale", "jod"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "disconnected" in err
    assert main([str(path), "--scale", "jod", "--prior", "1", "--json", "--bootstrap", "20"]) == 0
    assert {tuple(sorted(r)) for r in json.loads(capsys.readouterr().out)} == {tuple(sorted(JOD_COLUMNS))}
    for args, message in [(["--scale", "mos"], "unknown scale in mos"),
                          (["--scale", "jod", "--prior", "-1"], "must be positive")]:
        assert main([str(path), *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err


def random_pairs(truth: dict[str, float], n_raters: int, per_rater: int, rng: np.random.Generator) -> pd.DataFrame:
    """Judgements of Thurstone Case V raters on uniformly random pairs (fast, no design)."""
    names, q = np.array(list(truth)), np.array(list(truth.values()))
    a = rng.integers(0, len(q), n_raters * per_rater)
    b = (a + rng.integers(1, len(q), a.size)) % len(q)
    first = rng.random(a.size) < stats.norm.cdf((q[a] - q[b]) / JOD_SIGMA)
    return pd.DataFrame({"rater": np.repeat(np.arange(n_raters), per_rater).astype(str), "image": "i",
                         "winner": names[np.where(first, a, b)], "loser": names[np.where(first, b, a)],
                         "random_choice": False})


def test_bootstrap_intervals_cover_known_scores() -> None:
    """40 simulated studies of 30 raters with known JOD: the estimates land near the truth
    and about 95 % of the intervals (resampling raters, 500 times) cover it."""
    truth = simulate.evenly_spread(5, 3.0)
    rng = np.random.default_rng(11)
    covered, errors = [], []
    for rep in range(40):
        scores = score_methods(random_pairs(truth, 30, 60, rng), n_bootstrap=500, seed=rep,
                               scales=("jod",)).set_index("method").loc[list(truth)]
        centred = np.array(list(truth.values())) - np.mean(list(truth.values())) + scores["jod"].mean()
        covered += list((scores["jod_low"] <= centred) & (centred <= scores["jod_high"]))
        errors += list(scores["jod"] - centred)
    assert 0.88 < np.mean(covered) < 0.99
    assert abs(np.mean(errors)) < 0.02 and np.max(np.abs(errors)) < 0.4
    # resamples are fitted together, as one fit at a time would
    counts = preference_counts(np.array([0, 1, 1, 2, 2, 0]), np.array([1, 0, 2, 1, 0, 2]), np.zeros(6, bool), 3)
    batch = np.concatenate([counts, 2 * counts, counts])
    assert fit_jod(batch) == pytest.approx(np.concatenate([fit_jod(c[None]) for c in batch]), abs=1e-6)


def test_information_gain_prefers_uncertain_pairs_and_spreads_open_trials() -> None:
    methods = ["a", "b", "c"]
    # a always beats b and c; b and c split evenly: the (b, c) answer is the informative one
    judged = judgements([("a", "b", False)] * 20 + [("a", "c", False)] * 20
                        + [("b", "c", False), ("c", "b", False)] * 3)
    gain = design.information_gain(methods, judged, Counter())
    assert max(gain, key=gain.get) == ("b", "c")
    pair, _ = design.choose_comparison(methods, ["img"], Counter(), Counter(), "information", judged,
                                       random.Random(0))
    assert pair == ("b", "c")
    # many open (b, c) trials already bring that information: the next pair is another one
    busy = design.information_gain(methods, judged, Counter({("b", "c"): 40}))
    assert busy[("b", "c")] < gain[("b", "c")] / 4 and max(busy, key=busy.get) != ("b", "c")
    # with no answers at all every pair is as informative
    fresh = design.information_gain(methods, judged.iloc[:0], Counter())
    assert len(set(np.round(list(fresh.values()), 12))) == 1 and min(fresh.values()) > 0


def test_information_mode_on_a_real_study_database(study_bench_dir: Path, tmp_path: Path) -> None:
    config = studies.StudyConfig(benchmark_dir=str(study_bench_dir), methods=["jpeg:q5", "jpeg:q20", "jpeg:q60"],
                                 images=["kodim01", "kodim05", "kodim23"], crop_size=64, n_positions=1,
                                 comparisons_per_rater=6, mode="information", attention_every=0)
    h = studies.create_study(tmp_path, "info", config)
    assert (tmp_path / "info" / "study.db").is_file()
    old = judgements([("jpeg:q20", "jpeg:q5", False)] * 30 + [("jpeg:q60", "jpeg:q5", False)] * 30
                     + [("jpeg:q20", "jpeg:q60", False), ("jpeg:q60", "jpeg:q20", False)] * 3, rater="earlier")
    transfer.import_judgements(h, old)
    rater = raters.add_rater(h, "ann")
    shown = []
    while (trial := trials.current_trial(h, rater)) is not None:
        shown.append((design.pair_key(trial.method_a, trial.method_b), trial.image))
        trials.submit(h, rater.token, trial.id, trial.nonce, "A")
    # the close pair first, on each image once, before the far pairs
    assert [p for p, _ in shown[:3]] == [("jpeg:q20", "jpeg:q60")] * 3
    assert len({img for _, img in shown[:3]}) == 3
    assert len(set(shown)) == 6 and len(reports.scored_judgements(h)) == len(old) + 6


def test_screening_flags_random_and_adversarial_raters(tmp_path: Path) -> None:
    truth = simulate.evenly_spread(6, 3.0)
    honest = honest_raters(truth, 12, seed=5)
    rng = np.random.default_rng(7)
    pairs = honest[honest["rater"] == "r0000"]
    better = np.array([truth[w] > truth[l] for w, l in zip(pairs["winner"], pairs["loser"])])
    # an adversary prefers the truly worse method; a random rater tosses a coin
    adversary = pairs.assign(rater="adversary", winner=np.where(better, pairs["loser"], pairs["winner"]),
                             loser=np.where(better, pairs["winner"], pairs["loser"]))
    flip = rng.random(len(pairs)) < 0.5
    coin = pairs.assign(rater="coin", winner=np.where(flip, pairs["loser"], pairs["winner"]),
                        loser=np.where(flip, pairs["winner"], pairs["loser"]))
    df = pd.concat([honest, adversary, coin], ignore_index=True)
    screened = screen_raters(df).set_index("rater")
    assert set(screened.index[screened["flagged"]]) == {"adversary", "coin"}
    assert screened.loc["adversary", "agreement"] < 0.2 < screened.loc["coin", "agreement"] < 0.7
    assert (screened.drop(index=["adversary", "coin"])["agreement"] > 0.65).all()
    # in a study: shown next to attention checks; nobody is excluded until the researcher does it
    h = studies.create_import_study(tmp_path, "screened")
    transfer.import_judgements(h, df)
    summary = reports.rater_summary(h).set_index("rater")
    assert set(summary.index[summary["flagged"]]) == {"adversary", "coin"}
    assert not summary["excluded"].any() and len(reports.scored_judgements(h)) == len(df)


def test_published_raters_screening(published: pd.DataFrame) -> None:
    screened = screen_raters(published)
    assert len(screened) == 20 and screened["answers"].sum() == 5218  # two self-comparisons left out
    assert screened["agreement"].between(0.5, 0.9).all()
    assert screened["flagged"].sum() <= 2


def test_simulated_studies_compare_modes_reproducibly() -> None:
    truth = simulate.evenly_spread(4, 3.0)
    runs = {mode: simulate.first_reached(simulate.Simulation(truth, mode, comparisons=20, n_images=3,
                                                             n_bootstrap=50, max_judgements=600, seed=1),
                                         min_spearman=0.95, max_width=1.0) for mode in design.MODES}
    for found in runs.values():
        assert found["spearman"] is not None and found["width"] is not None
        assert found["width"].raters >= simulate.MIN_INTERVAL_RATERS and found["width"].mean_width <= 1.0
    again = simulate.first_reached(simulate.Simulation(truth, "information", comparisons=20, n_images=3,
                                                       n_bootstrap=50, max_judgements=600, seed=1), 0.95, 1.0)
    assert again == runs["information"]


def test_plan_cli(capsys: pytest.CaptureFixture) -> None:
    fast = ["--methods", "4", "--runs", "2", "--comparisons", "20", "--bootstrap", "50", "--images", "3"]
    assert plan.main([*fast, "--target-ci", "0.6", "--json"]) == 0
    narrow = json.loads(capsys.readouterr().out)[0]
    assert plan.main([*fast, "--target-ci", "0.9", "--json"]) == 0
    wide = json.loads(capsys.readouterr().out)[0]
    assert narrow["judgements"] == narrow["raters"] * 20 and narrow["raters_min"] <= narrow["raters"]
    # the judgements needed grow about as 1 / width^2
    assert 1.3 < narrow["judgements"] / wide["judgements"] < 4.0
    assert plan.main([*fast, "--target-ci", "0.9"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("4 methods spread over 3.66 JOD, balanced pairs") and "judgements" in out
    for args, message in [(["--methods", "1", "--target-ci", "0.3"], "need --methods >= 2"),
                          (["--methods", "4", "--target-ci", "0"], "--target-ci > 0"),
                          (["--methods", "4", "--target-ci", "0.3", "--mode", "best"], "unknown mode 'best'"),
                          (["--methods", "4", "--target-ci", "0.3", "--comparisons", "ten"],
                           "comma-separated integers"),
                          ([*fast, "--target-ci", "0.01", "--max-judgements", "100"], "raise --max-judgements")]:
        assert plan.main(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err


def test_report_scores_published_study_in_jod(published: pd.DataFrame, shared_data: Path) -> None:
    scores, notes = human.human_scores(shared_data / "hific_userstudy" / "userstudy.json", 5, 50, scale="jod")
    assert notes == [] and {"jod", "jod_low", "jod_high", "bt", "elo_mean"} <= set(scores.columns)
    fig, notes = figures.study_figure(scores, scale="jod")
    bars = fig.data[0]
    assert notes == [] and bars.x[0] == "ours_gan_high" and bars.y[0] == 0.0 and max(bars.y) == 1.0
    assert min(bars.error_y.array) >= 0 and max(bars.error_y.arrayminus) > 0
    table, notes = factors.bitrate_factors(human.published_points(scores, "jod"), "human", "hific", ["bpg", "ms"])
    mi = table[table["reference"] == "hific:HiFiC-Mi"].set_index("baseline")
    assert notes == [] and factors.factor_text(mi.loc["bpg"]) == ">2.1x"


def test_admin_page_shows_jod_with_intervals_and_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       admin_page) -> None:
    monkeypatch.setenv("HIFIC_STUDY_ROOT", str(tmp_path))
    monkeypatch.delenv("HIFIC_STUDY_ADMIN_PASSWORD", raising=False)
    truth = {"jpeg:q5": 0.0, "jpeg:q20": 1.2, "jpeg:q60": 2.0}
    honest = honest_raters(truth, 8, seed=2)
    mine = honest[honest["rater"] == "r0000"]
    adversary = mine.assign(rater="contrarian", winner=mine["loser"], loser=mine["winner"])
    h = studies.create_import_study(tmp_path, "jodstudy")
    transfer.import_judgements(h, pd.concat([honest, adversary], ignore_index=True))
    at = admin_page()
    assert not at.exception
    assert any("Screening flags contrarian" in w.value for w in at.warning)
    at.slider(key="orderings").set_value(10)
    at.slider(key="bootstrap").set_value(100)
    at.multiselect(key="scales").set_value(["jod", "bt"]).run()
    assert not at.exception
    scores = next(d.value for d in at.dataframe if "jod" in d.value.columns)
    assert list(scores.columns[:5]) == ["method", "n", "jod", "jod_low", "jod_high"]
    assert list(scores["method"]) == ["jpeg:q60", "jpeg:q20", "jpeg:q5"] and scores["jod"].iloc[-1] == 0.0
    assert ((scores["jod_low"] < scores["jod"]) & (scores["jod"] < scores["jod_high"])).all()
    (chart,) = at.get("plotly_chart")  # Fig. 3 stays on Bradley-Terry, as in the report
    assert json.loads(chart.proto.spec)["data"][0]["name"] == "human (inverted)" and "bt" in scores.columns
    assert reports.rater_summary(h).set_index("rater").loc["contrarian", "excluded"] == False  # noqa: E712
