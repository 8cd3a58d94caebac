"""Simulating a whole population: traits, then voices and faces, packed into a :class:`Population`.

:func:`make_population` draws the traits (:mod:`vfmatch.simulator.traits`),
synthesises each person's voice clips (:mod:`vfmatch.simulator.voices`) and
renders their faces (:mod:`vfmatch.simulator.faces`), then packs everything
into Arrow-backed tables (:func:`assemble_population`). The default population
has :data:`~vfmatch.simulator.traits.DEFAULT_N_IDENTITIES` people.

Simulated populations are cached under the vfmatch cache. The cache key holds
the arguments and :func:`simulator_fingerprint` -- the simulator's own code and
tables, and :data:`vfmatch.utils.CODE_VERSION` -- so a student who edits the
simulator gets a freshly simulated population, never an old one.

Book chapter: ``book/01_population.ipynb``.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import sys
import time

import datasets
import numpy as np
import pandas as pd
import pyarrow as pa
from PIL import Image

from ..config import cache_dir
from ..data.population import SAMPLE_RATE, Population
from ..utils import code_fingerprint
from .faces import render_faces
from .traits import DEFAULT_N_IDENTITIES, SIMULATOR_VERSION, draw_identities
from .voices import synthesize_clips

__all__ = ["make_population", "assemble_population", "simulator_fingerprint"]

# The modules whose code decides what a simulated population looks like.
_SIMULATOR_MODULES = (draw_identities.__module__, synthesize_clips.__module__, render_faces.__module__, __name__)


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
        Keep the result under the vfmatch cache and reuse it next time the
        same arguments meet the same simulator code (:func:`simulator_fingerprint`).
    progress : bool
        Show progress bars.

    Returns
    -------
    Population
    """
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
        # The arguments and the simulator's code: an edited simulator simulates afresh.
        text = json.dumps(params, sort_keys=True) + simulator_fingerprint()
        key = hashlib.sha1(text.encode()).hexdigest()[:16]
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


def simulator_fingerprint() -> str:
    """A short hash of what a simulated population depends on besides its arguments.

    That is the code of every function and class defined in
    :mod:`~vfmatch.simulator.traits`, :mod:`~vfmatch.simulator.voices`,
    :mod:`~vfmatch.simulator.faces` and this module
    (:func:`vfmatch.utils.code_fingerprint`, which adds
    :data:`vfmatch.utils.CODE_VERSION`), and their tables of numbers
    (upper-case module names such as ``VOWELS`` or ``SKIN_P``)."""
    code, tables = [], []
    for module in [sys.modules[m] for m in _SIMULATOR_MODULES]:
        for name, obj in sorted(vars(module).items()):
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == module.__name__:
                code.append(obj)
            elif name.lstrip("_").isupper():
                # Arrays by their bytes: their repr depends on numpy's print options.
                text = f"{obj.dtype}{obj.shape}{obj.tobytes().hex()}" if isinstance(obj, np.ndarray) else repr(obj)
                tables.append(f"{module.__name__}.{name} = {text}")
    return hashlib.sha1("\n".join([code_fingerprint(*code), *tables]).encode()).hexdigest()[:16]


def assemble_population(traits: pd.DataFrame, clips, clip_meta: pd.DataFrame, images, face_meta: pd.DataFrame, info: dict) -> Population:
    """Pack arrays and per-item metadata into a :class:`Population` backed by ``datasets``.

    ``clips`` is a list of float32 arrays (16 kHz); ``images`` a uint8 array
    of shape (n, H, W, 3); the metadata frames have one row per item with at
    least ``speaker_id`` and ``clip_id`` / ``face_id``."""
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
