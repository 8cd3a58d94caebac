"""How good is each extractor? Scores on held-out identities, with honest baselines.

For every extractor, on the clips (or faces) of people it never saw:

* **balanced accuracy** -- the mean over values of the share of items of that
  value whose most probable value is right. Unlike accuracy it does not reward
  always answering the commonest value: that *majority-class baseline* scores
  exactly ``1 / K`` (``K`` = values present among the test items);
* a **bootstrap 95 % interval** of the balanced accuracy *over identities*
  (people are resampled with replacement, all their items with them, because
  items of one person are not independent); the extractor *beats the baseline*
  when the whole interval lies above ``1 / K``;
* **accuracy** beside the accuracy of always answering the training set's
  majority value;
* **ordinal mean absolute error** in bins (ordinal and binned metaproperties):
  how many bins the most probable value is off, beside the same for the
  majority-class answer;
* **expected calibration error** (ECE): the gap between the confidence of the
  most probable value and how often it is right, averaged over confidence bins
  (the reliability plot shows the bins);
* the **confusion matrix** (rows: truth, columns: most probable value).

Book chapter: ``book/04_metaproperties.ipynb``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "balanced_accuracy",
    "confusion_matrix",
    "expected_calibration_error",
    "reliability_table",
    "ordinal_mae",
    "bootstrap_balanced_accuracy",
    "extractor_quality",
    "quality_report",
    "quality_figure",
    "reliability_figure",
    "confusion_figure",
]


def confusion_matrix(y_true, y_pred, n_values: int) -> np.ndarray:
    """Counts, shape (n_values, n_values): rows are the truth, columns the prediction."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    return np.bincount(y_true * n_values + y_pred, minlength=n_values * n_values).reshape(n_values, n_values)


def _balanced_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Balanced accuracy of one (K, K) or many (B, K, K) confusion matrices."""
    support = cm.sum(axis=-1)
    diag = np.diagonal(cm, axis1=-2, axis2=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, diag / np.maximum(support, 1), np.nan)
    return np.nanmean(recall, axis=-1)


def balanced_accuracy(y_true, y_pred, n_values: int | None = None) -> float:
    """Mean per-value recall over the values present in ``y_true``."""
    y_true = np.asarray(y_true, dtype=np.int64)
    k = int(n_values or max(y_true.max(), np.max(y_pred)) + 1)
    return float(_balanced_from_confusion(confusion_matrix(y_true, y_pred, k)))


def expected_calibration_error(y_true, proba, n_bins: int = 10) -> float:
    """Top-label ECE: ``sum_b (n_b / n) |accuracy_b - confidence_b|`` over equal-width confidence bins."""
    table = reliability_table(y_true, proba, n_bins)
    n = table["count"].sum()
    return float((table["count"] * (table["accuracy"] - table["confidence"]).abs()).sum() / max(n, 1))


def reliability_table(y_true, proba, n_bins: int = 10) -> pd.DataFrame:
    """Confidence bins of the most probable value: mean confidence, accuracy, count.

    Empty bins are left out. The diagonal ``accuracy == confidence`` is perfect calibration."""
    p = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y_true, dtype=np.int64)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(float)
    edges = np.linspace(0, 1, n_bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        m = which == b
        if m.any():
            rows.append({"bin_low": edges[b], "bin_high": edges[b + 1], "confidence": conf[m].mean(), "accuracy": correct[m].mean(), "count": int(m.sum())})
    return pd.DataFrame(rows, columns=["bin_low", "bin_high", "confidence", "accuracy", "count"])


def ordinal_mae(y_true, y_pred) -> float:
    """Mean absolute error in bins between the predicted and the true value index."""
    return float(np.mean(np.abs(np.asarray(y_pred, dtype=np.int64) - np.asarray(y_true, dtype=np.int64))))


def bootstrap_balanced_accuracy(y_true, y_pred, groups, n_values: int, *, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """Balanced accuracy of ``n_boot`` resamples of the *identities* (``groups``).

    Each resample draws as many identities as there are, with replacement, and
    pools all their items. Returns the ``n_boot`` scores."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    _, g = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    n_groups = int(g.max()) + 1
    # One confusion matrix per identity, then a resample is a weighted sum of them.
    per_group = np.zeros((n_groups, n_values * n_values))
    np.add.at(per_group, (g, y_true * n_values + y_pred), 1)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n_groups, np.full(n_groups, 1 / n_groups), size=n_boot)  # (n_boot, n_groups)
    cms = (counts @ per_group).reshape(n_boot, n_values, n_values)
    return _balanced_from_confusion(cms)


def extractor_quality(extractor, population, *, n_boot: int = 1000, seed: int = 0, n_bins: int = 10, return_details: bool = False):
    """Scores of one fitted extractor on a population of held-out identities.

    Returns
    -------
    dict with ``metaproperty, modality, encoder, calculator, n_items,
    n_identities, n_values_present, balanced_accuracy, ci_low, ci_high,
    baseline_balanced_accuracy, beats_baseline, accuracy, baseline_accuracy,
    ordinal_mae, baseline_ordinal_mae, ece, confusion`` (and, with
    ``return_details``, also ``y``, ``proba``, ``groups``).
    """
    mp = extractor.metaproperty_
    modality = extractor.modality
    proba = extractor.predict_proba(population)
    y = population.labels(mp.name, modality)
    groups = population.voice_speakers if modality == "voice" else population.face_speakers
    keep = y >= 0
    y, proba, groups = y[keep], proba[keep], np.asarray(groups)[keep]
    if len(y) == 0:
        raise ValueError(f"no test item has a known {mp.name!r}")
    pred = proba.argmax(axis=1)
    k = mp.n_values
    present = np.unique(y)
    boot = bootstrap_balanced_accuracy(y, pred, groups, k, n_boot=n_boot, seed=seed)
    lo, hi = np.nanpercentile(boot, [2.5, 97.5])
    majority = int(np.argmax(extractor.class_counts_))  # the training set's commonest value
    out = {
        "metaproperty": mp.name,
        "modality": modality,
        "encoder": extractor.encoder_.name,
        "calculator": extractor.calculator,
        "n_items": int(len(y)),
        "n_identities": int(len(np.unique(groups))),
        "n_values_present": int(len(present)),
        "balanced_accuracy": balanced_accuracy(y, pred, k),
        "ci_low": float(lo),
        "ci_high": float(hi),
        "baseline_balanced_accuracy": 1.0 / len(present),
        "beats_baseline": bool(lo > 1.0 / len(present)),
        "accuracy": float(np.mean(pred == y)),
        "baseline_accuracy": float(np.mean(y == majority)),
        "ordinal_mae": ordinal_mae(y, pred) if mp.is_ordered else np.nan,
        "baseline_ordinal_mae": ordinal_mae(y, np.full_like(y, majority)) if mp.is_ordered else np.nan,
        "ece": expected_calibration_error(y, proba, n_bins),
        "confusion": confusion_matrix(y, pred, k).tolist(),
        "fit_seconds": getattr(extractor, "fit_seconds_", None),
    }
    if return_details:
        out.update({"y": y, "proba": proba, "groups": groups})
    return out


def quality_report(extractors, population, *, n_boot: int = 1000, seed: int = 0, n_bins: int = 10, return_details: bool = False):
    """:func:`extractor_quality` for every extractor of an :class:`~vfmatch.extractors.ExtractorSet`
    (or a list of extractors), one row each.

    With ``return_details=True`` also returns ``{(metaproperty, modality): {"y", "proba", "groups"}}``
    for :func:`reliability_figure` and :func:`confusion_figure`."""
    items = getattr(extractors, "extractors", extractors)
    rows, details = [], {}
    for ex in items:
        if not population.has_metaproperty(ex.metaproperty):
            continue
        q = extractor_quality(ex, population, n_boot=n_boot, seed=seed, n_bins=n_bins, return_details=True)
        details[(q["metaproperty"], q["modality"])] = {k: q.pop(k) for k in ("y", "proba", "groups")}
        rows.append(q)
    df = pd.DataFrame(rows)
    return (df, details) if return_details else df


# ---------------------------------------------------------------------------
# Figures (plotly)
# ---------------------------------------------------------------------------


def quality_figure(report: pd.DataFrame, title: str = "Balanced accuracy on held-out identities"):
    """Balanced accuracy per metaproperty and modality with its 95 % interval,
    and the majority-class baseline as a grey tick."""
    import plotly.graph_objects as go  # deferred: plotly is slow to import and only figures need it

    fig = go.Figure()
    colours = {"voice": "#1f77b4", "face": "#ff7f0e"}
    for modality, g in report.groupby("modality", sort=False):
        fig.add_bar(
            x=g["metaproperty"], y=g["balanced_accuracy"], name=modality, marker_color=colours.get(modality),
            error_y=dict(type="data", symmetric=False, array=g["ci_high"] - g["balanced_accuracy"], arrayminus=g["balanced_accuracy"] - g["ci_low"]),
        )
    base = report.groupby("metaproperty", sort=False)["baseline_balanced_accuracy"].max()
    fig.add_scatter(x=base.index, y=base.values, mode="markers", name="majority-class baseline",
                    marker=dict(symbol="line-ew-open", size=28, color="grey", line=dict(width=3)))
    fig.update_layout(barmode="group", title=title, yaxis=dict(title="balanced accuracy", range=[0, 1]))
    return fig


def reliability_figure(y_true, proba, n_bins: int = 10, title: str = "Reliability"):
    """Reliability plot: accuracy against confidence per bin (marker size = count), with the diagonal."""
    import plotly.graph_objects as go  # deferred: plotly is slow to import and only figures need it

    t = reliability_table(y_true, proba, n_bins)
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dash", color="grey"), name="perfect calibration")
    fig.add_scatter(x=t["confidence"], y=t["accuracy"], mode="lines+markers", name="extractor",
                    marker=dict(size=6 + 20 * np.sqrt(t["count"] / max(t["count"].max(), 1))), text=t["count"],
                    hovertemplate="confidence %{x:.2f}<br>accuracy %{y:.2f}<br>%{text} items")
    ece = expected_calibration_error(y_true, proba, n_bins)
    fig.update_layout(title=f"{title} (ECE {ece:.3f})", xaxis=dict(title="confidence of the most probable value", range=[0, 1]),
                      yaxis=dict(title="accuracy", range=[0, 1]))
    return fig


def confusion_figure(confusion, labels: Sequence[str], title: str = "Confusion matrix", normalise: bool = True):
    """Heat map of a confusion matrix (rows: truth). ``normalise`` shows each row as shares."""
    import plotly.express as px  # deferred: plotly is slow to import and only figures need it

    cm = np.asarray(confusion, dtype=float)
    z = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalise else cm
    fig = px.imshow(z, x=list(labels), y=list(labels), color_continuous_scale="Blues", zmin=0, zmax=1 if normalise else None,
                    labels=dict(x="most probable value", y="truth", color="share" if normalise else "count"), title=title, text_auto=".2f" if normalise else True)
    return fig
