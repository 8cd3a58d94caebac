"""Metaproperty extractors: encoder -> representation -> calculator -> distribution.

This is the patent's FIG. 2A (voice) and 2B (image): a voice clip or a face
image goes through an encoder (:mod:`vfmatch.encoders`) to a representation,
and a *representation-to-metaproperty calculator* turns the representation
into a probability distribution over the metaproperty's values
(:mod:`vfmatch.metaproperties`, the patent's Tables 1 and 2).

Calculators (scikit-learn style: keyword arguments, ``fit``, ``predict_proba``;
nothing is trained in ``__init__``), as the patent lists them:

=============  ==========  =====================================================
name           input       model
=============  ==========  =====================================================
``logistic``   vector      standardised features -> multinomial logistic regression
``svm``        vector      linear support vector machine, calibrated to
                           probabilities on out-of-fold decision values
``knn``        vector      nearest-neighbour vote among training embeddings
``mlp``        vector      a small neural network (PyTorch)
``vit``        matrix      a vision transformer (timm ``VisionTransformer``) on
                           Mel spectrograms (one channel, a non-square input,
                           random time crops) or on face images
``labels``     vector      no training: a ready-made classifier's class
                           probabilities, its classes mapped to the values
=============  ==========  =====================================================

Signal-level cues (pitch and formants of the voice, the Individual Typology
Angle of the skin) are *encoders* (``"f0-formants"``, ``"ita"``) whose few
measured numbers feed a ``logistic`` calculator.

:class:`MetapropertyExtractor` ties one encoder and one calculator to one
metaproperty and one modality; :class:`ExtractorSet` holds one voice and one
face extractor per metaproperty and computes every encoder's features once per
population (cached on disk under ``vfmatch.config.cache_dir("features")``).

Every saved model is a folder of JSON and safetensors files: no pickles, so
loading one runs no code from the file.

Classes never seen in training get probability 0 from the model; every
calculator then mixes in a uniform distribution with weight ``smoothing``
(default 0.001), so no value is ever *impossible* (distances such as the KL
divergence stay finite) and rows still sum to 1.

Book chapter: ``book/04_metaproperties.ipynb``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from pathlib import Path
from typing import ClassVar, Mapping, Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator
from torch import nn

from ..config import cache_dir, default_device, quick_mode
from ..features.cache import population_features, population_items
from ..features.encoders import Encoder, create_encoder
from ..metaproperties import DEFAULT_METAPROPERTIES, Metaproperty, get_metaproperty
from ..utils import code_fingerprint, limit_threads, progress as progress_bar, to_jsonable

__all__ = [
    "Calculator",
    "LogisticCalculator",
    "SVMCalculator",
    "KNNCalculator",
    "MLPCalculator",
    "ViTCalculator",
    "LabelMapCalculator",
    "label_mapping",
    "CALCULATORS",
    "create_calculator",
    "MetapropertyExtractor",
    "ExtractorSet",
    "DEFAULT_EXTRACTORS",
]

_FORMAT = "vfmatch.extractor/1"


# ---------------------------------------------------------------------------
# Calculators
# ---------------------------------------------------------------------------


def _class_weights(y: np.ndarray, n_classes: int, mode) -> np.ndarray:
    """Per-class loss weights: ``"balanced"`` gives rare classes as much say as common ones."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    if mode == "balanced":
        return np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 0.0)
    return np.ones(n_classes)


class Calculator(BaseEstimator):
    """Base class: representation -> distribution over a metaproperty's values.

    ``fit(X, y, n_values=K)`` takes value indices ``y`` in ``0..K-1``; the model
    sees only the classes present (``classes_``) and ``predict_proba`` puts them
    back into a row of length ``K``. Subclasses implement ``_fit``,
    ``_predict_local`` (probabilities over ``classes_``) and ``_state`` /
    ``_load_state`` (arrays for safetensors, plus JSON-able facts)."""

    name: ClassVar[str] = ""
    input_kind: ClassVar[str] = "vector"
    # Calculators that can also learn other metaproperties during training (multi-task).
    takes_auxiliary: ClassVar[bool] = False

    def fit(self, X, y, *, n_values: int | None = None, groups=None, auxiliary: Mapping[str, tuple] | None = None) -> "Calculator":
        """Train on value indices ``y`` (shape (n,)) in ``0..n_values-1``.

        ``auxiliary`` (only where ``takes_auxiliary``): ``{name: (labels, K)}``,
        other metaproperties' value indices of the same items (shape (n,),
        ``-1`` where unknown) learnt alongside as extra targets."""
        y = np.asarray(y, dtype=np.int64)
        if y.ndim != 1 or len(y) == 0:
            raise ValueError(f"{self.name}: y must be a non-empty 1-D array of value indices, got shape {y.shape}")
        n_values = int(n_values if n_values is not None else y.max() + 1)
        if y.min() < 0 or y.max() >= n_values:
            raise ValueError(f"{self.name}: labels must be in 0..{n_values - 1}, got {y.min()}..{y.max()}")
        if _n_items(X) != len(y):
            raise ValueError(f"{self.name}: {_n_items(X)} inputs but {len(y)} labels")
        extra = {}
        if auxiliary:
            if not self.takes_auxiliary:
                raise ValueError(f"{self.name}: this calculator does not learn auxiliary targets (only 'vit' does)")
            extra["auxiliary"] = {name: _check_auxiliary(name, labels, k, len(y)) for name, (labels, k) in auxiliary.items()}
        self.n_values_ = n_values
        self.classes_ = np.unique(y)
        local = np.searchsorted(self.classes_, y)
        if len(self.classes_) > 1:
            with limit_threads():  # see vfmatch.encoders.limit_threads
                self._fit(X, local, None if groups is None else np.asarray(groups), **extra)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities, shape (n, n_values); every row sums to 1."""
        if not hasattr(self, "classes_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit first")
        n = _n_items(X)
        with limit_threads():
            local = np.ones((n, 1)) if len(self.classes_) == 1 else self._predict_local(X)
        out = np.zeros((n, self.n_values_))
        out[:, self.classes_] = local
        out /= out.sum(axis=1, keepdims=True)
        s = float(self.smoothing)
        return (1 - s) * out + s / self.n_values_

    # -- saving: arrays + JSON, no pickles ------------------------------------
    def state(self) -> tuple[dict[str, np.ndarray], dict]:
        arrays = {"classes_": self.classes_.astype(np.int64)}
        meta = {"n_values_": int(self.n_values_)}
        if len(self.classes_) > 1:
            a, m = self._state()
            arrays.update(a)
            meta.update(m)
        return arrays, meta

    def load_state(self, arrays: Mapping[str, np.ndarray], meta: Mapping) -> "Calculator":
        self.classes_ = np.asarray(arrays["classes_"], dtype=np.int64)
        self.n_values_ = int(meta["n_values_"])
        if len(self.classes_) > 1:
            self._load_state(arrays, meta)
        return self

    # -- subclasses ------------------------------------------------------------
    def _fit(self, X, y, groups):
        raise NotImplementedError

    def _predict_local(self, X) -> np.ndarray:
        raise NotImplementedError

    def _state(self):
        raise NotImplementedError

    def _load_state(self, arrays, meta):
        raise NotImplementedError


def _check_auxiliary(name: str, labels, n_values: int, n: int) -> tuple[np.ndarray, int]:
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (n,):
        raise ValueError(f"auxiliary {name!r}: expected {n} labels, got shape {labels.shape}")
    if labels.size and (labels.min() < -1 or labels.max() >= n_values):
        raise ValueError(f"auxiliary {name!r}: labels must be in 0..{n_values - 1} (or -1 for unknown)")
    return labels, int(n_values)


def _n_items(X) -> int:
    return len(X) if isinstance(X, (list, tuple)) else int(np.shape(X)[0])


class _VectorCalculator(Calculator):
    """Standardises features (NaN -> the training mean) and, with ``pca=k``,
    projects them on their first ``k`` principal components before the model:
    fewer, decorrelated inputs for wide encoders such as face thumbnails."""


    def _standardise_fit(self, X) -> np.ndarray:
        X = self._check(X, fitted=False)
        with np.errstate(all="ignore"):
            self.mean_ = np.nan_to_num(np.nanmean(X, axis=0))
            sd = np.nan_to_num(np.nanstd(X, axis=0))
        self.scale_ = np.where(sd > 1e-8, sd, 1.0)
        self.components_ = None
        Z = np.nan_to_num((X - self.mean_) / self.scale_)
        k = getattr(self, "pca", None)
        if k and k < min(Z.shape):
            _, _, vt = np.linalg.svd(Z - Z.mean(axis=0), full_matrices=False)
            self.components_ = vt[: int(k)]
        return self._project(Z)

    def _project(self, Z: np.ndarray) -> np.ndarray:
        return Z if self.components_ is None else Z @ self.components_.T

    def _standardise(self, X) -> np.ndarray:
        return self._project(np.nan_to_num((X - self.mean_) / self.scale_))

    def _check(self, X, *, fitted: bool = True) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"{self.name}: expected features of shape (n, dim), got {X.shape}")
        if np.isinf(X).any():
            raise ValueError(f"{self.name}: features contain inf")
        if fitted and X.shape[1] != self.mean_.shape[0]:
            raise ValueError(f"{self.name}: fitted on {self.mean_.shape[0]} features, got {X.shape[1]}")
        return X

    def _scaler_state(self):
        out = {"mean_": self.mean_, "scale_": self.scale_}
        if self.components_ is not None:
            out["components_"] = self.components_
        return out

    def _load_scaler(self, arrays):
        self.mean_, self.scale_ = np.asarray(arrays["mean_"]), np.asarray(arrays["scale_"])
        self.components_ = np.asarray(arrays["components_"]) if "components_" in arrays else None

    @property
    def n_inputs_(self) -> int:
        """Inputs of the model after standardisation (and PCA)."""
        return self.mean_.shape[0] if self.components_ is None else self.components_.shape[0]


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _linear_proba(Z: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """Probabilities of a fitted (binary or multinomial) logistic model, as scikit-learn computes them."""
    z = Z @ coef.T + intercept
    if coef.shape[0] == 1:  # binary: one logit for the second class
        p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
        return np.stack([1 - p1, p1], axis=1)
    return _softmax(z)


class LogisticCalculator(_VectorCalculator):
    """Multinomial logistic regression on standardised features (scikit-learn).

    The patent's "classical ML model" for gender. Only ``coef_`` and
    ``intercept_`` are kept, so saving is two arrays and predicting is one
    matrix product and a softmax.

    Parameters
    ----------
    C : float, inverse L2 regularisation strength
    class_weight : "balanced" (rare values count as much as common ones) or None
    pca : int, optional, principal components kept after standardising
    max_iter : int, iterations of the L-BFGS solver
    smoothing : float, weight of the uniform distribution mixed in
    """

    name = "logistic"

    def __init__(self, C: float = 1.0, class_weight: str | None = "balanced", pca: int | None = None, max_iter: int = 2000, smoothing: float = 1e-3):
        self.C, self.class_weight, self.pca, self.max_iter, self.smoothing = C, class_weight, pca, max_iter, smoothing

    def _fit(self, X, y, groups):
        from sklearn.linear_model import LogisticRegression

        Z = self._standardise_fit(X)
        model = LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=self.max_iter).fit(Z, y)
        self.coef_, self.intercept_ = model.coef_, model.intercept_

    def _predict_local(self, X):
        return _linear_proba(self._standardise(self._check(X)), self.coef_, self.intercept_)

    def _state(self):
        return {**self._scaler_state(), "coef_": self.coef_, "intercept_": self.intercept_}, {}

    def _load_state(self, arrays, meta):
        self._load_scaler(arrays)
        self.coef_, self.intercept_ = np.asarray(arrays["coef_"]), np.asarray(arrays["intercept_"])


class SVMCalculator(_VectorCalculator):
    """A linear support vector machine with calibrated probabilities.

    An SVM gives margins, not probabilities. As in Platt scaling, a logistic
    model maps the SVM's decision values to probabilities; it is fitted on
    *out-of-fold* decision values (``cv`` folds, grouped by identity when
    ``groups`` are given), so it learns how far to trust margins on unseen
    people rather than on the training points themselves.

    Parameters
    ----------
    C : float, inverse regularisation strength of the SVM
    class_weight, pca, smoothing : as for :class:`LogisticCalculator`
    cv : int, folds for the out-of-fold decision values
    """

    name = "svm"

    def __init__(self, C: float = 0.1, class_weight: str | None = "balanced", pca: int | None = None, cv: int = 3, smoothing: float = 1e-3):
        self.C, self.class_weight, self.pca, self.cv, self.smoothing = C, class_weight, pca, cv, smoothing

    def _svm(self):
        from sklearn.svm import LinearSVC

        return LinearSVC(C=self.C, class_weight=self.class_weight, max_iter=5000)

    def _fit(self, X, y, groups):
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import GroupKFold, StratifiedKFold, cross_val_predict

        Z = self._standardise_fit(X)
        svm = self._svm().fit(Z, y)
        self.coef_, self.intercept_ = svm.coef_, svm.intercept_
        n_splits = int(min(self.cv, np.bincount(y).min() if groups is None else len(np.unique(groups))))
        if n_splits >= 2:
            splitter = GroupKFold(n_splits) if groups is not None else StratifiedKFold(n_splits, shuffle=True, random_state=0)
            decision = cross_val_predict(self._svm(), Z, y, cv=splitter, groups=groups, method="decision_function")
        else:
            decision = svm.decision_function(Z)
        decision = decision.reshape(len(y), -1)
        cal = LogisticRegression(C=1.0, class_weight=self.class_weight, max_iter=1000).fit(decision, y)
        self.cal_coef_, self.cal_intercept_ = cal.coef_, cal.intercept_

    def _predict_local(self, X):
        Z = self._standardise(self._check(X))
        decision = (Z @ self.coef_.T + self.intercept_).reshape(len(Z), -1)
        return _linear_proba(decision, self.cal_coef_, self.cal_intercept_)

    def _state(self):
        return {**self._scaler_state(), "coef_": self.coef_, "intercept_": self.intercept_, "cal_coef_": self.cal_coef_, "cal_intercept_": self.cal_intercept_}, {}

    def _load_state(self, arrays, meta):
        self._load_scaler(arrays)
        for k in ("coef_", "intercept_", "cal_coef_", "cal_intercept_"):
            setattr(self, k, np.asarray(arrays[k]))


class KNNCalculator(_VectorCalculator):
    """Nearest-neighbour similarity search among training embeddings.

    The distribution is the (class-weighted) share of each value among the
    ``n_neighbors`` closest training items by cosine similarity of standardised
    features. The training embeddings are stored with the model.

    Parameters
    ----------
    n_neighbors : int
    class_weight : "balanced" divides each vote by its value's training frequency
    pca, smoothing : as for :class:`LogisticCalculator` (smoothing matters more
        here: a vote among few neighbours is often exactly 0)
    """

    name = "knn"

    def __init__(self, n_neighbors: int = 15, class_weight: str | None = "balanced", pca: int | None = None, smoothing: float = 1e-2):
        self.n_neighbors, self.class_weight, self.pca, self.smoothing = n_neighbors, class_weight, pca, smoothing

    def _fit(self, X, y, groups):
        Z = self._standardise_fit(X)
        self.train_ = Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)
        self.train_y_ = y
        self.vote_weight_ = _class_weights(y, len(self.classes_), self.class_weight)

    def _predict_local(self, X):
        Z = self._standardise(self._check(X))
        Z = Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)
        k = min(int(self.n_neighbors), len(self.train_y_))
        out = np.zeros((len(Z), len(self.classes_)))
        for start in range(0, len(Z), 1024):
            sim = Z[start : start + 1024] @ self.train_.T
            nearest = np.argpartition(-sim, k - 1, axis=1)[:, :k]
            labels = self.train_y_[nearest]
            for c in range(len(self.classes_)):
                out[start : start + 1024, c] = (labels == c).sum(axis=1) * self.vote_weight_[c]
        return out / out.sum(axis=1, keepdims=True)

    def _state(self):
        return {**self._scaler_state(), "train_": self.train_, "train_y_": self.train_y_.astype(np.int64), "vote_weight_": self.vote_weight_}, {}

    def _load_state(self, arrays, meta):
        self._load_scaler(arrays)
        self.train_, self.train_y_, self.vote_weight_ = (np.asarray(arrays[k]) for k in ("train_", "train_y_", "vote_weight_"))


def _torch_state(module: nn.Module, prefix: str) -> dict[str, np.ndarray]:
    return {f"{prefix}.{k}": v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def _load_torch_state(module: nn.Module, arrays: Mapping[str, np.ndarray], prefix: str) -> None:
    sd = {k[len(prefix) + 1 :]: torch.as_tensor(np.asarray(v)) for k, v in arrays.items() if k.startswith(prefix + ".")}
    module.load_state_dict(sd)


class MLPCalculator(_VectorCalculator):
    """A small multilayer perceptron (the patent's "deep ML model", e.g. for age).

    ``Linear -> GELU -> Dropout`` per hidden layer, then a linear layer to the
    classes; trained full-batch with AdamW, class-weighted cross-entropy with
    label smoothing, for ``epochs`` steps (seeded).

    Parameters
    ----------
    hidden : sizes of the hidden layers
    dropout, weight_decay, label_smoothing : regularisation
    epochs, lr : full-batch AdamW steps and learning rate
    class_weight, pca, smoothing : as for :class:`LogisticCalculator`
    seed : int; device : None = :func:`vfmatch.config.default_device`
    """

    name = "mlp"

    def __init__(
        self,
        hidden: Sequence[int] = (128,),
        dropout: float = 0.3,
        pca: int | None = None,
        epochs: int = 300,
        lr: float = 3e-3,
        weight_decay: float = 1e-2,
        label_smoothing: float = 0.05,
        class_weight: str | None = "balanced",
        smoothing: float = 1e-3,
        seed: int = 0,
        device: str | None = None,
    ):
        self.hidden, self.dropout, self.pca, self.epochs, self.lr = hidden, dropout, pca, epochs, lr
        self.weight_decay, self.label_smoothing, self.class_weight = weight_decay, label_smoothing, class_weight
        self.smoothing, self.seed, self.device = smoothing, seed, device

    def _build(self, in_dim: int, n_classes: int) -> nn.Module:
        layers, d = [], in_dim
        for h in self.hidden:
            layers += [nn.Linear(d, int(h)), nn.GELU(), nn.Dropout(self.dropout)]
            d = int(h)
        return nn.Sequential(*layers, nn.Linear(d, n_classes))

    def _fit(self, X, y, groups):
        Z = torch.as_tensor(self._standardise_fit(X), dtype=torch.float32)
        torch.manual_seed(self.seed)
        device = default_device(self.device)
        self.net_ = self._build(Z.shape[1], len(self.classes_)).to(device)
        weight = torch.as_tensor(_class_weights(y, len(self.classes_), self.class_weight), dtype=torch.float32, device=device)
        opt = torch.optim.AdamW(self.net_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        Z, yt = Z.to(device), torch.as_tensor(y).to(device)
        self.net_.train()
        for _ in range(int(self.epochs)):
            loss = nn.functional.cross_entropy(self.net_(Z), yt, weight=weight, label_smoothing=self.label_smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
        self.net_.eval().cpu()

    @torch.no_grad()
    def _predict_local(self, X):
        Z = torch.as_tensor(self._standardise(self._check(X)), dtype=torch.float32)
        return self.net_(Z).softmax(dim=1).numpy().astype(np.float64)

    def _state(self):
        return {**self._scaler_state(), **_torch_state(self.net_, "net")}, {"in_dim": int(self.n_inputs_)}

    def _load_state(self, arrays, meta):
        self._load_scaler(arrays)
        self.net_ = self._build(int(meta["in_dim"]), len(self.classes_))
        _load_torch_state(self.net_, arrays, "net")
        self.net_.eval()


class ViTCalculator(Calculator):
    """A vision transformer (timm ``VisionTransformer``) trained from scratch.

    The patent extracts the skin-tone metaproperty by "feeding the facial image
    into a transformer, e.g. a vision transformer" and, for the voice, by
    "performing predictions on [a Mel spectrogram] using transformers".

    Two input kinds:

    * **spectrograms** -- a list of (n_mels, n_frames_i) arrays (encoder
      ``"logmel"``). The ViT sees one channel and a non-square input of
      ``n_mels x window`` frames, cut into ``patch_size`` = (mel bands, frames)
      patches. Training draws a random window from each clip every epoch (a
      cheap augmentation); prediction averages the probabilities of
      overlapping windows covering the whole clip. Each clip's mean level is
      removed first (loudness is a recording property).
    * **images** -- an array (n, C, H, W) (encoder ``"pixels"``). Training
      flips and shifts; prediction averages the image and its mirror.

    :meth:`attention_rollout` shows which patches the prediction attends to.

    **Auxiliary targets** (``fit(..., auxiliary=...)``): other metaproperties of
    the same items, each with its own output head on the shared transformer,
    trained with weight ``aux_weight``. A voice carries skin tone only
    indirectly (through accent and mother tongue, which go with ethnicity), so
    learning those richer targets alongside gives the few hundred training
    people a representation worth reading skin tone from. Prediction uses only
    the main head.

    Parameters
    ----------
    patch_size : int or (height, width); default (8, 16) for spectrograms, 8 for images
    window : int, frames per spectrogram input (ignored for images)
    embed_dim, depth, num_heads, mlp_ratio : the transformer's size
    pool : "token" (a class token) or "avg" (mean of the patch tokens)
    epochs, batch_size, lr, weight_decay, drop_rate, label_smoothing : training
        (AdamW with a one-cycle learning rate)
    class_weight, smoothing : as for :class:`LogisticCalculator`
    aux_weight : float, weight of the mean auxiliary loss beside the main one
    n_models : int, networks trained with seeds ``seed, seed+1, ...`` whose
        probabilities are averaged (an ensemble: steadier than one network
        when training people are few)
    seed : int; device : None = :func:`vfmatch.config.default_device`
    progress : bool, a progress bar over epochs
    """

    name = "vit"
    input_kind = "matrix"
    takes_auxiliary = True

    def __init__(
        self,
        patch_size: int | Sequence[int] | None = None,
        window: int = 128,
        embed_dim: int = 64,
        depth: int = 3,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
        epochs: int = 40,
        batch_size: int = 64,
        lr: float = 2e-3,
        weight_decay: float = 0.05,
        drop_rate: float = 0.1,
        pool: str = "token",
        label_smoothing: float = 0.1,
        class_weight: str | None = "balanced",
        smoothing: float = 1e-3,
        aux_weight: float = 1.0,
        n_models: int = 1,
        seed: int = 0,
        device: str | None = None,
        progress: bool = False,
    ):
        self.patch_size, self.window, self.embed_dim, self.depth, self.num_heads = patch_size, window, embed_dim, depth, num_heads
        self.pool = pool
        self.mlp_ratio, self.epochs, self.batch_size, self.lr, self.weight_decay = mlp_ratio, epochs, batch_size, lr, weight_decay
        self.drop_rate, self.label_smoothing, self.class_weight = drop_rate, label_smoothing, class_weight
        self.smoothing, self.aux_weight, self.n_models = smoothing, aux_weight, n_models
        self.seed, self.device, self.progress = seed, device, progress

    # -- inputs ------------------------------------------------------------------
    @staticmethod
    def _mode(X) -> str:
        if isinstance(X, (list, tuple)):
            if not all(np.ndim(x) == 2 for x in X):
                raise ValueError("vit: a list input must hold spectrograms of shape (n_mels, n_frames)")
            return "spectrogram"
        if np.ndim(X) == 4:
            return "image"
        raise ValueError(f"vit: expected a list of spectrograms (n_mels, n_frames) or images (n, C, H, W), got shape {np.shape(X)}")

    def _prepare(self, X) -> list[np.ndarray] | np.ndarray:
        """Normalise inputs with the statistics stored at fit time."""
        mode = self._mode(X)
        if mode != self.mode_:
            raise ValueError(f"vit: fitted on {self.mode_}s, got {mode}s")
        if mode == "spectrogram":
            out = []
            for i, s in enumerate(X):
                s = np.asarray(s, dtype=np.float32)
                if s.shape[0] != self.img_size_[0] or s.shape[1] == 0 or not np.all(np.isfinite(s)):
                    raise ValueError(f"vit: spectrogram {i} has shape {s.shape} or non-finite values; expected ({self.img_size_[0]}, n_frames)")
                out.append(((s - s.mean()) - self.band_mean_[:, None]) / self.band_std_[:, None])
            return out
        X = np.asarray(X, dtype=np.float32)
        if X.shape[1:] != (self.in_chans_, *self.img_size_) or not np.all(np.isfinite(X)):
            raise ValueError(f"vit: expected finite images of shape (n, {self.in_chans_}, {self.img_size_[0]}, {self.img_size_[1]}), got {X.shape}")
        return (X - self.mean_[None, :, None, None]) / self.std_[None, :, None, None]

    def _build(self) -> nn.Module:
        from timm.models.vision_transformer import VisionTransformer

        return VisionTransformer(
            img_size=tuple(self.img_size_), patch_size=tuple(self.patch_), in_chans=self.in_chans_,
            num_classes=len(self.classes_) + sum(self.aux_sizes_), embed_dim=self.embed_dim, depth=self.depth, num_heads=self.num_heads,
            mlp_ratio=self.mlp_ratio, drop_rate=self.drop_rate, class_token=self.pool == "token", global_pool=self.pool,
        )

    def _fit(self, X, y, groups, auxiliary=None):
        self.mode_ = self._mode(X)
        auxiliary = auxiliary or {}
        self.aux_names_, self.aux_sizes_ = list(auxiliary), [k for _, k in auxiliary.values()]
        if self.mode_ == "spectrogram":
            self.in_chans_, self.img_size_ = 1, (int(np.shape(X[0])[0]), int(self.window))
            self.patch_ = tuple(self.patch_size) if isinstance(self.patch_size, (list, tuple)) else ((8, 16) if self.patch_size is None else (self.patch_size,) * 2)
            # Per-band statistics over all training frames, after removing each clip's level.
            frames = np.concatenate([np.asarray(s) - np.mean(s) for s in X], axis=1)
            self.band_mean_, self.band_std_ = frames.mean(axis=1), frames.std(axis=1) + 1e-6
        else:
            X = np.asarray(X, dtype=np.float32)
            self.in_chans_, self.img_size_ = int(X.shape[1]), (int(X.shape[2]), int(X.shape[3]))
            p = self.patch_size or 8
            self.patch_ = tuple(p) if isinstance(p, (list, tuple)) else (p, p)
            self.mean_, self.std_ = X.mean(axis=(0, 2, 3)), X.std(axis=(0, 2, 3)) + 1e-6
        if any(s % p for s, p in zip(self.img_size_, self.patch_)):
            raise ValueError(f"vit: input size {self.img_size_} is not a multiple of patch_size {self.patch_}")
        data = self._prepare(X)
        # Auxiliary heads: their labels (-1 = unknown) and class weights over the known ones.
        aux = [(torch.as_tensor(labels), _class_weights(labels[labels >= 0], k, self.class_weight)) for labels, k in auxiliary.values()]
        self.nets_ = [self._train_one(data, y, aux, self.seed + m) for m in range(int(self.n_models))]

    @property
    def net_(self) -> nn.Module:
        """The first network of the ensemble (all of them: ``nets_``)."""
        return self.nets_[0]

    def _train_one(self, data, y, aux, seed: int) -> nn.Module:
        """One network trained from scratch with its own seed (AdamW, one-cycle schedule)."""
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        device = default_device(self.device)
        net = self._build().to(device)
        weight = torch.as_tensor(_class_weights(y, len(self.classes_), self.class_weight), dtype=torch.float32, device=device)
        aux = [(labels, torch.as_tensor(w, dtype=torch.float32, device=device)) for labels, w in aux]
        bounds = np.cumsum([len(self.classes_), *self.aux_sizes_])  # main head, then each auxiliary head
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        steps_per_epoch = int(np.ceil(len(y) / self.batch_size))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=max(1, steps_per_epoch * int(self.epochs)), pct_start=0.15)
        yt = torch.as_tensor(y)
        net.train()
        for _ in progress_bar(range(int(self.epochs)), self.progress, f"ViT ({self.mode_}s, seed {seed})", int(self.epochs)):
            order = rng.permutation(len(y))
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                logits = net(self._augment(data, idx, rng).to(device))
                loss = nn.functional.cross_entropy(logits[:, : bounds[0]], yt[idx].to(device), weight=weight, label_smoothing=self.label_smoothing)
                for (labels, w), lo, hi in zip(aux, bounds[:-1], bounds[1:]):
                    target = labels[idx].to(device)
                    if (target >= 0).any():  # ignore_index=-1 skips unknown labels
                        aux_loss = nn.functional.cross_entropy(logits[:, lo:hi], target, weight=w, ignore_index=-1, label_smoothing=self.label_smoothing)
                        loss = loss + self.aux_weight * aux_loss / len(aux)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        return net.eval().cpu()

    def _augment(self, data, idx, rng) -> torch.Tensor:
        if self.mode_ == "spectrogram":
            w = self.img_size_[1]
            crops = []
            for i in idx:
                s = data[i]
                if s.shape[1] <= w:
                    s = np.tile(s, (1, int(np.ceil(w / s.shape[1]))))
                start = rng.integers(0, s.shape[1] - w + 1)
                crops.append(s[:, start : start + w])
            return torch.as_tensor(np.stack(crops))[:, None]
        x = torch.as_tensor(data[idx])
        flip = torch.as_tensor(rng.random(len(idx)) < 0.5)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        dy, dx = (int(v) for v in rng.integers(-3, 4, 2))
        return torch.roll(x, shifts=(dy, dx), dims=(2, 3))

    def _windows(self, data) -> tuple[torch.Tensor, np.ndarray]:
        """All model inputs for prediction and which item each belongs to."""
        from ..features.audio import time_windows

        if self.mode_ == "spectrogram":
            wins = [time_windows(s, self.img_size_[1]) for s in data]
            owner = np.repeat(np.arange(len(wins)), [len(w) for w in wins])
            return torch.as_tensor(np.concatenate(wins))[:, None], owner
        x = torch.as_tensor(data)
        return torch.cat([x, x.flip(-1)]), np.concatenate([np.arange(len(x))] * 2)

    @torch.no_grad()
    def _predict_local(self, X):
        inputs, owner = self._windows(self._prepare(X))
        device = default_device(self.device)
        k = len(self.classes_)  # the main head; auxiliary heads follow it
        out = np.zeros((_n_items(X), k))
        for net in self.nets_:  # the ensemble's mean probability over every window of an item
            net.to(device)
            probs = torch.cat([net(inputs[s : s + 256].to(device))[:, :k].softmax(dim=1).cpu() for s in range(0, len(inputs), 256)]).numpy()
            net.cpu()
            np.add.at(out, owner, probs)
        return out / out.sum(axis=1, keepdims=True)

    @torch.no_grad()
    def attention_rollout(self, x) -> np.ndarray:
        """Where the model looks: attention rollout (Abnar & Zuidema 2020).

        Multiplies the head-averaged attention matrices of all blocks (each
        mixed half-and-half with the identity, for the residual connections)
        and reads the class token's row over the patches (with ``pool="avg"``,
        the mean row of all tokens, since their average is what is classified).

        Parameters
        ----------
        x : one spectrogram (n_mels, n_frames) or one image (C, H, W)

        Returns
        -------
        float array of the input's spatial shape ((n_mels, n_frames) or (H, W)),
        each patch's share of attention (sums to 1 per window), averaged over
        overlapping windows.
        """
        if not hasattr(self, "nets_"):
            raise RuntimeError("attention_rollout needs a fitted ViT")
        item = [np.asarray(x, dtype=np.float32)] if self.mode_ == "spectrogram" else np.asarray(x, dtype=np.float32)[None]
        inputs, _ = self._windows(self._prepare(item))
        if self.mode_ == "image":
            inputs = inputs[:1]  # the image itself, not its mirror
        maps = np.mean([self._rollout(net, inputs) for net in self.nets_], axis=0)  # (n_windows, grid_h, grid_w)
        ph, pw = self.patch_
        big = maps.repeat(ph, axis=1).repeat(pw, axis=2)  # back to input pixels
        if self.mode_ == "image":
            return big[0]
        from ..features.audio import time_windows

        n_frames = max(np.shape(x)[1], self.img_size_[1])
        w = self.img_size_[1]
        starts = [int(s) for s in _window_starts(n_frames, w)]
        total, count = np.zeros((self.img_size_[0], n_frames)), np.zeros((1, n_frames))
        for m, s in zip(big, starts):
            total[:, s : s + w] += m
            count[:, s : s + w] += 1
        out = total / np.maximum(count, 1)
        return out[:, : np.shape(x)[1]]

    @staticmethod
    def _rollout(net: nn.Module, inputs: torch.Tensor) -> np.ndarray:
        blocks = net.blocks
        captured: list[torch.Tensor] = []
        hooks, fused = [], []
        for blk in blocks:
            fused.append(blk.attn.fused_attn)
            blk.attn.fused_attn = False  # the explicit path exposes the attention matrix
            hooks.append(blk.attn.attn_drop.register_forward_hook(lambda m, inp, out: captured.append(out.detach())))
        try:
            net.eval()(inputs)
        finally:
            for blk, f, h in zip(blocks, fused, hooks):
                blk.attn.fused_attn = f
                h.remove()
        n_tokens = captured[0].shape[-1]
        rollout = torch.eye(n_tokens).expand(inputs.shape[0], n_tokens, n_tokens)
        for attn in captured:
            a = 0.5 * attn.mean(dim=1) + 0.5 * torch.eye(n_tokens)
            a = a / a.sum(dim=-1, keepdim=True)
            rollout = a @ rollout
        n_prefix = n_tokens - int(np.prod(net.patch_embed.grid_size))
        # With a class token, its row; with average pooling, the mean row of all tokens.
        cls_to_patches = rollout[:, 0, n_prefix:] if n_prefix else rollout.mean(dim=1)
        cls_to_patches = cls_to_patches / cls_to_patches.sum(dim=1, keepdim=True)
        return cls_to_patches.reshape(-1, *net.patch_embed.grid_size).numpy()

    def _state(self):
        arrays = {k: v for m, net in enumerate(self.nets_) for k, v in _torch_state(net, f"net{m}").items()}
        meta = {"mode_": self.mode_, "in_chans_": self.in_chans_, "img_size_": list(self.img_size_), "patch_": list(self.patch_),
                "aux_names_": list(self.aux_names_), "aux_sizes_": [int(k) for k in self.aux_sizes_], "n_nets_": len(self.nets_)}
        if self.mode_ == "spectrogram":
            arrays.update({"band_mean_": self.band_mean_, "band_std_": self.band_std_})
        else:
            arrays.update({"mean_": self.mean_, "std_": self.std_})
        return arrays, meta

    def _load_state(self, arrays, meta):
        self.mode_, self.in_chans_ = meta["mode_"], int(meta["in_chans_"])
        self.img_size_, self.patch_ = tuple(meta["img_size_"]), tuple(meta["patch_"])
        self.aux_names_, self.aux_sizes_ = list(meta.get("aux_names_", [])), [int(k) for k in meta.get("aux_sizes_", [])]
        if self.mode_ == "spectrogram":
            self.band_mean_, self.band_std_ = np.asarray(arrays["band_mean_"]), np.asarray(arrays["band_std_"])
        else:
            self.mean_, self.std_ = np.asarray(arrays["mean_"]), np.asarray(arrays["std_"])
        self.nets_ = []
        for m in range(int(meta["n_nets_"])):
            net = self._build()
            _load_torch_state(net, arrays, f"net{m}")
            self.nets_.append(net.eval())


class LabelMapCalculator(Calculator):
    """Use a ready-made classifier's classes as the metaproperty's values.

    For encoders that already output class probabilities (a Hub audio or image
    classification checkpoint, ``head="classifier"``), ``mapping[j]`` is the
    value index of the encoder's class ``j`` (``-1`` drops it); the
    probabilities of classes that map to the same value add up. Nothing is
    learnt: ``fit`` only records which values exist. :class:`MetapropertyExtractor`
    builds ``mapping`` from the encoder's class names when it is not given
    (``"male"``, ``"F"``, an age such as ``"25"`` or a range such as ``"20-29"``,
    read at its middle)."""

    name = "labels"

    def __init__(self, mapping: Sequence[int] | None = None, smoothing: float = 1e-3):
        self.mapping, self.smoothing = mapping, smoothing

    def fit(self, X, y=None, *, n_values: int | None = None, groups=None) -> "LabelMapCalculator":
        if self.mapping is None:
            raise ValueError("labels: pass mapping= (value index of each encoder class)")
        mapping = np.asarray(self.mapping, dtype=np.int64)
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(mapping):
            raise ValueError(f"labels: the encoder gives {X.shape[-1] if X.ndim else 0} classes but mapping has {len(mapping)} entries")
        self.n_values_ = int(n_values if n_values is not None else mapping.max() + 1)
        self.classes_ = np.unique(mapping[mapping >= 0])
        if len(self.classes_) == 0:
            raise ValueError("labels: no encoder class maps to a value of the metaproperty")
        self.mapping_ = mapping
        return self

    def _predict_local(self, X):
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.mapping_) or not np.all(np.isfinite(X)):
            raise ValueError(f"labels: expected finite class probabilities of shape (n, {len(self.mapping_)}), got {X.shape}")
        out = np.zeros((len(X), len(self.classes_)))
        for j, v in enumerate(self.mapping_):
            if v >= 0:
                out[:, np.searchsorted(self.classes_, v)] += X[:, j]
        total = out.sum(axis=1, keepdims=True)
        return np.where(total > 0, out / np.maximum(total, 1e-300), 1.0 / len(self.classes_))

    def predict_proba(self, X):
        if not hasattr(self, "mapping_"):
            raise RuntimeError("LabelMapCalculator is not fitted; call fit first")
        local = self._predict_local(X)
        out = np.zeros((len(local), self.n_values_))
        out[:, self.classes_] = local
        s = float(self.smoothing)
        return (1 - s) * out + s / self.n_values_

    def state(self):
        return {"classes_": self.classes_.astype(np.int64), "mapping_": self.mapping_}, {"n_values_": int(self.n_values_)}

    def load_state(self, arrays, meta):
        self.classes_, self.mapping_ = np.asarray(arrays["classes_"]), np.asarray(arrays["mapping_"])
        self.n_values_ = int(meta["n_values_"])
        return self


def label_mapping(labels: Sequence[str], metaproperty) -> list[int]:
    """Value index of each class name of a ready-made classifier (see :class:`LabelMapCalculator`).

    Raises ValueError naming the class names that cannot be read."""
    import re

    mp = get_metaproperty(metaproperty)
    out, bad = [], []
    for label in labels:
        text = str(label).strip()
        try:
            out.append(int(mp.encode([text])[0]))
            continue
        except ValueError:
            pass
        numbers = [float(x) for x in re.findall(r"\d+(?:\.\d+)?", text)]
        if mp.kind == "binned" and numbers:
            out.append(int(mp.encode([np.mean(numbers[:2])])[0]))
        else:
            bad.append(text)
    if bad:
        raise ValueError(f"cannot map the classifier's classes {bad} to {mp.name!r} values {list(mp.values)}; pass calculator_kwargs={{'mapping': [...]}}")
    return out


def _window_starts(n_frames: int, width: int, hop: int | None = None) -> list[int]:
    """Start frames of :func:`vfmatch.audio.time_windows` (same rule)."""
    hop = max(1, int(hop or width // 2))
    n = max(n_frames, width)
    starts = list(range(0, n - width + 1, hop))
    if starts[-1] != n - width:
        starts.append(n - width)
    return starts


CALCULATORS: dict[str, type[Calculator]] = {
    c.name: c for c in (LogisticCalculator, SVMCalculator, KNNCalculator, MLPCalculator, ViTCalculator, LabelMapCalculator)
}


def create_calculator(name: str, **kwargs) -> Calculator:
    """Make a calculator by name (``logistic``, ``svm``, ``knn``, ``mlp``, ``vit``, ``labels``)."""
    if name not in CALCULATORS:
        raise KeyError(f"unknown calculator {name!r}; choose from {sorted(CALCULATORS)}")
    return CALCULATORS[name](**kwargs)


def _select(feats, rows: np.ndarray):
    return [feats[i] for i in rows] if isinstance(feats, list) else feats[rows]


# ---------------------------------------------------------------------------
# One extractor
# ---------------------------------------------------------------------------


# Encoders draw progress bars only for this many items or more: short work needs none.
PROGRESS_MIN_ITEMS = 500


def _is_population(x) -> bool:
    return hasattr(x, "identities") and hasattr(x, "voices") and hasattr(x, "faces")


class MetapropertyExtractor(BaseEstimator):
    """One metaproperty from one modality: encoder -> representation -> calculator.

    Parameters
    ----------
    metaproperty : str
        A registered metaproperty (``vfmatch.list_metaproperties()``).
    modality : {"voice", "face"}
    encoder : str or Encoder
        A name for :func:`vfmatch.encoders.create_encoder`, or an encoder
        instance (shared between extractors by :class:`ExtractorSet`).
    calculator : str
        ``logistic``, ``svm``, ``knn``, ``mlp`` or ``vit``.
    encoder_kwargs, calculator_kwargs : dict, optional
        Keyword arguments for the encoder and calculator.
    auxiliary : sequence of str, optional
        Other metaproperties learnt alongside as extra training targets
        (multi-task; calculator ``vit`` only). Prediction is still over this
        extractor's metaproperty alone.
    batch_size : int
        Items encoded together.
    cache : bool
        Cache features on disk (:func:`population_features`).
    progress : bool
        Show tqdm progress bars.

    After ``fit``: ``encoder_``, ``calculator_``, ``values_`` (the value labels),
    ``class_counts_`` (training items per value), ``fit_seconds_``.

    Examples
    --------
    >>> ex = MetapropertyExtractor("gender", "voice", encoder="f0-formants", calculator="logistic")
    >>> ex.fit(train_population).predict_proba(test_population)   # (n_clips, 2)
    """

    def __init__(
        self,
        metaproperty: str = "gender",
        modality: str = "voice",
        encoder: str | Encoder = "logmel-stats",
        calculator: str = "logistic",
        encoder_kwargs: dict | None = None,
        calculator_kwargs: dict | None = None,
        auxiliary: Sequence[str] | None = None,
        batch_size: int = 32,
        cache: bool = True,
        progress: bool = False,
    ):
        self.metaproperty, self.modality, self.encoder, self.calculator = metaproperty, modality, encoder, calculator
        self.encoder_kwargs, self.calculator_kwargs, self.auxiliary = encoder_kwargs, calculator_kwargs, auxiliary
        self.batch_size, self.cache, self.progress = batch_size, cache, progress

    # -- construction --------------------------------------------------------------
    @property
    def metaproperty_(self) -> Metaproperty:
        return get_metaproperty(self.metaproperty)

    def _make_encoder(self) -> Encoder:
        if self.modality not in ("voice", "face"):
            raise ValueError(f"modality must be 'voice' or 'face', not {self.modality!r}")
        if isinstance(self.encoder, Encoder):
            if self.encoder.modality != self.modality:
                raise ValueError(f"a {self.encoder.modality} encoder cannot serve a {self.modality} extractor")
            return self.encoder
        return create_encoder(self.modality, self.encoder, **(self.encoder_kwargs or {}))

    def _make_calculator(self, encoder: Encoder) -> Calculator:
        kwargs = dict(self.calculator_kwargs or {})
        if self.calculator == "labels" and kwargs.get("mapping") is None:
            if not getattr(encoder, "labels", None):
                raise ValueError(f"calculator 'labels' needs an encoder with class names (a classifier checkpoint); {encoder.name!r} has none")
            kwargs["mapping"] = label_mapping(encoder.labels, self.metaproperty)
        calc = create_calculator(self.calculator, **kwargs)
        if "progress" in calc.get_params() and "progress" not in kwargs:
            calc.set_params(progress=self.progress)  # epochs of long training get a bar
        if calc.input_kind != encoder.output:
            raise ValueError(
                f"calculator {self.calculator!r} takes a {calc.input_kind} but encoder {encoder.name!r} gives a {encoder.output}; "
                f"pair 'vit' with 'logmel' (voice) or 'pixels' (face), the others with vector encoders"
            )
        return calc

    def fingerprint(self) -> str:
        """What this extractor's outputs depend on, valid before ``fit``: the
        metaproperty and its values, the modality, the encoder's fingerprint
        (configuration, weights, code) and the calculator's name, parameters and
        code (:func:`vfmatch.utils.code_fingerprint`). Part of every cache key of
        extracted tables, so editing an encoder or a calculator recomputes them."""
        encoder = self.encoder_ if hasattr(self, "encoder_") else self._make_encoder()
        calc_cls = CALCULATORS[self.calculator] if self.calculator in CALCULATORS else None
        doc = {
            "metaproperty": [self.metaproperty, list(self.metaproperty_.values)],
            "modality": self.modality,
            "encoder": encoder.fingerprint(),
            "calculator": [self.calculator, self.calculator_kwargs or {}, code_fingerprint(calc_cls) if calc_cls else None],
            "auxiliary": list(self.auxiliary or []),
            "code": code_fingerprint(type(self)),
        }
        return hashlib.sha1(json.dumps(to_jsonable(doc), sort_keys=True, default=str).encode()).hexdigest()[:20]

    # -- fitting -------------------------------------------------------------------
    def fit(self, X, y=None, *, landmarks=None, groups=None, auxiliary_y: Mapping[str, Sequence] | None = None) -> "MetapropertyExtractor":
        """Train the encoder (if trainable and not yet fitted) and the calculator.

        Parameters
        ----------
        X : Population, or raw items (a list of clips, or face images (n, H, W, 3))
        y : array-like, shape (n,), only with raw items
            Ground-truth values (labels such as ``"female"``, or numbers for
            binned metaproperties); missing values are skipped.
        landmarks : (n, 5, 2), optional, faces given as raw items
        groups : (n,), optional, identity of each raw item (used by ``svm`` for
            identity-grouped calibration folds and by trainable encoders)
        auxiliary_y : {name: (n,) values}, only with raw items and ``auxiliary``
            Ground truth of the auxiliary metaproperties (a Population has it).
        """
        t0 = time.perf_counter()
        mp = self.metaproperty_
        encoder = self._make_encoder()
        if _is_population(X):
            if y is not None:
                raise ValueError("fit(population) takes the labels from the population; do not pass y")
            if not X.has_metaproperty(mp.name):
                raise ValueError(f"the population has no ground truth for {mp.name!r} (column {mp.source_column!r})")
            labels = X.labels(mp.name, self.modality)
            aux_labels = {name: X.labels(name, self.modality) for name in self.auxiliary or ()}
            groups = X.voice_speakers if self.modality == "voice" else X.face_speakers
            progress = self.progress and len(labels) >= PROGRESS_MIN_ITEMS
            if encoder.trainable and not encoder.is_fitted:
                items, lm = population_items(X, self.modality)
                encoder.fit(items, groups, progress=progress, **({"landmarks": lm} if self.modality == "face" else {}))
            feats = population_features(encoder, X, batch_size=self.batch_size, progress=progress, cache=self.cache)
        else:
            if y is None:
                raise ValueError("fit(items, y): labels are needed when X is not a Population")
            labels = mp.encode(np.asarray(y, dtype=object))
            missing = set(self.auxiliary or ()) - set(auxiliary_y or {})
            if missing:
                raise ValueError(f"fit(items, y): pass auxiliary_y= with the ground truth of {sorted(missing)}")
            aux_labels = {name: get_metaproperty(name).encode(np.asarray(auxiliary_y[name], dtype=object)) for name in self.auxiliary or ()}
            for name, a in aux_labels.items():
                if len(a) != len(labels):
                    raise ValueError(f"auxiliary_y[{name!r}] has {len(a)} values for {len(labels)} items")
            progress = self.progress and len(labels) >= PROGRESS_MIN_ITEMS
            if encoder.trainable and not encoder.is_fitted:
                if groups is None:
                    raise ValueError(f"encoder {encoder.name!r} is trainable: pass groups= (the identity of each item)")
                encoder.fit(X, groups, progress=progress, **({"landmarks": landmarks} if self.modality == "face" else {}))
            feats = encoder.encode(X, batch_size=self.batch_size, progress=progress, **({"landmarks": landmarks} if self.modality == "face" else {}))
        return self._fit_features(encoder, feats, labels, groups, time.perf_counter() - t0, aux_labels)

    def _fit_features(self, encoder: Encoder, feats, labels: np.ndarray, groups, seconds_so_far: float = 0.0, aux_labels=None):
        t0 = time.perf_counter()
        mp = self.metaproperty_
        known = np.flatnonzero(np.asarray(labels) >= 0)
        if known.size == 0:
            raise ValueError(f"no item has a known {mp.name!r}")
        calc = self._make_calculator(encoder)
        auxiliary = {name: (np.asarray(a)[known], get_metaproperty(name).n_values) for name, a in (aux_labels or {}).items()}
        calc.fit(_select(feats, known), np.asarray(labels)[known], n_values=mp.n_values, groups=None if groups is None else np.asarray(groups)[known],
                 **({"auxiliary": auxiliary} if auxiliary else {}))
        self.encoder_, self.calculator_ = encoder, calc
        self.values_ = list(mp.values)
        self.class_counts_ = np.bincount(np.asarray(labels)[known], minlength=mp.n_values).astype(np.int64)
        self.fit_seconds_ = round(seconds_so_far + time.perf_counter() - t0, 3)
        return self

    # -- prediction ------------------------------------------------------------------
    def _check_fitted(self):
        if not hasattr(self, "calculator_"):
            raise RuntimeError(f"this {self.modality} {self.metaproperty} extractor is not fitted; call fit first")

    def _features(self, X, landmarks=None):
        self._check_fitted()
        if _is_population(X):
            n = X.voices.num_rows if self.modality == "voice" else X.faces.num_rows
            progress = self.progress and n >= PROGRESS_MIN_ITEMS
            return population_features(self.encoder_, X, batch_size=self.batch_size, progress=progress, cache=self.cache)
        kw = {"landmarks": landmarks} if self.modality == "face" else {}
        progress = self.progress and _n_items(X) >= PROGRESS_MIN_ITEMS
        return self.encoder_.encode(X, batch_size=self.batch_size, progress=progress, **kw)

    def predict_proba(self, X, *, landmarks=None) -> np.ndarray:
        """Distributions over the metaproperty's values, shape (n, n_values), rows summing to 1.

        ``X`` is a Population (rows of ``population.voices`` or ``.faces``) or
        raw items (a list of 16 kHz clips; face images (n, H, W, 3) with
        optional ``landmarks``). Bad items raise ``ValueError``."""
        return self.predict_proba_features(self._features(X, landmarks))

    def predict_proba_features(self, feats) -> np.ndarray:
        """Like :meth:`predict_proba` from already encoded items."""
        self._check_fitted()
        p = self.calculator_.predict_proba(feats)
        return self.metaproperty_.check_distribution(p, where=f"{self.modality} extractor")

    def predict(self, X, *, landmarks=None) -> np.ndarray:
        """The most probable value of each item (labels, e.g. ``"female"``)."""
        return self.metaproperty_.decode(self.predict_proba(X, landmarks=landmarks).argmax(axis=1))

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "calculator_")

    # -- saving --------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write ``extractor.json``, ``calculator.safetensors`` and, for trained
        or randomly initialised encoders, ``encoder.safetensors``."""
        from safetensors.numpy import save_file
        from safetensors.torch import save_file as save_torch

        self._check_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays, calc_meta = self.calculator_.state()
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(folder / "calculator.safetensors"))
        if self.encoder_.saves_weights:
            save_torch({k: v.detach().cpu().contiguous() for k, v in self.encoder_.state_dict().items()}, str(folder / "encoder.safetensors"))
        params = self.get_params()
        params["encoder"] = self.encoder_.name
        params["encoder_kwargs"] = self.encoder_.config()["kwargs"]
        mp = self.metaproperty_
        doc = {
            "format": _FORMAT,
            "params": params,
            "metaproperty": {"name": mp.name, "kind": mp.kind, "values": list(mp.values)},
            "encoder": {**self.encoder_.config(), "is_fitted": self.encoder_.is_fitted, "saves_weights": self.encoder_.saves_weights},
            "calculator": {"name": self.calculator, "params": self.calculator_.get_params(), "meta": calc_meta},
            "class_counts_": self.class_counts_.tolist(),
            "fit_seconds_": self.fit_seconds_,
        }
        (folder / "extractor.json").write_text(json.dumps(doc, indent=2, default=_json_default))
        return folder

    @classmethod
    def load(cls, folder: str | Path, *, encoder: Encoder | None = None) -> "MetapropertyExtractor":
        """Inverse of :meth:`save`. ``encoder`` may pass an already loaded, identical encoder to share it."""
        from safetensors.numpy import load_file
        from safetensors.torch import load_file as load_torch

        folder = Path(folder)
        path = folder / "extractor.json"
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; not a folder written by MetapropertyExtractor.save")
        doc = json.loads(path.read_text())
        if doc.get("format") != _FORMAT:
            raise ValueError(f"{path}: format {doc.get('format')!r}, expected {_FORMAT!r}")
        mp = get_metaproperty(doc["metaproperty"]["name"])
        if list(mp.values) != doc["metaproperty"]["values"]:
            raise ValueError(f"{path}: saved values of {mp.name!r} {doc['metaproperty']['values']} differ from the registered {list(mp.values)}")
        ex = cls(**doc["params"])
        if encoder is None:
            enc_doc = doc["encoder"]
            encoder = create_encoder(enc_doc["modality"], enc_doc["name"], **enc_doc["kwargs"])
            if enc_doc["saves_weights"]:
                encoder.load_state_dict(load_torch(str(folder / "encoder.safetensors")))
            encoder.is_fitted = bool(enc_doc["is_fitted"])
        calc = create_calculator(doc["calculator"]["name"], **doc["calculator"]["params"])
        calc.load_state(load_file(str(folder / "calculator.safetensors")), doc["calculator"]["meta"])
        ex.encoder_, ex.calculator_ = encoder, calc
        ex.values_ = list(mp.values)
        ex.class_counts_ = np.asarray(doc["class_counts_"], dtype=np.int64)
        ex.fit_seconds_ = doc.get("fit_seconds_")
        return ex


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.ndarray, tuple)):
        return list(o)
    raise TypeError(f"cannot write {type(o).__name__} to JSON")


# ---------------------------------------------------------------------------
# The default set: one voice and one face extractor per metaproperty
# ---------------------------------------------------------------------------

# Keyword arguments of MetapropertyExtractor per metaproperty and modality.
#
# Vision transformers for skin tone, as the patent says: the voice's on a log-Mel
# spectrogram with 20 ms frames, whose tokens are whole-spectrum slices of 80 ms,
# the face's on the aligned 64 x 64 image with 8 x 8 patches; both small (2 blocks
# of width 32) and averaging their tokens, which trained best on a few hundred people.
# A voice reveals skin tone only through what goes with it (accent and mother
# tongue, which go with ethnicity), so the voice ViT also learns those as
# auxiliary targets (weighted 2:1 against skin tone), and three of them are
# averaged: on held-out people of the simulated population a single ViT trained on
# skin tone alone scored 0.19-0.25 balanced accuracy (chance 1/6) and changed by
# +-0.04 with its seed; this ensemble scored 0.23-0.32 on three populations.
#
# Elsewhere logistic regression: on held-out people it scored as well as or better
# than the MLP (which the patent suggests for age) and SVM, and it is fast. Voice
# age and weight read the 19 pitch/formant/voice-quality statistics alone (adding
# the 128 Mel-band statistics let the regression fit noise); voice BMI, whose cues
# are a darker, breathier spectrum, keeps the Mel-band statistics, reduced to 32
# principal components. Face ethnicity, language and accent read colours (skin,
# hair, eyes): adding the thumbnail (which also sees face proportions) did not
# score better on held-out people.
def _spec(encoder, encoder_kwargs, calculator, calculator_kwargs, auxiliary=None) -> dict:
    return dict(encoder=encoder, encoder_kwargs=encoder_kwargs, calculator=calculator, calculator_kwargs=calculator_kwargs, auxiliary=auxiliary)


_VOICE_VEC = _spec("f0-formants+logmel-stats", {}, "logistic", {"C": 0.1})
_VOICE_STATS = _spec("f0-formants", {}, "logistic", {"C": 0.1})
_VOICE_SPECTRUM = _spec("f0-formants+logmel-stats", {}, "logistic", {"C": 0.1, "pca": 32})
_FACE_VEC = _spec("thumbnail+ita+colours", {}, "logistic", {"C": 0.05})
_FACE_COLOURS = _spec("ita+colours", {}, "logistic", {"C": 0.1})
_SMALL_VIT = {"embed_dim": 32, "num_heads": 2, "depth": 2, "pool": "avg", "lr": 3e-3}
_VOICE_VIT = _spec("logmel", {"hop_length": 320, "n_fft": 640}, "vit", {**_SMALL_VIT, "patch_size": (64, 4), "window": 256, "epochs": 60, "n_models": 3, "aux_weight": 2.0},
                   auxiliary=("ethnicity", "accent", "mother_tongue"))
_FACE_VIT = _spec("pixels", {"size": 64}, "vit", {**_SMALL_VIT, "patch_size": 8, "epochs": 25})
DEFAULT_EXTRACTORS: dict[str, dict[str, dict]] = {
    "gender": {"voice": _VOICE_VEC, "face": _FACE_VEC},
    "age": {"voice": _VOICE_STATS, "face": _FACE_VEC},
    "skin_tone": {"voice": _VOICE_VIT, "face": _FACE_VIT},
    "ethnicity": {"voice": _VOICE_VEC, "face": _FACE_COLOURS},
    "weight": {"voice": _VOICE_STATS, "face": _FACE_VEC},
    "bmi": {"voice": _VOICE_SPECTRUM, "face": _FACE_VEC},
    "mother_tongue": {"voice": _VOICE_VEC, "face": _FACE_COLOURS},
    "accent": {"voice": _VOICE_VEC, "face": _FACE_COLOURS},
}
# Quick mode (notebooks and tests under VFMATCH_QUICK=1): fewer epochs, one ViT.
_QUICK_OVERRIDES = {"vit": {"epochs": 5, "n_models": 1}, "mlp": {"epochs": 100}}
_FALLBACK = {"voice": _VOICE_VEC, "face": _FACE_VEC}


class ExtractorSet:
    """One voice and one face extractor per metaproperty.

    Parameters
    ----------
    extractors : list of MetapropertyExtractor, optional
        Defaults to :meth:`default` for ``metaproperties``.
    metaproperties : list of str, optional
        Names for the default set (all of ``DEFAULT_METAPROPERTIES`` if None).
    quick : bool, optional
        Few epochs (default: ``vfmatch.quick_mode()``).
    progress : bool
        Progress bars while fitting and extracting.

    Encoders with the same name and settings are shared, so each one runs
    (and, if trainable, trains) once per population.
    """

    def __init__(self, extractors: Sequence[MetapropertyExtractor] | None = None, *, metaproperties=None, quick: bool | None = None, progress: bool = True):
        self.quick = quick_mode() if quick is None else bool(quick)
        self.progress = progress
        if extractors is None:
            extractors = self.default_extractors(metaproperties, quick=self.quick)
        self.extractors = list(extractors)
        seen = set()
        for ex in self.extractors:
            key = (ex.modality, ex.metaproperty)
            if key in seen:
                raise ValueError(f"two {ex.modality} extractors for {ex.metaproperty!r}")
            seen.add(key)
        self._share_encoders()

    @staticmethod
    def default_extractors(metaproperties=None, *, quick: bool = False) -> list[MetapropertyExtractor]:
        """The default extractors (``DEFAULT_EXTRACTORS``; vector encoder + logistic
        regression for metaproperties it does not list)."""
        out = []
        for name in metaproperties or DEFAULT_METAPROPERTIES:
            mp = get_metaproperty(name)
            for modality in ("voice", "face"):
                spec = dict(DEFAULT_EXTRACTORS.get(mp.name, _FALLBACK)[modality])
                quick_kw = _QUICK_OVERRIDES.get(spec["calculator"], {}) if quick else {}
                spec.update(encoder_kwargs=dict(spec["encoder_kwargs"]), calculator_kwargs={**spec["calculator_kwargs"], **quick_kw})
                out.append(MetapropertyExtractor(mp.name, modality, **spec))
        return out

    def _share_encoders(self) -> None:
        shared: dict[str, Encoder] = {}
        for ex in self.extractors:
            enc = ex.encoder_ if hasattr(ex, "encoder_") else ex._make_encoder()
            key = json.dumps(enc.config(), sort_keys=True, default=str) + (enc.fingerprint() if enc.is_fitted else "")
            enc = shared.setdefault(key, enc)
            ex.encoder = enc
            if hasattr(ex, "encoder_"):
                ex.encoder_ = enc

    def fingerprint(self) -> str:
        """Hash of every extractor's :meth:`MetapropertyExtractor.fingerprint` and the
        quick setting: the cache key part of tables this set extracts."""
        parts = sorted(ex.fingerprint() for ex in self.extractors)
        return hashlib.sha1(json.dumps([parts, self.quick]).encode()).hexdigest()[:20]

    # -- access --------------------------------------------------------------------------
    @property
    def metaproperties(self) -> list[str]:
        names = []
        for ex in self.extractors:
            if ex.metaproperty not in names:
                names.append(ex.metaproperty)
        return names

    def get(self, metaproperty: str, modality: str) -> MetapropertyExtractor:
        for ex in self.extractors:
            if ex.metaproperty == metaproperty and ex.modality == modality:
                return ex
        raise KeyError(f"no {modality} extractor for {metaproperty!r}; have {self.metaproperties}")

    @property
    def voice(self) -> dict[str, MetapropertyExtractor]:
        return {ex.metaproperty: ex for ex in self.extractors if ex.modality == "voice"}

    @property
    def face(self) -> dict[str, MetapropertyExtractor]:
        return {ex.metaproperty: ex for ex in self.extractors if ex.modality == "face"}

    def __repr__(self) -> str:
        rows = [f"  {ex.modality:5s} {ex.metaproperty:14s} {getattr(ex.encoder, 'name', ex.encoder)} -> {ex.calculator}" for ex in self.extractors]
        return "ExtractorSet(\n" + "\n".join(rows) + "\n)"

    # -- fitting and extraction --------------------------------------------------------------
    def fit(self, population) -> "ExtractorSet":
        """Fit every extractor on ``population`` (the training identities).

        Each encoder runs once; trainable encoders train once. Each extractor's
        ``fit_seconds_`` is its wall time (its calculator, plus its encoder the
        first time that encoder is needed); ``fit_seconds_`` here is the total."""
        t0 = time.perf_counter()
        todo = [ex for ex in self.extractors if population.has_metaproperty(ex.metaproperty)]
        missing = sorted({ex.metaproperty for ex in self.extractors} - {ex.metaproperty for ex in todo})
        if missing:
            raise ValueError(f"the population has no ground truth for {missing}; choose metaproperties= it has")
        for ex in progress_bar(todo, self.progress, "extractors", len(todo)):
            ex.progress = self.progress
            ex.fit(population)
        self.fit_seconds_ = round(time.perf_counter() - t0, 2)
        return self

    def _transform(self, population, modality: str) -> dict[str, np.ndarray]:
        return {ex.metaproperty: ex.predict_proba(population) for ex in self.extractors if ex.modality == modality}

    def transform_voices(self, population) -> dict[str, np.ndarray]:
        """``{metaproperty: (n_clips, n_values)}`` in the row order of ``population.voices``."""
        return self._transform(population, "voice")

    def transform_faces(self, population) -> dict[str, np.ndarray]:
        """``{metaproperty: (n_faces, n_values)}`` in the row order of ``population.faces``."""
        return self._transform(population, "face")

    def _predict_items(self, modality: str, items, landmarks=None, batch_size: int = 32) -> dict[str, np.ndarray]:
        feats: dict[int, object] = {}
        out = {}
        for ex in self.extractors:
            if ex.modality != modality:
                continue
            ex._check_fitted()
            key = id(ex.encoder_)
            if key not in feats:  # each shared encoder runs once
                kw = {"landmarks": landmarks} if modality == "face" else {}
                feats[key] = ex.encoder_.encode(items, batch_size=batch_size, **kw)
            out[ex.metaproperty] = ex.predict_proba_features(feats[key])
        return out

    def predict_voices(self, clips, *, batch_size: int = 32) -> dict[str, np.ndarray]:
        """``{metaproperty: (n_clips, n_values)}`` for raw 16 kHz clips (a list of 1-D arrays)."""
        return self._predict_items("voice", clips, batch_size=batch_size)

    def predict_faces(self, images, *, landmarks=None, batch_size: int = 32) -> dict[str, np.ndarray]:
        """``{metaproperty: (n_faces, n_values)}`` for raw face images (n, H, W, 3) and optional landmarks (n, 5, 2)."""
        return self._predict_items("face", images, landmarks=landmarks, batch_size=batch_size)

    def quality_report(self, population, **kwargs):
        """Quality of every extractor on ``population`` (held-out identities);
        see :func:`vfmatch.quality.quality_report`."""
        from .quality import quality_report

        return quality_report(self, population, **kwargs)

    # -- saving ------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """One sub-folder per extractor (``voice-gender/``, ...) and ``extractor_set.json``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        names = []
        for ex in self.extractors:
            sub = f"{ex.modality}-{ex.metaproperty}"
            ex.save(folder / sub)
            names.append(sub)
        doc = {"format": "vfmatch.extractor_set/1", "extractors": names, "quick": self.quick, "fit_seconds_": getattr(self, "fit_seconds_", None)}
        (folder / "extractor_set.json").write_text(json.dumps(doc, indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path, *, progress: bool = True) -> "ExtractorSet":
        """Inverse of :meth:`save`; identical encoders are loaded once and shared."""
        folder = Path(folder)
        path = folder / "extractor_set.json"
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; not a folder written by ExtractorSet.save")
        doc = json.loads(path.read_text())
        extractors = [MetapropertyExtractor.load(folder / sub) for sub in doc["extractors"]]
        out = cls(extractors, quick=doc.get("quick"), progress=progress)
        out.fit_seconds_ = doc.get("fit_seconds_")
        return out
