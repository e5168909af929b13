"""Plotly figures of the HiFiC paper's analyses, from plain DataFrames.

Every function returns ``(figure, notes)``: it draws whatever the data allows and lists, one
line each, what it had to leave out (a missing metric, a codec with a single point, NaN values).
An empty panel carries its reason as an annotation, so a figure is never silently blank.
"""
from __future__ import annotations

import re

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.data import LABELS, METRICS, method_names
from hific.bench import references
from hific.bench.set_metrics import FEATURE_DIM, SET_METRICS
from analysis.factors import factor_text
from analysis.human import normalized_metric
from study_app.score import SCALES

PALETTE = px.colors.qualitative.Plotly
# Published reference curves: black, one marker symbol per codec (HiFiC's points as the paper's stars).
PUBLISHED_SYMBOLS = {"hific": "star", "msillm": "diamond", "noganms": "x"}
# Default GAN weight of a label without "beta<value>": HiFiC's beta = 0.15, none without a GAN.
DEFAULT_BETA = {"hific": 0.15, "nogan": 0.0}


def color_map(names: list[str]) -> dict[str, str]:
    """A fixed colour per name (codec, metric), the same in every panel."""
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(sorted(set(names)))}


def empty_note(fig: go.Figure, text: str, row: int | None = None, col: int | None = None) -> None:
    """Write why a panel is empty into the middle of the panel (placed on the page: an axis
    without traces is not drawn, so it cannot anchor the text)."""
    x, y = 0.5, 0.5
    if row is not None:
        panel = fig.get_subplot(row, col)
        x, y = sum(panel.xaxis.domain) / 2, sum(panel.yaxis.domain) / 2
    fig.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=x, y=y,
                       font=dict(color="grey"))


def unreliable_points(points: pd.DataFrame, metric: str) -> pd.Series:
    """Which points of a set metric (FID, KID) the summary flags as unreliable (``fid_reliable`` false)."""
    if metric not in SET_METRICS or "fid_reliable" not in points.columns:
        return pd.Series(False, index=points.index)
    return points["fid_reliable"].astype(float) == 0.0


def unreliable_note(summary: pd.DataFrame, metrics: list[str]) -> list[str]:
    """The sentence explaining hollow FID/KID markers, when some are drawn."""
    drawn = [m for m in SET_METRICS if m in metrics and m in summary.columns]
    if not drawn:
        return []
    flagged = summary[unreliable_points(summary, "fid") & summary[drawn].notna().any(axis=1)]
    if flagged.empty:
        return []
    counts = ", ".join(sorted({str(int(n)) for n in flagged["n_patches"].dropna()}))
    return [f"hollow FID/KID markers are unreliable: computed on {counts} patches, fewer than the {FEATURE_DIM} "
            "dimensions of the Inception features, so their covariance estimate is rank-deficient and the values "
            f"are biased and unstable ({', '.join(method_names(flagged))})"]


def published_traces(fig: go.Figure, published: pd.DataFrame, metric: str, shown: set[str], row: int,
                     col: int) -> int:
    """Draw each published codec's points for ``metric`` (black, dashed); returns how many curves."""
    ref = published.dropna(subset=[metric]) if metric in published.columns else published.iloc[0:0]
    for codec, points in ref.groupby("codec", sort=False):
        name = references.label(codec)
        fig.add_trace(go.Scatter(
            x=points["bpp"], y=points[metric], name=name, legendgroup=name, showlegend=name not in shown,
            mode="lines+markers", line=dict(color="black", dash="dot", width=1),
            marker=dict(color="black", symbol=PUBLISHED_SYMBOLS.get(codec, "square"), size=10),
            text=points["setting"], hovertemplate=f"{name} %{{text}}: %{{x:.3f}} bpp, %{{y:.4g}}"), row=row, col=col)
        shown.add(name)
    return ref["codec"].nunique()


def rate_figure(summary: pd.DataFrame, metrics: list[str] = METRICS,
                published: pd.DataFrame | None = None, title: str = "") -> tuple[go.Figure, list[str]]:
    """Bitrate against each metric, one curve per codec (the paper's Fig. 4 layout), with the published
    reference curves (HiFiC, MS-ILLM, No-GAN) in black where ``published`` has them; FID/KID computed on
    fewer patches than feature dimensions are drawn hollow and explained in a note."""
    notes: list[str] = []
    cols = min(3, len(metrics))
    rows = -(-len(metrics) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[LABELS[m] for m in metrics],
                        horizontal_spacing=0.08, vertical_spacing=0.14)
    colors = color_map(summary["codec"].dropna().tolist())
    shown: set[str] = set()
    for i, metric in enumerate(metrics):
        row, col = i // cols + 1, i % cols + 1
        drawn = 0
        data = summary.dropna(subset=["bpp", metric]) if metric in summary.columns else summary.iloc[0:0]
        for codec, points in data.groupby("codec", sort=True):
            points = points.sort_values("bpp")
            hollow = unreliable_points(points, metric)
            fig.add_trace(go.Scatter(
                x=points["bpp"], y=points[metric], name=codec, legendgroup=codec,
                mode="lines+markers" if len(points) > 1 else "markers", showlegend=codec not in shown,
                marker=dict(color=colors[codec], size=8, symbol=["circle-open" if h else "circle" for h in hollow]),
                line=dict(color=colors[codec]),
                text=points["setting"], hovertemplate="%{text}: %{x:.3f} bpp, %{y:.4g}"), row=row, col=col)
            shown.add(codec)
            drawn += 1
        if published is not None:
            drawn += published_traces(fig, published, metric, shown, row, col)
        if drawn == 0:
            empty_note(fig, f"no {LABELS[metric]} values", row, col)
        fig.update_xaxes(title_text=LABELS["bpp"], row=row, col=col)
    notes += unreliable_note(summary, metrics)
    single = sorted(c for c, n in summary.groupby("codec")["setting"].nunique().items() if n == 1)
    if single:
        notes.append(f"single point (drawn as a marker, no curve): {', '.join(single)}")
    fig.update_layout(title=title or "Rate-perception and rate-distortion", height=330 * rows,
                      legend_title_text="codec")
    return fig, notes


def factors_figure(table: pd.DataFrame, title: str = "") -> tuple[go.Figure, list[str]]:
    """Bitrate factors (see :mod:`analysis.factors`) as grouped bars, one panel per measure;
    hatched bars are bounds (the baseline never reached the reference's quality)."""
    metrics = list(dict.fromkeys(table["metric"])) or [""]
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[LABELS.get(m, m) for m in metrics])
    if table.empty:
        empty_note(fig, "no bitrate factors could be computed", 1, 1)
        return fig.update_layout(title=title or "Bitrate factors"), ["no bitrate factors to draw"]
    colors = color_map(table["baseline"].tolist())
    shown: set[str] = set()
    for i, metric in enumerate(metrics, start=1):
        for baseline, rows in table[table["metric"] == metric].groupby("baseline", sort=True):
            fig.add_trace(go.Bar(
                x=rows["reference"], y=rows["factor"], name=baseline, legendgroup=baseline,
                showlegend=baseline not in shown, marker_color=colors[baseline],
                marker_pattern_shape=["" if b == "=" else "/" for b in rows["bound"]],
                text=[factor_text(r) for _, r in rows.iterrows()], textposition="outside"), row=1, col=i)
            shown.add(baseline)
        fig.add_hline(y=1.0, line_dash="dot", line_color="grey", row=1, col=i)
        fig.update_yaxes(title_text="bitrate factor (baseline / reference)", row=1, col=i)
    fig.update_layout(title=title or "Bitrate a baseline needs for the same quality", barmode="group",
                      legend_title_text="baseline", height=420)
    return fig, []


def rate_target(setting: str) -> str:
    """The rate target of a HiFiC label (``lo``, ``mi``, ``hi``), else the label itself."""
    match = re.search(r"(?:^|[-_])(lo|mi|hi)(?:$|[-_])", setting)
    return match.group(1) if match else setting


def gan_weight(codec: str, setting: str) -> float:
    """The GAN weight beta of a label (``...beta0.05...``), else the codec's default."""
    match = re.search(r"beta[-_=]?([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)", setting)
    return float(match.group(1)) if match else DEFAULT_BETA.get(codec, float("nan"))


def distortion_perception_figure(summary: pd.DataFrame, codecs: list[str], x: str = "psnr",
                                 perception: list[str] = METRICS[:3]) -> tuple[go.Figure, list[str]]:
    """The paper's Fig. 5: a perception measure (FID, else KID, else LPIPS when FID was not
    computed) against distortion (``x``: PSNR or MSE) for the trained variants of ``codecs``,
    one line per rate target through increasing GAN weight beta."""
    if x not in ("psnr", "mse"):
        raise ValueError(f"distortion must be 'psnr' or 'mse', not {x!r}")
    notes: list[str] = []
    variants = summary[summary["codec"].isin(codecs)].copy()
    fig = go.Figure()
    if variants.empty:
        notes.append(f"no results for {', '.join(codecs)}: no distortion-perception trade-off to draw")
        empty_note(fig, "no trained variants in the results")
        return fig.update_layout(title="Distortion-perception trade-off"), notes
    if x not in variants.columns or variants[x].isna().all():
        notes.append(f"{x} is not available for {', '.join(codecs)}: nothing to draw")
        empty_note(fig, f"no {LABELS[x]} values")
        return fig.update_layout(title="Distortion-perception trade-off"), notes
    available = [m for m in perception if m in variants.columns and variants[m].notna().any()]
    if not available:
        notes.append(f"none of {', '.join(perception)} is computed for {', '.join(codecs)}: nothing to draw")
        empty_note(fig, "no perception measure computed")
        return fig.update_layout(title="Distortion-perception trade-off"), notes
    y = available[0]
    if y != perception[0]:
        notes.append(f"{perception[0]} is not computed: {LABELS[y]} drawn instead")
    variants["target"] = variants["setting"].map(rate_target)
    variants["beta"] = [gan_weight(c, s) for c, s in zip(variants["codec"], variants["setting"])]
    dropped = method_names(variants[variants[[x, y]].isna().any(axis=1)])
    if dropped:
        notes.append(f"left out for missing {x} or {y}: {', '.join(dropped)}")
    variants = variants.dropna(subset=[x, y])
    for target, points in variants.groupby("target", sort=True):
        points = points.sort_values("beta")
        fig.add_trace(go.Scatter(
            x=points[x], y=points[y], name=f"target {target}", mode="lines+markers",
            text=method_names(points), customdata=points["beta"],
            marker=dict(size=11, color=points["beta"], colorscale="Viridis", showscale=True,
                        cmin=0.0, cmax=max(0.15, float(variants["beta"].max())),
                        colorbar=dict(title="beta", x=1.15)),
            hovertemplate="%{text} (beta %{customdata}): %{x:.4g}, %{y:.4g}"))
    fig.update_layout(title="Distortion-perception trade-off (Fig. 5)", xaxis_title=LABELS[x],
                      yaxis_title=LABELS[y], legend_title_text="rate target", height=450)
    if x == "mse":
        fig.update_xaxes(autorange="reversed")
    return fig, notes


def study_figure(scores: pd.DataFrame, labels: dict[str, str] | None = None,
                 metrics: pd.DataFrame | None = None, title: str = "",
                 scale: str = "bt") -> tuple[go.Figure, list[str]]:
    """The paper's Fig. 3: normalised human scores on ``scale`` (best 0, worst 1) with their
    95 % bootstrap error bars (Elo: its spread), next to the methods' metrics normalised the
    same way.  ``labels`` maps a method to its axis label; ``metrics`` is indexed by method
    with metric columns (FID, KID, LPIPS).

    The project's one Fig. 3: the report (``user_study`` notebook) and the study app's admin
    page both draw it.  Its default scale is the paper-faithful one, Bradley-Terry on the Elo
    scale: the order-free maximum-likelihood Elo of the CLIC-style study HiFiC ran (Sec. 4.3;
    Google's elo_rater_model), with intervals as the paper's error bars; sequential Elo
    depends on the order of the judgements."""
    notes: list[str] = []
    human = SCALES[scale].inverted(scores).sort_values(["normalized", "method"])  # ties: by name, whatever the row order
    names = [labels.get(m, m) if labels else m for m in human["method"]]
    fig = go.Figure(go.Bar(
        x=names, y=human["normalized"], name="human (inverted)", marker_color="lightslategray",
        error_y=dict(type="data", symmetric=False, array=human["err_plus"], arrayminus=human["err_minus"],
                     color="black", thickness=1.5)))
    colors = color_map(METRICS)
    for metric in (metrics.columns if metrics is not None else []):
        values = metrics[metric].reindex(human["method"])
        if values.isna().all():
            notes.append(f"{metric} is not known for any study method: not drawn")
            continue
        lacking = values.index[values.isna()].tolist()
        if lacking:
            notes.append(f"{metric} is not known for {', '.join(lacking)}")
        fig.add_trace(go.Bar(x=names, y=normalized_metric(values, metric).to_numpy(), name=LABELS[metric],
                             marker_color=colors.get(metric)))
    fig.update_layout(title=title or "Human scores and metrics, normalised (Fig. 3)", barmode="group",
                      yaxis_title="normalised score (0 = best, 1 = worst)", height=450)
    return fig, notes
