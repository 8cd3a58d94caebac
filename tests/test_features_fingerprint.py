"""Encoder fingerprints (the keys of cached features) follow the configuration, the weights and the code."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vfmatch.features.voice as voice_module
from vfmatch.features import (
    Encoder,
    LogMelStatsEncoder,
    VoiceStatsEncoder,
    clear_memory_cache,
    create_encoder,
    create_voice_encoder,
    list_encoders,
    population_features,
    register_encoder,
    unregister_encoder,
)

SR = 16_000


def clips(n=6, seconds=0.5):
    """Harmonic tones of rising pitch with a little noise: voiced, non-silent clips."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SR)) / SR
    return [(0.2 * sum(np.sin(2 * np.pi * k * (100 + 40 * i) * t) / k for k in range(1, 6)) + 0.01 * rng.normal(size=t.size)).astype(np.float32) for i in range(n)]


def test_a_parameter_changes_the_fingerprint_and_the_cached_features(tiny_population):
    coarse, fine = create_voice_encoder("logmel-stats", n_mels=16), create_voice_encoder("logmel-stats", n_mels=32)
    assert coarse.fingerprint() != fine.fingerprint()
    assert create_voice_encoder("logmel-stats", n_mels=16).fingerprint() == coarse.fingerprint()
    clear_memory_cache()
    a = population_features(coarse, tiny_population, cache=False)
    b = population_features(fine, tiny_population, cache=False)
    # One key per configuration: the second encoder's features are computed, not the first's returned.
    n = tiny_population.voices.num_rows
    assert a.shape == (n, 4 * 16) and b.shape == (n, 4 * 32)
    assert population_features(coarse, tiny_population, cache=False) is a  # and each is then kept


def test_fitting_and_loading_weights_change_the_fingerprint():
    kw = dict(embed_dim=8, channels=(4, 8), crop_frames=16, epochs=1, batch_size=3)
    enc = create_voice_encoder("speaker-cnn", **kw)
    before = enc.fingerprint()
    enc.fit(clips(), ["a", "a", "b", "b", "c", "c"])
    fitted = enc.fingerprint()
    assert fitted != before
    # Weights loaded into a fresh encoder give it the fitted one's fingerprint; other weights another.
    other = create_voice_encoder("speaker-cnn", **kw)
    other.load_state_dict(enc.state_dict())
    assert other.fingerprint() == fitted
    with torch.no_grad():
        other.net.embed.bias.add_(1.0)
    assert other.fingerprint() != fitted


def _versions_of_an_edited_encoder():
    """The same class, by name and configuration, before and after an edit of its code
    (as when a notebook cell is edited and run again)."""
    versions = []
    for edited in (False, True):
        if not edited:

            class Scaled(LogMelStatsEncoder):
                def _encode(self, items, **kw):
                    return super()._encode(items, **kw)

        else:

            class Scaled(LogMelStatsEncoder):
                def _encode(self, items, **kw):
                    return 2 * super()._encode(items, **kw)

        versions.append(Scaled)
    return versions


def test_code_edits_change_the_fingerprint():
    parent = LogMelStatsEncoder(n_mels=16)
    before, after = (cls(n_mels=16) for cls in _versions_of_an_edited_encoder())
    assert before.config() == after.config() == parent.config()
    assert type(before).__qualname__ == type(after).__qualname__
    assert len({parent.fingerprint(), before.fingerprint(), after.fingerprint()}) == 3
    np.testing.assert_allclose(after.encode(clips(2)), 2 * before.encode(clips(2)), rtol=1e-6)


def test_an_edited_helper_function_changes_the_fingerprint(monkeypatch):
    # f0-formants does its work in audio.voice_statistics: replacing that function is a code change too.
    stats, concat = VoiceStatsEncoder(), create_voice_encoder("f0-formants+logmel-stats", n_mels=16)
    old = stats.fingerprint(), concat.fingerprint()

    def voice_statistics(wave):
        return np.zeros(len(VoiceStatsEncoder.feature_names), np.float32)

    monkeypatch.setattr(voice_module, "voice_statistics", voice_statistics)
    assert stats.fingerprint() != old[0] and concat.fingerprint() != old[1]
    assert np.all(stats.encode(clips(2)) == 0)
    monkeypatch.undo()
    assert (stats.fingerprint(), concat.fingerprint()) == old


def test_own_encoders_register_and_list():
    @register_encoder("test-clip-length")
    class ClipLength(Encoder):
        """Length of each clip in seconds: (n, 1)."""

        modality = "voice"
        dim = 1

        def __init__(self):
            super().__init__("test-clip-length")

        def _encode(self, items, *, landmarks=None, batch_size=32, progress=False):
            return np.array([[len(w) / SR] for w in items], np.float32)

    try:
        assert "test-clip-length" in list_encoders("voice") and "test-clip-length" not in list_encoders("face")
        np.testing.assert_allclose(create_encoder("voice", "test-clip-length").encode(clips(2, seconds=0.5)), [[0.5], [0.5]])
        assert create_voice_encoder("test-clip-length+f0-formants").dim == 1 + len(VoiceStatsEncoder.feature_names)
    finally:
        unregister_encoder("voice", "test-clip-length")
    assert "test-clip-length" not in list_encoders()

    class NoModality(Encoder):
        pass

    with pytest.raises(ValueError, match="modality"):
        register_encoder("no-modality")(NoModality)
    with pytest.raises(ValueError, match=r"\+"):
        register_encoder("a+b")

