"""Face fusion (patent claim 6): selection rules and the aligned average."""

import numpy as np
import pytest

from vfmatch.fusion.reconstruct import fuse_faces, reconstruct_face, select_best_matches


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
