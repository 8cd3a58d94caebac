"""Learned embeddings, part 3: the encoders fine-tuned end to end with the heads (issue 11,
``finetune_encoders=True``): it moves the encoders' weights (frozen mode does not), lowers every
method's loss, saves and loads to identical scores, and refuses precomputed features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vfmatch.embeddings import EmbeddingMethod, FeatureTable, create_embedding_method, fit_population, population_table
from vfmatch.features import create_encoder

METHODS = ["triplet", "weighted_triplet", "sss", "contrastive"]
# Small heads, a few epochs: the tiny population's 6 training identities make one batch per epoch.
FAST = dict(embed_dim=8, hidden_dim=16, batch_size=8, lr=5e-3, encoder_lr=1e-3)
FAST_SSS = dict(warmup_epochs=3, update_every=1)


def params(name, **extra):
    return {**FAST, **(FAST_SSS if name == "sss" else {}), **extra}


def state(module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def setup(tiny_population):
    """The tiny population's train / test split and two small encoders pre-trained on the train part."""
    splits = tiny_population.split((0.5, 0.25, 0.25), seed=0)
    voice = create_encoder("voice", "speaker-cnn", embed_dim=8, channels=(4, 8), crop_frames=32, epochs=2)
    face = create_encoder("face", "face-cnn", embed_dim=8, size=32, channels=(4, 8), epochs=2)
    # A frozen fit trains both encoders on the training identities (what fit_population does first).
    fit_population("triplet", splits.train, splits.test, voice_encoder=voice, face_encoder=face, epochs=1, **FAST)
    assert voice.is_fitted and face.is_fitted
    return splits, voice, face


def fit(setup, name="contrastive", *, voice=None, face=None, **extra):
    splits, v, f = setup
    return fit_population(name, splits.train, splits.test, voice_encoder=voice or v, face_encoder=face or f,
                          seed=0, **params(name, **extra))


def test_finetuning_moves_the_encoders_and_frozen_mode_does_not(setup):
    _, voice, face = setup
    before = {"voice": state(voice), "face": state(face)}
    frozen = fit(setup, epochs=3)
    assert frozen.method.finetuned_encoders_ == {"voice": None, "face": None}
    for m in ("voice", "face"):  # frozen: the very encoders, bit-identical
        assert frozen.encoder_objects[m] is (voice if m == "voice" else face)
        assert same(state(frozen.encoder_objects[m]), before[m])

    tuned = fit(setup, epochs=3, finetune_encoders=True)
    for m in ("voice", "face"):
        enc = tuned.method.finetuned_encoders_[m]
        assert enc is tuned.encoder_objects[m] and enc is not (voice if m == "voice" else face)
        assert not same(state(enc), before[m]), f"fine-tuning left the {m} encoder's weights unchanged"
    # The encoders passed in are not touched: the method trains copies.
    assert same(state(voice), before["voice"]) and same(state(face), before["face"])
    # Seeded: the same fit again gives the same embeddings.
    again = fit(setup, epochs=3, finetune_encoders=True)
    np.testing.assert_array_equal(again.voice_embeddings, tuned.voice_embeddings)
    np.testing.assert_array_equal(again.face_embeddings, tuned.face_embeddings)


@pytest.mark.parametrize("name", METHODS)
def test_finetuning_lowers_the_loss(setup, name):
    """Every method through the one training loop: the training loss, dropout off, of the trained net
    on its fine-tuned encoders' features, against the untrained net (epochs=0) on the pre-trained ones."""
    splits = setup[0]

    def train_loss(res):
        tables = [population_table(res.encoder_objects[m], splits.train, m) for m in ("voice", "face")]
        return res.method.loss(*tables, seed=1)

    start = fit(setup, name, epochs=0, finetune_encoders=True)
    trained = fit(setup, name, epochs=30, finetune_encoders=True)
    assert train_loss(trained) < train_loss(start)
    assert len([h for h in trained.method.history_ if h["stage"] == "train"]) == 30


@pytest.mark.parametrize("modalities", [("voice", "face"), ("voice",)])
def test_save_load_gives_identical_scores(setup, tmp_path, modalities):
    splits = setup[0]
    # ("voice",): speaker-cnn fine-tuned, the face's thumbnail features frozen.
    face = None if "face" in modalities else create_encoder("face", "thumbnail", size=8)
    res = fit(setup, "sss", face=face, epochs=3, finetune_encoders=True)
    assert {m for m, e in res.method.finetuned_encoders_.items() if e is not None} == set(modalities)
    folder = res.method.save(tmp_path / "model")
    keys = load_file(str(folder / "model.safetensors")).keys()
    for m in ("voice", "face"):
        assert any(k.startswith(f"{m}_encoder.net.") for k in keys) == (m in modalities)

    loaded = EmbeddingMethod.load(folder)
    encoders = {m: loaded.finetuned_encoders_[m] or res.encoder_objects[m] for m in ("voice", "face")}
    v = loaded.transform_voices(population_table(encoders["voice"], splits.test, "voice", cache=False))
    f = loaded.transform_faces(population_table(encoders["face"], splits.test, "face", cache=False))
    np.testing.assert_array_equal(loaded.similarity(v, f), res.similarity())


def test_precomputed_features_cannot_be_finetuned(setup):
    rng = np.random.default_rng(0)
    ids = np.repeat(["a", "b", "c"], 2)
    voice = FeatureTable(rng.normal(size=(6, 4)), ids, modality="voice")
    face = FeatureTable(rng.normal(size=(6, 5)), ids, modality="face")
    with pytest.raises(ValueError, match="raw media.*FeatureTable"):
        create_embedding_method("triplet", finetune_encoders=True, epochs=1).fit(voice, face)
    create_embedding_method("triplet", epochs=1, batch_size=4).fit(voice, face)  # frozen: fine
    # Encoders with nothing to train end to end: a clear error naming the trainable ones.
    splits = setup[0]
    with pytest.raises(ValueError, match="no encoder to fine-tune.*speaker-cnn"):
        fit_population("triplet", splits.train, splits.test, voice_encoder="logmel-stats",
                       face_encoder=create_encoder("face", "thumbnail", size=8), finetune_encoders=True, epochs=1)
    with pytest.raises(ValueError, match="encoder_lr"):
        create_embedding_method("triplet", encoder_lr=0.0).fit(voice, face)


def test_saved_run_method_keeps_trained_encoder_weights(setup, tmp_path):
    """`vfmatch run`'s save_methods keeps a trained / fine-tuned encoder's weights (not a fresh,
    untrained encoder of the same name), so the saved method scores new clips as it did."""
    from vfmatch.job.methods import MethodScores, embedding_scores_from_voices, load_saved_embedding, save_methods

    splits, voice, face = setup
    test = splits.test
    res = fit_population("triplet", splits.train, test, voice_encoder=voice, face_encoder=face, epochs=2,
                         finetune_encoders=True, **FAST)
    S = res.similarity()
    save_methods({"triplet": MethodScores("triplet", S, 0.0, model=res)}, tmp_path)
    _, encoders, _ = load_saved_embedding(tmp_path / "methods" / "triplet")
    for m, enc in encoders.items():
        assert same(state(enc), state(res.encoder_objects[m])), m
    again = embedding_scores_from_voices(tmp_path / "methods" / "triplet", test)(test.audios())
    np.testing.assert_allclose(again, S, atol=1e-5)
