"""The researcher's page, behind a password: set up studies, follow progress, screen and
exclude raters, score (Elo, Bradley-Terry, JOD; Fig. 3), export and import judgements."""

from __future__ import annotations

import hmac
import json
import os
from pathlib import Path

import streamlit as st

from analysis.figures import study_figure
from study_app import crops, design, raters, reports, studies, transfer
from study_app.score import (DEFAULT_SCALES, OUTLIER_FENCE, SCALES, JudgementFileError, ScaleError,
                             parse_hific_json, score_methods)

PASSWORD_ENV = "HIFIC_STUDY_ADMIN_PASSWORD"
PASSWORD_SECRET = "study_admin_password"
FIG3_SCALE = "bt"  # Fig. 3 on Bradley-Terry, as the report draws it (see analysis.figures.study_figure)


def configured_password() -> str | None:
    """The admin password from the environment, else from Streamlit secrets."""
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    try:
        return st.secrets.get(PASSWORD_SECRET) or None
    except FileNotFoundError:  # no secrets file at all
        return None


def _login() -> None:
    """Stop the page unless this session has entered the right password."""
    password = configured_password()
    if not password:
        st.error(f"The admin page is disabled: set {PASSWORD_ENV} or `{PASSWORD_SECRET}` in Streamlit secrets.")
        st.stop()
    if st.session_state.get("admin_ok"):
        return
    with st.form("login"):
        given = st.text_input("Admin password", type="password")
        if st.form_submit_button("Log in"):
            if hmac.compare_digest(given.encode(), password.encode()):
                st.session_state["admin_ok"] = True
                st.rerun()
            st.error("Wrong password.")
    st.stop()


def _new_study(root: Path) -> None:
    """Form: a new study from a benchmark output directory."""
    bench = st.text_input("Benchmark output directory", key="bench_dir")
    if not bench:
        return
    try:
        methods, images = crops.benchmark_methods(Path(bench)), crops.benchmark_images(Path(bench))
    except crops.BenchmarkDirError as exc:
        st.error(str(exc))
        return
    with st.form("new_study"):
        name = st.text_input("Study name (letters, digits, - and _)")
        chosen = st.multiselect("Methods (codec:setting)", methods, default=methods)
        imgs = st.multiselect("Images", images, default=images)
        crop = st.number_input("Crop size (px; the paper used 768)", 16, 4096, 768)
        positions = st.number_input("Crop positions per image", 1, 20, 3)
        per_rater = st.number_input("Comparisons per rater", 1, 10000, 50)
        mode = st.radio("Pair choice", design.MODES, horizontal=True)
        every = st.number_input("One attention check after every N comparisons (0: none)", 0, 1000, 10)
        open_reg = st.checkbox("Raters without a link may enter an ID", value=True)
        if st.form_submit_button("Create study"):
            config = studies.StudyConfig(benchmark_dir=str(Path(bench).resolve()), methods=chosen, images=imgs,
                                         crop_size=int(crop), n_positions=int(positions),
                                         comparisons_per_rater=int(per_rater), mode=mode,
                                         attention_every=int(every), open_registration=open_reg)
            try:
                with st.spinner("Cutting crops…"):
                    studies.create_study(root, name, config)
            except (studies.StudyError, crops.BenchmarkDirError) as exc:
                st.error(str(exc))
                return
            st.success(f"Study {name!r} created.")


def _import(root: Path) -> None:
    """Form: import judgements in the HiFiC ``userstudy.json`` schema as a new study."""
    name = st.text_input("New study name for the import", key="import_name")
    upload = st.file_uploader("HiFiC userstudy.json", type=["json"], key="import_file")
    if not (name and upload and st.button("Import", key="import_go")):
        return
    try:
        df = parse_hific_json(json.loads(upload.getvalue().decode("utf-8")))
        h = studies.create_import_study(root, name)
        n = transfer.import_judgements(h, df)
    except (json.JSONDecodeError, UnicodeDecodeError):
        st.error("The uploaded file is not valid JSON.")
        return
    except (JudgementFileError, studies.StudyError) as exc:
        st.error(f"Import refused: {exc}")
        return
    st.success(f"Imported {n} judgements into study {name!r}.")


def _progress(h: studies.StudyHandle, root_url: str) -> None:
    """Raters (progress, attention-check accuracy, screening, median time), new links and
    exclusions."""
    summary = reports.rater_summary(h)
    st.dataframe(summary.drop(columns=["rater_id"]), hide_index=True)
    flagged = summary.loc[summary["flagged"], "rater"].tolist()
    if flagged:
        st.warning(f"Screening flags {', '.join(flagged)}: their answers lie far from the other raters' "
                   f"consensus (outlier score above {OUTLIER_FENCE}). Check their attention checks; exclude "
                   "them below if you judge them careless.")
    if len(summary):
        answered = reports.judgements(h)
        st.metric("Median seconds per trial", f"{answered['duration_s'].median():.1f}"
                  if answered["duration_s"].notna().any() else "–")
        excluded = st.multiselect("Excluded raters", list(summary["rater"]),
                                  default=list(summary.loc[summary["excluded"], "rater"]), key=f"excl-{h.name}")
        for rid, label, was in summary[["rater_id", "rater", "excluded"]].itertuples(index=False):
            if (label in excluded) != was:
                raters.set_excluded(h, int(rid), label in excluded)
    st.subheader("Pairs")
    st.dataframe(reports.pair_summary(h), hide_index=True)
    if h.config.methods:
        n = st.number_input("New rater links", 1, 500, 1, key="n_links")
        if st.button("Create rater links"):
            links = [f"{root_url}?study={h.name}&token={raters.add_rater(h).token}" for _ in range(int(n))]
            st.code("\n".join(links), language=None)


@st.cache_data(max_entries=16, show_spinner="Scoring…")
def _cached_scores(df, n_orderings: int, n_bootstrap: int, by_image: bool, scales: tuple[str, ...],
                   prior_sd: float | None):
    """:func:`score_methods`, remembered per set of judgements and settings."""
    return score_methods(df, n_orderings=n_orderings, n_bootstrap=n_bootstrap, by_image=by_image, scales=scales,
                         prior_sd=prior_sd)


def _scores(h: studies.StudyHandle) -> None:
    """Scores on the chosen scales (Elo, Bradley-Terry, JOD with intervals) and the paper's
    Fig. 3 on Bradley-Terry (:func:`analysis.figures.study_figure`, the report's)."""
    df = reports.scored_judgements(h)
    if df.empty or len(set(df["winner"]) | set(df["loser"])) < 2:
        st.info("No judgements to score yet.")
        return
    scales = st.multiselect("Scales (the first orders the table; Fig. 3 is drawn on Bradley-Terry)", list(SCALES),
                            default=list(DEFAULT_SCALES), format_func=lambda s: SCALES[s].label, key="scales")
    prior = st.number_input("JOD prior: standard deviation in JOD (0: none; for sparse or disconnected designs)",
                            0.0, 100.0, 0.0, key="jod_prior")
    by_image = st.checkbox("Per image", key="by_image")
    n_orderings = st.slider("Elo orderings", 10, 1000, 100, key="orderings")
    n_boot = st.slider("Bootstrap resamples", 10, 1000, 200, key="bootstrap")
    if not scales:
        st.info("Choose at least one scale.")
        return
    try:
        scores = _cached_scores(df[["rater", "image", "winner", "loser", "random_choice"]], n_orderings, n_boot,
                                by_image, tuple(dict.fromkeys((*scales, FIG3_SCALE))), prior or None)
    except ScaleError as exc:
        st.error(f"{exc}.")
        return
    st.dataframe(scores, hide_index=True)
    if not by_image:
        fig, notes = study_figure(scores, metrics=reports.benchmark_metrics(h), scale=FIG3_SCALE)
        st.plotly_chart(fig)
        for note in notes:
            st.caption(note)


def _export(h: studies.StudyHandle) -> None:
    """Downloads and a copy saved in the study's ``exports/`` folder."""
    df = reports.judgements(h)
    st.write(f"{len(df)} judgements.")
    for fmt, mime in (("csv", "text/csv"), ("json", "application/json")):
        st.download_button(f"Download {fmt.upper()}", transfer.export_bytes(df, fmt),
                           file_name=f"{h.name}-judgements.{fmt}", mime=mime, key=f"dl-{fmt}")
    if st.button("Save CSV and JSON in the study folder", key="save_export"):
        saved = [transfer.save_export(h, df, fmt) for fmt in transfer.FORMATS]
        st.success("Saved " + ", ".join(str(p) for p in saved))


def render(root: Path) -> None:
    """Draw the admin page."""
    st.title("Rating study — admin")
    _login()
    with st.sidebar:
        names = studies.list_studies(root)
        name = st.selectbox("Study", names, key="admin_study") if names else None
        root_url = st.text_input("Public URL of this app", st.context.url or "http://localhost:8501/",
                                 key="root_url")
    new, imp = st.tabs(["New study", "Import HiFiC data"]) if name is None else (None, None)
    if name is None:
        with new:
            _new_study(root)
        with imp:
            _import(root)
        return
    h = studies.open_study(root, name)
    tabs = st.tabs(["Progress", "Scores", "Export", "New study", "Import HiFiC data"])
    with tabs[0]:
        _progress(h, root_url)
    with tabs[1]:
        _scores(h)
    with tabs[2]:
        _export(h)
    with tabs[3]:
        _new_study(root)
    with tabs[4]:
        _import(root)
