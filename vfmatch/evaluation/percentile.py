"""Percentile recall: paper 001's rank of the true face in a gallery, and its CDF.

For a voice v with positives (faces of its own identity) and negatives (faces
of others) in a gallery of G = n + p faces, paper 001 (sec. 2.3.2) defines

    rank(v) = mean over positives f+ of  #{negatives f- scoring above f+} / G

(0 is best; a random scorer averages n / (2G), about 1/2). A Monte Carlo with
parameters M (repetitions), a (voices per speaker), p (positives per voice) and
n~ (negatives per gallery) draws the galleries; ``None`` means "all", which
ranks every voice against the whole gallery (deterministic). The CDF
P(R <= alpha) (eq. 3) read at alpha = k / N' gives the "Recall at N'" table
(paper 001, Table 2): about the chance that the true face is in the top k of
N' faces.

Shapes: :class:`PercentileRecall` holds ``ranks`` of shape (M, n_queries),
one per selected voice and repetition.

Ties, ``ties=`` (:data:`RANK_TIE_RULES`): how a negative that scores *equal*
to a positive counts.

* ``"half"`` (default) counts it 1/2: the expected rank under a random
  tie-break, the rule the 1:2 lists use too. A constant scorer gets exactly
  the chance rank n / (2G).
* ``"strict"`` is the paper's formula read literally: only a strictly higher
  negative counts, so a tie never hurts and a constant scorer gets rank 0,
  a perfect score. Discrete metaproperties tie a lot: this flatters them.
* ``"pessimistic"`` counts it fully.

For scorers with continuous outputs the three agree. Heavy work is
vectorised in torch, chunked, on the GPU when one is present.

Book chapter: ``book/08_evaluation.ipynb``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..config import default_device
from ..data.lists import items_by_code, speaker_codes
from .scorers import as_scorer

__all__ = [
    "RANK_TIE_RULES",
    "PercentileRecall",
    "percentile_recall",
    "recall_at_n_table",
    "PAPER_001_TABLE2_GALLERY_SIZES",
    "PAPER_001_TABLE2_KS",
]

# Rows and columns of paper 001's Table 2 ("Recall at N'").
PAPER_001_TABLE2_GALLERY_SIZES = (100, 1_000, 10_000)
PAPER_001_TABLE2_KS = (5, 10, 50, 100, 250, 500, 1_000, 5_000)

# Tie rule -> what a negative tied with a positive counts; the default first.
RANK_TIE_RULES = {"half": 0.5, "strict": 0.0, "pessimistic": 1.0}


@dataclass
class PercentileRecall:
    """Ranks of paper 001's percentile-recall Monte Carlo.

    Attributes
    ----------
    ranks : float64 array (M, n_queries)
        ``rank(v)`` of every selected voice in every repetition: the mean over its
        positives of (#negatives scoring higher) / (gallery size). 0 is best.
    query_index : int64 array (M, n_queries)
        Which voice each rank belongs to.
    gallery_size, n_positives : int64 arrays (M, n_queries)
        ``n + p_j`` and ``p_j`` of each query's gallery.
    params : dict
        ``M, a, p, n_tilde, ties, seed``.
    galleries : list, optional
        With ``return_galleries=True``: per repetition, per query
        ``(voice, positive faces, negative faces)``.
    """

    ranks: np.ndarray
    query_index: np.ndarray
    gallery_size: np.ndarray
    n_positives: np.ndarray
    params: dict
    galleries: list | None = None

    def cdf(self, alpha) -> np.ndarray:
        """P(R <= alpha): eq. (3) averaged over the M repetitions, for each alpha."""
        a = np.atleast_1d(np.asarray(alpha, dtype=np.float64))
        return (self.ranks.reshape(-1)[None, :] <= a[:, None] + 1e-12).mean(1)

    def cdf_per_repetition(self, alpha) -> np.ndarray:
        """P(r_m <= alpha) of eq. (3), shape (M, len(alpha))."""
        a = np.atleast_1d(np.asarray(alpha, dtype=np.float64))
        return (self.ranks[:, :, None] <= a[None, None, :] + 1e-12).mean(1)

    @property
    def mean_rank(self) -> float:
        return float(self.ranks.mean())

    @property
    def median_rank(self) -> float:
        return float(np.median(self.ranks))

    @property
    def chance_mean_rank(self) -> float:
        """Mean rank of a random scorer: each positive's count of higher negatives is
        uniform on 0..n, so E[rank] = n / (2 (n + p))."""
        n = self.gallery_size - self.n_positives
        return float((n / (2.0 * self.gallery_size)).mean())

    def recall_at(self, k, gallery_size) -> float:
        """Recall at N': P(R <= k / N'), about the chance that a true face is in the
        top k of a gallery of N' (paper 001, Table 2)."""
        return float(self.cdf(k / gallery_size)[0])

    def table(self, gallery_sizes=PAPER_001_TABLE2_GALLERY_SIZES, ks=PAPER_001_TABLE2_KS) -> pd.DataFrame:
        """The "Recall at N'" table: rows N', columns k (NaN where k > N')."""
        return recall_at_n_table(self, gallery_sizes, ks)

    def summary(self) -> dict:
        return {
            "mean_rank": self.mean_rank,
            "median_rank": self.median_rank,
            "recall_at_5pct": float(self.cdf(0.05)[0]),
            "recall_at_10pct": float(self.cdf(0.10)[0]),
            "recall_at_25pct": float(self.cdf(0.25)[0]),
            "mean_gallery_size": float(self.gallery_size.mean()),
            "n_queries": int(self.ranks.shape[1]),
            "repetitions": int(self.ranks.shape[0]),
        }

    def chance(self) -> dict:
        """Chance levels of :meth:`summary` (recall at alpha ~ alpha for a random ranking)."""
        return {"mean_rank": self.chance_mean_rank, "median_rank": self.chance_mean_rank,
                "recall_at_5pct": 0.05, "recall_at_10pct": 0.10, "recall_at_25pct": 0.25}


def recall_at_n_table(result, gallery_sizes=PAPER_001_TABLE2_GALLERY_SIZES, ks=PAPER_001_TABLE2_KS) -> pd.DataFrame:
    """Paper 001's Table 2 from a :class:`PercentileRecall` (or a ranks array):
    entry (N', k) = P(R <= k / N'); NaN where k > N'."""
    ranks = result.ranks if isinstance(result, PercentileRecall) else np.asarray(result, dtype=np.float64)
    flat = ranks.reshape(-1)
    data = {}
    for k in ks:
        col = []
        for n in gallery_sizes:
            col.append(float((flat <= k / n + 1e-12).mean()) if k <= n else np.nan)
        data[k] = col
    df = pd.DataFrame(data, index=pd.Index(list(gallery_sizes), name="gallery size N'"))
    df.columns.name = "top k"
    return df


def _count_above(S: torch.Tensor, pv: torch.Tensor, tie_weight: float) -> torch.Tensor:
    """For each row i and column j of pv (c, P): #{S[i] > pv[i, j]} + tie_weight * #{S[i] == pv[i, j]}.

    Few positives per row: direct comparison, O(P n) per row (on the CPU in
    numpy, whose boolean counting is several times faster than torch's). Many:
    sort each row once and binary-search, O(n log n)."""
    c, n = S.shape
    P = pv.shape[1]
    if P > 24:
        srt = torch.sort(S, dim=1).values
        pvc = pv.contiguous()
        le = torch.searchsorted(srt, pvc, right=True)
        out = (n - le).to(torch.float64)
        if tie_weight:
            out += tie_weight * (le - torch.searchsorted(srt, pvc, right=False)).to(torch.float64)
        return out
    if S.device.type != "cpu":
        out = torch.empty((c, P), dtype=torch.float64, device=S.device)
        step = max(1, 2**24 // max(P * n, 1))
        for a in range(0, c, step):
            s, p = S[a : a + step, None, :], pv[a : a + step, :, None]
            cnt = (s > p).sum(2, dtype=torch.int64).to(torch.float64)
            if tie_weight:
                cnt += tie_weight * (s == p).sum(2, dtype=torch.int64).to(torch.float64)
            out[a : a + step] = cnt
        return out
    return torch.from_numpy(_count_above_numpy(S.numpy(), pv.numpy(), tie_weight))


def _count_above_numpy(s: np.ndarray, p: np.ndarray, tie_weight: float) -> np.ndarray:
    c, n = s.shape
    P = p.shape[1]
    out = np.empty((c, P), dtype=np.float64)
    step = max(1, 2_000_000 // max(P * n, 1))  # blocks that stay in cache
    for a in range(0, c, step):
        blk, pp = s[a : a + step, None, :], p[a : a + step, :, None]
        out[a : a + step] = np.count_nonzero(blk > pp, axis=2)
        if tie_weight:
            out[a : a + step] += tie_weight * np.count_nonzero(blk == pp, axis=2)
    return out


def percentile_recall(
    scorer,
    voice_speakers,
    face_speakers,
    *,
    M: int = 1,
    a: int | None = None,
    p: int | None = None,
    n_tilde: int | None = None,
    ties: str = "half",
    seed: int = 0,
    chunk_size: int | None = None,
    device=None,
    return_galleries: bool = False,
) -> PercentileRecall:
    """Percentile recall by paper 001's Monte Carlo (sec. 2.3.2).

    For each speaker j, ``a_j = min(a, a~_j)`` of its voices are drawn; for each
    voice, ``p_j = min(p, p~_j)`` of its faces are the positives, and negative
    speakers are drawn without replacement, each adding ``min(n~, p~_j')`` of its
    faces, until the list holds at least ``n~`` faces (or no speaker is left).
    For each positive, its rank is the number of negatives scoring higher (a
    tied negative counts 1/2 by default, see ``ties``) divided by the gallery
    size ``n + p_j``; the voice's rank is the mean over its positives. All of
    this is repeated ``M`` times.

    Parameters
    ----------
    scorer : similarity matrix (n_voices, n_faces), function or :class:`Scorer`
    voice_speakers, face_speakers : arrays of speaker ids, one per voice / face
    M, a, p, n_tilde : the paper's parameters. ``None`` means "all": with
        ``a = p = n_tilde = None`` every voice is ranked against the whole gallery
        (deterministic; one repetition is enough).
    ties : {"half", "strict", "pessimistic"}
        How a negative that ties a positive counts: 1/2 (default, the expected
        rank under a random tie-break), 0 (the paper's formula read strictly,
        which flatters tied scorers), 1. See the module docstring.
    seed : int
    return_galleries : bool
        Keep each query's gallery (for checks on small problems).

    Returns
    -------
    PercentileRecall
    """
    if ties not in RANK_TIE_RULES:
        raise ValueError(f"ties must be one of {list(RANK_TIE_RULES)}, got {ties!r}")
    for name, val in (("M", M), ("a", a), ("p", p), ("n_tilde", n_tilde)):
        if val is not None and int(val) < 1:
            raise ValueError(f"{name} must be a positive integer (or None for 'all'), got {val}")
    (vc, fc), names = speaker_codes(voice_speakers, face_speakers)
    sc = as_scorer(scorer, vc.size, fc.size)
    K, F = names.size, fc.size
    f_order, f_starts, f_counts = items_by_code(fc, K)
    no_face = f_counts[vc] == 0
    if no_face.any():
        raise ValueError(f"{int(no_face.sum())} voices belong to speakers without any face; percentile recall needs at least one")
    if np.count_nonzero(f_counts) < 2:
        raise ValueError("percentile recall needs faces of at least two speakers (positives and negatives)")
    dev = default_device(device)
    tie_w = RANK_TIE_RULES[ties]
    rng = np.random.default_rng(seed)
    Pmax = int(f_counts[vc].max())
    chunk = chunk_size or max(1, min(1024, 2**23 // max(F, 1)))
    full_gallery = n_tilde is None and p is None
    mc_neg = n_tilde is not None

    all_ranks, all_q, all_g, all_p, galleries = [], [], [], [], []
    for _m in range(int(M)):
        if a is None:
            q_all = np.arange(vc.size)
        else:
            keys = rng.random(vc.size)
            o = np.lexsort((keys, vc))
            within = np.arange(vc.size) - np.searchsorted(vc[o], vc[o], side="left")
            q_all = np.sort(o[within < int(a)])
        ranks_m, gsize_m, npos_m, gal_m = [], [], [], []
        for start in range(0, q_all.size, chunk):
            q = q_all[start : start + chunk]
            c = q.size
            code = vc[q]
            S = sc.block(q, None, dev)
            # The query's own faces, padded to Pmax; `sel` marks the p_j drawn as positives.
            j = np.arange(Pmax)
            own_valid = j[None, :] < f_counts[code][:, None]
            # Padding repeats the first own face, so padded values are real positives' values.
            own_idx = f_order[f_starts[code][:, None] + np.where(own_valid, j[None, :], 0)]
            sel = own_valid
            if p is not None and int(p) < Pmax:
                keys = np.where(own_valid, rng.random((c, Pmax)), np.inf)
                rank_in_row = np.argsort(np.argsort(keys, axis=1), axis=1)
                sel = own_valid & (rank_in_row < int(p))
            pv = S.gather(1, torch.as_tensor(own_idx, device=dev))
            if mc_neg:
                neg_idx, neg_valid = _monte_carlo_negatives(rng, code, fc, f_order, f_counts, f_starts, int(n_tilde), dev)
                S_neg = S.gather(1, neg_idx).masked_fill(~neg_valid, -math.inf)
                above = _count_above(S_neg, pv, tie_w)
                n_neg = neg_valid.sum(1).cpu().numpy()
            else:
                # Every face is in the gallery: count all faces above each positive,
                # minus the query's own faces above it (they are not negatives).
                own_vals = pv.masked_fill(~torch.as_tensor(own_valid, device=dev), -math.inf)
                above = _count_above(S, pv, tie_w) - _count_above(own_vals, pv, tie_w)
                n_neg = F - f_counts[code]
            above = above.cpu().numpy()
            n_pos = sel.sum(1)
            G = n_neg + n_pos
            r = np.where(sel, above / G[:, None], 0.0).sum(1) / n_pos
            if return_galleries:
                negs = ([idx[ok] for idx, ok in zip(neg_idx.cpu().numpy(), neg_valid.cpu().numpy())] if mc_neg
                        else [np.flatnonzero(fc != k) for k in code])
                gal_m += [(int(q[i]), own_idx[i][sel[i]], np.sort(negs[i])) for i in range(c)]
            gsize_m.append(G)
            npos_m.append(n_pos)
            ranks_m.append(r)
        all_ranks.append(np.concatenate(ranks_m))
        all_q.append(q_all)
        all_g.append(np.concatenate(gsize_m))
        all_p.append(np.concatenate(npos_m))
        galleries.append(gal_m)
        if full_gallery and a is None:
            # Deterministic: further repetitions would repeat the same ranks.
            all_ranks *= int(M)
            all_q *= int(M)
            all_g *= int(M)
            all_p *= int(M)
            galleries *= int(M)
            break
    return PercentileRecall(
        ranks=np.stack(all_ranks),
        query_index=np.stack(all_q).astype(np.int64),
        gallery_size=np.stack(all_g).astype(np.int64),
        n_positives=np.stack(all_p).astype(np.int64),
        params={"M": int(M), "a": a, "p": p, "n_tilde": n_tilde, "ties": ties, "seed": seed},
        galleries=galleries if return_galleries else None,
    )


def _monte_carlo_negatives(rng, code, fc, f_order, f_counts, f_starts, n_tilde, dev):
    """Negative faces of paper 001 step 2(a)ii for a chunk of queries.

    Other speakers, in a random order, each add min(n~, p~) of their faces (a
    random subset when they have more) until the list holds at least n~ faces.
    Index bookkeeping in numpy; returns ``(face_index, valid)`` as tensors of
    shape (c, n_max): row i's negatives are ``face_index[i, valid[i]]``."""
    c, K = code.size, f_counts.size
    contrib_all = np.minimum(f_counts, n_tilde)
    keys = rng.random((c, K))
    keys[:, f_counts == 0] = np.inf
    keys[np.arange(c), code] = np.inf
    # At most ceil(n~ / smallest contribution) speakers are needed: order only those.
    m = int(min(K, -(-n_tilde // int(contrib_all[contrib_all > 0].min()))))
    part = np.argpartition(keys, m - 1, axis=1)[:, :m] if m < K else np.tile(np.arange(K), (c, 1))
    order = np.take_along_axis(part, np.argsort(np.take_along_axis(keys, part, 1), axis=1), 1)
    contrib = contrib_all[order] * np.isfinite(np.take_along_axis(keys, order, 1))
    before = np.cumsum(contrib, 1) - contrib
    n_take = np.where(before < n_tilde, contrib, 0)  # a prefix of the random order
    n_neg = n_take.sum(1)
    # Flatten: one entry per negative face, (row, slot, position within the speaker).
    per_pair = n_take.ravel()
    row = np.repeat(np.repeat(np.arange(c), m), per_pair)
    slot = np.repeat(np.tile(np.arange(m), c), per_pair)
    pair_start = np.cumsum(per_pair) - per_pair
    within = np.arange(per_pair.sum()) - np.repeat(pair_start, per_pair)
    spk = order[row, slot]
    big = f_counts[spk] > n_tilde
    if big.any():
        # A speaker with more than n~ faces contributes a random n~ of them: rank
        # random keys within each (query, speaker) pair and keep the first n~.
        pairs = np.flatnonzero((n_take > 0).ravel() & (f_counts[order].ravel() > n_tilde))
        sizes = f_counts[order.ravel()[pairs]]
        pid = np.repeat(np.arange(pairs.size), sizes)
        j = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        o = np.lexsort((rng.random(pid.size), pid))
        rank = np.arange(pid.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        chosen = j[o][rank < n_tilde]  # n~ random positions per big pair, pairs in order
        within[big] = chosen
    face = f_order[f_starts[spk] + within]
    pos = np.arange(row.size) - np.repeat(np.cumsum(n_neg) - n_neg, n_neg)
    width = int(n_neg.max())
    face_pad = np.zeros((c, width), dtype=np.int64)
    face_pad[row, pos] = face
    valid = np.arange(width)[None, :] < n_neg[:, None]
    return torch.as_tensor(face_pad, device=dev), torch.as_tensor(valid, device=dev)
