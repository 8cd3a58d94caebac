"""vfmatch.evaluation.protocols: seeded lists, list file formats, and the shipped SSS lists."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from vfmatch.evaluation import protocols as pt
from vfmatch.evaluation.metrics import roc_auc

# ---------------------------------------------------------------- seeded lists


def test_speaker_codes_are_shared():
    (a, b), names = pt.speaker_codes(["x", "y", "x"], ["y", "z"])
    assert list(names) == ["x", "y", "z"]
    assert a.tolist() == [0, 1, 0] and b.tolist() == [1, 2]


def test_sample_lists_structure_and_seed():
    probe = np.repeat(np.arange(20), 3)
    cand = np.repeat(np.arange(20), 2)
    lists = pt.sample_lists(probe, cand, 5, 300, seed=1)
    assert lists.candidates.shape == (300, 5)
    assert np.all(cand[lists.candidates[:, 0]] == probe[lists.probe])
    spk = cand[lists.candidates]
    assert all(len(set(row)) == 5 for row in spk)  # 5 different identities per list
    assert np.all(np.sort(lists.order, 1) == np.arange(5))  # a presentation order, a permutation
    again = pt.sample_lists(probe, cand, 5, 300, seed=1)
    assert np.array_equal(lists.candidates, again.candidates) and np.array_equal(lists.order, again.order)
    assert not np.array_equal(lists.candidates, pt.sample_lists(probe, cand, 5, 300, seed=2).candidates)
    default = pt.sample_lists(probe, cand, 2, seed=0)
    assert np.array_equal(np.sort(default.probe), np.arange(60))  # one list per probe by default
    assert len(lists.to_frame().columns) == 6


def test_sample_triplets_involution_and_groups():
    probe = cand = np.repeat(np.arange(10), 2)
    group = np.arange(10) % 2
    t = pt.sample_triplets(probe, cand, 1000, group_of_code=group, same_group=True, seed=0)
    assert np.all(group[cand[t.candidates[:, 1]]] == group[probe[t.probe]])
    flips = t.order[:, 0] == 1
    assert 0.4 < flips.mean() < 0.6  # sigma swaps half of the triplets
    with pytest.raises(ValueError, match="group"):
        pt.sample_triplets(probe, cand, 10, same_group=True)


def test_sample_lists_errors():
    with pytest.raises(ValueError, match="n_way"):
        pt.sample_lists(np.array([0, 1]), np.array([0, 1]), 1)
    with pytest.raises(ValueError, match="other identities"):
        pt.sample_lists(np.array([0, 1, 2]), np.array([0, 1, 2]), 4)
    with pytest.raises(ValueError, match="no probe"):
        pt.sample_lists(np.array([0]), np.array([1]), 2)


def test_verification_pairs_are_balanced():
    probe, cand, label = pt.sample_verification_pairs(np.repeat(np.arange(8), 2), np.arange(8), 101, seed=3)
    assert label.sum() == 50 and label.size == 101
    assert np.all((np.repeat(np.arange(8), 2)[probe] == cand) == (label == 1))


# ---------------------------------------------------------------- file formats


def test_triplets_round_trip_and_gzip(tmp_path):
    p = pt.write_triplets(tmp_path / "t.txt.gz", ["a/1.wav", "b/1.wav"], ["A/1.jpg", "B/1.jpg"], ["B/2.jpg", "A/2.jpg"])
    with gzip.open(p, "rt") as fh:
        assert fh.readline() == "a/1.wav A/1.jpg B/2.jpg\n"
    df = pt.read_triplets(p)
    assert df.values.tolist() == [["a/1.wav", "A/1.jpg", "B/2.jpg"], ["b/1.wav", "B/1.jpg", "A/2.jpg"]]
    with pytest.raises(FileExistsError):
        pt.write_triplets(p, ["x"], ["y"], ["z"])  # never overwrite a user's file by accident
    pt.write_triplets(p, ["x"], ["y"], ["z"], overwrite=True)
    with pytest.raises(ValueError, match="white space"):
        pt.write_triplets(tmp_path / "bad.txt", ["a b"], ["y"], ["z"])


def test_malformed_lines_name_file_and_line(tmp_path):
    f = tmp_path / "bad.txt"
    f.write_text("# a comment\na b c\n\na b\n")
    with pytest.raises(ValueError, match=r"bad.txt:4: expected 3 fields, got 2"):
        pt.read_triplets(f)
    with pytest.raises(FileNotFoundError, match="no such file"):
        pt.read_triplets(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(ValueError, match="no entries"):
        pt.read_pairs(tmp_path / "empty.txt")


def test_pairs_formats(tmp_path):
    pt.write_pairs(tmp_path / "vf.txt", ["a/1.wav"], ["A/1.jpg"])
    assert pt.read_pairs(tmp_path / "vf.txt").to_dict("records") == [{"voice": "a/1.wav", "face": "A/1.jpg"}]
    pt.write_pairs(tmp_path / "fv.txt", ["a/1.wav"], ["A/1.jpg"], first="face")
    assert (tmp_path / "fv.txt").read_text() == "A/1.jpg a/1.wav\n"
    assert pt.read_pairs(tmp_path / "fv.txt", first="face").to_dict("records") == [{"voice": "a/1.wav", "face": "A/1.jpg"}]
    pt.write_pairs(tmp_path / "lab.txt", ["a", "b"], ["A", "B"], label=[1, 0])
    df = pt.read_pairs(tmp_path / "lab.txt")
    assert df["label"].tolist() == [1, 0]
    (tmp_path / "badlab.txt").write_text("7 a A\n")
    with pytest.raises(ValueError, match="0/1 label"):
        pt.read_pairs(tmp_path / "badlab.txt")


def test_retrieval_list(tmp_path):
    (tmp_path / "r.txt").write_text("a/1.wav b/1.wav \nA/1.jpg B/1.jpg C/1.jpg \n")
    q, g = pt.read_retrieval_list(tmp_path / "r.txt")
    assert q == ["a/1.wav", "b/1.wav"] and len(g) == 3
    (tmp_path / "r3.txt").write_text("a\nb\nc\n")
    with pytest.raises(ValueError, match="exactly 2"):
        pt.read_retrieval_list(tmp_path / "r3.txt")


def test_learnable_pins_csv(tmp_path):
    p = pt.write_labelled_pairs(tmp_path / "veriflist.txt", ["A.R._Rahman/x_0000001.wav", "A.R._Rahman/x_0000002.wav"],
                                ["A.R._Rahman/y/0011625.jpg", "Jesse_Spencer/z/0000825.jpg"], [1, 0])
    text = p.read_text().splitlines()
    assert text[0] == "id,voice-speaker-id,face-speaker-id,label,voice-path,face-path"
    assert text[2] == "2,A.R._Rahman,Jesse_Spencer,0,A.R._Rahman/x_0000002.wav,Jesse_Spencer/z/0000825.jpg"
    df = pt.read_labelled_pairs(p)
    assert df["label"].tolist() == [1, 0] and df["face_speaker"].tolist() == ["A.R._Rahman", "Jesse_Spencer"]
    # The released files start with the header; one without it reads the same.
    (tmp_path / "nohead.txt").write_text("\n".join(text[1:]) + "\n")
    assert pt.read_labelled_pairs(tmp_path / "nohead.txt").equals(df)


def test_fame_score_file(tmp_path):
    (tmp_path / "English_test.txt").write_text("ysuvkz41 voices/English/00000.wav faces/English/00000.jpg\n")
    assert pt.read_fame_list(tmp_path / "English_test.txt")["id"].tolist() == ["ysuvkz41"]
    p = pt.write_score_file(tmp_path / "sub_score.txt", ["ysuvkz41", "tog3zj45"], [0.9988, 0.1146])
    assert p.read_text() == "ysuvkz41 0.998800\ntog3zj45 0.114600\n"
    df = pt.read_score_file(p)
    assert df["score"].tolist() == [0.9988, 0.1146]
    (tmp_path / "dup.txt").write_text("a 1\na 2\n")
    with pytest.raises(ValueError, match="appears twice"):
        pt.read_score_file(tmp_path / "dup.txt")
    (tmp_path / "nan.txt").write_text("a one\n")
    with pytest.raises(ValueError, match="not a number"):
        pt.read_score_file(tmp_path / "nan.txt")


def test_identity_of():
    assert pt.identity_of("id10117/59-3D0HIDAc/00001.wav") == "id10117"
    assert pt.identity_of("CCH_Pounder/00000657.jpg") == "CCH_Pounder"


# ---------------------------------------------------------------- the shipped SSS lists


def test_sss_identities():
    ids = pt.load_sss_identities()
    assert len(ids) == 1251 and ids["speaker_id"].is_unique and ids["face_name"].is_unique
    assert set(ids["gender"]) == {"male", "female"}
    assert ids["split"].value_counts().to_dict() == {"train": 942, "test": 193, "validation": 116}
    with pt.sss_file("LICENSE") as lic:
        assert "MIT License" in lic.read_text()


@pytest.mark.parametrize(
    "name, n",
    [("match_v2f_val", 42546), ("match_g_v2f_val", 42540), ("verify_v2f_test", 65550),
     ("verify_g_v2f_test", 65550), ("verify_f2v_test", 60228)],
)
def test_sss_lists_parse(name, n):
    ids = pt.load_sss_identities()
    gender = dict(zip(ids["speaker_id"], ids["gender"]))
    df = pt.load_sss_list(name)
    assert len(df) == n
    if name.startswith("match"):
        assert (df["positive_speaker"] == df["probe_speaker"]).all()
        assert (df["negative_speaker"] != df["probe_speaker"]).all()
        if "_g_" in name:
            assert (df["negative_speaker"].map(gender) == df["probe_speaker"].map(gender)).all()
    else:
        assert 0.45 < df["label"].mean() < 0.55
        if "_g_" in name:
            neg = df[df["label"] == 0]
            assert (neg["voice_speaker"].map(gender) == neg["face_speaker"].map(gender)).all()
        assert set(df["voice_speaker"]) <= set(ids.loc[ids["split"] == "test", "speaker_id"])


def test_sss_retrieval_list():
    queries, gallery = pt.load_sss_list("retrieval_v2f_test")
    assert len(queries) == 21850 and len(gallery) == 20076
    assert queries["speaker"].nunique() == gallery["speaker"].nunique() == 189
    with pytest.raises(KeyError, match="unknown SSS list"):
        pt.load_sss_list("match_v2f_test")


def test_attribute_agreement_on_sss_lists():
    """A gender-only matcher: every gender-restricted triplet is a tie, so exactly chance."""
    ids = pt.load_sss_identities()
    by_gender = pt.attribute_agreement_scorer(ids, ["gender"])
    assert by_gender(["id10001", "id10001"], ["id10001", "id10002"]).tolist() == [1.0, 1.0]
    res = pt.evaluate_sss(by_gender, lists=["match_g_v2f_val", "match_v2f_val", "verify_g_v2f_test"], identity_level=True)
    res = res.set_index("list")
    assert res.loc["match_g_v2f_val", "value"] == 0.5  # ties count 1/2
    assert res.loc["verify_g_v2f_test", "value"] == 0.5
    assert res.loc["match_v2f_val", "value"] > 0.6
    strict = pt.evaluate_sss(by_gender, lists=["match_g_v2f_val"], identity_level=True, ties="wrong")
    assert strict["value"].iloc[0] == 0.0
    with pytest.raises(KeyError, match="no column"):
        pt.attribute_agreement_scorer(ids, ["height"])


def test_evaluate_sss_path_scorer_equals_identity_scorer():
    """A scorer on file paths gives the same verification AUC as the identity-level one."""
    ids = pt.load_sss_identities()
    by_id = pt.attribute_agreement_scorer(ids, ["gender", "nationality"])
    face_to_id = dict(zip(ids["face_name"], ids["speaker_id"]))

    def by_path(voices, faces):
        return by_id([pt.identity_of(v) for v in voices], [face_to_id[pt.identity_of(f)] for f in faces])

    a = pt.evaluate_sss(by_path, lists=["verify_f2v_test"])
    b = pt.evaluate_sss(by_id, lists=["verify_f2v_test"], identity_level=True)
    assert a["value"].iloc[0] == b["value"].iloc[0]
    df = pt.load_sss_list("verify_f2v_test")
    assert b["value"].iloc[0] == pytest.approx(roc_auc(df["label"], by_id(df["voice_speaker"], df["face_speaker"])))
    assert isinstance(b, pd.DataFrame) and b["chance"].iloc[0] == 0.5
