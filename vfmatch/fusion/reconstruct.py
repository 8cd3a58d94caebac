"""Rebuild a speaker's face by fusing the faces that best match their voice.

Patent US 12,217,549, claims 6 and 12: score a voice against many facial
images, select those with the highest level of match -- above a threshold,
the top N, or the top P percent -- and fuse them (:func:`select_best_matches`,
:func:`reconstruct_face`). Two ways to fuse are offered, so that a student
can see the difference:

``method="align"`` -- the simple average face
    Every selected image is aligned to the same five-landmark template by a
    similarity transform (rotation, uniform scale, shift:
    :class:`vfmatch.data.preprocess.AlignFaces`) and the aligned images are
    averaged. Eyes line up, but a long nose or a wide mouth in one face and a
    short or narrow one in another do not: the average is blurred around the
    features.

``method="morph"`` -- face morphing, as the face-averaging literature does it
    After the similarity alignment, the landmark positions themselves are
    averaged (the *mean shape*, weighted like the pixels), and every face is
    warped piecewise-affinely onto that mean shape: a Delaunay triangulation
    of the landmarks plus eight points on the image border (corners and edge
    midpoints) cuts the image into triangles, and each triangle of a face is
    mapped by its own affine transform onto the matching triangle of the mean
    shape (:func:`warp_to_shape`, with scipy; the same warp as
    :class:`skimage.transform.PiecewiseAffineTransform`). Only then are
    the pixels averaged, so the features of all faces sit on top of each
    other and the result is sharp. The more landmarks, the finer the
    triangles: the simulator gives five; :func:`vfmatch.data.faces.align_photo`
    gives 68 for a real photo (``morph_points``).

Weights: uniform, or in proportion to the level of match (:func:`match_weights`).
Pixels outside a source image count as missing, not as black: each output
pixel averages only the faces that cover it.

The result shows what the selected faces have in common (skin tone, face
width, hair, age cues), which is what the metaproperties can tell about a
voice; it is not a portrait of the speaker (:mod:`vfmatch.fusion.evaluate`
measures how close it comes). Book: chapter 12, "Rebuilding a face from a
voice" (``book/12_rebuilding_faces.ipynb``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import Delaunay

from ..data.preprocess import ARCFACE_SIZE, ARCFACE_TEMPLATE, AlignFaces, similarity_transform, transform_landmarks
from ..utils import batches, limit_threads

__all__ = [
    "FUSION_METHODS",
    "FusedFace",
    "AlignedFaces",
    "select_best_matches",
    "match_weights",
    "fusion_template",
    "align_to_template",
    "mean_shape",
    "border_points",
    "warp_to_shape",
    "fuse_aligned",
    "fuse_faces",
    "reconstruct_face",
]

FUSION_METHODS = ("align", "morph")


@dataclass
class FusedFace:
    """The outcome of :func:`reconstruct_face`.

    image : uint8 array (size, size, 3); selected : indices of the fused faces,
    best first; weights : their weights in the average (sum to 1); landmarks :
    float array (K, 2), where the landmarks of the fused face are, in its
    pixels (the weighted mean shape; its first five rows are the ArcFace
    points, so it can be passed on as the fused face's landmarks); method :
    "align" or "morph"."""

    image: np.ndarray
    selected: np.ndarray
    weights: np.ndarray
    landmarks: np.ndarray | None = None
    method: str = "align"


@dataclass
class AlignedFaces:
    """Faces after the similarity alignment (:func:`align_to_template`).

    images : float32 (n, size, size, C) in [0, 1]; coverage : float32 (n, size,
    size), 1 where the pixel came from inside the source image, 0 outside
    (tapering to 0 over the source's outer 6 %, so that frames do not show);
    landmarks : float64 (n, K, 2), every landmark moved by the same alignment."""

    images: np.ndarray
    coverage: np.ndarray
    landmarks: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def take(self, index) -> "AlignedFaces":
        """The faces at ``index`` (an index array), as a new AlignedFaces."""
        index = np.asarray(index)
        return AlignedFaces(self.images[index], self.coverage[index], self.landmarks[index])


# ---------------------------------------------------------------------- selection
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


def match_weights(scores: np.ndarray) -> np.ndarray:
    """Weights in proportion to the level of match above the lowest selected one.

    ``scores`` (n,) are the selected faces' levels of match; the lowest gets a
    small positive weight (a thousandth of the spread), so none is dropped;
    equal scores give equal weights. Returns (n,) summing to 1."""
    s = np.asarray(scores, dtype=np.float64)
    w = s - s.min() + 1e-3 * (np.ptp(s) or 1.0)
    return w / w.sum()


# ---------------------------------------------------------------------- alignment
def fusion_template(size: int = 112, zoom: float = 1.0) -> np.ndarray:
    """The five-point ArcFace template for a ``size`` x ``size`` output, shape (5, 2).

    ``zoom`` < 1 shrinks it towards the centre, so more hair, jaw and
    background stay in view (0.8 is what the face encoders use)."""
    if not 0 < float(zoom) <= 2:
        raise ValueError(f"zoom must be in (0, 2], got {zoom}")
    return ((ARCFACE_TEMPLATE - ARCFACE_SIZE / 2) * float(zoom) + ARCFACE_SIZE / 2) * (int(size) / ARCFACE_SIZE)


def _check_faces(images, landmarks) -> tuple[np.ndarray, np.ndarray]:
    imgs = np.asarray(images)
    lms = np.asarray(landmarks, dtype=np.float64)
    if imgs.ndim != 4 or lms.ndim != 3 or lms.shape[0] != imgs.shape[0] or lms.shape[1] < 5 or lms.shape[2] != 2:
        raise ValueError(
            f"expected images (n, H, W, C) and landmarks (n, K, 2) with K >= 5 (the five ArcFace points first), "
            f"got {imgs.shape} and {lms.shape}"
        )
    if imgs.shape[0] == 0:
        raise ValueError("no faces to fuse")
    if not np.all(np.isfinite(lms)):
        raise ValueError("landmarks contain NaN or inf")
    return imgs, lms


def _edge_taper(H: int, W: int, fraction: float = 0.06) -> np.ndarray:
    """(H, W) float32 weight: 1 inside, down to 0 linearly over the outer ``fraction`` of the image."""
    ramp = max(2.0, fraction * min(H, W))
    x, y = np.arange(W) + 0.5, np.arange(H) + 0.5
    to_edge = np.minimum.outer(np.minimum(y, H - y), np.minimum(x, W - x))
    return np.clip(to_edge / ramp, 0, 1).astype(np.float32)


def align_to_template(images, landmarks, *, size: int = 112, zoom: float = 1.0) -> AlignedFaces:
    """Similarity-align faces on their first five landmarks (the first step of both methods).

    Parameters
    ----------
    images : uint8 array (n, H, W, C) (or float in [0, 1])
    landmarks : array (n, K, 2), pixel (x, y); rows 0-4 are left eye, right eye,
        nose tip, left and right mouth corner (image left/right), the rest any
        further landmarks, in the same order for every face
    size, zoom : output side in pixels and :func:`fusion_template` zoom

    Returns
    -------
    :class:`AlignedFaces`: images (n, size, size, C), coverage (n, size, size),
    landmarks (n, K, 2) in the output's pixels.
    """
    imgs, lms = _check_faces(images, landmarks)
    tpl = fusion_template(size, zoom)
    x = torch.as_tensor(np.asarray(imgs, dtype=np.float32)).permute(0, 3, 1, 2)
    if imgs.dtype == np.uint8:
        x = x / 255.0
    # An extra channel, aligned with the image, marks where each output pixel has data: 1 inside,
    # falling to 0 over the outer few pixels, so the frames of the sources do not show in the average.
    x = torch.cat([x, torch.as_tensor(_edge_taper(*imgs.shape[1:3])).expand(len(x), 1, -1, -1)], dim=1)
    with limit_threads():
        out = AlignFaces(int(size), template=tpl)(x, torch.as_tensor(lms[:, :5], dtype=torch.float32))
    out = out.permute(0, 2, 3, 1).numpy()
    moved = np.stack([transform_landmarks(lm, similarity_transform(lm[:5], tpl)) for lm in lms])
    return AlignedFaces(np.ascontiguousarray(out[..., :-1]), np.ascontiguousarray(out[..., -1]), moved)


def mean_shape(landmarks: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted mean landmark positions of aligned faces: (n, K, 2) -> (K, 2)."""
    lms = np.asarray(landmarks, dtype=np.float64)
    w = _weights(weights, len(lms))
    return np.tensordot(w, lms, axes=1)


def border_points(size: int) -> np.ndarray:
    """The four corners and four edge midpoints of a ``size`` x ``size`` image, shape (8, 2).

    They sit half a pixel outside the pixel centres, so the triangulation
    covers every pixel, and they do not move: the image frame stays put
    while the inside is warped."""
    lo, mid, hi = -0.5, (size - 1) / 2, size - 0.5
    return np.array([[lo, lo], [mid, lo], [hi, lo], [hi, mid], [hi, hi], [mid, hi], [lo, hi], [lo, mid]])


def warp_to_shape(images: np.ndarray, landmarks: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Warp each aligned image piecewise-affinely so its landmarks land on ``shape``.

    Parameters
    ----------
    images : float array (n, size, size, C), already aligned (:func:`align_to_template`)
    landmarks : array (n, K, 2), their landmarks in the same pixels
    shape : array (K, 2), the target landmark positions (e.g. :func:`mean_shape`)

    Returns
    -------
    float32 array (n, size, size, C). The border points map onto themselves,
    so every output pixel reads from inside the frame (the frame's edge pixels
    are repeated for the half pixel beyond it); a coverage channel among the
    ``C`` tells where the source image itself had data.

    How: the target shape plus :func:`border_points` is cut into triangles by
    a Delaunay triangulation (:class:`scipy.spatial.Delaunay`, computed once
    for all faces). For each output pixel we need the point of the source face
    that lands there; inside a triangle that map is the affine one taking the
    triangle's corners to the face's corresponding landmarks, which is the
    pixel's barycentric coordinates in the target triangle applied to the
    face's corners (linear interpolation over the triangle; every face at
    once, since they share the triangulation). So this is
    :class:`skimage.transform.PiecewiseAffineTransform` (the tests check that
    they agree), many times faster. The source is then read there
    with bilinear interpolation (:func:`torch.nn.functional.grid_sample`, as
    :class:`vfmatch.data.preprocess.AlignFaces` does).
    Landmarks outside the image are clipped onto its border first, so no
    triangle folds over the frame.
    """
    imgs = np.asarray(images, dtype=np.float32)
    lms = np.asarray(landmarks, dtype=np.float64)
    target = np.asarray(shape, dtype=np.float64)
    n, H, W, C = imgs.shape
    if H != W or lms.shape[0] != n or lms.shape[1:] != target.shape or target.shape[-1] != 2:
        raise ValueError(f"expected square images (n, S, S, C), landmarks (n, K, 2) and a shape (K, 2), got {imgs.shape}, {lms.shape}, {target.shape}")
    border = border_points(H)
    dst = np.vstack([np.clip(target, 0, H - 1), border])
    if len(np.unique(dst.round(6), axis=0)) < len(dst):
        raise ValueError("the target shape has repeated landmarks; the warp needs distinct points")
    src = np.concatenate([np.clip(lms, 0, H - 1), np.broadcast_to(border, (n, *border.shape))], axis=1)  # (n, K + 8, 2)
    rows, cols = np.mgrid[:H, :W]
    grid = np.column_stack([cols.ravel(), rows.ravel()]).astype(np.float64)  # output pixels as (x, y)
    # Output pixel -> source point, for all faces at once: find each pixel's triangle and its
    # barycentric coordinates there (scipy's Delaunay.transform recipe), then mix the source
    # landmarks at the triangle's corners with those weights.
    tri = Delaunay(dst)
    simplex = tri.find_simplex(grid)
    if np.any(simplex < 0):  # cannot happen while the border points enclose every pixel centre
        raise RuntimeError("warp_to_shape: some pixels fall outside the triangulation")
    with limit_threads():  # the transforms are tiny LAPACK solves: threads only spin (0.5 s on a busy CPU)
        T = tri.transform[simplex]  # (pixels, 3, 2): inverse affine of each pixel's triangle and its offset
    bary = np.einsum("pij,pj->pi", T[:, :2], grid - T[:, 2])
    bary = np.column_stack([bary, 1.0 - bary.sum(1)])  # (pixels, 3)
    corners = tri.simplices[simplex]  # (pixels, 3): the triangle's corner points
    out = np.empty_like(imgs)
    for sl in batches(n, 64):  # bounded memory for a large gallery
        xy = np.einsum("pc,npcd->npd", bary, src[sl][:, corners])  # (faces, pixels, 2): where to read each face
        # Read there with bilinear interpolation; grid_sample wants [-1, 1] (align_corners=False) coordinates.
        grid_n = torch.as_tensor((2 * xy + 1) / H - 1, dtype=torch.float32).view(-1, H, W, 2)
        x = torch.as_tensor(imgs[sl]).permute(0, 3, 1, 2)
        with limit_threads():
            y = torch.nn.functional.grid_sample(x, grid_n, mode="bilinear", padding_mode="border", align_corners=False)
        out[sl] = y.permute(0, 2, 3, 1).numpy()
    return out


# ---------------------------------------------------------------------- fusion
def _weights(weights, n: int) -> np.ndarray:
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be {n} non-negative finite numbers, not all zero")
    return w / w.sum()


def _check_method(method: str) -> str:
    if method not in FUSION_METHODS:
        raise ValueError(f"method must be one of {FUSION_METHODS}, got {method!r}")
    return method


def fuse_aligned(aligned: AlignedFaces, weights: np.ndarray | None = None, *, method: str = "align") -> tuple[np.ndarray, np.ndarray]:
    """Fuse faces that :func:`align_to_template` has aligned.

    Returns the fused image as float32 (size, size, C) in [0, 1] and the mean
    shape (K, 2) (where the fused face's landmarks are). Useful when the same
    faces are fused many times with different selections (the evaluation
    aligns a gallery once)."""
    _check_method(method)
    w = _weights(weights, len(aligned))
    shape = mean_shape(aligned.landmarks, w)
    x = np.concatenate([aligned.images, aligned.coverage[..., None]], axis=-1)
    if method == "morph":
        x = warp_to_shape(x, aligned.landmarks, shape)
    cov = np.tensordot(w, x[..., -1], axes=1)
    mean = np.tensordot(w, x[..., :-1] * x[..., -1:], axes=1) / np.maximum(cov, 1e-6)[..., None]
    return np.clip(mean, 0.0, 1.0).astype(np.float32), shape


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


def fuse_faces(
    images: np.ndarray, landmarks: np.ndarray, weights: np.ndarray | None = None, *, size: int = 112, method: str = "align",
    zoom: float = 1.0,
) -> np.ndarray:
    """Align faces to the canonical template and take their (weighted) mean.

    Parameters
    ----------
    images : uint8 array (n, H, W, 3)
    landmarks : array (n, K, 2) with K >= 5, pixel coordinates in each image
        (the five ArcFace points first; ``"morph"`` uses all K)
    weights : array (n,), non-negative, optional (uniform by default)
    size : output side in pixels
    method : ``"align"`` (similarity-aligned average) or ``"morph"`` (warped
        onto the mean shape first; see the module docstring)
    zoom : :func:`fusion_template` zoom; < 1 keeps more around the face

    Returns
    -------
    uint8 array (size, size, 3).
    """
    _check_method(method)
    image, _ = fuse_aligned(align_to_template(images, landmarks, size=size, zoom=zoom), weights, method=method)
    return _to_uint8(image)


def reconstruct_face(
    level_of_match: np.ndarray,
    images: np.ndarray,
    landmarks: np.ndarray,
    *,
    top_n: int | None = None,
    top_percent: float | None = None,
    threshold: float | None = None,
    weighted: bool = False,
    method: str = "align",
    size: int = 112,
    zoom: float = 1.0,
) -> FusedFace:
    """The patent's face reconstruction: select the best-matching faces and fuse them.

    ``level_of_match`` has one score per face (higher = better match), e.g. a
    row of ``MetapropertyMatcher.similarity_matrix``. With ``weighted=True``
    each selected face counts in proportion to its level of match above the
    lowest selected one (:func:`match_weights`). ``method``, ``size`` and
    ``zoom`` are those of :func:`fuse_faces`."""
    _check_method(method)
    scores = np.asarray(level_of_match, dtype=np.float64)
    if len(images) != scores.size:
        raise ValueError(f"{scores.size} scores for {len(images)} images")
    chosen = select_best_matches(scores, top_n=top_n, top_percent=top_percent, threshold=threshold)
    w = match_weights(scores[chosen]) if weighted else np.full(chosen.size, 1.0 / chosen.size)
    aligned = align_to_template(np.asarray(images)[chosen], np.asarray(landmarks)[chosen], size=size, zoom=zoom)
    image, shape = fuse_aligned(aligned, w, method=method)
    return FusedFace(image=_to_uint8(image), selected=chosen, weights=w, landmarks=shape, method=method)
