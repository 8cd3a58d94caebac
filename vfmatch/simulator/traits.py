"""The embedded default population: simulated people with voices and faces.

``make_population`` draws each identity's traits from plausible joint
distributions (gender, age, ethnicity, Fitzpatrick skin type, height, weight,
BMI, mother tongue, accent), then

* synthesises voice clips with a source-filter speech model
  (:mod:`vfmatch.voice_synthesis`), and
* renders face images procedurally (:mod:`vfmatch.face_rendering`).

Both modalities see the same traits, so the metaproperties link a voice to its
face exactly as the patent assumes. Beyond the traits, each identity has a
latent vector ``z`` (8 numbers: vocal-tract and face-geometry idiosyncrasies).
``concordance`` sets how much of it voice and face share::

    voice_latent = c * z + sqrt(1 - c^2) * e_voice
    face_latent  = c * z + sqrt(1 - c^2) * e_face

so ``concordance=0`` means only the metaproperties link the two modalities
(the setting of the metaproperty method), and ``1`` adds a shared identity
signal that learned embeddings can exploit.

The numbers below are rough population statistics chosen to be plausible,
not measurements of any real population. Book chapter: ``book/01_population.ipynb``.
"""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pandas as pd

from ..config import cache_dir
from ..metaproperties import ACCENTS, ETHNICITIES, MOTHER_TONGUES
from ..data.population import SAMPLE_RATE, Population

__all__ = ["make_population", "draw_identities", "DEFAULT_N_IDENTITIES", "SIMULATOR_VERSION", "LATENT_DIM"]

DEFAULT_N_IDENTITIES = 480
SIMULATOR_VERSION = "3"
LATENT_DIM = 8

ETHNICITY_P = {"Asian": 0.2, "Black": 0.13, "White": 0.3, "Middle-Eastern": 0.1, "Indian": 0.12, "Latino-Hispanic": 0.15}
# P(Fitzpatrick type I..VI | ethnicity)
SKIN_P = {
    "White": (0.25, 0.45, 0.20, 0.08, 0.02, 0.00),
    "Asian": (0.02, 0.15, 0.45, 0.30, 0.08, 0.00),
    "Black": (0.00, 0.00, 0.02, 0.13, 0.40, 0.45),
    "Middle-Eastern": (0.02, 0.13, 0.40, 0.35, 0.10, 0.00),
    "Indian": (0.00, 0.02, 0.13, 0.40, 0.35, 0.10),
    "Latino-Hispanic": (0.03, 0.12, 0.35, 0.35, 0.13, 0.02),
}
# Mean adult height offset (cm) by ethnicity, added to 176 (male) / 163 (female).
HEIGHT_OFFSET = {"White": 1.0, "Asian": -5.0, "Black": 1.0, "Middle-Eastern": -1.0, "Indian": -4.0, "Latino-Hispanic": -4.0}
# P(mother tongue | ethnicity)
TONGUE_P = {
    "White": {"English": 0.6, "Russian": 0.2, "Spanish": 0.1, "Portuguese": 0.1},
    "Asian": {"Mandarin": 0.75, "English": 0.25},
    "Black": {"Yoruba": 0.5, "English": 0.45, "Portuguese": 0.05},
    "Middle-Eastern": {"Arabic": 0.8, "English": 0.2},
    "Indian": {"Hindi": 0.75, "English": 0.25},
    "Latino-Hispanic": {"Spanish": 0.65, "Portuguese": 0.25, "English": 0.1},
}
# The accent an L1 carries into English; fluent speakers sometimes sound General American.
L1_ACCENT = {
    "Spanish": "Latin American",
    "Portuguese": "Latin American",
    "Arabic": "Arabic",
    "Hindi": "Indian",
    "Mandarin": "Chinese",
    "Yoruba": "Nigerian",
    "Russian": "Russian",
}


def _choice(rng: np.random.Generator, table: dict, n: int) -> np.ndarray:
    keys = list(table)
    p = np.asarray([table[k] for k in keys], dtype=float)
    return np.asarray(keys, dtype=object)[rng.choice(len(keys), size=n, p=p / p.sum())]


def draw_identities(n_identities: int, *, seed: int = 0, concordance: float = 0.3) -> pd.DataFrame:
    """Draw the traits of ``n_identities`` people.

    Returns
    -------
    pandas.DataFrame, one row per identity, with ``speaker_id`` ("sim00000"...),
    ``gender``, ``age`` (years, float), ``ethnicity``, ``skin_tone`` (1-6),
    ``height`` (cm), ``weight`` (kg), ``bmi`` (kg/m^2), ``mother_tongue``,
    ``accent``, and the latent vectors ``voice_latent`` and ``face_latent``
    (each a float array of shape (8,)).
    """
    if n_identities < 2:
        raise ValueError(f"a population needs at least 2 identities, got {n_identities}")
    if not 0.0 <= concordance <= 1.0:
        raise ValueError(f"concordance must be in [0, 1], got {concordance}")
    rng = np.random.default_rng([seed, 0])
    n = int(n_identities)
    gender = np.where(rng.random(n) < 0.5, "male", "female").astype(object)
    ethnicity = _choice(rng, ETHNICITY_P, n)
    # Ages 12-80, most people between 20 and 50 (a Beta bump).
    age = 12.0 + 68.0 * rng.beta(1.6, 2.4, n)
    skin = np.array([rng.choice(6, p=np.asarray(SKIN_P[e]) / sum(SKIN_P[e])) + 1 for e in ethnicity], dtype=np.int64)

    adult_height = np.where(gender == "male", 176.0, 163.0) + np.array([HEIGHT_OFFSET[e] for e in ethnicity])
    adult_height = adult_height + rng.normal(0.0, 6.5, n)
    # Teenagers are still growing: about 3 % of adult height per year below 18.
    growth = np.clip(1.0 - 0.03 * np.clip(18.0 - age, 0.0, None), 0.8, 1.0)
    height = adult_height * growth
    # BMI rises slowly with age; log-normal spread.
    bmi = np.exp(np.log(23.5) + 0.004 * (np.clip(age, 18, 70) - 18) + rng.normal(0.0, 0.16, n))
    bmi = np.clip(bmi, 15.5, 48.0)
    weight = bmi * (height / 100.0) ** 2

    tongue = np.array([_choice(rng, TONGUE_P[e], 1)[0] for e in ethnicity], dtype=object)
    accent = np.empty(n, dtype=object)
    for i, (t, e) in enumerate(zip(tongue, ethnicity)):
        if t == "English":
            if e == "Indian":
                accent[i] = "Indian" if rng.random() < 0.6 else "British"
            elif e == "Black":
                accent[i] = _choice(rng, {"Nigerian": 0.4, "General American": 0.4, "British": 0.2}, 1)[0]
            else:
                accent[i] = "General American" if rng.random() < 0.6 else "British"
        else:
            accent[i] = L1_ACCENT[t] if rng.random() < 0.8 else "General American"

    z = rng.normal(size=(n, LATENT_DIM))
    c = float(concordance)
    voice_latent = c * z + np.sqrt(1 - c * c) * rng.normal(size=(n, LATENT_DIM))
    face_latent = c * z + np.sqrt(1 - c * c) * rng.normal(size=(n, LATENT_DIM))

    assert set(ethnicity) <= set(ETHNICITIES) and set(tongue) <= set(MOTHER_TONGUES) and set(accent) <= set(ACCENTS)
    return pd.DataFrame(
        {
            "speaker_id": [f"sim{i:05d}" for i in range(n)],
            "gender": gender,
            "age": np.round(age, 1),
            "ethnicity": ethnicity,
            "skin_tone": skin,
            "height": np.round(height, 1),
            "weight": np.round(weight, 1),
            "bmi": np.round(bmi, 2),
            "mother_tongue": tongue,
            "accent": accent,
            "voice_latent": list(voice_latent.astype(np.float32)),
            "face_latent": list(face_latent.astype(np.float32)),
        }
    )


def make_population(
    n_identities: int = DEFAULT_N_IDENTITIES,
    *,
    seed: int = 0,
    clips_per_identity: int = 4,
    faces_per_identity: int = 4,
    concordance: float = 0.3,
    clip_seconds: tuple[float, float] = (3.0, 6.0),
    image_size: int = 112,
    identities: pd.DataFrame | None = None,
    cache: bool = True,
    progress: bool = False,
) -> Population:
    """Simulate a population of people with voice clips and face images.

    Parameters
    ----------
    n_identities : int
        Number of people (ignored when ``identities`` is given).
    seed : int
        Everything is deterministic given the seed and the other arguments.
    clips_per_identity, faces_per_identity : int
        Voice clips (16 kHz mono, ``clip_seconds`` long) and face images
        (``image_size`` x ``image_size`` RGB) per person.
    concordance : float in [0, 1]
        How much identity-specific signal voice and face share beyond the
        metaproperties (module docstring).
    identities : DataFrame, optional
        Traits to render instead of drawing them (from :func:`draw_identities`,
        possibly edited: the book uses this to change one trait at a time).
    cache : bool
        Keep the result under the vfmatch cache and reuse it next time.

    Returns
    -------
    Population
    """
    from .faces import render_faces
    from .voices import synthesize_clips

    if clips_per_identity < 1 or faces_per_identity < 1:
        raise ValueError("clips_per_identity and faces_per_identity must be at least 1")
    lo, hi = clip_seconds
    if not 0.5 <= lo <= hi:
        raise ValueError(f"clip_seconds must be (min, max) with 0.5 <= min <= max, got {clip_seconds}")
    params = dict(
        n_identities=int(n_identities) if identities is None else len(identities),
        seed=int(seed),
        clips_per_identity=int(clips_per_identity),
        faces_per_identity=int(faces_per_identity),
        concordance=float(concordance),
        clip_seconds=[float(lo), float(hi)],
        image_size=int(image_size),
        version=SIMULATOR_VERSION,
    )
    key = None
    if cache and identities is None:
        key = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
        folder = cache_dir("populations") / key
        if (folder / "info.json").exists():
            return Population.load_from_disk(folder)

    t0 = time.perf_counter()
    traits = draw_identities(params["n_identities"], seed=seed, concordance=concordance) if identities is None else identities.copy()
    clips, clip_meta = synthesize_clips(
        traits, clips_per_identity, seed=seed, clip_seconds=(lo, hi), sample_rate=SAMPLE_RATE, progress=progress
    )
    images, face_meta = render_faces(traits, faces_per_identity, seed=seed, image_size=image_size, progress=progress)
    population = assemble_population(traits, clips, clip_meta, images, face_meta, info={"generator": "vfmatch.simulator", "params": params})
    population.info["seconds_to_simulate"] = round(time.perf_counter() - t0, 3)
    if key is not None:
        population.save_to_disk(folder)
        population = Population.load_from_disk(folder)
    return population


def assemble_population(traits: pd.DataFrame, clips, clip_meta: pd.DataFrame, images, face_meta: pd.DataFrame, info: dict) -> Population:
    """Pack arrays and per-item metadata into a :class:`Population` backed by ``datasets``.

    ``clips`` is a list of float32 arrays (16 kHz); ``images`` a uint8 array
    of shape (n, H, W, 3); the metadata frames have one row per item with at
    least ``speaker_id`` and ``clip_id`` / ``face_id``."""
    import io

    import datasets
    import pyarrow as pa
    from PIL import Image

    # Audio: one flat float32 buffer plus offsets, handed to Arrow without a
    # Python loop over samples (datasets.from_dict on lists is ~10x slower).
    clips = [np.asarray(c, dtype=np.float32) for c in clips]
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in clips])]).astype(np.int64)
    audio = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(np.concatenate(clips) if clips else np.zeros(0, np.float32)))
    voice_features = {c: _feature_for(clip_meta[c]) for c in clip_meta.columns}
    voice_features["audio"] = datasets.LargeList(datasets.Value("float32"))
    voice_features["sampling_rate"] = datasets.Value("int32")
    voice_table = pa.table(
        {
            **{c: pa.array(clip_meta[c].tolist(), type=voice_features[c].pa_type) for c in clip_meta.columns},
            "audio": audio,
            "sampling_rate": pa.array(np.full(len(clips), SAMPLE_RATE, dtype=np.int32)),
        }
    )
    # An explicit fingerprint: datasets would otherwise pickle all samples to hash them.
    fingerprint = datasets.fingerprint.generate_random_fingerprint
    voices = datasets.Dataset(voice_table.cast(datasets.Features(voice_features).arrow_schema), fingerprint=fingerprint())

    # Faces: PNG bytes (lossless; fast compression level), as datasets.Image stores them.
    def png(img):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG", compress_level=1)
        return {"bytes": buf.getvalue(), "path": None}

    face_features = datasets.Features({**{c: _feature_for(face_meta[c]) for c in face_meta.columns}, "image": datasets.Image()})
    face_cols = {c: face_meta[c].tolist() for c in face_meta.columns}
    face_cols["image"] = [png(im) for im in np.asarray(images, dtype=np.uint8)]
    encoded = face_features.encode_batch(face_cols)
    face_table = pa.table({c: pa.array(encoded[c], type=face_features[c].pa_type) for c in face_features})
    faces = datasets.Dataset(face_table, info=datasets.DatasetInfo(features=face_features), fingerprint=fingerprint())
    return Population(traits.reset_index(drop=True), voices, faces, info)


def _feature_for(series: pd.Series):
    """A ``datasets`` feature type for a metadata column."""
    import datasets

    first = series.iloc[0] if len(series) else None
    if isinstance(first, (list, np.ndarray)):
        return datasets.Sequence(datasets.Sequence(datasets.Value("float32"))) if np.ndim(first) == 2 else datasets.Sequence(datasets.Value("float32"))
    if pd.api.types.is_bool_dtype(series):
        return datasets.Value("bool")
    if pd.api.types.is_integer_dtype(series):
        return datasets.Value("int64")
    if pd.api.types.is_float_dtype(series):
        return datasets.Value("float32")
    return datasets.Value("string")
