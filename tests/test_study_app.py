"""Streamlit's AppTest drives a rater through a session and the admin through an export."""
from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from analysis.figures import study_figure
from study_app import raters, reports, studies, trials
from study_app.flipper import data_uri
from study_app.score import load_judgements, score_methods

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "study_app" / "app.py")
METHODS = ["jpeg:q5", "jpeg:q20", "jpeg:q60"]


@pytest.fixture(autouse=True)
def keep_main_module():
    """AppTest leaves the app script as ``sys.modules["__main__"]``; put pytest's back so that
    later tests using multiprocessing's spawn start method do not re-run the app."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture()
def demo(study_bench_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> studies.StudyHandle:
    monkeypatch.setenv("HIFIC_STUDY_ROOT", str(tmp_path))
    monkeypatch.delenv("HIFIC_STUDY_ADMIN_PASSWORD", raising=False)
    config = studies.StudyConfig(benchmark_dir=str(study_bench_dir), methods=METHODS,
                                 images=["kodim01", "kodim05"], crop_size=64, n_positions=2,
                                 comparisons_per_rater=4, attention_every=2)
    return studies.create_study(tmp_path, "demo", config)


def page_text(at: AppTest) -> str:
    """Everything the page sends to the browser, as text, with the crops' base64 payloads
    left out (random base64 could spell "jpeg")."""
    text = "\n".join(str(node.proto) for node in at.main) + "\n".join(str(n.proto) for n in at.sidebar)
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:image/png;base64,...", text)


def flipper_data(at: AppTest) -> dict[str, str]:
    """The data the A/B flipper component received: crops by role."""
    (element,) = [e for e in at.get("bidi_component") if e.proto.component_name == "hific_study_flipper"]
    return json.loads(element.proto.json)


def plotly_array(values: list | dict) -> list[float]:
    """A trace's values from a figure's JSON, where plotly writes numpy arrays as base64."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist()
    return list(values)


def button(at: AppTest, prefix: str):
    return next(b for b in at.button if b.label.startswith(prefix))


def rater_app(h: studies.StudyHandle, token: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["study"] = h.name
    at.query_params["token"] = token
    return at.run()


def test_rater_session_is_blind_stored_and_resumable(demo: studies.StudyHandle) -> None:
    rater = raters.add_rater(demo, "carol")
    at = rater_app(demo, rater.token)
    assert not at.exception
    assert at.get("progress")[0].value == 0
    text = page_text(at)
    assert "jpeg" not in text and "@original" not in text and rater.token not in text
    # the flipper gets the original and both reconstructions as data, keyed by role only
    paths = trials.trial_item_paths(demo, trials.current_trial(demo, rater))
    assert flipper_data(at) == {role: data_uri(path) for role, path in paths.items()}
    assert len(set(flipper_data(at).values())) == 3
    choices = ["A is closer", "B is closer", "Can't decide"]
    for i in range(3):
        button(at, choices[i]).click().run()
        assert not at.exception
    assert trials.progress(demo, rater) == (3, 6)
    # leave and come back with the same link: the session resumes where it stopped
    at = rater_app(demo, rater.token)
    assert at.get("progress")[0].value == 50
    for _ in range(3):
        button(at, "A is closer").click().run()
    assert any("All done" in s.value for s in at.success)
    df = reports.judgements(demo)
    assert len(df) == 6 and list(df["choice"][:3]) == ["A", "B", "undecided"]
    assert df["rater"].eq("carol").all() and df["duration_s"].notna().all()


def test_rater_page_refuses_bad_links(demo: studies.StudyHandle) -> None:
    for params, message in [({"study": "demo", "token": "not a token!"}, "malformed rater token"),
                            ({"study": "demo", "token": "A" * 32}, "unknown rater token"),
                            ({"study": "../../etc", "token": "A" * 32}, "malformed study name"),
                            ({"study": "nosuch"}, "no study named"),
                            ({}, "needs a study link")]:
        at = AppTest.from_file(APP, default_timeout=60)
        for k, v in params.items():
            at.query_params[k] = v
        at.run()
        assert not at.exception
        assert message in at.error[0].value


def test_rater_registers_with_an_id(demo: studies.StudyHandle) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["study"] = "demo"
    at.run()
    at.text_input[0].input("dave")
    at.button[0].click().run()
    assert not at.exception
    token = at.query_params["token"]
    assert raters.rater_by_token(demo, token).label == "dave"
    assert at.get("progress")[0].value == 0


def test_admin_logs_in_excludes_and_exports(demo: studies.StudyHandle, tmp_path: Path) -> None:
    team = [raters.add_rater(demo, f"r{i}") for i in range(2)]
    for r in team:
        while (trial := trials.current_trial(demo, r)) is not None:
            trials.submit(demo, r.token, trial.id, trial.nonce, "A")
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["page"] = "admin"
    at.run()
    assert "admin page is disabled" in at.error[0].value
    at.secrets["study_admin_password"] = "correct horse"
    at.run()
    at.text_input[0].input("wrong")
    at.button[0].click().run()
    assert "Wrong password." in [e.value for e in at.error]
    assert "r0" not in page_text(at)
    at.text_input[0].input("correct horse")
    at.button[0].click().run()
    assert not at.exception
    assert "r0" in page_text(at)
    scores = next(d.value for d in at.dataframe if "elo_mean" in d.value.columns)
    assert sorted(scores["method"]) == sorted(METHODS) and scores["normalized"].max() == 1.0
    # the admin's Fig. 3 is the report's: Bradley-Terry, whatever scale orders the table
    (chart,) = at.get("plotly_chart")
    drawn = json.loads(chart.proto.spec)["data"][0]
    report = study_figure(score_methods(reports.scored_judgements(demo), scales=("bt",)))[0].data[0]
    assert drawn["name"] == "human (inverted)" and drawn["x"] == list(report.x)
    assert plotly_array(drawn["y"]) == pytest.approx(list(report.y))
    at.multiselect(key="excl-demo").select("r1").run()
    assert reports.rater_summary(demo).set_index("rater").loc["r1", "excluded"]
    at.button(key="save_export").click().run()
    assert not at.exception
    exported = load_judgements(demo.directory / "exports" / "judgements.csv", fmt="csv")
    # attention checks and the excluded rater are left out of the scored judgements
    assert len(exported) == 4 and set(exported["rater"]) == {"r0"}
    records = json.loads((demo.directory / "exports" / "judgements.json").read_text())
    assert len(records) == 12 and sum(r["excluded"] for r in records) == 6
    assert len(at.get("download_button")) == 2


def test_admin_imports_hific_json_and_refuses_malformed(demo: studies.StudyHandle, shared_data: Path,
                                                        admin_page) -> None:
    at = admin_page()
    at.text_input(key="import_name").input("broken").run()
    at.get("file_uploader")[0].set_value(("x.json", b'{"r": {"c": {"image": 3}}}', "application/json")).run()
    at.button(key="import_go").click().run()
    assert any("Import refused" in e.value and "'image' must be a non-empty string" in e.value for e in at.error)
    data = (shared_data / "hific_userstudy" / "userstudy.json").read_bytes()
    at.text_input(key="import_name").input("hific2020").run()
    at.get("file_uploader")[0].set_value(("userstudy.json", data, "application/json")).run()
    at.button(key="import_go").click().run()
    assert not at.exception
    assert any("Imported 5220 judgements" in s.value for s in at.success)
    assert set(studies.list_studies(demo.directory.parent)) == {"demo", "hific2020"}
