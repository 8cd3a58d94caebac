"""The one list sampler: seeded 1:N lists, 1:2 triplets and verification pairs on item indices.

Which voice is compared with which face? Every protocol of the field draws its
lists here, vectorised with numpy (no loop over lists):

* :func:`sample_lists` -- 1:N lists: a probe, one item of its own identity and
  one item of each of N-1 other identities, with the order in which a person
  would be shown them; the 1:2 triplets of paper 001 (sec. 2.3.1, eq. 1-2) and
  seed 003 (sec. 4.2) are the case N = 2 (:func:`sample_triplets`, the order
  being paper 001's involution sigma);
* :func:`sample_verification_pairs` -- balanced same / different pairs;
* a group per speaker (gender) restricts the other identities to the probe's
  group: seed 003's gender-restricted "G" protocol, beside the unrestricted "U".

Items are known by their **speaker codes**, small integers from
:func:`speaker_codes`; shapes are ``(n_items,)`` in, ``(n_lists,)`` and
``(n_lists, N)`` of item indices out. :func:`vfmatch.data.pairs.make_triplets`
and :func:`~vfmatch.data.pairs.make_one_to_n` are thin wrappers for a
:class:`~vfmatch.data.population.Population`; the metrics of
:mod:`vfmatch.evaluation` score the lists drawn here.

Book chapters: ``book/01_population.ipynb`` (lists of a population) and
``book/08_evaluation.ipynb`` (the protocols).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "speaker_codes",
    "items_by_code",
    "group_per_code",
    "ListSample",
    "sample_lists",
    "sample_triplets",
    "sample_verification_pairs",
]


def speaker_codes(*speaker_arrays) -> tuple[list[np.ndarray], np.ndarray]:
    """Integer codes for speaker ids shared by several arrays.

    Returns ``(codes, names)``: one int64 array per input (same shape) and the
    sorted unique ids (as strings) the codes index."""
    arrays = [np.asarray(a).astype(str) for a in speaker_arrays]
    names, inverse = np.unique(np.concatenate(arrays) if arrays else np.array([], str), return_inverse=True)
    codes, start = [], 0
    for a in arrays:
        codes.append(inverse[start : start + a.size].reshape(a.shape).astype(np.int64))
        start += a.size
    return codes, names


@dataclass
class ListSample:
    """1:N lists on item indices.

    Attributes
    ----------
    probe : int64 array, shape (n_lists,)
        Index of the probe (a voice for V->F, a face for F->V).
    candidates : int64 array, shape (n_lists, n_way)
        Candidate indices; column 0 is the probe's own identity, columns 1..
        are other identities, all different.
    order : int64 array, shape (n_lists, n_way)
        The order in which the candidates are *presented*: ``candidates[i, order[i]]``
        is what a person would see left to right. For N = 2 this is paper
        001's involution sigma (``order[i] = [0, 1]`` or ``[1, 0]``). It only
        matters for the tie policy ``"order"`` (the first presented wins).
    """

    probe: np.ndarray
    candidates: np.ndarray
    order: np.ndarray

    def __len__(self) -> int:
        return len(self.probe)

    def to_frame(self) -> pd.DataFrame:
        cols = {"probe": self.probe}
        for j in range(self.candidates.shape[1]):
            cols["true" if j == 0 else f"other_{j}"] = self.candidates[:, j]
        return pd.DataFrame(cols)


def items_by_code(codes: np.ndarray, n_codes: int):
    """Items grouped by code, without a loop: a compressed-sparse-row index.

    ``codes`` (n_items,) int in ``[0, n_codes)`` -> ``(order, starts, counts)``,
    int64 arrays of shapes (n_items,), (n_codes,), (n_codes,): the items of code
    k are ``order[starts[k] : starts[k] + counts[k]]``, in their original order."""
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=n_codes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return order, starts, counts


def group_per_code(groups, codes: np.ndarray, n_codes: int, what: str) -> np.ndarray:
    """One group per speaker code from one label per item (e.g. the gender of every face).

    ``groups`` and ``codes`` have shape (n_items,); returns (n_codes,) int64: the
    index of the speaker's label among the sorted distinct labels, -1 where no
    item of the speaker has a known label ("", "nan", "None", "unknown", "-1").
    ``what`` names the labels in errors; a speaker with two different labels
    raises ``ValueError``."""
    g = np.asarray(groups).astype(str)
    if g.shape != codes.shape:
        raise ValueError(f"{what}: expected one value per item ({codes.shape[0]}), got shape {g.shape}")
    names, gi = np.unique(g, return_inverse=True)
    missing = np.isin(names, ["", "nan", "None", "none", "unknown", "-1"])
    known = ~missing[gi]
    pairs = np.unique(np.stack([codes[known], gi[known]], axis=1), axis=0)  # distinct (speaker, value)
    clash = np.flatnonzero(np.bincount(pairs[:, 0], minlength=n_codes) > 1)
    if clash.size:
        values = names[pairs[pairs[:, 0] == clash[0], 1]].tolist()
        raise ValueError(f"{what}: one speaker has two different values {values}")
    out = np.full(n_codes, -1, dtype=np.int64)
    out[pairs[:, 0]] = pairs[:, 1]
    return out


def sample_lists(
    probe_codes: np.ndarray,
    candidate_codes: np.ndarray,
    n_way: int,
    n_lists: int | None = None,
    *,
    group_of_code: np.ndarray | None = None,
    same_group: bool = False,
    seed: int = 0,
) -> ListSample:
    """Seeded 1:N lists: each probe with its own identity and N-1 other identities.

    Parameters
    ----------
    probe_codes, candidate_codes : int arrays
        Speaker code of every probe item and every candidate item (see
        :func:`speaker_codes`).
    n_way : int >= 2
        Gallery size N of each list.
    n_lists : int, optional
        Number of lists. Default: one per usable probe. Probes are cycled in a
        random order, so each is used about equally often.
    group_of_code : int array, optional
        Group (e.g. gender code) of every speaker code, -1 if unknown.
    same_group : bool
        Draw the other identities from the probe's group only ("G" protocol).
    seed : int

    Returns
    -------
    ListSample
        One candidate item per identity, drawn uniformly among its items.
    """
    probe_codes = np.asarray(probe_codes, dtype=np.int64)
    candidate_codes = np.asarray(candidate_codes, dtype=np.int64)
    if n_way < 2:
        raise ValueError(f"n_way must be at least 2, got {n_way}")
    n_codes = int(max(probe_codes.max(initial=-1), candidate_codes.max(initial=-1))) + 1
    order, starts, counts = items_by_code(candidate_codes, n_codes)
    usable = np.flatnonzero(counts[probe_codes] > 0)
    if usable.size == 0:
        raise ValueError("no probe has a candidate of its own identity; check the speaker ids of both modalities")
    if same_group:
        if group_of_code is None:
            raise ValueError("same_group=True needs group_of_code (e.g. the gender of every speaker)")
        group_of_code = np.asarray(group_of_code, dtype=np.int64)
        unknown = group_of_code[probe_codes[usable]] < 0
        if unknown.any():
            raise ValueError(f"{int(unknown.sum())} probes have no known group (gender); the restricted protocol needs it")
    rng = np.random.default_rng(seed)
    n = usable.size if n_lists is None else int(n_lists)
    if n < 1:
        raise ValueError(f"n_lists must be positive, got {n_lists}")
    probe = np.resize(rng.permutation(usable), n)
    pcode = probe_codes[probe]

    has_items = counts > 0
    cands = np.empty((n, n_way), dtype=np.int64)
    cands[:, 0] = pcode
    # Choose N-1 other identities per list: random keys, ineligible ones get +inf,
    # keep the N-1 smallest. Chunked so that chunk x n_codes stays small.
    chunk = max(1, 2_000_000 // max(n_codes, 1))
    for a in range(0, n, chunk):
        pc = pcode[a : a + chunk]
        keys = rng.random((pc.size, n_codes))
        bad = ~has_items[None, :] | (np.arange(n_codes)[None, :] == pc[:, None])
        if same_group:
            bad |= group_of_code[None, :] != group_of_code[pc][:, None]
        keys[bad] = np.inf
        pick = np.argpartition(keys, n_way - 2, axis=1)[:, : n_way - 1] if n_way - 1 < n_codes else np.argsort(keys, axis=1)[:, : n_way - 1]
        if not np.isfinite(np.take_along_axis(keys, pick, axis=1)).all():
            what = "of the same group " if same_group else ""
            raise ValueError(f"a 1:{n_way} list needs {n_way - 1} other identities {what}with candidates; some probes have fewer")
        cands[a : a + chunk, 1:] = pick
    # One item per chosen identity, uniformly among its items.
    item = starts[cands] + np.floor(rng.random(cands.shape) * counts[cands]).astype(np.int64)
    candidates = order[item]
    shown = np.argsort(rng.random((n, n_way)), axis=1)
    return ListSample(probe.astype(np.int64), candidates.astype(np.int64), shown.astype(np.int64))


def sample_triplets(probe_codes, candidate_codes, n_triplets=None, *, group_of_code=None, same_group=False, seed=0) -> ListSample:
    """1:2 triplets (probe, true candidate, other candidate) as in paper 001 sec. 2.3.1.

    ``order[i]`` is the involution sigma: ``[0, 1]`` (identity) or ``[1, 0]``
    (swap), drawn with probability 1/2 each. See :func:`sample_lists`."""
    return sample_lists(probe_codes, candidate_codes, 2, n_triplets, group_of_code=group_of_code, same_group=same_group, seed=seed)


def sample_verification_pairs(
    probe_codes, candidate_codes, n_pairs: int | None = None, *, group_of_code=None, same_group=False, seed=0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Balanced verification pairs: half of the same identity, half not.

    With ``same_group=True`` every different-identity pair shares the probe's
    group (the "G" verification lists). Returns ``(probe, candidate, label)``,
    int64 arrays of shape (n_pairs,), label 1 for the same identity, in a
    random order."""
    probe_codes = np.asarray(probe_codes, dtype=np.int64)
    n = int(n_pairs) if n_pairs is not None else 2 * probe_codes.size
    if n < 2:
        raise ValueError(f"n_pairs must be at least 2 (one of each label), got {n_pairs}")
    n_pos = n // 2
    lists = sample_lists(probe_codes, candidate_codes, 2, n, group_of_code=group_of_code, same_group=same_group, seed=seed)
    rng = np.random.default_rng([seed, 1])
    is_pos = np.zeros(n, dtype=bool)
    is_pos[rng.permutation(n)[:n_pos]] = True
    cand = np.where(is_pos, lists.candidates[:, 0], lists.candidates[:, 1])
    return lists.probe, cand, is_pos.astype(np.int64)
