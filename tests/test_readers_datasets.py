"""Readers of published corpora (Common Voice, FairFace, AVSpeech, MAV-Celeb), each on a
tiny fixture in the corpus's own layout, with made-up people and media made here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

from vfmatch import load_population
from vfmatch.data.corpora import avspeech_segment_id, read_fame_list, write_fame_scores


def _tone(path, seconds=0.5, sr=16000, freq=180.0, fmt=None):
    t = np.arange(int(seconds * sr)) / sr
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr, format=fmt)


def _face(path, seed=0, size=48):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)


# ------------------------------------------------------------------ Common Voice
CV_HEADER = "client_id\tpath\tsentence_id\tsentence\tsentence_domain\tup_votes\tdown_votes\tage\tgender\taccents\tvariant\tlocale\tsegment\n"


@pytest.fixture
def common_voice(tmp_path):
    root = tmp_path / "cv-corpus" / "en"
    rows = {
        "train": [("aaa1", "common_voice_en_1.mp3", "twenties", "male_masculine", "United States English"),
                  ("aaa1", "common_voice_en_2.mp3", "twenties", "male_masculine", "United States English"),
                  ("bbb2", "common_voice_en_3.mp3", "sixties", "female_feminine", "India and South Asia (India, Pakistan, Sri Lanka)")],
        "dev": [("ccc3", "common_voice_en_4.mp3", "", "do_not_wish_to_say", "")],
        "test": [("ddd4", "common_voice_en_5.mp3", "teens", "female", "England English")],
    }
    for stem, lines in rows.items():
        text = CV_HEADER + "".join(f"{c}\t{p}\tsid\tA sentence.\t\t2\t0\t{a}\t{g}\t{acc}\t\ten\t\n" for c, p, a, g, acc in lines)
        (root / f"{stem}.tsv").parent.mkdir(parents=True, exist_ok=True)
        (root / f"{stem}.tsv").write_text(text)
        for i, (_, p, *_rest) in enumerate(lines):
            _tone(root / "clips" / p, sr=48000, freq=150 + 20 * i, fmt="MP3")  # MP3 at 48 kHz, as released
    return root


def test_common_voice(common_voice):
    pop = load_population(common_voice)  # kind="auto" recognises the layout
    assert pop.info["source"]["kind"] == "common_voice" and pop.faces.num_rows == 0 and pop.voices.num_rows == 5
    ids = pop.identities.set_index("speaker_id")
    assert ids.loc["aaa1", "gender"] == "male" and ids.loc["aaa1", "age"] == 24.5 and ids.loc["aaa1", "age_group"] == "twenties"
    assert ids.loc["aaa1", "accent"] == "General American" and ids.loc["bbb2", "accent"] == "Indian" and ids.loc["ddd4", "accent"] == "British"
    assert pd.isna(ids.loc["ccc3", "gender"]) and ids.loc["ccc3", "cv_gender"] == "do_not_wish_to_say" and pd.isna(ids.loc["ccc3", "age"])
    assert set(ids["mother_tongue"]) == {"English"} and ids.loc["ccc3", "split"] == "validation"
    np.testing.assert_array_equal(pop.labels("age"), [2, 8, -1, 0])  # Table 1 bins of 24.5, 65, unknown, 16: 20-24, >64, -, <18
    assert pop.voices[0]["sampling_rate"] == 16000 and pop.voices[0]["sentence"] == "A sentence."
    only = load_population(common_voice, kind="common_voice", reader_options={"tsv": ["train"]})
    assert len(only) == 2
    with pytest.raises(FileNotFoundError, match="validated.tsv"):
        load_population(common_voice, kind="common_voice", reader_options={"tsv": ["validated"]})


# ------------------------------------------------------------------ FairFace
def test_fairface(tmp_path):
    root = tmp_path / "fairface"
    (root).mkdir()
    (root / "fairface_label_train.csv").write_text(
        "file,age,gender,race,service_test\ntrain/1.jpg,50-59,Male,East Asian,True\ntrain/2.jpg,10-19,Female,Latino_Hispanic,False\n")
    (root / "fairface_label_val.csv").write_text("file,age,gender,race,service_test\nval/1.jpg,more than 70,Female,Middle Eastern,False\n")
    for i, f in enumerate(("train/1.jpg", "train/2.jpg", "val/1.jpg")):
        _face(root / f, seed=i)
    pop = load_population(root)
    assert pop.info["source"]["kind"] == "fairface" and pop.voices.num_rows == 0 and pop.faces.num_rows == 3
    ids = pop.identities.set_index("speaker_id")
    assert ids.loc["train/1", "ethnicity"] == "Asian" and ids.loc["train/1", "race"] == "East Asian" and ids.loc["train/1", "gender"] == "male"
    assert ids.loc["val/1", "split"] == "validation" and ids.loc["val/1", "ethnicity"] == "Middle-Eastern"
    np.testing.assert_array_equal(pop.labels("age"), [6, 0, 8])  # 55 -> 49-56, 15 -> <18, 70 -> >64
    assert pop.faces[0]["service_test"] is True
    (root / "fairface_label_val.csv").write_text("file,age,gender,race,service_test\nval/1.jpg,70-79,Female,Martian,False\n")
    with pytest.raises(ValueError, match="unknown FairFace age group or race"):
        load_population(root, kind="fairface")


# ------------------------------------------------------------------ AVSpeech
def test_avspeech(tmp_path):
    root = tmp_path / "avspeech"
    root.mkdir()
    rows = [("vidAAAAAAA1", 10.0, 13.5, 0.5, 0.4), ("vidAAAAAAA1", 20.0, 24.0, 0.45, 0.5), ("vidBBBBBBB2", 0.0, 3.2, 0.6, 0.3),
            ("gone0000000", 5.0, 8.0, 0.5, 0.5)]  # the last one was never downloaded
    (root / "avspeech_train.csv").write_text("".join(f"{v},{s:.6f},{e:.6f},{x},{y}\n" for v, s, e, x, y in rows))
    for i, (v, s, e, *_xy) in enumerate(rows[:3]):
        seg = avspeech_segment_id(v, s, e)
        _tone(root / "audio" / f"{seg}.wav", freq=140 + 30 * i)
        _face(root / "faces" / seg / "0.jpg", seed=i)
        _face(root / "faces" / seg / "1.jpg", seed=10 + i)
    assert avspeech_segment_id("vidAAAAAAA1", 10, 13.5) == "vidAAAAAAA1_10.000_13.500"
    pop = load_population(root)
    assert pop.info["source"]["kind"] == "avspeech" and len(pop) == 3 and pop.faces.num_rows == 6
    assert pop.info["avspeech"] == {"segments_listed": 4, "segments_without_media": 1}
    assert pop.faces[0]["face_x"] == pytest.approx(0.5) and set(pop.identities["split"]) == {"train"}
    by_video = load_population(root, reader_options={"identity": "video"}, kind="avspeech")
    assert sorted(by_video.speaker_ids) == ["vidAAAAAAA1", "vidBBBBBBB2"]
    table = tmp_path / "clusters.csv"
    pd.DataFrame({"segment_id": [avspeech_segment_id(*r[:3]) for r in rows[:3]], "speaker_id": ["p1", "p1", "p2"], "gender": ["female", "female", "male"]}).to_csv(table, index=False)
    clustered = load_population(root, kind="avspeech", reader_options={"identities": table})
    assert clustered.identities.set_index("speaker_id").loc["p1", "gender"] == "female"
    (root / "avspeech_test.csv").write_text("vidX,1.0,2.0\n")
    with pytest.raises(ValueError, match="5 \\(youtube_id"):
        load_population(root, kind="avspeech")


# ------------------------------------------------------------------ MAV-Celeb
@pytest.fixture
def mav_celeb(tmp_path):
    root = tmp_path / "mavceleb_v1"
    for k, sid in enumerate(("id0001", "id0002")):
        for j, lang in enumerate(("English", "Urdu")):
            _tone(root / "voices" / sid / lang / "vid00000001" / "00001.wav", freq=120 + 40 * k + 10 * j)
            _face(root / "faces" / sid / lang / "vid00000001" / "0001.jpg", seed=2 * k + j)
    (root / "v1_meta.csv").write_text("ids,name,gender\nid0001,Person One,Male\nid0002,Person Two,Female\n")
    return root


def test_mav_celeb_and_fame_lists(mav_celeb, tmp_path):
    pop = load_population(mav_celeb)
    assert pop.info["source"]["kind"] == "mav_celeb" and pop.voices.num_rows == 4 and pop.faces.num_rows == 4
    assert "name" not in pop.identities and pop.identities.set_index("speaker_id")["gender"].to_dict() == {"id0001": "male", "id0002": "female"}
    assert sorted(set(pop.voices["language"])) == ["English", "Urdu"]
    urdu = load_population(mav_celeb, kind="mav_celeb", reader_options={"languages": ["Urdu"]})
    assert set(urdu.voices["language"]) == {"Urdu"} and set(urdu.faces["language"]) == {"Urdu"}
    fame = tmp_path / "English_test.txt"
    fame.write_text("ysuvkz41 voices/English/00000.wav faces/English/00000.jpg\ntog3zj45 voices/English/00001.wav faces/English/00001.jpg\n")
    lst = read_fame_list(fame)
    assert lst["key"].tolist() == ["ysuvkz41", "tog3zj45"] and set(lst["language"]) == {"English"}
    out = write_fame_scores(lst["key"], [0.5, 1.25], tmp_path / "sub_scores_English_heard.txt")
    assert out.read_text() == "ysuvkz41 0.500000\ntog3zj45 1.250000\n"
    fame.write_text("only-two fields\n")
    with pytest.raises(ValueError, match="line 1"):
        read_fame_list(fame)
