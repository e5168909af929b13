"""The study command line: create, links, export, import; bad input is one line, exit 2."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from study_app import raters, studies, trials
from study_app.cli import main
from study_app.score import load_judgements

REPO = Path(__file__).resolve().parents[1]


def test_cli_runs_a_study(study_bench_dir: Path, tmp_path: Path, shared_data: Path,
                          capsys: pytest.CaptureFixture) -> None:
    out = subprocess.run([sys.executable, "-m", "study_app.cli", "--root", str(tmp_path), "create", "s",
                          "--bench", str(study_bench_dir), "--crop", "64", "--positions", "1",
                          "--comparisons", "3", "--attention-every", "0"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "3 methods, 3 images, 3 trials per rater" in out.stdout
    assert main(["--root", str(tmp_path), "links", "s", "-n", "2", "--url", "http://example.org/"]) == 0
    links = capsys.readouterr().out.split()
    assert len(links) == 2 and all(l.startswith("http://example.org/?study=s&token=") for l in links)
    h = studies.open_study(tmp_path, "s")
    rater = raters.rater_by_token(h, links[0].rsplit("=", 1)[1])
    while (trial := trials.current_trial(h, rater)) is not None:
        trials.submit(h, rater.token, trial.id, trial.nonce, "B")
    assert main(["--root", str(tmp_path), "export", "s", "--out", str(tmp_path / "j.csv")]) == 0
    assert "3 judgements" in capsys.readouterr().out
    assert len(load_judgements(tmp_path / "j.csv")) == 3
    assert main(["--root", str(tmp_path), "import-hific", "hific",
                 str(shared_data / "hific_userstudy" / "userstudy.json")]) == 0
    assert "imported 5220 judgements" in capsys.readouterr().out


def test_cli_bad_input_is_one_line(study_bench_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"r": []}')
    for args, message in [(("create", "../x", "--bench", str(study_bench_dir)), "malformed study name"),
                          (("create", "x", "--bench", str(tmp_path)), "no recon/ folder"),
                          (("create", "x", "--bench", str(study_bench_dir), "--methods", "jpeg:q5,webp:q1"),
                           "methods not in the benchmark directory: webp:q1"),
                          (("links", "nosuch"), "no study named 'nosuch'"),
                          (("import-hific", "y", str(bad_json)), "expected an object of comparisons")]:
        assert main(["--root", str(tmp_path), *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
