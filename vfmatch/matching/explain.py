"""Why the matcher decided what it did: per-metaproperty explanations.

The patent asks that every decision be explainable per metaproperty. The level
of match of a pair (:mod:`vfmatch.matching.matcher`) is split into one
*contribution* per metaproperty; the contributions add up to the level, and a
positive one argues for a match.

* **Logistic regression** -- the level *is* a weighted sum, so the contribution
  of metaproperty ``m`` is its term ``w_m * (d_m - mu_m) / sigma_m``.
* **Tree ensembles** have no terms to read off. Their contributions are
  *Shapley values* (:func:`shapley_contributions`): the change in the
  ensemble's level when metaproperty ``m``'s distance is revealed, starting
  from an average training pair (every distance at its training mean ``mu``),
  averaged over every order in which the distances could be revealed. They are
  exact (all ``2^M`` subsets are evaluated), add up to the level, and for a
  linear model they are exactly the weighted-sum terms above. They describe
  what the fitted ensemble does with this pair, not what causes a match.

A :class:`MatchExplanation` shows itself three ways: :meth:`~MatchExplanation.to_text`
(a few lines for a terminal or a log), :meth:`~MatchExplanation.summary_frame`
(a rounded, labelled table; a notebook displays it through ``_repr_html_``, so
nothing wraps mid-word at a narrow window) and :meth:`~MatchExplanation.figure`
(a plotly bar chart of the contributions).

Book chapter: ``book/07_matching_and_retrieval.ipynb``.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from ..metaproperties import get_metaproperty
from .tables import MetapropertyTable, is_embedding_column, table_sides

__all__ = ["MatchExplanation", "shapley_contributions", "build_explanation", "MAX_SHAPLEY_FEATURES"]

# Exact Shapley values evaluate 2^M coalitions per pair; 12 metaproperties is 4096.
MAX_SHAPLEY_FEATURES = 12
# Rows of coalition distance vectors evaluated at once (bounds the memory).
_SHAPLEY_CHUNK_ROWS = 250_000


def shapley_contributions(level: Callable[[np.ndarray], np.ndarray], X, baseline) -> np.ndarray:
    """Exact Shapley values of ``level`` at every row of ``X``, absent features at ``baseline``.

    Parameters
    ----------
    level : function ``(n, M) -> (n,)``
        The score to explain (the matcher's level of match).
    X : array, shape (n, M)
        Distance vectors.
    baseline : array, shape (M,)
        Where a feature sits when it is "not revealed" (the training means).

    Returns
    -------
    np.ndarray, shape (n, M): ``phi[i, m] = sum over subsets S of the other
    features of |S|! (M - |S| - 1)! / M! * (v(S + m) - v(S))``, with ``v(S)`` the
    level of row ``i`` whose features outside ``S`` are set to ``baseline``.
    Every row sums to ``level(X[i]) - level(baseline)``.
    """
    X = np.asarray(X, dtype=np.float64)
    base = np.asarray(baseline, dtype=np.float64)
    n, M = X.shape
    if M > MAX_SHAPLEY_FEATURES:
        raise ValueError(f"exact Shapley values need 2^M evaluations per pair; M={M} exceeds {MAX_SHAPLEY_FEATURES}")
    masks = ((np.arange(2**M)[:, None] >> np.arange(M)) & 1).astype(bool)  # (2^M, M): revealed features
    size = masks.sum(axis=1)
    fact = np.array([math.factorial(k) for k in range(M + 1)], dtype=np.float64)
    weight = fact[size] * fact[np.maximum(M - size - 1, 0)] / fact[M]  # used only for subsets without m
    phi = np.empty((n, M))
    step = max(1, _SHAPLEY_CHUNK_ROWS // 2**M)
    for start in range(0, n, step):
        rows = X[start : start + step]
        Z = np.where(masks[None], rows[:, None, :], base[None, None, :])  # (rows, 2^M, M)
        v = np.asarray(level(Z.reshape(-1, M)), dtype=np.float64).reshape(len(rows), 2**M)
        for m in range(M):
            without = np.flatnonzero(~masks[:, m])
            phi[start : start + len(rows), m] = (v[:, without | (1 << m)] - v[:, without]) @ weight[without]
    return phi


@dataclass
class MatchExplanation:
    """Why the matcher decided what it did for one (voice, face) pair.

    Attributes
    ----------
    voice_index, face_index : int
        Rows of the voice and face tables.
    level : float
        Level of match (higher = more likely the same person).
    threshold : float
        The decision threshold on ``level``.
    decision : bool
        ``level >= threshold``.
    probability : float or None
        The classifier's probability of "same person" (balanced prior), when available.
    table : pandas.DataFrame
        One row per metaproperty: ``metaproperty``, ``distance_function``,
        ``voice_top`` / ``face_top`` (most likely value and its probability),
        ``distance``, ``mean`` and ``std`` (over training pairs),
        ``standardized`` (``(distance - mean) / std``), ``weight`` and
        ``contribution`` (they sum to ``level``; ``weight * standardized`` for
        a logistic matcher, Shapley values for a tree ensemble: see ``method``).
    voice, face : dict
        Both sides' full distributions, ``name -> {value label: probability}``.
    method : str
        ``"weighted_sum"`` (logistic) or ``"shapley"`` (tree ensembles; the
        weights are then permutation importances, not factors of the level).
    """

    voice_index: int
    face_index: int
    level: float
    threshold: float
    decision: bool
    probability: float | None
    table: pd.DataFrame
    voice: dict = field(default_factory=dict)
    face: dict = field(default_factory=dict)
    method: str = "weighted_sum"

    def to_frame(self) -> pd.DataFrame:
        """A copy of :attr:`table`: every column, unrounded (for computing with)."""
        return self.table.copy()

    def headline(self) -> str:
        """One line: the level of match, the threshold, the decision and the probability."""
        verdict = "MATCH" if self.decision else "no match"
        prob = f", classifier probability {self.probability:.2f}" if self.probability is not None else ""
        return (f"voice {self.voice_index} vs face {self.face_index}: level of match {self.level:+.2f} "
                f"(threshold {self.threshold:+.2f}) -> {verdict}{prob}")

    def summary_frame(self, digits: int = 3) -> pd.DataFrame:
        """The table a person reads: one row per metaproperty, largest contribution first.

        Columns (labelled for reading, numbers rounded to ``digits``):
        ``metaproperty``, ``voice says (p)`` and ``face says (p)`` (most likely
        value and its probability), ``distance function``, ``distance``,
        ``standardized distance`` (``(distance - train mean) / train std``),
        ``weight`` and ``contribution`` (they add up to the level of match;
        positive argues for a match)."""
        t = self.table.reindex(self.table["contribution"].abs().sort_values(ascending=False).index)
        out = pd.DataFrame({
            "metaproperty": t["metaproperty"],
            "voice says (p)": t["voice_top"],
            "face says (p)": t["face_top"],
            "distance function": t["distance_function"],
            "distance": t["distance"],
            "standardized distance": t["standardized"],
            "weight": t["weight"],
            "contribution": t["contribution"],
        })
        return out.reset_index(drop=True).round(digits)

    def _repr_html_(self) -> str:
        # Jupyter calls this: the headline, then the summary table as HTML, with a note on the method.
        note = (" Contributions are Shapley values of the ensemble's level; weights are permutation importances."
                if self.method == "shapley" else " Contribution = weight x standardized distance.")
        return (f"<p><b>{html.escape(self.headline())}</b><br><small>{html.escape(note.strip())} "
                "Positive contributions argue for a match; they add up to the level of match.</small></p>"
                + self.summary_frame().to_html(index=False, border=0))

    def _repr_pretty_(self, printer, cycle) -> None:
        # IPython's plain-text view (a terminal, or text/plain beside the HTML): the readable lines.
        printer.text(self.to_text())

    def figure(self, title: str | None = None):
        """Horizontal bars of each metaproperty's contribution to the level of match (plotly).

        Hovering a bar shows both sides' most likely values, the distance, the
        training mean and std, and the weight."""
        import plotly.graph_objects as go  # deferred: plotly is slow to import and only the figure needs it

        t = self.table.sort_values("contribution")
        colors = ["#2ca02c" if c >= 0 else "#d62728" for c in t["contribution"]]
        hover = [
            f"{r.metaproperty}: voice {r.voice_top}, face {r.face_top}<br>{r.distance_function} distance {r.distance:.3f}"
            f" (train mean {r.mean:.3f}, std {r.std:.3f})<br>weight {r.weight:+.3f} x standardized {r.standardized:+.2f}"
            for r in t.itertuples()
        ]
        fig = go.Figure(go.Bar(x=t["contribution"], y=t["metaproperty"], orientation="h", marker_color=colors,
                               hovertext=hover, hoverinfo="text"))
        fig.update_layout(
            title=title or self.headline(),
            xaxis_title="contribution to the level of match (log-odds; + argues for a match)",
            yaxis_title="metaproperty", template="plotly_white", height=140 + 28 * len(t), margin=dict(l=130),
        )
        fig.add_vline(x=0, line_dash="dot")
        return fig

    def to_text(self) -> str:
        """A few lines a person can read in a terminal (a notebook shows :meth:`summary_frame`)."""
        lines = [self.headline()]
        if self.method == "shapley":
            lines.append("  (contributions: Shapley values of the ensemble's level; weights: permutation importances)")
        for r in self.table.sort_values("contribution", key=np.abs, ascending=False).itertuples():
            lines.append(
                f"  {r.metaproperty:<14} voice {r.voice_top:<26} face {r.face_top:<26} "
                f"{r.distance_function} {r.distance:.3f}  weight {r.weight:+.2f}  contribution {r.contribution:+.2f}"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


def build_explanation(matcher, voice_table: MetapropertyTable, face_table: MetapropertyTable,
                      voice_index: int, face_index: int) -> MatchExplanation:
    """The :class:`MatchExplanation` of one pair under a fitted
    :class:`~vfmatch.matching.matcher.MetapropertyMatcher` (its ``explain`` method)."""
    vi, fi = int(voice_index), int(face_index)
    D = matcher.pair_distances(voice_table, face_table, [vi], [fi])
    contrib = matcher.contributions(D)[0]
    standardized = matcher.standardize(D)[0]
    rows, voice, face = [], {}, {}
    for m, name in enumerate(matcher.metaproperties_):
        p, q = table_sides(voice_table, face_table, name)
        voice_top = face_top = "(learned embedding)"
        if not is_embedding_column(name):  # an embedding has no values to show, only its distance
            mp = get_metaproperty(name)
            voice[name] = dict(zip(mp.values, map(float, p[vi])))
            face[name] = dict(zip(mp.values, map(float, q[fi])))
            voice_top = f"{mp.values[int(np.argmax(p[vi]))]} ({p[vi].max():.2f})"
            face_top = f"{mp.values[int(np.argmax(q[fi]))]} ({q[fi].max():.2f})"
        rows.append(
            {
                "metaproperty": name,
                "distance_function": matcher.distances_[name],
                "voice_top": voice_top,
                "face_top": face_top,
                "distance": float(D[0, m]),
                "mean": float(matcher.mean_[m]),
                "std": float(matcher.std_[m]),
                "standardized": float(standardized[m]),
                "weight": float(matcher.weights_[m]),
                "contribution": float(contrib[m]),
            }
        )
    level = float(matcher.decision_function(D)[0])
    prob = float(matcher.predict_proba(D)[0, 1])
    method = "weighted_sum" if matcher.is_linear else "shapley"
    return MatchExplanation(vi, fi, level, matcher.threshold_, level >= matcher.threshold_, prob,
                            pd.DataFrame(rows), voice, face, method)
