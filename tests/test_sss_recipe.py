"""The VoxCeleb1 + VGGFace recipe (``vfmatch sss``) on a miniature copy in the published layouts.

The fixture takes real identities of the shipped SSS metadata (ids, VGGFace
names, gender), writes short synthetic WAVs (a tone whose pitch follows the
gender, plus noise) under ``vox/wav/<id>/<yt>/<n>.wav`` and small JPEGs under
``vgg/<name>/<n>.jpg``, and tiny lists of the shipped names restricted to those
files. Nothing is downloaded.
"""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from vfmatch.cli import main as cli_main
from vfmatch.evaluation import attribute_agreement_scorer, evaluate_sss, load_sss_identities
from vfmatch.job.sss_features import face_item, merge_shards, missing_shards, shard_file, skipped_items, voice_item

N_CLIPS, N_FACES = 3, 3


def _write_wav(path, rng, f0, sr=16_000, seconds=0.6):
    import soundfile as sf

    t = np.arange(int(sr * seconds)) / sr
    wave = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.05 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave.astype(np.float32), sr)


def _write_jpg(path, rng, colour):
    from PIL import Image

    img = np.clip(np.asarray(colour)[None, None, :] + rng.normal(0, 20, (40, 40, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, quality=90)


def _gz_lines(path, lines):
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """``(root, voices, faces)``: VoxCeleb1 + VGGFace miniature and its lists folder."""
    root = tmp_path_factory.mktemp("sss")
    ids = load_sss_identities()
    rng = np.random.default_rng(0)
    chosen = []
    for split, n in (("train", 4), ("validation", 2), ("test", 2)):
        part = ids[ids["split"] == split]
        for g in ("female", "male"):  # both genders in every split
            chosen.append(part[part["gender"] == g].head(n))
    people = pd.concat(chosen)
    voices, faces = {}, {}
    for sid, name, gender in zip(people["speaker_id"], people["face_name"], people["gender"]):
        f0 = 210.0 if gender == "female" else 115.0
        colour = (200, 120, 110) if gender == "female" else (90, 110, 170)
        voices[sid] = [f"{sid}/yt{k % 2}/{k:05d}.wav" for k in range(N_CLIPS)]
        faces[sid] = [f"{name}/{k:08d}.jpg" for k in range(N_FACES)]
        for p in voices[sid]:
            _write_wav(root / "vox" / "wav" / p, rng, f0 * rng.uniform(0.9, 1.1))
        for p in faces[sid]:
            _write_jpg(root / "vgg" / p, rng, colour)
    face_id = dict(zip(people["face_name"], people["speaker_id"]))
    val = people[people["split"] == "validation"]["speaker_id"].tolist()
    test = people[people["split"] == "test"]["speaker_id"].tolist()
    lists = root / "lists"
    lists.mkdir()
    # 1:2 lists: probe voice, its own face, another person's face (same gender for the G list)
    gender = dict(zip(people["speaker_id"], people["gender"]))
    u, g = [], []
    for s in val:
        for o in val:
            if o != s:
                (g if gender[o] == gender[s] else u).append(f"{voices[s][0]} {faces[s][0]} {faces[o][1]}")
    _gz_lines(lists / "match_v2f_2_val.txt.gz", u + g)
    _gz_lines(lists / "match_g_v2f_2_val.txt.gz", g)
    pairs = [(v, f) for s in test for v in voices[s][:2] for o in test for f in faces[o][:1]]
    _gz_lines(lists / "verify_v2f_test.txt.gz", [f"{v} {f}" for v, f in pairs])
    _gz_lines(lists / "verify_f2v_test.txt.gz", [f"{f} {v}" for v, f in pairs])
    _gz_lines(lists / "verify_g_v2f_test.txt.gz",
              [f"{v} {f}" for v, f in pairs if gender[v.split("/")[0]] == gender[face_id[f.split("/")[0]]]])
    _gz_lines(lists / "reterival_v2f_test.txt.gz",
              [" ".join(voices[s][0] for s in test), " ".join(f for s in test for f in faces[s])])
    return root


def _args(root, out, cache, *extra, align=False):
    """The command line on a fixture; the colour-blob photos hold no face to detect, so
    they are resized whole (``--no-align``) unless ``align``."""
    return ["sss", "--voxceleb", str(root / "vox"), "--vggface", str(root / "vgg"), "--lists", str(root / "lists"),
            "--out", str(out), "--cache", str(cache), "--no-progress", "--epochs", "3", *extra,
            *([] if align else ["--no-align"])]


def test_the_recipe_runs_end_to_end_and_writes_the_report(corpus, tmp_path):
    out = tmp_path / "report"
    assert cli_main(_args(corpus, out, tmp_path / "cache", "--methods", "metaproperty", "contrastive")) == 0
    for name in ("metrics.json", "index.html", "sss_results.csv", "identification.png", "models/contrastive/config.json"):
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["methods"]) == {"metaproperty", "contrastive"}
    assert metrics["recipe"]["labels"] == ["gender", "nationality"]
    assert "only gender and nationality" in metrics["recipe"]["note"]
    assert set(metrics["methods"]["metaproperty"]["weights"]) <= {"gender", "nationality"}
    ids = load_sss_identities()
    expected = evaluate_sss(attribute_agreement_scorer(ids, ["gender", "nationality"]), identity_level=True,
                            lists_dir=corpus / "lists")
    rows = metrics["sss"]["metaproperty"]
    assert [r["list"] for r in rows] == expected["list"].tolist()
    assert [r["n"] for r in rows] == expected["n"].tolist()  # every item of every list was scored
    assert all(0.0 <= r["value"] <= 1.0 for r in rows)
    assert metrics["evaluation"]["oracle"]["identification_1to2_vf"] == pytest.approx(expected["value"].iloc[0])
    page = (out / "index.html").read_text()
    assert "VoxCeleb1 + VGGFace" in page and "<h1>vfmatch sss" in page
    assert metrics["recipe"]["align"] is False and metrics["recipe"]["extractors"] is None
    assert "without face detection or alignment" in page and metrics["faces"]["no_face"] == 0
    assert [c["column"] for c in metrics["recipe"]["metaproperties"]] == ["gender", "nationality"]


def test_an_interrupted_extraction_resumes_and_shards_merge_to_the_one_shot_features(corpus, tmp_path):
    cache = tmp_path / "cache"
    common = ("--methods", "metaproperty", "--num-shards", "3")
    # A cluster worker (or a run interrupted after its first shard): shard 0 only.
    assert cli_main(_args(corpus, tmp_path / "r", cache, *common, "--shard-index", "0", "--extract-only")) == 0
    folders = sorted(p for p in cache.iterdir() if p.is_dir())
    assert [p.name.split("-")[0] for p in folders] == ["face", "voice"]
    for folder in folders:
        assert missing_shards(folder, 3) == [1, 2]
    # Merging now is refused, naming the missing shards.
    assert cli_main(_args(corpus, tmp_path / "r", cache, *common, "--merge")) == 2
    done = {f: shard_file(f, 0, 3).stat().st_mtime_ns for f in folders}
    # The rest (two processes for Dataset.map), then the whole recipe from the shards.
    assert cli_main(_args(corpus, tmp_path / "r", cache, *common, "--extract-only", "--num-proc", "2")) == 0
    assert all(missing_shards(f, 3) == [] for f in folders)
    assert all(shard_file(f, 0, 3).stat().st_mtime_ns == t for f, t in done.items())  # shard 0 was not redone
    assert cli_main(_args(corpus, tmp_path / "r", cache, *common, "--merge")) == 0
    assert (tmp_path / "r" / "metrics.json").exists()
    # One shot, one shard, another cache: the same rows in the same order.
    one = tmp_path / "one"
    assert cli_main(_args(corpus, tmp_path / "r1", one, "--methods", "metaproperty", "--num-shards", "1",
                          "--extract-only")) == 0
    for folder in folders:
        X3, P3 = merge_shards(folder, 3)
        X1, P1 = merge_shards(one / folder.name, 1)
        assert P3.tolist() == P1.tolist()
        np.testing.assert_allclose(X3, X1, rtol=1e-5, atol=1e-6)


def test_items_are_read_through_the_media_front_end(tmp_path):
    """A 48 kHz stereo clip comes out 16 kHz mono and cut to max_seconds; unreadable files are errors naming them."""
    import soundfile as sf

    t = np.arange(48_000) / 48_000
    stereo = np.stack([np.sin(2 * np.pi * 200 * t), np.sin(2 * np.pi * 200 * t)], axis=1).astype(np.float32) * 0.5
    sf.write(tmp_path / "a.wav", stereo, 48_000)
    wave = voice_item(tmp_path / "a.wav", max_seconds=None)
    assert wave.shape == (16_000,) and wave.dtype == np.float32
    assert np.abs(wave).max() == pytest.approx(0.5, abs=0.02)
    assert voice_item(tmp_path / "a.wav", max_seconds=0.5).shape == (8_000,)
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    with pytest.raises(ValueError, match="bad.wav: cannot be read"):
        voice_item(tmp_path / "bad.wav")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="bad.jpg: cannot be read"):
        face_item(tmp_path / "bad.jpg")


def test_missing_files_are_named(corpus, tmp_path, capsys):
    empty = tmp_path / "vgg"
    empty.mkdir()
    args = _args(corpus, tmp_path / "r", tmp_path / "c", "--methods", "metaproperty")
    args[args.index("--vggface") + 1] = str(empty)
    assert cli_main(args) == 2
    assert "train identities" in capsys.readouterr().err


# ------------------------------------------------------------------ face detection and alignment
def _tinted_astronaut(rng, gender):
    """scikit-image's astronaut photo at 256 px (the detector finds her face), tinted by the
    fixture's gender so the face features carry the signal the colour blobs did. Only
    detection and geometry run on it: nothing is inferred about the person."""
    from PIL import Image
    from skimage import data

    img = np.asarray(Image.fromarray(data.astronaut()).resize((256, 256)), dtype=np.float64)
    tint = np.array([1.1, 0.95, 0.9]) if gender == "female" else np.array([0.9, 0.95, 1.1])
    img = np.roll(img * tint, int(rng.integers(-8, 9)), axis=1) + rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def face_corpus(corpus, tmp_path_factory):
    """``(root, faceless photo)``: the corpus with face photos (the astronaut) and one flat grey
    photo that the test verification lists and the retrieval gallery name."""
    from PIL import Image

    root = tmp_path_factory.mktemp("sss-faces")
    (root / "vox").symlink_to(corpus / "vox")
    (root / "lists").symlink_to(corpus / "lists")
    ids = load_sss_identities()
    gender = dict(zip(ids["face_name"], ids["gender"]))
    rng = np.random.default_rng(1)
    grey = next(iter(open_list(corpus / "lists" / "verify_v2f_test.txt.gz"))).split()[1]
    for src in sorted((corpus / "vgg").glob("*/*.jpg")):
        rel = src.relative_to(corpus / "vgg").as_posix()
        dst = root / "vgg" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        img = np.full((256, 256, 3), 128, np.uint8) if rel == grey else _tinted_astronaut(rng, gender[src.parent.name])
        Image.fromarray(img).save(dst, quality=92)
    return root, grey


def open_list(path):
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [ln for ln in fh.read().splitlines() if ln.strip()]


def test_photos_are_aligned_and_faceless_ones_are_counted_and_their_trials_dropped(face_corpus, tmp_path):
    root, grey = face_corpus
    assert face_item(root / "vgg" / grey, image_size=64) is None  # no face: not fed as if aligned
    some = next(p for p in sorted((root / "vgg").glob("*/*.jpg")) if p.relative_to(root / "vgg").as_posix() != grey)
    assert face_item(some, image_size=64).shape == (64, 64, 3)
    out = tmp_path / "report"
    assert cli_main(_args(root, out, tmp_path / "cache", "--methods", "metaproperty", align=True)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    faces = metrics["faces"]
    assert metrics["recipe"]["align"] is True
    assert faces["no_face"] == 1 and faces["no_face_examples"] == [grey]
    # Expected drops, counted from the list files themselves.
    expected = {}
    for name, fname in (("verify_v2f_test", "verify_v2f_test.txt.gz"), ("verify_f2v_test", "verify_f2v_test.txt.gz"),
                        ("verify_g_v2f_test", "verify_g_v2f_test.txt.gz"), ("match_v2f_val", "match_v2f_2_val.txt.gz"),
                        ("match_g_v2f_val", "match_g_v2f_2_val.txt.gz")):
        expected[name] = sum(grey in ln.split() for ln in open_list(root / "lists" / fname))
    expected["retrieval_v2f_test"] = open_list(root / "lists" / "reterival_v2f_test.txt.gz")[1].split().count(grey)
    dropped = {k: v["dropped"] for k, v in faces["dropped_trials"].items()}
    for name, n in expected.items():
        if name in dropped:
            assert dropped[name] == n, name
    assert dropped["verify_v2f_test"] > 0
    n_scored = {r["list"]: r["n"] for r in metrics["sss"]["metaproperty"]}
    assert n_scored["verify_v2f_test"] == faces["dropped_trials"]["verify_v2f_test"]["kept"]
    assert "no face found" in (out / "index.html").read_text()


# ------------------------------------------------------------------ pretrained metaproperties (--extractors)
W2V = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, conv_dim=(16, 16, 16),
           conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, vocab_size=10)
VIT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, image_size=32, patch_size=8)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """Tiny random models with the architectures and class names of the ``pretrained`` preset's
    gender and age models, saved as a Hub download leaves them and loaded by path
    (as tests/test_pretrained.py does)."""
    transformers = pytest.importorskip("transformers")
    import torch

    from vfmatch.features.hub import age_gender_model_class

    root = tmp_path_factory.mktemp("pretrained")
    torch.manual_seed(0)
    age_gender_model_class()(transformers.Wav2Vec2Config(**W2V)).save_pretrained(root / "age-gender")
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True,
                                          return_attention_mask=True).save_pretrained(root / "age-gender")
    for name, classes in (("face-gender", ["female", "male"]),
                          ("face-age", ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70"])):
        cfg = transformers.ViTConfig(**VIT, id2label=dict(enumerate(classes)), label2id={c: i for i, c in enumerate(classes)})
        cfg.architectures = ["ViTForImageClassification"]
        transformers.ViTForImageClassification(cfg).save_pretrained(root / name)
    return {("gender", "voice"): f"hf-age-gender:{root / 'age-gender'}", ("age", "voice"): f"hf-age-gender:{root / 'age-gender'}",
            ("gender", "face"): f"hf-image:{root / 'face-gender'}", ("age", "face"): f"hf-image:{root / 'face-age'}"}


def _shards(cache):
    return {p: p.stat().st_mtime_ns for p in cache.glob("*/shard-*.npz")}


def test_pretrained_metaproperties_join_the_labels_and_their_features_are_cached(corpus, tiny_models, tmp_path, monkeypatch):
    from vfmatch.extractors import presets, pretrained_extractors

    monkeypatch.setitem(presets._PRESETS, "tiny-pretrained",
                        lambda names, quick=False: pretrained_extractors(names, quick, models=tiny_models))
    cache, out = tmp_path / "cache", tmp_path / "report"
    common = ("--methods", "metaproperty", "--extractors", "tiny-pretrained")
    assert cli_main(_args(corpus, out, cache, *common, "--age-sd", "8")) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"population", "recipe", "faces", "evaluation", "methods", "sss"} <= set(metrics)
    assert {"identification_1to2_vf", "auc", "eer", "weights"} <= set(metrics["methods"]["metaproperty"])
    columns = metrics["recipe"]["metaproperties"]
    assert [c["column"] for c in columns] == ["gender", "age", "metadata_gender", "metadata_nationality"]
    assert columns[0]["voice_model"] == tiny_models[("gender", "voice")] and columns[1]["face_model"] == tiny_models[("age", "face")]
    assert [c["source"] for c in columns] == ["pretrained model"] * 2 + ["labels of the VoxCeleb1 metadata"] * 2
    weights = metrics["methods"]["metaproperty"]["weights"]
    assert {"gender", "age"} <= set(weights) <= {c["column"] for c in columns}
    assert metrics["methods"]["metaproperty"]["weight_method"] == "coefficient_x_std"
    assert "ethnicity" in metrics["recipe"]["skipped_metaproperties"]  # a face model only: not both sides
    page = (out / "index.html").read_text()
    assert "vfmatch sss" in page and "pretrained models" in page and "<h1>vfmatch run</h1>" not in page
    # One cache folder per encoder: the two frozen ones, audEERING's (voice gender and age in one pass), two face models.
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 5
    before = _shards(cache)
    # Again, without --age-sd: every feature comes from the cache (no shard written or rewritten), and age is left out.
    assert cli_main(_args(corpus, tmp_path / "again", cache, *common)) == 0
    assert _shards(cache) == before
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert [c["column"] for c in again["recipe"]["metaproperties"]] == ["gender", "metadata_gender", "metadata_nationality"]
    assert "--age-sd" in again["recipe"]["skipped_metaproperties"]["age"]
