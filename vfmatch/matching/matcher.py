"""The metaproperty matcher: distances, a classifier, weights and a threshold.

This is the patent's method (US 12,217,549, claims 1-5 and 7-11, FIG. 1 and 3-5):

1. For a voice and a face, take one distance per metaproperty between the
   voice's distribution and the face's (:mod:`vfmatch.distances`). Stacked,
   they form the *distance vector* ``d`` of shape ``(n_metaproperties,)``.
2. Train a binary classifier on the distance vectors of balanced matching /
   unmatching pairs (logistic regression by default; gradient boosting and a
   random forest as options).
3. Derive one weight per metaproperty from the classifier.
4. The *level of match* is the weighted sum of the distances; a pair is a match
   when the level reaches a threshold chosen on a validation split.

Weights
-------
**Logistic regression** -- exactly as the patent says: ``w_m = beta_m * sigma_m``,
the coefficient of metaproperty ``m`` times the standard deviation (numpy's
``std``, ``ddof=0``) of that metaproperty's distances over the training pairs.
``w_m`` is the change in log-odds of "same person" when the distance grows by
one standard deviation, so weights of different metaproperties are comparable.

**Tree ensembles** have no coefficients. Their weight is the *permutation
importance* of the distance (scikit-learn's ``permutation_importance``, scored
by ROC AUC): how much the ensemble's AUC drops when that distance column is
shuffled among the pairs, breaking its link to the label. It measures how much
the fitted model *relies* on the metaproperty, not a causal effect, and it is
never negative once clipped at 0 (a negative drop is noise). Its sign is set
from the data: ``-1`` when mismatching pairs are farther apart on average (the
usual case), so both kinds of weight read the same way. The importance is
computed on the training pairs at ``fit`` and again on held-out pairs by
:meth:`MetapropertyMatcher.calibrate` (the pipeline does so).

Sign convention and level of match
----------------------------------
A distance is larger for a mismatch, so informative metaproperties get
**negative** weights. The level of match is::

    level(d) = sum_m  w_m * (d_m - mu_m) / sigma_m

with ``mu_m, sigma_m`` the mean and standard deviation of the training
distances (a metaproperty whose distances never vary gets ``0``). **Higher
means more likely the same person**; ``0`` is an average training pair; each
term is that metaproperty's *contribution*, positive when it argues for a
match. For logistic regression ``w_m (d_m - mu_m) / sigma_m = beta_m (d_m - mu_m)``,
so the level is the classifier's log-odds up to a constant: the weighted sum
*is* the classifier, and ranking by level is ranking by probability.

Uses (the patent's list): sort a face database by a voice
(:meth:`~MetapropertyMatcher.rank_faces`), sort a voice database by a face
(:meth:`~MetapropertyMatcher.rank_voices`), compare the probabilities that a
voice belongs to person A rather than B (:meth:`~MetapropertyMatcher.compare`),
and explain every decision per metaproperty (:meth:`~MetapropertyMatcher.explain`).

The *metaproperty table* every function takes is a ``dict`` mapping a
metaproperty name to an array of probabilities of shape ``(n_items, n_values)``
in the row order of ``population.voices`` (or ``.faces``), as returned by
:class:`vfmatch.extractors.ExtractorSet` or :func:`oracle_metaproperties`.

Book chapters: ``book/05_distances_and_weights.ipynb`` (distances, weights),
``book/07_matching_and_retrieval.ipynb`` (uses, explanations).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.metrics import roc_curve

from .distances import paired_distance, pairwise_distance, resolve_distances
from ..metaproperties import DEFAULT_METAPROPERTIES, get_metaproperty

__all__ = [
    "MetapropertyMatcher",
    "MatchExplanation",
    "CLASSIFIERS",
    "oracle_metaproperties",
    "noisy_metaproperties",
    "select_rows",
    "as_pairs",
]

CLASSIFIERS = ("logistic", "gradient_boosting", "random_forest")
MetapropertyTable = Mapping[str, np.ndarray]
_FORMAT_VERSION = 1


# ---------------------------------------------------------------------------
# Small helpers on metaproperty tables and pairs
# ---------------------------------------------------------------------------


def select_rows(table: MetapropertyTable, rows) -> dict[str, np.ndarray]:
    """The rows ``rows`` of every array of a metaproperty table."""
    rows = np.asarray(rows, dtype=np.int64)
    return {k: np.asarray(v)[rows] for k, v in table.items()}


def as_pairs(pairs) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(voice_index, face_index, label)`` from a :func:`vfmatch.make_pairs` frame
    or a tuple of two or three arrays (``label`` is None when absent)."""
    if isinstance(pairs, pd.DataFrame):
        for col in ("voice_index", "face_index"):
            if col not in pairs:
                raise ValueError(f"pairs: missing column {col!r} (expected the frame from vfmatch.make_pairs)")
        label = pairs["label"].to_numpy(dtype=np.int64) if "label" in pairs else None
        return pairs["voice_index"].to_numpy(np.int64), pairs["face_index"].to_numpy(np.int64), label
    if isinstance(pairs, (tuple, list)) and len(pairs) in (2, 3):
        vi, fi = np.asarray(pairs[0], np.int64), np.asarray(pairs[1], np.int64)
        label = np.asarray(pairs[2], np.int64) if len(pairs) == 3 else None
        if vi.shape != fi.shape or (label is not None and label.shape != vi.shape):
            raise ValueError("pairs: voice_index, face_index and label must have the same length")
        return vi, fi, label
    raise TypeError("pairs must be a DataFrame from vfmatch.make_pairs or a tuple (voice_index, face_index[, label])")


def _check_labels(y, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"labels: expected shape ({n},), got {y.shape}")
    y = y.astype(np.int64)
    if not set(np.unique(y)) <= {0, 1}:
        raise ValueError("labels must be 1 (same person) or 0 (different people)")
    if len(np.unique(y)) < 2:
        raise ValueError("need both matching (1) and unmatching (0) pairs to train or calibrate a matcher")
    return y


def _one_hot_from_index(idx: np.ndarray, n_values: int) -> np.ndarray:
    """Ground-truth indices as degenerate distributions; ``-1`` (unknown) becomes uniform."""
    out = np.zeros((len(idx), n_values), dtype=np.float64)
    known = idx >= 0
    out[np.flatnonzero(known), idx[known]] = 1.0
    out[~known] = 1.0 / n_values
    return out


def oracle_metaproperties(population, names: Sequence[str] | None = None) -> tuple[dict, dict]:
    """Ground-truth metaproperty tables: what a perfect extractor would return.

    Parameters
    ----------
    population : vfmatch.Population
    names : sequence of str, optional
        Metaproperties to include; default: those of the patent's list for
        which the population has ground truth.

    Returns
    -------
    (voice_table, face_table) : two dicts ``name -> (n_items, n_values)`` arrays
        of one-hot rows (uniform where the value is unknown), in the row order
        of ``population.voices`` and ``population.faces``.

    Feeding these to the matcher gives the *oracle bound*: the best the
    metaproperty approach can do on this population, whatever the extractors.
    """
    names = list(names) if names is not None else [n for n in DEFAULT_METAPROPERTIES if population.has_metaproperty(n)]
    voice, face = {}, {}
    for name in names:
        mp = get_metaproperty(name)
        voice[name] = _one_hot_from_index(population.labels(name, "voice"), mp.n_values)
        face[name] = _one_hot_from_index(population.labels(name, "face"), mp.n_values)
    return voice, face


def noisy_metaproperties(table: MetapropertyTable, noise: float = 1.0, *, sharpness: float = 3.0, seed: int = 0) -> dict:
    """Blur a (ground-truth) table the way an imperfect extractor would.

    Each row becomes ``softmax(sharpness * row + noise * N(0, 1))``: with
    ``noise=0`` a sharp distribution on the true value; as ``noise`` grows the
    top value is more and more often wrong. Used by the tests and the book to
    study how extractor quality limits matching, without training extractors.
    """
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    out = {}
    for name, p in table.items():
        logits = sharpness * np.asarray(p, dtype=np.float64) + noise * rng.standard_normal(np.shape(p))
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        out[name] = e / e.sum(axis=1, keepdims=True)
    return out


# ---------------------------------------------------------------------------
# Explanations
# ---------------------------------------------------------------------------


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
        ``contribution`` (``weight * standardized``; they sum to ``level``).
    voice, face : dict
        Both sides' full distributions, ``name -> {value label: probability}``.
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

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def to_text(self) -> str:
        """A few lines a person can read."""
        verdict = "MATCH" if self.decision else "no match"
        prob = f", classifier probability {self.probability:.2f}" if self.probability is not None else ""
        lines = [
            f"voice {self.voice_index} vs face {self.face_index}: level of match {self.level:+.2f} "
            f"(threshold {self.threshold:+.2f}) -> {verdict}{prob}"
        ]
        for r in self.table.sort_values("contribution", key=np.abs, ascending=False).itertuples():
            lines.append(
                f"  {r.metaproperty:<14} voice {r.voice_top:<26} face {r.face_top:<26} "
                f"{r.distance_function} {r.distance:.3f}  weight {r.weight:+.2f}  contribution {r.contribution:+.2f}"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


# ---------------------------------------------------------------------------
# The matcher
# ---------------------------------------------------------------------------


class MetapropertyMatcher(BaseEstimator):
    """Weighted sum of per-metaproperty distances, weights from a binary classifier.

    Parameters
    ----------
    metaproperties : sequence of str, optional
        Which metaproperties to use, in order. Default: every metaproperty of the
        patent's list present in the tables given to :meth:`fit_pairs`.
    distance : str or dict, default "auto"
        ``"auto"`` (earth mover's for ordered values, Jensen-Shannon otherwise),
        one name for all (``"euclidean"``, ``"cosine"`` -- the patent's examples --
        ``"jensen_shannon"``, ``"hellinger"``, ``"emd"``), or ``{name: distance}``.
    classifier : {"logistic", "gradient_boosting", "random_forest"}
    threshold_rule : {"eer", "fmr"}
        How :meth:`calibrate` picks the threshold: at the equal error rate, or
        at the largest true-match rate whose false-match rate is at most ``target_fmr``.
    target_fmr : float
        False-match rate for ``threshold_rule="fmr"``.
    C : float
        Inverse L2 regularisation strength of the logistic regression.
    n_estimators, max_depth : int
        Size of the tree ensembles.
    curriculum_epochs : int
        Epochs per stage when a logistic matcher is trained by curriculum
        (:mod:`vfmatch.difficulty`); plain training uses an exact solver.
    random_state : int

    Attributes (after fitting)
    --------------------------
    metaproperties_ : list of str
    distances_ : dict, metaproperty -> distance name
    mean_, std_ : arrays, shape (n_metaproperties,)
        Mean and standard deviation (``ddof=0``) of the training distances.
    coef_, intercept_ : logistic coefficients on the raw distances (logistic only)
    weights_ : array, shape (n_metaproperties,)
        ``coef_ * std_`` (logistic) or signed permutation importance (trees).
    threshold_ : float
        Decision threshold on the level of match.
    classifier_ : the fitted scikit-learn estimator (not saved by :meth:`save`)
    """

    def __init__(
        self,
        metaproperties: Sequence[str] | None = None,
        distance: str | Mapping[str, str] = "auto",
        classifier: str = "logistic",
        threshold_rule: str = "eer",
        target_fmr: float = 0.01,
        C: float = 1.0,
        n_estimators: int = 100,
        max_depth: int = 3,
        curriculum_epochs: int = 20,
        random_state: int = 0,
    ):
        self.metaproperties = metaproperties
        self.distance = distance
        self.classifier = classifier
        self.threshold_rule = threshold_rule
        self.target_fmr = target_fmr
        self.C = C
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.curriculum_epochs = curriculum_epochs
        self.random_state = random_state

    # ----------------------------------------------------------- set-up
    def _resolve_names(self, table: MetapropertyTable | None = None) -> list[str]:
        if self.metaproperties is not None:
            names = [get_metaproperty(n).name for n in self.metaproperties]
        elif table is not None:
            names = [n for n in DEFAULT_METAPROPERTIES if n in table] + [
                n for n in table if n not in DEFAULT_METAPROPERTIES
            ]
        else:
            raise ValueError("metaproperties=None: give the metaproperty names, or fit with fit_pairs() on tables")
        if not names:
            raise ValueError("no metaproperties to match on")
        return names

    def _check_params(self) -> None:
        if self.classifier not in CLASSIFIERS:
            raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {self.classifier!r}")
        if self.threshold_rule not in ("eer", "fmr"):
            raise ValueError(f"threshold_rule must be 'eer' or 'fmr', got {self.threshold_rule!r}")
        if not 0.0 < float(self.target_fmr) < 1.0:
            raise ValueError(f"target_fmr must be in (0, 1), got {self.target_fmr}")

    def _new_classifier(self, staged: bool = False):
        from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
        from sklearn.linear_model import LogisticRegression, SGDClassifier

        if self.classifier == "logistic":
            if staged:  # an incremental learner, so that the order of the stages matters
                return SGDClassifier(loss="log_loss", random_state=self.random_state)
            return LogisticRegression(C=float(self.C), max_iter=2000)
        if self.classifier == "gradient_boosting":
            return GradientBoostingClassifier(
                n_estimators=int(self.n_estimators), max_depth=int(self.max_depth), random_state=self.random_state,
                warm_start=staged,
            )
        return RandomForestClassifier(
            n_estimators=int(self.n_estimators), min_samples_leaf=10, random_state=self.random_state, n_jobs=1,
            warm_start=staged,
        )

    def _is_fitted(self) -> bool:
        return hasattr(self, "weights_")

    def _require_fitted(self) -> None:
        if not self._is_fitted():
            raise RuntimeError("this MetapropertyMatcher is not fitted yet; call fit() or fit_pairs() first")

    # ----------------------------------------------------------- distances
    def pair_distances(self, voice_table: MetapropertyTable, face_table: MetapropertyTable, voice_index, face_index) -> np.ndarray:
        """Distance vectors of (voice, face) pairs.

        Parameters
        ----------
        voice_table, face_table : metaproperty tables
        voice_index, face_index : int arrays, shape (n,)
            Rows of the two tables forming the pairs.

        Returns
        -------
        np.ndarray, shape (n, n_metaproperties), in the order of ``metaproperties_``
        (before fitting: of ``metaproperties`` or the tables' keys).
        """
        if self._is_fitted():
            dists = self.distances_
        else:
            dists = resolve_distances(self._resolve_names(voice_table), self.distance)
        return self._distance_vectors(voice_table, face_table, voice_index, face_index, dists)

    def _distance_vectors(self, voice_table, face_table, voice_index, face_index, dists: Mapping[str, str]) -> np.ndarray:
        vi = np.atleast_1d(np.asarray(voice_index, dtype=np.int64))
        fi = np.atleast_1d(np.asarray(face_index, dtype=np.int64))
        cols = []
        for name, dist in dists.items():
            p, q = self._sides(voice_table, face_table, name)
            cols.append(paired_distance(dist, p[vi], q[fi]))
        return np.stack(cols, axis=1)

    @staticmethod
    def _sides(voice_table, face_table, name):
        for side, table in (("voice", voice_table), ("face", face_table)):
            if name not in table:
                raise KeyError(f"the {side} metaproperty table has no {name!r}; it has {sorted(table)}")
        p, q = np.asarray(voice_table[name], np.float64), np.asarray(face_table[name], np.float64)
        mp = get_metaproperty(name)
        if p.ndim != 2 or q.ndim != 2 or p.shape[1] != mp.n_values or q.shape[1] != mp.n_values:
            raise ValueError(
                f"metaproperty {name!r}: expected (n, {mp.n_values}) probabilities on both sides, got {p.shape} and {q.shape}"
            )
        return p, q

    # ----------------------------------------------------------- training
    def fit(self, X, y, sample_weight=None, *, stages: Sequence[np.ndarray] | None = None):
        """Train on distance vectors (scikit-learn style).

        Parameters
        ----------
        X : array, shape (n_pairs, n_metaproperties)
            Distance vectors, columns in the order of ``metaproperties``.
        y : array, shape (n_pairs,)
            1 = same person, 0 = different people.
        sample_weight : array, shape (n_pairs,), optional
            Per-pair weights (difficulty-adjusted training, :mod:`vfmatch.difficulty`).
        stages : list of index arrays, optional
            Train incrementally on these subsets in order (curriculum learning,
            :func:`vfmatch.difficulty.retrain`): a logistic matcher runs
            ``curriculum_epochs`` SGD epochs per stage; a tree ensemble grows an
            equal share of its trees on each stage.

        The weights are derived from the fitted classifier (module docstring)
        and a provisional threshold is set at the equal error rate on the
        training pairs; :meth:`calibrate` replaces it using held-out pairs.
        """
        return self._fit(np.asarray(X, dtype=np.float64), y, self._resolve_names(None), sample_weight, stages)

    def fit_pairs(self, voice_table: MetapropertyTable, face_table: MetapropertyTable, pairs, *, sample_weight=None, stages=None):
        """Train on labelled pairs of two metaproperty tables (the patent's FIG. 4).

        ``pairs`` is the frame from :func:`vfmatch.make_pairs` (``voice_index``,
        ``face_index``, ``label``) or a tuple of three arrays."""
        vi, fi, y = as_pairs(pairs)
        if y is None:
            raise ValueError("pairs: training needs a label for every pair")
        names = self._resolve_names(voice_table)
        X = self._distance_vectors(voice_table, face_table, vi, fi, resolve_distances(names, self.distance))
        return self._fit(X, y, names, sample_weight, stages)

    def _fit(self, D, y, names, sample_weight, stages):
        self._check_params()
        if D.ndim != 2 or D.shape[1] != len(names):
            raise ValueError(f"distance vectors: expected shape (n_pairs, {len(names)}) for {names}, got {D.shape}")
        if not np.all(np.isfinite(D)):
            raise ValueError("distance vectors contain NaN or inf")
        y = _check_labels(y, D.shape[0])
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight, dtype=np.float64)
            if sample_weight.shape != y.shape or np.any(sample_weight < 0):
                raise ValueError("sample_weight must be non-negative with one value per pair")
        self.metaproperties_ = list(names)
        self.distances_ = resolve_distances(names, self.distance)
        self.mean_ = D.mean(axis=0)
        self.std_ = D.std(axis=0)
        clf = self._new_classifier(staged=stages is not None)
        if stages is None:
            clf.fit(D, y, sample_weight=sample_weight)
        else:
            self._fit_staged(clf, D, y, sample_weight, stages)
        self.classifier_ = clf
        if hasattr(clf, "coef_"):
            self.coef_ = np.asarray(clf.coef_, dtype=np.float64).ravel()
            self.intercept_ = float(np.ravel(clf.intercept_)[0])
            self.weight_method_ = "coefficient_x_std"
        else:
            self.weight_method_ = "permutation_importance_auc"
        self.weights_ = self._derive_weights(D, y)
        self.n_train_pairs_ = int(D.shape[0])
        self._set_threshold(self.decision_function(D), y, source="training pairs")
        return self

    def _fit_staged(self, clf, D, y, sample_weight, stages):
        stages = [np.asarray(s, dtype=np.int64) for s in stages if len(s)]
        if not stages:
            raise ValueError("stages: every stage is empty")
        rng = np.random.default_rng(self.random_state)
        if self.classifier == "logistic":
            # The same objective as LogisticRegression(C): mean log-loss + ||w||^2 / (2 C n).
            clf.set_params(alpha=1.0 / (float(self.C) * len(y)))
            for idx in stages:
                for _ in range(int(self.curriculum_epochs)):
                    order = idx[rng.permutation(len(idx))]
                    sw = None if sample_weight is None else sample_weight[order]
                    clf.partial_fit(D[order], y[order], classes=np.array([0, 1]), sample_weight=sw)
            return
        per_stage = max(1, int(self.n_estimators) // len(stages))
        for k, idx in enumerate(stages):
            if len(np.unique(y[idx])) < 2:  # a tree stage needs both classes; merge it into the next
                continue
            clf.set_params(n_estimators=per_stage * (k + 1) if k < len(stages) - 1 else int(self.n_estimators))
            sw = None if sample_weight is None else sample_weight[idx]
            clf.fit(D[idx], y[idx], sample_weight=sw)
        if not hasattr(clf, "estimators_"):
            raise ValueError("stages: no stage had both matching and unmatching pairs")

    def _derive_weights(self, D, y) -> np.ndarray:
        if self.weight_method_ == "coefficient_x_std":
            # The patent: "the coefficients of the logistic regression, each
            # multiplied by the standard deviation of the corresponding component".
            return self.coef_ * self.std_
        from sklearn.inspection import permutation_importance

        imp = permutation_importance(
            self.classifier_, D, y, scoring="roc_auc", n_repeats=5, random_state=self.random_state, n_jobs=1
        ).importances_mean
        gap = D[y == 0].mean(axis=0) - D[y == 1].mean(axis=0)
        sign = np.where(gap >= 0, -1.0, 1.0)  # farther apart for mismatches -> negative weight
        self.importances_ = np.clip(imp, 0.0, None)
        return sign * self.importances_

    # ----------------------------------------------------------- scoring
    def _standardize(self, D: np.ndarray) -> np.ndarray:
        safe = np.where(self.std_ > 0, self.std_, 1.0)
        return np.where(self.std_ > 0, (D - self.mean_) / safe, 0.0)

    def decision_function(self, X) -> np.ndarray:
        """Level of match of distance vectors ``X`` (n, n_metaproperties) -> (n,). Higher = more alike."""
        self._require_fitted()
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.metaproperties_):
            raise ValueError(f"distance vectors: expected shape (n, {len(self.metaproperties_)}), got {X.shape}")
        return self._standardize(X) @ self.weights_

    def contributions(self, X) -> np.ndarray:
        """Per-metaproperty terms of the level of match, shape (n, n_metaproperties); rows sum to the level."""
        self._require_fitted()
        return self._standardize(np.asarray(X, dtype=np.float64)) * self.weights_

    def predict_proba(self, X) -> np.ndarray:
        """The classifier's probabilities ``[P(different), P(same)]``, shape (n, 2).

        Trained on balanced pairs, so the prior is 50/50. A logistic matcher
        loaded from disk recomputes them from its saved coefficients."""
        self._require_fitted()
        X = np.asarray(X, dtype=np.float64)
        if hasattr(self, "coef_"):
            p1 = 1.0 / (1.0 + np.exp(-(X @ self.coef_ + self.intercept_)))
            return np.stack([1.0 - p1, p1], axis=1)
        if not hasattr(self, "classifier_"):
            raise RuntimeError(
                "this tree-ensemble matcher was loaded from disk: the ensemble itself is not saved (no pickles), "
                "so only the weighted-sum level of match, decisions and explanations are available"
            )
        return self.classifier_.predict_proba(X)

    def predict(self, X) -> np.ndarray:
        """Match (1) / no match (0): ``level >= threshold_``."""
        return (self.decision_function(X) >= self.threshold_).astype(np.int64)

    def level_of_match(self, voice_table, face_table, voice_index, face_index) -> np.ndarray:
        """Level of match of (voice, face) pairs given by row indices, shape (n,)."""
        self._require_fitted()
        return self.decision_function(self.pair_distances(voice_table, face_table, voice_index, face_index))

    def decide(self, voice_table, face_table, voice_index, face_index) -> np.ndarray:
        """Boolean match decisions for (voice, face) pairs, shape (n,)."""
        return self.level_of_match(voice_table, face_table, voice_index, face_index) >= self.threshold_

    def similarity_matrix(self, voice_table, face_table, voice_rows=None, face_rows=None) -> np.ndarray:
        """Level of match of every voice against every face, shape (n_voices, n_faces).

        Distances are computed per metaproperty as whole (n_voices, n_faces)
        blocks (:func:`vfmatch.distances.pairwise_distance`), never pair by pair.
        ``voice_rows`` / ``face_rows`` restrict it to some rows."""
        self._require_fitted()
        out = None
        for m, name in enumerate(self.metaproperties_):
            p, q = self._sides(voice_table, face_table, name)
            if voice_rows is not None:
                p = p[np.asarray(voice_rows, np.int64)]
            if face_rows is not None:
                q = q[np.asarray(face_rows, np.int64)]
            if out is None:
                out = np.zeros((p.shape[0], q.shape[0]))
            if self.std_[m] > 0 and self.weights_[m] != 0:
                out += self.weights_[m] * (pairwise_distance(self.distances_[name], p, q) - self.mean_[m]) / self.std_[m]
        return out

    # ----------------------------------------------------------- threshold
    def _set_threshold(self, level, y, source: str) -> None:
        fpr, tpr, thr = roc_curve(y, level)
        thr = np.where(np.isinf(thr), np.max(level) + 1e-9, thr)
        if self.threshold_rule == "eer":
            i = int(np.argmin(np.abs(fpr - (1.0 - tpr))))
        else:
            ok = np.flatnonzero(fpr <= float(self.target_fmr))
            i = int(ok[np.argmax(tpr[ok])])
        # Every threshold in (thr[i + 1], thr[i]] makes the same decisions on these
        # pairs; the midpoint leaves a margin on both sides for new pairs (with a
        # perfect separation thr[i] is exactly the lowest matching score).
        self.threshold_ = float((thr[i] + thr[i + 1]) / 2 if i + 1 < len(thr) else thr[i])
        decided = level >= self.threshold_
        self.calibration_ = {
            "source": source,
            "rule": self.threshold_rule,
            "target_fmr": float(self.target_fmr) if self.threshold_rule == "fmr" else None,
            "n_pairs": int(len(y)),
            "false_match_rate": float(np.mean(decided[y == 0])),
            "false_non_match_rate": float(np.mean(~decided[y == 1])),
        }

    def calibrate(self, voice_table, face_table, pairs):
        """Choose the threshold on held-out labelled pairs (a validation split).

        For tree ensembles the permutation-importance weights are recomputed on
        these held-out pairs first, so the weights describe generalisation, not
        memorisation of the training pairs."""
        vi, fi, y = as_pairs(pairs)
        if y is None:
            raise ValueError("pairs: calibration needs a label for every pair")
        return self.calibrate_distances(self.pair_distances(voice_table, face_table, vi, fi), y)

    def calibrate_distances(self, X, y):
        """:meth:`calibrate` on distance vectors."""
        self._require_fitted()
        X = np.asarray(X, dtype=np.float64)
        y = _check_labels(y, X.shape[0])
        if self.weight_method_ != "coefficient_x_std" and hasattr(self, "classifier_"):
            self.weights_ = self._derive_weights(X, y)
        self._set_threshold(self.decision_function(X), y, source="held-out pairs")
        return self

    @property
    def weights(self) -> dict[str, float]:
        """``{metaproperty: weight}`` (negative = larger distance argues against a match)."""
        self._require_fitted()
        return {n: float(w) for n, w in zip(self.metaproperties_, self.weights_)}

    def weights_frame(self) -> pd.DataFrame:
        """Weights with their ingredients, one row per metaproperty."""
        self._require_fitted()
        df = pd.DataFrame(
            {
                "metaproperty": self.metaproperties_,
                "distance_function": [self.distances_[n] for n in self.metaproperties_],
                "weight": self.weights_,
                "distance_mean": self.mean_,
                "distance_std": self.std_,
            }
        )
        if hasattr(self, "coef_"):
            df["coefficient"] = self.coef_
        if hasattr(self, "importances_"):
            df["permutation_importance"] = self.importances_
        return df

    # ----------------------------------------------------------- uses
    def explain(self, voice_table, face_table, voice_index: int, face_index: int) -> MatchExplanation:
        """Per-metaproperty account of one decision: both distributions, the
        distances, the weights and each one's contribution to the level."""
        self._require_fitted()
        vi, fi = int(voice_index), int(face_index)
        D = self.pair_distances(voice_table, face_table, [vi], [fi])
        contrib = self.contributions(D)[0]
        rows, voice, face = [], {}, {}
        for m, name in enumerate(self.metaproperties_):
            mp = get_metaproperty(name)
            p, q = self._sides(voice_table, face_table, name)
            voice[name] = dict(zip(mp.values, map(float, p[vi])))
            face[name] = dict(zip(mp.values, map(float, q[fi])))
            rows.append(
                {
                    "metaproperty": name,
                    "distance_function": self.distances_[name],
                    "voice_top": f"{mp.values[int(np.argmax(p[vi]))]} ({p[vi].max():.2f})",
                    "face_top": f"{mp.values[int(np.argmax(q[fi]))]} ({q[fi].max():.2f})",
                    "distance": float(D[0, m]),
                    "mean": float(self.mean_[m]),
                    "std": float(self.std_[m]),
                    "standardized": float(self._standardize(D)[0, m]),
                    "weight": float(self.weights_[m]),
                    "contribution": float(contrib[m]),
                }
            )
        level = float(contrib.sum())
        try:
            prob = float(self.predict_proba(D)[0, 1])
        except RuntimeError:
            prob = None
        return MatchExplanation(vi, fi, level, self.threshold_, level >= self.threshold_, prob, pd.DataFrame(rows), voice, face)

    def rank_faces(self, voice_table, face_table, voice_index: int, face_rows=None, top_k: int | None = None) -> pd.DataFrame:
        """Sort a face database by a voice (the patent's "face database sorting").

        Returns a frame sorted by decreasing level: ``rank`` (1 = best),
        ``face_index``, ``level``, ``match`` (level >= threshold) and, when
        available, ``probability``."""
        rows = np.arange(len(next(iter(face_table.values())))) if face_rows is None else np.asarray(face_rows, np.int64)
        level = self.similarity_matrix(voice_table, face_table, [int(voice_index)], rows)[0]
        return self._ranked(level, rows, "face_index", voice_table, face_table, voice_index, top_k, voice_side=True)

    def rank_voices(self, voice_table, face_table, face_index: int, voice_rows=None, top_k: int | None = None) -> pd.DataFrame:
        """Sort a voice database by a face (the patent's "voice database sorting")."""
        rows = np.arange(len(next(iter(voice_table.values())))) if voice_rows is None else np.asarray(voice_rows, np.int64)
        level = self.similarity_matrix(voice_table, face_table, rows, [int(face_index)])[:, 0]
        return self._ranked(level, rows, "voice_index", voice_table, face_table, face_index, top_k, voice_side=False)

    def _ranked(self, level, rows, col, voice_table, face_table, anchor, top_k, voice_side):
        order = np.argsort(-level, kind="stable")
        if top_k is not None:
            order = order[: int(top_k)]
        df = pd.DataFrame({"rank": np.arange(1, len(order) + 1), col: rows[order], "level": level[order]})
        df["match"] = df["level"] >= self.threshold_
        if hasattr(self, "coef_") or hasattr(self, "classifier_"):
            vi = np.full(len(df), int(anchor)) if voice_side else df[col].to_numpy()
            fi = df[col].to_numpy() if voice_side else np.full(len(df), int(anchor))
            df["probability"] = self.predict_proba(self.pair_distances(voice_table, face_table, vi, fi))[:, 1]
        return df

    def compare(self, voice_table, face_table, voice_index: int, face_a: int, face_b: int) -> dict:
        """How much more likely is the voice person A's than person B's?

        Returns the two levels and probabilities, the odds ratio
        ``odds(A) / odds(B)``, and ``p_a_rather_than_b``: the probability that the
        voice is A's *given that it is exactly one of the two* (independent
        pairs), ``odds_ratio / (1 + odds_ratio)``. For a logistic matcher it
        equals ``sigmoid(level_A - level_B)``; the balanced training prior cancels."""
        D = self.pair_distances(voice_table, face_table, [int(voice_index)] * 2, [int(face_a), int(face_b)])
        level = self.decision_function(D)
        p = np.clip(self.predict_proba(D)[:, 1], 1e-12, 1 - 1e-12)
        log_or = float(np.log(p[0] / (1 - p[0])) - np.log(p[1] / (1 - p[1])))
        return {
            "voice_index": int(voice_index),
            "face_a": int(face_a),
            "face_b": int(face_b),
            "level_a": float(level[0]),
            "level_b": float(level[1]),
            "probability_a": float(p[0]),
            "probability_b": float(p[1]),
            "odds_ratio": float(np.exp(log_or)),
            "p_a_rather_than_b": float(1.0 / (1.0 + np.exp(-log_or))),
        }

    # ----------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        """Everything needed to score and explain, as JSON-ready values."""
        self._require_fitted()
        d = {
            "format": "vfmatch.MetapropertyMatcher",
            "format_version": _FORMAT_VERSION,
            "params": {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in self.get_params().items()},
            "metaproperties": self.metaproperties_,
            "distances": self.distances_,
            "weight_method": self.weight_method_,
            "weights": self.weights_.tolist(),
            "distance_mean": self.mean_.tolist(),
            "distance_std": self.std_.tolist(),
            "threshold": self.threshold_,
            "calibration": self.calibration_,
            "n_train_pairs": self.n_train_pairs_,
        }
        if hasattr(self, "coef_"):
            d["coefficients"] = self.coef_.tolist()
            d["intercept"] = self.intercept_
        if hasattr(self, "importances_"):
            d["permutation_importances"] = self.importances_.tolist()
        return d

    def save(self, folder: str | Path) -> Path:
        """Write ``matcher.json`` into ``folder`` (created if needed). No pickles:
        a tree ensemble's trees are not saved, only its weights and threshold."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "matcher.json"
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def load(cls, folder: str | Path) -> "MetapropertyMatcher":
        """Inverse of :meth:`save`."""
        path = Path(folder)
        path = path / "matcher.json" if path.is_dir() else path
        if not path.exists():
            raise FileNotFoundError(f"{path}: no saved matcher here (expected matcher.json written by MetapropertyMatcher.save)")
        d = json.loads(path.read_text())
        if d.get("format") != "vfmatch.MetapropertyMatcher":
            raise ValueError(f"{path}: not a saved vfmatch matcher")
        m = cls(**d["params"])
        m.metaproperties_ = list(d["metaproperties"])
        m.distances_ = dict(d["distances"])
        m.weight_method_ = d["weight_method"]
        m.weights_ = np.asarray(d["weights"], dtype=np.float64)
        m.mean_ = np.asarray(d["distance_mean"], dtype=np.float64)
        m.std_ = np.asarray(d["distance_std"], dtype=np.float64)
        m.threshold_ = float(d["threshold"])
        m.calibration_ = d.get("calibration", {})
        m.n_train_pairs_ = int(d.get("n_train_pairs", 0))
        if "coefficients" in d:
            m.coef_ = np.asarray(d["coefficients"], dtype=np.float64)
            m.intercept_ = float(d["intercept"])
        if "permutation_importances" in d:
            m.importances_ = np.asarray(d["permutation_importances"], dtype=np.float64)
        return m
