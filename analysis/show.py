"""What the notebooks display: notes on missing inputs, interactive figures and their static copies."""
from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go

from analysis.export import export_static

# Plotly's own MIME bundle: rendered by JupyterLab, Notebook 7 and VS Code, and turned into
# an HTML block with one shared plotly.js by ``python -m analysis.report``.
RENDERER = "plotly_mimetype"


def notes(lines: list[str]) -> None:
    """Print each note on its own line."""
    for line in lines:
        print(f"note: {line}")


def figure(fig: go.Figure, fig_notes: list[str], name: str, static_dir: str | Path | None = None) -> None:
    """Print the figure's notes, show it, and write PNG/SVG copies to ``static_dir`` when given."""
    notes(fig_notes)
    fig.show(renderer=RENDERER)
    if static_dir is not None:
        written, export_notes = export_static(fig, static_dir, name)
        notes(export_notes)
        print("static copies:", ", ".join(str(p) for p in written))
