"""Evaluating fused faces as Speech2Face was (vfmatch.fusion.evaluate): agreement, retrieval, baselines, CIs."""

import numpy as np
import pytest

from vfmatch.features.encoders import create_face_encoder
from vfmatch.fusion.evaluate import evaluate_fusion, fusion_strip, fusion_sweep, identity_bootstrap


@pytest.fixture(scope="module")
def gallery(tiny_population):
    """12 people with 2 faces each (64 px); one voice per person (their first clip)."""
    pop = tiny_population
    images = pop.images()
    landmarks = np.stack([np.asarray(x, np.float32) for x in pop.faces["landmarks"]])
    vs = pop.voice_speakers
    first = np.array([i for i in range(len(vs)) if i == 0 or vs[i] != vs[i - 1]])
    return {
        "images": images, "landmarks": landmarks, "faces": pop.face_speakers, "voices": vs[first],
        "voice_gender": pop.labels("gender", "voice")[first], "face_gender": pop.labels("gender", "face"),
        "encoder": create_face_encoder("thumbnail", size=12),
    }


def _nearest_face_reader(g):
    """A face 'extractor' that reads gender as that of the most similar gallery face (1-NN on
    thumbnails): a genuine reader of pixels, so a fused face is read by what it looks like."""
    emb = g["encoder"].encode(g["images"], landmarks=g["landmarks"][:, :5])
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)

    def predict_faces(images, landmarks=None):
        q = g["encoder"].encode(images, landmarks=landmarks)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        return {"gender": np.eye(2)[g["face_gender"][np.argmax(q @ emb.T, axis=1)]]}

    return predict_faces


def _gender_scores(g, noise=0.1, seed=0):
    """Level of match of each voice to each face: 1 for the same gender, plus noise."""
    same = (g["voice_gender"][:, None] == g["face_gender"][None, :]).astype(float)
    return same + noise * np.random.default_rng(seed).normal(size=same.shape)


def _evaluate(g, scores, **kw):
    return evaluate_fusion(scores, g["images"], g["landmarks"], g["voices"], g["faces"], {"gender": g["voice_gender"]},
                           _nearest_face_reader(g), g["encoder"], size=64, n_boot=200, **kw)


def test_report_has_every_figure_with_both_baselines_and_intervals(gallery):
    res = _evaluate(gallery, _gender_scores(gallery), top_n=3, method="align", return_faces=True)
    for fig in ("true_face_percentile_rank", "true_face_top1", "true_face_top5", "true_face_top10", "gender_agreement"):
        e = res[fig]
        for arm in ("matched", "random", "mean_face"):
            assert 0.0 <= e[arm] <= 1.0
            lo, hi = e[f"{arm}_ci"]
            assert lo <= e[arm] + 1e-9 and e[arm] - 1e-9 <= hi
        assert e["n_voices"] == 12 and len(e["matched_minus_random_ci"]) == 2
    s = res["settings"]
    assert s["rule"] == {"top_n": 3.0} and s["mean_faces_fused"] == 3 and s["n_identities"] == 12 and s["exclude_own"]
    faces = res["faces"]
    assert faces["matched"].shape == (12, 64, 64, 3) and faces["mean_face"].shape == (64, 64, 3)
    for speaker, chosen in zip(gallery["voices"], faces["selected"]):
        assert speaker not in set(gallery["faces"][chosen])  # a voice never fuses its own speaker's faces


def test_gender_matched_faces_are_read_as_the_speakers_gender(gallery):
    res = _evaluate(gallery, _gender_scores(gallery), top_n=4, method="align")
    g = res["gender_agreement"]
    assert g["matched"] >= 0.9 and g["matched"] > g["random"] + 0.2
    assert g["matched_minus_random_ci"][0] > 0  # the paired interval excludes no difference


def test_faces_that_resemble_the_speaker_fuse_into_one_that_ranks_their_face_high(gallery):
    # Score each face by its similarity to the speaker's first face: the voice "knows" the
    # speaker's look, so the fused look-alikes (never the speaker's own faces) should find them.
    emb = gallery["encoder"].encode(gallery["images"], landmarks=gallery["landmarks"][:, :5])
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    first_face = np.array([np.flatnonzero(gallery["faces"] == s)[0] for s in gallery["voices"]])
    scores = emb[first_face] @ emb.T
    res = _evaluate(gallery, scores, top_n=3, method="morph", n_random=2)
    pr = res["true_face_percentile_rank"]
    assert pr["matched"] > pr["random"] + 0.1 and pr["matched"] > 0.6


def test_threshold_rule_and_sweep(gallery):
    scores = _gender_scores(gallery)
    res = _evaluate(gallery, scores, threshold=10.0, method="align")
    assert res["settings"]["n_threshold_fallback"] == 12 and res["settings"]["mean_faces_fused"] == 1
    rows = fusion_sweep(scores, gallery["images"], gallery["landmarks"], gallery["voices"], gallery["faces"],
                        {"gender": gallery["voice_gender"]}, _nearest_face_reader(gallery), gallery["encoder"],
                        rules=({"top_n": 1}, {"top_percent": 25}, {"threshold": None}), threshold=0.5,
                        method="align", size=64, n_boot=50)
    assert [(r["rule"], r["weighted"]) for r in rows] == [
        ("top_n=1", False), ("top_percent=25", False), ("top_percent=25", True), ("threshold=0.5", False), ("threshold=0.5", True)]
    assert rows[1]["mean_faces_fused"] == 6  # 25 % of the 22 faces of other people, rounded
    assert all(0 <= r["gender_agreement.matched"] <= 1 for r in rows)


def test_bad_input_is_named(gallery):
    g = gallery
    with pytest.raises(ValueError, match=r"scores must have shape \(n_voices, n_faces\) = \(12, 24\)"):
        _evaluate(g, np.zeros((12, 5)))
    with pytest.raises(ValueError, match="truth\\['gender'\\] has 3 values for 12 voices"):
        evaluate_fusion(_gender_scores(g), g["images"], g["landmarks"], g["voices"], g["faces"], {"gender": [0, 1, 0]},
                        None, g["encoder"])


def test_identity_bootstrap_moves_a_persons_items_together():
    v = np.array([0.0, 0.0, 1.0, 1.0])
    ci = identity_bootstrap({"a": v, "b": np.zeros(4)}, ["p", "p", "q", "q"], n_boot=500)
    assert ci["a"][0] >= 0.0 and ci["a"][1] <= 1.0
    assert ci["b"] == [0.0, 0.0]
    assert ci["a-b"] == pytest.approx(ci["a"])  # paired: b is constant
    # NaN items are left out of the mean, not counted as zero.
    ci = identity_bootstrap({"a": np.array([1.0, np.nan, 1.0, np.nan])}, [0, 0, 1, 1], n_boot=100)
    assert ci["a"] == [1.0, 1.0]


def test_strip_shows_top_faces_fused_face_and_true_face(gallery):
    g = gallery
    strip = fusion_strip(_gender_scores(g), g["images"], g["landmarks"], g["voices"], g["faces"], [0, 5], top_n=4, shown=3, size=48)
    assert strip.shape == (2 * 48, 5 * 48, 3) and strip.dtype == np.uint8
    fused, true = strip[:48, 3 * 48 : 4 * 48].astype(int), strip[:48, 4 * 48 :].astype(int)
    assert np.abs(fused - true).mean() > 1  # the fused face is not the speaker's own face
