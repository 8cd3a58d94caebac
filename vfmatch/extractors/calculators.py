"""Representation-to-metaproperty calculators: a representation in, a distribution out.

The patent's FIG. 2A/2B: an encoder (:mod:`vfmatch.features.encoders`) turns a
voice clip or a face image into a representation, and a *calculator* turns the
representation into a probability distribution over a metaproperty's ``K``
values (:mod:`vfmatch.metaproperties`). Calculators follow scikit-learn:
keyword arguments, ``fit``, ``predict_proba``, ``get_params``; nothing is built
or trained in ``__init__``.

Shapes: ``fit(X, y, n_values=K)`` with ``X`` of shape ``(n, dim)`` (vector
calculators) and value indices ``y`` of shape ``(n,)`` in ``0..K-1``;
``predict_proba(X)`` has shape ``(n, K)``, column ``k`` for value index ``k``
(the order of ``Metaproperty.values``), rows summing to 1.

=============  ==========  =====================================================
name           input       model
=============  ==========  =====================================================
``logistic``   vector      standardised features -> multinomial logistic regression
``svm``        vector      linear support vector machine, calibrated to
                           probabilities on out-of-fold decision values
``knn``        vector      nearest-neighbour vote among training embeddings
``mlp``        vector      a small neural network (PyTorch)
``vit``        matrix      a vision transformer (:mod:`vfmatch.extractors.vit`)
``labels``     vector      no training: a ready-made classifier's class
                           probabilities, its classes mapped to the values
=============  ==========  =====================================================

A new calculator is a :class:`Calculator` subclass registered by name, the
timm way: ``@register_calculator("name")``, then ``create_calculator("name",
**kwargs)``; ``list_calculators()`` lists them.

Values never seen in training get probability 0 from the model; every
calculator then mixes in a uniform distribution with weight ``smoothing``
(default 0.001), so no value is ever *impossible* (distances such as the KL
divergence stay finite) and rows still sum to 1.

Saving is ``state()`` -> (arrays for safetensors, JSON-able facts) and
``load_state``: no pickles. Book chapter: ``book/04_metaproperties.ipynb``.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Callable, ClassVar, Mapping, Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, StratifiedKFold, cross_val_predict
from sklearn.svm import LinearSVC
from torch import nn

from ..config import default_device
from ..metaproperties import get_metaproperty
from ..utils import limit_threads

__all__ = [
    "Calculator",
    "LogisticCalculator",
    "SVMCalculator",
    "KNNCalculator",
    "MLPCalculator",
    "LabelMapCalculator",
    "label_mapping",
    "CALCULATORS",
    "register_calculator",
    "create_calculator",
    "list_calculators",
]


# ---------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------

_REGISTRY: dict[str, type["Calculator"]] = {}
# Read-only view of the registry, name -> class (add with register_calculator).
CALCULATORS: Mapping[str, type["Calculator"]] = MappingProxyType(_REGISTRY)


def register_calculator(name: str) -> Callable[[type["Calculator"]], type["Calculator"]]:
    """Class decorator: register a :class:`Calculator` subclass as ``name`` (and set its ``name``).

    Registering a name again replaces the class (re-running a notebook cell)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a calculator name must be a non-empty string, got {name!r}")

    def wrap(cls: type[Calculator]) -> type[Calculator]:
        if not (isinstance(cls, type) and issubclass(cls, Calculator)):
            raise TypeError(f"register_calculator({name!r}) expects a Calculator subclass, got {cls!r}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def create_calculator(name: str, **kwargs) -> "Calculator":
    """An unfitted calculator registered as ``name``, made with ``kwargs`` (see :func:`list_calculators`)."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown calculator {name!r}; choose from {list_calculators()}")
    return _REGISTRY[name](**kwargs)


def list_calculators() -> list[str]:
    """Names of the registered calculators, in registration order."""
    return list(_REGISTRY)


# ---------------------------------------------------------------------------
# The base class and shared helpers
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
    sees only the values present, ``classes_`` (sorted value indices, shape
    ``(k,)``), and ``predict_proba`` puts them back into a row of length ``K``:
    column ``j`` is always value index ``j``, whatever was seen (unlike
    scikit-learn, where the columns are ``classes_``). Subclasses implement
    ``_fit``, ``_predict_local`` (probabilities over ``classes_``, shape
    ``(n, k)``) and ``_state`` / ``_load_state`` (arrays for safetensors, plus
    JSON-able facts), and are registered with :func:`register_calculator`."""

    name: ClassVar[str] = ""  # set by register_calculator
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
            with limit_threads():  # see vfmatch.utils.limit_threads
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


@register_calculator("logistic")
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

    def __init__(self, C: float = 1.0, class_weight: str | None = "balanced", pca: int | None = None, max_iter: int = 2000, smoothing: float = 1e-3):
        self.C, self.class_weight, self.pca, self.max_iter, self.smoothing = C, class_weight, pca, max_iter, smoothing

    def _fit(self, X, y, groups):
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


@register_calculator("svm")
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

    def __init__(self, C: float = 0.1, class_weight: str | None = "balanced", pca: int | None = None, cv: int = 3, smoothing: float = 1e-3):
        self.C, self.class_weight, self.pca, self.cv, self.smoothing = C, class_weight, pca, cv, smoothing

    def _svm(self):
        return LinearSVC(C=self.C, class_weight=self.class_weight, max_iter=5000)

    def _fit(self, X, y, groups):
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


@register_calculator("knn")
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


@register_calculator("mlp")
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


@register_calculator("labels")
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


