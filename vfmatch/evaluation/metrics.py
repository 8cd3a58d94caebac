"""Metrics of the field, for any scorer: verification, identification, retrieval.

Everything here takes *scores* (higher = more likely the same person) from a
**scorer**: a similarity matrix of shape ``(n_voices, n_faces)`` (numpy or
torch), a function ``score(voice_idx, face_idx) -> scores`` over index arrays,
or an :class:`EmbeddingScorer` (cosine similarity of embeddings, computed block
by block). Heavy work is vectorised in torch, chunked, and runs on the GPU when
one is present (:func:`vfmatch.config.default_device`).

The metrics (paper 001 sec. 2.3, seed 003 sec. 4.2):

=============================  ===============================================  ==============
metric                          function                                         chance level
=============================  ===============================================  ==============
ROC, AUC                        :func:`roc_curve`, :func:`roc_auc`               0.5
equal error rate (EER)          :func:`equal_error_rate`                         0.5
binary accuracy at the EER      :func:`binary_accuracy_at_eer`                   0.5 (balanced)
average precision, retrieval    :func:`average_precision`,                       :func:`chance_average_precision`
mAP                             :func:`mean_average_precision`, :func:`retrieval_map`
1:2 and 1:N identification      :func:`identification_accuracy`,                 1/N
                                :func:`one_to_n_accuracy`
percentile recall (Monte        :func:`percentile_recall` ->                     mean rank n/(2G);
Carlo, M, a, p, n~), its CDF,   :class:`PercentileRecall` (``cdf``, ``table``)   P(R<=alpha) ~ alpha
Recall at N'
bootstrap CIs over identities   :func:`bootstrap_ci`, :func:`bootstrap_auc_ci`
everything at once              :func:`evaluate_similarity`
fairness per subgroup           :func:`subgroup_report`
=============================  ===============================================  ==============

Ties (discrete metaproperties produce many) are treated as follows:

* ``roc_curve`` / ``roc_auc`` / ``equal_error_rate``: tied scores form one step
  of the ROC, a diagonal segment; a positive tied with a negative counts 1/2 in
  the AUC (exactly scikit-learn's rule). The EER is where the piecewise-linear
  ROC crosses FPR = FNR, so a tie behaves like a random tie-break on average.
* ``binary_accuracy_at_eer``: a score *equal* to the threshold is a "match".
* ``average_precision`` / ``mean_average_precision``: tied items enter the
  ranking together; precision is taken at the end of the tie group
  (scikit-learn's ``average_precision_score``, no interpolation).
* identification (1:2, 1:N), ``ties=``: ``"half"`` (default) credits 1/k when the
  true candidate is one of k candidates tied at the top: the expected accuracy
  when the presentation order (paper 001's involution sigma) is random.
  ``"order"`` applies that order literally: the first presented of the tied
  candidates wins. ``"wrong"`` is eq. (2) of paper 001 read strictly
  (``dist(true) < dist(other)``): a tie is an error.
* ``percentile_recall``, ``ties=``: ``"strict"`` (default) is paper 001's rank:
  only negatives with a *strictly* higher score count against a positive, so a
  tie never hurts (a constant scorer gets rank 0: beware with tied scores).
  ``"half"`` counts tied negatives 1/2, ``"pessimistic"`` counts them fully.

Book chapter: ``book/08_evaluation.ipynb``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch

from ..config import default_device
from .protocols import ListSample, _csr, _group_per_code, sample_lists, sample_verification_pairs, speaker_codes

__all__ = [
    "Scorer",
    "MatrixScorer",
    "FunctionScorer",
    "EmbeddingScorer",
    "as_scorer",
    "roc_curve",
    "roc_auc",
    "equal_error_rate",
    "binary_accuracy_at_eer",
    "average_precision",
    "mean_average_precision",
    "chance_average_precision",
    "retrieval_map",
    "PercentileRecall",
    "percentile_recall",
    "recall_at_n_table",
    "IdentificationResult",
    "identification_accuracy",
    "one_to_n_accuracy",
    "verification_metrics",
    "bootstrap_ci",
    "bootstrap_auc_ci",
    "evaluate_similarity",
    "subgroup_report",
    "PAPER_001_TABLE2_GALLERY_SIZES",
    "PAPER_001_TABLE2_KS",
]

# Rows and columns of paper 001's Table 2 ("Recall at N'").
PAPER_001_TABLE2_GALLERY_SIZES = (100, 1_000, 10_000)
PAPER_001_TABLE2_KS = (5, 10, 50, 100, 250, 500, 1_000, 5_000)


# ---------------------------------------------------------------------------
# Scorers
# ---------------------------------------------------------------------------


def _check_finite(t: torch.Tensor, where: str) -> torch.Tensor:
    # One fast reduction first; the exact element test only if the sum is not finite.
    if t.numel() and not bool(torch.isfinite(t.sum())) and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{where}: scores contain NaN or inf")
    return t


class Scorer:
    """Scores of row items (voices) against column items (faces); higher = more similar.

    Subclasses implement :meth:`block` and :meth:`pairs`; :attr:`T` swaps the
    roles (face -> voice queries)."""

    n_rows: int
    n_cols: int

    def block(self, rows: np.ndarray, cols: np.ndarray | None = None, device: str = "cpu") -> torch.Tensor:
        """Scores of every row against every column, shape (len(rows), len(cols))."""
        raise NotImplementedError

    def pairs(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Scores of the pairs (rows[i], cols[i]), float64, shape (n,)."""
        raise NotImplementedError

    @property
    def T(self) -> "Scorer":
        return _Transposed(self)


class MatrixScorer(Scorer):
    """A precomputed similarity matrix, shape (n_voices, n_faces)."""

    def __init__(self, matrix):
        if isinstance(matrix, torch.Tensor):
            m = matrix
        else:
            a = np.asarray(matrix)
            with warnings.catch_warnings():
                # Read-only arrays (memory maps, pandas values) are fine: scores are only read.
                warnings.simplefilter("ignore", UserWarning)
                m = torch.from_numpy(a)
        if m.ndim != 2:
            raise ValueError(f"similarity must be a 2-D (n_voices, n_faces) matrix, got shape {tuple(m.shape)}")
        if not (m.is_floating_point()):
            m = m.to(torch.float64)
        self.m = m.detach()
        self.n_rows, self.n_cols = m.shape

    def block(self, rows, cols=None, device="cpu"):
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and rows[-1] - rows[0] + 1 == rows.size and (rows.size == 1 or bool(np.all(np.diff(rows) == 1))):
            b = self.m[int(rows[0]) : int(rows[-1]) + 1]  # a contiguous range of rows: a view, no copy
        else:
            b = self.m.index_select(0, torch.as_tensor(rows, device=self.m.device))
        if cols is not None:
            b = b.index_select(1, torch.as_tensor(np.asarray(cols, dtype=np.int64), device=self.m.device))
        return _check_finite(b.to(device), "similarity matrix")

    def pairs(self, rows, cols):
        r = torch.as_tensor(np.asarray(rows, dtype=np.int64), device=self.m.device)
        c = torch.as_tensor(np.asarray(cols, dtype=np.int64), device=self.m.device)
        return _check_finite(self.m[r, c], "similarity matrix").cpu().numpy().astype(np.float64)

    @property
    def T(self):
        return MatrixScorer(self.m.T)


class FunctionScorer(Scorer):
    """A function ``score(voice_idx, face_idx) -> scores`` on int64 index arrays of equal length."""

    def __init__(self, fn: Callable, n_rows: int, n_cols: int):
        self.fn, self.n_rows, self.n_cols = fn, int(n_rows), int(n_cols)

    def pairs(self, rows, cols):
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        out = np.asarray(self.fn(rows, cols), dtype=np.float64).reshape(-1)
        if out.shape != rows.shape:
            raise ValueError(f"scorer returned {out.shape[0]} scores for {rows.shape[0]} pairs")
        if not np.isfinite(out).all():
            raise ValueError("scorer returned NaN or inf")
        return out

    def block(self, rows, cols=None, device="cpu"):
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.arange(self.n_cols) if cols is None else np.asarray(cols, dtype=np.int64)
        s = self.pairs(np.repeat(rows, cols.size), np.tile(cols, rows.size))
        return torch.from_numpy(s.reshape(rows.size, cols.size)).to(device)


class EmbeddingScorer(Scorer):
    """Cosine similarity (or dot product) of voice and face embeddings, block by block,
    so the full (n_voices, n_faces) matrix is never held in memory."""

    def __init__(self, voice_embeddings, face_embeddings, *, normalize: bool = True):
        v = torch.as_tensor(np.asarray(voice_embeddings) if not isinstance(voice_embeddings, torch.Tensor) else voice_embeddings)
        f = torch.as_tensor(np.asarray(face_embeddings) if not isinstance(face_embeddings, torch.Tensor) else face_embeddings)
        if v.ndim != 2 or f.ndim != 2 or v.shape[1] != f.shape[1]:
            raise ValueError(f"embeddings must be (n, d) and (m, d) with the same d, got {tuple(v.shape)} and {tuple(f.shape)}")
        v, f = v.float(), f.float()
        if normalize:
            v = torch.nn.functional.normalize(v, dim=1)
            f = torch.nn.functional.normalize(f, dim=1)
        self.v, self.f = _check_finite(v, "voice embeddings"), _check_finite(f, "face embeddings")
        self.n_rows, self.n_cols = v.shape[0], f.shape[0]

    def block(self, rows, cols=None, device="cpu"):
        v = self.v[torch.as_tensor(np.asarray(rows, dtype=np.int64))].to(device)
        f = self.f if cols is None else self.f[torch.as_tensor(np.asarray(cols, dtype=np.int64))]
        return v @ f.to(device).T

    def pairs(self, rows, cols):
        v = self.v[torch.as_tensor(np.asarray(rows, dtype=np.int64))]
        f = self.f[torch.as_tensor(np.asarray(cols, dtype=np.int64))]
        return (v * f).sum(1).double().numpy()

    @property
    def T(self):
        s = EmbeddingScorer.__new__(EmbeddingScorer)
        s.v, s.f, s.n_rows, s.n_cols = self.f, self.v, self.n_cols, self.n_rows
        return s


class _Transposed(Scorer):
    def __init__(self, base: Scorer):
        self.base, self.n_rows, self.n_cols = base, base.n_cols, base.n_rows

    def block(self, rows, cols=None, device="cpu"):
        rows_b = np.arange(self.base.n_rows) if cols is None else cols
        return self.base.block(rows_b, rows, device).T

    def pairs(self, rows, cols):
        return self.base.pairs(cols, rows)

    @property
    def T(self):
        return self.base


class _Subset(Scorer):
    """Rows and columns restricted to index subsets (local -> global)."""

    def __init__(self, base: Scorer, rows: np.ndarray, cols: np.ndarray):
        self.base, self.rmap, self.cmap = base, np.asarray(rows, np.int64), np.asarray(cols, np.int64)
        self.n_rows, self.n_cols = self.rmap.size, self.cmap.size

    def block(self, rows, cols=None, device="cpu"):
        c = self.cmap if cols is None else self.cmap[np.asarray(cols, np.int64)]
        return self.base.block(self.rmap[np.asarray(rows, np.int64)], c, device)

    def pairs(self, rows, cols):
        return self.base.pairs(self.rmap[np.asarray(rows, np.int64)], self.cmap[np.asarray(cols, np.int64)])


def as_scorer(scorer, n_voices: int | None = None, n_faces: int | None = None) -> Scorer:
    """Wrap a similarity matrix, a function or a :class:`Scorer`, checking its size."""
    if isinstance(scorer, Scorer):
        s = scorer
    elif callable(scorer) and not isinstance(scorer, (np.ndarray, torch.Tensor)):
        if n_voices is None or n_faces is None:
            raise ValueError("a scoring function needs the number of voices and faces (give the speaker arrays)")
        s = FunctionScorer(scorer, n_voices, n_faces)
    else:
        s = MatrixScorer(scorer)
    if n_voices is not None and s.n_rows != n_voices:
        raise ValueError(f"scorer has {s.n_rows} rows but there are {n_voices} voices (voice_speakers)")
    if n_faces is not None and s.n_cols != n_faces:
        raise ValueError(f"scorer has {s.n_cols} columns but there are {n_faces} faces (face_speakers)")
    return s


def _device(device) -> str:
    return default_device(device)


# ---------------------------------------------------------------------------
# Verification: ROC, AUC, EER, average precision
# ---------------------------------------------------------------------------


def _binary_inputs(labels, scores, sample_weight=None):
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64) if not isinstance(scores, torch.Tensor) else scores.detach().cpu().double().numpy()
    if y.ndim != 1 or s.ndim != 1:
        raise ValueError(f"labels and scores must be 1-D, got shapes {y.shape} and {s.shape}")
    if y.shape != s.shape:
        raise ValueError(f"labels ({y.shape[0]}) and scores ({s.shape[0]}) differ in length")
    if y.size == 0:
        raise ValueError("labels and scores are empty")
    if y.dtype != bool:
        if not np.isin(y, (0, 1)).all():
            raise ValueError(f"labels must be 0/1 (1 = same person), found {np.unique(y)[:5].tolist()}")
    y = y.astype(bool)
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or inf")
    w = np.ones_like(s) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if w.shape != s.shape or not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("sample_weight must be finite, non-negative, one per score")
    pos, neg = w[y].sum(), w[~y].sum()
    if pos <= 0 or neg <= 0:
        raise ValueError(
            f"only one class present ({int(y.sum())} same-person and {int((~y).sum())} different-person pairs "
            "with positive weight): ROC, AUC and EER need both"
        )
    return y, s, w


def _roc_points(y, s, w):
    """(fps, tps, thresholds) at every distinct score, descending; cumulative weights."""
    st = torch.from_numpy(np.array(s, dtype=np.float64))
    order = torch.sort(st, descending=True, stable=True).indices
    s_sorted = st[order]
    yw = torch.from_numpy(w * y)[order]
    nw = torch.from_numpy(w * ~y)[order]
    # Last index of each run of equal scores: one ROC point per distinct threshold.
    ends = torch.nonzero(torch.cat([s_sorted[1:] != s_sorted[:-1], torch.tensor([True])])).flatten()
    tps = torch.cumsum(yw, 0)[ends]
    fps = torch.cumsum(nw, 0)[ends]
    return fps.numpy(), tps.numpy(), s_sorted[ends].numpy()


def roc_curve(labels, scores, *, sample_weight=None):
    """ROC at every distinct score: ``(fpr, tpr, thresholds)``, each shape (n_distinct + 1,).

    Same as ``sklearn.metrics.roc_curve(..., drop_intermediate=False)``: the first
    point is (0, 0) with threshold ``inf``; point i says "call a match when
    score >= thresholds[i]". Tied scores form one point (a diagonal step)."""
    y, s, w = _binary_inputs(labels, scores, sample_weight)
    fps, tps, thr = _roc_points(y, s, w)
    fpr = np.concatenate([[0.0], fps / fps[-1]])
    tpr = np.concatenate([[0.0], tps / tps[-1]])
    return fpr, tpr, np.concatenate([[np.inf], thr])


def roc_auc(labels, scores, *, sample_weight=None) -> float:
    """Area under the ROC: P(score of a same-person pair > a different-person pair),
    ties counted 1/2 (= ``sklearn.metrics.roc_auc_score``)."""
    fpr, tpr, _ = roc_curve(labels, scores, sample_weight=sample_weight)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def _eer_point(fpr, tpr):
    """Where the piecewise-linear ROC crosses FPR = FNR: (eer, index of the vertex
    just after the crossing, fraction along the segment)."""
    g = fpr + tpr - 1.0  # non-decreasing along the curve, -1 at (0,0), +1 at (1,1)
    i = int(np.argmax(g >= 0.0))
    if g[i] == 0.0:
        return float(fpr[i]), i, 1.0
    t = -g[i - 1] / (g[i] - g[i - 1])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1])), i, float(t)


def equal_error_rate(labels, scores, *, sample_weight=None, return_threshold: bool = False):
    """Equal error rate: the false-match rate where it equals the false-non-match rate,
    on the linearly interpolated ROC (chance = 0.5, perfect = 0).

    With ``return_threshold=True`` also returns the score threshold of the ROC
    vertex nearest to the crossing (the operating point one can actually use)."""
    fpr, tpr, thr = roc_curve(labels, scores, sample_weight=sample_weight)
    eer, i, t = _eer_point(fpr, tpr)
    if not return_threshold:
        return eer
    j = i if t >= 0.5 else i - 1
    j = max(j, 1)  # vertex 0 has threshold inf (reject everything)
    return eer, float(thr[j])


def binary_accuracy_at_eer(labels, scores, *, sample_weight=None) -> dict:
    """Binary accuracy of "match if score >= t" with t the EER threshold (paper 001 sec. 2.3.1).

    Returns ``{"accuracy", "threshold", "eer"}``. On balanced pairs chance is 0.5
    and the accuracy is about ``1 - eer``."""
    y, s, w = _binary_inputs(labels, scores, sample_weight)
    eer, thr = equal_error_rate(y, s, sample_weight=w, return_threshold=True)
    pred = s >= thr
    return {"accuracy": float(np.sum(w * (pred == y)) / np.sum(w)), "threshold": thr, "eer": eer}


def average_precision(labels, scores, *, sample_weight=None) -> float:
    """Average precision of one ranking: sum over thresholds of (R_n - R_{n-1}) P_n
    (= ``sklearn.metrics.average_precision_score``; tied items enter together).

    All-positive input gives 1.0 (as scikit-learn); no positive raises."""
    y = np.asarray(labels)
    if y.ndim == 1 and y.size and np.isin(y, (0, 1)).all() and y.astype(bool).all():
        # No negatives: every threshold has precision 1 (scikit-learn says 1.0 too).
        _binary_inputs(np.r_[y, 0], np.r_[np.asarray(scores, np.float64), 0.0])  # still validate the scores
        return 1.0
    y, s, w = _binary_inputs(labels, scores, sample_weight)
    fps, tps, _ = _roc_points(y, s, w)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.concatenate([[0.0], recall])) * precision))


def _ap_rows(S: torch.Tensor, rel: torch.Tensor) -> torch.Tensor:
    """Average precision of every row of S (c, n) with relevance rel (c, n); sklearn's rule."""
    vals, idx = torch.sort(S, dim=1, descending=True, stable=True)
    r = rel.gather(1, idx).to(torch.float64)
    cum = r.cumsum(1)
    neg = (-vals).contiguous()
    # Index of the last member of each item's tie group (precision is taken there).
    end = torch.searchsorted(neg, neg, right=True) - 1
    prec = cum.gather(1, end) / (end + 1).to(torch.float64)
    return (r * prec).sum(1) / r.sum(1)


def mean_average_precision(scores, relevant, *, reduction: str = "mean"):
    """Mean over queries (rows) of each row's average precision.

    Parameters
    ----------
    scores : array (n_queries, n_gallery) or (n_gallery,)
    relevant : bool/0-1 array of the same shape (1 = same identity as the query)
    reduction : ``"mean"`` (a float) or ``"none"`` (one AP per query)

    Each row equals ``sklearn.metrics.average_precision_score(relevant[i], scores[i])``.
    A query without any relevant item raises ``ValueError``."""
    s = torch.as_tensor(np.asarray(scores, dtype=np.float64) if not isinstance(scores, torch.Tensor) else scores.double())
    r = torch.as_tensor(np.asarray(relevant) if not isinstance(relevant, torch.Tensor) else relevant)
    if s.shape != r.shape or s.ndim not in (1, 2) or s.numel() == 0:
        raise ValueError(f"scores and relevant must have one equal shape, 1-D or 2-D and non-empty; got {tuple(s.shape)} and {tuple(r.shape)}")
    if not bool(torch.isin(r.to(torch.int64), torch.tensor([0, 1])).all()):
        raise ValueError("relevant must be 0/1 or bool")
    _check_finite(s, "mean_average_precision")
    s2, r2 = (s[None], r[None]) if s.ndim == 1 else (s, r)
    r2 = r2.to(torch.bool)
    empty = (~r2.any(1)).sum().item()
    if empty:
        raise ValueError(f"{empty} of {r2.shape[0]} queries have no relevant item; average precision is undefined for them")
    ap = _ap_rows(s2, r2).numpy()
    if reduction == "none":
        return ap if s.ndim == 2 else ap[:1]
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    return float(ap.mean())


def chance_average_precision(n_relevant, n_gallery) -> np.ndarray:
    """Expected average precision of a random ranking of ``n_gallery`` items of which
    ``n_relevant`` are relevant: (H_n + (R-1)/(n-1) (n - H_n)) / n, H_n the n-th
    harmonic number (exact; about R/n for large galleries)."""
    R = np.asarray(n_relevant, dtype=np.float64)
    n = np.asarray(n_gallery, dtype=np.float64)
    H = np.vectorize(lambda k: float(np.sum(1.0 / np.arange(1, int(k) + 1))))(n)
    frac = np.where(n > 1, (R - 1) / np.maximum(n - 1, 1), 0.0)
    return (H + frac * (n - H)) / n


def retrieval_map(scorer, query_speakers, gallery_speakers, *, reduction="mean", chunk_size=None, device=None):
    """Retrieval mAP (seed 003): every query ranks the whole gallery; relevant = same identity.

    ``scorer`` is (n_queries, n_gallery) -- pass ``scorer.T`` / the transposed matrix
    for face -> voice. Returns the mean AP (or one AP per query with
    ``reduction="none"``)."""
    (qc, gc), _ = speaker_codes(query_speakers, gallery_speakers)
    sc = as_scorer(scorer, qc.size, gc.size)
    dev = _device(device)
    chunk = chunk_size or max(1, min(1024, 2**23 // max(gc.size, 1)))
    g = torch.as_tensor(gc, device=dev)
    out = []
    for a in range(0, qc.size, chunk):
        rows = np.arange(a, min(a + chunk, qc.size))
        rel = torch.as_tensor(qc[rows], device=dev)[:, None] == g[None, :]
        if not bool(rel.any(1).all()):
            raise ValueError("some queries have no item of their identity in the gallery; mAP is undefined for them")
        out.append(_ap_rows(sc.block(rows, None, dev), rel).cpu())
    ap = torch.cat(out).numpy()
    return ap if reduction == "none" else float(ap.mean())


# ---------------------------------------------------------------------------
# Percentile recall (paper 001 sec. 2.3.2)
# ---------------------------------------------------------------------------


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


_TIE_WEIGHT = {"strict": 0.0, "half": 0.5, "pessimistic": 1.0}


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
    ties: str = "strict",
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
    For each positive, its rank is the number of negatives scoring strictly
    higher divided by the gallery size ``n + p_j``; the voice's rank is the mean
    over its positives. All of this is repeated ``M`` times.

    Parameters
    ----------
    scorer : similarity matrix (n_voices, n_faces), function or :class:`Scorer`
    voice_speakers, face_speakers : arrays of speaker ids, one per voice / face
    M, a, p, n_tilde : the paper's parameters. ``None`` means "all": with
        ``a = p = n_tilde = None`` every voice is ranked against the whole gallery
        (deterministic; one repetition is enough).
    ties : {"strict", "half", "pessimistic"}
        How a negative that ties a positive counts: 0 (the paper's formula), 1/2, 1.
    seed : int
    return_galleries : bool
        Keep each query's gallery (for checks on small problems).

    Returns
    -------
    PercentileRecall
    """
    if ties not in _TIE_WEIGHT:
        raise ValueError(f"ties must be one of {list(_TIE_WEIGHT)}, got {ties!r}")
    for name, val in (("M", M), ("a", a), ("p", p), ("n_tilde", n_tilde)):
        if val is not None and int(val) < 1:
            raise ValueError(f"{name} must be a positive integer (or None for 'all'), got {val}")
    (vc, fc), names = speaker_codes(voice_speakers, face_speakers)
    sc = as_scorer(scorer, vc.size, fc.size)
    K, F = names.size, fc.size
    f_order, f_starts, f_counts = _csr(fc, K)
    no_face = f_counts[vc] == 0
    if no_face.any():
        raise ValueError(f"{int(no_face.sum())} voices belong to speakers without any face; percentile recall needs at least one")
    if np.count_nonzero(f_counts) < 2:
        raise ValueError("percentile recall needs faces of at least two speakers (positives and negatives)")
    dev = _device(device)
    tie_w = _TIE_WEIGHT[ties]
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


# ---------------------------------------------------------------------------
# Identification: 1:2 and 1:N
# ---------------------------------------------------------------------------


@dataclass
class IdentificationResult:
    """Accuracy of 1:N lists.

    ``correct`` holds each list's credit (0, 1, or 1/k for a k-way tie with
    ``ties="half"``); ``probe_code`` the probe's speaker code (for bootstraps)."""

    accuracy: float
    chance: float
    n_way: int
    ties: str
    correct: np.ndarray
    probe_code: np.ndarray
    lists: ListSample = field(repr=False)


def _list_credit(scores: np.ndarray, order: np.ndarray, ties: str) -> np.ndarray:
    """Credit of each 1:N list, scores (n, N) with the true candidate in column 0."""
    if ties == "half":
        top = scores.max(1, keepdims=True)
        at_top = scores == top
        return at_top[:, 0] / at_top.sum(1)
    if ties == "wrong":
        return (scores[:, 0] > scores[:, 1:].max(1)).astype(np.float64)
    if ties == "order":
        shown = np.take_along_axis(scores, order, axis=1)
        first_best = shown.argmax(1)  # argmax returns the first of tied maxima
        return (np.take_along_axis(order, first_best[:, None], axis=1)[:, 0] == 0).astype(np.float64)
    raise ValueError(f"ties must be 'half', 'order' or 'wrong', got {ties!r}")


def _gender_per_code(n_codes, codes_and_genders) -> np.ndarray | None:
    parts = [(c, g) for c, g in codes_and_genders if g is not None]
    if not parts:
        return None
    from ..metaproperties import get_metaproperty

    gender = get_metaproperty("gender")
    out = np.full(n_codes, -1, dtype=np.int64)
    for codes, g in parts:
        enc = gender.encode(np.asarray(g, dtype=object))
        per = _group_per_code(enc, codes, n_codes, "gender")
        clash = (out >= 0) & (per >= 0) & (out != per)
        if clash.any():
            raise ValueError("gender: voice and face labels disagree for some speakers")
        out = np.where(out >= 0, out, per)
    return out


def identification_accuracy(
    scorer,
    probe_speakers,
    candidate_speakers,
    *,
    n_way: int = 2,
    n_lists: int | None = None,
    probe_gender=None,
    candidate_gender=None,
    same_gender: bool = False,
    ties: str = "half",
    seed: int = 0,
) -> IdentificationResult:
    """1:N identification accuracy (1:2 for ``n_way=2``, paper 001 eq. 1-2 and seed 003).

    ``scorer`` is (n_probes, n_candidates): a voice->face similarity for V->F,
    its transpose for F->V. Each list holds the probe's own identity and
    ``n_way - 1`` other identities (of the probe's gender with
    ``same_gender=True``, the "G" protocol), one random item each, shown in a
    random order (the involution sigma for N = 2). ``ties``: see the module
    docstring. Chance is ``1 / n_way``."""
    (pc, cc), names = speaker_codes(probe_speakers, candidate_speakers)
    sc = as_scorer(scorer, pc.size, cc.size)
    groups = _gender_per_code(names.size, [(pc, probe_gender), (cc, candidate_gender)]) if same_gender else None
    lists = sample_lists(pc, cc, n_way, n_lists, group_of_code=groups, same_group=same_gender, seed=seed)
    s = sc.pairs(np.repeat(lists.probe, n_way), lists.candidates.reshape(-1)).reshape(-1, n_way)
    credit = _list_credit(s, lists.order, ties)
    return IdentificationResult(float(credit.mean()), 1.0 / n_way, n_way, ties, credit, pc[lists.probe], lists)


def one_to_n_accuracy(scorer, probe_speakers, candidate_speakers, *, n_ways: Iterable[int] = range(2, 11), n_lists=None,
                      probe_gender=None, candidate_gender=None, same_gender=False, ties="half", seed=0) -> dict:
    """The 1:N curve, {N: accuracy}, for N in ``n_ways`` (seed 003 Fig. 3, paper 001 Fig. 5b-c).
    N larger than the number of identities allows (of the smallest gender, with
    ``same_gender=True``) is skipped."""
    (pc, cc), names = speaker_codes(probe_speakers, candidate_speakers)
    cand_ids = np.unique(cc)
    n_max = cand_ids.size
    if same_gender:
        groups = _gender_per_code(names.size, [(pc, probe_gender), (cc, candidate_gender)])
        n_max = min(int(np.sum(groups[cand_ids] == g)) for g in np.unique(groups[np.unique(pc)]))
    out = {}
    for n in n_ways:
        if n > n_max:
            continue
        out[int(n)] = identification_accuracy(scorer, probe_speakers, candidate_speakers, n_way=int(n), n_lists=n_lists,
                                              probe_gender=probe_gender, candidate_gender=candidate_gender,
                                              same_gender=same_gender, ties=ties, seed=seed + int(n)).accuracy
    return out


def verification_metrics(scorer, probe_speakers, candidate_speakers, *, n_pairs=None, probe_gender=None,
                         candidate_gender=None, same_gender=False, seed=0) -> dict:
    """AUC, EER, its threshold and the binary accuracy there, on balanced seeded pairs.

    Returns the metrics and the pairs (``labels``, ``scores``, ``probe_code``) for bootstraps."""
    (pc, cc), names = speaker_codes(probe_speakers, candidate_speakers)
    sc = as_scorer(scorer, pc.size, cc.size)
    groups = _gender_per_code(names.size, [(pc, probe_gender), (cc, candidate_gender)]) if same_gender else None
    probe, cand, label = sample_verification_pairs(pc, cc, n_pairs, group_of_code=groups, same_group=same_gender, seed=seed)
    scores = sc.pairs(probe, cand)
    acc = binary_accuracy_at_eer(label, scores)
    return {"auc": roc_auc(label, scores), "eer": acc["eer"], "eer_threshold": acc["threshold"],
            "binary_accuracy_at_eer": acc["accuracy"], "labels": label, "scores": scores, "probe_code": pc[probe]}


# ---------------------------------------------------------------------------
# Bootstrap confidence intervals over identities
# ---------------------------------------------------------------------------


def _identity_resamples(groups, n_boot, seed):
    _, g = np.unique(np.asarray(groups), return_inverse=True)
    n_ids = int(g.max()) + 1
    rng = np.random.default_rng(seed)
    # How often each identity is drawn in each bootstrap sample.
    k = rng.multinomial(n_ids, np.full(n_ids, 1.0 / n_ids), size=int(n_boot)).astype(np.float64)
    return g, k


def bootstrap_ci(values, groups, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of a mean over items, resampling *identities*.

    ``values[i]`` is item i's score (a 1:2 credit, a percentile rank); ``groups[i]``
    its identity. Each bootstrap sample draws identities with replacement and
    averages all items of the drawn identities (as often as drawn), so items
    of one person, which are not independent, move together."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0 or np.asarray(groups).shape != v.shape:
        raise ValueError("values and groups must be non-empty 1-D arrays of equal length")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    g, k = _identity_resamples(groups, n_boot, seed)
    sums = np.bincount(g, weights=v)
    counts = np.bincount(g).astype(np.float64)
    est = (k @ sums) / (k @ counts)
    lo, hi = np.quantile(est, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def _weighted_auc_parts(y: np.ndarray, s: np.ndarray, weights: np.ndarray):
    """Numerator and denominator of the weighted AUC (ties 1/2) for many weight
    vectors at once: ``weights`` (B, n) -> two tensors (B,). One sort serves all."""
    order = np.argsort(-s, kind="stable")
    ss, ys = s[order], y[order]
    tie_id = torch.as_tensor(np.concatenate([[0], np.cumsum(ss[1:] != ss[:-1])]))
    n_t = int(tie_id[-1]) + 1
    w = torch.as_tensor(np.asarray(weights, dtype=np.float64)[:, order])
    pos = torch.zeros((w.shape[0], n_t), dtype=torch.float64).index_add_(1, tie_id, w * torch.as_tensor(ys, dtype=torch.float64))
    neg = torch.zeros((w.shape[0], n_t), dtype=torch.float64).index_add_(1, tie_id, w * torch.as_tensor(~ys, dtype=torch.float64))
    # Scores descend, so the negatives strictly below tie group t are those after it.
    neg_below = neg.sum(1, keepdim=True) - torch.cumsum(neg, 1)
    return (pos * (neg_below + 0.5 * neg)).sum(1), pos.sum(1) * neg.sum(1)


def bootstrap_auc_ci(labels, scores, groups, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of the AUC, resampling identities (``groups``, one per pair).

    Each sample weights a pair by how often its identity was drawn and computes
    the weighted AUC (ties 1/2), all samples at once on one sort of the scores."""
    y, s, _ = _binary_inputs(labels, scores)
    g, k = _identity_resamples(groups, n_boot, seed)
    est = []
    step = max(1, 2_000_000 // max(y.size, 1))  # bootstrap samples per block, to bound memory
    for a in range(0, k.shape[0], step):
        num, den = _weighted_auc_parts(y, s, k[a : a + step, g])
        ok = den > 0
        est.append((num[ok] / den[ok]).numpy())
    est = np.concatenate(est)
    if est.size == 0:
        raise ValueError("no bootstrap sample has both classes")
    lo, hi = np.quantile(est, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


# ---------------------------------------------------------------------------
# Everything at once
# ---------------------------------------------------------------------------


def evaluate_similarity(
    similarity,
    voice_speakers,
    face_speakers,
    *,
    voice_gender=None,
    face_gender=None,
    n_triplets: int = 4000,
    n_pairs: int = 4000,
    n_lists: int = 2000,
    n_ways: Iterable[int] = range(2, 11),
    ties: str = "half",
    rank_ties: str = "strict",
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
    device=None,
) -> dict:
    """All protocols of the field on one scorer, with chance levels and bootstrap CIs.

    Parameters
    ----------
    similarity : (n_voices, n_faces) matrix, function ``score(voice_idx, face_idx)``, or :class:`Scorer`
        Higher = more similar.
    voice_speakers, face_speakers : speaker id of every voice / face
    voice_gender, face_gender : optional gender of every voice / face (either is
        enough); enables the gender-restricted ("G") protocols.
    n_triplets, n_pairs, n_lists : sizes of the seeded 1:2, verification and 1:N lists
    ties : identification tie rule; ``rank_ties``: percentile-recall tie rule
    n_boot, level : bootstrap over identities (``n_boot=0``: no intervals)

    Returns
    -------
    dict (JSON-serialisable): ``identification_1to2_vf``, ``identification_1to2_fv``
    (and ``..._gender_restricted`` with genders), ``auc``, ``eer``,
    ``eer_threshold``, ``binary_accuracy_at_eer``, ``auc_fv`` (and
    ``auc_gender_restricted``), ``map_vf``, ``map_fv``, ``percentile_recall``
    (summary of the full-gallery ranks), ``one_to_n`` {N: accuracy}, ``chance``
    (the same keys), ``ci`` ({key: [low, high]}), ``n`` (counts) and the settings.
    """
    vs, fs = np.asarray(voice_speakers).astype(str), np.asarray(face_speakers).astype(str)
    sc = as_scorer(similarity, vs.size, fs.size)
    has_gender = voice_gender is not None or face_gender is not None
    if has_gender:
        (vc, fc), names = speaker_codes(vs, fs)
        _gender_per_code(names.size, [(vc, voice_gender), (fc, face_gender)])  # validate early
    vf = dict(probe_gender=voice_gender, candidate_gender=face_gender)
    fv = dict(probe_gender=face_gender, candidate_gender=voice_gender)
    out: dict = {}
    chance: dict = {}
    ci: dict = {}
    boot = dict(n_boot=n_boot, level=level, seed=seed)

    def ident(key, scorer, probes, cands, kw, same_gender, s):
        r = identification_accuracy(scorer, probes, cands, n_lists=n_triplets, same_gender=same_gender, ties=ties, seed=s, **kw)
        out[key], chance[key] = r.accuracy, r.chance
        if n_boot:
            ci[key] = list(bootstrap_ci(r.correct, r.probe_code, **boot))

    ident("identification_1to2_vf", sc, vs, fs, vf, False, seed)
    ident("identification_1to2_fv", sc.T, fs, vs, fv, False, seed + 1)
    if has_gender:
        ident("identification_1to2_vf_gender_restricted", sc, vs, fs, vf, True, seed + 2)
        ident("identification_1to2_fv_gender_restricted", sc.T, fs, vs, fv, True, seed + 3)

    ver = verification_metrics(sc, vs, fs, n_pairs=n_pairs, seed=seed + 4, **vf)
    for key in ("auc", "eer", "eer_threshold", "binary_accuracy_at_eer"):
        out[key] = ver[key]
    chance.update({"auc": 0.5, "eer": 0.5, "binary_accuracy_at_eer": 0.5})
    if n_boot:
        ci["auc"] = list(bootstrap_auc_ci(ver["labels"], ver["scores"], ver["probe_code"], **boot))
    out["auc_fv"] = verification_metrics(sc.T, fs, vs, n_pairs=n_pairs, seed=seed + 5, **fv)["auc"]
    chance["auc_fv"] = 0.5
    if has_gender:
        g = verification_metrics(sc, vs, fs, n_pairs=n_pairs, same_gender=True, seed=seed + 6, **vf)
        out["auc_gender_restricted"], out["eer_gender_restricted"] = g["auc"], g["eer"]
        chance.update({"auc_gender_restricted": 0.5, "eer_gender_restricted": 0.5})

    (vc, fc), _ = speaker_codes(vs, fs)
    ap_vf = retrieval_map(sc, vs, fs, reduction="none", device=device)
    ap_fv = retrieval_map(sc.T, fs, vs, reduction="none", device=device)
    out["map_vf"], out["map_fv"] = float(ap_vf.mean()), float(ap_fv.mean())
    chance["map_vf"] = float(chance_average_precision(np.bincount(fc, minlength=vc.max() + 1)[vc], fs.size).mean())
    chance["map_fv"] = float(chance_average_precision(np.bincount(vc, minlength=fc.max() + 1)[fc], vs.size).mean())

    pr = percentile_recall(sc, vs, fs, ties=rank_ties, seed=seed, device=device)
    out["percentile_recall"], chance["percentile_recall"] = pr.summary(), pr.chance()
    if n_boot:
        ci["percentile_mean_rank"] = list(bootstrap_ci(pr.ranks[0], vc[pr.query_index[0]], **boot))

    out["one_to_n"] = one_to_n_accuracy(sc, vs, fs, n_ways=n_ways, n_lists=n_lists, ties=ties, seed=seed + 10, **vf)
    chance["one_to_n"] = {n: 1.0 / n for n in out["one_to_n"]}
    out["chance"], out["ci"] = chance, ci
    out["n"] = {"voices": int(vs.size), "faces": int(fs.size), "identities": int(len(set(vs) | set(fs))),
                "triplets": int(n_triplets), "pairs": int(n_pairs), "lists_per_n": int(n_lists)}
    out["settings"] = {"ties": ties, "rank_ties": rank_ties, "n_boot": int(n_boot), "level": level, "seed": int(seed)}
    return _jsonable(out)


def _jsonable(x):
    if isinstance(x, dict):
        return {(int(k) if isinstance(k, (np.integer,)) else k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    return x


def subgroup_report(
    similarity,
    voice_speakers,
    face_speakers,
    identities: pd.DataFrame,
    *,
    by: Sequence[str] = ("gender", "ethnicity", "skin_tone"),
    homogeneous: bool = False,
    n_triplets: int = 1000,
    n_boot: int = 200,
    level: float = 0.95,
    min_identities: int = 2,
    ties: str = "half",
    seed: int = 0,
) -> pd.DataFrame:
    """Metrics per subgroup of probe identities (gender x ethnicity x skin tone by default).

    ``homogeneous=False``: voices of the subgroup are matched against everyone's
    faces (how well is this group served?). ``homogeneous=True``: voices *and*
    faces come from the subgroup only, as in paper 001's homogeneous populations
    (harder: the metaproperties in ``by`` no longer separate anyone).

    Returns one row per subgroup with ``n_identities``, ``n_voices``, the 1:2
    V->F accuracy with its bootstrap interval, the AUC, the full-gallery mean
    percentile rank with its interval and P(R <= 0.1), and chance levels.
    Subgroups with fewer than ``min_identities`` people get NaN metrics."""
    missing = [c for c in list(by) + ["speaker_id"] if c not in identities]
    if missing:
        raise KeyError(f"identities table has no column(s) {missing}")
    vs, fs = np.asarray(voice_speakers).astype(str), np.asarray(face_speakers).astype(str)
    sc = as_scorer(similarity, vs.size, fs.size)
    ids = identities.assign(speaker_id=identities["speaker_id"].astype(str))
    rows = []
    for key, grp in ids.groupby(list(by), dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        members = set(grp["speaker_id"])
        v_idx = np.flatnonzero(np.isin(vs, list(members)))
        f_idx = np.flatnonzero(np.isin(fs, list(members))) if homogeneous else np.arange(fs.size)
        row = dict(zip(by, key), n_identities=len(members), n_voices=int(v_idx.size))
        metrics = dict.fromkeys(["identification_1to2", "identification_1to2_low", "identification_1to2_high", "auc",
                                 "mean_rank", "mean_rank_low", "mean_rank_high", "recall_at_10pct", "mean_rank_chance"], np.nan)
        n_with_faces = len(members & set(fs[f_idx])) if homogeneous else len(set(fs))
        if len(members) >= min_identities and v_idx.size and n_with_faces >= 2:
            sub = _Subset(sc, v_idx, f_idx)
            sv, sf = vs[v_idx], fs[f_idx]
            keep = np.isin(sv, sf)
            if keep.any() and not keep.all():
                sub, sv = _Subset(sc, v_idx[keep], f_idx), sv[keep]
            r = identification_accuracy(sub, sv, sf, n_lists=n_triplets, ties=ties, seed=seed)
            metrics["identification_1to2"] = r.accuracy
            if n_boot:
                metrics["identification_1to2_low"], metrics["identification_1to2_high"] = bootstrap_ci(
                    r.correct, r.probe_code, n_boot=n_boot, level=level, seed=seed)
            metrics["auc"] = verification_metrics(sub, sv, sf, n_pairs=n_triplets, seed=seed + 1)["auc"]
            pr = percentile_recall(sub, sv, sf, seed=seed)
            metrics["mean_rank"], metrics["mean_rank_chance"] = pr.mean_rank, pr.chance_mean_rank
            metrics["recall_at_10pct"] = float(pr.cdf(0.1)[0])
            if n_boot:
                (codes,), _n = speaker_codes(sv)
                metrics["mean_rank_low"], metrics["mean_rank_high"] = bootstrap_ci(
                    pr.ranks[0], codes[pr.query_index[0]], n_boot=n_boot, level=level, seed=seed)
        row.update(metrics)
        row["identification_1to2_chance"] = 0.5
        rows.append(row)
    return pd.DataFrame(rows)
