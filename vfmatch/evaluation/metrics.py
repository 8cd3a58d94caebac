"""Verification and ranking metrics of the field, as pure functions of labels and scores.

This is the **only** ROC / AUC / EER / average-precision code in vfmatch:
whatever needs an EER (the matcher's threshold, the job's report, the
evaluation protocols) calls it, so a calibration EER and a reported EER are
one and the same number. It
takes plain arrays (numpy or torch) and imports nothing else from vfmatch,
so any stage may use it.

Inputs: ``labels`` (n,) 0/1 or bool (1 = same person), ``scores`` (n,) float,
higher = more likely the same person, optional ``sample_weight`` (n,) >= 0.

==================================  ===============================================  =====================
metric                               function                                         chance level
==================================  ===============================================  =====================
ROC, AUC                             :func:`roc_curve`, :func:`roc_auc`               AUC 0.5
AUC under many weightings at once    :func:`weighted_roc_auc` (the bootstrap's)       0.5
equal error rate (EER)               :func:`equal_error_rate`                         0.5
binary accuracy at the EER           :func:`binary_accuracy_at_eer`                   0.5 (balanced pairs)
average precision of one ranking     :func:`average_precision`                        :func:`chance_average_precision`
mAP over queries (rows)              :func:`mean_average_precision`,                  :func:`chance_average_precision`
                                     :func:`average_precision_rows` (torch)
==================================  ===============================================  =====================

These are the verification metrics of paper 001 (sec. 2.3.1: binary accuracy
at the EER) and seed 003 (sec. 4.2: AUC, retrieval mAP). Identification (1:2,
1:N), percentile recall and the protocols that draw the pairs live beside this
module in :mod:`vfmatch.evaluation` (``identification``, ``percentile``,
``summary``).

Ties (discrete metaproperties produce many):

* ``roc_curve`` / ``roc_auc`` / ``equal_error_rate``: tied scores form one step
  of the ROC, a diagonal segment; a positive tied with a negative counts 1/2 in
  the AUC (exactly scikit-learn's rule). The EER is where the piecewise-linear
  ROC crosses FPR = FNR, so a tie behaves like a random tie-break on average.
* ``binary_accuracy_at_eer``: a score *equal* to the threshold is a "match".
* ``average_precision`` / ``mean_average_precision``: tied items enter the
  ranking together; precision is taken at the end of the tie group
  (scikit-learn's ``average_precision_score``, no interpolation).

Book chapter: ``book/08_evaluation.ipynb``.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "roc_curve",
    "roc_auc",
    "weighted_roc_auc",
    "equal_error_rate",
    "binary_accuracy_at_eer",
    "average_precision",
    "average_precision_rows",
    "mean_average_precision",
    "chance_average_precision",
    "check_finite_scores",
]


def check_finite_scores(t: torch.Tensor, where: str) -> torch.Tensor:
    """``t`` unchanged if every score is finite, else ``ValueError`` naming ``where``."""
    # One fast reduction first; the exact element test only if the sum is not finite.
    if t.numel() and not bool(torch.isfinite(t.sum())) and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{where}: scores contain NaN or inf")
    return t


def _binary_inputs(labels, scores, sample_weight=None):
    """Checked ``(labels, scores, weights)``: bool, float64, float64 arrays of shape (n,),
    with both classes present; a clear ``ValueError`` otherwise."""
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


def weighted_roc_auc(labels, scores, weights) -> np.ndarray:
    """The AUC (ties 1/2) of one set of scores under many weightings at once.

    ``labels``, ``scores``: shape (n,); ``weights``: (B, n), one non-negative
    weight per pair and weighting (a bootstrap sample weights a pair by how
    often its identity was drawn). Returns (B,) float64; NaN where a weighting
    leaves a class without weight. One sort of the scores serves all B.
    Row b equals ``roc_auc(labels, scores, sample_weight=weights[b])``."""
    y, s, _ = _binary_inputs(labels, scores)
    wts = np.asarray(weights, dtype=np.float64)
    if wts.ndim != 2 or wts.shape[1] != y.size:
        raise ValueError(f"weights must have shape (B, {y.size}), one weight per pair and weighting; got {wts.shape}")
    if not np.isfinite(wts).all() or (wts < 0).any():
        raise ValueError("weights must be finite and non-negative")
    order = np.argsort(-s, kind="stable")
    ss, ys = s[order], y[order]
    tie_id = torch.as_tensor(np.concatenate([[0], np.cumsum(ss[1:] != ss[:-1])]))
    n_t = int(tie_id[-1]) + 1
    w = torch.as_tensor(wts[:, order])
    pos = torch.zeros((w.shape[0], n_t), dtype=torch.float64).index_add_(1, tie_id, w * torch.as_tensor(ys, dtype=torch.float64))
    neg = torch.zeros((w.shape[0], n_t), dtype=torch.float64).index_add_(1, tie_id, w * torch.as_tensor(~ys, dtype=torch.float64))
    # Scores descend, so the negatives strictly below tie group t are those after it.
    neg_below = neg.sum(1, keepdim=True) - torch.cumsum(neg, 1)
    num, den = (pos * (neg_below + 0.5 * neg)).sum(1), pos.sum(1) * neg.sum(1)
    return torch.where(den > 0, num / den, torch.full_like(num, float("nan"))).numpy()


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


def average_precision_rows(S: torch.Tensor, rel: torch.Tensor) -> torch.Tensor:
    """Average precision of every row of a score tensor ``S`` (c, n) with relevance ``rel``
    (c, n) bool, on ``S``'s device: (c,) float64, scikit-learn's rule. Each row needs
    a relevant item (else NaN); :func:`mean_average_precision` checks its inputs."""
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
    check_finite_scores(s, "mean_average_precision")
    s2, r2 = (s[None], r[None]) if s.ndim == 1 else (s, r)
    r2 = r2.to(torch.bool)
    empty = (~r2.any(1)).sum().item()
    if empty:
        raise ValueError(f"{empty} of {r2.shape[0]} queries have no relevant item; average precision is undefined for them")
    ap = average_precision_rows(s2, r2).numpy()
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
