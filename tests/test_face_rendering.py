"""Procedural faces: shapes, determinism, exact landmarks and visible traits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vfmatch.simulator.faces import face_parameters, render_faces, render_from_parameters
from vfmatch.simulator.traits import draw_identities


def _person(**traits) -> pd.DataFrame:
    """One identity with average traits, overridable by keyword."""
    row = dict(speaker_id="sim00000", gender="female", age=30.0, ethnicity="White", skin_tone=3, height=165.0,
               weight=62.0, bmi=23.0, mother_tongue="English", accent="British", face_latent=np.zeros(8, np.float32))
    row.update(traits)
    return pd.DataFrame([row])


def _studio(p: dict) -> dict:
    """Frontal pose, fixed framing and flat frontal light: only the traits change the pixels."""
    n = len(p["yaw"])
    p = {k: np.array(v, copy=True) for k, v in p.items()}
    for k in ("yaw", "pitch", "roll", "warmth"):
        p[k][:] = 0
    p["scale"][:], p["illumination"][:], p["shift"][:] = 1, 1, 0
    p["light"][:] = [0, 0, 1]
    p["eyes_closed"][:], p["mouth_open"][:] = False, False
    p["bg"] = np.tile([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]], (n, 1, 1))  # pure blue: nothing on a face is blue
    return p


@pytest.fixture(scope="module")
def batch():
    traits = draw_identities(24, seed=3)
    images, meta = render_faces(traits, 3, seed=7)
    return traits, images, meta


def test_shapes_dtypes_and_metadata(batch):
    traits, images, meta = batch
    assert images.shape == (72, 112, 112, 3) and images.dtype == np.uint8
    assert list(meta.columns) == ["speaker_id", "face_id", "landmarks", "yaw", "pitch", "roll", "eyes_closed",
                                  "mouth_open", "illumination", "scale"]
    assert meta["speaker_id"].tolist() == list(np.repeat(traits["speaker_id"].to_numpy(), 3))  # identity-major
    assert meta["face_id"].iloc[4] == f"{traits['speaker_id'].iloc[1]}_f01" and meta["face_id"].is_unique
    lm = np.stack(meta["landmarks"])
    assert lm.shape == (72, 5, 2) and lm.dtype == np.float32
    assert meta["eyes_closed"].dtype == bool and meta["mouth_open"].dtype == bool
    assert images.std() > 20  # not blank
    small, _ = render_faces(traits.iloc[:2], 1, seed=0, image_size=64)
    assert small.shape == (2, 64, 64, 3)


def test_deterministic_and_seed_dependent(batch):
    traits, images, meta = batch
    again, meta2 = render_faces(traits, 3, seed=7)
    assert np.array_equal(images, again)
    pd.testing.assert_frame_equal(meta.drop(columns="landmarks"), meta2.drop(columns="landmarks"))
    other, meta3 = render_faces(traits, 3, seed=8)
    assert np.abs(other.astype(int) - images).mean() > 5
    assert not np.allclose(meta["yaw"], meta3["yaw"])


def test_worker_processes_render_the_same_pixels(monkeypatch):
    # render_from_parameters spreads its fixed batches over VFMATCH_JOBS workers:
    # 128 images are enough batches to start them, and no pixel may depend on it.
    traits = draw_identities(32, seed=4)
    out = {}
    for jobs in ("1", "2"):
        monkeypatch.setenv("VFMATCH_JOBS", jobs)
        images, meta = render_faces(traits, 4, seed=4, image_size=48)
        out[jobs] = images, np.stack(meta["landmarks"])
    assert out["1"][0].shape == (128, 48, 48, 3)
    np.testing.assert_array_equal(out["1"][0], out["2"][0])
    np.testing.assert_array_equal(out["1"][1], out["2"][1])


def test_a_person_keeps_their_face_when_others_are_added(batch):
    traits, images, meta = batch
    few, meta_few = render_faces(traits.iloc[:5], 3, seed=7)
    assert np.abs(few.astype(int) - images[:15]).max() <= 2
    np.testing.assert_allclose(np.stack(meta_few["landmarks"]), np.stack(meta["landmarks"])[:15], atol=1e-4)


def test_drawing_windows_clip_nothing(batch, monkeypatch):
    """Small features are drawn in a window around them; one image at a time makes the windows tightest."""
    import vfmatch.simulator.faces as fr

    traits, images, _ = batch
    monkeypatch.setattr(fr, "_CHUNK", 1)
    alone, _ = render_faces(traits.iloc[:8], 3, seed=7)
    assert np.array_equal(alone, images[:24])


def test_landmarks_inside_and_consistent_with_pose(batch):
    _, images, meta = batch
    lm = np.stack(meta["landmarks"]).astype(float)
    assert lm.min() >= 0 and lm.max() <= 111
    (le, re, nose, ml, mr), roll = lm.transpose(1, 0, 2), meta["roll"].to_numpy()
    # Eyes and mouth corners sit symmetrically on the face, so both lines turn exactly with roll.
    eye_angle = np.degrees(np.arctan2(re[:, 1] - le[:, 1], re[:, 0] - le[:, 0]))
    mouth_angle = np.degrees(np.arctan2(mr[:, 1] - ml[:, 1], mr[:, 0] - ml[:, 0]))
    np.testing.assert_allclose(eye_angle, roll, atol=0.05)
    np.testing.assert_allclose(mouth_angle, roll, atol=0.05)
    # In the de-rolled frame: left eye left of right eye, eyes above nose above mouth.
    c, s = np.cos(np.radians(roll))[:, None], np.sin(np.radians(roll))[:, None]
    up = lambda p: -s[:, 0] * p[:, 0] + c[:, 0] * p[:, 1]  # noqa: E731
    assert np.all(le[:, 0] < re[:, 0]) and np.all(ml[:, 0] < mr[:, 0])
    assert np.all(up(le) < up(nose)) and np.all(up(nose) < up(ml))


def test_eye_landmarks_hit_the_drawn_pupils(batch):
    _, images, meta = batch
    lm = np.stack(meta["landmarks"])
    checked = 0
    for img, pts, closed in zip(images, lm, meta["eyes_closed"]):
        if closed:
            continue
        for x, y in pts[:2]:
            assert img[int(round(y)), int(round(x))].mean() < 60, "the pupil is dark"
        checked += 1
    assert checked > 50


def test_expression_flags_rates_and_where_they_draw():
    traits = draw_identities(400, seed=1)
    p = face_parameters(traits, 5, seed=2)
    assert 0.05 < p["eyes_closed"].mean() < 0.11 and 0.05 < p["mouth_open"].mean() < 0.11
    assert np.abs(p["yaw"]).mean() < 12 and (np.abs(p["yaw"]) > 20).mean() > 0.02  # mostly near frontal
    # Toggling a flag changes pixels only around the matching landmarks.
    one = {k: v[:1] for k, v in _studio(p).items()}
    base, lm = render_from_parameters(one)
    for flag, idx in (("eyes_closed", [0, 1]), ("mouth_open", [3, 4])):
        other = dict(one, **{flag: np.array([True])})
        changed = np.abs(render_from_parameters(other)[0][0].astype(int) - base[0]).max(-1) > 30
        ys, xs = np.nonzero(changed)
        assert len(ys) > 5
        a, b = lm[0, idx]
        if flag == "eyes_closed":  # near one of the eyes
            dist = np.hypot(xs[:, None] - lm[0, idx, 0], ys[:, None] - lm[0, idx, 1]).min(1)
        else:  # near the segment between the mouth corners
            t = np.clip(((xs - a[0]) * (b[0] - a[0]) + (ys - a[1]) * (b[1] - a[1])) / np.sum((b - a) ** 2), 0, 1)
            dist = np.hypot(xs - a[0] - t * (b[0] - a[0]), ys - a[1] - t * (b[1] - a[1]))
        assert dist.max() < 8, (flag, dist.max())


def test_skin_tone_darkens_from_type_1_to_6():
    means = []
    for tone in range(1, 7):
        p = _studio(face_parameters(_person(skin_tone=tone), 1, seed=0))
        img, lm = render_from_parameters(p)
        le, re, _, ml, mr = lm[0]
        patches = [img[0, int(y) - 2 : int(y) + 3, int(x) - 2 : int(x) + 3] for x, y in ((le + ml) / 2, (re + mr) / 2)]
        means.append(np.mean(patches))
    assert np.all(np.diff(means) < -5), means


def test_higher_bmi_gives_a_wider_face():
    widths = []
    for bmi in (18.0, 24.0, 32.0, 40.0):
        p = _studio(face_parameters(_person(bmi=bmi, gender="male"), 1, seed=0))
        p["hair_len"][:], p["hair_side"][:], p["beard"][:], p["shadow"][:] = 0.8, 0.15, 0, 0  # short hair, shaved
        img, lm = render_from_parameters(p)
        row = img[0, int(round(lm[0, 3, 1]))].astype(int)  # the row through the mouth corners
        widths.append(int(np.sum(row[:, 0] > row[:, 2] + 20)))  # skin is red-ish, the background blue
    assert np.all(np.diff(widths) > 0) and widths[-1] > 1.25 * widths[0], widths


def test_hair_greys_with_age():
    crown = []
    for age in (25.0, 75.0):
        img, lm = render_from_parameters(_studio(face_parameters(_person(age=age, ethnicity="Asian"), 1, seed=0)))
        le, re = lm[0, 0], lm[0, 1]
        x, y = (le + re) / 2 - [0, 1.1 * np.linalg.norm(re - le)]  # above the forehead
        crown.append(img[0, int(y) - 2 : int(y) + 3, int(x) - 2 : int(x) + 3].mean())
    assert crown[1] > crown[0] + 60, crown  # black hair at 25, grey at 75


def test_traits_are_learnable_from_aligned_pixels():
    """A linear model on 24 x 24 aligned thumbnails of 200 people must read the traits of 100 others."""
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from vfmatch.data.preprocess import align_face

    traits = draw_identities(300, seed=5)
    images, meta = render_faces(traits, 2, seed=5, image_size=64)
    X = np.stack([align_face(im, lm, size=24) for im, lm in zip(images, meta["landmarks"])]).reshape(len(images), -1) / 255
    train = np.repeat(np.arange(300), 2) < 200  # identity-disjoint split
    male = np.repeat((traits["gender"] == "male").to_numpy(), 2)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.03, max_iter=2000)).fit(X[train], male[train])
    assert balanced_accuracy_score(male[~train], clf.predict(X[~train])) > 0.85
    for col, min_r in (("skin_tone", 0.8), ("age", 0.5), ("bmi", 0.4)):
        y = np.repeat(traits[col].to_numpy(float), 2)
        reg = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(0, 5, 11))).fit(X[train], y[train])
        assert np.corrcoef(reg.predict(X[~train]), y[~train])[0, 1] > min_r, col


def test_bad_input_is_refused():
    t = _person()
    with pytest.raises(ValueError, match="face_latent"):
        render_faces(t.drop(columns="face_latent"), 1, seed=0)
    with pytest.raises(ValueError, match="faces_per_identity"):
        render_faces(t, 0, seed=0)
    with pytest.raises(ValueError, match="gender"):
        render_faces(_person(gender="x"), 1, seed=0)
    with pytest.raises(ValueError, match="skin_tone"):
        render_faces(_person(skin_tone=7), 1, seed=0)
    with pytest.raises(ValueError, match="image_size"):
        render_faces(t, 1, seed=0, image_size=16)
