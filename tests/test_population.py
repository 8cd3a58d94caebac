"""The data model, splits, subsets and pair builders."""

import numpy as np
import pandas as pd
import pytest

from vfmatch.data.pairs import make_one_to_n, make_pairs, make_triplets
from vfmatch.data.population import Population, parse_subset
from vfmatch.simulator.population import assemble_population
from vfmatch.simulator.traits import draw_identities


def _fake_population(n=20, clips=3, faces=2, seed=0) -> Population:
    """A population built from random arrays: tests the data model without the renderers."""
    rng = np.random.default_rng(seed)
    traits = draw_identities(n, seed=seed)
    sids = traits["speaker_id"].tolist()
    clip_meta = pd.DataFrame({"speaker_id": np.repeat(sids, clips), "clip_id": [f"{s}_v{i}" for s in sids for i in range(clips)]})
    face_meta = pd.DataFrame({"speaker_id": np.repeat(sids, faces), "face_id": [f"{s}_f{i}" for s in sids for i in range(faces)]})
    waves = [rng.normal(0, 0.1, 1600).astype(np.float32) for _ in range(len(clip_meta))]
    images = rng.integers(0, 255, (len(face_meta), 16, 16, 3), dtype=np.uint8)
    return assemble_population(traits, waves, clip_meta, images, face_meta, info={"generator": "test"})


@pytest.fixture(scope="module")
def pop():
    return _fake_population()


def test_tables_and_access(pop):
    assert len(pop) == 20 and pop.voices.num_rows == 60 and pop.faces.num_rows == 40
    assert pop.audio(0).dtype == np.float32 and pop.audio(0).shape == (1600,)
    assert pop.image(3).shape == (16, 16, 3)
    assert pop.images([0, 1]).shape == (2, 16, 16, 3)
    assert len(pop.audios([0, 5])) == 2
    g = pop.labels("gender", "voice")
    assert g.shape == (60,) and set(g) <= {0, 1}
    # every clip of one speaker carries that speaker's label
    df = pd.DataFrame({"s": pop.voice_speakers, "g": g})
    assert (df.groupby("s")["g"].nunique() == 1).all()


def test_duplicate_speakers_rejected(pop):
    ids = pd.concat([pop.identities, pop.identities.iloc[:1]])
    with pytest.raises(ValueError, match="appears more than once"):
        Population(ids, pop.voices, pop.faces)


def test_splits_are_identity_disjoint_and_seeded(pop):
    a = pop.split(seed=3)
    b = pop.split(seed=3)
    sets = [set(p.speaker_ids) for p in a]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert set().union(*sets) == set(pop.speaker_ids)
    assert [p.speaker_ids for p in a] == [p.speaker_ids for p in b]
    for part in a:
        assert set(part.voice_speakers) <= set(part.speaker_ids)
        assert set(part.face_speakers) <= set(part.speaker_ids)
    with pytest.raises(ValueError, match="summing to 1"):
        pop.split((0.5, 0.2, 0.2))


def test_split_column_is_honoured(pop):
    ids = pop.identities.copy()
    ids["split"] = ["train"] * 10 + ["val"] * 5 + ["test"] * 5
    p = Population(ids, pop.voices, pop.faces)
    s = p.split()
    assert (len(s.train), len(s.validation), len(s.test)) == (10, 5, 5)


def test_homogeneous_subset(pop):
    crit = parse_subset("gender=female,ethnicity=Asian|White")
    assert crit == {"gender": ["female"], "ethnicity": ["Asian", "White"]}
    females = pop.subset("gender=f")
    assert (females.identities["gender"] == "female").all()
    assert len(females) == (pop.identities["gender"] == "female").sum()
    with pytest.raises(KeyError, match="cannot select on 'shoe_size'"):
        pop.subset(shoe_size=42)
    with pytest.raises(ValueError, match="expected column=value"):
        parse_subset("female")


def test_save_and_load_round_trip(pop, tmp_path):
    pop.save_to_disk(tmp_path / "p")
    back = Population.load_from_disk(tmp_path / "p")
    assert back.speaker_ids == pop.speaker_ids
    np.testing.assert_array_equal(back.audio(7), pop.audio(7))
    np.testing.assert_array_equal(back.image(5), pop.image(5))
    with pytest.raises(FileNotFoundError, match="not a population saved"):
        Population.load_from_disk(tmp_path / "missing")


def test_pairs_are_balanced_labelled_and_seeded(pop):
    pairs = make_pairs(pop, 200, seed=1)
    assert len(pairs) == 200 and pairs["label"].sum() == 100
    same = pairs["voice_speaker"] == pairs["face_speaker"]
    assert (same == (pairs["label"] == 1)).all()
    pd.testing.assert_frame_equal(pairs, make_pairs(pop, 200, seed=1))
    assert not pairs.equals(make_pairs(pop, 200, seed=2))


def test_triplets_and_gender_restriction(pop):
    t = make_triplets(pop, 100, seed=0)
    assert (t["voice_speaker"] != t["negative_speaker"]).all()
    assert (pop.face_speakers[t["positive_index"]] == t["voice_speaker"]).all()
    g = dict(zip(pop.identities["speaker_id"], pop.identities["gender"]))
    tg = make_triplets(pop, 100, same_gender=True, seed=0)
    assert all(g[a] == g[b] for a, b in zip(tg["voice_speaker"], tg["negative_speaker"]))


def test_one_to_n_lists(pop):
    voices, faces = make_one_to_n(pop, 5, 30, seed=0)
    assert faces.shape == (30, 5)
    fs = pop.face_speakers
    for v, row in zip(voices, faces):
        assert fs[row[0]] == pop.voice_speakers[v]
        assert len(set(fs[row])) == 5
    with pytest.raises(ValueError, match="n_way must be between 2"):
        make_one_to_n(pop, 50)
