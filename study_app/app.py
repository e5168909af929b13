"""Streamlit entry point of the rating study: ``streamlit run study_app/app.py``.

``?study=NAME&token=TOKEN`` opens the rater's page; ``?page=admin`` the researcher's page
(password from ``HIFIC_STUDY_ADMIN_PASSWORD`` or Streamlit secrets).  Studies live under
``HIFIC_STUDY_ROOT`` (default ``studies/``).
"""

from __future__ import annotations

import streamlit as st

from study_app import admin_page, rater_page
from study_app.studies import default_root


def main() -> None:
    """Route to the admin or the rater page."""
    st.set_option("client.toolbarMode", "viewer")  # raters see no developer menu
    st.set_option("client.showErrorDetails", "none")  # never a traceback in the browser
    st.set_page_config(page_title="Image comparison study", layout="wide")
    root = default_root()
    if st.query_params.get("page") == "admin":
        admin_page.render(root)
    else:
        rater_page.render(root)


main()
