"""Pretrained metaproperty models by Hub id: their classes mapped onto the metaproperties.

A ready-made classifier on the Hugging Face Hub (a speech age/gender model, a
spoken-language identifier, a face age, gender or ethnicity classifier) already
outputs a distribution, but over *its own* classes: FairFace's age groups, ISO
language codes, "caucasian". This module maps those classes onto a
metaproperty's values (:mod:`vfmatch.metaproperties`, the patent's Tables 1
and 2), so such a model serves as a voice or face extractor without training.

* :func:`label_matrix` -- the mapping: a matrix (n_classes, n_values) whose row
  ``j`` says how class ``j``'s probability is shared among the values; an
  all-zero row is *other* (a class outside the metaproperty, such as a
  language not in ``MOTHER_TONGUES``). The tables below say which class names
  go where.
* :class:`PretrainedLabelCalculator` (calculator ``"pretrained-labels"``): class
  probabilities in, the metaproperty's distribution out. The *other* mass is
  dropped and the rest renormalised, so the distribution is the model's belief
  *given that* the value is one of the metaproperty's; :meth:`other_mass` says
  how much was dropped. An age in years (audEERING's regression head) becomes a
  normal distribution over the age bins whose spread ``age_sd`` is fitted on
  labelled people (or given).
* :class:`PretrainedExtractor` -- a :class:`MetapropertyExtractor` that hands its
  encoder's class names to that calculator and can be fitted on people without
  ground truth (nothing is learnt, but the age spread).
* :data:`PRETRAINED_MODELS` and the presets ``"pretrained"`` (every model
  below), ``"pretrained-voice"`` and ``"pretrained-face"`` (one modality's
  models): ``vfmatch run --extractors pretrained``. Metaproperties no model
  covers keep the ``"default"`` preset's trained extractor.

=================  =====  ====================================================  ==============
metaproperty       side   Hub id (encoder)                                      classes used
=================  =====  ====================================================  ==============
gender, age        voice  ``audeering/wav2vec2-large-robust-24-ft-age-gender``  female, male
                          (``hf-age-gender:``)                                  (child dropped);
                                                                                age in years
mother_tongue      voice  ``facebook/mms-lid-126`` (``hf:``)                    ISO 639-3 codes
gender             face   ``rizvandwiki/gender-classification`` (``hf-image:``) female, male
age                face   ``nateraw/vit-age-classifier`` (``hf-image:``)        FairFace age groups
ethnicity          face   ``cledoux42/Ethnicity_Test_v003`` (``hf-image:``)     african, asian,
                                                                                caucasian, hispanic, indian
=================  =====  ====================================================  ==============

Each has a model card in ``data_cards/`` (licence, label mapping, limits). The
weights are downloaded once (``huggingface-cli download <id>``, or any first
use with network access); offline, a missing model fails in seconds with
:class:`vfmatch.features.hub.HubDownloadError` naming its Hub id. No accent
model is listed: a language identifier's classes are languages, not accents of
English, so accent keeps the trained extractor.

These models were trained on real people's recordings and photos; on the
simulator's voices and faces they have no reason to work, and on real people
their outputs are estimates with their own biases (see the cards), never facts
about a person. Book chapter: ``book/04_metaproperties.ipynb``.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

import numpy as np
from scipy.stats import norm

from ..features.cache import population_features
from ..features.hub import AGE_YEARS_LABEL
from ..metaproperties import get_metaproperty
from .calculators import Calculator, create_calculator, register_calculator
from .extractor import PROGRESS_MIN_ITEMS, MetapropertyExtractor, _is_population
from .presets import default_preset, register_extractor_preset

__all__ = [
    "GENDER_LABELS",
    "ETHNICITY_LABELS",
    "LANGUAGE_LABELS",
    "AGE_OPEN_END",
    "label_matrix",
    "PretrainedLabelCalculator",
    "PretrainedExtractor",
    "PRETRAINED_MODELS",
    "pretrained_extractors",
]

# ---------------------------------------------------------------------------
# The label tables: a model's class name (lower case, "_" and "-" read as spaces)
# -> the metaproperty's value. Names not listed are tried as the metaproperty's
# own values and aliases (Metaproperty.encode); anything else is "other".
# ---------------------------------------------------------------------------

GENDER_LABELS: dict[str, str | None] = {
    "male": "male", "man": "male", "men": "male", "m": "male", "masculine": "male",
    "female": "female", "woman": "female", "women": "female", "f": "female", "feminine": "female",
    # audEERING's third gender class: a child's voice says nothing about male or female here.
    "child": None,
}
# FairFace's seven race groups and the five classes of cledoux42/Ethnicity_Test_v003 ->
# vfmatch's six ETHNICITIES. East and Southeast Asian both become Asian (as in
# Metaproperty aliases); "african" and "caucasian" are read as Black and White.
ETHNICITY_LABELS: dict[str, str] = {
    "white": "White", "caucasian": "White",
    "black": "Black", "african": "Black",
    "indian": "Indian",
    "east asian": "Asian", "southeast asian": "Asian", "asian": "Asian",
    "middle eastern": "Middle-Eastern",
    "latino hispanic": "Latino-Hispanic", "latino": "Latino-Hispanic", "hispanic": "Latino-Hispanic",
}
# Language identifiers -> MOTHER_TONGUES, by ISO 639-1 and 639-3 code and English
# name (MMS-LID uses 639-3 codes; VoxLingua107 models "en: English"). Macrolanguage
# codes are read as their main language: "zho"/"zh" as Mandarin, "ara"/"ar" as
# Arabic (with Standard, Egyptian, Levantine, Moroccan, Gulf and Najdi Arabic).
# Cantonese ("yue"), Urdu and every other language are "other".
LANGUAGE_LABELS: dict[str, str] = {
    **dict.fromkeys(("en", "eng", "english"), "English"),
    **dict.fromkeys(("es", "spa", "spanish"), "Spanish"),
    **dict.fromkeys(("pt", "por", "portuguese"), "Portuguese"),
    **dict.fromkeys(("ar", "ara", "arb", "arz", "apc", "ary", "afb", "ars", "arabic"), "Arabic"),
    **dict.fromkeys(("hi", "hin", "hindi"), "Hindi"),
    **dict.fromkeys(("zh", "zho", "cmn", "chinese", "mandarin", "zh cn", "zh tw"), "Mandarin"),
    **dict.fromkeys(("yo", "yor", "yoruba"), "Yoruba"),
    **dict.fromkeys(("ru", "rus", "russian"), "Russian"),
}
_TABLES: dict[str, Mapping[str, str | None]] = {
    "gender": GENDER_LABELS, "ethnicity": ETHNICITY_LABELS, "mother_tongue": LANGUAGE_LABELS,
}
# The age (years, exclusive) where an open-ended top group such as FairFace's
# "more than 70" is taken to end. Its mass lands in the ">64" bin whatever this is.
AGE_OPEN_END = 100.0


def _norm(label: str) -> str:
    return " ".join(re.sub(r"[_\-]+", " ", str(label).strip().lower()).split())


def _age_interval(label: str) -> tuple[float, float] | None:
    """Whole years ``[lo, hi)`` of an age-group name: ``"20-29"`` -> (20, 30),
    ``"more than 70"`` / ``"70+"`` -> (70, AGE_OPEN_END), ``"25"`` -> (25, 26)."""
    text = _norm(label)
    nums = [float(x) for x in re.findall(r"\d+(?:\.\d+)?", text)]
    if len(nums) == 2:
        return (nums[0], nums[1] + 1) if nums[1] >= nums[0] else None
    if len(nums) == 1:
        if "more" in text or "+" in text or "over" in text or ">" in text:
            return nums[0], max(AGE_OPEN_END, nums[0] + 1)
        if "less" in text or "under" in text or "<" in text:
            return 0.0, nums[0]
        return nums[0], nums[0] + 1
    return None


def label_matrix(labels: Sequence[str], metaproperty) -> np.ndarray:
    """How each class of a ready-made classifier maps onto a metaproperty's values.

    Parameters
    ----------
    labels : the classifier's class names, in its output order (``id2label``).
    metaproperty : a registered metaproperty name.

    Returns
    -------
    (n_classes, n_values) float array. Row ``j`` sums to 1 (class ``j``'s
    probability goes to those values) or to 0 (class ``j`` is *other*).
    Categorical metaproperties use the tables above, then the metaproperty's own
    values and aliases. Binned ones (age) read a class as an interval of whole
    years (:func:`_age_interval`) and share it among the bins in proportion to
    the years each bin covers, ages inside a group taken as equally likely:
    FairFace's "10-19" gives 8/10 to "<18" and 2/10 to "18-19". The regression
    output ``"age:years"`` is not a class: its row is 0.

    Raises ValueError when no class maps to any value (the wrong model for this
    metaproperty), naming the classes.
    """
    mp = get_metaproperty(metaproperty)
    table = {_norm(k): v for k, v in _TABLES.get(mp.name, {}).items()}
    out = np.zeros((len(labels), mp.n_values))
    for j, label in enumerate(labels):
        if label == AGE_YEARS_LABEL:
            continue
        if mp.kind == "binned":
            iv = _age_interval(label)
            if iv is None:
                continue
            lo, hi = iv
            edges = np.concatenate([[-np.inf], np.asarray(mp.bin_edges, float), [np.inf]])
            overlap = np.clip(np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo), 0, None)
            out[j] = overlap / overlap.sum() if overlap.sum() > 0 else 0
            continue
        key = _norm(label).split(":")[0].strip()  # "en: English" -> "en"
        if key in table:
            if table[key] is not None:
                out[j, mp.values.index(table[key])] = 1.0
            continue
        try:
            out[j, int(mp.encode([str(label)])[0])] = 1.0
        except ValueError:
            pass  # other
    if not out.any() and not (mp.kind == "binned" and AGE_YEARS_LABEL in labels):
        raise ValueError(f"none of the classifier's classes {list(labels)[:12]} maps to a value of {mp.name!r} {list(mp.values)}")
    return out


@register_calculator("pretrained-labels")
class PretrainedLabelCalculator(Calculator):
    """A ready-made model's outputs -> a metaproperty's distribution, by :func:`label_matrix`.

    Parameters
    ----------
    labels : sequence of str
        The encoder's output names (class names, and ``"age:years"`` for an age
        regression); :class:`PretrainedExtractor` fills them in.
    metaproperty : str
        The metaproperty whose values the columns of ``predict_proba`` are.
    age_sd : float, optional
        Spread in years of the normal distribution put around a predicted age
        (regression outputs only). ``None`` fits it in ``fit``: the value on a
        grid of 1-40 years that gives the known age bins of the training items
        the highest likelihood. Fixed, ``fit`` needs no labels.
    smoothing : float
        Weight of a uniform distribution mixed in, so no value is impossible.

    Input ``X``: the encoder's outputs, shape (n, len(labels)). Nothing else is
    learnt: ``fit`` checks the shapes and builds the mapping (``matrix_``).
    """

    def __init__(self, labels: Sequence[str] | None = None, metaproperty: str | None = None, age_sd: float | None = None,
                 smoothing: float = 1e-3):
        self.labels, self.metaproperty, self.age_sd, self.smoothing = labels, metaproperty, age_sd, smoothing

    def _check_X(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.labels) or not np.all(np.isfinite(X)):
            raise ValueError(f"pretrained-labels: expected finite outputs of shape (n, {len(self.labels)}) for classes {list(self.labels)[:6]}..., got {X.shape}")
        return X

    @property
    def _regression(self) -> bool:
        return get_metaproperty(self.metaproperty).kind == "binned" and AGE_YEARS_LABEL in list(self.labels)

    def fit(self, X, y=None, *, n_values: int | None = None, groups=None) -> "PretrainedLabelCalculator":
        if not self.labels or self.metaproperty is None:
            raise ValueError("pretrained-labels: pass labels= (the encoder's class names) and metaproperty=")
        mp = get_metaproperty(self.metaproperty)
        X = self._check_X(X)
        self.n_values_ = int(n_values if n_values is not None else mp.n_values)
        if self.n_values_ != mp.n_values:
            raise ValueError(f"pretrained-labels: {mp.name!r} has {mp.n_values} values, not {self.n_values_}")
        self.matrix_ = label_matrix(self.labels, mp.name)
        self.classes_ = np.arange(mp.n_values)
        self.sd_ = np.nan
        if self._regression:
            self.sd_ = float(self.age_sd) if self.age_sd is not None else self._fit_sd(X, y)
        return self

    def _fit_sd(self, X, y) -> float:
        y = np.asarray([] if y is None else y, dtype=np.int64)
        known = np.flatnonzero(y >= 0)
        if known.size < 2:
            raise ValueError("pretrained-labels: fitting age_sd needs at least two items of known age; pass age_sd= (years) instead")
        grid = np.linspace(1.0, 40.0, 79)
        loglik = [np.log(self._age_bins(X[known], sd)[np.arange(known.size), y[known]] + 1e-12).sum() for sd in grid]
        return float(grid[int(np.argmax(loglik))])

    def _age_bins(self, X, sd: float) -> np.ndarray:
        """P(bin) for a normal(age, sd) around each predicted age: (n, n_bins)."""
        years = X[:, list(self.labels).index(AGE_YEARS_LABEL)][:, None]
        edges = np.concatenate([[-np.inf], np.asarray(get_metaproperty(self.metaproperty).bin_edges, float), [np.inf]])
        cdf = norm.cdf((edges[None, :] - years) / sd)
        return np.diff(cdf, axis=1)

    def _check_fitted(self):
        if not hasattr(self, "matrix_"):
            raise RuntimeError("PretrainedLabelCalculator is not fitted; call fit first")

    def other_mass(self, X) -> np.ndarray:
        """(n,) probability each item's model output put on classes outside the
        metaproperty's values (dropped by :meth:`predict_proba`); 0 for an age regression."""
        self._check_fitted()
        X = self._check_X(X)
        if self._regression:
            return np.zeros(len(X))
        cls = [j for j, name in enumerate(self.labels) if name != AGE_YEARS_LABEL]
        return np.clip(X[:, cls].sum(axis=1) - (X @ self.matrix_).sum(axis=1), 0, 1)

    def predict_proba(self, X) -> np.ndarray:
        """(n, n_values): the mapped distribution (uniform where all mass was *other*), smoothed."""
        self._check_fitted()
        X = self._check_X(X)
        if self._regression:
            p = self._age_bins(X, self.sd_)
        else:
            p = X @ self.matrix_
            total = p.sum(axis=1, keepdims=True)
            p = np.where(total > 0, p / np.maximum(total, 1e-300), 1.0 / self.n_values_)
        s = float(self.smoothing)
        return (1 - s) * p + s / self.n_values_

    def state(self):
        return {"classes_": self.classes_.astype(np.int64), "matrix_": self.matrix_}, {"n_values_": int(self.n_values_), "sd_": self.sd_}

    def load_state(self, arrays, meta):
        self.classes_, self.matrix_ = np.asarray(arrays["classes_"]), np.asarray(arrays["matrix_"])
        # NaN (no age regression) is written to JSON as null.
        self.n_values_, self.sd_ = int(meta["n_values_"]), np.nan if meta.get("sd_") is None else float(meta["sd_"])
        return self


class PretrainedExtractor(MetapropertyExtractor):
    """A :class:`MetapropertyExtractor` around a ready-made model (calculator ``"pretrained-labels"``).

    ``encoder`` names the model (``"hf:<id>"``, ``"hf-image:<id>"``,
    ``"hf-age-gender:<id>"``; a Hub id or a folder saved with
    ``save_pretrained``); the encoder's class names become the calculator's
    ``labels``. ``fit`` runs the model and builds the label mapping; it needs no
    ground truth (a population without this metaproperty's column is fine),
    except to fit the age spread (``calculator_kwargs={"age_sd": ...}`` avoids
    that). Saved and loaded like any extractor.

    Examples
    --------
    >>> ex = PretrainedExtractor("age", "face", encoder="hf-image:nateraw/vit-age-classifier")
    >>> ex.fit(population).predict_proba(population)   # (n_faces, 9): Table 1 bins
    """

    def __init__(self, metaproperty: str = "gender", modality: str = "voice", encoder="hf:", calculator: str = "pretrained-labels",
                 encoder_kwargs: dict | None = None, calculator_kwargs: dict | None = None, auxiliary=None, batch_size: int = 8,
                 cache: bool = True, progress: bool = False):
        super().__init__(metaproperty, modality, encoder, calculator, encoder_kwargs, calculator_kwargs, auxiliary, batch_size, cache, progress)

    def _make_calculator(self, encoder, progress: bool):
        if self.calculator != "pretrained-labels":
            return super()._make_calculator(encoder, progress)
        if not getattr(encoder, "labels", None):
            raise ValueError(f"encoder {encoder.name!r} has no class names: a pretrained extractor needs a classifier checkpoint")
        return create_calculator("pretrained-labels", labels=list(encoder.labels), metaproperty=self.metaproperty, **(self.calculator_kwargs or {}))

    def _fit(self, X, y=None, *, landmarks=None, groups=None, auxiliary_y=None, encoder=None, progress=None):
        if not (_is_population(X) and not X.has_metaproperty(self.metaproperty)):
            return super()._fit(X, y, landmarks=landmarks, groups=groups, auxiliary_y=auxiliary_y, encoder=encoder, progress=progress)
        # No ground truth: nothing to learn; run the model once so the outputs are checked (and cached).
        encoder = self._make_encoder() if encoder is None else encoder
        n = X.voices.num_rows if self.modality == "voice" else X.faces.num_rows
        show = self.progress if progress is None else progress
        feats = population_features(encoder, X, batch_size=self.batch_size, progress=show and n >= PROGRESS_MIN_ITEMS, cache=self.cache)
        return self._fit_features(encoder, feats, np.full(n, -1, dtype=np.int64), None, progress=show)

    def _fit_features(self, encoder, feats, labels, groups, seconds_so_far: float = 0.0, aux_labels=None, progress: bool = False):
        if self.calculator != "pretrained-labels":
            return super()._fit_features(encoder, feats, labels, groups, seconds_so_far, aux_labels, progress)
        mp = self.metaproperty_
        labels = np.asarray(labels, dtype=np.int64)
        calc = self._make_calculator(encoder, progress).fit(feats, labels, n_values=mp.n_values)
        self.encoder_, self.calculator_ = encoder, calc
        self._set_values(mp)
        self.class_counts_ = np.bincount(labels[labels >= 0], minlength=mp.n_values).astype(np.int64)
        self.fit_seconds_ = round(seconds_so_far, 3)
        return self

    def other_mass(self, X, *, landmarks=None) -> np.ndarray:
        """(n,) the probability the model put outside the metaproperty's values (e.g. other languages)."""
        return self.calculator_.other_mass(self._features(X, landmarks))


# (metaproperty, modality) -> encoder name: which Hub model extracts what.
PRETRAINED_MODELS: dict[tuple[str, str], str] = {
    ("gender", "voice"): "hf-age-gender:audeering/wav2vec2-large-robust-24-ft-age-gender",
    ("age", "voice"): "hf-age-gender:audeering/wav2vec2-large-robust-24-ft-age-gender",
    ("mother_tongue", "voice"): "hf:facebook/mms-lid-126",
    ("gender", "face"): "hf-image:rizvandwiki/gender-classification",
    ("age", "face"): "hf-image:nateraw/vit-age-classifier",
    ("ethnicity", "face"): "hf-image:cledoux42/Ethnicity_Test_v003",
}


def pretrained_extractors(metaproperties: Sequence[str], quick: bool = False, *, models: Mapping[tuple[str, str], str] | None = None,
                          modalities: Sequence[str] = ("voice", "face")) -> list[MetapropertyExtractor]:
    """One voice and one face extractor per metaproperty: a :class:`PretrainedExtractor`
    where ``models`` (default :data:`PRETRAINED_MODELS`) names one for that
    metaproperty and modality (and the modality is in ``modalities``), else the
    ``"default"`` preset's trained extractor. ``models`` may point at local
    folders (``{("age", "face"): "hf-image:/path/to/model"}``)."""
    table = dict(PRETRAINED_MODELS if models is None else models)
    out = []
    for ex in default_preset(metaproperties, quick):
        name = table.get((ex.metaproperty, ex.modality)) if ex.modality in modalities else None
        out.append(PretrainedExtractor(ex.metaproperty, ex.modality, encoder=name) if name else ex)
    return out


@register_extractor_preset("pretrained")
def pretrained_preset(metaproperties: Sequence[str], quick: bool = False) -> list[MetapropertyExtractor]:
    """Every model of :data:`PRETRAINED_MODELS`; the ``"default"`` extractors elsewhere."""
    return pretrained_extractors(metaproperties, quick)


@register_extractor_preset("pretrained-voice")
def pretrained_voice_preset(metaproperties: Sequence[str], quick: bool = False) -> list[MetapropertyExtractor]:
    """The voice models of :data:`PRETRAINED_MODELS` (speech age/gender, language ID); trained faces."""
    return pretrained_extractors(metaproperties, quick, modalities=("voice",))


@register_extractor_preset("pretrained-face")
def pretrained_face_preset(metaproperties: Sequence[str], quick: bool = False) -> list[MetapropertyExtractor]:
    """The face models of :data:`PRETRAINED_MODELS` (age, gender, ethnicity); trained voices."""
    return pretrained_extractors(metaproperties, quick, modalities=("face",))
