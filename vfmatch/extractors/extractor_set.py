"""The extractor set: one voice and one face extractor per metaproperty.

:class:`ExtractorSet` fits every :class:`~vfmatch.extractors.MetapropertyExtractor`
on the training identities and turns a population into the probability tables
the matcher compares: ``{metaproperty: (n_items, K)}`` per modality, rows in the
order of ``population.voices`` / ``population.faces``, columns in the order of
the metaproperty's values. Extractors whose encoders are configured alike share
one encoder, so each encoder runs (and, if trainable, trains) once per
population. :func:`create_extractors` makes an unfitted set from a registered
preset (:mod:`vfmatch.extractors.presets`).

Book chapter: ``book/04_metaproperties.ipynb``.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ..config import quick_mode
from ..data.media import SIMULATOR, conform_voice, load_face, load_voice
from ..data.population import SAMPLE_RATE
from ..features.encoders import Encoder
from ..utils import progress as progress_bar, to_jsonable
from .extractor import MetapropertyExtractor
from .presets import preset_extractors
from .quality import quality_report

__all__ = ["ExtractorSet", "create_extractors"]

_FORMAT = "vfmatch.extractor_set/1"


def create_extractors(preset: str = "default", metaproperties: Sequence[str] | None = None, *, quick: bool | None = None,
                      progress: bool = False) -> "ExtractorSet":
    """An unfitted :class:`ExtractorSet` from a registered preset.

    Parameters
    ----------
    preset : a name of :func:`vfmatch.extractors.list_extractor_presets` (``"default"``, ``"fast"``)
    metaproperties : names, default ``DEFAULT_METAPROPERTIES``
    quick : few epochs (:data:`vfmatch.extractors.QUICK_OVERRIDES`); None = ``vfmatch.quick_mode()``
    progress : progress bars while fitting and extracting
    """
    quick = quick_mode() if quick is None else bool(quick)
    extractors = [ex.set_params(progress=progress) for ex in preset_extractors(preset, metaproperties, quick=quick)]
    return ExtractorSet(extractors, quick=quick, progress=progress)


def _config_key(encoder: Encoder) -> str:
    """Encoders with the same key compute the same features: configuration, and weights once fitted."""
    return json.dumps(encoder.config(), sort_keys=True, default=str) + (encoder.fingerprint() if encoder.is_fitted else "")


class ExtractorSet:
    """One voice and one face extractor per metaproperty.

    Parameters
    ----------
    extractors : list of MetapropertyExtractor, optional
        Default: the ``"default"`` preset for ``metaproperties``
        (:func:`create_extractors` chooses another preset).
    metaproperties : list of str, optional
        Names for the default set (all of ``DEFAULT_METAPROPERTIES`` if None).
    quick : bool, optional
        Few epochs (default: ``vfmatch.quick_mode()``).
    progress : bool
        Progress bars while fitting and extracting.

    Nothing is built in ``__init__``. ``fit`` makes the encoders, one per
    distinct configuration (an ``encoder`` given as an instance is used as it
    is), so extractors configured alike share one encoder and its features;
    ``load`` shares identical saved encoders the same way.
    """

    def __init__(self, extractors: Sequence[MetapropertyExtractor] | None = None, *, metaproperties=None, quick: bool | None = None, progress: bool = True):
        self.quick = quick_mode() if quick is None else bool(quick)
        self.progress = progress
        if extractors is None:
            extractors = [ex.set_params(progress=progress) for ex in self.default_extractors(metaproperties, quick=self.quick)]
        self.extractors = list(extractors)
        seen = set()
        for ex in self.extractors:
            key = (ex.modality, ex.metaproperty)
            if key in seen:
                raise ValueError(f"two {ex.modality} extractors for {ex.metaproperty!r}")
            seen.add(key)

    @staticmethod
    def default_extractors(metaproperties=None, *, quick: bool = False) -> list[MetapropertyExtractor]:
        """The ``"default"`` preset's extractors (:mod:`vfmatch.extractors.presets`)."""
        return preset_extractors("default", metaproperties, quick=quick)

    def _make_encoders(self, extractors: Sequence[MetapropertyExtractor]) -> list[Encoder]:
        """One encoder per extractor, made once per distinct configuration.

        An extractor's ``encoder`` given by name is made once per (modality,
        name, kwargs); encoders that end up configured alike (and, once fitted,
        with the same weights) are merged into one."""
        by_spec: dict[str, Encoder] = {}
        by_config: dict[str, Encoder] = {}
        out = []
        for ex in extractors:
            if isinstance(ex.encoder, Encoder):
                enc = ex._make_encoder()  # the instance itself, its modality checked
            else:
                spec = json.dumps([ex.modality, ex.encoder, ex.encoder_kwargs or {}], sort_keys=True, default=str)
                if spec not in by_spec:
                    by_spec[spec] = ex._make_encoder()
                enc = by_spec[spec]
            out.append(by_config.setdefault(_config_key(enc), enc))
        return out

    def fingerprint(self) -> str:
        """Hash of every extractor's :meth:`MetapropertyExtractor.fingerprint` and the
        quick setting: the cache key part of tables this set extracts. Valid before
        ``fit`` (encoders are made for the purpose and dropped again)."""
        unfitted = [ex for ex in self.extractors if not hasattr(ex, "encoder_")]
        made = dict(zip(map(id, unfitted), self._make_encoders(unfitted)))
        parts = sorted(ex._fingerprint(ex.encoder_ if hasattr(ex, "encoder_") else made[id(ex)]) for ex in self.extractors)
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

        The encoders are made here, one per distinct configuration: each runs
        once, trainable ones train once. Each extractor's ``fit_seconds_`` is
        its wall time (its calculator, plus its encoder the first time that
        encoder is needed); ``fit_seconds_`` here is the total."""
        t0 = time.perf_counter()
        todo = [ex for ex in self.extractors if population.has_metaproperty(ex.metaproperty)]
        missing = sorted({ex.metaproperty for ex in self.extractors} - {ex.metaproperty for ex in todo})
        if missing:
            raise ValueError(f"the population has no ground truth for {missing}; choose metaproperties= it has")
        encoders = self._make_encoders(todo)
        for ex, enc in progress_bar(list(zip(todo, encoders)), self.progress, "extractors", len(todo)):
            ex._fit(population, encoder=enc, progress=self.progress)
        self.fit_seconds_ = round(time.perf_counter() - t0, 2)
        self.trained_on_ = _provenance(population)
        return self

    @property
    def trained_on_simulator(self) -> bool | None:
        """True when fitted on the vfmatch simulator's people (directly or from an
        export of them), False on other data, None when not recorded (saved before
        this was kept). Such extractors say nothing about real people."""
        trained = getattr(self, "trained_on_", None)
        return None if trained is None else trained.get("generator") == SIMULATOR

    def _transform(self, population, modality: str) -> dict[str, np.ndarray]:
        return {ex.metaproperty: ex.predict_proba_features(ex._features(population, progress=self.progress))
                for ex in self.extractors if ex.modality == modality}

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

    def predict_voices(self, clips, *, sample_rate: int | None = None, batch_size: int = 32) -> dict[str, np.ndarray]:
        """``{metaproperty: (n_clips, n_values)}`` for raw clips or voice files.

        Parameters
        ----------
        clips : list of arrays (n_samples,) or (n_samples, n_channels), or of file paths
        sample_rate : int, Hz -- the arrays' sample rate; **required** for arrays,
            since a bare array does not carry one (a 48 kHz clip taken for 16 kHz
            sounds three times lower). Files are read at their own rate.

        Every clip goes through the front-end :func:`vfmatch.data.media.conform_voice`
        (mono, 16 kHz, a logged note for each conversion); files through
        :func:`vfmatch.data.media.load_voice`.
        """
        if isinstance(clips, (str, Path)) or (isinstance(clips, np.ndarray) and clips.ndim == 1 and clips.dtype != object):
            raise TypeError("predict_voices takes a list of clips (arrays or file paths), not a single one; wrap it in [ ]")
        waves = []
        for i, clip in enumerate(clips):
            if isinstance(clip, (str, Path)):
                waves.append(load_voice(clip).wave)
            elif sample_rate is None:
                raise ValueError("predict_voices: bare arrays carry no sample rate; pass sample_rate= in Hz "
                                 f"(the simulated population's clips are at {SAMPLE_RATE}), or give file paths")
            else:
                waves.append(conform_voice(clip, sample_rate, name=f"clip {i}"))
        return self._predict_items("voice", waves, batch_size=batch_size)

    def predict_faces(self, images, *, landmarks=None, batch_size: int = 32) -> dict[str, np.ndarray]:
        """``{metaproperty: (n_faces, n_values)}`` for face images.

        ``images``: uint8 arrays (n, H, W, 3) with optional landmarks (n, 5, 2) in
        pixels (as the population stores them), or a list of image files: each
        is read and aligned by :func:`vfmatch.data.media.load_face` (the
        landmarks an export lists, else face detection; no face is an error
        naming the file)."""
        if isinstance(images, (list, tuple)) and images and all(isinstance(p, (str, Path)) for p in images):
            if landmarks is not None:
                raise ValueError("predict_faces: landmarks= is for arrays; files are aligned from their own landmarks")
            faces = [load_face(p) for p in images]
            images = np.stack([f.image for f in faces])
            landmarks = np.stack([f.landmarks for f in faces]).astype(np.float32)
        return self._predict_items("face", images, landmarks=landmarks, batch_size=batch_size)

    def quality_report(self, population, **kwargs):
        """Quality of every extractor on ``population`` (held-out identities);
        see :func:`vfmatch.extractors.quality.quality_report`."""
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
        doc = {"format": _FORMAT, "extractors": names, "quick": self.quick, "fit_seconds_": getattr(self, "fit_seconds_", None),
               "trained_on": getattr(self, "trained_on_", None)}
        (folder / "extractor_set.json").write_text(json.dumps(to_jsonable(doc), indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path, *, progress: bool = True) -> "ExtractorSet":
        """Inverse of :meth:`save`; identical encoders are loaded once and shared."""
        folder = Path(folder)
        path = folder / "extractor_set.json"
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; not a folder written by ExtractorSet.save")
        doc = json.loads(path.read_text())
        if doc.get("format", _FORMAT) != _FORMAT:
            raise ValueError(f"{path}: format {doc.get('format')!r}, expected {_FORMAT!r}")
        shared: dict[str, Encoder] = {}
        extractors = []
        for sub in doc["extractors"]:
            key = _saved_encoder_key(folder / sub)
            ex = MetapropertyExtractor.load(folder / sub, encoder=shared.get(key))
            shared.setdefault(key, ex.encoder_)
            extractors.append(ex)
        out = cls(extractors, quick=doc.get("quick"), progress=progress)
        out.fit_seconds_ = doc.get("fit_seconds_")
        if doc.get("trained_on") is not None:
            out.trained_on_ = doc["trained_on"]
        return out


def _provenance(population) -> dict:
    """What a set was fitted on, for ``extractor_set.json``: the population's
    ``generator`` (``"vfmatch.simulator"`` for simulated people, also when read
    back from an export) and ``source``, from ``population.info``."""
    info = getattr(population, "info", {}) or {}
    return to_jsonable({"generator": info.get("generator"), "source": info.get("source")})


def _saved_encoder_key(folder: Path) -> str:
    """What identifies a saved extractor's encoder: its entry of ``extractor.json``
    (configuration, fitted or not) and the hash of its saved weights, if any."""
    path = folder / "extractor.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; not a folder written by MetapropertyExtractor.save")
    entry = json.loads(path.read_text()).get("encoder", {})
    weights = folder / "encoder.safetensors"
    digest = hashlib.sha1(weights.read_bytes()).hexdigest() if entry.get("saves_weights") and weights.exists() else ""
    return json.dumps(entry, sort_keys=True) + digest
