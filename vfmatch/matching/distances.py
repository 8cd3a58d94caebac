"""Distances between a voice metaproperty and its face counterpart.

Both sides of a metaproperty are probability distributions over the same values
(the patent's Tables 1 and 2): ``p`` from the voice, ``q`` from the face. The
patent's distance calculator (FIG. 1, block 150) takes one number per
metaproperty, "e.g., Euclidean distance, cosine distance (e.g., equals one
minus cosine similarity) or other measures of distance". This module offers
those two and three that respect what the vectors are -- probabilities:

=================  ==========================================  ======  =====================
name               formula                                     range   suited to
=================  ==========================================  ======  =====================
``euclidean``      ``||p - q||_2``                             [0, √2]  anything (the patent)
``cosine``         ``1 - p·q / (||p|| ||q||)``                 [0, 1]  anything (the patent)
``jensen_shannon`` ``sqrt(JSD(p, q))``, log base 2             [0, 1]  categorical values
``hellinger``      ``||sqrt(p) - sqrt(q)||_2 / sqrt(2)``       [0, 1]  categorical values
``emd``            ``sum_k |P_k - Q_k| / (K - 1)``, P, Q CDFs  [0, 1]  ordered values (age bins,
                                                                       Fitzpatrick types)
=================  ==========================================  ======  =====================

The earth mover's distance treats adjacent values as one step apart (bin
index, not years), so putting all mass one age bin too high costs ``1/(K-1)``
and the opposite end of the scale costs 1; the unordered distances would call
both "completely different". :func:`default_distance` picks ``emd`` for
ordered metaproperties and ``jensen_shannon`` for unordered ones;
``distance="auto"`` in :class:`vfmatch.matching.matcher.MetapropertyMatcher` uses it.

Every distance is **larger for a mismatch** and zero for identical
distributions. Each comes in two shapes:

* :func:`paired_distance` -- row ``i`` of ``p`` against row ``i`` of ``q``:
  ``(n, K), (n, K) -> (n,)`` (training pairs);
* :func:`pairwise_distance` -- every row of ``p`` against every row of ``q``:
  ``(n, K), (m, K) -> (n, m)`` (a voice against a whole face gallery),
  vectorised with numpy, in chunks so memory stays bounded.

*Adding a distance* (the timm idiom every vfmatch component follows)::

    @register_distance("total_variation", aliases=("tv",))
    def total_variation(p, q):          # (..., K), (..., K) -> (...)
        return 0.5 * np.abs(p - q).sum(axis=-1)

It is then a choice of :func:`resolve_distances`, of the matcher's
``distance=``, of ``vfmatch run --distance`` and of chapter 05's dropdowns
(:func:`list_distances`); :func:`create_distance` returns it by name.

Book chapter: ``book/05_distances_and_weights.ipynb``.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from ..metaproperties import Metaproperty, get_metaproperty
from .tables import is_embedding_column

__all__ = [
    "register_distance",
    "unregister_distance",
    "create_distance",
    "list_distances",
    "canonical_distance",
    "euclidean",
    "cosine",
    "jensen_shannon",
    "hellinger",
    "emd",
    "paired_distance",
    "pairwise_distance",
    "default_distance",
    "resolve_distances",
]

# Pairwise work is done on (rows, chunk, K) blocks of at most this many floats.
_CHUNK_FLOATS = 4_000_000
_EPS = 1e-12


# A registry, the timm way: ``@register_distance(name)`` adds a function
# ``(p, q) -> distances`` over the last axis of broadcasting arrays of shape
# ``(..., K)``; :func:`create_distance` returns it by name (or alias) and
# :func:`list_distances` names them. Every distance must be zero for identical
# distributions and grow with the mismatch.
_DISTANCES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {}
_PAIRWISE: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {}
_ALIASES: dict[str, str] = {}


def _key(name: str) -> str:
    return str(name).strip().lower()


def register_distance(name: str, *, aliases: Sequence[str] = (), pairwise: Callable | None = None):
    """Function decorator: register a distance between probability vectors.

    Parameters
    ----------
    name : str
        The name :func:`create_distance`, :func:`resolve_distances`, the matcher's
        ``distance=`` and ``vfmatch run --distance`` accept.
    aliases : sequence of str
        Other spellings of the same distance (``"js"`` for ``"jensen_shannon"``).
    pairwise : callable, optional
        A faster ``(n, K), (m, K) -> (n, m)`` version for :func:`pairwise_distance`;
        without one, the function is broadcast over ``(n, chunk, K)`` blocks.

    The decorated function takes two broadcasting arrays of shape ``(..., K)``
    and returns the distances over the last axis, shape ``(...)``."""

    def wrap(fn: Callable) -> Callable:
        key = _key(name)
        if key in _DISTANCES or key in _ALIASES:
            raise ValueError(f"a distance named {name!r} is already registered")
        _DISTANCES[key] = fn
        if pairwise is not None:
            _PAIRWISE[key] = pairwise
        for alias in aliases:
            _ALIASES[_key(alias)] = key
        return fn

    return wrap


def unregister_distance(name: str) -> None:
    """Remove a distance and its aliases (for experiments in a notebook or a test)."""
    key = _ALIASES.get(_key(name), _key(name))
    _DISTANCES.pop(key, None)
    _PAIRWISE.pop(key, None)
    for alias in [a for a, k in _ALIASES.items() if k == key]:
        del _ALIASES[alias]


def list_distances() -> list[str]:
    """Names of the registered distances, in registration order (aliases not listed)."""
    return list(_DISTANCES)


def canonical_distance(name: str) -> str:
    """The registered name of ``name`` (an alias such as ``"js"`` gives ``"jensen_shannon"``).

    Raises ValueError for a name no distance is registered under."""
    key = _ALIASES.get(_key(name), _key(name))
    if key not in _DISTANCES:
        raise ValueError(f"unknown distance {name!r}; choose one of {list_distances()} (or 'auto')")
    return key


def create_distance(name: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The registered distance function ``(p, q) -> distances`` over the last axis.

    Raises ValueError for an unknown name (the message lists the known ones)."""
    return _DISTANCES[canonical_distance(name)]


# ---------------------------------------------------------------------------
# The distances, written for broadcasting arrays of shape (..., K)
# ---------------------------------------------------------------------------


def _pairwise_euclidean(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    # The usual ||p||^2 + ||q||^2 - 2 p.q expansion: no (n, m, K) block.
    sq = np.sum(p * p, 1)[:, None] + np.sum(q * q, 1)[None, :] - 2.0 * p @ q.T
    return np.sqrt(np.clip(sq, 0.0, None))


def _pairwise_cosine(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    pn = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), _EPS)
    qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), _EPS)
    return 1.0 - pn @ qn.T


def _pairwise_hellinger(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return _pairwise_euclidean(np.sqrt(p), np.sqrt(q)) / np.sqrt(2.0)


@register_distance("euclidean", pairwise=_pairwise_euclidean)
def euclidean(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``||p - q||_2`` over the last axis (the patent's first example)."""
    return np.sqrt(np.sum((p - q) ** 2, axis=-1))


@register_distance("cosine", pairwise=_pairwise_cosine)
def cosine(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """One minus cosine similarity over the last axis (the patent's second example).

    For probability vectors (non-negative) it lies in [0, 1]."""
    num = np.sum(p * q, axis=-1)
    den = np.sqrt(np.sum(p * p, axis=-1) * np.sum(q * q, axis=-1))
    return 1.0 - num / np.maximum(den, _EPS)


def _entropy2(p: np.ndarray) -> np.ndarray:
    # 0 log 0 = 0; clip only inside the log so zero entries stay zero.
    return -np.sum(p * np.log2(np.clip(p, _EPS, None)), axis=-1)


@register_distance("jensen_shannon", aliases=("js", "jensen-shannon", "jsd"))
def jensen_shannon(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon *distance*: the square root of the JS divergence (log base 2).

    ``JSD = H((p + q) / 2) - (H(p) + H(q)) / 2``. The square root is a metric
    and, with base-2 logs, lies in [0, 1] (1 = disjoint supports)."""
    jsd = _entropy2(0.5 * (p + q)) - 0.5 * (_entropy2(p) + _entropy2(q))
    return np.sqrt(np.clip(jsd, 0.0, 1.0))


@register_distance("hellinger", pairwise=_pairwise_hellinger)
def hellinger(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Hellinger distance ``||sqrt(p) - sqrt(q)|| / sqrt(2)``, in [0, 1]."""
    return np.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2, axis=-1) / 2.0)


@register_distance("emd", aliases=("wasserstein", "earth_mover", "earth-mover"))
def emd(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Earth mover's (1-Wasserstein) distance between distributions on ordered bins.

    Adjacent bins are one step apart; in one dimension the EMD equals the L1
    distance between the cumulative distributions. Divided by ``K - 1`` so it
    lies in [0, 1]: 1 means all mass moved from the first bin to the last."""
    k = p.shape[-1]
    return np.sum(np.abs(np.cumsum(p - q, axis=-1)[..., :-1]), axis=-1) / max(k - 1, 1)


def _as_prob(x, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{what}: expected probabilities of shape (n, n_values), got shape {a.shape}")
    return a


# ---------------------------------------------------------------------------
# Paired and pairwise evaluation
# ---------------------------------------------------------------------------


def paired_distance(name: str, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Distance between row ``i`` of ``p`` and row ``i`` of ``q``.

    Parameters
    ----------
    name : str
        A registered distance (:func:`list_distances`) or one of its aliases.
    p, q : array, shape (n, K)
        Probability rows (voice side, face side).

    Returns
    -------
    np.ndarray, shape (n,)
    """
    fn = create_distance(name)
    p, q = _as_prob(p, "voice side"), _as_prob(q, "face side")
    if p.shape != q.shape:
        raise ValueError(f"paired distance needs equal shapes, got {p.shape} and {q.shape}")
    return fn(p, q)


def pairwise_distance(name: str, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Distance between every row of ``p`` and every row of ``q``.

    Parameters
    ----------
    p : array, shape (n, K)
    q : array, shape (m, K)

    Returns
    -------
    np.ndarray, shape (n, m): entry ``[i, j]`` is the distance of ``p[i]`` to ``q[j]``.
    """
    key = canonical_distance(name)
    fn = _DISTANCES[key]
    p, q = _as_prob(p, "voice side"), _as_prob(q, "face side")
    if p.shape[1] != q.shape[1]:
        raise ValueError(f"pairwise distance needs the same number of values, got {p.shape[1]} and {q.shape[1]}")
    if key in _PAIRWISE:  # a registered fast path (euclidean, cosine, hellinger)
        return _PAIRWISE[key](p, q)
    # Otherwise (jensen_shannon, emd, new distances): broadcast over (n, chunk, K) blocks.
    n, k = p.shape
    m = q.shape[0]
    out = np.empty((n, m), dtype=np.float64)
    step = max(1, _CHUNK_FLOATS // max(1, n * k))
    for start in range(0, m, step):
        block = q[start : start + step]
        out[:, start : start + len(block)] = fn(p[:, None, :], block[None, :, :])
    return out


# ---------------------------------------------------------------------------
# Choosing a distance per metaproperty
# ---------------------------------------------------------------------------


def default_distance(metaproperty: str | Metaproperty) -> str:
    """``"emd"`` for ordered values (age bins, skin type, weight, BMI), ``"cosine"``
    for an embedding column (the hybrid), else ``"jensen_shannon"``."""
    if isinstance(metaproperty, str) and is_embedding_column(metaproperty):
        return "cosine"
    return "emd" if get_metaproperty(metaproperty).is_ordered else "jensen_shannon"


def resolve_distances(
    metaproperties: Sequence[str], distance: str | Mapping[str, str] | None = "auto"
) -> dict[str, str]:
    """One distance name per metaproperty.

    Parameters
    ----------
    metaproperties : sequence of str
    distance : str or mapping
        ``"auto"`` (:func:`default_distance` for each), one name for all
        (``"euclidean"``), or a mapping ``{metaproperty: name}``; metaproperties
        the mapping leaves out get the automatic choice. A mapping may also be
        written as a string ``"age=emd,gender=cosine"`` (the command line).

    Raises
    ------
    ValueError
        For an unknown distance name, or a mapping key that is not one of ``metaproperties``.
    """
    names = list(metaproperties)
    if distance is None:
        distance = "auto"
    if isinstance(distance, str) and "=" in distance:
        distance = dict(part.split("=", 1) for part in distance.replace(" ", "").split(",") if part)
    if isinstance(distance, str):
        if distance.strip().lower() == "auto":
            return {n: default_distance(n) for n in names}
        key = canonical_distance(distance)
        return {n: key for n in names}
    unknown = set(distance) - set(names)
    if unknown:
        raise ValueError(f"distance given for {sorted(unknown)}, which are not among the metaproperties {names}")
    out = {}
    for n in names:
        choice = distance.get(n, "auto")
        out[n] = default_distance(n) if str(choice).lower() == "auto" else canonical_distance(choice)
    return out
