"""Study set-up, storage and security: real crops, a real SQLite database in WAL mode, and
the same storage tests against a throw-away PostgreSQL server (``HIFIC_STUDY_DB_URL``)."""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import text

from study_app import db, raters, reports, studies, transfer, trials
from study_app.crops import DEGRADED, ORIGINAL, BenchmarkDirError
from study_app.score import load_judgements

METHODS = ["jpeg:q5", "jpeg:q20", "jpeg:q60"]
POSTGRES_BINS = Path("/usr/lib/postgresql")


def postgres_bindir() -> Path | None:
    """The newest Debian PostgreSQL server's bin folder, or None when none is installed."""
    found = [p.parent for p in POSTGRES_BINS.glob("*/bin/initdb")]
    return max(found, key=lambda p: int(p.parent.name)) if found else None


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A throw-away PostgreSQL server from Debian's packages, reachable only over a Unix
    socket in its own temp folder (no TCP); stopped and deleted afterwards.  As root, the
    server runs as the ``postgres`` system user the package creates."""
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries are absent (make postgres installs Debian's postgresql)")
    as_root = os.geteuid() == 0
    run_as = ["runuser", "-u", "postgres", "--"] if as_root else []
    folder = Path(tempfile.mkdtemp(prefix="hific-pg-"))
    if as_root:
        shutil.chown(folder, "postgres")
    data, port = folder / "data", 5432  # the port only names the socket file in our folder

    def pg(*args: str) -> None:
        done = subprocess.run([*run_as, *args], cwd=folder, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{args[0]} failed: {done.stdout}{done.stderr}"

    try:
        pg(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-locale",
           "-E", "UTF8", "--no-sync")
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w", "-o",
           f"-k {folder} -p {port} -c listen_addresses='' -c fsync=off", "start")
        url = f"postgresql+psycopg://postgres@/postgres?host={folder}&port={port}"
        yield url
        db.get_engine(url).dispose()
    finally:
        if (data / "postmaster.pid").exists():
            pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Where studies keep their rows: ``study.db`` in the study folder (the default) or the
    throw-away PostgreSQL server, named by ``HIFIC_STUDY_DB_URL`` as a deployment would."""
    if request.param == "postgresql":
        monkeypatch.setenv(studies.DB_URL_ENV, request.getfixturevalue("postgres_url"))
    else:
        monkeypatch.delenv(studies.DB_URL_ENV, raising=False)
    return request.param


def stored_counts(h: studies.StudyHandle) -> tuple[int, int, int]:
    """(judgements, distinct trials judged, trials) of a study, counted by the database."""
    with h.sessions() as s:
        return s.execute(text(
            "SELECT (SELECT COUNT(*) FROM judgements WHERE study_id = :s),"
            " (SELECT COUNT(DISTINCT trial_id) FROM judgements WHERE study_id = :s),"
            " (SELECT COUNT(*) FROM trials WHERE study_id = :s)"), {"s": h.study_id}).one()


def make_config(bench: Path, **kw) -> studies.StudyConfig:
    args = dict(benchmark_dir=str(bench), methods=METHODS, images=["kodim01", "kodim05", "kodim23"],
                crop_size=96, n_positions=2, comparisons_per_rater=6, attention_every=3)
    args.update(kw)
    return studies.StudyConfig(**args)


def answer_all(h: studies.StudyHandle, rater, choice: str = "A") -> int:
    n = 0
    while (trial := trials.current_trial(h, rater)) is not None:
        assert trials.submit(h, rater.token, trial.id, trial.nonce, choice) == "stored"
        n += 1
    return n


def test_create_study_cuts_real_crops(study_bench_dir: Path, tmp_path: Path) -> None:
    h = studies.create_study(tmp_path, "s1", make_config(study_bench_dir))
    assert (tmp_path / "s1" / "study.db").is_file()
    mode = sqlite3.connect(tmp_path / "s1" / "study.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    rater = raters.add_rater(h, "alice")
    trial = trials.current_trial(h, rater)
    paths = trials.trial_item_paths(h, trial)
    sizes = {Image.open(p).size for p in paths.values()}
    assert sizes == {(96, 96)}
    # file names never carry method names
    assert all("jpeg" not in str(p.relative_to(h.directory)) for p in paths.values())
    assert studies.list_studies(tmp_path) == ["s1"]
    with pytest.raises(studies.StudyError, match="already exists"):
        studies.create_study(tmp_path, "s1", make_config(study_bench_dir))


def test_rater_session_attention_checks_and_export(study_bench_dir: Path, tmp_path: Path, backend: str) -> None:
    h = studies.create_study(tmp_path, "s2", make_config(study_bench_dir))
    rater = raters.add_rater(h, "bob")
    assert h.config.total_trials == 8
    shown = []
    while (trial := trials.current_trial(h, rater)) is not None:
        shown.append(trial)
        # an attentive rater picks whichever side shows the original
        choice = "A" if trial.method_a == ORIGINAL else "B" if trial.method_b == ORIGINAL else "undecided"
        assert trials.submit(h, rater.token, trial.id, trial.nonce, choice) == "stored"
    assert [t.attention for t in shown] == [False, False, False, True] * 2
    assert {frozenset((t.method_a, t.method_b)) for t in shown if t.attention} == {frozenset((ORIGINAL, DEGRADED))}
    # balanced: six comparisons spread over the three pairs, no (pair, image) twice for one rater
    pairs = Counter(frozenset((t.method_a, t.method_b)) for t in shown if not t.attention)
    assert sorted(pairs.values()) == [2, 2, 2]
    assert len({(frozenset((t.method_a, t.method_b)), t.image) for t in shown if not t.attention}) == 6
    summary = reports.rater_summary(h)
    assert summary.loc[0, "answered"] == 8 and summary.loc[0, "attention_accuracy"] == 1.0
    df = reports.judgements(h)
    assert df["random_choice"].sum() == 6 and (df["choice"] == "undecided").sum() == 6
    assert df.loc[df["attention"], "winner"].eq(ORIGINAL).all()
    assert (df["duration_s"] >= 0).all()
    csv = tmp_path / "export.csv"
    csv.write_bytes(transfer.export_bytes(df, "csv"))
    loaded = load_judgements(csv, fmt="csv")
    assert len(loaded) == 6 and set(loaded["winner"]) | set(loaded["loser"]) <= set(METHODS)
    assert stored_counts(h) == (8, 8, 8)
    assert (backend == "sqlite") == (tmp_path / "s2" / "study.db").is_file()


def test_refresh_double_click_replay_and_restart_store_once(study_bench_dir: Path, tmp_path: Path) -> None:
    h = studies.create_study(tmp_path, "s3", make_config(study_bench_dir, attention_every=0))
    rater = raters.add_rater(h)
    trial = trials.current_trial(h, rater)
    assert trials.current_trial(h, rater).id == trial.id  # a refresh shows the same trial
    assert trials.submit(h, rater.token, trial.id, trial.nonce, "B") == "stored"
    assert trials.submit(h, rater.token, trial.id, trial.nonce, "A") == "duplicate"  # double click / replay
    # an app restart: drop every pooled connection and reopen the study from disk
    db.get_engine(db.sqlite_url(h.directory)).dispose()
    db.get_engine.cache_clear()
    h2 = studies.open_study(tmp_path, "s3")
    assert trials.submit(h2, rater.token, trial.id, trial.nonce, "A") == "duplicate"
    assert trials.progress(h2, rater) == (1, 6)
    nxt = trials.current_trial(h2, rater)
    assert nxt.seq == 1
    assert answer_all(h2, rater) == 5
    df = reports.judgements(h2)
    assert len(df) == 6 and df.iloc[0]["choice"] == "B"


def test_forged_and_malformed_submissions_are_refused(study_bench_dir: Path, tmp_path: Path) -> None:
    h = studies.create_study(tmp_path, "s4", make_config(study_bench_dir))
    alice, mallory = raters.add_rater(h, "alice"), raters.add_rater(h, "mallory")
    trial = trials.current_trial(h, alice)
    with pytest.raises(studies.StudyError, match="malformed rater token"):
        trials.submit(h, "../../etc/passwd", trial.id, trial.nonce, "A")
    with pytest.raises(studies.StudyError, match="unknown rater token"):
        trials.submit(h, "x" * 32, trial.id, trial.nonce, "A")
    with pytest.raises(studies.StudyError, match="does not match"):
        trials.submit(h, mallory.token, trial.id, trial.nonce, "A")  # someone else's trial
    with pytest.raises(studies.StudyError, match="does not match"):
        trials.submit(h, alice.token, trial.id, "forged-nonce-000", "A")
    with pytest.raises(studies.StudyError, match="does not match"):
        trials.submit(h, alice.token, 10**6, trial.nonce, "A")
    with pytest.raises(studies.StudyError, match="unknown choice"):
        trials.submit(h, alice.token, trial.id, trial.nonce, "C")
    assert reports.judgements(h).empty
    with pytest.raises(studies.StudyError, match="already taken"):
        raters.add_rater(h, "alice")


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", "", "x" * 70, "/etc"])
def test_study_names_cannot_leave_the_root(tmp_path: Path, name: str) -> None:
    with pytest.raises(studies.StudyError, match="malformed study name"):
        studies.study_dir(tmp_path, name)


def test_item_paths_cannot_leave_the_study(study_bench_dir: Path, tmp_path: Path) -> None:
    h = studies.create_study(tmp_path, "s5", make_config(study_bench_dir, images=["kodim01"]))
    (tmp_path / "secret.txt").write_text("x")
    for rel in ("../secret.txt", "/etc/passwd", "crops/../../secret.txt"):
        with pytest.raises(studies.StudyError, match="outside the study"):
            studies.safe_path(h, rel)


def test_concurrent_raters_store_every_answer_exactly_once(study_bench_dir: Path, tmp_path: Path,
                                                          backend: str) -> None:
    """12 raters answer at once, each firing every answer from two threads (double clicks)."""
    h = studies.create_study(tmp_path, "s6", make_config(study_bench_dir, mode="adaptive", attention_every=2))
    team = [raters.add_rater(h, f"r{i}") for i in range(12)]
    outcomes: Counter = Counter()
    errors: list[BaseException] = []
    lock = threading.Lock()

    def rate(rater) -> None:
        try:
            while (trial := trials.current_trial(h, rater)) is not None:
                results = []
                clicks = [threading.Thread(target=lambda: results.append(
                    trials.submit(h, rater.token, trial.id, trial.nonce, "A"))) for _ in range(2)]
                for c in clicks:
                    c.start()
                for c in clicks:
                    c.join()
                with lock:
                    outcomes.update(results)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=rate, args=(r,)) for r in team]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    total = h.config.total_trials * len(team)
    assert outcomes == {"stored": total, "duplicate": total}
    df = reports.judgements(h)
    assert len(df) == total
    assert stored_counts(h) == (total, total, total)


def test_import_hific_data_and_exclusion(shared_data: Path, tmp_path: Path, backend: str) -> None:
    h = studies.create_import_study(tmp_path, "hific2020")
    df = load_judgements(shared_data / "hific_userstudy" / "userstudy.json")
    assert transfer.import_judgements(h, df) == 5220
    summary = reports.rater_summary(h)
    assert len(summary) == 20 and summary["answered"].sum() == 5220
    first = summary.iloc[0]
    raters.set_excluded(h, int(first["rater_id"]), True)
    assert len(reports.scored_judgements(h)) == 5220 - first["answered"]
    pairs = reports.pair_summary(h)
    assert pairs["n"].sum() == 5220 - first["answered"]


def test_adaptive_mode_asks_the_most_uncertain_pair_first() -> None:
    import random

    import pandas as pd

    from study_app import design

    methods = ["a", "b", "c"]
    # a always beats b and c; b and c split evenly: (b, c) is the uncertain pair
    rows = [("a", "b", False)] * 20 + [("a", "c", False)] * 20 + [("b", "c", False)] * 10 + [("c", "b", False)] * 10
    judged = pd.DataFrame(rows, columns=["winner", "loser", "random_choice"])
    pair, _ = design.choose_comparison(methods, ["img"], Counter(), Counter(), "adaptive", judged, random.Random(0))
    assert pair == ("b", "c")
    balanced = Counter({(("b", "c"), "img"): 3, (("a", "c"), "img"): 3})
    pair, _ = design.choose_comparison(methods, ["img"], balanced, Counter(), "balanced", judged, random.Random(0))
    assert pair == ("a", "b")


def test_imported_study_takes_no_new_answers(tmp_path: Path) -> None:
    h = studies.create_import_study(tmp_path, "imported")
    rater = raters.add_rater(h, "x")
    with pytest.raises(studies.StudyError, match="takes no new answers"):
        trials.current_trial(h, rater)


RATE_IN_PROCESS = """
import sys
from pathlib import Path
from study_app import raters, studies, trials
h = studies.open_study(Path(sys.argv[1]), sys.argv[2])
stored = 0
for token in sys.argv[3:]:
    rater = raters.rater_by_token(h, token)
    while (trial := trials.current_trial(h, rater)) is not None:
        for _ in range(2):  # every answer sent twice
            stored += trials.submit(h, token, trial.id, trial.nonce, "B") == "stored"
print(stored)
"""


def test_several_processes_share_one_study_database(study_bench_dir: Path, tmp_path: Path, backend: str) -> None:
    """Three processes (like three app servers) write to the same database at once."""
    import sys

    h = studies.create_study(tmp_path, "mp", make_config(study_bench_dir, attention_every=0))
    tokens = [raters.add_rater(h, f"p{i}").token for i in range(6)]
    procs = [subprocess.Popen([sys.executable, "-c", RATE_IN_PROCESS, str(tmp_path), "mp", *tokens[i::3]],
                              stdout=subprocess.PIPE, text=True) for i in range(3)]
    stored = [int(p.communicate(timeout=180)[0]) for p in procs]
    assert sum(stored) == 6 * 6
    assert stored_counts(h) == (36, 36, 36)


def test_fig3_normalises_the_benchmark_metrics_best_zero(study_bench_dir: Path, tmp_path: Path) -> None:
    """The study's benchmark metrics enter the report's Fig. 3 raw and come out best 0, worst 1."""
    import pandas as pd

    from analysis.figures import study_figure
    from study_app.score import SCALES, score_methods

    bench = tmp_path / "bench"
    shutil.copytree(study_bench_dir, bench)
    summary = pd.read_csv(bench / "summary.csv")
    summary["lpips"] = summary["setting"].map({"q5": 0.30, "q20": 0.15, "q60": 0.05})
    summary.to_csv(bench / "summary.csv", index=False)
    h = studies.create_study(tmp_path, "m", make_config(bench, images=["kodim01"]))
    metrics = reports.benchmark_metrics(h)
    assert list(metrics.columns) == ["lpips"]  # FID/KID were not computed (NaN)
    assert metrics["lpips"].to_dict() == {"jpeg:q5": 0.30, "jpeg:q20": 0.15, "jpeg:q60": 0.05}
    df = pd.DataFrame({"rater": "r", "image": "kodim01", "winner": ["jpeg:q60", "jpeg:q20", "jpeg:q60"] * 5,
                       "loser": ["jpeg:q20", "jpeg:q5", "jpeg:q5"] * 5, "random_choice": False})
    scores = score_methods(df, 10, 10)
    fig, notes = study_figure(scores, metrics=metrics)
    assert notes == [] and [t.name for t in fig.data] == ["human (inverted)", "LPIPS"]
    assert list(fig.data[0].x) == ["jpeg:q60", "jpeg:q20", "jpeg:q5"]
    assert list(fig.data[0].y) == sorted(SCALES["bt"].inverted(scores)["normalized"])  # Bradley-Terry, not Elo
    assert list(fig.data[1].y) == [0.0, pytest.approx(0.4), 1.0]


def test_study_files_honour_the_umask(study_bench_dir: Path, tmp_path: Path) -> None:
    """study.json, the crops and the exports are created as any tool creates them (0666 & ~umask)."""
    old = os.umask(0o022)
    try:
        h = studies.create_study(tmp_path, "perm", make_config(study_bench_dir, images=["kodim01"]))
        exported = transfer.save_export(h, reports.judgements(h), "csv")
        os.umask(0o077)
        private = transfer.save_export(h, reports.judgements(h), "json")
    finally:
        os.umask(old)
    crop = next((h.directory / "crops").rglob("*.png"))
    modes = [oct(p.stat().st_mode & 0o777) for p in (h.directory / "study.json", crop, exported, private)]
    assert modes == ["0o644", "0o644", "0o644", "0o600"]


def test_failed_set_up_leaves_no_half_built_study(study_bench_dir: Path, tmp_path: Path) -> None:
    bench = tmp_path / "bench"
    shutil.copytree(study_bench_dir, bench)
    (bench / "recon" / "jpeg" / "q20" / "kodim05.png").write_bytes(b"not a png")
    with pytest.raises(BenchmarkDirError, match="not a readable image"):
        studies.create_study(tmp_path / "root", "broken", make_config(bench))
    assert not (tmp_path / "root" / "broken").exists()


def test_a_shared_database_refuses_a_study_name_twice(study_bench_dir: Path, tmp_path: Path,
                                                      postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With one database for every host, the same study name under a second root is refused
    in one line and leaves no folder behind."""
    monkeypatch.setenv(studies.DB_URL_ENV, postgres_url)
    studies.create_import_study(tmp_path / "host1", "shared")
    with pytest.raises(studies.StudyError, match="already exists in the study database"):
        studies.create_import_study(tmp_path / "host2", "shared")
    assert not (tmp_path / "host2" / "shared").exists()


def test_names_too_long_for_the_database_are_refused(study_bench_dir: Path, tmp_path: Path, backend: str) -> None:
    """PostgreSQL enforces column lengths that SQLite ignores: both refuse the same names in
    one line, before anything is stored."""
    import pandas as pd

    h = studies.create_import_study(tmp_path, "long")
    df = pd.DataFrame({"rater": ["r"], "image": ["kodim01"], "winner": ["x" * 256], "loser": ["jpeg:q5"],
                       "random_choice": [False]})
    with pytest.raises(studies.StudyError, match="longer than 255 characters"):
        transfer.import_judgements(h, df)
    assert reports.judgements(h).empty
    assert transfer.import_judgements(h, df.assign(winner="x" * 255)) == 1
    with pytest.raises(studies.StudyError, match="longer than 255 characters"):
        make_config(study_bench_dir, methods=["jpeg:q5", "jpeg:" + "q" * 251]).check()
