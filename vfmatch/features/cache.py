"""The feature cache: an encoder's representation of every clip or face of a
population, computed once.

Kept in memory for the session and on disk under ``cache_dir("features")``.
The key holds everything the features depend on: the encoder's fingerprint
(its configuration, its weights and the source code of its class, see
:meth:`vfmatch.features.encoders.Encoder.fingerprint`), the modality and the
data's fingerprint. Book chapters 02-04.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np

from ..config import cache_dir
from .encoders import ConcatEncoder, Encoder

__all__ = ["population_features", "population_items", "clear_memory_cache"]


_MEMO: "OrderedDict[str, object]" = OrderedDict()
_MEMO_SIZE = 12


def population_items(population, modality: str):
    """Raw items of a population: clips, or (images, landmarks)."""
    if modality == "voice":
        return population.audios(), None
    images = population.images()
    landmarks = None
    if "landmarks" in population.faces.column_names:
        lm = population.faces["landmarks"][:]
        if all(v is not None for v in lm):
            landmarks = np.asarray(lm, dtype=np.float32)
    return images, landmarks


def _dataset_key(dataset) -> str:
    """Content key of a ``datasets.Dataset``: its fingerprint (a hash that
    ``datasets`` derives from the data and every transform applied to it)."""
    fp = getattr(dataset, "_fingerprint", None)
    if fp:
        return f"{fp}:{dataset.num_rows}"
    h = hashlib.sha1()
    for row in dataset.with_format("numpy"):
        for v in row.values():
            h.update(np.asarray(v).tobytes())
    return h.hexdigest()


def population_features(
    encoder: Encoder, population, *, batch_size: int = 32, progress: bool = False, cache: bool = True
):
    """The encoder's representation of every clip (or face) of a population.

    Computed once: kept in memory for this session and, with ``cache=True``,
    on disk under ``cache_dir("features")`` keyed by the encoder's fingerprint
    (code, configuration and weights: :meth:`Encoder.fingerprint`) and the
    data's fingerprint. A concatenation caches each of its parts.

    Returns
    -------
    ``(n_items, dim)`` array for vector encoders; a list of (n_mels, n_frames_i)
    arrays or an (n, C, H, W) array for matrix encoders. Rows follow
    ``population.voices`` / ``population.faces``.
    """
    if isinstance(encoder, ConcatEncoder):  # each part once, shared with other concatenations
        parts = [population_features(p, population, batch_size=batch_size, progress=progress, cache=cache) for p in encoder.parts]
        return np.concatenate(parts, axis=1)
    modality = encoder.modality
    dataset = population.voices if modality == "voice" else population.faces
    key = hashlib.sha1(f"{encoder.fingerprint()}|{modality}|{_dataset_key(dataset)}".encode()).hexdigest()[:24]
    if key in _MEMO:
        _MEMO.move_to_end(key)
        return _MEMO[key]
    path = cache_dir("features") / f"{key}.npz" if cache else None
    if path is not None and path.exists():
        with np.load(path, allow_pickle=False) as z:
            feats = np.split(z["data"], np.cumsum(z["lengths"])[:-1], axis=1) if "lengths" in z else z["data"]
    else:
        items, landmarks = population_items(population, modality)
        kw = {"landmarks": landmarks} if modality == "face" else {}
        feats = encoder.encode(items, batch_size=batch_size, progress=progress, **kw)
        if path is not None:
            tmp = path.with_suffix(".tmp.npz")
            if isinstance(feats, list):
                np.savez(tmp, data=np.concatenate(feats, axis=1), lengths=np.array([f.shape[1] for f in feats]))
            else:
                np.savez(tmp, data=feats)
            tmp.replace(path)
    _MEMO[key] = feats
    while len(_MEMO) > _MEMO_SIZE:
        _MEMO.popitem(last=False)
    return feats


def clear_memory_cache() -> None:
    """Forget the features kept in memory (the disk cache stays)."""
    _MEMO.clear()
