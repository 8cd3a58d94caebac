"""One method, one population: train on the training identities, embed the held-out ones.

:func:`fit_population` is what the main job (and a chapter) calls for each
method::

    res = fit_population("sss", parts["train"], parts["test"], seed=0)
    res.similarity()          # (n_test_voices, n_test_faces) cosine, a scorer for vfmatch.evaluation
    v, x = res.embed(parts["matcher"])   # another role, same encoders (the hybrid's distance column)
    evaluate_similarity(res.similarity(), res.voice_speakers, res.face_speakers,
                        voice_gender=res.voice_gender, face_gender=res.face_gender)

Steps: make the two encoders of the registry (trainable ones, ``speaker-cnn``
and ``face-cnn``, are first trained on the training identities, then frozen),
compute their features of every item once (cached by
:func:`vfmatch.features.population_features`), fit the method on the
training items, embed the held-out items.

With ``finetune_encoders=True`` (a parameter of every method) the trainable
encoders are not frozen after their identity training: the method trains
them further, end to end with its heads, on the training items' raw media
(:mod:`vfmatch.embeddings.finetune`), and the held-out items are encoded by
the fine-tuned copies (``EmbeddingResult.encoder_objects``)::

    res = fit_population("contrastive", train, test, voice_encoder="speaker-cnn", face_encoder="face-cnn",
                         finetune_encoders=True, encoder_lr=2e-4)

Book chapter: ``book/10_learned_embeddings.ipynb``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..features import create_encoder, population_features, population_items
from .base import EmbeddingMethod
from .finetune import finetune_inputs
from .registry import create_embedding_method
from .tables import population_table

__all__ = ["EmbeddingResult", "fit_population", "DEFAULT_ENCODERS", "SPLIT_FRACTIONS"]

#: the frozen encoders the heads sit on by default (voice, face): measured pitch,
#: formants and rhythm beside log-Mel statistics, and a small CIELAB face
#: thumbnail. The metaproperty extractors use them too, so in ``vfmatch run``
#: their features are already cached. Tried on populations 10 and 11: adding
#: the ``ita`` and ``colours`` face encoders did not help; dropping
#: ``f0-formants`` cost about 0.03 of 1:2 accuracy.
DEFAULT_ENCODERS = ("f0-formants+logmel-stats", "thumbnail")
#: train / validation / test shares when ``fit_population`` splits a whole
#: population itself: those of ``vfmatch run`` (``vfmatch.job.run.SPLIT_FRACTIONS``)
SPLIT_FRACTIONS = (0.5, 0.25, 0.25)


@dataclass
class EmbeddingResult:
    """A fitted method and the embeddings of the held-out people.

    Attributes
    ----------
    method : the fitted :class:`~vfmatch.embeddings.EmbeddingMethod`
    voice_embeddings, face_embeddings : (n_voices, D), (n_faces, D) float32, L2-normalised;
        rows follow ``held_out.voices`` / ``held_out.faces``
    voice_speakers, face_speakers : identity of every row
    voice_gender, face_gender : gender of every row (None if the population has none)
    encoders : ``{"voice": name, "face": name}``
    seconds : wall time of ``{"encoders", "features", "train", "embed"}``
    encoder_objects : ``{"voice": Encoder, "face": Encoder}`` that make the heads' inputs:
        the (pre-trained, frozen) encoders, or the fine-tuned ones with ``finetune_encoders``
    """

    method: EmbeddingMethod
    voice_embeddings: np.ndarray
    face_embeddings: np.ndarray
    voice_speakers: np.ndarray
    face_speakers: np.ndarray
    voice_gender: np.ndarray | None = None
    face_gender: np.ndarray | None = None
    encoders: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    encoder_objects: dict = field(default_factory=dict, repr=False)  # modality -> the (fitted) Encoder
    fill: dict = field(default_factory=dict, repr=False)  # modality -> training means put in for NaN

    def similarity(self) -> np.ndarray:
        """(n_voices, n_faces) cosine similarity of the held-out voices and faces; higher = same person."""
        return self.method.similarity(self.voice_embeddings, self.face_embeddings)

    def embed(self, population, *, progress: bool = False, cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings ``(voices (n_clips, D), faces (n_faces, D))`` of another population, e.g. another
        role of the job (the hybrid matcher needs the "matcher" and "threshold" people), with the same
        encoders (frozen, or as fine-tuned) and imputation."""
        out = []
        for modality in ("voice", "face"):
            table = population_table(self.encoder_objects[modality], population, modality, fill=self.fill[modality],
                                     progress=progress, cache=cache)
            out.append(self.method.transform_voices(table) if modality == "voice" else self.method.transform_faces(table))
        return out[0], out[1]


def _encoder(spec, modality: str, train, progress: bool):
    """An encoder from a name (or as given), trained on ``train``'s items when trainable and not fitted."""
    enc = create_encoder(modality, spec) if isinstance(spec, str) else spec
    if enc.modality != modality:
        raise ValueError(f"{enc.name!r} is a {enc.modality} encoder; a {modality} encoder is needed here")
    if enc.trainable and not enc.is_fitted:
        items, landmarks = population_items(train, modality)
        speakers = train.voice_speakers if modality == "voice" else train.face_speakers
        kw = {"landmarks": landmarks} if modality == "face" else {}
        enc.fit(items, speakers, progress=progress, **kw)
    return enc


def _training_means(features) -> np.ndarray:
    """Column means ignoring NaN (0 for a column with no value at all), (dim,)."""
    X = np.asarray(features, dtype=np.float64)
    known = np.isfinite(X)
    counts = known.sum(axis=0)
    sums = np.where(known, X, 0.0).sum(axis=0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), 0.0).astype(np.float32)


def _genders(population, speakers) -> np.ndarray | None:
    ids = population.identities
    if "gender" not in ids:
        return None
    lookup = dict(zip(ids["speaker_id"].astype(str), ids["gender"]))
    return np.asarray([lookup[str(s)] for s in speakers], dtype=object)


def fit_population(
    method: str | EmbeddingMethod,
    train,
    held_out=None,
    *,
    voice_encoder=DEFAULT_ENCODERS[0],
    face_encoder=DEFAULT_ENCODERS[1],
    reference_encoder=None,
    seed: int = 0,
    progress: bool = False,
    cache: bool = True,
    **params,
) -> EmbeddingResult:
    """Train ``method`` on ``train``'s identities and embed ``held_out``'s voices and faces.

    Parameters
    ----------
    method : a registered name (``list_embedding_methods()``) or an unfitted method
    train, held_out : :class:`~vfmatch.data.population.Population`; with
        ``held_out=None``, ``train`` is a whole population split by identity with
        :data:`SPLIT_FRACTIONS` and ``seed`` (gender-stratified, as ``vfmatch run``
        does), training on the train part and embedding the test part
    voice_encoder, face_encoder : encoder names of the registry (or encoders);
        trainable ones are trained on ``train`` first (pass the same fitted
        encoder to several calls to train it once; features of fixed encoders
        are cached anyway)
    reference_encoder : ``weighted_triplet`` only: the frozen face encoder F of
        seed 001 eq. (4) (default: ``face_encoder``'s features; pre-trained, not fine-tuned)
    seed : the method's seed (and the split's, with ``held_out=None``)
    params : the method's parameters, e.g. ``margin=0.3`` (set on ``method`` when it is an estimator);
        ``finetune_encoders=True`` trains the trainable encoders (``speaker-cnn``, ``face-cnn``) end to
        end with the heads, starting from their identity training here (the encoders passed in are
        not changed: the method trains copies)

    There is no quick setting: the cost grows with the number of training
    identities (an epoch is one pass over them), so the quick population (30
    training people) trains in a few seconds with the same epochs, while
    fewer epochs cost accuracy there (on the quick populations of seeds 0-2,
    half the epochs lowered the held-out 1:2 V->F accuracy by 0.045 on average
    over the four methods).

    Returns
    -------
    :class:`EmbeddingResult`
    """
    if held_out is None:
        splits = train.split(SPLIT_FRACTIONS, seed=seed)
        train, held_out = splits.train, splits.test
    if isinstance(method, str):
        method = create_embedding_method(method, **{"seed": seed, "progress": progress, **params})
    elif params:
        method.set_params(**params)
    seconds = {}
    t0 = time.perf_counter()
    encoders = {"voice": _encoder(voice_encoder, "voice", train, progress),
                "face": _encoder(face_encoder, "face", train, progress)}
    ref_enc = None if reference_encoder is None else _encoder(reference_encoder, "face", train, progress)
    seconds["encoders"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    # Fine-tuning: the raw training inputs of each trainable encoder (the others stay frozen).
    media = finetune_inputs(encoders, train) if method.finetune_encoders else {}
    tables, fills = {}, {}
    for modality, enc in [*encoders.items(), *([("reference", ref_enc)] if ref_enc is not None else [])]:
        kind = "face" if modality == "reference" else modality
        # What an encoder could not measure (NaN) becomes the training mean of its column.
        fills[modality] = _training_means(population_features(enc, train, progress=progress, cache=cache))
        # A fine-tuned modality's held-out features come from the fine-tuned encoder, after training.
        roles = (("train", train),) if modality in media else (("train", train), ("held_out", held_out))
        for role, pop in roles:
            tables[role, modality] = population_table(enc, pop, kind, fill=fills[modality], progress=progress,
                                                      cache=cache)
    reference = tables["train", "reference"].features if ref_enc is not None else None
    seconds["features"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    method.fit(tables["train", "voice"], tables["train", "face"], face_reference=reference, media=media)
    seconds["train"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    for modality in media:
        encoders[modality] = method.finetuned_encoders_[modality]
        tables["held_out", modality] = population_table(encoders[modality], held_out, modality, fill=fills[modality],
                                                        progress=progress, cache=cache)
    v = method.transform_voices(tables["held_out", "voice"])
    f = method.transform_faces(tables["held_out", "face"])
    seconds["embed"] = time.perf_counter() - t0
    vs, fs = held_out.voice_speakers.astype(str), held_out.face_speakers.astype(str)
    return EmbeddingResult(method, v, f, vs, fs, _genders(held_out, vs), _genders(held_out, fs),
                           {"voice": encoders["voice"].name, "face": encoders["face"].name},
                           {k: round(t, 3) for k, t in seconds.items()}, encoders,
                           {"voice": fills["voice"], "face": fills["face"]})
