"""Rebuild a speaker's face by fusing the faces that best match their voice.

Patent US 12,217,549, claim 6: score a voice against many facial images,
select those with the highest level of match -- above a threshold, the top N,
or the top P percent -- and fuse them. Here fusion is the classic "average
face": every selected image is aligned to the same five-landmark template
(:class:`vfmatch.data.preprocess.AlignFaces`), then the aligned images are
averaged, optionally weighted by their level of match.

The result shows what the selected faces have in common (skin tone, face
width, hair, age cues), which is what the metaproperties can tell about a
voice; it is not a portrait of the speaker. Book chapter:
``book/07_matching_and_retrieval.ipynb``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.preprocess import AlignFaces

__all__ = ["select_best_matches", "fuse_faces", "reconstruct_face", "FusedFace"]


@dataclass
class FusedFace:
    """The outcome of :func:`reconstruct_face`.

    image : uint8 array (size, size, 3); selected : indices of the fused faces,
    best first; weights : their weights in the average (sum to 1)."""

    image: np.ndarray
    selected: np.ndarray
    weights: np.ndarray


def select_best_matches(
    level_of_match: np.ndarray, *, top_n: int | None = None, top_percent: float | None = None, threshold: float | None = None
) -> np.ndarray:
    """Indices of the faces to fuse, best first.

    Exactly one rule applies, as the patent lists them: ``threshold`` (level of
    match strictly above it), ``top_n`` faces, or the ``top_percent`` (0-100)
    best faces (at least one). Ties keep the order of the input (stable sort)."""
    scores = np.asarray(level_of_match, dtype=np.float64)
    if scores.ndim != 1 or scores.size == 0:
        raise ValueError(f"level_of_match must be a non-empty 1-D array, got shape {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("level_of_match contains NaN or inf")
    rules = [r is not None for r in (top_n, top_percent, threshold)]
    if sum(rules) != 1:
        raise ValueError("give exactly one of top_n, top_percent or threshold")
    order = np.argsort(-scores, kind="stable")
    if top_n is not None:
        if not 1 <= int(top_n) <= scores.size:
            raise ValueError(f"top_n must be between 1 and {scores.size}, got {top_n}")
        return order[: int(top_n)]
    if top_percent is not None:
        if not 0 < float(top_percent) <= 100:
            raise ValueError(f"top_percent must be in (0, 100], got {top_percent}")
        return order[: max(1, int(round(scores.size * float(top_percent) / 100.0)))]
    chosen = order[scores[order] > float(threshold)]
    if chosen.size == 0:
        raise ValueError(f"no face has a level of match above the threshold {threshold}")
    return chosen


def fuse_faces(images: np.ndarray, landmarks: np.ndarray, weights: np.ndarray | None = None, *, size: int = 112) -> np.ndarray:
    """Align faces to the canonical template and take their (weighted) mean.

    Parameters
    ----------
    images : uint8 array (n, H, W, 3)
    landmarks : array (n, 5, 2), pixel coordinates in each image
    weights : array (n,), non-negative, optional (uniform by default)

    Returns
    -------
    uint8 array (size, size, 3). Pixels outside a source image count as
    missing, not as black: each output pixel averages only the faces that cover it.
    """
    imgs = np.asarray(images)
    lms = np.asarray(landmarks, dtype=np.float32)
    if imgs.ndim != 4 or imgs.shape[-1] != 3 or lms.shape != (imgs.shape[0], 5, 2):
        raise ValueError(f"expected images (n, H, W, 3) and landmarks (n, 5, 2), got {imgs.shape} and {lms.shape}")
    w = np.ones(len(imgs)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(imgs),) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be non-negative, one per image, and not all zero")
    x = torch.from_numpy(np.array(imgs, dtype=np.float32)).permute(0, 3, 1, 2) / 255.0
    # A fourth channel of ones marks where each aligned image has data.
    x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
    aligned = AlignFaces(size)(x, torch.as_tensor(lms))
    wt = torch.as_tensor(w / w.sum(), dtype=torch.float32).view(-1, 1, 1, 1)
    coverage = (aligned[:, 3:] * wt).sum(0)
    mean = (aligned[:, :3] * aligned[:, 3:] * wt).sum(0) / coverage.clamp_min(1e-6)
    return (mean.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def reconstruct_face(
    level_of_match: np.ndarray,
    images: np.ndarray,
    landmarks: np.ndarray,
    *,
    top_n: int | None = None,
    top_percent: float | None = None,
    threshold: float | None = None,
    weighted: bool = False,
    size: int = 112,
) -> FusedFace:
    """The patent's face reconstruction: select the best-matching faces and fuse them.

    ``level_of_match`` has one score per face (higher = better match), e.g. a
    row of ``MetapropertyMatcher.similarity_matrix``. With ``weighted=True``
    each selected face counts in proportion to its level of match above the
    lowest selected one (plus a little, so none gets zero weight)."""
    scores = np.asarray(level_of_match, dtype=np.float64)
    if len(images) != scores.size:
        raise ValueError(f"{scores.size} scores for {len(images)} images")
    chosen = select_best_matches(scores, top_n=top_n, top_percent=top_percent, threshold=threshold)
    if weighted:
        s = scores[chosen]
        w = s - s.min() + 1e-3 * max(1e-9, np.ptp(s) or 1.0)
    else:
        w = np.ones(chosen.size)
    w = w / w.sum()
    image = fuse_faces(np.asarray(images)[chosen], np.asarray(landmarks)[chosen], w, size=size)
    return FusedFace(image=image, selected=chosen, weights=w)
