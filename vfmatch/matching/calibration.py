"""Calibrated match probabilities: Platt scaling, isotonic regression, the expected calibration error.

A probability is *calibrated* when it means what it says: among the pairs
given P(same person) = 0.8, eight in ten are the same person. The matcher's
:meth:`~vfmatch.matching.MetapropertyMatcher.predict_proba` need not be: its
classifier is fitted on the distance vectors of the "matcher" people, and the
extracted tables of new people are distributed differently (the extractors
were over-confident on some, hesitant on others). Only the matcher's
*threshold* is chosen on held-out people (by ``MetapropertyMatcher.calibrate``,
whose name predates this module: it calibrates the decision threshold, not the
probabilities); this module does the same for its probabilities.

Two classic maps from a score to a calibrated probability, both fitted on
held-out labelled pairs (the job's "threshold" role) and both from scikit-learn:

* **Platt scaling** (``method="platt"``): a one-feature logistic regression,
  ``P(same) = sigmoid(a * score + b)``. Two parameters, so it needs few pairs and
  cannot overfit much; it can only stretch, shrink and shift the log-odds.
* **Isotonic regression** (``method="isotonic"``): the best non-decreasing step
  function from score to probability (pool-adjacent-violators). It can fix any
  monotone distortion but needs more pairs and gives tied, step-wise outputs.

The matcher's score is the log-odds of its own match probability,
``logit(predict_proba(X)[:, 1])`` (for a logistic matcher the level of match
plus a constant). Neither map changes the order of the pairs, so the AUC,
the rankings and the 1:2 accuracy are unchanged; only what the numbers mean
changes. scikit-learn's ``CalibratedClassifierCV(FrozenEstimator(clf))`` does
the same for estimators that follow its classifier protocol; :class:`ScoreCalibrator`
writes the two maps out so a student can read them and so that any scorer
(an embedding's cosine similarity, say) can be calibrated the same way.

The pairs are balanced (half matching, half not) on both the calibration and
the test side, so calibrated probabilities hold under a 50/50 prior; with a
different share of true matches, the odds scale by that share's odds.

**Expected calibration error** (ECE), with ``B`` equal-width bins of the
predicted probability, ``[0, 1/B), [1/B, 2/B), ..., [(B-1)/B, 1]``::

    ECE = sum_b  (n_b / n) * | fraction of matches in bin b  -  mean predicted probability in bin b |

0 for a perfectly calibrated predictor (up to sampling noise: with few pairs
per bin the ECE of a calibrated predictor is small but positive), at most 1.
The *reliability diagram* plots the two per-bin numbers against each other;
a calibrated predictor lies on the diagonal.

Book chapter: ``book/05_distances_and_weights.ipynb``.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from .matcher import as_pairs
from ..utils import to_jsonable

__all__ = [
    "ScoreCalibrator",
    "CalibratedMatcher",
    "CALIBRATION_METHODS",
    "matcher_score",
    "expected_calibration_error",
    "reliability_table",
    "reliability_figure",
    "calibration_summary",
]

CALIBRATION_METHODS = ("platt", "isotonic")
_EPS = 1e-12  # probabilities are clipped to [eps, 1 - eps] before taking log-odds


def _check_scores_labels(scores, labels, where: str) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape or s.size == 0:
        raise ValueError(f"{where}: scores and labels must be non-empty and of equal length, got {s.shape} and {y.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{where}: scores contain NaN or inf")
    if not set(np.unique(y)) <= {0, 1, True, False}:
        raise ValueError(f"{where}: labels must be 1 (same person) or 0 (different people)")
    return s, y.astype(np.int64)


class ScoreCalibrator(BaseEstimator):
    """Map scores (higher = more likely the same person) to calibrated P(same person).

    Parameters
    ----------
    method : {"platt", "isotonic"}
        Platt scaling (logistic regression on the score, without a penalty)
        or isotonic regression (module docstring).

    Attributes (after fitting)
    --------------------------
    estimator_ : the fitted ``LogisticRegression`` or ``IsotonicRegression``
    coef_, intercept_ : floats, Platt only: ``P = sigmoid(coef_ * score + intercept_)``
    n_pairs_ : int, number of calibration pairs
    """

    def __init__(self, method: str = "platt"):
        self.method = method

    def fit(self, scores, labels):
        """Fit on held-out scores, shape (n,), and labels (1 = same person)."""
        if self.method not in CALIBRATION_METHODS:
            raise ValueError(f"method must be one of {CALIBRATION_METHODS}, got {self.method!r}")
        s, y = _check_scores_labels(scores, labels, "ScoreCalibrator.fit")
        if len(np.unique(y)) < 2:
            raise ValueError("ScoreCalibrator.fit: need both matching (1) and unmatching (0) pairs")
        if self.method == "platt":
            # No penalty: the two parameters are well determined by a few hundred pairs.
            est = LogisticRegression(C=np.inf, max_iter=1000).fit(s[:, None], y)
            self.coef_, self.intercept_ = float(est.coef_[0, 0]), float(est.intercept_[0])
        else:
            # Outside the calibration scores, keep the end values rather than extrapolate.
            est = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(s, y)
        self.estimator_ = est
        self.n_pairs_ = int(s.size)
        return self

    def predict_proba(self, scores) -> np.ndarray:
        """``[P(different), P(same)]`` of each score, shape (n, 2) (the matcher's column order)."""
        if not hasattr(self, "estimator_"):
            raise RuntimeError("this ScoreCalibrator is not fitted yet; call fit(scores, labels) first")
        s = np.asarray(scores, dtype=np.float64).ravel()
        if self.method == "platt":
            p = self.estimator_.predict_proba(s[:, None])[:, 1]
        else:
            p = self.estimator_.predict(s)
        return np.stack([1.0 - p, p], axis=1)


def matcher_score(matcher, X) -> np.ndarray:
    """The score a matcher's probability is calibrated on: ``logit(P(same))`` of
    distance vectors ``X`` (n, n_metaproperties) -> (n,)."""
    p = np.clip(matcher.predict_proba(X)[:, 1], _EPS, 1.0 - _EPS)
    return np.log(p) - np.log1p(-p)


class CalibratedMatcher(BaseEstimator):
    """A fitted :class:`~vfmatch.matching.MetapropertyMatcher` whose match probability is calibrated.

    The matcher is used as it is (it is not refitted: fit it on other people
    first); :meth:`fit` learns only the map from its score to a calibrated
    probability, on held-out labelled pairs.

    Parameters
    ----------
    matcher : a fitted MetapropertyMatcher (or anything with ``predict_proba``
        and ``pair_distances``)
    method : {"platt", "isotonic"}

    Attributes (after fitting)
    --------------------------
    calibrator_ : the fitted :class:`ScoreCalibrator`
    """

    def __init__(self, matcher=None, method: str = "platt"):
        self.matcher = matcher
        self.method = method

    def fit(self, X, y):
        """Learn the calibration on distance vectors ``X`` (n, n_metaproperties) of held-out pairs."""
        if self.matcher is None:
            raise ValueError("CalibratedMatcher needs a fitted matcher")
        self.calibrator_ = ScoreCalibrator(self.method).fit(matcher_score(self.matcher, X), y)
        return self

    def fit_pairs(self, voice_table, face_table, pairs):
        """:meth:`fit` on labelled pairs of two metaproperty tables (the job's "threshold" role)."""
        vi, fi, y = as_pairs(pairs)
        if y is None:
            raise ValueError("pairs: calibration needs a label for every pair")
        return self.fit(self.matcher.pair_distances(voice_table, face_table, vi, fi), y)

    def predict_proba(self, X) -> np.ndarray:
        """Calibrated ``[P(different), P(same)]`` of distance vectors, shape (n, 2)."""
        if not hasattr(self, "calibrator_"):
            raise RuntimeError("this CalibratedMatcher is not fitted yet; call fit() or fit_pairs() first")
        return self.calibrator_.predict_proba(matcher_score(self.matcher, X))

    def pair_probability(self, voice_table, face_table, voice_index, face_index) -> np.ndarray:
        """Calibrated P(same person) of (voice, face) pairs given by row indices, shape (n,)."""
        return self.predict_proba(self.matcher.pair_distances(voice_table, face_table, voice_index, face_index))[:, 1]


# ---------------------------------------------------------------------------
# Measuring calibration
# ---------------------------------------------------------------------------


def reliability_table(labels, probabilities, n_bins: int = 10, *, sample_weight=None) -> pd.DataFrame:
    """Per-bin numbers of a reliability diagram (equal-width bins of the probability).

    Parameters
    ----------
    labels : array (n,), 1 = same person
    probabilities : array (n,), predicted P(same person) in [0, 1]
    n_bins : int >= 1
    sample_weight : array (n,), optional non-negative weight per pair (a bootstrap
        sample weights a pair by how often its identity was drawn)

    Returns
    -------
    DataFrame, one row per bin: ``bin``, ``lower``, ``upper``, ``n`` (pairs, or
    their total weight), ``mean_probability``, ``fraction_positive`` (both NaN in
    an empty bin) and ``gap`` (fraction - mean; > 0: under-confident there).
    """
    p, y = _check_scores_labels(probabilities, labels, "reliability_table")
    if np.any((p < 0) | (p > 1)):
        raise ValueError("reliability_table: probabilities must lie in [0, 1]")
    if int(n_bins) < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    w = np.ones_like(p) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64).ravel()
    if w.shape != p.shape or np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError("reliability_table: sample_weight must be finite, non-negative, one per pair")
    B = int(n_bins)
    b = np.minimum((p * B).astype(np.int64), B - 1)  # [k/B, (k+1)/B); 1.0 goes to the last bin
    n = np.bincount(b, weights=w, minlength=B)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(b, weights=w * p, minlength=B) / n
        frac = np.bincount(b, weights=w * y, minlength=B) / n
    edges = np.arange(B + 1) / B
    return pd.DataFrame({"bin": np.arange(B), "lower": edges[:-1], "upper": edges[1:],
                         "n": n.astype(np.int64) if sample_weight is None else n,
                         "mean_probability": mean_p, "fraction_positive": frac, "gap": frac - mean_p})


def expected_calibration_error(labels, probabilities, n_bins: int = 10, *, sample_weight=None) -> float:
    """ECE with ``n_bins`` equal-width bins (module docstring): the pair-weighted
    mean of ``|fraction of matches - mean predicted probability|`` over the bins.
    Arguments in scikit-learn's order (``y_true, y_prob``), as for ``roc_auc``."""
    t = reliability_table(labels, probabilities, n_bins, sample_weight=sample_weight)
    used = t["n"] > 0
    return float(np.sum(t.loc[used, "n"] * t.loc[used, "gap"].abs()) / t["n"].sum())


def calibration_summary(labels, before, after, *, n_bins: int = 10, method: str | None = None) -> dict:
    """ECE and reliability tables of one set of pairs before and after calibration, JSON-ready.

    ``before`` and ``after`` are predicted P(same person) of the same pairs (n,)."""
    summary = {"n_bins": int(n_bins), "binning": "equal-width", "n_pairs": int(np.size(labels)),
               "ece_before": expected_calibration_error(labels, before, n_bins),
               "ece_after": expected_calibration_error(labels, after, n_bins)}
    if method is not None:
        summary["method"] = method
    for key, p in (("reliability_before", before), ("reliability_after", after)):
        summary[key] = reliability_table(labels, p, n_bins)  # empty bins: NaN, written as null
    return to_jsonable(summary)


def reliability_figure(curves: Mapping[str, pd.DataFrame], title: str = "Reliability of the match probability"):
    """A reliability diagram: one line per ``{name: reliability_table(...)}``, the diagonal for reference.

    Empty bins are left out; hovering a point shows its bin and number of pairs."""
    import plotly.graph_objects as go  # plotly is needed for figures only; the matcher works without loading it

    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                             line=dict(dash="dash", color="grey")))
    for name, table in curves.items():
        t = table[table["n"] > 0]
        fig.add_trace(go.Scatter(
            x=t["mean_probability"], y=t["fraction_positive"], mode="lines+markers", name=name,
            customdata=np.stack([t["lower"], t["upper"], t["n"]], axis=1),
            hovertemplate="bin %{customdata[0]:.1f}-%{customdata[1]:.1f}: %{customdata[2]} pairs<br>"
                          "mean predicted %{x:.3f}, observed %{y:.3f}<extra>" + name + "</extra>",
        ))
    fig.update_layout(title=title, xaxis_title="mean predicted probability of a match (per bin)",
                      yaxis_title="observed fraction of matching pairs", xaxis_range=[0, 1], yaxis_range=[0, 1],
                      template="plotly_white")
    return fig
