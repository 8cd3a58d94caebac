"""Easy, medium and hard pairs, and three ways to retrain with them.

The patent (US 12,217,549, after FIG. 1) scores how sure the trained matcher is
about each training pair. With ``p`` the classifier's probability that the pair
is a match, the *confidence* is::

    c(d) = max(p, 1 - p)          in [0.5, 1]

and, with two thresholds ``0.5 <= eps_weak <= eps_strong <= 1``:

=============  ===============================================  ==========================
category       rule used here                                   the patent
=============  ===============================================  ==========================
``easy``       right and ``c > eps_strong``                     same
``medium``     ``eps_weak < c <= eps_strong``, right or wrong   see the note below
``uncertain``  ``c <= eps_weak``, right or wrong                not covered by the patent
``hard``       wrong and ``c > eps_strong``                     same
=============  ===============================================  ==========================

*Note on "medium".* The patent's formula for medium reads
``y_pred != y_true and eps_weak < c < eps_strong`` (wrong only, strict
inequalities), while its prose says "right **or wrong** with medium
confidence". We implement the prose: a pair is medium whatever its
correctness, and ``c == eps_strong`` counts as medium, so every pair with
``c > eps_weak`` falls in exactly one of easy / medium / hard. The patent
leaves pairs with ``c <= eps_weak`` -- the classifier is close to a coin toss
-- without a category; we give them a fourth one, ``uncertain``, reported
separately, and **treated like medium** by all three retraining strategies
(neither trivial nor confidently wrong).

The predicted label is ``p >= 0.5``: the classifier's own decision under the
balanced prior it was trained with, as in the patent (not the calibrated
threshold on the level of match).

Retraining strategies (the patent's list), each in :func:`retrain`:

* ``"curriculum"`` -- train on easy pairs first, then add medium (and
  uncertain), then hard: a logistic matcher runs SGD epochs stage by stage; a
  tree ensemble grows a third of its trees per stage. ``"curriculum_control"``
  is the same SGD on all pairs for the same number of epochs, so the effect of
  the *order* can be told apart from the change of solver.
* ``"weighted"`` -- difficulty-adjusted sample weights: lowest for easy,
  higher for medium, highest for hard (:data:`DEFAULT_WEIGHTS`).
* ``"drop"`` -- train without the easy and the hard pairs. The remaining set
  may no longer be balanced.

:func:`compare_strategies` retrains with each and reports held-out figures.
Book chapter: ``book/06_difficulty_and_curriculum.ipynb``.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import accuracy_score, roc_auc_score

from .matcher import MetapropertyMatcher
from .tables import as_pairs

__all__ = [
    "CATEGORIES",
    "DEFAULT_WEIGHTS",
    "STRATEGIES",
    "confidence",
    "check_eps",
    "categorize",
    "category_counts",
    "difficulty_weights",
    "curriculum_stages",
    "retrain",
    "compare_strategies",
]

CATEGORIES = ("easy", "medium", "uncertain", "hard")
DEFAULT_WEIGHTS = {"easy": 0.5, "medium": 1.0, "uncertain": 1.0, "hard": 2.0}
STRATEGIES = ("baseline", "curriculum", "curriculum_control", "weighted", "drop")
DEFAULT_EPS_STRONG = 0.75
DEFAULT_EPS_WEAK = 0.6


def confidence(p) -> np.ndarray:
    """``c = max(p, 1 - p)`` for probabilities ``p`` of shape (n,)."""
    p = np.asarray(p, dtype=np.float64)
    return np.maximum(p, 1.0 - p)


def check_eps(eps_strong: float, eps_weak: float) -> None:
    """Raise ValueError unless ``0.5 <= eps_weak <= eps_strong <= 1``."""
    if not 0.5 <= eps_weak <= eps_strong <= 1.0:
        raise ValueError(f"need 0.5 <= eps_weak <= eps_strong <= 1, got eps_weak={eps_weak}, eps_strong={eps_strong}")


def categorize(p, y_true, eps_strong: float = DEFAULT_EPS_STRONG, eps_weak: float = DEFAULT_EPS_WEAK) -> np.ndarray:
    """Difficulty category of each pair.

    Parameters
    ----------
    p : array, shape (n,)
        Classifier probability that each pair is a match.
    y_true : array, shape (n,)
        1 = same person, 0 = different people.
    eps_strong, eps_weak : float
        Confidence thresholds, ``0.5 <= eps_weak <= eps_strong <= 1``.

    Returns
    -------
    np.ndarray of str, shape (n,): ``"easy"``, ``"medium"``, ``"uncertain"`` or ``"hard"``.
    """
    check_eps(eps_strong, eps_weak)
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y_true).astype(np.int64)
    if p.shape != y.shape:
        raise ValueError(f"p and y_true must have the same shape, got {p.shape} and {y.shape}")
    c = confidence(p)
    right = (p >= 0.5).astype(np.int64) == y
    out = np.full(p.shape, "uncertain", dtype=object)
    out[c > eps_weak] = "medium"
    strong = c > eps_strong
    out[strong & right] = "easy"
    out[strong & ~right] = "hard"
    return out.astype(str)


def category_counts(categories) -> dict[str, int]:
    """``{category: number of pairs}`` for all four categories (zeros included)."""
    cats = np.asarray(categories)
    return {c: int(np.sum(cats == c)) for c in CATEGORIES}


def difficulty_weights(categories, weights: Mapping[str, float] | None = None) -> np.ndarray:
    """Per-pair sample weights from categories (default :data:`DEFAULT_WEIGHTS`)."""
    w = {**DEFAULT_WEIGHTS, **(weights or {})}
    if any(v < 0 for v in w.values()):
        raise ValueError("difficulty weights must be non-negative")
    return np.array([w[c] for c in np.asarray(categories)], dtype=np.float64)


def curriculum_stages(categories) -> list[np.ndarray]:
    """Cumulative index sets: easy; easy + medium + uncertain; all pairs."""
    cats = np.asarray(categories)
    easy = np.flatnonzero(cats == "easy")
    mid = np.flatnonzero(np.isin(cats, ("easy", "medium", "uncertain")))
    return [s for s in (easy, mid, np.arange(len(cats))) if len(s)]


def retrain(
    matcher: MetapropertyMatcher,
    X,
    y,
    strategy: str,
    *,
    eps_strong: float = DEFAULT_EPS_STRONG,
    eps_weak: float = DEFAULT_EPS_WEAK,
    weights: Mapping[str, float] | None = None,
    categories=None,
) -> MetapropertyMatcher:
    """A new matcher trained on the same distance vectors with a difficulty strategy.

    Parameters
    ----------
    matcher : fitted MetapropertyMatcher
        Its probabilities on ``X`` define the categories (unless given).
    X : array, shape (n_pairs, n_metaproperties)
        The training pairs' distance vectors (``matcher.pair_distances``).
    y : array, shape (n_pairs,)
    strategy : one of :data:`STRATEGIES`
        ``"baseline"`` simply refits.

    Returns
    -------
    A fitted clone of ``matcher`` (same parameters); its threshold is provisional,
    call ``calibrate`` on validation pairs before using decisions.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if categories is None:
        categories = categorize(matcher.predict_proba(X)[:, 1], y, eps_strong, eps_weak)
    cats = np.asarray(categories)
    new = clone(matcher).set_params(metaproperties=list(matcher.metaproperties_))
    if strategy == "baseline":
        return new.fit(X, y)
    if strategy == "curriculum":
        return new.fit(X, y, stages=curriculum_stages(cats))
    if strategy == "curriculum_control":
        everything = np.arange(len(y))
        return new.fit(X, y, stages=[everything] * len(curriculum_stages(cats)))
    if strategy == "weighted":
        return new.fit(X, y, sample_weight=difficulty_weights(cats, weights))
    keep = np.flatnonzero(~np.isin(cats, ("easy", "hard")))
    if len(np.unique(y[keep])) < 2:
        raise ValueError(
            "strategy 'drop': after removing easy and hard pairs only one class is left; "
            "widen the medium band (lower eps_weak or raise eps_strong)"
        )
    return new.fit(X[keep], y[keep])


def compare_strategies(
    matcher: MetapropertyMatcher,
    train: tuple,
    validation: tuple,
    test: tuple,
    *,
    eps_strong: float = DEFAULT_EPS_STRONG,
    eps_weak: float = DEFAULT_EPS_WEAK,
    strategies=STRATEGIES,
    weights: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Retrain with each strategy and measure it on held-out pairs.

    Parameters
    ----------
    matcher : fitted MetapropertyMatcher (defines the categories of the training pairs)
    train, validation, test : tuples ``(voice_table, face_table, pairs)``
        Labelled pairs: the matcher is retrained on ``train``, its threshold
        chosen on ``validation`` (``matcher.threshold_rule``), and scored on ``test``.

    Returns
    -------
    pandas.DataFrame, one row per strategy: ``strategy``, ``n_train_pairs``,
    ``test_accuracy`` (match / no-match decisions at the validation threshold),
    ``test_auc`` (of the level of match), ``delta_accuracy`` (vs ``baseline``),
    and the weights (``weight.<metaproperty>``).
    """
    def dist(split):
        vt, ft, pairs = split
        vi, fi, y = as_pairs(pairs)
        return matcher.pair_distances(vt, ft, vi, fi), y

    (Xtr, ytr), (Xva, yva), (Xte, yte) = dist(train), dist(validation), dist(test)
    cats = categorize(matcher.predict_proba(Xtr)[:, 1], ytr, eps_strong, eps_weak)
    rows = []
    for strategy in strategies:
        try:
            m = retrain(matcher, Xtr, ytr, strategy, categories=cats, weights=weights)
        except ValueError as exc:  # e.g. "drop" left one class: report it, do not stop
            rows.append({"strategy": strategy, "n_train_pairs": 0, "error": str(exc)})
            continue
        m.calibrate_distances(Xva, yva)
        level = m.decision_function(Xte)
        n_train = {"drop": int(np.sum(~np.isin(cats, ("easy", "hard"))))}.get(strategy, len(ytr))
        row = {
            "strategy": strategy,
            "n_train_pairs": n_train,
            "test_accuracy": float(accuracy_score(yte, level >= m.threshold_)),
            "test_auc": float(roc_auc_score(yte, level)),
        }
        row.update({f"weight.{k}": v for k, v in m.weights.items()})
        rows.append(row)
    df = pd.DataFrame(rows)
    if "baseline" in set(df["strategy"]) and "test_accuracy" in df:
        base = float(df.loc[df["strategy"] == "baseline", "test_accuracy"].iloc[0])
        df.insert(3, "delta_accuracy", df["test_accuracy"] - base)
    df.attrs["category_counts"] = category_counts(cats)
    return df
