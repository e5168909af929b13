"""HiFiC rating-study app: set up 2AFC studies from benchmark outputs, collect judgements, score them
(Mentzer et al. 2020, Sec. 4.3).

One role per module: :mod:`~study_app.studies` (a study's configuration, directory and database set-up),
:mod:`~study_app.raters` (raters and their tokens), :mod:`~study_app.trials` (scheduling and answers),
:mod:`~study_app.reports` (judgements, rater and pair summaries), :mod:`~study_app.transfer` (import and
export), :mod:`~study_app.crops`, :mod:`~study_app.design` (pair choice), :mod:`~study_app.score` (scales),
:mod:`~study_app.db` (tables); the Streamlit pages are :mod:`~study_app.app`, :mod:`~study_app.rater_page`
and :mod:`~study_app.admin_page`, the command line :mod:`~study_app.cli`.
"""
