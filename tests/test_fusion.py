"""Face fusion (patent claims 6 and 12): selection rules, the aligned average and morphing."""

import numpy as np
import pytest

from vfmatch.fusion.reconstruct import (
    align_to_template,
    fuse_aligned,
    fuse_faces,
    match_weights,
    mean_shape,
    reconstruct_face,
    select_best_matches,
    warp_to_shape,
)


def test_selection_rules_follow_the_patent():
    s = np.array([0.1, 0.9, 0.5, 0.7, 0.3])
    assert select_best_matches(s, top_n=2).tolist() == [1, 3]
    assert select_best_matches(s, top_percent=40).tolist() == [1, 3]
    assert select_best_matches(s, top_percent=1).tolist() == [1]  # at least one face
    assert select_best_matches(s, threshold=0.4).tolist() == [1, 3, 2]
    with pytest.raises(ValueError, match="exactly one of"):
        select_best_matches(s, top_n=2, threshold=0.1)
    with pytest.raises(ValueError, match="above the threshold 0.95"):
        select_best_matches(s, threshold=0.95)
    with pytest.raises(ValueError, match="NaN"):
        select_best_matches(np.array([0.1, np.nan]), top_n=1)


def test_fusing_copies_of_one_face_gives_that_face(tiny_population):
    img = tiny_population.image(0)
    lm = np.asarray(tiny_population.faces[0]["landmarks"], dtype=np.float32)
    one = fuse_faces(img[None], lm[None], size=64)
    three = fuse_faces(np.stack([img] * 3), np.stack([lm] * 3), np.array([1.0, 2.0, 3.0]), size=64)
    assert one.shape == (64, 64, 3) and one.dtype == np.uint8
    assert np.abs(one.astype(int) - three.astype(int)).max() <= 1


def test_fused_colour_is_the_weighted_mean():
    # Two flat images: the fused pixels are the weighted mean of their colours.
    imgs = np.stack([np.full((64, 64, 3), 0, np.uint8), np.full((64, 64, 3), 200, np.uint8)])
    lm = np.array([[22, 26], [42, 26], [32, 36], [24, 46], [40, 46]], np.float32)
    out = fuse_faces(imgs, np.stack([lm, lm]), np.array([1.0, 3.0]), size=64)
    assert abs(int(out[32, 32, 0]) - 150) <= 1


def test_reconstruct_face_uses_the_best_matches(tiny_population):
    imgs = tiny_population.images()
    lms = np.stack([np.asarray(x, np.float32) for x in tiny_population.faces["landmarks"]])
    scores = np.linspace(0, 1, len(imgs))
    fused = reconstruct_face(scores, imgs, lms, top_n=3, weighted=True, size=64)
    assert fused.selected.tolist() == [len(imgs) - 1, len(imgs) - 2, len(imgs) - 3]
    assert fused.weights[0] > fused.weights[-1] > 0 and fused.weights.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="3 scores for"):
        reconstruct_face(scores[:3], imgs, lms, top_n=1)


# ------------------------------------------------------------------ morphing
def _landmark_peaks(maps: np.ndarray) -> np.ndarray:
    """Sub-pixel (x, y) of the maximum of each channel: maps (n, H, W, K) -> (n, K, 2).

    A parabola through the peak and its two neighbours on each axis; the peak of
    a warped blob is where the warp took its centre (the blob's centroid is not:
    the triangles around a landmark stretch it unevenly)."""
    n, H, W, K = maps.shape
    out = np.zeros((n, K, 2))
    for i in range(n):
        for k in range(K):
            a = maps[i, :, :, k]
            r, c = np.unravel_index(np.argmax(a), a.shape)
            r, c = min(max(r, 1), H - 2), min(max(c, 1), W - 2)

            def vertex(m, z, p):
                d = m - 2 * z + p
                return 0.0 if d == 0 else 0.5 * (m - p) / d

            out[i, k] = c + vertex(*a[r, c - 1 : c + 2]), r + vertex(*a[r - 1 : r + 2, c])
    return out


def _blob_images(landmarks: np.ndarray, size: int, sigma: float = 1.5) -> np.ndarray:
    """One Gaussian blob per landmark, each in its own channel: (n, size, size, K)."""
    yy, xx = np.mgrid[:size, :size]
    return np.stack([np.stack([np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)) for x, y in lm], -1) for lm in landmarks]).astype(np.float32)


def test_morphing_puts_every_landmark_on_the_mean_shape(tiny_population):
    # Simulated faces have exact landmarks: mark each with a blob, align and warp the blobs
    # exactly as the faces are warped, and find where they end up.
    imgs = tiny_population.images()[:6]
    lms = np.stack([np.asarray(x, np.float32) for x in tiny_population.faces["landmarks"]])[:6]
    weights = np.array([3.0, 1.0, 1.0, 2.0, 1.0, 1.0])
    aligned = align_to_template(_blob_images(lms, imgs.shape[1]), lms, size=64)
    shape = mean_shape(aligned.landmarks, weights)
    morphed = _landmark_peaks(warp_to_shape(aligned.images, aligned.landmarks, shape))
    only_aligned = _landmark_peaks(aligned.images)
    assert np.abs(only_aligned - aligned.landmarks).max() < 0.5  # the blob peaks do mark the landmarks
    assert np.linalg.norm(morphed - shape, axis=-1).max() < 1.0  # morphing: on the mean shape, to a pixel
    assert np.linalg.norm(only_aligned - shape, axis=-1).max() > 2.0  # the similarity alignment alone leaves them apart
    assert shape == pytest.approx(np.average(aligned.landmarks, axis=0, weights=weights))


def test_morphed_face_is_a_new_image_in_range(tiny_population):
    imgs = tiny_population.images()[:6]
    lms = np.stack([np.asarray(x, np.float32) for x in tiny_population.faces["landmarks"]])[:6]
    morph = fuse_faces(imgs, lms, size=64, method="morph")
    align = fuse_faces(imgs, lms, size=64, method="align")
    fused, shape = fuse_aligned(align_to_template(imgs, lms, size=64), method="morph")
    assert morph.shape == (64, 64, 3) and morph.dtype == np.uint8
    assert np.all(np.isfinite(fused)) and fused.min() >= 0 and fused.max() <= 1
    assert np.abs(morph.astype(int) - np.round(fused * 255).astype(int)).max() <= 1
    assert shape.shape == (5, 2) and 20 < morph.mean() < 235
    inputs = align_to_template(imgs, lms, size=64).images
    assert min(np.abs(morph / 255.0 - x).mean() for x in inputs) > 0.02  # not a copy of any input
    assert np.abs(morph.astype(int) - align.astype(int)).mean() > 0.5  # morphing changes the average


def test_morphing_one_face_onto_its_own_shape_changes_nothing(tiny_population):
    img = tiny_population.image(0)
    lm = np.asarray(tiny_population.faces[0]["landmarks"], dtype=np.float32)
    morph = fuse_faces(img[None], lm[None], size=64, method="morph")
    align = fuse_faces(img[None], lm[None], size=64, method="align")
    assert np.abs(morph.astype(int) - align.astype(int)).max() <= 2


def test_more_landmarks_than_five_are_warped_too(tiny_population):
    # Extra landmarks (here: the point between the eyes and the middle of the mouth) ride along
    # with the alignment, enter the mean shape and are warped onto it like the five.
    imgs = tiny_population.images()[:4]
    lms = np.stack([np.asarray(x, np.float32) for x in tiny_population.faces["landmarks"]])[:4]
    extra = np.concatenate([lms, lms[:, [0, 1]].mean(1, keepdims=True), lms[:, [3, 4]].mean(1, keepdims=True)], 1)
    aligned = align_to_template(_blob_images(extra, imgs.shape[1]), extra, size=64)
    assert aligned.landmarks.shape == (4, 7, 2)
    shape = mean_shape(aligned.landmarks)
    assert np.linalg.norm(_landmark_peaks(warp_to_shape(aligned.images, aligned.landmarks, shape)) - shape, axis=-1).max() < 1.0
    fused = reconstruct_face(np.arange(4.0), imgs, extra, top_n=3, method="morph", size=64)
    assert fused.landmarks.shape == (7, 2) and fused.method == "morph"


def test_fusion_rejects_bad_input(tiny_population):
    imgs = tiny_population.images()[:2]
    lms = np.stack([np.asarray(x, np.float32) for x in tiny_population.faces["landmarks"]])[:2]
    with pytest.raises(ValueError, match="method must be one of"):
        fuse_faces(imgs, lms, method="blend")
    with pytest.raises(ValueError, match="K >= 5"):
        fuse_faces(imgs, lms[:, :3])
    with pytest.raises(ValueError, match="weights must be 2 non-negative"):
        fuse_faces(imgs, lms, np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="NaN"):
        fuse_faces(imgs, np.full_like(lms, np.nan))


def test_match_weights_follow_the_level_of_match():
    w = match_weights(np.array([3.0, 2.0, 1.0]))
    assert w.sum() == pytest.approx(1.0) and w[0] > w[1] > w[2] > 0
    assert match_weights(np.array([0.5, 0.5])) == pytest.approx([0.5, 0.5])


def test_the_warp_is_scikit_image_piecewise_affine_transform(tiny_population):
    # warp_to_shape interpolates the landmark coordinates linearly over the Delaunay triangles
    # of the target shape: the same map as scikit-image's PiecewiseAffineTransform, pixel for pixel.
    from skimage.transform import PiecewiseAffineTransform, warp

    from vfmatch.fusion.reconstruct import border_points

    imgs = tiny_population.images()[:3]
    lms = np.stack([np.asarray(x, np.float32) for x in tiny_population.faces["landmarks"]])[:3]
    aligned = align_to_template(imgs, lms, size=64)
    shape = mean_shape(aligned.landmarks)
    ours = warp_to_shape(aligned.images, aligned.landmarks, shape)
    b = border_points(64)
    for i in range(3):
        tf = PiecewiseAffineTransform.from_estimate(np.vstack([shape, b]), np.vstack([aligned.landmarks[i], b]))
        theirs = warp(aligned.images[i], tf, order=1, mode="edge")
        assert np.abs(ours[i] - theirs).max() < 1e-4
