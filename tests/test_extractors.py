"""Calculators, metaproperty extractors and extractor sets: fit, probabilities, saving."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.base import clone

from vfmatch.extractors import (
    CALCULATORS,
    ExtractorSet,
    KNNCalculator,
    LabelMapCalculator,
    LogisticCalculator,
    MetapropertyExtractor,
    MLPCalculator,
    SVMCalculator,
    ViTCalculator,
    create_calculator,
    label_mapping,
)
from vfmatch.features.cache import clear_memory_cache, population_features
from vfmatch.features.encoders import create_voice_encoder


def blobs(n_per=30, n_classes=3, dim=5, seed=0, spread=0.6):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3, size=(n_classes, dim))
    X = np.concatenate([c + spread * rng.normal(size=(n_per, dim)) for c in centres])
    y = np.repeat(np.arange(n_classes), n_per)
    return X, y


def roundtrip(calc):
    arrays, meta = calc.state()
    json.dumps(meta)  # JSON-able
    assert all(isinstance(v, np.ndarray) for v in arrays.values())
    return create_calculator(calc.name, **calc.get_params()).load_state(arrays, meta)


# ---------------------------------------------------------------------- calculators
@pytest.mark.parametrize("name", ["logistic", "svm", "knn", "mlp"])
def test_vector_calculators(name):
    X, y = blobs()
    y_full = np.array([0, 2, 4])[y]  # values 1 and 3 never appear in training
    calc = create_calculator(name, **({"epochs": 100} if name == "mlp" else {}))
    assert not any(k.endswith("_") for k in vars(calc))  # nothing fitted in __init__
    calc.fit(X, y_full, n_values=5, groups=np.arange(len(y)) // 3)
    p = calc.predict_proba(X)
    assert p.shape == (len(X), 5)
    np.testing.assert_allclose(p.sum(axis=1), 1)
    assert np.all(p[:, [1, 3]] <= calc.smoothing / 5 + 1e-12)  # unseen values get only the smoothing mass
    assert (p.argmax(axis=1) == y_full).mean() > 0.9
    np.testing.assert_allclose(roundtrip(calc).predict_proba(X), p, atol=1e-6)


def test_pca_option_and_nan_features():
    X, y = blobs(dim=20)
    X[::7, 3] = np.nan  # unmeasured statistics are imputed with the training mean
    calc = LogisticCalculator(pca=4).fit(X, y)
    assert calc.components_.shape == (4, 20)
    p = calc.predict_proba(X)
    assert np.isfinite(p).all() and (p.argmax(1) == y).mean() > 0.9
    np.testing.assert_allclose(roundtrip(calc).predict_proba(X), p)


def test_calculator_errors():
    X, y = blobs()
    with pytest.raises(RuntimeError, match="not fitted"):
        LogisticCalculator().predict_proba(X)
    with pytest.raises(ValueError, match="labels"):
        LogisticCalculator().fit(X, y, n_values=2)
    with pytest.raises(ValueError, match="inputs but"):
        LogisticCalculator().fit(X[:5], y)
    calc = LogisticCalculator().fit(X, y)
    with pytest.raises(ValueError, match="features"):
        calc.predict_proba(X[:, :2])
    with pytest.raises(ValueError, match="inf"):
        calc.predict_proba(np.full_like(X, np.inf))
    with pytest.raises(KeyError, match="unknown calculator"):
        create_calculator("forest")


def test_single_class_training_gives_that_class():
    X, _ = blobs()
    p = SVMCalculator().fit(X, np.full(len(X), 2), n_values=4).predict_proba(X[:3])
    assert np.all(p.argmax(axis=1) == 2)
    np.testing.assert_allclose(p.sum(axis=1), 1)


def spectrograms(n=24, seed=0):
    """Two classes: class 1 has a loud band in the upper Mel bands. Lengths vary."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for i in range(n):
        s = rng.normal(size=(16, int(rng.integers(20, 60)))).astype(np.float32)
        if i % 2:
            s[10:14] += 3.0
        X.append(s)
        y.append(i % 2)
    return X, np.array(y)


def test_vit_on_spectrograms_learns_and_attends():
    X, y = spectrograms()
    vit = ViTCalculator(patch_size=(4, 8), window=32, embed_dim=16, depth=1, num_heads=2, epochs=25, batch_size=8, lr=5e-3)
    vit.fit(X, y, n_values=2)
    assert vit.net_.patch_embed.proj.in_channels == 1 and tuple(vit.img_size_) == (16, 32)  # one channel, non-square
    p = vit.predict_proba(X)
    np.testing.assert_allclose(p.sum(axis=1), 1)
    assert (p.argmax(1) == y).mean() > 0.8
    att = vit.attention_rollout(X[1])
    assert att.shape == X[1].shape and np.all(att >= 0)
    np.testing.assert_allclose(roundtrip(vit).predict_proba(X), p, atol=1e-5)
    with pytest.raises(ValueError, match="spectrogram"):
        vit.predict_proba([np.zeros((8, 40), np.float32)])  # wrong number of Mel bands


def test_vit_auxiliary_targets_and_ensemble(monkeypatch):
    X, aux = spectrograms(n=32)  # the auxiliary target is the loud band
    y = np.arange(32) % 3  # the main target: unrelated, three values
    kw = dict(patch_size=(4, 8), window=32, embed_dim=16, depth=1, num_heads=2, epochs=4, batch_size=8, lr=5e-3)
    vit = ViTCalculator(n_models=2, **kw).fit(X, y, n_values=4, auxiliary={"accent": (aux, 2)})
    assert len(vit.nets_) == 2 and vit.aux_names_ == ["accent"] and vit.aux_sizes_ == [2]
    assert vit.net_.head.out_features == 3 + 2  # main head, then the auxiliary head
    p = vit.predict_proba(X)
    assert p.shape == (32, 4)  # only the main metaproperty's values come out
    np.testing.assert_allclose(p.sum(axis=1), 1)
    np.testing.assert_allclose(roundtrip(vit).predict_proba(X), p, atol=1e-5)
    # The ensemble is the mean of its members, each trained with its own seed.
    singles = [ViTCalculator(seed=s, **kw).fit(X, y, n_values=4, auxiliary={"accent": (aux, 2)}).predict_proba(X) for s in (0, 1)]
    np.testing.assert_allclose(p, np.mean(singles, axis=0), atol=1e-5)
    assert vit.attention_rollout(X[0]).shape == X[0].shape
    # On a CPU the members train in worker processes, one thread each: the same networks
    # whatever the number of workers.
    for jobs in ("1", "2"):
        monkeypatch.setenv("VFMATCH_JOBS", jobs)
        again = ViTCalculator(n_models=2, **kw).fit(X, y, n_values=4, auxiliary={"accent": (aux, 2)})
        np.testing.assert_array_equal(again.predict_proba(X), p)
    # Unknown auxiliary labels (-1) are skipped; wrong ones are refused.
    ViTCalculator(**{**kw, "epochs": 1}).fit(X, y, auxiliary={"accent": (np.full(32, -1), 2)})
    with pytest.raises(ValueError, match="expected 32 labels"):
        ViTCalculator(**kw).fit(X, y, auxiliary={"accent": (aux[:5], 2)})
    with pytest.raises(ValueError, match=r"must be in 0\.\.1"):
        ViTCalculator(**kw).fit(X, y, auxiliary={"accent": (aux + 5, 2)})
    with pytest.raises(ValueError, match="does not learn auxiliary"):
        LogisticCalculator().fit(*blobs(), auxiliary={"accent": (np.zeros(90), 2)})


def test_vit_on_images():
    rng = np.random.default_rng(0)
    X = rng.random((16, 3, 16, 16)).astype(np.float32)
    y = np.arange(16) % 2
    X[y == 1, 0] += 0.8  # class 1 is redder
    vit = ViTCalculator(patch_size=4, embed_dim=16, depth=1, num_heads=2, epochs=15, batch_size=8, lr=5e-3).fit(X, y)
    assert vit.mode_ == "image" and vit.attention_rollout(X[0]).shape == (16, 16)
    assert (vit.predict_proba(X).argmax(1) == y).mean() > 0.8
    with pytest.raises(ValueError, match="multiple of patch_size"):
        ViTCalculator(patch_size=5, epochs=1).fit(X, y)


def test_label_map_calculator():
    assert label_mapping(["male", "F"], "gender") == [0, 1]
    assert label_mapping(["10-19", "20-29", "70+"], "age") == [0, 2, 8]  # read at 14.5, 24.5 and 70 years
    with pytest.raises(ValueError, match="cannot map"):
        label_mapping(["cat", "dog"], "gender")
    calc = LabelMapCalculator(mapping=[1, 0, 1]).fit(np.full((1, 3), 1 / 3), n_values=2)
    p = calc.predict_proba(np.array([[0.2, 0.5, 0.3]]))
    np.testing.assert_allclose(p, [[0.5, 0.5]], atol=1e-3)
    np.testing.assert_allclose(roundtrip(calc).predict_proba(np.array([[0.2, 0.5, 0.3]])), p)


def test_registry_names():
    assert set(CALCULATORS) == {"logistic", "svm", "knn", "mlp", "vit", "labels", "pretrained-labels"}
    assert isinstance(create_calculator("knn", n_neighbors=3), KNNCalculator)
    assert isinstance(create_calculator("mlp"), MLPCalculator)


# ------------------------------------------------------------------------ extractors
def test_extractor_sklearn_conventions():
    ex = MetapropertyExtractor("age", "face", encoder="thumbnail", calculator="logistic", calculator_kwargs={"C": 0.1})
    assert ex.get_params()["metaproperty"] == "age"
    assert clone(ex).get_params() == ex.get_params()
    assert not any(k.endswith("_") and not k.startswith("__") for k in vars(ex))
    with pytest.raises(RuntimeError, match="not fitted"):
        ex.predict_proba(np.zeros((1, 8, 8, 3), np.uint8))


def test_extractor_on_a_population(tiny_population, tmp_path):
    ex = MetapropertyExtractor("gender", "voice", encoder="f0-formants", calculator="logistic").fit(tiny_population)
    p = ex.predict_proba(tiny_population)
    assert p.shape == (tiny_population.voices.num_rows, 2)
    np.testing.assert_allclose(p.sum(axis=1), 1)
    assert set(ex.predict(tiny_population)) <= {"male", "female"}
    loaded = MetapropertyExtractor.load(ex.save(tmp_path / "ex"))
    np.testing.assert_allclose(loaded.predict_proba(tiny_population), p)
    assert not list((tmp_path / "ex").glob("*.pkl"))
    # Raw clips give the same answer as the population's rows.
    np.testing.assert_allclose(ex.predict_proba(tiny_population.audios([0, 1])), p[:2], atol=1e-6)


def test_face_extractor_with_raw_images_and_landmarks(tiny_population):
    imgs = tiny_population.images()
    lm = np.asarray(tiny_population.faces["landmarks"], dtype=np.float32)
    y = tiny_population.identities.set_index("speaker_id").loc[tiny_population.face_speakers, "skin_tone"].to_numpy()
    ex = MetapropertyExtractor("skin_tone", "face", encoder="ita", calculator="logistic").fit(imgs, y, landmarks=lm)
    p = ex.predict_proba(imgs[:3], landmarks=lm[:3])
    assert p.shape == (3, 6)
    np.testing.assert_allclose(p.sum(axis=1), 1)


@pytest.mark.parametrize(
    "modality, bad, message",
    [
        ("voice", [], "no clips"),
        ("voice", [np.zeros(16000, np.float32)], "silent"),
        ("voice", [np.full(16000, np.nan, np.float32)], "NaN"),
        ("voice", [np.ones((2, 16000), np.float32)], "mono"),
        ("face", np.zeros((0, 64, 64, 3), np.uint8), "empty"),
        ("face", np.full((1, 64, 64, 3), 9, np.uint8), "blank"),
        ("face", np.full((1, 64, 64, 3), np.nan, np.float32), "NaN"),
        ("face", np.zeros((1, 64, 64), np.uint8), "RGB"),
    ],
)
def test_extractors_reject_bad_input(tiny_population, modality, bad, message):
    enc = "logmel-stats" if modality == "voice" else "thumbnail"
    ex = MetapropertyExtractor("gender", modality, encoder=enc, calculator="logistic").fit(tiny_population)
    with pytest.raises(ValueError, match=message):
        ex.predict_proba(bad)


def test_extractor_configuration_errors(tiny_population):
    with pytest.raises(ValueError, match="takes a matrix"):
        MetapropertyExtractor("gender", "voice", encoder="logmel-stats", calculator="vit").fit(tiny_population)
    with pytest.raises(ValueError, match="modality"):
        MetapropertyExtractor("gender", "smell").fit(tiny_population)
    with pytest.raises(KeyError, match="unknown metaproperty"):
        MetapropertyExtractor("shoe_size", "voice").fit(tiny_population)
    with pytest.raises(ValueError, match="labels are needed"):
        MetapropertyExtractor("gender", "voice").fit(tiny_population.audios([0]))
    with pytest.raises(FileNotFoundError):
        MetapropertyExtractor.load("/no/such/folder")


def test_extractor_with_auxiliary_targets(tiny_population, tmp_path):
    ex = MetapropertyExtractor(
        "skin_tone", "voice", encoder="logmel", calculator="vit", auxiliary=["accent", "mother_tongue"],
        encoder_kwargs={"n_mels": 16}, calculator_kwargs=dict(patch_size=(16, 8), window=32, embed_dim=8, depth=1, num_heads=2, epochs=1),
    ).fit(tiny_population)
    assert ex.calculator_.aux_names_ == ["accent", "mother_tongue"]
    p = ex.predict_proba(tiny_population)
    assert p.shape == (tiny_population.voices.num_rows, 6)
    loaded = MetapropertyExtractor.load(ex.save(tmp_path / "aux"))
    assert loaded.auxiliary == ["accent", "mother_tongue"]
    np.testing.assert_allclose(loaded.predict_proba(tiny_population), p, atol=1e-5)
    clips = tiny_population.audios(list(range(4)))
    with pytest.raises(ValueError, match="auxiliary_y"):
        clone(ex).fit(clips, ["I", "II", "III", "IV"])
    with pytest.raises(ValueError, match="has 2 values for 4 items"):
        clone(ex).fit(clips, ["I", "II", "I", "II"], auxiliary_y={"accent": ["British"] * 2, "mother_tongue": ["English"] * 4})
    ok = clone(ex).fit(clips, ["I", "II", "I", "II"], auxiliary_y={"accent": ["British"] * 4, "mother_tongue": ["English", "Hindi"] * 2})
    assert ok.predict_proba(clips).shape == (4, 6)
    with pytest.raises(ValueError, match="does not learn auxiliary"):
        MetapropertyExtractor("gender", "voice", encoder="f0-formants", auxiliary=["accent"]).fit(tiny_population)


def test_features_are_computed_once(tiny_population, _isolated_cache):
    enc = create_voice_encoder("logmel-stats", n_mels=24)
    a = population_features(enc, tiny_population)
    assert population_features(enc, tiny_population) is a  # in-memory
    files = list((_isolated_cache / "features").glob("*.npz"))
    assert files

    clear_memory_cache()
    b = population_features(enc, tiny_population)  # from disk
    np.testing.assert_array_equal(a, b)


def test_trainable_encoder_inside_an_extractor(tiny_population, tmp_path):
    ex = MetapropertyExtractor(
        "gender", "voice", encoder="speaker-cnn", calculator="knn",
        encoder_kwargs=dict(embed_dim=8, channels=(4, 8), crop_frames=32, epochs=1), calculator_kwargs={"n_neighbors": 3},
    ).fit(tiny_population)
    loaded = MetapropertyExtractor.load(ex.save(tmp_path / "cnn"))
    assert (tmp_path / "cnn" / "encoder.safetensors").exists()
    np.testing.assert_allclose(loaded.predict_proba(tiny_population), ex.predict_proba(tiny_population), atol=1e-5)


# --------------------------------------------------------------------- extractor sets
@pytest.mark.slow
def test_quick_extractor_set_end_to_end(tiny_population, tmp_path):
    s = ExtractorSet(quick=True, progress=False)
    assert len(s.extractors) == 16
    assert {ex.calculator for ex in s.extractors if ex.metaproperty == "skin_tone"} == {"vit"}
    s.fit(tiny_population)
    # Extractors with the same encoder share one instance (its features are computed once).
    voice_vec = [ex for ex in s.extractors if ex.modality == "voice" and ex.calculator != "vit"]
    names = {ex.encoder_.name for ex in voice_vec}
    assert len(names) == 2  # pitch/formant statistics alone (age, weight), and with Mel-band statistics
    assert len({id(ex.encoder_) for ex in voice_vec}) == len(names)
    assert s.get("skin_tone", "voice").auxiliary == ("ethnicity", "accent", "mother_tongue")
    voices, faces = s.transform_voices(tiny_population), s.transform_faces(tiny_population)
    assert list(voices) == list(faces) == s.metaproperties
    for name, p in voices.items():
        assert p.shape[0] == tiny_population.voices.num_rows
        np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-6)
    loaded = ExtractorSet.load(s.save(tmp_path / "set"), progress=False)
    for name, p in loaded.transform_faces(tiny_population).items():
        np.testing.assert_allclose(p, faces[name], atol=1e-5)
    report = s.quality_report(tiny_population, n_boot=50)
    assert len(report) == 16 and {"balanced_accuracy", "ci_low", "baseline_balanced_accuracy", "ece"} <= set(report.columns)


# ------------------------------------------------------------ widget logic (chapter 4)
@pytest.fixture(scope="module")
def small_set(tiny_population):
    s = ExtractorSet(metaproperties=["gender", "skin_tone"], quick=True, progress=False)
    return s.fit(tiny_population)


def test_person_distributions(small_set, tiny_population):
    from vfmatch.widgets.metaproperties import distributions_figure, person_distributions

    sid = tiny_population.speaker_ids[2]
    table = person_distributions(small_set, tiny_population, sid, clip=1, face=1)
    assert list(table.columns) == ["metaproperty", "value", "voice", "face", "truth"]
    assert len(table) == 2 + 6
    for _, g in table.groupby("metaproperty"):
        assert g["voice"].sum() == pytest.approx(1) and g["face"].sum() == pytest.approx(1) and g["truth"].sum() == 1
    # The same numbers as transforming the whole population.
    rows = np.flatnonzero(tiny_population.voice_speakers == sid)
    p = small_set.transform_voices(tiny_population)["gender"][rows[1]]
    np.testing.assert_allclose(table.query("metaproperty == 'gender'")["voice"], p, atol=1e-6)
    with pytest.raises(IndexError):
        person_distributions(small_set, tiny_population, sid, clip=9)
    with pytest.raises(KeyError):
        person_distributions(small_set, tiny_population, "nobody")
    fig = distributions_figure(table)
    assert len(fig.data) == 4 and any("*" in str(x) for x in fig.data[0].x)


def test_attention_and_quality_widgets(small_set, tiny_population):
    from vfmatch.widgets.metaproperties import attention_figure, build_person_widget, quality_table

    voice_vit = small_set.get("skin_tone", "voice")
    fig = attention_figure(voice_vit, tiny_population.audio(0))
    assert np.asarray(fig.data[1].z).shape == np.asarray(fig.data[0].z).shape  # one weight per spectrogram cell
    lm = np.asarray(tiny_population.faces["landmarks"], dtype=np.float32)
    face_fig = attention_figure(small_set.get("skin_tone", "face"), (tiny_population.image(0), lm[0]))
    assert np.asarray(face_fig.data[1].z).shape == (64, 64)
    with pytest.raises(ValueError, match="vit"):
        attention_figure(small_set.get("gender", "voice"), tiny_population.audio(0))
    table = quality_table(small_set.quality_report(tiny_population, n_boot=20))
    assert len(table) == 4 and "confusion" not in table
    pytest.importorskip("ipywidgets")
    assert build_person_widget(small_set, tiny_population).children[1].outputs


def test_patch_projection_equals_the_strided_convolution():
    """The ViT's unfold + matmul patch embedding is timm's conv (kernel = stride), forward and backward."""
    import torch

    from vfmatch.extractors.vit import PatchProjection

    torch.manual_seed(0)
    for chans, patch, size in ((1, (64, 4), (64, 32)), (3, (8, 8), (16, 24))):
        fast = PatchProjection(chans, 6, patch)
        conv = torch.nn.Conv2d(chans, 6, kernel_size=patch, stride=patch)
        conv.load_state_dict(fast.state_dict())  # same parameter names and shapes
        x = torch.randn(5, chans, *size)
        a, b = fast(x), conv(x)
        assert a.shape == b.shape == (5, 6, size[0] // patch[0], size[1] // patch[1])
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        a.square().sum().backward()
        b.square().sum().backward()
        torch.testing.assert_close(fast.weight.grad, conv.weight.grad, rtol=1e-4, atol=1e-4)
