"""vfmatch.data.lists (the one list sampler) and the pairs.py wrappers over it."""

import numpy as np
import pandas as pd
import pytest

from vfmatch.data.lists import group_per_code, items_by_code, sample_lists, speaker_codes
from vfmatch.data.pairs import make_one_to_n, make_pairs, make_triplets
from vfmatch.data.population import Population
from vfmatch.simulator.population import assemble_population
from vfmatch.simulator.traits import draw_identities


def _population(n=16, clips=3, faces=2, faceless=0, seed=0) -> Population:
    """Random arrays for media; the last ``faceless`` people have voices but no face image."""
    rng = np.random.default_rng(seed)
    traits = draw_identities(n, seed=seed)
    sids = traits["speaker_id"].tolist()
    with_face = sids[: n - faceless]
    clip_meta = pd.DataFrame({"speaker_id": np.repeat(sids, clips), "clip_id": [f"{s}_v{i}" for s in sids for i in range(clips)]})
    face_meta = pd.DataFrame({"speaker_id": np.repeat(with_face, faces),
                              "face_id": [f"{s}_f{i}" for s in with_face for i in range(faces)]})
    waves = [rng.normal(0, 0.1, 1600).astype(np.float32) for _ in range(len(clip_meta))]
    images = rng.integers(0, 255, (len(face_meta), 16, 16, 3), dtype=np.uint8)
    return assemble_population(traits, waves, clip_meta, images, face_meta, info={"generator": "test"})


@pytest.fixture(scope="module")
def pop():
    return _population(faceless=2)


def test_items_by_code_and_group_per_code():
    order, starts, counts = items_by_code(np.array([2, 0, 2, 1, 2]), 4)
    assert counts.tolist() == [1, 1, 3, 0]
    assert order[starts[2] : starts[2] + counts[2]].tolist() == [0, 2, 4]  # original order kept
    groups = group_per_code(["f", "m", "f", "unknown"], np.array([0, 1, 0, 2]), 4, "gender")
    assert groups.tolist() == [0, 1, -1, -1]  # index among the sorted known labels; -1 unknown
    with pytest.raises(ValueError, match="gender: one speaker has two different values"):
        group_per_code(["f", "m"], np.array([0, 0]), 1, "gender")


def test_make_triplets_is_the_sampler_on_speaker_codes(pop):
    t = make_triplets(pop, 40, seed=3)
    assert list(t.columns) == ["voice_index", "positive_index", "negative_index", "voice_speaker", "negative_speaker"]
    assert all(t[c].dtype == np.int64 for c in ("voice_index", "positive_index", "negative_index"))
    (vc, fc), _ = speaker_codes(pop.voice_speakers, pop.face_speakers)
    lists = sample_lists(vc, fc, 2, 40, seed=3)
    np.testing.assert_array_equal(t["voice_index"], lists.probe)
    np.testing.assert_array_equal(t[["positive_index", "negative_index"]].to_numpy(), lists.candidates)
    assert (pop.face_speakers[t["positive_index"]] == t["voice_speaker"]).all()
    assert (pop.face_speakers[t["negative_index"]] == t["negative_speaker"]).all()
    assert (t["voice_speaker"] != t["negative_speaker"]).all()


def test_default_triplets_use_every_voice_with_a_face_once(pop):
    t = make_triplets(pop, seed=0)
    has_face = np.isin(pop.voice_speakers, pop.face_speakers)
    assert not has_face.all()  # the two faceless people's voices cannot be probes
    assert sorted(t["voice_index"]) == np.flatnonzero(has_face).tolist()
    pd.testing.assert_frame_equal(t, make_triplets(pop, seed=0))
    assert not t.equals(make_triplets(pop, seed=1))


def test_same_gender_triplets_and_lists(pop):
    gender = dict(zip(pop.identities["speaker_id"], pop.identities["gender"]))
    t = make_triplets(pop, 200, same_gender=True, seed=0)
    assert all(gender[a] == gender[b] for a, b in zip(t["voice_speaker"], t["negative_speaker"]))
    voices, faces = make_one_to_n(pop, 3, 50, same_gender=True, seed=0)
    for v, row in zip(voices, faces):
        assert {gender[s] for s in pop.face_speakers[row]} == {gender[pop.voice_speakers[v]]}


def test_same_gender_needs_every_gender():
    p = _population(n=8)
    p.identities.loc[0, "gender"] = None
    with pytest.raises(ValueError, match="no known group"):
        make_triplets(p, same_gender=True)


def test_make_one_to_n_columns_and_limits(pop):
    voices, faces = make_one_to_n(pop, 4, 25, seed=2)
    assert voices.shape == (25,) and faces.shape == (25, 4) and faces.dtype == np.int64
    assert (pop.face_speakers[faces[:, 0]] == pop.voice_speakers[voices]).all()  # column 0: the true face
    assert all(len(set(pop.face_speakers[row])) == 4 for row in faces)
    with pytest.raises(ValueError, match=r"n_way must be between 2 and the number of identities with a face image \(14\)"):
        make_one_to_n(pop, 15)


def test_make_pairs_is_untouched_by_the_sampler(pop):
    """make_pairs draws its own pairs (the main job's training items): seeded and balanced."""
    pairs = make_pairs(pop, 100, seed=4)
    assert pairs["label"].sum() == 50
    assert ((pairs["voice_speaker"] == pairs["face_speaker"]) == (pairs["label"] == 1)).all()
