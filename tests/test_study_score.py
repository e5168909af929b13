"""Scoring: known strengths are recovered; Elo and Bradley-Terry agree on the HiFiC data."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau

from study_app.score import JudgementFileError, load_judgements, main, score_methods

REPO = Path(__file__).resolve().parents[1]


def synthetic(strengths: dict[str, float], n: int, seed: int, undecided: float = 0.05) -> pd.DataFrame:
    """Judgements drawn from a Bradley-Terry model on the Elo scale with known strengths."""
    rng = np.random.default_rng(seed)
    names = list(strengths)
    rows = []
    for k in range(n):
        a, b = rng.choice(len(names), 2, replace=False)
        p = 1 / (1 + 10 ** ((strengths[names[b]] - strengths[names[a]]) / 400))
        win = rng.random() < p
        rnd = rng.random() < undecided
        if rnd:
            win = rng.random() < 0.5
        w, l = (names[a], names[b]) if win else (names[b], names[a])
        rows.append({"rater": f"r{k % 10}", "image": f"img{k % 4}", "winner": w, "loser": l, "random_choice": rnd})
    return pd.DataFrame(rows)


def test_known_strengths_are_recovered() -> None:
    truth = {"best": 2300.0, "good": 2150.0, "mid": 2000.0, "poor": 1800.0}
    scores = score_methods(synthetic(truth, 3000, seed=1), n_orderings=50, n_bootstrap=100)
    assert list(scores["method"]) == ["best", "good", "mid", "poor"]
    bt = scores.set_index("method")["bt"]
    gaps_true = np.diff([truth[m] for m in bt.index])
    gaps_bt = np.diff(bt.to_numpy())
    # undecided answers (draws) shrink the gaps a little; 3000 answers pin them to ~15 %
    assert np.allclose(gaps_bt, gaps_true * 0.95, rtol=0.2)
    assert ((scores["bt_lo"] < scores["bt"]) & (scores["bt"] < scores["bt_hi"])).all()
    truth_centred = {m: v - np.mean(list(truth.values())) + 2000 for m, v in truth.items()}
    assert all(lo - 30 < truth_centred[m] < hi + 30 for m, lo, hi in
               zip(scores["method"], scores["bt_lo"], scores["bt_hi"]))
    assert scores["normalized"].iloc[0] == 0.0 and scores["normalized"].iloc[-1] == 1.0
    assert (scores["elo_std"] > 0).all()
    # Elo, averaged over orderings, keeps the order and roughly the gaps
    assert np.allclose(np.diff(scores["elo_mean"]), gaps_true, rtol=0.35)


def test_per_image_scores() -> None:
    truth = {"a": 2200.0, "b": 2000.0, "c": 1800.0}
    scores = score_methods(synthetic(truth, 1200, seed=2), n_orderings=20, n_bootstrap=30, by_image=True)
    assert list(scores.columns[:2]) == ["image", "method"]
    assert set(scores["image"]) == {"img0", "img1", "img2", "img3"}
    for _, group in scores.groupby("image"):
        assert list(group["method"]) == ["a", "b", "c"]


def test_elo_and_bradley_terry_agree_on_hific_data(shared_data: Path) -> None:
    df = load_judgements(shared_data / "hific_userstudy" / "userstudy.json")
    assert len(df) == 5220 and df["rater"].nunique() == 20 and df["random_choice"].sum() == 231
    scores = score_methods(df, n_orderings=50, n_bootstrap=100)
    tau = kendalltau(scores["elo_mean"], scores["bt"]).statistic
    assert tau > 0.9
    # wherever Bradley-Terry separates two methods (disjoint intervals) Elo orders them alike
    for i, r in scores.iterrows():
        for j, q in scores.iterrows():
            if r["bt_lo"] > q["bt_hi"]:
                assert r["elo_mean"] > q["elo_mean"]
    s = scores.set_index("method")
    # the paper's headline (Fig. 3): HiFiC-Hi best, HiFiC-Mi preferred to BPG 0.504 bpp and M&S
    assert scores["method"].iloc[0] == "ours_gan_high"
    assert s.loc["ours_gan_med", "bt"] > s.loc["bpg_med_3_v2", "bt"] > s.loc["minnen_mse_high", "bt"]
    assert s.loc["ours_gan_med", "normalized"] < s.loc["minnen_mse_high", "normalized"]


def test_cli_prints_scores_and_refuses_bad_files(shared_data: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    out = subprocess.run([sys.executable, "-m", "study_app.score", str(shared_data / "hific_userstudy" / "userstudy.json"),
                          "--json", "--orderings", "20", "--bootstrap", "20"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    records = json.loads(out.stdout)
    assert {r["method"] for r in records} >= {"ours_gan_high", "bpg_med_3_v2"}
    assert set(records[0]) == {"method", "n", "elo_mean", "elo_std", "bt", "bt_lo", "bt_hi", "normalized"}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"r1": {"c1": {"image": "x.png", "greater": "a"}}}))
    for path, fmt, message in [(bad, "hific-json", "'lesser' must be a non-empty string"),
                               (tmp_path / "none.csv", "csv", "no such file"),
                               (REPO / "pyproject.toml", "hific-json", "not valid JSON")]:
        assert main([str(path), "--format", fmt]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err


@pytest.mark.parametrize("text, message", [
    ("rater,image,winner\nr,i,a\n", "missing column(s) loser, random_choice"),
    ("rater,image,winner,loser,random_choice\nr,i,a,b,maybe\n", "cannot read 'maybe'"),
    ("rater,image,winner,loser,random_choice\nr,i,,b,False\n", "empty rater/image/winner/loser"),
])
def test_malformed_csv_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "j.csv"
    path.write_text(text)
    with pytest.raises(JudgementFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_judgements(path, fmt="csv")
