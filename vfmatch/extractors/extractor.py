"""One metaproperty extractor: encoder -> representation -> calculator -> distribution.

This is the patent's FIG. 2A (voice) and 2B (image): a voice clip or a face
image goes through an encoder (:mod:`vfmatch.features.encoders`) to a
representation, and a representation-to-metaproperty calculator
(:mod:`vfmatch.extractors.calculators`, :mod:`vfmatch.extractors.vit`) turns it
into a probability distribution over the metaproperty's values
(:mod:`vfmatch.metaproperties`, the patent's Tables 1 and 2).

:class:`MetapropertyExtractor` ties one encoder and one calculator to one
metaproperty and one modality. ``predict_proba`` gives shape
``(n_items, K)``; column ``k`` is the metaproperty's ``values[k]`` (the
fitted extractor's ``classes_``). A population's features are computed once per
encoder and cached (:func:`vfmatch.features.cache.population_features`).

A fitted extractor saves to a folder of JSON and safetensors files: no pickles,
so loading one runs no code from the file.

Book chapter: ``book/04_metaproperties.ipynb``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from safetensors.numpy import load_file, save_file
from safetensors.torch import load_file as load_torch, save_file as save_torch
from sklearn.base import BaseEstimator, clone

from ..features.cache import population_features, population_items
from ..features.encoders import Encoder, create_encoder
from ..metaproperties import Metaproperty, get_metaproperty
from ..fingerprints import traced_code_fingerprint
from ..utils import to_jsonable
from .calculators import CALCULATORS, Calculator, _n_items, create_calculator, label_mapping

__all__ = ["MetapropertyExtractor", "PROGRESS_MIN_ITEMS"]

# The format string of extractor.json; loading refuses any other.
_FORMAT = "vfmatch.extractor/1"

# Encoders draw progress bars only for this many items or more: short work needs none.
PROGRESS_MIN_ITEMS = 500


def _is_population(x) -> bool:
    return hasattr(x, "identities") and hasattr(x, "voices") and hasattr(x, "faces")


@functools.lru_cache(maxsize=None)
def _code_of(cls: type) -> str:
    """:func:`vfmatch.fingerprints.traced_code_fingerprint` of a class (its source
    and every function it calls, e.g. the ViT's training helpers), once per class
    object: reading and parsing source takes a noticeable fraction of a second, and
    an edited class, once re-imported or re-defined, is a new object."""
    return traced_code_fingerprint(cls)


def _select(feats, rows: np.ndarray):
    """Rows of encoded items: an array (n, ...) or a list (spectrograms of varying length)."""
    return [feats[i] for i in rows] if isinstance(feats, list) else feats[rows]


class MetapropertyExtractor(BaseEstimator):
    """One metaproperty from one modality: encoder -> representation -> calculator.

    Parameters
    ----------
    metaproperty : str
        A registered metaproperty (``vfmatch.list_metaproperties()``).
    modality : {"voice", "face"}
    encoder : str or Encoder
        A name for :func:`vfmatch.features.encoders.create_encoder`, or an
        encoder instance (used as it is; trained by ``fit`` only if it is
        trainable and not fitted yet).
    calculator : str
        A registered calculator (:func:`vfmatch.extractors.list_calculators`):
        ``logistic``, ``svm``, ``knn``, ``mlp``, ``vit`` or ``labels``.
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

    Nothing is built in ``__init__``: ``fit`` makes the encoder and the
    calculator. After ``fit``: ``encoder_``, ``calculator_``, ``classes_`` (the
    metaproperty's values, in the order of ``predict_proba``'s columns; also
    ``values_`` as a list), ``class_counts_`` (training items per value, same
    order), ``fit_seconds_``.

    ``sklearn.base.clone`` copies the parameters but never a torch model: an
    encoder instance is kept by reference (a fixed or fitted encoder is not
    changed by ``fit``), and a trainable encoder not fitted yet is made afresh
    from its configuration, so fitting the clone leaves the original alone.

    Examples
    --------
    >>> ex = MetapropertyExtractor("gender", "voice", encoder="f0-formants", calculator="logistic")
    >>> ex.fit(train_population).predict_proba(test_population)   # (n_clips, 2): male, female
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
        """The ``encoder`` parameter itself if it is an instance, else a new encoder made from its name."""
        if self.modality not in ("voice", "face"):
            raise ValueError(f"modality must be 'voice' or 'face', not {self.modality!r}")
        if isinstance(self.encoder, Encoder):
            if self.encoder.modality != self.modality:
                raise ValueError(f"a {self.encoder.modality} encoder cannot serve a {self.modality} extractor")
            return self.encoder
        return create_encoder(self.modality, self.encoder, **(self.encoder_kwargs or {}))

    def _make_calculator(self, encoder: Encoder, progress: bool) -> Calculator:
        kwargs = dict(self.calculator_kwargs or {})
        if self.calculator == "labels" and kwargs.get("mapping") is None:
            if not getattr(encoder, "labels", None):
                raise ValueError(f"calculator 'labels' needs an encoder with class names (a classifier checkpoint); {encoder.name!r} has none")
            kwargs["mapping"] = label_mapping(encoder.labels, self.metaproperty)
        calc = create_calculator(self.calculator, **kwargs)
        if "progress" in calc.get_params() and "progress" not in kwargs:
            calc.set_params(progress=progress)  # epochs of long training get a bar
        if calc.input_kind != encoder.output:
            raise ValueError(
                f"calculator {self.calculator!r} takes a {calc.input_kind} but encoder {encoder.name!r} gives a {encoder.output}; "
                f"pair 'vit' with 'logmel' (voice) or 'pixels' (face), the others with vector encoders"
            )
        return calc

    def __sklearn_clone__(self) -> "MetapropertyExtractor":
        """``sklearn.base.clone``: the same parameters, unfitted, without deep-copying a torch model.

        The default clone deep-copies every parameter that is not an estimator,
        an ``Encoder`` instance (an ``nn.Module``, possibly with Hub weights)
        included. A fixed or already fitted encoder is never changed by ``fit``,
        so the clone shares it; a trainable encoder not yet fitted would be
        trained by the clone's ``fit``, so the clone gets a new one made from
        its configuration (its training re-initialises it from its seed)."""
        params = self.get_params(deep=False)
        encoder = params.pop("encoder")
        params = {k: clone(v, safe=False) for k, v in params.items()}
        if isinstance(encoder, Encoder) and encoder.trainable and not encoder.is_fitted:
            config = encoder.config()
            encoder = create_encoder(config["modality"], config["name"], **config["kwargs"])
        return type(self)(encoder=encoder, **params)

    def fingerprint(self) -> str:
        """What this extractor's outputs depend on, valid before ``fit``: the
        metaproperty and its values, the modality, the encoder's fingerprint
        (configuration, weights, code) and the calculator's name, parameters and
        code (:func:`vfmatch.utils.code_fingerprint`). Part of every cache key of
        extracted tables, so editing an encoder or a calculator recomputes them.

        Before ``fit`` an encoder is made for the purpose and dropped again."""
        return self._fingerprint(self.encoder_ if hasattr(self, "encoder_") else self._make_encoder())

    def _fingerprint(self, encoder: Encoder) -> str:
        calc_cls = CALCULATORS.get(self.calculator)
        doc = {
            "metaproperty": [self.metaproperty, list(self.metaproperty_.values)],
            "modality": self.modality,
            "encoder": encoder.fingerprint(),
            "calculator": [self.calculator, self.calculator_kwargs or {}, _code_of(calc_cls) if calc_cls else None],
            "auxiliary": list(self.auxiliary or []),
            "code": _code_of(type(self)),
        }
        return hashlib.sha1(json.dumps(to_jsonable(doc), sort_keys=True, default=str).encode()).hexdigest()[:20]

    # -- fitting -------------------------------------------------------------------
    def fit(self, X, y=None, *, landmarks=None, groups=None, auxiliary_y: Mapping[str, Sequence] | None = None) -> "MetapropertyExtractor":
        """Make the encoder (training it if trainable and not fitted yet) and train the calculator.

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
        return self._fit(X, y, landmarks=landmarks, groups=groups, auxiliary_y=auxiliary_y)

    def _fit(self, X, y=None, *, landmarks=None, groups=None, auxiliary_y=None, encoder: Encoder | None = None, progress: bool | None = None):
        """:meth:`fit`, optionally with an encoder shared by an :class:`~vfmatch.extractors.ExtractorSet`
        (instead of :meth:`_make_encoder`) and the set's progress setting."""
        t0 = time.perf_counter()
        mp = self.metaproperty_
        encoder = self._make_encoder() if encoder is None else encoder
        show = self.progress if progress is None else progress
        if _is_population(X):
            if y is not None:
                raise ValueError("fit(population) takes the labels from the population; do not pass y")
            if not X.has_metaproperty(mp.name):
                raise ValueError(f"the population has no ground truth for {mp.name!r} (column {mp.source_column!r})")
            labels = X.labels(mp.name, self.modality)
            aux_labels = {name: X.labels(name, self.modality) for name in self.auxiliary or ()}
            groups = X.voice_speakers if self.modality == "voice" else X.face_speakers
            bars = show and len(labels) >= PROGRESS_MIN_ITEMS
            if encoder.trainable and not encoder.is_fitted:
                items, lm = population_items(X, self.modality)
                encoder.fit(items, groups, progress=bars, **({"landmarks": lm} if self.modality == "face" else {}))
            feats = population_features(encoder, X, batch_size=self.batch_size, progress=bars, cache=self.cache)
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
            bars = show and len(labels) >= PROGRESS_MIN_ITEMS
            if encoder.trainable and not encoder.is_fitted:
                if groups is None:
                    raise ValueError(f"encoder {encoder.name!r} is trainable: pass groups= (the identity of each item)")
                encoder.fit(X, groups, progress=bars, **({"landmarks": landmarks} if self.modality == "face" else {}))
            feats = encoder.encode(X, batch_size=self.batch_size, progress=bars, **({"landmarks": landmarks} if self.modality == "face" else {}))
        return self._fit_features(encoder, feats, labels, groups, time.perf_counter() - t0, aux_labels, progress=show)

    def _fit_features(self, encoder: Encoder, feats, labels: np.ndarray, groups, seconds_so_far: float = 0.0, aux_labels=None, progress: bool = False):
        t0 = time.perf_counter()
        mp = self.metaproperty_
        known = np.flatnonzero(np.asarray(labels) >= 0)
        if known.size == 0:
            raise ValueError(f"no item has a known {mp.name!r}")
        calc = self._make_calculator(encoder, progress)
        auxiliary = {name: (np.asarray(a)[known], get_metaproperty(name).n_values) for name, a in (aux_labels or {}).items()}
        calc.fit(_select(feats, known), np.asarray(labels)[known], n_values=mp.n_values, groups=None if groups is None else np.asarray(groups)[known],
                 **({"auxiliary": auxiliary} if auxiliary else {}))
        self.encoder_, self.calculator_ = encoder, calc
        self._set_values(mp)
        self.class_counts_ = np.bincount(np.asarray(labels)[known], minlength=mp.n_values).astype(np.int64)
        self.fit_seconds_ = round(seconds_so_far + time.perf_counter() - t0, 3)
        return self

    def _set_values(self, mp: Metaproperty) -> None:
        # The column labels of predict_proba, as scikit-learn's classes_ are.
        self.values_ = list(mp.values)
        self.classes_ = np.asarray(mp.values, dtype=object)

    # -- prediction ------------------------------------------------------------------
    def _check_fitted(self):
        if not hasattr(self, "calculator_"):
            raise RuntimeError(f"this {self.modality} {self.metaproperty} extractor is not fitted; call fit first")

    def _features(self, X, landmarks=None, progress: bool | None = None):
        """The encoder's representations of ``X`` (a Population's rows or raw items)."""
        self._check_fitted()
        show = self.progress if progress is None else progress
        if _is_population(X):
            n = X.voices.num_rows if self.modality == "voice" else X.faces.num_rows
            return population_features(self.encoder_, X, batch_size=self.batch_size, progress=show and n >= PROGRESS_MIN_ITEMS, cache=self.cache)
        kw = {"landmarks": landmarks} if self.modality == "face" else {}
        return self.encoder_.encode(X, batch_size=self.batch_size, progress=show and _n_items(X) >= PROGRESS_MIN_ITEMS, **kw)

    def predict_proba(self, X, *, landmarks=None) -> np.ndarray:
        """Distributions over the metaproperty's values, shape (n, n_values), rows summing to 1.

        Column ``k`` is the value ``classes_[k]`` (``Metaproperty.values`` order);
        values absent from the training data get only the calculator's smoothing
        mass (about ``0.001 / n_values``). ``X`` is a Population (rows of
        ``population.voices`` or ``.faces``) or raw items (a list of 16 kHz
        clips; face images (n, H, W, 3) with optional ``landmarks``). Bad items
        raise ``ValueError``."""
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
        (folder / "extractor.json").write_text(json.dumps(to_jsonable(doc), indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path, *, encoder: Encoder | None = None) -> "MetapropertyExtractor":
        """Inverse of :meth:`save`. ``encoder`` may pass an already loaded, identical encoder to share it."""
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
        ex._set_values(mp)
        ex.class_counts_ = np.asarray(doc["class_counts_"], dtype=np.int64)
        ex.fit_seconds_ = doc.get("fit_seconds_")
        return ex
