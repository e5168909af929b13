"""The rater's page: instructions, then 2AFC trials with the original as reference.

The page only ever sees crops as image bytes and opaque trial ids: method names, nonces and
other raters' data stay on the server.  A and B are flipped in the same place, in the
browser without a server round-trip (:mod:`study_app.flipper`), as the HiFiC raters could
do (Sec. 4.3); the answers are Streamlit buttons, stored exactly once by
:func:`study_app.trials.submit`.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from study_app import raters, studies, trials
from study_app.flipper import flipper

INSTRUCTIONS = """
You will see an **original** image crop and two compressed versions of it, **A** and **B**,
shown in the same place: press **Flip** (key `F` or `Space`) to switch between them as often as you like.
Choose the version that is **closer to the original**: **A is closer** (key `A`),
**B is closer** (key `B`), or **Can't decide** (key `D`) if you truly cannot tell.
Some trials check attention.  You can leave at any time and come back with the same link.
"""


def _param(name: str) -> str | None:
    """A single query parameter, or None."""
    value = st.query_params.get(name)
    return value if isinstance(value, str) and value else None


def _answer(h: studies.StudyHandle, token: str, trial_id: int, nonce: str, choice: str) -> None:
    """Button callback: store the answer (at most once)."""
    try:
        trials.submit(h, token, trial_id, nonce, choice)
    except studies.StudyError as exc:
        st.session_state["rater_error"] = str(exc)


def _register(h: studies.StudyHandle) -> None:
    """Let a rater without a link enter an ID; they get a personal link to resume with."""
    if not h.config.open_registration:
        st.error("Please open the personal link you were given for this study.")
        st.stop()
    with st.form("register"):
        label = st.text_input("Your rater ID")
        if st.form_submit_button("Start"):
            try:
                rater = raters.add_rater(h, label)
            except studies.StudyError as exc:
                st.error(str(exc))
                st.stop()
            st.query_params["token"] = rater.token
            st.rerun()
    st.stop()


def render(root: Path) -> None:
    """Draw the rater's page for the study and token in the query string."""
    name = _param("study")
    if name is None:
        st.error("This page needs a study link (…?study=NAME&token=…).")
        st.stop()
    try:
        h = studies.open_study(root, name)
    except studies.StudyError as exc:
        st.error(str(exc))
        st.stop()
    token = _param("token")
    if token is None:
        _register(h)
    try:
        rater = raters.rater_by_token(h, token)
        trial = trials.current_trial(h, rater)
    except studies.StudyError as exc:
        st.error(str(exc))
        st.stop()
    done, total = trials.progress(h, rater)
    st.progress(done / total, text=f"{done} of {total} answered")
    if message := st.session_state.pop("rater_error", None):
        st.error(message)
    with st.expander("Instructions", expanded=done == 0):
        st.markdown(INSTRUCTIONS)
    if trial is None:
        st.success("All done — thank you for taking part!")
        return
    paths = trials.trial_item_paths(h, trial)
    # keys carry the trial id, so a late second click of a double click reaches the old
    # trial's callback (stored once) instead of answering the next trial
    args = (h, rater.token, trial.id, trial.nonce)
    for col, (label, key, choice) in zip(st.columns(3), [("A is closer", "a", "A"),
                                                         ("B is closer", "b", "B"),
                                                         ("Can't decide", "d", "undecided")]):
        col.button(label, key=f"{choice}-{trial.id}", shortcut=key, on_click=_answer,
                   args=(*args, choice), width="stretch")
    # crops at their own pixel size (never upscaled): the original left, A or B right
    flipper(paths, key=f"flip-{trial.id}")
