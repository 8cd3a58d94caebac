"""The metaproperty method of ``vfmatch sss``: the metadata's labels, and pretrained models by Hub id.

VoxCeleb1's metadata gives two labels per identity, **gender and nationality**,
and nothing else (no age, ethnicity or mother tongue). The recipe
(:mod:`vfmatch.job.sss_command`) matches on them in two ways:

* :class:`LabelMatcher` (the default, without ``--extractors``): per label, a
  voice and a face classifier on the frozen-encoder features; a logistic
  regression on the Jensen-Shannon distances of their predicted distributions.
* :class:`PretrainedLabelMatcher` (``--extractors PRESET``): the patent's matcher,
  :class:`vfmatch.matching.MetapropertyMatcher` (weights = coefficient x std,
  as in ``vfmatch run``), on a table of predicted distributions with one column
  per metaproperty a ready-made model gives on **both** sides (the preset's
  :class:`vfmatch.extractors.PretrainedExtractor`\\ s, e.g. gender from
  audEERING's speech model and a face gender classifier) **plus** one column
  per label (``metadata_gender``, ``metadata_nationality``: the label
  classifiers' predicted distributions, as metaproperties registered by
  :func:`label_metaproperty`).

Both fit their label classifiers on one half of the training identities and
the weights on the other half, so the weights are never learnt from the
classifiers' over-confident predictions on their own training items.
:func:`hub_metaproperties` says which of a preset's metaproperties can be used
and why the others cannot. Book chapter: ``book/13_your_own_files.ipynb``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..embeddings import FeatureTable
from ..extractors import PretrainedExtractor, preset_extractors
from ..features.hub import AGE_YEARS_LABEL
from ..matching.distances import paired_distance
from ..matching.matcher import MetapropertyMatcher
from ..metaproperties import DEFAULT_METAPROPERTIES, create_metaproperty, get_metaproperty

__all__ = [
    "SSS_LABELS",
    "LABEL_PREFIX",
    "label_metaproperty",
    "hub_metaproperties",
    "needs_age_sd",
    "LabelMatcher",
    "PretrainedLabelMatcher",
]

#: the identity labels VoxCeleb1's metadata gives (and nothing else)
SSS_LABELS = ("gender", "nationality")
#: a label's column in the matcher's tables is ``LABEL_PREFIX + label`` (``metadata_gender``)
LABEL_PREFIX = "metadata_"


def label_metaproperty(label: str, identities: pd.DataFrame) -> str:
    """Register (once; the same call again is harmless) the metaproperty ``metadata_<label>``
    whose values are the label's values in the SSS identity table; returns its name.

    Gender keeps the ``gender`` metaproperty's values; nationality has the 36 or
    so countries of the metadata, sorted."""
    values = (get_metaproperty("gender").values if label == "gender"
              else tuple(sorted(identities[label].astype(str).unique())))
    return create_metaproperty(f"{LABEL_PREFIX}{label}", kind="categorical", values=values, column=label,
                               description=f"The {label} VoxCeleb1's metadata gives, predicted by a classifier").name


def hub_metaproperties(preset: str, metaproperties: Sequence[str] = DEFAULT_METAPROPERTIES
                       ) -> tuple[dict[str, dict[str, PretrainedExtractor]], dict[str, str]]:
    """Which metaproperties of an extractor preset the recipe can use: ``(used, skipped)``.

    ``used``: metaproperty -> ``{"voice": extractor, "face": extractor}``, both
    :class:`PretrainedExtractor` (nothing to train). ``skipped``: metaproperty ->
    why not (a side whose extractor must be trained on ground truth VoxCeleb1
    does not have). Nothing is loaded here."""
    sides: dict[str, dict] = {}
    for ex in preset_extractors(preset, list(metaproperties), quick=True):
        sides.setdefault(ex.metaproperty, {})[ex.modality] = ex
    used, skipped = {}, {}
    for name, by_side in sides.items():
        trained = [m for m in ("voice", "face") if not isinstance(by_side.get(m), PretrainedExtractor)]
        if trained:
            skipped[name] = (f"preset {preset!r} has no pretrained {' or '.join(trained)} model for it, and a trained "
                             "extractor would need ground truth VoxCeleb1's metadata does not have")
        else:
            used[name] = by_side
    return used, skipped


def needs_age_sd(metaproperty: str, encoder_labels: Sequence[str]) -> bool:
    """True when a model gives this (binned) metaproperty as a regression in years (``"age:years"``),
    whose spread must be fitted on people of known age or given (``--age-sd``)."""
    return get_metaproperty(metaproperty).kind == "binned" and AGE_YEARS_LABEL in list(encoder_labels)


# ---------------------------------------------------------------------------
# What both matchers share: the halves, the label classifiers, the pairs
# ---------------------------------------------------------------------------


def _halves(voice: FeatureTable, face: FeatureTable, rng) -> tuple[np.ndarray, np.ndarray]:
    ids = np.intersect1d(voice.identities(), face.identities())
    if ids.size < 4:
        raise ValueError(f"the metaproperty method needs at least 4 training identities with voices and faces, got {ids.size}")
    ids = rng.permutation(ids)
    return ids[: ids.size // 2], ids[ids.size // 2:]


def _fit_label_classifiers(voice, face, identities, ids, labels, C) -> dict:
    """label -> (voice classifier, face classifier), fitted on the items of ``ids``; labels
    with one value only among them are left out (they say nothing about who is who)."""
    meta = identities.set_index("speaker_id")
    va, fa = voice.select_identities(ids), face.select_identities(ids)
    out = {}
    for label in labels:
        yv, yf = meta.loc[va.labels, label].astype(str).to_numpy(), meta.loc[fa.labels, label].astype(str).to_numpy()
        if np.unique(yv).size < 2 or np.unique(yf).size < 2:
            continue
        clf_v = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000)).fit(va.features, yv)
        clf_f = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000)).fit(fa.features, yf)
        out[label] = (clf_v, clf_f)
    if not out:
        raise ValueError(f"no label of {list(labels)} takes two values among the training identities")
    return out


def _training_pairs(voice_labels: np.ndarray, face_labels: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each voice with a face of its own and one of someone else: ``(voice rows, face rows, label)``."""
    own = np.array([rng.choice(np.flatnonzero(face_labels == s)) for s in voice_labels])
    other = np.array([rng.choice(np.flatnonzero(face_labels != s)) for s in voice_labels])
    n = len(voice_labels)
    return np.r_[np.arange(n), np.arange(n)], np.r_[own, other], np.r_[np.ones(n), np.zeros(n)].astype(np.int64)


class _LabelClassifiersParams:
    """The parameters both matchers share (scikit-learn style: keyword arguments, stored as given)."""

    def __init__(self, *, labels=SSS_LABELS, C: float = 1.0, seed: int = 0):
        self.labels = labels
        self.C = C
        self.seed = seed

    def get_params(self, deep: bool = True) -> dict:
        return {"labels": self.labels, "C": self.C, "seed": self.seed}


class LabelMatcher(_LabelClassifiersParams):
    """Metaproperty matching on labelled identities: the patent's method with the
    labels a corpus has (for VoxCeleb1: gender and nationality).

    For each label a voice classifier and a face classifier (standardised
    features, logistic regression) are fitted on half of the training
    identities; on the other half a logistic regression learns how much each
    label's Jensen-Shannon distance between the two predicted distributions
    says about "same person" (as the patent's matcher weighs metaproperty distances,
    :class:`vfmatch.matching.MetapropertyMatcher`, here on labels instead of extractors).
    Fitting the weights on identities the classifiers never saw keeps them from
    trusting over-confident training-set predictions.

    Parameters
    ----------
    labels : identity columns to match on
    C : inverse regularisation of the classifiers
    seed : the split of the training identities and the sampled training pairs
    """

    def fit(self, voice: FeatureTable, face: FeatureTable, identities: pd.DataFrame) -> "LabelMatcher":
        """Fit on the training tables; ``identities`` has ``speaker_id`` and the label columns."""
        rng = np.random.default_rng(self.seed)
        half_a, half_b = _halves(voice, face, rng)
        self.classifiers_ = _fit_label_classifiers(voice, face, identities, half_a, self.labels, self.C)
        vb, fb = voice.select_identities(half_b), face.select_identities(half_b)
        vi, fi, y = _training_pairs(vb.labels, fb.labels, rng)
        self.combiner_ = LogisticRegression().fit(self.distances(vb.features[vi], fb.features[fi]), y)
        self.weights_ = dict(zip(self.classifiers_, self.combiner_.coef_[0].tolist()))
        return self

    def _probabilities(self, X: np.ndarray, side: int) -> dict[str, np.ndarray]:
        return {label: clfs[side].predict_proba(X) for label, clfs in self.classifiers_.items()}

    def distances(self, voice_features: np.ndarray, face_features: np.ndarray) -> np.ndarray:
        """(n, n_labels) Jensen-Shannon distances between the voice's and the face's predicted distributions."""
        pv, pf = self._probabilities(voice_features, 0), self._probabilities(face_features, 1)
        return np.stack([paired_distance("jensen_shannon", pv[k], pf[k]) for k in self.classifiers_], axis=1)

    def path_scorer(self, voice: FeatureTable, face: FeatureTable):
        """``score(voice_paths, face_paths)``, higher = same person: the ``score_fn`` of ``evaluate_sss``."""
        pv, pf = self._probabilities(voice.features, 0), self._probabilities(face.features, 1)

        def score(voice_paths, face_paths) -> np.ndarray:
            i, j = voice.rows_of(voice_paths), face.rows_of(face_paths)
            D = np.stack([paired_distance("jensen_shannon", pv[k][i], pf[k][j]) for k in self.classifiers_], axis=1)
            return self.combiner_.decision_function(D)

        return score


class PretrainedLabelMatcher(_LabelClassifiersParams):
    """The patent's matcher on pretrained models' metaproperties plus the metadata's labels.

    Parameters
    ----------
    labels : identity columns of the metadata to add (default gender and nationality)
    C : inverse regularisation of the label classifiers
    seed : the split of the training identities and the sampled training pairs

    ``fit(voice, face, identities, voice_models, face_models)``: ``voice`` and
    ``face`` are the training :class:`FeatureTable`\\ s of the frozen encoders;
    ``voice_models`` / ``face_models`` map a metaproperty to the pretrained
    model's distributions of those same items, ``(len(voice), n_values)`` and
    ``(len(face), n_values)``. Half A of the identities trains the label
    classifiers; on half B, each voice with a face of its own and one of
    someone else trains :class:`MetapropertyMatcher` (logistic: weights =
    coefficient x std of the distances; Jensen-Shannon for categorical columns,
    earth mover's for ordered ones such as age).

    After ``fit``: ``classifiers_`` (label -> voice, face classifier),
    ``columns_`` (every table column, in the matcher's order), ``matcher_``,
    ``weights_`` (column -> weight).
    """

    def fit(self, voice: FeatureTable, face: FeatureTable, identities: pd.DataFrame,
            voice_models: Mapping[str, np.ndarray], face_models: Mapping[str, np.ndarray]) -> "PretrainedLabelMatcher":
        if set(voice_models) != set(face_models):
            raise ValueError(f"pretrained metaproperties differ between voices {sorted(voice_models)} and faces {sorted(face_models)}")
        rng = np.random.default_rng(self.seed)
        half_a, half_b = _halves(voice, face, rng)
        self.classifiers_ = _fit_label_classifiers(voice, face, identities, half_a, self.labels, self.C)
        self.label_columns_ = {label: label_metaproperty(label, identities) for label in self.classifiers_}
        self.columns_ = [*voice_models, *self.label_columns_.values()]
        rv, rf = np.flatnonzero(np.isin(voice.labels, half_b)), np.flatnonzero(np.isin(face.labels, half_b))
        vt, ft = self.tables(voice.select(rv), face.select(rf), _rows(voice_models, rv), _rows(face_models, rf))
        vi, fi, y = _training_pairs(voice.labels[rv], face.labels[rf], rng)
        self.matcher_ = MetapropertyMatcher(metaproperties=self.columns_, random_state=self.seed).fit_pairs(vt, ft, (vi, fi, y))
        self.weights_ = self.matcher_.weights
        return self

    def _label_table(self, X: np.ndarray, side: int) -> dict[str, np.ndarray]:
        """The label classifiers' distributions over each label metaproperty's values
        (a value absent from half A gets probability 0)."""
        out = {}
        for label, clfs in self.classifiers_.items():
            name = self.label_columns_[label]
            values = list(get_metaproperty(name).values)
            P = np.zeros((len(X), len(values)))
            P[:, [values.index(c) for c in clfs[side].classes_]] = clfs[side].predict_proba(X)
            out[name] = P
        return out

    def tables(self, voice: FeatureTable, face: FeatureTable, voice_models, face_models) -> tuple[dict, dict]:
        """The matcher's voice and face tables: the pretrained columns, then the label columns."""
        return ({**voice_models, **self._label_table(voice.features, 0)},
                {**face_models, **self._label_table(face.features, 1)})

    def path_scorer(self, voice: FeatureTable, face: FeatureTable, voice_models, face_models):
        """``score(voice_paths, face_paths)``: the level of match, the ``score_fn`` of ``evaluate_sss``."""
        vt, ft = self.tables(voice, face, voice_models, face_models)

        def score(voice_paths, face_paths) -> np.ndarray:
            return self.matcher_.level_of_match(vt, ft, voice.rows_of(voice_paths), face.rows_of(face_paths))

        return score


def _rows(table: Mapping[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {k: np.asarray(v)[rows] for k, v in table.items()}
