"""The metaproperty matcher: distances, a classifier, weights and a threshold.

This is the patent's method (US 12,217,549, claims 1-5 and 7-11, FIG. 1 and 3-5):

1. For a voice and a face, take one distance per metaproperty between the
   voice's distribution and the face's (:mod:`vfmatch.matching.distances`).
   Stacked, they form the *distance vector* ``d`` of shape ``(n_metaproperties,)``.
2. Train a binary classifier on the distance vectors of balanced matching /
   unmatching pairs (logistic regression by default; gradient boosting, a
   random forest or any classifier added with
   :func:`vfmatch.matching.classifiers.register_classifier`).
3. Derive one weight per metaproperty from the classifier.
4. The *level of match* of a pair is a score, higher for the same person; a
   pair is a match when the level reaches a threshold chosen on a validation split.

Level of match
--------------
It is the classifier's log-odds of "same person", measured from an average
training pair (every distance at its training mean ``mu``)::

    level(d) = logit P(same | d) - logit P(same | mu)

so ranking by level is ranking by the classifier's probability, ``0`` is an
average training pair, and :meth:`MetapropertyMatcher.predict_proba` and the
level always agree. A tree ensemble's probability can be exactly 0 or 1, so it
is clipped to ``[1e-6, 1 - 1e-6]`` before the logit (levels lie within ±27.6).

**Logistic regression** -- exactly the patent: the weight of metaproperty ``m``
is ``w_m = beta_m * sigma_m``, its coefficient times the standard deviation
(numpy's ``std``, ``ddof=0``) of its distances over the training pairs, and
because ``logit P(same | d) = beta . d + b`` the level above *is* the patent's
weighted sum of standardized distances::

    level(d) = sum_m  w_m * (d_m - mu_m) / sigma_m

(a metaproperty whose distances never vary gets ``0``). ``w_m`` is the change in
log-odds when that distance grows by one standard deviation, so weights of
different metaproperties are comparable; each term is that metaproperty's
*contribution*, positive when it argues for a match.

**Tree ensembles** (gradient boosting, random forest) have no coefficients,
and their level is no weighted sum: decisions, AUC and rankings come from the
fitted ensemble's own ``predict_proba``. Their *weight* is the permutation
importance of the distance (scikit-learn's ``permutation_importance``, scored
by ROC AUC): how much the ensemble's AUC drops when that distance column is
shuffled among the pairs, breaking its link to the label. It measures how much
the fitted model *relies* on the metaproperty, not a causal effect, and it is
never negative once clipped at 0 (a negative drop is noise). Its sign is set
from the data: ``-1`` when mismatching pairs are farther apart on average (the
usual case), so both kinds of weight read the same way. The importance is
computed on the training pairs at ``fit`` and again on held-out pairs by
:meth:`MetapropertyMatcher.calibrate` (the pipeline does so). A tree matcher's
contributions are Shapley values of its level (:mod:`vfmatch.matching.explain`).

The threshold (:mod:`vfmatch.matching.threshold`) sits at the equal error rate
of :func:`vfmatch.evaluation.metrics.equal_error_rate` on held-out pairs, or at
a target false-match rate.

Uses (the patent's list): sort a face database by a voice
(:meth:`~MetapropertyMatcher.rank_faces`), sort a voice database by a face
(:meth:`~MetapropertyMatcher.rank_voices`), compare the probabilities that a
voice belongs to person A rather than B (:meth:`~MetapropertyMatcher.compare`),
and explain every decision per metaproperty (:meth:`~MetapropertyMatcher.explain`).

Every function takes *metaproperty tables* (``dict`` name -> ``(n_items,
n_values)`` probabilities, :mod:`vfmatch.matching.tables`) and labelled pairs.

Book chapters: ``book/05_distances_and_weights.ipynb`` (distances, weights,
threshold), ``book/07_matching_and_retrieval.ipynb`` (uses, explanations).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.inspection import permutation_importance

from ..metaproperties import DEFAULT_METAPROPERTIES, get_metaproperty
from .classifiers import create_classifier, list_classifiers
from .distances import paired_distance, pairwise_distance, resolve_distances
from .explain import MatchExplanation, build_explanation, shapley_contributions
from .persist import load_matcher, matcher_to_dict, save_matcher
from .tables import MetapropertyTable, as_pairs, check_labels, is_embedding_column, table_sides
from .threshold import THRESHOLD_RULES, choose_threshold

__all__ = ["MetapropertyMatcher"]

_P_CLIP = 1e-6  # a tree ensemble's P(same) is clipped to [_P_CLIP, 1 - _P_CLIP] before the logit


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _P_CLIP, 1.0 - _P_CLIP)
    return np.log(p / (1.0 - p))


class MetapropertyMatcher(BaseEstimator):
    """Per-metaproperty distances -> a binary classifier -> level of match, weights, threshold.

    Parameters
    ----------
    metaproperties : sequence of str, optional
        Which metaproperties to use, in order. Default: every metaproperty of the
        patent's list present in the tables given to :meth:`fit_pairs`.
    distance : str or dict, default "auto"
        ``"auto"`` (earth mover's for ordered values, Jensen-Shannon otherwise),
        one registered name for all (``"euclidean"``, ``"cosine"`` -- the
        patent's examples -- ``"jensen_shannon"``, ``"hellinger"``, ``"emd"``;
        :func:`vfmatch.matching.distances.list_distances`), or ``{name: distance}``.
    classifier : str, default "logistic"
        A registered classifier (:func:`vfmatch.matching.classifiers.list_classifiers`):
        ``"logistic"``, ``"gradient_boosting"``, ``"random_forest"``.
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
        (:mod:`vfmatch.matching.difficulty`); plain training uses an exact solver.
    random_state : int

    Attributes (after fitting)
    --------------------------
    metaproperties_ : list of str
    distances_ : dict, metaproperty -> distance name
    mean_, std_ : arrays, shape (n_metaproperties,)
        Mean and standard deviation (``ddof=0``) of the training distances.
    coef_, intercept_ : logistic coefficients on the raw distances (linear classifiers only)
    weights_ : array, shape (n_metaproperties,)
        ``coef_ * std_`` (linear) or signed permutation importance (trees).
    weight_method_ : ``"coefficient_x_std"`` or ``"permutation_importance_auc"``
    baseline_logit_ : float
        ``logit P(same | mean_)``, the zero of the level (tree ensembles only).
    threshold_ : float
        Decision threshold on the level of match.
    calibration_ : dict
        Where and how the threshold was chosen: ``eer`` (of the level on those
        pairs, :func:`vfmatch.evaluation.metrics.equal_error_rate`) and the
        ``false_match_rate`` / ``false_non_match_rate`` at the threshold.
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
            names = [n if is_embedding_column(n) else get_metaproperty(n).name for n in self.metaproperties]
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
        if self.classifier not in list_classifiers():
            raise ValueError(f"classifier must be one of {list_classifiers()}, got {self.classifier!r}")
        if self.threshold_rule not in THRESHOLD_RULES:
            raise ValueError(f"threshold_rule must be one of {THRESHOLD_RULES}, got {self.threshold_rule!r}")
        if not 0.0 < float(self.target_fmr) < 1.0:
            raise ValueError(f"target_fmr must be in (0, 1), got {self.target_fmr}")

    def _new_classifier(self, staged: bool = False):
        return create_classifier(self.classifier, C=self.C, n_estimators=self.n_estimators, max_depth=self.max_depth,
                                 random_state=self.random_state, staged=staged)

    def _is_fitted(self) -> bool:
        return hasattr(self, "weights_")

    def _require_fitted(self) -> None:
        if not self._is_fitted():
            raise RuntimeError("this MetapropertyMatcher is not fitted yet; call fit() or fit_pairs() first")

    @property
    def is_linear(self) -> bool:
        """True when the classifier is linear (weights = coefficient x std, level = weighted sum)."""
        self._require_fitted()
        return self.weight_method_ == "coefficient_x_std"

    def _require_ensemble(self) -> None:
        if not hasattr(self, "classifier_"):
            raise RuntimeError(
                "this tree-ensemble matcher was loaded from disk: the ensemble itself is not saved (no pickles), "
                "so it cannot score pairs; refit it (its weights, threshold and calibration are in matcher.json)"
            )

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

    @staticmethod
    def _distance_vectors(voice_table, face_table, voice_index, face_index, dists: Mapping[str, str]) -> np.ndarray:
        vi = np.atleast_1d(np.asarray(voice_index, dtype=np.int64))
        fi = np.atleast_1d(np.asarray(face_index, dtype=np.int64))
        cols = []
        for name, dist in dists.items():
            p, q = table_sides(voice_table, face_table, name)
            cols.append(paired_distance(dist, p[vi], q[fi]))
        return np.stack(cols, axis=1)

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
            Per-pair weights (difficulty-adjusted training, :mod:`vfmatch.matching.difficulty`).
        stages : list of index arrays, optional
            Train incrementally on these subsets in order (curriculum learning,
            :func:`vfmatch.matching.difficulty.retrain`): a classifier with
            ``partial_fit`` (the logistic one) runs ``curriculum_epochs`` SGD
            epochs per stage; a tree ensemble grows an equal share of its trees
            on each stage.

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
        y = check_labels(y, D.shape[0])
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight, dtype=np.float64)
            if sample_weight.shape != y.shape or np.any(sample_weight < 0):
                raise ValueError("sample_weight must be non-negative with one value per pair")
        for stale in ("coef_", "intercept_", "importances_", "baseline_logit_"):  # from an earlier fit
            self.__dict__.pop(stale, None)
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
            self.baseline_logit_ = float(self._ensemble_logit(self.mean_[None])[0])
        self.weights_ = self._derive_weights(D, y)
        self.n_train_pairs_ = int(D.shape[0])
        self._set_threshold(self.decision_function(D), y, source="training pairs")
        return self

    def _fit_staged(self, clf, D, y, sample_weight, stages):
        stages = [np.asarray(s, dtype=np.int64) for s in stages if len(s)]
        if not stages:
            raise ValueError("stages: every stage is empty")
        rng = np.random.default_rng(self.random_state)
        if hasattr(clf, "partial_fit"):
            if "alpha" in clf.get_params():
                # The same objective as LogisticRegression(C): mean log-loss + ||w||^2 / (2 C n).
                clf.set_params(alpha=1.0 / (float(self.C) * len(y)))
            for idx in stages:
                for _ in range(int(self.curriculum_epochs)):
                    order = idx[rng.permutation(len(idx))]
                    sw = None if sample_weight is None else sample_weight[order]
                    clf.partial_fit(D[order], y[order], classes=np.array([0, 1]), sample_weight=sw)
            return
        if "warm_start" not in clf.get_params() or "n_estimators" not in clf.get_params():
            raise ValueError(f"classifier {self.classifier!r} cannot be trained in stages (no partial_fit, no warm_start)")
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
        imp = permutation_importance(
            self.classifier_, D, y, scoring="roc_auc", n_repeats=5, random_state=self.random_state, n_jobs=1
        ).importances_mean
        gap = D[y == 0].mean(axis=0) - D[y == 1].mean(axis=0)
        sign = np.where(gap >= 0, -1.0, 1.0)  # farther apart for mismatches -> negative weight
        self.importances_ = np.clip(imp, 0.0, None)
        return sign * self.importances_

    # ----------------------------------------------------------- scoring
    def standardize(self, D) -> np.ndarray:
        """``(D - mean_) / std_`` per column, shape (n, n_metaproperties); 0 where ``std_`` is 0."""
        D = np.asarray(D, dtype=np.float64)
        safe = np.where(self.std_ > 0, self.std_, 1.0)
        return np.where(self.std_ > 0, (D - self.mean_) / safe, 0.0)

    def _check_vectors(self, X) -> np.ndarray:
        self._require_fitted()
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.metaproperties_):
            raise ValueError(f"distance vectors: expected shape (n, {len(self.metaproperties_)}), got {X.shape}")
        return X

    def _ensemble_logit(self, X: np.ndarray) -> np.ndarray:
        self._require_ensemble()
        return _logit(self.classifier_.predict_proba(X)[:, list(self.classifier_.classes_).index(1)])

    def decision_function(self, X) -> np.ndarray:
        """Level of match of distance vectors ``X`` (n, n_metaproperties) -> (n,). Higher = more alike.

        ``logit P(same | x) - logit P(same | mean_)`` (module docstring): for a
        linear classifier the weighted sum of standardized distances, for a
        tree ensemble its own (clipped) probability."""
        X = self._check_vectors(X)
        if self.is_linear:
            return self.standardize(X) @ self.weights_
        return self._ensemble_logit(X) - self.baseline_logit_

    def contributions(self, X) -> np.ndarray:
        """Per-metaproperty terms of the level of match, shape (n, n_metaproperties); rows sum to the level.

        Linear: ``weight * standardized distance``. Tree ensembles: exact Shapley
        values of the level, an absent distance at its training mean
        (:func:`vfmatch.matching.explain.shapley_contributions`)."""
        X = self._check_vectors(X)
        if self.is_linear:
            return self.standardize(X) * self.weights_
        return shapley_contributions(self.decision_function, X, self.mean_)

    def predict_proba(self, X) -> np.ndarray:
        """The classifier's probabilities, shape (n, 2): column 0 is P(different
        people), column 1 P(same person) (scikit-learn's ``classes_ == [0, 1]`` order).

        Trained on balanced pairs, so the prior is 50/50. A linear matcher loaded
        from disk recomputes them from its saved coefficients."""
        X = self._check_vectors(X)
        if hasattr(self, "coef_"):
            p1 = 1.0 / (1.0 + np.exp(-(X @ self.coef_ + self.intercept_)))
            return np.stack([1.0 - p1, p1], axis=1)
        self._require_ensemble()
        proba = self.classifier_.predict_proba(X)
        return proba[:, [list(self.classifier_.classes_).index(c) for c in (0, 1)]]

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
        blocks (:func:`vfmatch.matching.distances.pairwise_distance`), never pair
        by pair. ``voice_rows`` / ``face_rows`` restrict it to some rows."""
        self._require_fitted()
        blocks = []
        for name in self.metaproperties_:
            p, q = table_sides(voice_table, face_table, name)
            if voice_rows is not None:
                p = p[np.asarray(voice_rows, np.int64)]
            if face_rows is not None:
                q = q[np.asarray(face_rows, np.int64)]
            blocks.append(pairwise_distance(self.distances_[name], p, q))
        if self.is_linear:  # the weighted sum, block by block
            out = np.zeros(blocks[0].shape)
            for m, block in enumerate(blocks):
                if self.std_[m] > 0 and self.weights_[m] != 0:
                    out += self.weights_[m] * (block - self.mean_[m]) / self.std_[m]
            return out
        n_v, n_f = blocks[0].shape
        return self.decision_function(np.stack(blocks, axis=-1).reshape(n_v * n_f, -1)).reshape(n_v, n_f)

    # ----------------------------------------------------------- threshold
    def _set_threshold(self, level, y, source: str) -> None:
        chosen = choose_threshold(level, y, self.threshold_rule, self.target_fmr)
        self.threshold_ = chosen.pop("threshold")
        self.calibration_ = {
            "source": source,
            "rule": self.threshold_rule,
            "target_fmr": float(self.target_fmr) if self.threshold_rule == "fmr" else None,
            "n_pairs": int(len(y)),
            **chosen,
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
        X = self._check_vectors(X)
        y = check_labels(y, X.shape[0])
        if not self.is_linear:
            self._require_ensemble()
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
        distances, the weights and each one's contribution to the level
        (:mod:`vfmatch.matching.explain`)."""
        self._require_fitted()
        return build_explanation(self, voice_table, face_table, voice_index, face_index)

    def rank_faces(self, voice_table, face_table, voice_index: int, face_rows=None, top_k: int | None = None) -> pd.DataFrame:
        """Sort a face database by a voice (the patent's "face database sorting").

        Returns a frame sorted by decreasing level: ``rank`` (1 = best),
        ``face_index``, ``level``, ``match`` (level >= threshold) and
        ``probability`` (the classifier's P(same))."""
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
        vi = np.full(len(df), int(anchor)) if voice_side else df[col].to_numpy()
        fi = df[col].to_numpy() if voice_side else np.full(len(df), int(anchor))
        df["probability"] = self.predict_proba(self.pair_distances(voice_table, face_table, vi, fi))[:, 1]
        return df

    def compare(self, voice_table, face_table, voice_index: int, face_a: int, face_b: int) -> dict:
        """How much more likely is the voice person A's than person B's?

        Returns the two levels and probabilities, the odds ratio
        ``odds(A) / odds(B)``, and ``p_a_rather_than_b``: the probability that the
        voice is A's *given that it is exactly one of the two* (independent
        pairs), ``odds_ratio / (1 + odds_ratio)``. The level is the log-odds up
        to a constant, so the log odds ratio is ``level_A - level_B`` and the
        balanced training prior cancels."""
        D = self.pair_distances(voice_table, face_table, [int(voice_index)] * 2, [int(face_a), int(face_b)])
        level = self.decision_function(D)
        p = self.predict_proba(D)[:, 1]
        log_or = float(level[0] - level[1])
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
        """Everything needed to score and explain, as JSON-ready values (:mod:`vfmatch.matching.persist`)."""
        self._require_fitted()
        return matcher_to_dict(self)

    def save(self, folder: str | Path) -> Path:
        """Write ``matcher.json`` into ``folder`` (created if needed). No pickles:
        a linear matcher is saved whole; a tree ensemble's trees are not saved,
        only its weights, threshold and calibration (loaded back, it cannot score)."""
        self._require_fitted()
        return save_matcher(self, folder)

    @classmethod
    def load(cls, folder: str | Path) -> "MetapropertyMatcher":
        """Inverse of :meth:`save`: ``folder`` holds ``matcher.json`` (or is that file)."""
        return load_matcher(cls, folder)
