"""The paper's Fig. 3 as a plotly chart: normalised inverted human scores (best 0, worst 1)
with error bars, next to the benchmark's normalised FID/KID/LPIPS for the same methods."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from study_app.score import SCALES


def score_figure(scores: pd.DataFrame, metrics: pd.DataFrame, scale: str = "elo") -> go.Figure:
    """Grouped bars per method: the normalised score on ``scale`` (error bars: its interval,
    or for Elo its spread over orderings, on the same normalised scale) and each available
    benchmark metric."""
    human = SCALES[scale].inverted(scores)
    errors = {"type": "data", "symmetric": False, "array": human["err_plus"], "arrayminus": human["err_minus"]}
    fig = go.Figure(go.Bar(name=f"human ({SCALES[scale].label}, inverted)", x=human["method"],
                           y=human["normalized"], error_y=errors))
    for metric, rows in metrics.groupby("metric", sort=False):
        rows = rows.set_index("method").reindex(human["method"])
        fig.add_bar(name=metric.upper(), x=human["method"], y=rows["normalized"])
    fig.update_layout(barmode="group", yaxis_title="normalised score (0 = best, 1 = worst)",
                      xaxis_title="method", legend_title_text="")
    return fig
