"""Bootstrap confidence intervals that resample *identities*, not items.

Items of one person are not independent: a matcher that fails on one
person's voice fails on all of that person's clips. So each bootstrap sample
draws identities with replacement and keeps all of their items (as often as
drawn); the interval is the percentile interval of the statistic over the
samples. :func:`bootstrap_ci` does this for a mean over items (1:2 credits,
percentile ranks), :func:`bootstrap_auc_ci` for the AUC of pairs (grouped by
the probe's identity), all samples at once on one sort of the scores.

Shapes: ``values``/``labels``/``scores`` and ``groups`` are (n_items,); an
interval is ``(low, high)`` floats. Book chapter: ``book/08_evaluation.ipynb``.
"""

from __future__ import annotations

import numpy as np

from .metrics import weighted_roc_auc

__all__ = ["bootstrap_ci", "bootstrap_auc_ci", "identity_resamples"]


def identity_resamples(groups, n_boot, seed):
    """``(g, k)``: each item's identity code g (n_items,) and how often each identity
    is drawn in each bootstrap sample, k (n_boot, n_identities) float64."""
    _, g = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    g = g.ravel()
    n_ids = int(g.max()) + 1
    rng = np.random.default_rng(seed)
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
    g, k = identity_resamples(groups, n_boot, seed)
    sums = np.bincount(g, weights=v)
    counts = np.bincount(g).astype(np.float64)
    est = (k @ sums) / (k @ counts)
    lo, hi = np.quantile(est, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def bootstrap_auc_ci(labels, scores, groups, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of the AUC, resampling identities (``groups``, one per pair).

    Each sample weights a pair by how often its identity was drawn and computes
    the weighted AUC (ties 1/2, :func:`vfmatch.evaluation.metrics.weighted_roc_auc`),
    many samples per sort of the scores."""
    n = np.shape(labels)[0] if np.ndim(labels) == 1 else 0
    if n == 0 or np.shape(groups) != (n,):
        raise ValueError(f"labels and groups must be non-empty 1-D arrays of equal length (one identity per pair), "
                         f"got shapes {np.shape(labels)} and {np.shape(groups)}")
    g, k = identity_resamples(groups, n_boot, seed)
    est = []
    step = max(1, 2_000_000 // max(n, 1))  # bootstrap samples per block, to bound memory
    for a in range(0, k.shape[0], step):
        auc = weighted_roc_auc(labels, scores, k[a : a + step, g])
        est.append(auc[~np.isnan(auc)])  # NaN: a sample without both classes
    est = np.concatenate(est)
    if est.size == 0:
        raise ValueError("no bootstrap sample has both classes")
    lo, hi = np.quantile(est, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)
