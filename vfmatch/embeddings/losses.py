"""The losses of the learned voice-face embeddings, as plain functions of tensors.

Shapes: ``v`` voice embeddings and ``f`` / ``x`` face embeddings are (B, D)
tensors; ``y`` identity codes (B,) int64; weights (B,) float. Each function
returns a scalar tensor (``reduction="mean"``) or one value per row
(``reduction="none"``), so the tests can compare them with a hand computation.

==========================================  ====================================
loss                                        source
==========================================  ====================================
:func:`triplet_loss`                        seed 001 sec. 3, the standard triplet
                                            loss (FaceNet) it starts from
:func:`face_distance_weights`,              seed 001 eq. (4): each summand damped
:func:`weighted_triplet_loss`               by f(dist(f_i^F, f_j^F))
:func:`implicit_alignment_loss`             seed 003 eq. (1)-(3); weighted,
                                            eq. (8)-(9)
:func:`explicit_alignment_loss`             seed 003 eq. (4); weighted, eq. (10)
:func:`info_nce_loss`                       symmetric InfoNCE (CLIP-style)
==========================================  ====================================

The embeddings of seed 001's triplet losses are L2-normalised, so the squared
distance is ``||v - f||^2 = 2 - 2 cos(v, f)`` in [0, 4]. Seed 003's losses take
the raw (unnormalised) embeddings, as its equations do: the classifier sees
``x_i`` and ``v_i``, and eq. (4) multiplies a raw anchor by a normalised
counterpart (``v_i . x_hat_j``).

Book chapter: ``book/10_learned_embeddings.ipynb``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "squared_distance",
    "cosine_distance",
    "sigmoid_damping",
    "face_distance_weights",
    "triplet_loss",
    "weighted_triplet_loss",
    "implicit_alignment_loss",
    "explicit_alignment_loss",
    "info_nce_loss",
    "batch_weights",
]


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    if reduction == "none":
        return values
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def squared_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise ``||a_k - b_k||^2``, shape (B,)."""
    return ((a - b) ** 2).sum(dim=1)


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise ``1 - cos(a_k, b_k)``, shape (B,), in [0, 2]."""
    return 1.0 - F.cosine_similarity(a, b, dim=1, eps=1e-8)


def sigmoid_damping(dist: torch.Tensor, center: float, scale: float) -> torch.Tensor:
    """Seed 001's non-decreasing f, a logistic: ``f(d) = sigmoid((d - center) / scale)``.

    ``center`` is the distance that gets weight 1/2, ``scale`` (> 0) how fast
    the weight rises from 0 to 1 around it."""
    if not scale > 0:
        raise ValueError(f"damping scale must be > 0, got {scale}")
    return torch.sigmoid((dist - center) / scale)


def face_distance_weights(ref_pos: torch.Tensor, ref_neg: torch.Tensor, *, center: float, scale: float,
                          damping: str = "sigmoid") -> torch.Tensor:
    """The damping factors of seed 001 eq. (4): ``f(dist(f_i^F, f_j^F))``, shape (B,).

    ``ref_pos`` / ``ref_neg`` are the positive's and the negative's faces under a
    frozen face encoder F; dist is the cosine distance. ``damping="sigmoid"``
    is :func:`sigmoid_damping`; ``"none"`` gives 1 everywhere (plain triplet)."""
    if damping == "none":
        return torch.ones(ref_pos.shape[0], dtype=ref_pos.dtype, device=ref_pos.device)
    if damping != "sigmoid":
        raise ValueError(f"damping must be 'sigmoid' or 'none', got {damping!r}")
    return sigmoid_damping(cosine_distance(ref_pos, ref_neg), center, scale)


def triplet_loss(v: torch.Tensor, f_pos: torch.Tensor, f_neg: torch.Tensor, *, margin: float = 0.2,
                 weights: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    """The triplet loss with a voice anchor: ``(||v - f_pos||^2 - ||v - f_neg||^2 + margin)^+``.

    With ``weights`` each summand is multiplied by its weight (seed 001 eq. (4)
    when the weights are :func:`face_distance_weights`). Seed 001 sums over the
    K triplets of a batch; ``reduction="mean"`` divides by K so the learning
    rate does not depend on the batch size."""
    hinge = torch.clamp(squared_distance(v, f_pos) - squared_distance(v, f_neg) + margin, min=0.0)
    if weights is not None:
        hinge = hinge * weights
    return _reduce(hinge, reduction)


def weighted_triplet_loss(v, f_pos, f_neg, ref_pos, ref_neg, *, margin: float = 0.2, center: float = 1.0,
                          scale: float = 0.1, damping: str = "sigmoid", reduction: str = "mean") -> torch.Tensor:
    """Seed 001 eq. (4), the face-distance-weighted triplet loss::

        L_F = sum_k ( ||v_ik - f_ik||^2 - ||v_ik - f_jk||^2 + beta )^+ * f(dist(f_ik^F, f_jk^F))

    ``v, f_pos, f_neg``: the anchor voices, their faces and other identities'
    faces in the shared space; ``ref_pos, ref_neg``: the same two faces under
    the frozen face encoder F; ``margin`` is beta. A negative that *looks like*
    the positive (small F distance) costs less when confused with it, one that
    looks different costs more."""
    w = face_distance_weights(ref_pos, ref_neg, center=center, scale=scale, damping=damping)
    return triplet_loss(v, f_pos, f_neg, margin=margin, weights=w, reduction=reduction)


def batch_weights(identity_weights: torch.Tensor | None, y: torch.Tensor) -> torch.Tensor | None:
    """Seed 003's normalised sample weights ``s_hat = s_{y_i} / sum_j s_{y_j}`` over the batch, shape (B,).

    None stays None (unweighted: every sample 1/B, the plain mean). A batch whose
    identities all have weight 0 gets weights 0 (it teaches nothing)."""
    if identity_weights is None:
        return None
    s = identity_weights[y].to(torch.float32)
    total = s.sum()
    return s / total if total > 0 else torch.zeros_like(s)


def _weighted_mean(values: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    return values.mean() if w is None else (values * w).sum()


def implicit_alignment_loss(logits_face: torch.Tensor, logits_voice: torch.Tensor, y: torch.Tensor, *,
                            sample_weights: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    """Seed 003 eq. (1)-(3): the softmax identity loss of one classifier shared by both modalities.

    ``logits_face = x W``, ``logits_voice = v W`` (B, M) with the *same* W
    (D, M). ``L_implicit = L_face + L_voice``, each the mean cross-entropy over
    the batch; with ``sample_weights`` (:func:`batch_weights`, summing to 1)
    each is the weighted sum of eq. (8)-(9). ``reduction="none"`` returns each
    sample's ``CE_face + CE_voice`` (the hardness of Algorithm 1, eq. (6))."""
    ce = F.cross_entropy(logits_face, y, reduction="none") + F.cross_entropy(logits_voice, y, reduction="none")
    if reduction == "none":
        return ce
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    return _weighted_mean(ce, sample_weights)


def _npair_terms(anchor: torch.Tensor, other: torch.Tensor, y: torch.Tensor, m: float) -> torch.Tensor:
    """``log(m + sum_{y_j != y_i} exp(a_i . o_hat_j) / exp(a_i . o_hat_i))`` for every i, shape (B,)."""
    sim = anchor @ F.normalize(other, dim=1).T  # (B, B): a_i . o_hat_j
    pos = sim.diagonal()
    neg = sim.masked_fill(y[:, None] == y[None, :], float("-inf"))
    t = torch.logsumexp(neg, dim=1) - pos  # log of the ratio; -inf if the batch has no negative
    return torch.logaddexp(torch.full_like(t, math.log(m)), t)


def explicit_alignment_loss(v: torch.Tensor, x: torch.Tensor, y: torch.Tensor, *, m: float = 3.4,
                            sample_weights: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    """Seed 003 eq. (4), the N-pair explicit alignment in the mini-batch (weighted: eq. (10))::

        L = 1/N sum_i log(m + sum_{y_j != y_i} exp(v_i . x_hat_j) / exp(v_i . x_hat_i))
          + 1/N sum_i log(m + sum_{y_j != y_i} exp(x_i . v_hat_j) / exp(x_i . v_hat_i))

    Row i of ``v`` and ``x`` is one identity's voice and face; ``m`` (> 0) sets
    the inter-class margin (the paper uses 3.4). ``reduction="none"`` returns
    the two terms summed per sample."""
    if not m > 0:
        raise ValueError(f"m must be > 0, got {m}")
    terms = _npair_terms(v, x, y, m) + _npair_terms(x, v, y, m)
    if reduction == "none":
        return terms
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    return _weighted_mean(terms, sample_weights)


def info_nce_loss(v: torch.Tensor, f: torch.Tensor, *, temperature: float = 0.1, y: torch.Tensor | None = None,
                  reduction: str = "mean") -> torch.Tensor:
    """Symmetric InfoNCE (CLIP): cross-entropy of voice->face and face->voice
    softmaxes over the batch, ``logits = cos(v_i, f_j) / temperature``::

        L = 1/2 [ -1/B sum_i log softmax_j(l_ij)[i]  -  1/B sum_j log softmax_i(l_ij)[j] ]

    Row i of ``v`` and ``f`` is a matching pair. With ``y``, other rows of the
    same identity are left out of the denominators (not counted as negatives)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    logits = F.normalize(v, dim=1) @ F.normalize(f, dim=1).T / temperature
    if y is not None:
        same = (y[:, None] == y[None, :]) & ~torch.eye(len(y), dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(same, float("-inf"))
    target = torch.arange(len(v), device=logits.device)
    per = 0.5 * (F.cross_entropy(logits, target, reduction="none") + F.cross_entropy(logits.T, target, reduction="none"))
    return _reduce(per, reduction)
