"""The decision threshold on the level of match, chosen on labelled pairs.

:func:`choose_threshold` takes the operating point of
:func:`vfmatch.evaluation.metrics.equal_error_rate` -- the one ROC / EER code
of vfmatch: the ROC vertex nearest to where the interpolated ROC crosses
FMR = FNMR -- or, with ``rule="fmr"``, the vertex with the largest true-match
rate whose false-match rate is at most ``target_fmr``. So the EER the matcher
reports (``MetapropertyMatcher.calibration_["eer"]``) is the EER the
evaluation reports on the same pairs.

*Why a midpoint.* A vertex is a score: "match when level >= that score".
Every threshold between it and the next lower score makes the same decisions
on the calibration pairs, and we take the midpoint, because a threshold
exactly on a score is fragile on new pairs. With ground-truth tables every
matching pair has the same level, which is then the vertex; computed again on
the test pairs through other arithmetic (pairwise instead of paired distances)
some of them land a rounding error below it, and the oracle matcher's FNMR
was 1.0. ``equal_error_rate`` itself returns the vertex, which is right for a
metric (it describes the pairs it was given); a threshold meant for new pairs
needs the margin.

Book chapter: ``book/05_distances_and_weights.ipynb``.
"""

from __future__ import annotations

import numpy as np

from ..evaluation.metrics import equal_error_rate, roc_curve

__all__ = ["THRESHOLD_RULES", "choose_threshold"]

THRESHOLD_RULES = ("eer", "fmr")


def choose_threshold(level, y, rule: str = "eer", target_fmr: float = 0.01) -> dict:
    """A threshold on ``level`` for labelled pairs, and what it gives on them.

    Parameters
    ----------
    level : array, shape (n,)
        Scores of the pairs (higher = more likely the same person).
    y : array, shape (n,)
        1 = same person, 0 = different people (both present).
    rule : {"eer", "fmr"}
    target_fmr : float
        The largest false-match rate allowed by ``rule="fmr"``.

    Returns
    -------
    dict: ``threshold`` (midpoint below the chosen vertex; module docstring),
    ``eer`` (interpolated, :func:`~vfmatch.evaluation.metrics.equal_error_rate`),
    ``false_match_rate`` and ``false_non_match_rate`` of ``level >= threshold``.
    """
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"threshold rule must be one of {THRESHOLD_RULES}, got {rule!r}")
    level = np.asarray(level, dtype=np.float64)
    y = np.asarray(y).astype(bool)
    # thr[i] = "match if level >= thr[i]", one vertex per distinct level; thr[0] = inf.
    fpr, tpr, thr = roc_curve(y, level)
    eer, eer_threshold = equal_error_rate(y, level, return_threshold=True)
    if rule == "eer":
        i = int(np.argmin(np.abs(thr - eer_threshold)))  # the vertex equal_error_rate chose
    else:
        ok = np.flatnonzero(fpr <= float(target_fmr))
        i = int(ok[np.argmax(tpr[ok])])
    thr = np.where(np.isinf(thr), np.max(level) + 1e-9, thr)  # vertex 0: reject every pair
    # Every threshold in (thr[i + 1], thr[i]] makes the same decisions on these pairs.
    threshold = float((thr[i] + thr[i + 1]) / 2 if i + 1 < len(thr) else thr[i])
    decided = level >= threshold
    return {
        "threshold": threshold,
        "eer": float(eer),
        "false_match_rate": float(np.mean(decided[~y])),
        "false_non_match_rate": float(np.mean(~decided[y])),
    }
