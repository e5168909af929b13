"""The analysis notebooks and ``python -m analysis.report``, on small results that the real
benchmark (``benchmarks/run.py``) produces during the test run from Kodak crops, and on HiFiC's
published user-study judgements."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from analysis import data, export, factors, figures, human, report

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_PATHS = sorted((REPO / "analysis").glob("*.ipynb"))
CROP = 192  # MS-SSIM needs both sides of at least 161 pixels
SETTINGS = {"jpeg": "q30,q70", "webp": "q30,q70", "bpg-x265": "qp40,qp30"}
FAST_SCORES = {"n_orderings": 5, "n_bootstrap": 5}


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory, kodak: Path) -> Path:
    """Results of the real benchmark: three classical codecs, two settings each, on two
    192x192 Kodak crops, with PSNR, MS-SSIM and LPIPS (no FID/KID: too few patches)."""
    root = tmp_path_factory.mktemp("bench")
    images = root / "images"
    images.mkdir()
    for name in ("kodim05", "kodim23"):
        Image.open(kodak / f"{name}.png").convert("RGB").crop((256, 160, 256 + CROP, 160 + CROP)).save(
            images / f"{name}.png")
    cmd = [sys.executable, str(REPO / "benchmarks" / "run.py"), "--codecs", ",".join(SETTINGS),
           "--dataset", str(images), "--metrics", "psnr,msssim,lpips", "--out", str(root / "out"),
           "--workers", "1"]
    cmd += [arg for codec, values in SETTINGS.items() for arg in ("--settings", f"{codec}={values}")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return root / "out"


@pytest.fixture(scope="module")
def published_scores(shared_data: Path) -> pd.DataFrame:
    scores, notes = human.human_scores(shared_data / "hific_userstudy" / "userstudy.json", **FAST_SCORES)
    assert notes == [] and scores is not None
    return scores


@pytest.fixture(scope="module")
def study_db(tmp_path_factory: pytest.TempPathFactory, shared_data: Path):
    """A real study database (the study app's) holding HiFiC's published judgements."""
    from study_app import studies, transfer

    judgements = human.load_study(shared_data / "hific_userstudy" / "userstudy.json")
    handle = studies.create_import_study(tmp_path_factory.mktemp("studies"), "imported")
    transfer.import_judgements(handle, judgements)
    return handle


def broken_copy(bench: Path, target: Path, summary: pd.DataFrame) -> Path:
    """A results directory with the real per-image and image tables and a changed summary."""
    target.mkdir()
    for name in ("per_image.csv", "images.csv"):
        (target / name).write_bytes((bench / name).read_bytes())
    summary.to_csv(target / "summary.csv", index=False)
    return target


def test_notebooks_are_committed_without_outputs() -> None:
    assert {p.stem for p in NOTEBOOK_PATHS} == set(report.NOTEBOOKS)
    for path in NOTEBOOK_PATHS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.outputs == [] and c.execution_count is None for c in code), path.name
        report.parameter_names(nb)  # every notebook declares its inputs in a "parameters" cell


def test_benchmark_results_load_complete(bench: Path) -> None:
    results = data.load_results(bench)
    assert len(results.summary) == 6 and len(results.per_image) == 12
    assert results.summary[["bpp", "psnr", "ms_ssim", "lpips"]].notna().all().all()
    assert results.notes == ["fid is not computed for any method", "kid is not computed for any method"]
    assert data.detect_dataset(results.images) == "kodak"


def test_report_executes_every_notebook(bench: Path, study_db, tmp_path: Path) -> None:
    """The command runs all four notebooks headless (failing on any failing cell), with a real
    study database holding the published judgements, and writes one self-contained page plus
    PNG/SVG copies of every figure."""
    out, static = tmp_path / "report.html", tmp_path / "static"
    cmd = [sys.executable, "-m", "analysis.report", str(bench), "--study", str(study_db.directory / "study.db"),
           "--out", str(out), "--reference", "webp", "--baselines", "jpeg,bpg-x265", "--static-dir", str(static),
           "--orderings", "5", "--bootstrap", "5"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    html = out.read_text(encoding="utf-8")
    assert "<script src=" not in html and html.count('class="plotly-graph-div"') >= 6
    for text in ("Rate-perception and rate-distortion (kodak)", "HiFiC (published)", "MS-ILLM (published)",
                 "No-GAN (published)", "BD-rate against the anchor",
                 "note: fid is not computed for any method",
                 "note: study methods without a benchmark bitrate: ours_gan_high, ",  # the study's names
                 "HiFiC-Mi (0.237 bpp)", "hific:HiFiC-Mi (0.237 bpp): bpg needs &gt;2.1x the bitrate"):
        assert text in html, text
    names = {p.name for p in static.iterdir()}
    if export.find_browser() is None:  # kaleido needs Chrome/Chromium; without it: HTML copies
        assert "no Chrome/Chromium found" in html and "rate_perception.html" in names
        return
    assert {"rate_perception.png", "rate_perception.svg", "bitrate_factors_metrics.png",
            "user_study_paper.svg", "distortion_perception.png"} <= names
    assert Image.open(static / "rate_perception.png").size[0] == 1100


def test_notebooks_run_on_bad_results(bench: Path, tmp_path: Path) -> None:
    """Missing column, one codec with a single point, NaN metrics, and an empty directory:
    the notebooks print what is missing and still finish."""
    summary = pd.read_csv(bench / "summary.csv").drop(columns=["lpips"])
    summary = summary.drop(summary.index[(summary["codec"] == "jpeg")][1:])
    summary.loc[summary["codec"] == "webp", "psnr"] = np.nan
    broken = broken_copy(bench, tmp_path / "broken", summary)
    nb = report.execute(report.ANALYSIS_DIR / "rate_perception.ipynb", {"results_dir": str(broken)}, 300)
    text = "\n".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "note: summary.csv lacks column(s) lpips: treated as not computed" in text
    assert "note: psnr is not computed for webp:q30, webp:q70" in text
    assert "note: single point (drawn as a marker, no curve): jpeg" in text
    (tmp_path / "empty").mkdir()
    nb = report.execute(report.ANALYSIS_DIR / "distortion_perception.ipynb",
                        {"results_dir": str(tmp_path / "empty")}, 300)
    text = "\n".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "note: summary.csv is missing in" in text and "no results for hific, nogan" in text


@pytest.mark.parametrize("name", ["rate_perception", "bitrate_factors", "user_study"])
def test_notebooks_run_with_their_default_parameters(name: str, shared_data: Path) -> None:
    """Opened and run as they are (no results given), they say so and still draw."""
    nb = report.execute(report.ANALYSIS_DIR / f"{name}.ipynb", {}, 300)
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert "note: no results directory was given: no benchmark results to draw" in outputs[0]["text"]
    assert any(report.PLOTLY_MIME in o.get("data", {}) for o in outputs)


def test_study_export_scores_like_the_database(study_db, tmp_path: Path) -> None:
    """The app's CSV export and its database give the same scores; excluded raters count in neither."""
    from study_app import raters, reports, transfer

    summary = reports.rater_summary(study_db)
    raters.set_excluded(study_db, int(summary["rater_id"].iloc[0]), True)
    try:
        export, rows = tmp_path / "judgements.csv", reports.judgements(study_db)
        export.write_bytes(transfer.export_bytes(rows, "csv"))
        from_db, notes_db = human.human_scores(study_db.directory / "study.db", **FAST_SCORES)
        from_csv, notes_csv = human.human_scores(export, **FAST_SCORES)
    finally:
        raters.set_excluded(study_db, int(summary["rater_id"].iloc[0]), False)
    assert notes_db == notes_csv == []
    kept = rows[~rows["excluded"] & (rows["winner"] != rows["loser"])]  # self-comparisons carry nothing
    assert len(kept) < len(rows) - 300 and from_db["n"].sum() == 2 * len(kept)
    pd.testing.assert_frame_equal(from_db, from_csv)


def test_rate_figure_draws_what_it_can(bench: Path) -> None:
    summary = data.load_results(bench).summary
    summary.loc[summary["codec"] == "jpeg", "lpips"] = np.nan
    published, notes = data.load_published("kodak")
    fig, notes = figures.rate_figure(summary, data.METRICS, published)
    annotations = [a.text for a in fig.layout.annotations]
    assert "no FID values" in annotations and "no KID values" in annotations  # empty panels say why
    lpips_traces = [t for t in fig.data if t.xaxis == "x3"]
    assert {t.name for t in lpips_traces} == {"webp", "bpg-x265", "HiFiC (published)", "MS-ILLM (published)",
                                              "No-GAN (published)"}
    stars = next(t for t in lpips_traces if t.name == "HiFiC (published)")
    assert list(stars.y) == pytest.approx([0.0686, 0.0428, 0.0278], abs=1e-4)
    assert list(stars.x) == pytest.approx([0.183, 0.351, 0.538], abs=1e-3)


def test_unreliable_fid_is_drawn_hollow_and_explained(bench: Path) -> None:
    """FID on 192 patches (fewer than 2048 feature dimensions): hollow markers and the sentence saying why."""
    summary = data.load_results(bench).summary.assign(fid=50.0, n_patches=192.0, fid_reliable=0.0)
    summary.loc[summary["codec"] == "webp", ["n_patches", "fid_reliable"]] = [4096.0, 1.0]
    fig, notes = figures.rate_figure(summary, ["fid", "psnr"])
    symbols = {t.name: list(t.marker.symbol) for t in fig.data if t.xaxis == "x"}
    assert symbols == {"bpg-x265": ["circle-open"] * 2, "jpeg": ["circle-open"] * 2, "webp": ["circle"] * 2}
    assert all(set(t.marker.symbol) == {"circle"} for t in fig.data if t.xaxis == "x2")  # PSNR is not flagged
    assert notes[0].startswith("hollow FID/KID markers are unreliable: computed on 192 patches, fewer than the "
                               "2048 dimensions of the Inception features")
    assert "bpg-x265:qp30" in notes[0] and "webp" not in notes[0]


def test_results_with_bad_tables(tmp_path: Path) -> None:
    (tmp_path / "summary.csv").write_text("codec,setting,n_images,bpp,psnr\njpeg,q30,2,0.5,oops\n")
    (tmp_path / "per_image.csv").write_text(",".join(data.PER_IMAGE_COLUMNS) + "\n")
    (tmp_path / "images.csv").write_bytes(b"\xff\xfe\x00garbage")
    results = data.load_results(tmp_path)
    assert ("summary.csv lacks column(s) ms_ssim, lpips, fid, kid, n_patches, fid_reliable: treated as not computed"
            in results.notes)
    assert "summary.csv: 1 non-numeric value(s) in column psnr treated as missing" in results.notes
    assert "per_image.csv has no rows" in results.notes
    assert any(n.startswith("images.csv is not a readable CSV") for n in results.notes)
    assert "psnr is not computed for any method" in results.notes
    fig, notes = figures.rate_figure(results.summary, ["psnr"])
    assert [a.text for a in fig.layout.annotations] == ["PSNR (dB)", "no PSNR (dB) values"]
    assert notes == ["single point (drawn as a marker, no curve): jpeg"]


def test_factors_interpolate_along_the_baseline_curve(bench: Path) -> None:
    summary = data.load_results(bench).summary
    table, notes = factors.bitrate_factors(summary, "psnr", "webp", ["jpeg", "nothing"])
    assert notes == ["no nothing points with psnr: no psnr factors against nothing"]
    jpeg = summary[summary["codec"] == "jpeg"].sort_values("bpp")
    for row in table.itertuples(index=False):
        if row.bound == "=":  # jpeg's interpolated curve has webp's PSNR at the bitrate found
            assert np.interp(row.baseline_bpp, jpeg["bpp"], jpeg["psnr"]) == pytest.approx(row.ref_value)
        assert row.factor == pytest.approx(row.baseline_bpp / row.ref_bpp)
    assert factors.bitrate_to_reach(np.array([0.1, 0.3]), np.array([0.2, 0.1]), 0.05, True) == (0.3, ">")
    assert factors.bitrate_to_reach(np.array([0.1, 0.3]), np.array([0.2, 0.1]), 0.3, True) == (0.1, "<")
    assert factors.bitrate_to_reach(np.array([0.1, 0.3]), np.array([0.2, 0.1]), 0.15, True) == (
        pytest.approx(0.2), "=")


def test_fig3_reproduction_orders_methods_as_the_paper(published_scores: pd.DataFrame) -> None:
    bt = published_scores.set_index("method")["bt"]
    assert bt.idxmax() == "ours_gan_high" and bt.idxmin() == "minnen_mse_low"
    assert bt["ours_gan_med"] > bt["bpg_med_2_v2"]  # HiFiC-Mi (0.237 bpp) over BPG at 0.390 bpp
    assert bt["ours_gan_med"] > bt[["minnen_mse_high", "minnen_mse_med", "minnen_mse_low"]].max()
    assert bt["ours_gan_low"] > bt["ours_lpips_low"]  # the GAN beats no-GAN at the same rate
    fig, notes = figures.study_figure(published_scores)
    bars = fig.data[0]
    assert notes == [] and bars.x[0] == "ours_gan_high" and bars.y[0] == 0.0 and max(bars.y) == 1.0
    assert all(np.asarray(bars.error_y.array) >= 0) and all(np.asarray(bars.error_y.arrayminus) >= 0)


def test_tied_scores_draw_in_one_order_whatever_the_row_order(published_scores: pd.DataFrame) -> None:
    """The admin page and the report hand Fig. 3 the same scores in different row orders: tied methods still
    come out in one order (by name), so both draw the same figure."""
    tied = published_scores.copy()
    tied.loc[tied.index[:3], [c for c in tied.columns if c != "method"]] = tied.iloc[0].drop("method").to_numpy()
    orders = {tuple(figures.study_figure(tied.sample(frac=1.0, random_state=seed))[0].data[0].x) for seed in range(5)}
    assert len(orders) == 1


def test_paper_bitrate_factors_from_human_scores(published_scores: pd.DataFrame) -> None:
    """The paper's headline: HiFiC-Mi is preferred to BPG at 2.1x and to M&S at 1.7x its bitrate."""
    table, notes = factors.bitrate_factors(human.published_points(published_scores), "human", "hific", ["bpg", "ms"])
    mi = table[table["reference"] == "hific:HiFiC-Mi"].set_index("baseline")
    assert notes == []
    assert mi.loc["bpg", "bound"] == ">" and mi.loc["bpg", "factor"] == pytest.approx(0.504 / 0.237)
    assert mi.loc["ms", "bound"] == ">" and mi.loc["ms", "factor"] == pytest.approx(0.405 / 0.237)
    assert factors.factor_text(mi.loc["bpg"]) == ">2.1x"


def test_study_metrics_next_to_human_scores(published_scores: pd.DataFrame) -> None:
    metrics = pd.DataFrame({"lpips": [0.03, 0.05, np.nan], "fid": [np.nan] * 3},
                           index=["ours_gan_high", "ours_gan_med", "bpg_med_2_v2"])
    fig, notes = figures.study_figure(published_scores, metrics=metrics)
    assert [t.name for t in fig.data] == ["human (inverted)", "LPIPS"]
    assert notes[0] == "lpips is not known for " + ", ".join(
        m for m in published_scores.sort_values("bt", ascending=False)["method"]
        if m not in ("ours_gan_high", "ours_gan_med"))
    assert notes[1] == "fid is not known for any study method: not drawn"


def test_distortion_perception_variants(bench: Path) -> None:
    """The six benchmark methods relabelled as HiFiC variants (rate target, beta)."""
    results = data.load_results(bench)
    labels = dict(zip(data.method_names(results.summary),
                      ["lo-beta0", "lo", "mi-beta0.05", "mi", "hi-beta0.3", "hi"]))

    def relabel(df: pd.DataFrame) -> pd.DataFrame:
        return df.assign(setting=[labels[m] for m in data.method_names(df)], codec="hific")

    summary, per_image = relabel(results.summary), relabel(results.per_image)
    fig, notes = figures.distortion_perception_figure(summary, ["hific"], x="psnr")
    assert notes == ["fid is not computed: LPIPS drawn instead"]
    assert [t.name for t in fig.data] == ["target hi", "target lo", "target mi"]
    assert list(fig.data[1].customdata) == [0.0, 0.15] and list(fig.data[0].customdata) == [0.15, 0.3]
    with_mse = summary.merge(data.mean_mse(per_image), on=["codec", "setting"])
    fig, _ = figures.distortion_perception_figure(with_mse, ["hific"], x="mse")
    lo = per_image[per_image["setting"] == "lo"]
    assert fig.data[1].x[1] == pytest.approx(np.mean(255.0 ** 2 / 10 ** (lo["psnr"] / 10)))
    assert fig.layout.xaxis.autorange == "reversed"  # less distortion to the right, as PSNR
    with pytest.raises(ValueError, match="distortion must be 'psnr' or 'mse', not 'ssim'"):
        figures.distortion_perception_figure(summary, ["hific"], x="ssim")


def test_static_export_falls_back_to_html_without_browser(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-browser"))
    monkeypatch.setenv("PATH", str(tmp_path))
    fig, _ = figures.factors_figure(pd.DataFrame(columns=factors.FACTOR_COLUMNS))
    written, notes = export.export_static(fig, tmp_path / "static", "empty")
    assert [p.name for p in written] == ["empty.html"] and "plotly" in written[0].read_text()[:5000].lower()
    assert notes == ["no Chrome/Chromium found (set BROWSER_PATH or install chromium): "
                     "wrote empty.html instead of png/svg"]


@pytest.mark.parametrize("args, message", [
    (["/nonexistent/results", "--out", "r.html"], "error: /nonexistent/results: no such results directory"),
    (["{tmp}", "--out", "{tmp}/missing/r.html"], "error: {tmp}/missing: the output folder does not exist"),
    (["{tmp}", "--study", "{tmp}/nope.db", "--out", "{tmp}/r.html"], "error: {tmp}/nope.db: no such file or directory"),
    (["{tmp}", "--out", "{tmp}/r.html", "--bootstrap", "0"],
     "error: --orderings, --bootstrap and --timeout must be at least 1"),
    (["{tmp}", "--out", "{tmp}/r.html", "--scale", "mos"], "error: unknown --scale 'mos': use one of elo, bt, jod"),
])
def test_report_refuses_bad_arguments(tmp_path: Path, args: list[str], message: str) -> None:
    args = [a.format(tmp=tmp_path) for a in args]
    done = subprocess.run([sys.executable, "-m", "analysis.report", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.strip() == message.format(tmp=tmp_path)
    assert not (tmp_path / "r.html").exists()


def test_a_failing_cell_fails_the_run(tmp_path: Path) -> None:
    cell = nbformat.v4.new_code_cell("divisor = 1")
    cell.metadata["tags"] = ["parameters"]
    path = tmp_path / "failing.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[cell, nbformat.v4.new_code_cell("1 / divisor")]), path)
    assert report.execute(path, {"divisor": 2}, 60).cells[2].outputs[0]["data"]["text/plain"] == "0.5"
    with pytest.raises(report.ReportError, match=r"^failing.ipynb: a cell failed: ZeroDivisionError: division by zero$"):
        report.execute(path, {"divisor": 0}, 60)
