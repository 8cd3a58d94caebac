"""Identification (1:2, 1:N), verification on sampled pairs, and retrieval mAP, for any scorer.

The protocols of the field that ask "which of these is the same person?":

===============================  ==================================  ===============
protocol                          function                            chance level
===============================  ==================================  ===============
1:2 identification (matching)     :func:`identification_accuracy`     1/2
1:N identification, the curve     :func:`one_to_n_accuracy`           1/N
verification on balanced pairs    :func:`verification_metrics`        AUC 0.5, EER 0.5
retrieval: rank the gallery       :func:`retrieval_map`               :func:`~vfmatch.evaluation.metrics.chance_average_precision`
===============================  ==================================  ===============

The lists are drawn by the one list sampler, :mod:`vfmatch.data.lists`: each
1:N list holds the probe's own identity and N-1 others, one random item each,
in a random presentation order (paper 001's involution sigma for N = 2,
sec. 2.3.1 eq. 1-2). Seed 003 (sec. 4.2) names the two 1:2 protocols used
everywhere: **U**, the other identities drawn from everyone, and **G**, drawn
from the probe's gender only (``same_gender=True``), which takes the gender
cue away. ``scorer`` is (n_probes, n_candidates): a voice -> face similarity
for V->F, its transpose (``scorer.T``) for F->V (:mod:`~vfmatch.evaluation.scorers`).

Ties in 1:N lists, ``ties=`` (:data:`LIST_TIE_RULES`):

* ``"half"`` (default) credits 1/k when the true candidate is one of k
  candidates tied at the top: the expected accuracy when the presentation
  order is random;
* ``"order"`` applies that order literally: the first presented of the tied
  candidates wins;
* ``"wrong"`` is eq. (2) of paper 001 read strictly (``dist(true) < dist(other)``):
  a tie is an error.

Book chapter: ``book/08_evaluation.ipynb``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import torch

from ..config import default_device
from ..data.lists import ListSample, group_per_code, sample_lists, sample_verification_pairs, speaker_codes
from ..metaproperties import get_metaproperty
from .metrics import average_precision_rows, binary_accuracy_at_eer, roc_auc
from .scorers import as_scorer

__all__ = [
    "LIST_TIE_RULES",
    "IdentificationResult",
    "list_credit",
    "gender_per_code",
    "identification_accuracy",
    "one_to_n_accuracy",
    "verification_metrics",
    "retrieval_map",
]

# The tie rules of 1:N lists, the honest one first (see the module docstring).
LIST_TIE_RULES = ("half", "order", "wrong")


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


def list_credit(scores: np.ndarray, order: np.ndarray, ties: str) -> np.ndarray:
    """Credit of each 1:N list under a tie rule of :data:`LIST_TIE_RULES`.

    ``scores`` (n, N) with the true candidate in column 0; ``order`` (n, N) the
    presentation order (:class:`vfmatch.data.lists.ListSample`, used by
    ``"order"`` only). Returns (n,) float64: 1 right, 0 wrong, 1/k for a k-way
    tie at the top with ``"half"``."""
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


def gender_per_code(n_codes, codes_and_genders) -> np.ndarray | None:
    """The gender code of each of ``n_codes`` speakers, -1 where unknown, or None without genders.

    ``codes_and_genders``: ``(speaker codes, genders)`` pairs, one per modality,
    each of shape (n_items,); a gender of None is skipped. Genders are encoded by
    the ``gender`` metaproperty (values such as ``"male"``, ``"female"``); the
    voice and face labels of one speaker must agree."""
    parts = [(c, g) for c, g in codes_and_genders if g is not None]
    if not parts:
        return None
    gender = get_metaproperty("gender")
    out = np.full(n_codes, -1, dtype=np.int64)
    for codes, g in parts:
        enc = gender.encode(np.asarray(g, dtype=object))
        per = group_per_code(enc, codes, n_codes, "gender")
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
    groups = gender_per_code(names.size, [(pc, probe_gender), (cc, candidate_gender)]) if same_gender else None
    lists = sample_lists(pc, cc, n_way, n_lists, group_of_code=groups, same_group=same_gender, seed=seed)
    s = sc.pairs(np.repeat(lists.probe, n_way), lists.candidates.reshape(-1)).reshape(-1, n_way)
    credit = list_credit(s, lists.order, ties)
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
        groups = gender_per_code(names.size, [(pc, probe_gender), (cc, candidate_gender)])
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
    groups = gender_per_code(names.size, [(pc, probe_gender), (cc, candidate_gender)]) if same_gender else None
    probe, cand, label = sample_verification_pairs(pc, cc, n_pairs, group_of_code=groups, same_group=same_gender, seed=seed)
    scores = sc.pairs(probe, cand)
    acc = binary_accuracy_at_eer(label, scores)
    return {"auc": roc_auc(label, scores), "eer": acc["eer"], "eer_threshold": acc["threshold"],
            "binary_accuracy_at_eer": acc["accuracy"], "labels": label, "scores": scores, "probe_code": pc[probe]}


# ---------------------------------------------------------------------------
# Retrieval
# ---------------------------------------------------------------------------


def retrieval_map(scorer, query_speakers, gallery_speakers, *, reduction="mean", chunk_size=None, device=None):
    """Retrieval mAP (seed 003): every query ranks the whole gallery; relevant = same identity.

    ``scorer`` is (n_queries, n_gallery) -- pass ``scorer.T`` / the transposed matrix
    for face -> voice. Returns the mean AP (or one AP per query with
    ``reduction="none"``)."""
    (qc, gc), _ = speaker_codes(query_speakers, gallery_speakers)
    sc = as_scorer(scorer, qc.size, gc.size)
    dev = default_device(device)
    chunk = chunk_size or max(1, min(1024, 2**23 // max(gc.size, 1)))
    g = torch.as_tensor(gc, device=dev)
    out = []
    for a in range(0, qc.size, chunk):
        rows = np.arange(a, min(a + chunk, qc.size))
        rel = torch.as_tensor(qc[rows], device=dev)[:, None] == g[None, :]
        if not bool(rel.any(1).all()):
            raise ValueError("some queries have no item of their identity in the gallery; mAP is undefined for them")
        out.append(average_precision_rows(sc.block(rows, None, dev), rel).cpu())
    ap = torch.cat(out).numpy()
    return ap if reduction == "none" else float(ap.mean())
