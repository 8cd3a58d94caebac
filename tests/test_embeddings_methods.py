"""Learned embeddings, part 2: the four methods train, save and load, are
deterministic, refuse bad input, run on a population and score the published
SSS lists from precomputed features (issue 11)."""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import pytest

from vfmatch.embeddings import (
    EmbeddingMethod,
    FeatureTable,
    create_embedding_method,
    fit_population,
    list_embedding_methods,
    load_feature_table,
)

METHODS = ["triplet", "weighted_triplet", "sss", "contrastive"]
FAST = dict(embed_dim=16, hidden_dim=32, batch_size=8, epochs=25, lr=5e-3)
FAST_SSS = dict(warmup_epochs=5, update_every=1)


def params(name, **extra):
    p = dict(FAST, **(FAST_SSS if name == "sss" else {}))
    p.update(extra)
    return p


def synthetic(n_ids=24, per=3, dim_z=4, seed=0, prefix="p"):
    """Voices and faces that share a per-identity latent z through two random linear maps, plus noise."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n_ids, dim_z))
    A, B = np.random.default_rng(99).normal(size=(2, dim_z, 10))
    ids = np.repeat([f"{prefix}{i:03d}" for i in range(n_ids)], per)
    zz = np.repeat(z, per, axis=0)
    voice = FeatureTable(zz @ A + 0.3 * rng.normal(size=(len(ids), 10)), ids, modality="voice")
    face = FeatureTable(zz @ B + 0.3 * rng.normal(size=(len(ids), 10)), ids, modality="face")
    return voice, face


@pytest.fixture(scope="module")
def data():
    return synthetic()


def test_registry():
    assert set(METHODS) <= set(list_embedding_methods())
    for name in METHODS:
        m = create_embedding_method(name)
        assert m.name == name and m.reference  # each names its seed equation
        assert m.get_params()["embed_dim"] == 128
        assert not hasattr(m, "net_")  # nothing built before fit
    with pytest.raises(KeyError, match="unknown embedding method 'nope'"):
        create_embedding_method("nope")
    with pytest.raises(TypeError, match="no parameter 'margn'"):
        create_embedding_method("triplet", margn=0.1)
    assert create_embedding_method("sss", reweight=False).get_params()["reweight"] is False


@pytest.mark.parametrize("name", METHODS)
def test_training_lowers_the_loss(name, data):
    voice, face = data
    untrained = params(name, epochs=0)
    if name == "sss":
        untrained.update(reweight=False)  # no warm-up or re-weighting stage either
    before = create_embedding_method(name, **untrained).fit(voice, face)  # the initial net
    after = create_embedding_method(name, **params(name)).fit(voice, face)
    assert after.loss(voice, face) < 0.8 * before.loss(voice, face)
    curve = [h["loss"] for h in after.history_ if h["stage"] == "train"]
    assert len(curve) == FAST["epochs"] and curve[-1] < curve[0]
    # The shared space separates identities: a voice is closer to its own faces.
    S = after.similarity(after.transform_voices(voice), after.transform_faces(face))
    same = voice.labels[:, None] == face.labels[None, :]
    assert S[same].mean() > S[~same].mean() + 0.2


def test_sss_reweighting_zeroes_the_hardest_identities(data):
    voice, face = data
    m = create_embedding_method("sss", **params("sss", keep=0.75)).fit(voice, face)
    w = m.identity_weights_
    assert w.shape == (24,) and (w > 0).sum() == int(np.ceil(0.75 * 24))
    assert len(m.personalized_) == 24 - (w > 0).sum()
    assert set(m.personalized_) <= set(voice.labels)
    stages = [h["stage"] for h in m.history_]
    assert stages[0] == "warmup" and "reweight" in stages and stages[-1] == "train"
    with pytest.raises(ValueError, match="reweight=True needs implicit=True"):
        create_embedding_method("sss", implicit=False).fit(voice, face)
    with pytest.raises(ValueError, match="nothing would be trained"):
        create_embedding_method("sss", implicit=False, explicit=False, reweight=False).fit(voice, face)


def test_weighted_triplet_damping_is_measured_or_given(data):
    voice, face = data
    m = create_embedding_method("weighted_triplet", **params("weighted_triplet", epochs=1)).fit(voice, face)
    assert 0 < m.damping_center_ < 2 and m.damping_scale_ > 0
    m = create_embedding_method("weighted_triplet", **params("weighted_triplet", epochs=1, damping_center=0.7,
                                                             damping_scale=0.2)).fit(voice, face)
    assert (m.damping_center_, m.damping_scale_) == (0.7, 0.2)
    ref = np.random.default_rng(0).normal(size=(len(face), 5))
    m.fit(voice, face, face_reference=ref)  # F: another encoder's features
    with pytest.raises(ValueError, match="one row per face"):
        m.fit(voice, face, face_reference=ref[:3])


@pytest.mark.parametrize("name", METHODS)
def test_save_load_gives_identical_scores(name, data, tmp_path):
    voice, face = data
    m = create_embedding_method(name, **params(name, epochs=3)).fit(voice, face)
    folder = m.save(tmp_path / name)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]  # no pickle
    m2 = EmbeddingMethod.load(folder)
    assert type(m2) is type(m) and m2.get_params() == m.get_params()
    s1 = m.similarity(m.transform_voices(voice), m.transform_faces(face))
    s2 = m2.similarity(m2.transform_voices(voice), m2.transform_faces(face))
    assert np.array_equal(s1, s2)
    assert m2.history_ == m.history_ and list(m2.classes_) == list(m.classes_)
    if name == "sss":
        assert np.array_equal(m2.identity_weights_, m.identity_weights_)
    if name == "weighted_triplet":
        assert m2.damping_center_ == m.damping_center_
    with pytest.raises(FileNotFoundError, match="missing"):
        EmbeddingMethod.load(tmp_path / "nothing")


@pytest.mark.parametrize("name", ["weighted_triplet", "sss"])
def test_training_is_deterministic_given_the_seed(name, data):
    voice, face = data

    def embed(seed):
        m = create_embedding_method(name, **params(name, epochs=4, seed=seed)).fit(voice, face)
        return m.transform_voices(voice)

    assert np.array_equal(embed(3), embed(3))
    assert not np.array_equal(embed(3), embed(4))


def test_bad_input_is_a_clear_error(data):
    voice, face = data
    with pytest.raises(ValueError, match=r"embed_dim \(the size of the shared space\) must be an integer >= 1, got 0"):
        create_embedding_method("triplet", embed_dim=0).fit(voice, face)
    nan = voice.features.copy()
    nan[5, 2] = np.nan
    with pytest.raises(ValueError, match="voice features: 1 row\\(s\\) contain NaN or infinite values, first at row 5"):
        create_embedding_method("triplet").fit((nan, voice.labels), face)
    labels = voice.labels.astype(object)
    labels[0] = None
    with pytest.raises(ValueError, match="no identity label"):
        create_embedding_method("contrastive").fit((voice.features, labels), face)
    lonely = face.select(face.labels != "p003")
    with pytest.raises(ValueError, match="identity 'p003' .*has voice features but no face features"):
        create_embedding_method("sss").fit(voice, lonely)
    m = create_embedding_method("triplet", **params("triplet", epochs=1)).fit(voice, face)
    with pytest.raises(ValueError, match=r"voice features must be \(n, 10\)"):
        m.transform_voices(np.ones((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        m.transform_faces(nan)
    with pytest.raises(RuntimeError, match="not fitted"):
        create_embedding_method("triplet").transform_voices(voice.features)


def test_fit_population_on_the_tiny_population(tiny_population):
    from vfmatch.features import create_encoder

    res = fit_population("contrastive", tiny_population, seed=0, embed_dim=8, epochs=4, batch_size=4,
                         face_encoder=create_encoder("face", "thumbnail", size=8))
    test = tiny_population.split((0.5, 0.25, 0.25), seed=0).test
    assert res.voice_embeddings.shape == (test.voices.num_rows, 8)
    assert res.face_embeddings.shape == (test.faces.num_rows, 8)
    assert res.similarity().shape == (test.voices.num_rows, test.faces.num_rows)
    assert set(res.voice_speakers) == set(test.speaker_ids) and res.voice_gender is not None
    assert res.method.epochs == 4 and res.method.seed == 0
    assert set(res.seconds) == {"encoders", "features", "train", "embed"}
    assert np.allclose(np.linalg.norm(res.voice_embeddings, axis=1), 1, atol=1e-5)
    v, x = res.embed(test)  # the same people through embed(): the same embeddings
    assert np.array_equal(v, res.voice_embeddings) and np.array_equal(x, res.face_embeddings)


def test_fit_population_trains_a_trainable_encoder_first(tiny_population):
    from vfmatch.features import create_encoder

    splits = tiny_population.split((0.5, 0.25, 0.25), seed=0)
    enc = create_encoder("face", "face-cnn", embed_dim=8, size=32, channels=(4, 8), epochs=1)
    res = fit_population("triplet", splits.train, splits.test, face_encoder=enc, embed_dim=4, epochs=2, batch_size=4)
    assert enc.is_fitted and res.encoders["face"] == "face-cnn"


# ---------------------------------------------------------------------------
# Precomputed features in, the published SSS lists out
# ---------------------------------------------------------------------------


def _features(identities, seed, A):
    """Features from a latent of each identity (the same in both modalities) through ``A``, plus noise."""
    uniq, inv = np.unique(np.asarray(identities, dtype=str), return_inverse=True)
    z = np.stack([np.random.default_rng(zlib.crc32(s.encode())).normal(size=A.shape[0]) for s in uniq])
    return z[inv] @ A + 0.3 * np.random.default_rng(seed).normal(size=(len(identities), A.shape[1]))


def test_train_from_fop_style_files_and_score_the_sss_list(tmp_path):
    """Features as FOP ships them (CSV: feature columns and a label; here also a path
    column), training identities from the SSS train split, path-level scoring of the
    published gender-restricted 1:2 list through evaluate_sss."""
    from vfmatch.evaluation import evaluate_sss, load_sss_identities, load_sss_list

    ids = load_sss_identities()
    A, B = np.random.default_rng(7).normal(size=(2, 4, 12))
    train = ids[ids["split"] == "train"].head(60)
    v_paths = [f"{s}/clip{k}/{k:05d}.wav" for s in train["speaker_id"] for k in range(3)]
    f_paths = [f"{n}/{k:08d}.jpg" for n in train["face_name"] for k in range(3)]
    v_ids = [p.split("/")[0] for p in v_paths]
    f_ids = [n for n in train["speaker_id"] for _ in range(3)]  # the latent follows the VoxCeleb id
    voice_df = pd.DataFrame(_features(v_ids, 1, A), columns=[f"v{i}" for i in range(12)]).assign(
        speaker_id=v_ids, path=v_paths)
    face_df = pd.DataFrame(_features(f_ids, 2, B), columns=[f"f{i}" for i in range(12)]).assign(
        label=[p.split("/")[0] for p in f_paths], path=f_paths)
    voice_df.to_csv(tmp_path / "voiceTrain.csv", index=False)
    face_df.to_parquet(tmp_path / "faceTrain.parquet")
    face_to_id = dict(zip(ids["face_name"], ids["speaker_id"]))
    voice = load_feature_table(tmp_path / "voiceTrain.csv", "voice")
    face = load_feature_table(tmp_path / "faceTrain.parquet", "face", identity_map=face_to_id)
    m = create_embedding_method("contrastive", embed_dim=16, hidden_dim=64, epochs=30, batch_size=20, seed=0)
    m.fit(voice, face)

    # Features of every item of the published list (its identities are not training ones).
    name = "match_g_v2f_val"
    lst = load_sss_list(name)
    vp = pd.unique(lst["probe"])
    fp = pd.unique(pd.concat([lst["positive"], lst["negative"]]))
    v_spk = [p.split("/")[0] for p in vp]
    f_spk = [face_to_id[p.split("/")[0]] for p in fp]
    np.savez(tmp_path / "voiceVal.npz", features=_features(v_spk, 3, A), labels=np.asarray(v_spk, dtype=str),
             paths=np.asarray(vp, dtype=str))
    pd.DataFrame(_features(f_spk, 4, B), columns=[f"f{i}" for i in range(12)]).assign(
        speaker_id=f_spk, path=fp).to_parquet(tmp_path / "faceVal.parquet")
    val_voice = load_feature_table(tmp_path / "voiceVal.npz", "voice")
    val_face = load_feature_table(tmp_path / "faceVal.parquet", "face")

    res = evaluate_sss(m.path_scorer(val_voice, val_face), lists=[name])
    row = res.iloc[0]
    assert row["list"] == name and row["n"] == len(lst)
    assert row["value"] > 0.9, row  # the shared latent transfers to unseen identities (measured 0.985)


@pytest.mark.parametrize("name", ["weighted_triplet", "sss"])
def test_warm_start_fine_tunes_the_fitted_heads(name, data):
    """Seed 001's pre-training on everyone, then fine-tuning on a subset."""
    voice, face = data
    m = create_embedding_method(name, **params(name, epochs=5)).fit(voice, face)
    pretrained = m.transform_voices(voice)
    subset = [f"p{i:03d}" for i in range(12)]
    sub_v, sub_f = voice.select_identities(subset), face.select_identities(subset)
    m.set_params(warm_start=True, epochs=0, **({"reweight": False} if name == "sss" else {}))
    m.fit(sub_v, sub_f)  # no epoch: the heads are the pre-trained ones
    assert np.array_equal(m.transform_voices(voice), pretrained)
    m.set_params(epochs=3).fit(sub_v, sub_f)
    assert not np.array_equal(m.transform_voices(voice), pretrained)
    if name == "sss":
        assert m.net_.classifier.out_features == 12  # a new classifier for the new identities
    with pytest.raises(ValueError, match="warm_start needs features of the sizes"):
        m.fit(FeatureTable(sub_v.features[:, :5], sub_v.labels, modality="voice"), sub_f)
    assert m.transform_voices(voice).shape == (len(voice), 16)  # a failed fit leaves the fitted state alone
