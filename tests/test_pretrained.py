"""Pretrained metaproperty models by Hub id, offline: tiny random models of the same
architecture and class names, saved locally and loaded by path through the code that
loads a Hub id; the label mapping checked on hand-made outputs."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from scipy.stats import norm

from vfmatch.extractors import (
    PRETRAINED_MODELS,
    MetapropertyExtractor,
    PretrainedExtractor,
    PretrainedLabelCalculator,
    create_extractors,
    label_matrix,
    list_extractor_presets,
    pretrained_extractors,
)
from vfmatch.features.hub import AGE_YEARS_LABEL, HubDownloadError, age_gender_model_class
from vfmatch.metaproperties import AGE_BIN_EDGES

transformers = pytest.importorskip("transformers")

# The class names (id2label, in order) of the Hub models the preset names.
VIT_AGE_CLASSES = ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70"]  # nateraw/vit-age-classifier
ETHNICITY_CLASSES = ["african", "asian", "caucasian", "hispanic", "indian"]  # cledoux42/Ethnicity_Test_v003
FACE_GENDER_CLASSES = ["female", "male"]  # rizvandwiki/gender-classification
# MMS-LID's classes are ISO 639-3 codes; a few of its 126, enough to exercise the mapping.
LID_CLASSES = ["eng", "spa", "por", "arb", "hin", "cmn", "yor", "rus", "urd", "fra"]

W2V = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, conv_dim=(16, 16, 16),
           conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, vocab_size=10)
VIT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, image_size=32, patch_size=8)


def _labels(names):
    return {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """Folders saved with save_pretrained, as a Hub download leaves them."""
    root = tmp_path_factory.mktemp("pretrained")
    torch.manual_seed(0)
    fe = transformers.Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True, return_attention_mask=True)
    # audEERING's custom head on a tiny wav2vec2.
    age_gender_model_class()(transformers.Wav2Vec2Config(**W2V)).save_pretrained(root / "age-gender")
    fe.save_pretrained(root / "age-gender")
    lid = transformers.Wav2Vec2Config(**W2V, **_labels(LID_CLASSES))
    lid.architectures = ["Wav2Vec2ForSequenceClassification"]
    transformers.Wav2Vec2ForSequenceClassification(lid).save_pretrained(root / "lid")
    fe.save_pretrained(root / "lid")
    for name, classes in (("face-age", VIT_AGE_CLASSES), ("face-gender", FACE_GENDER_CLASSES), ("face-ethnicity", ETHNICITY_CLASSES)):
        cfg = transformers.ViTConfig(**VIT, **_labels(classes))
        cfg.architectures = ["ViTForImageClassification"]
        transformers.ViTForImageClassification(cfg).save_pretrained(root / name)
    return root


def _models(root):
    return {
        ("gender", "voice"): f"hf-age-gender:{root / 'age-gender'}",
        ("age", "voice"): f"hf-age-gender:{root / 'age-gender'}",
        ("mother_tongue", "voice"): f"hf:{root / 'lid'}",
        ("gender", "face"): f"hf-image:{root / 'face-gender'}",
        ("age", "face"): f"hf-image:{root / 'face-age'}",
        ("ethnicity", "face"): f"hf-image:{root / 'face-ethnicity'}",
    }


# ------------------------------------------------------------------ the mapping
def test_label_matrix_shares_age_groups_by_years():
    m = label_matrix(VIT_AGE_CLASSES, "age")
    assert m.shape == (9, len(AGE_BIN_EDGES) + 1)
    np.testing.assert_allclose(m.sum(axis=1), 1)
    np.testing.assert_allclose(m[2, :2], [0.8, 0.2])  # 10-19: 8 years under 18, 2 years 18-19
    np.testing.assert_allclose(m[3, 2:4], [0.5, 0.5])  # 20-29: 20-24 and 25-29
    assert m[8, -1] == 1  # "more than 70" is all >64


def test_label_matrix_categorical_tables_and_other():
    eth = label_matrix(ETHNICITY_CLASSES, "ethnicity")
    assert [int(np.argmax(r)) for r in eth] == [1, 0, 2, 5, 4]  # Black, Asian, White, Latino-Hispanic, Indian
    lid = label_matrix(LID_CLASSES, "mother_tongue")
    assert lid[:8].argmax(axis=1).tolist() == list(range(8)) and not lid[8:].any()  # Urdu and French: other
    g = label_matrix([AGE_YEARS_LABEL, "female", "male", "child"], "gender")
    assert g.tolist() == [[0, 0], [0, 1], [1, 0], [0, 0]]
    with pytest.raises(ValueError, match="maps to a value"):
        label_matrix(["cat", "dog"], "gender")


def test_calculator_drops_other_mass_and_says_how_much():
    calc = PretrainedLabelCalculator(labels=LID_CLASSES, metaproperty="mother_tongue", smoothing=0.0)
    X = np.zeros((2, len(LID_CLASSES)))
    X[0, [0, 8]] = 0.5  # half English, half Urdu
    X[1, 9] = 1.0  # all French: nothing known
    calc.fit(X)
    p = calc.predict_proba(X)
    assert p[0, 0] == pytest.approx(1.0) and np.allclose(p[1], 1 / 8)
    np.testing.assert_allclose(calc.other_mass(X), [0.5, 1.0])
    with pytest.raises(ValueError, match="shape"):
        calc.predict_proba(np.zeros((1, 3)))


def test_age_in_years_becomes_a_normal_over_the_bins():
    labels = [AGE_YEARS_LABEL, "female", "male", "child"]
    X = np.array([[30.0, 0.5, 0.4, 0.1]])
    calc = PretrainedLabelCalculator(labels=labels, metaproperty="age", age_sd=5.0, smoothing=0.0).fit(X)
    expected = np.diff(norm.cdf((np.array([-np.inf, *AGE_BIN_EDGES, np.inf]) - 30) / 5))
    np.testing.assert_allclose(calc.predict_proba(X)[0], expected)
    # Fitted spread: predicted ages off by a normal error of 6 years.
    rng = np.random.default_rng(0)
    true = rng.uniform(10, 80, 400)
    Xs = np.column_stack([true + rng.normal(0, 6, 400), np.full((400, 3), 1 / 3)])
    y = np.searchsorted(AGE_BIN_EDGES, true, side="right")
    fitted = PretrainedLabelCalculator(labels=labels, metaproperty="age").fit(Xs, y)
    assert 4.5 <= fitted.sd_ <= 7.5
    with pytest.raises(ValueError, match="age_sd"):
        PretrainedLabelCalculator(labels=labels, metaproperty="age").fit(Xs, np.full(400, -1))


# ------------------------------------------------------------------ the presets
def test_presets_are_registered_and_name_the_hub_models():
    assert {"pretrained", "pretrained-voice", "pretrained-face"} <= set(list_extractor_presets())
    from vfmatch.job.prepare import EXTRACTOR_PRESETS

    assert "pretrained" in EXTRACTOR_PRESETS  # `vfmatch run --extractors pretrained` is accepted
    ex = create_extractors("pretrained", ["gender", "age", "mother_tongue", "skin_tone"], quick=True)  # nothing loaded yet
    assert ex.get("age", "voice").encoder == PRETRAINED_MODELS[("age", "voice")]
    assert isinstance(ex.get("gender", "face"), PretrainedExtractor)
    assert ex.get("skin_tone", "voice").calculator == "vit"  # no pretrained model: the default extractor
    voice_only = create_extractors("pretrained-voice", ["gender"], quick=True)
    assert isinstance(voice_only.get("gender", "voice"), PretrainedExtractor) and not isinstance(voice_only.get("gender", "face"), PretrainedExtractor)


def test_pretrained_extractors_from_local_folders(tiny_models, tiny_population, tmp_path):
    chosen = pretrained_extractors(["gender", "age", "mother_tongue", "ethnicity"], quick=True, models=_models(tiny_models))
    pre = [ex for ex in chosen if isinstance(ex, PretrainedExtractor)]
    assert len(pre) == 6
    n_values = {"gender": 2, "age": 9, "mother_tongue": 8, "ethnicity": 6}
    for ex in pre:
        ex.fit(tiny_population)
        n = tiny_population.voices.num_rows if ex.modality == "voice" else tiny_population.faces.num_rows
        p = ex.predict_proba(tiny_population)
        assert p.shape == (n, n_values[ex.metaproperty]) and np.allclose(p.sum(axis=1), 1)
    lid = next(ex for ex in pre if ex.metaproperty == "mother_tongue")
    other = lid.other_mass(tiny_population)
    assert other.shape == (tiny_population.voices.num_rows,) and ((other > 0) & (other < 1)).all()  # Urdu and French get some mass
    age = next(ex for ex in pre if ex.metaproperty == "age" and ex.modality == "voice")
    assert np.isfinite(age.calculator_.sd_) and 1 <= age.calculator_.sd_ <= 40  # fitted on the simulated ages
    # Saved and loaded as any extractor: the same distributions.
    face_age = next(ex for ex in pre if ex.metaproperty == "age" and ex.modality == "face")
    loaded = MetapropertyExtractor.load(face_age.save(tmp_path / "face-age"))
    np.testing.assert_allclose(loaded.predict_proba(tiny_population), face_age.predict_proba(tiny_population), atol=1e-6)


def test_pretrained_extractor_needs_no_ground_truth(tiny_models, tiny_population):
    unlabelled = type(tiny_population)(tiny_population.identities.assign(age=np.nan), tiny_population.voices, tiny_population.faces, {})
    ex = PretrainedExtractor("age", "voice", encoder=f"hf-age-gender:{tiny_models / 'age-gender'}", calculator_kwargs={"age_sd": 8.0})
    p = ex.fit(unlabelled).predict_proba(unlabelled)
    assert p.shape == (unlabelled.voices.num_rows, 9) and ex.class_counts_.sum() == 0
    with pytest.raises(ValueError, match="age_sd"):
        PretrainedExtractor("age", "voice", encoder=f"hf-age-gender:{tiny_models / 'age-gender'}").fit(unlabelled)


def test_missing_model_offline_is_a_quick_clear_error(monkeypatch, tiny_population):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    for key in (("age", "voice"), ("age", "face"), ("mother_tongue", "voice")):
        prefix, hub_id = PRETRAINED_MODELS[key].split(":", 1)
        missing = f"not-cached/{hub_id.split('/')[1]}"  # the same kind of model, surely not in this machine's cache
        with pytest.raises(HubDownloadError, match=missing):
            PretrainedExtractor(*key, encoder=f"{prefix}:{missing}").fit(tiny_population)
    assert time.perf_counter() - t0 < 15


def test_pretrained_set_shares_the_age_gender_model(tiny_models, tiny_population, tmp_path):
    from vfmatch.extractors import ExtractorSet

    models = {k: v for k, v in _models(tiny_models).items() if k[0] in ("gender", "age")}
    ex = ExtractorSet(pretrained_extractors(["gender", "age"], quick=True, models=models), progress=False).fit(tiny_population)
    assert ex.get("gender", "voice").encoder_ is ex.get("age", "voice").encoder_  # one model runs for both
    voices = ex.transform_voices(tiny_population)
    assert voices["gender"].shape == (tiny_population.voices.num_rows, 2) and voices["age"].shape[1] == 9
    loaded = ExtractorSet.load(ex.save(tmp_path / "set"), progress=False)
    np.testing.assert_allclose(loaded.transform_faces(tiny_population)["age"], ex.transform_faces(tiny_population)["age"], atol=1e-6)
