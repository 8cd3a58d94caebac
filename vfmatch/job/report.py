"""Figures and the report folder of the main job (``vfmatch run``).

Every figure is built once, with plotly, and saved twice:

* ``<name>.html`` -- interactive; the plotly library is written once as
  ``plotly.min.js`` beside it (``include_plotlyjs="directory"``), so the report
  opens offline;
* ``<name>.png`` -- a static copy drawn with matplotlib from the same traces
  (:func:`plotly_to_matplotlib`; plotly's own PNG export needs a browser).

The figure builders take plain numbers (dicts, arrays, frames), so the book's
widgets reuse them (:mod:`vfmatch.widgets.matching`). Book chapters:
``book/05_distances_and_weights.ipynb`` (weights), ``book/06_difficulty_and_curriculum.ipynb``
(retraining), ``book/07_matching_and_retrieval.ipynb`` (explanations).
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from matplotlib.figure import Figure
from PIL import Image
from plotly.subplots import make_subplots

from ..utils import to_jsonable

__all__ = [
    "write_json",
    "save_figure",
    "plotly_to_matplotlib",
    "weights_figure",
    "roc_figure",
    "level_histogram_figure",
    "identification_figure",
    "extractor_figure",
    "difficulty_figure",
    "explanation_figure",
    "distributions_figure",
    "write_index",
    "MODEL_LABELS",
]

# What each model entry of metrics["evaluation"] is, for the index table and the printout
# (the all-truth oracle keeps its key "oracle" but is named for what it is).
MODEL_LABELS = {
    "test": "extracted metaproperties",
    "bayes": "Bayes bound: perfect extractors of what the media show",
    "oracle": "all-truth oracle: every metaproperty known, incl. those the media never show",
    "gender_only": "gender only (floor)",
    "chance": "chance",
}

_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


# ---------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------


def write_json(path: str | Path, obj) -> Path:
    """Write ``obj`` as indented JSON (:func:`vfmatch.utils.to_jsonable` converts numpy, frames, paths)."""
    path = Path(path)
    path.write_text(json.dumps(to_jsonable(obj), indent=2))
    return path


# ---------------------------------------------------------------------------
# Saving: HTML (plotly) and PNG (matplotlib)
# ---------------------------------------------------------------------------


def save_figure(fig, folder: str | Path, name: str) -> dict[str, Path]:
    """Write ``folder/name.html`` (plotly.js in ``folder/plotly.min.js``) and ``folder/name.png``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    html_path = folder / f"{name}.html"
    fig.write_html(str(html_path), include_plotlyjs="directory", full_html=True)
    png_path = folder / f"{name}.png"
    mfig = plotly_to_matplotlib(fig)
    mfig.savefig(png_path, dpi=110, bbox_inches="tight")
    return {"html": html_path, "png": png_path}


def plotly_to_matplotlib(fig):
    """Redraw a single-panel plotly figure of bar, scatter and histogram traces with matplotlib.

    Covers what this module builds (grouped or horizontal bars, lines and
    markers, overlaid histograms, vertical/horizontal reference lines); other
    trace types raise ValueError. A bare :class:`matplotlib.figure.Figure` (no
    pyplot), so nothing changes a notebook's backend and nothing needs closing."""
    mfig = Figure(figsize=(7.5, 4.5))
    ax = mfig.subplots()
    bars = [t for t in fig.data if t.type == "bar"]
    n_bar = max(len(bars), 1)
    width = 0.8 / n_bar
    # Categorical x values (bar categories) sit at 0, 1, 2, ...; other traces on them use the same places.
    cat_pos = {c: k for t in bars if t.orientation != "h" for k, c in enumerate(t.x)}
    hist_x = [np.asarray(t.x, dtype=float) for t in fig.data if t.type == "histogram" and len(t.x)]
    hist_bins = np.linspace(min(map(np.min, hist_x)), max(map(np.max, hist_x)), 41) if hist_x else 40
    for i, t in enumerate(fig.data):
        color = _trace_color(t, i)
        label = t.name if getattr(t, "showlegend", None) is not False and t.name else None  # image traces have no legend
        if t.type == "bar":
            j = bars.index(t)
            horizontal = t.orientation == "h"
            cats = list(t.y if horizontal else t.x)
            vals = np.asarray(t.x if horizontal else t.y, dtype=float)
            pos = np.arange(len(cats)) + (j - (n_bar - 1) / 2) * width
            err = None
            if t.error_y is not None and t.error_y.array is not None:
                err = np.asarray(t.error_y.array, dtype=float)
                if t.error_y.arrayminus is not None:  # an interval need not be symmetric
                    err = np.vstack([np.asarray(t.error_y.arrayminus, dtype=float), err])
            if horizontal:
                ax.barh(pos, vals, height=width, color=color, label=label)
                ax.set_yticks(np.arange(len(cats)), cats)
            else:
                ax.bar(pos, vals, width=width, color=color, label=label, yerr=err, capsize=3 if err is not None else 0)
                ax.set_xticks(np.arange(len(cats)), cats, rotation=30, ha="right")
        elif t.type == "scatter":
            mode = t.mode or "lines"
            style = ("-" if "lines" in mode else "") + ("o" if "markers" in mode else "")
            dash = t.line.dash if t.line is not None else None
            if dash in ("dash", "dot") and "-" in style:
                style = style.replace("-", "--" if dash == "dash" else ":")
            ax.plot(_positions(t.x, cat_pos), np.asarray(t.y, dtype=float), style, color=color, label=label, markersize=4)
        elif t.type == "histogram":
            x = np.asarray(t.x, dtype=float)
            ax.hist(x, bins=hist_bins, alpha=0.55, color=color, label=label, density=t.histnorm in ("probability density", "probability"))
        elif t.type == "image":  # a picture (e.g. the fusion strip): pixels, no axes
            ax.imshow(_image_pixels(t))
            ax.set_axis_off()
        else:
            raise ValueError(f"plotly_to_matplotlib: trace type {t.type!r} is not supported")
    for shape in fig.layout.shapes or ():
        if shape.type == "line" and shape.x0 == shape.x1 and shape.xref in ("x", None):
            ax.axvline(shape.x0, color="black", linestyle="--", linewidth=1)
        elif shape.type == "line" and shape.y0 == shape.y1 and shape.yref in ("y", None):
            ax.axhline(shape.y0, color="gray", linestyle=":", linewidth=1)
    title = fig.layout.title.text if fig.layout.title is not None else None
    if title:
        ax.set_title(_strip_tags(title), fontsize=10)
    if fig.layout.xaxis.title.text:
        ax.set_xlabel(_strip_tags(fig.layout.xaxis.title.text))
    if fig.layout.yaxis.title.text:
        ax.set_ylabel(_strip_tags(fig.layout.yaxis.title.text))
    if fig.layout.xaxis.range:
        ax.set_xlim(*fig.layout.xaxis.range)
    if fig.layout.yaxis.range:
        ax.set_ylim(*fig.layout.yaxis.range)
    if any(t.name for t in fig.data if t.type != "image"):
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    mfig.tight_layout()
    return mfig


def _image_pixels(trace) -> np.ndarray:
    """(H, W, 3|4) pixels of a plotly image trace: its ``z``, or its ``source`` (a base64 PNG data URI)."""
    if trace.z is not None:
        return np.asarray(trace.z, dtype=np.uint8)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(trace.source.split(",", 1)[1]))))


def _positions(values, cat_pos: dict) -> np.ndarray:
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        return np.asarray([cat_pos.setdefault(v, len(cat_pos)) for v in values], dtype=float)


def _trace_color(trace, i):
    for attr in ("marker", "line"):
        part = getattr(trace, attr, None)
        c = getattr(part, "color", None) if part is not None else None
        if isinstance(c, str):
            return c
    return _PALETTE[i % len(_PALETTE)]


def _strip_tags(text: str) -> str:
    return re.sub(r"<[^>]+>", " ", text).strip()


# ---------------------------------------------------------------------------
# Figure builders
# ---------------------------------------------------------------------------


def weights_figure(weights: Mapping[str, Mapping[str, float]], title: str = "Matcher weights per metaproperty"):
    """Grouped bars: ``{model name: {metaproperty: weight}}``. Negative = larger distance argues against a match."""
    fig = go.Figure()
    for i, (model, w) in enumerate(weights.items()):
        fig.add_bar(x=list(w), y=list(w.values()), name=model, marker_color=_PALETTE[i % len(_PALETTE)])
    fig.update_layout(
        title=title, barmode="group", xaxis_title="metaproperty",
        yaxis_title="weight (log-odds per std of distance)", template="plotly_white",
    )
    fig.add_hline(y=0, line_dash="dot")
    return fig


def roc_figure(curves: Mapping[str, tuple], title: str = "ROC on held-out identities (all voice-face pairs)"):
    """``{name: (fpr, tpr, auc)}`` -> ROC curves with the chance diagonal."""
    fig = go.Figure()
    for i, (name, (fpr, tpr, auc)) in enumerate(curves.items()):
        fig.add_scatter(x=np.asarray(fpr), y=np.asarray(tpr), mode="lines", name=f"{name} (AUC {auc:.3f})",
                        line=dict(color=_PALETTE[i % len(_PALETTE)]))
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line=dict(color="gray", dash="dash"))
    fig.update_layout(title=title, xaxis_title="false-match rate", yaxis_title="true-match rate",
                      xaxis_range=[0, 1], yaxis_range=[0, 1], template="plotly_white")
    return fig


def level_histogram_figure(level, same, threshold: float, title: str = "Level of match on held-out pairs"):
    """Overlaid histograms of the level for matching and non-matching pairs, with the threshold."""
    level, same = np.asarray(level, float), np.asarray(same, bool)
    fig = go.Figure()
    fig.add_histogram(x=level[~same], name="different people", histnorm="probability density", opacity=0.6,
                      marker_color=_PALETTE[3])
    fig.add_histogram(x=level[same], name="same person", histnorm="probability density", opacity=0.6,
                      marker_color=_PALETTE[2])
    fig.add_vline(x=float(threshold), line_dash="dash", annotation_text="threshold")
    fig.update_layout(title=title, barmode="overlay", xaxis_title="level of match (higher = more alike)",
                      yaxis_title="density", template="plotly_white")
    return fig


def identification_figure(evaluation: Mapping[str, Mapping[str, float]], title: str = "1:2 voice-to-face identification"):
    """Bars of the two 1:2 protocols for each model or method (``{name: metrics}``), chance at 0.5.

    Where a metrics dict has ``identification_1to2_vf_ci`` (or the
    same-gender one), ``[low, high]``, the bar carries that interval."""
    keys = [("identification_1to2_vf", "any other face"), ("identification_1to2_vf_gender_restricted", "same-gender other face")]
    fig = go.Figure()
    for i, (key, label) in enumerate(keys):
        y = np.asarray([evaluation[m].get(key, np.nan) for m in evaluation], dtype=float)
        ci = np.asarray([evaluation[m].get(f"{key}_ci") or [np.nan, np.nan] for m in evaluation], dtype=float)
        error = None
        if np.isfinite(ci).any():
            error = dict(type="data", array=np.nan_to_num(ci[:, 1] - y), arrayminus=np.nan_to_num(y - ci[:, 0]))
        fig.add_bar(x=list(evaluation), y=y, name=label, marker_color=_PALETTE[i], error_y=error)
    fig.add_hline(y=0.5, line_dash="dot", annotation_text="chance")
    fig.update_layout(title=title, barmode="group", xaxis_title="model or method", yaxis_title="1:2 accuracy (share of lists)",
                      yaxis_range=[0, 1], template="plotly_white")
    return fig


def extractor_figure(extractors: Mapping[str, Mapping[str, Mapping[str, float]]], title: str = "Metaproperty extractors on held-out identities"):
    """Balanced accuracy per metaproperty and modality against the majority baseline."""
    names = list(extractors)
    fig = go.Figure()
    for i, side in enumerate(("voice", "face")):
        fig.add_bar(x=names, y=[extractors[n].get(side, {}).get("balanced_accuracy", np.nan) for n in names],
                    name=f"{side} extractor", marker_color=_PALETTE[i])
    fig.add_scatter(x=names, y=[extractors[n].get("voice", {}).get("majority_baseline", np.nan) for n in names],
                    mode="markers", name="majority baseline", marker=dict(color="black", size=9, symbol="line-ew-open"))
    fig.update_layout(title=title, barmode="group", xaxis_title="metaproperty", yaxis_title="balanced accuracy",
                      yaxis_range=[0, 1], template="plotly_white")
    return fig


def difficulty_figure(table: pd.DataFrame, title: str = "Retraining by difficulty: held-out decision accuracy"):
    """Bars of test accuracy per retraining strategy (rows of :func:`vfmatch.matching.difficulty.compare_strategies`)."""
    ok = table.dropna(subset=["test_accuracy"]) if "test_accuracy" in table else table.iloc[:0]
    fig = go.Figure()
    fig.add_bar(x=list(ok["strategy"]), y=list(ok["test_accuracy"]), name="test accuracy", marker_color=_PALETTE[0])
    fig.add_bar(x=list(ok["strategy"]), y=list(ok["test_auc"]), name="test AUC", marker_color=_PALETTE[1])
    lo = float(np.nanmin(ok[["test_accuracy", "test_auc"]].to_numpy())) if len(ok) else 0.5
    fig.update_layout(title=title, barmode="group", xaxis_title="retraining strategy", yaxis_title="score on test pairs",
                      yaxis_range=[max(0.0, lo - 0.1), 1.0], template="plotly_white")
    return fig


def explanation_figure(explanation, title: str | None = None):
    """Horizontal bars of each metaproperty's contribution to one level of match
    (:meth:`vfmatch.matching.explain.MatchExplanation.figure`)."""
    return explanation.figure(title)


def distributions_figure(explanation, metaproperties=None):
    """Both sides' distributions, one small panel per metaproperty (voice vs face)."""
    names = list(metaproperties or explanation.voice)
    cols = min(4, len(names))
    rows = int(np.ceil(len(names) / cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names)
    for k, name in enumerate(names):
        r, c = k // cols + 1, k % cols + 1
        labels = list(explanation.voice[name])
        fig.add_trace(go.Bar(x=labels, y=list(explanation.voice[name].values()), name="voice",
                             marker_color=_PALETTE[0], showlegend=k == 0), row=r, col=c)
        fig.add_trace(go.Bar(x=labels, y=list(explanation.face[name].values()), name="face",
                             marker_color=_PALETTE[1], showlegend=k == 0), row=r, col=c)
    fig.update_layout(barmode="group", height=260 * rows, template="plotly_white",
                      title="What the voice and the face say, per metaproperty (x: value, y: probability)")
    fig.update_yaxes(range=[0, 1])
    for k in range(len(names)):  # axis titles on the left column (probability) and bottom row (value)
        r, c = k // cols + 1, k % cols + 1
        if c == 1:
            fig.update_yaxes(title_text="probability", row=r, col=c)
        if k + cols >= len(names):
            fig.update_xaxes(title_text="value", row=r, col=c)
    return fig


# ---------------------------------------------------------------------------
# The index page
# ---------------------------------------------------------------------------


def write_index(folder: str | Path, metrics: Mapping, figures: Mapping[str, str], notes: list[str] | None = None,
                *, title: str = "vfmatch run") -> Path:
    """``index.html``: the headline numbers, notes, and every figure (PNG linking to its HTML).

    ``title`` heads the page (``vfmatch sss`` gives its own)."""
    folder = Path(folder)
    ev = metrics.get("evaluation", {})
    rows = []
    for model in ("test", "bayes", "oracle", "gender_only", "chance"):
        if model in ev and "skipped" not in ev[model]:
            m = ev[model]
            rows.append(
                "<tr>" + "".join(
                    f"<td>{html.escape(str(v))}</td>"
                    for v in (
                        MODEL_LABELS.get(model, model),
                        _fmt(m.get("identification_1to2_vf")),
                        _fmt(m.get("identification_1to2_vf_gender_restricted")),
                        _fmt(m.get("auc")),
                        _fmt(m.get("eer")),
                    )
                ) + "</tr>"
            )
    method_rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
            name, _fmt(m.get("identification_1to2_vf")), _interval(m.get("identification_1to2_vf_ci")),
            _fmt(m.get("identification_1to2_vf_gender_restricted")),
            _interval(m.get("identification_1to2_vf_gender_restricted_ci")), _fmt(m.get("auc")), _fmt(m.get("eer")),
        )) + "</tr>"
        for name, m in metrics.get("methods", {}).items()
    )
    methods_html = "" if not method_rows else (
        "<h2>Methods on the same test people and lists</h2><table><tr><th>method</th><th>1:2 V&rarr;F</th><th>95% CI</th>"
        "<th>same gender</th><th>95% CI</th><th>AUC</th><th>EER</th></tr>" + method_rows + "</table>"
    )
    figs = "\n".join(
        f'<h3>{html.escape(title)}</h3><a href="{name}.html"><img src="{name}.png" style="max-width:720px"></a>'
        for name, title in figures.items()
    )
    note_html = "".join(f"<li>{html.escape(n)}</li>" for n in (notes or []))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>vfmatch report</title>
<style>body{{font-family:sans-serif;max-width:900px;margin:2em auto}}td,th{{padding:4px 10px;border-bottom:1px solid #ddd}}</style>
</head><body><h1>{html.escape(title)}</h1>
<p>Population: {html.escape(str(metrics.get('population', {}).get('description', '')))}</p>
<table><tr><th>model</th><th>1:2 V&rarr;F</th><th>1:2 V&rarr;F same gender</th><th>AUC</th><th>EER</th></tr>
{''.join(rows)}</table>
{methods_html}
<ul>{note_html}</ul>
<p>All numbers: <a href="metrics.json">metrics.json</a>; weights: <a href="weights.json">weights.json</a>.
Click a figure for its interactive version.</p>
{figs}
</body></html>"""
    path = folder / "index.html"
    path.write_text(page)
    return path


def _fmt(v) -> str:
    return "" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{float(v):.3f}"


def _interval(ci) -> str:
    return "" if not ci else f"[{_fmt(ci[0])}, {_fmt(ci[1])}]"
