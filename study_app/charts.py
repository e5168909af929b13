"""The paper's Fig. 3 as a plotly chart: normalised inverted human scores (best 0, worst 1)
with error bars, next to the benchmark's normalised FID/KID/LPIPS for the same methods."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go


def score_figure(scores: pd.DataFrame, metrics: pd.DataFrame) -> go.Figure:
    """Grouped bars per method: the normalised Elo score (error bar: the Elo spread over
    orderings on the same normalised scale) and each available benchmark metric."""
    span = scores["elo_mean"].max() - scores["elo_mean"].min()
    errors = scores["elo_std"] / span if span > 0 else scores["elo_std"] * 0
    fig = go.Figure(go.Bar(name="human (Elo, inverted)", x=scores["method"], y=scores["normalized"],
                           error_y={"type": "data", "array": errors}))
    for metric, rows in metrics.groupby("metric", sort=False):
        rows = rows.set_index("method").reindex(scores["method"])
        fig.add_bar(name=metric.upper(), x=scores["method"], y=rows["normalized"])
    fig.update_layout(barmode="group", yaxis_title="normalised score (0 = best, 1 = worst)",
                      xaxis_title="method", legend_title_text="")
    return fig
