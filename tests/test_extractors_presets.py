"""Registries (calculators, extractor presets), scikit-learn conventions and fingerprints of extractors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

import vfmatch
from vfmatch.extractors import (
    CALCULATORS,
    Calculator,
    ExtractorSet,
    LogisticCalculator,
    MetapropertyExtractor,
    create_calculator,
    create_extractors,
    list_calculators,
    list_extractor_presets,
    register_calculator,
    register_extractor_preset,
)
from vfmatch.extractors import calculators as calculators_module
from vfmatch.extractors import extractor as extractor_module
from vfmatch.extractors import presets as presets_module
from vfmatch.features.encoders import Encoder, create_voice_encoder
from vfmatch.metaproperties import get_metaproperty

TINY_CNN = dict(embed_dim=8, channels=(4, 8), crop_frames=32, epochs=1)


# ---------------------------------------------------------------------- registries
def test_calculator_registry(monkeypatch):
    assert list_calculators()[:6] == ["logistic", "svm", "knn", "mlp", "labels", "vit"]
    with pytest.raises(TypeError):
        CALCULATORS["mine"] = LogisticCalculator  # a read-only view; register_calculator adds
    # Removed again after the test, so the registry stays as the package made it.
    monkeypatch.setitem(calculators_module._REGISTRY, "prior", None)

    @register_calculator("prior")
    class PriorCalculator(Calculator):
        """The training frequencies of the values, whatever the input."""

        def __init__(self, smoothing: float = 1e-3):
            self.smoothing = smoothing

        def _fit(self, X, y, groups):
            self.prior_ = np.bincount(y, minlength=len(self.classes_)) / len(y)

        def _predict_local(self, X):
            return np.tile(self.prior_, (len(X), 1))

    assert PriorCalculator.name == "prior" and CALCULATORS["prior"] is PriorCalculator and "prior" in list_calculators()
    p = create_calculator("prior").fit(np.zeros((4, 1)), [0, 0, 0, 2], n_values=3).predict_proba(np.zeros((2, 1)))
    np.testing.assert_allclose(p[0], [0.75, 0, 0.25], atol=1e-3)
    with pytest.raises(TypeError, match="Calculator subclass"):
        register_calculator("bad")(dict)
    with pytest.raises(KeyError, match="choose from"):
        create_calculator("forest")


def test_extractor_presets(monkeypatch):
    assert list_extractor_presets()[:2] == ["default", "fast"]
    default = create_extractors("default", ["gender", "skin_tone"], quick=True)
    assert isinstance(default, ExtractorSet) and len(default.extractors) == 4
    assert default.get("skin_tone", "voice").calculator == "vit" and default.get("skin_tone", "voice").calculator_kwargs["epochs"] == 5
    assert create_extractors("default", ["gender"], quick=False).get("gender", "voice").calculator_kwargs == {"C": 0.1}
    # "fast": the ViTs become logistic regressions on the gender extractor's features.
    fast = create_extractors("fast", ["gender", "skin_tone"], quick=True)
    assert {ex.calculator for ex in fast.extractors} == {"logistic"}
    assert fast.get("skin_tone", "face").encoder == fast.get("gender", "face").encoder == "thumbnail+ita+colours"
    # With no vector extractor to borrow from, the fallback spec is used.
    alone = create_extractors("fast", ["skin_tone"], quick=True)
    assert [ex.encoder for ex in alone.extractors] == ["f0-formants+logmel-stats", "thumbnail+ita+colours"]
    # The job's builder is the same call.
    from vfmatch.job.prepare import EXTRACTOR_PRESETS, build_extractors

    assert set(EXTRACTOR_PRESETS) >= {"default", "fast"}
    assert build_extractors(["gender"], "fast", quick=True).fingerprint() == create_extractors("fast", ["gender"], quick=True).fingerprint()
    with pytest.raises(ValueError, match="unknown extractor preset"):
        create_extractors("slow")
    # A new preset: a function of the metaproperty names and the quick setting.
    monkeypatch.setitem(presets_module._PRESETS, "knn-only", None)

    @register_extractor_preset("knn-only")
    def knn_only(metaproperties, quick):
        return [MetapropertyExtractor(n, m, encoder="f0-formants" if m == "voice" else "ita", calculator="knn")
                for n in metaproperties for m in ("voice", "face")]

    assert "knn-only" in list_extractor_presets()
    assert [ex.calculator for ex in create_extractors("knn-only", ["age"]).extractors] == ["knn", "knn"]
    assert vfmatch.create_extractors is create_extractors


# ------------------------------------------------------------- scikit-learn conventions
def test_nothing_is_built_before_fit(monkeypatch):
    def no_encoders(*args, **kwargs):
        raise AssertionError("an encoder was made before fit")

    monkeypatch.setattr(extractor_module, "create_encoder", no_encoders)
    s = ExtractorSet(quick=True, progress=False)
    s2 = create_extractors("fast", quick=True)
    for ex in s.extractors + s2.extractors:
        assert isinstance(ex.encoder, str) and not any(k.endswith("_") and not k.startswith("__") for k in vars(ex))
    assert "voice" in repr(s)


def test_a_set_shares_encoders_made_in_fit(tiny_population, tmp_path):
    extractors = [MetapropertyExtractor(n, "voice", encoder="f0-formants", calculator="logistic") for n in ("gender", "age")]
    extractors.append(MetapropertyExtractor("gender", "face", encoder="ita", calculator="logistic"))
    s = ExtractorSet(extractors, progress=False).fit(tiny_population)
    assert s.get("gender", "voice").encoder_ is s.get("age", "voice").encoder_
    assert all(isinstance(ex.encoder, str) for ex in s.extractors)  # fit leaves the parameters alone
    loaded = ExtractorSet.load(s.save(tmp_path / "set"), progress=False)
    assert loaded.get("gender", "voice").encoder_ is loaded.get("age", "voice").encoder_
    assert loaded.get("gender", "face").encoder_ is not loaded.get("gender", "voice").encoder_
    for name, p in s.transform_voices(tiny_population).items():
        np.testing.assert_allclose(loaded.transform_voices(tiny_population)[name], p)


def test_predict_proba_columns_follow_the_metaproperty_values(tiny_population):
    clips = tiny_population.audios(list(range(12)))
    ages = np.where(np.arange(12) % 2, 67.0, 24.0)  # only two of the nine age bins are seen
    ex = MetapropertyExtractor("age", "voice", encoder="f0-formants", calculator="logistic").fit(clips, ages)
    mp = get_metaproperty("age")
    assert list(ex.classes_) == list(mp.values) == ex.values_
    p = ex.predict_proba(clips)
    assert p.shape == (12, mp.n_values)
    seen = np.unique(mp.encode(ages))
    unseen = np.setdiff1d(np.arange(mp.n_values), seen)
    assert np.all(p[:, unseen] <= 1e-3 / mp.n_values + 1e-12)  # unseen values: only the smoothing mass
    assert set(p.argmax(axis=1)) <= set(seen)
    np.testing.assert_array_equal(ex.predict(clips), ex.classes_[p.argmax(axis=1)])
    assert list(ex.class_counts_[seen]) == [6, 6] and ex.class_counts_[unseen].sum() == 0


def test_clone_keeps_torch_models_out(monkeypatch, tiny_population):
    def refuse(self, memo):
        raise AssertionError("clone deep-copied an encoder")

    monkeypatch.setattr(Encoder, "__deepcopy__", refuse, raising=False)
    fixed = create_voice_encoder("logmel-stats", n_mels=24)
    ex = MetapropertyExtractor("gender", "voice", encoder=fixed, calculator_kwargs={"C": 0.5})
    twin = clone(ex)
    assert twin.encoder is fixed  # a fixed encoder is shared: fit never changes it
    assert twin.get_params()["calculator_kwargs"] == {"C": 0.5} and twin.calculator_kwargs is not ex.calculator_kwargs
    # A trainable encoder not yet fitted is made afresh, so fitting the clone leaves the original untrained.
    cnn = create_voice_encoder("speaker-cnn", **TINY_CNN)
    twin = clone(MetapropertyExtractor("gender", "voice", encoder=cnn, calculator="knn", calculator_kwargs={"n_neighbors": 3}))
    assert twin.encoder is not cnn and twin.encoder.config() == cnn.config()
    twin.fit(tiny_population)
    assert twin.encoder.is_fitted and not cnn.is_fitted
    # A fitted one is shared, and the clone is unfitted.
    again = clone(twin)
    assert again.encoder is twin.encoder and not hasattr(again, "calculator_")
    # A string encoder stays a string.
    assert clone(MetapropertyExtractor("gender", "voice")).encoder == "logmel-stats"


# ------------------------------------------------------------------------- fingerprints
def test_fingerprints_follow_calculator_and_encoder_parameters():
    def make(C=0.1, n_mels=64):
        return ExtractorSet([
            MetapropertyExtractor("gender", "voice", encoder="logmel-stats", encoder_kwargs={"n_mels": n_mels}, calculator_kwargs={"C": C}),
            MetapropertyExtractor("gender", "face", encoder="ita"),
        ], quick=True, progress=False)

    base = make()
    fp = base.fingerprint()
    assert make().fingerprint() == fp  # identical sets, identical fingerprints
    assert make(C=0.2).fingerprint() != fp  # a calculator parameter
    assert make(n_mels=32).fingerprint() != fp  # an encoder parameter
    assert ExtractorSet(make().extractors, quick=False).fingerprint() != fp  # the quick setting
    assert not any(hasattr(ex, "encoder_") for ex in base.extractors)  # valid before fit, nothing kept
    ex = base.get("gender", "voice")
    assert ex.fingerprint() == MetapropertyExtractor(**ex.get_params()).fingerprint()
    assert ex.fingerprint() != MetapropertyExtractor(**{**ex.get_params(), "calculator": "svm"}).fingerprint()
