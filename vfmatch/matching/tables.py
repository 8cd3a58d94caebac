"""Metaproperty tables and labelled pairs: what the matcher reads.

A *metaproperty table* is a ``dict`` mapping a metaproperty name to an array of
probabilities of shape ``(n_items, n_values)``, in the row order of
``population.voices`` (or ``.faces``): what
:class:`vfmatch.extractors.ExtractorSet` returns, or, for a perfect extractor,
:func:`oracle_metaproperties`. :func:`noisy_metaproperties` blurs a table the
way an imperfect extractor would, so tests and the book can study matching
without training extractors.

*Pairs* are the frame of :func:`vfmatch.data.pairs.make_pairs`
(``voice_index``, ``face_index``, ``label``: 1 = same person) or a tuple of
those arrays; :func:`as_pairs` reads either.

*Embedding columns* (the hybrid of issue 11): a table may also hold a learned
embedding under a key ``"embedding:<method>"`` (:func:`embedding_column`), an
``(n_items, dim)`` array of L2-normalised vectors rather than probabilities.
The matcher treats it as one more column of its distance vector (cosine
distance by default), so its weight is derived exactly as a metaproperty's and
every explanation shows its contribution (:func:`with_embedding`).

Book chapters: ``book/05_distances_and_weights.ipynb`` (oracle bound),
``book/08_evaluation.ipynb`` (noisy tables).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..metaproperties import DEFAULT_METAPROPERTIES, get_metaproperty
from ..utils import one_hot

__all__ = [
    "MetapropertyTable",
    "EMBEDDING_PREFIX",
    "embedding_column",
    "is_embedding_column",
    "with_embedding",
    "select_rows",
    "table_sides",
    "as_pairs",
    "check_labels",
    "oracle_metaproperties",
    "noisy_metaproperties",
]

MetapropertyTable = Mapping[str, np.ndarray]

EMBEDDING_PREFIX = "embedding:"


def embedding_column(method: str) -> str:
    """The table key of the embedding learned by ``method``: ``"embedding:<method>"``."""
    return f"{EMBEDDING_PREFIX}{method}"


def is_embedding_column(name: str) -> bool:
    """True for an embedding column (``"embedding:..."``), False for a metaproperty."""
    return str(name).startswith(EMBEDDING_PREFIX)


def with_embedding(table: MetapropertyTable, method: str, embeddings) -> dict:
    """A copy of ``table`` with the embeddings of ``method`` added as column
    ``"embedding:<method>"`` (the hybrid matcher's input, issue 11).

    ``embeddings`` is ``(n_items, dim)``, one row per row of the table, finite."""
    E = np.asarray(embeddings, dtype=np.float64)
    n = {np.shape(v)[0] for v in table.values()}
    if E.ndim != 2 or E.shape[1] < 1:
        raise ValueError(f"embeddings of {method!r}: expected shape (n_items, dim), got {E.shape}")
    if n and n != {E.shape[0]}:
        raise ValueError(f"embeddings of {method!r}: {E.shape[0]} rows for a table of {sorted(n)} rows")
    if not np.all(np.isfinite(E)):
        raise ValueError(f"embeddings of {method!r} contain NaN or inf")
    return {**table, embedding_column(method): E}


def select_rows(table: MetapropertyTable, rows) -> dict[str, np.ndarray]:
    """The rows ``rows`` of every array of a metaproperty table."""
    rows = np.asarray(rows, dtype=np.int64)
    return {k: np.asarray(v)[rows] for k, v in table.items()}


def table_sides(voice_table: MetapropertyTable, face_table: MetapropertyTable, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Both sides of metaproperty ``name``: ``(p, q)``, float64 arrays of shapes
    ``(n_voices, K)`` and ``(n_faces, K)``, ``K`` its number of values.

    Raises KeyError when a table lacks it, ValueError for a wrong width."""
    for side, table in (("voice", voice_table), ("face", face_table)):
        if name not in table:
            raise KeyError(f"the {side} metaproperty table has no {name!r}; it has {sorted(table)}")
    p, q = np.asarray(voice_table[name], np.float64), np.asarray(face_table[name], np.float64)
    if is_embedding_column(name):  # a learned embedding: any width, the same on both sides
        if p.ndim != 2 or q.ndim != 2 or p.shape[1] != q.shape[1]:
            raise ValueError(f"{name!r}: expected (n, dim) embeddings of one width on both sides, got {p.shape} and {q.shape}")
        return p, q
    k = get_metaproperty(name).n_values
    if p.ndim != 2 or q.ndim != 2 or p.shape[1] != k or q.shape[1] != k:
        raise ValueError(f"metaproperty {name!r}: expected (n, {k}) probabilities on both sides, got {p.shape} and {q.shape}")
    return p, q


def as_pairs(pairs) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(voice_index, face_index, label)`` from a :func:`vfmatch.make_pairs` frame
    or a tuple of two or three arrays (``label`` is None when absent)."""
    if isinstance(pairs, pd.DataFrame):
        for col in ("voice_index", "face_index"):
            if col not in pairs:
                raise ValueError(f"pairs: missing column {col!r} (expected the frame from vfmatch.make_pairs)")
        label = pairs["label"].to_numpy(dtype=np.int64) if "label" in pairs else None
        return pairs["voice_index"].to_numpy(np.int64), pairs["face_index"].to_numpy(np.int64), label
    if isinstance(pairs, (tuple, list)) and len(pairs) in (2, 3):
        vi, fi = np.asarray(pairs[0], np.int64), np.asarray(pairs[1], np.int64)
        label = np.asarray(pairs[2], np.int64) if len(pairs) == 3 else None
        if vi.shape != fi.shape or (label is not None and label.shape != vi.shape):
            raise ValueError("pairs: voice_index, face_index and label must have the same length")
        return vi, fi, label
    raise TypeError("pairs must be a DataFrame from vfmatch.make_pairs or a tuple (voice_index, face_index[, label])")


def check_labels(y, n: int) -> np.ndarray:
    """``y`` as an ``(n,)`` int array of 0/1 with both classes present; ValueError otherwise."""
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"labels: expected shape ({n},), got {y.shape}")
    y = y.astype(np.int64)
    if not set(np.unique(y)) <= {0, 1}:
        raise ValueError("labels must be 1 (same person) or 0 (different people)")
    if len(np.unique(y)) < 2:
        raise ValueError("need both matching (1) and unmatching (0) pairs to train or calibrate a matcher")
    return y


def oracle_metaproperties(population, names: Sequence[str] | None = None) -> tuple[dict, dict]:
    """Ground-truth metaproperty tables: what a perfect extractor would return.

    Parameters
    ----------
    population : vfmatch.Population
    names : sequence of str, optional
        Metaproperties to include; default: those of the patent's list for
        which the population has ground truth.

    Returns
    -------
    (voice_table, face_table) : two dicts ``name -> (n_items, n_values)`` float64
        arrays of one-hot rows (uniform where the value is unknown,
        :func:`vfmatch.utils.one_hot`), in the row order of
        ``population.voices`` and ``population.faces``.

    Feeding these to the matcher gives the *oracle bound*: the best the
    metaproperty approach can do on this population, whatever the extractors.
    """
    names = list(names) if names is not None else [n for n in DEFAULT_METAPROPERTIES if population.has_metaproperty(n)]
    voice, face = {}, {}
    for name in names:
        k = get_metaproperty(name).n_values
        voice[name] = one_hot(population.labels(name, "voice"), k).astype(np.float64)
        face[name] = one_hot(population.labels(name, "face"), k).astype(np.float64)
    return voice, face


def noisy_metaproperties(table: MetapropertyTable, noise: float = 1.0, *, sharpness: float = 3.0, seed: int = 0) -> dict:
    """Blur a (ground-truth) table the way an imperfect extractor would.

    Each row becomes ``softmax(sharpness * row + noise * N(0, 1))``: with
    ``noise=0`` a sharp distribution on the true value; as ``noise`` grows the
    top value is more and more often wrong. Used by the tests and the book to
    study how extractor quality limits matching, without training extractors.
    """
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    out = {}
    for name, p in table.items():
        logits = sharpness * np.asarray(p, dtype=np.float64) + noise * rng.standard_normal(np.shape(p))
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        out[name] = e / e.sum(axis=1, keepdims=True)
    return out
