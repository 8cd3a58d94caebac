"""Tests of the source-filter voice synthesiser (vfmatch.simulator.voices).

Acoustic checks measure the audio with simple, independent estimators
(autocorrelation F0, spectral centroid, energy-envelope peaks) rather than
trusting the synthesiser's own metadata."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.signal import find_peaks, welch

from vfmatch.metaproperties import ACCENTS, MOTHER_TONGUES
from vfmatch.simulator.traits import draw_identities
from vfmatch.simulator.voices import (
    ACCENT_PROFILES,
    speaker_voice,
    speech_profile,
    synthesize_clip,
    synthesize_clips,
)

SR = 16000


@pytest.fixture(scope="module")
def traits():
    return draw_identities(8, seed=11)


@pytest.fixture(scope="module")
def batch(traits):
    return synthesize_clips(traits, 2, seed=0, clip_seconds=(1.0, 2.0))


def _neutral(traits, **changes):
    """Copies of ``traits`` with a zero voice latent and the given columns overwritten."""
    out = traits.copy()
    out["voice_latent"] = [np.zeros(8, np.float32)] * len(out)
    for column, value in changes.items():
        out[column] = value
    return out


def _f0_autocorrelation(x, sr=SR):
    """Median F0 (Hz) of the louder 40 ms frames, from the autocorrelation peak in 60-400 Hz."""
    hop, win = sr // 100, sr // 25
    frames = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), win)[::hop]
    energy = (frames ** 2).mean(1)
    frames = frames[energy > 0.1 * energy.max()]
    frames = frames - frames.mean(1, keepdims=True)
    ac = np.fft.irfft(np.abs(np.fft.rfft(frames, 2 * win)) ** 2)[:, :win]
    lo, hi = sr // 400, sr // 60
    return float(np.median(sr / (lo + ac[:, lo:hi].argmax(1))))


def _spectral_centroid(x, sr=SR):
    """Centroid (Hz) of the long-term power spectrum between 300 Hz and 5 kHz."""
    f, p = welch(x, sr, nperseg=1024)
    band = (f > 300) & (f < 5000)
    return float((f[band] * p[band]).sum() / p[band].sum())


def _envelope_peak_rate(x, sr=SR):
    """Peaks of the 10 ms energy envelope (>= 6 dB prominence) per second of non-silent audio:
    a crude syllable-rate estimate."""
    hop = sr // 100
    frames = x[: len(x) // hop * hop].astype(np.float64).reshape(-1, hop)
    db = np.convolve(10 * np.log10((frames ** 2).mean(1) + 1e-12), np.ones(3) / 3, "same")
    peaks, _ = find_peaks(db, prominence=6, distance=8)
    return len(peaks) / ((db > db.max() - 35).sum() / 100)


def test_output_format(traits, batch):
    clips, meta = batch
    assert len(clips) == len(meta) == 2 * len(traits)
    # identity-major order and clip ids
    assert meta["speaker_id"].tolist() == [s for s in traits["speaker_id"] for _ in range(2)]
    assert meta["clip_id"].iloc[3] == f"{traits['speaker_id'].iloc[1]}_v01"
    required = {"speaker_id", "clip_id", "duration_s", "f0_mean_hz", "snr_db", "loudness_db", "jitter_pct", "shimmer_pct"}
    assert required <= set(meta.columns)
    for clip, duration in zip(clips, meta["duration_s"]):
        assert clip.dtype == np.float32 and clip.ndim == 1
        assert 1.0 <= len(clip) / SR <= 2.0 and len(clip) == round(duration * SR)
        assert np.all(np.isfinite(clip)) and np.abs(clip).max() <= 0.99
        assert np.sqrt(np.mean(clip.astype(np.float64) ** 2)) > 1e-3  # not silent
    numeric = meta.select_dtypes("number")
    assert numeric.shape[1] >= 10 and np.isfinite(numeric.to_numpy()).all()
    assert meta["snr_db"].between(15, 40).all() and meta["loudness_db"].between(-45, -10).all()


def test_deterministic_and_seed_dependent(traits, batch):
    clips, meta = batch
    again, meta_again = synthesize_clips(traits, 2, seed=0, clip_seconds=(1.0, 2.0))
    assert all(np.array_equal(a, b) for a, b in zip(clips, again))
    pd.testing.assert_frame_equal(meta, meta_again)
    other, _ = synthesize_clips(traits.iloc[:2], 1, seed=1, clip_seconds=(1.0, 2.0))
    assert not np.array_equal(other[0][:SR], clips[0][:SR])


def test_more_identities_or_clips_leave_others_unchanged(traits, batch):
    clips, _ = batch
    fewer, _ = synthesize_clips(traits.iloc[:3], 1, seed=0, clip_seconds=(1.0, 2.0))
    assert all(np.array_equal(fewer[i], clips[2 * i]) for i in range(3))


def test_speaker_voice_follows_traits(traits):
    row = _neutral(traits).iloc[0].copy()
    voice = lambda **kw: speaker_voice({**row.to_dict(), **kw})  # noqa: E731
    man, woman = voice(gender="male", age=30, height=176), voice(gender="female", age=30, height=163)
    assert 110 < man.f0_hz < 130 and 195 < woman.f0_hz < 225
    assert abs(man.vtl_cm - 17.0) < 0.3 and abs(woman.vtl_cm - 14.5) < 0.3
    assert voice(gender="male", age=13, height=150).f0_hz > 1.5 * man.f0_hz  # before the voice breaks
    assert voice(gender="female", age=75, height=163).f0_hz < woman.f0_hz - 15  # F0 falls in older women
    assert voice(gender="male", age=75, height=176).f0_hz > man.f0_hz  # ... and rises a little in older men
    old = voice(gender="male", age=75, height=176)
    assert old.jitter_pct > man.jitter_pct and old.shimmer_pct > man.shimmer_pct and old.breathiness > man.breathiness
    assert woman.breathiness > man.breathiness
    heavy = voice(gender="male", age=30, height=176, bmi=38)
    assert 0.9 * man.f0_hz < heavy.f0_hz < man.f0_hz  # a mild BMI effect
    with pytest.raises(ValueError, match="gender"):
        voice(gender="unknown")


def test_measured_f0_higher_for_women(traits):
    men = _neutral(traits.iloc[:3], gender="male", age=30.0)
    women = _neutral(traits.iloc[:3], gender="female", age=30.0)
    clips_m, meta_m = synthesize_clips(men, 2, seed=0, clip_seconds=(2.0, 2.5))
    clips_w, meta_w = synthesize_clips(women, 2, seed=0, clip_seconds=(2.0, 2.5))
    f0_m = np.array([_f0_autocorrelation(c) for c in clips_m])
    f0_w = np.array([_f0_autocorrelation(c) for c in clips_w])
    assert np.all((f0_m > 85) & (f0_m < 170)) and np.all((f0_w > 165) & (f0_w < 300))
    assert np.median(f0_w) > 1.5 * np.median(f0_m)
    # the metadata agrees with the estimate (which favours loud, often pitch-accented frames)
    assert np.allclose(f0_m, meta_m["f0_mean_hz"], rtol=0.2) and np.allclose(f0_w, meta_w["f0_mean_hz"], rtol=0.2)


def test_taller_speaker_has_lower_formants(traits):
    # Same seed and row index -> same words, channel and noise; only the vocal-tract length changes.
    short, _ = synthesize_clips(traits.iloc[:4].assign(height=155.0), 2, seed=0, clip_seconds=(2.0, 2.5))
    tall, meta = synthesize_clips(traits.iloc[:4].assign(height=195.0), 2, seed=0, clip_seconds=(2.0, 2.5))
    ratio = np.mean([_spectral_centroid(c) for c in tall]) / np.mean([_spectral_centroid(c) for c in short])
    assert ratio < 0.93
    assert meta["vtl_cm"].gt(0).all()


def test_accents_differ(traits):
    latin, meta_latin = synthesize_clips(traits.assign(accent="Latin American", mother_tongue="Spanish"), 2, seed=0)
    chinese, meta_chinese = synthesize_clips(traits.assign(accent="Chinese", mother_tongue="Mandarin"), 2, seed=0)
    # syllable-timed Spanish-accented English is faster than careful, tonal Chinese-accented English
    rate_latin = np.mean([_envelope_peak_rate(c) for c in latin])
    rate_chinese = np.mean([_envelope_peak_rate(c) for c in chinese])
    assert rate_latin > 1.15 * rate_chinese
    assert meta_latin["syllable_rate"].mean() > 1.15 * meta_chinese["syllable_rate"].mean()
    # lexical tones widen the F0 distribution
    assert meta_chinese["f0_std_st"].mean() > 1.3 * meta_latin["f0_std_st"].mean()


def test_profiles_cover_registry_and_mother_tongue_leaks():
    assert set(ACCENT_PROFILES) == set(ACCENTS)
    for accent in ACCENTS:
        for tongue in MOTHER_TONGUES:
            profile = speech_profile(accent, tongue)
            assert profile["rate"] > 0 and profile["vowels"] and profile["onsets"] and profile["codas"]
    native, spanish = speech_profile("General American", "English"), speech_profile("General American", "Spanish")
    assert spanish["rate"] > native["rate"] and spanish["stress"] < native["stress"]
    with pytest.raises(ValueError, match="accent"):
        speech_profile("Martian", "English")
    with pytest.raises(ValueError, match="mother_tongue"):
        speech_profile("British", "Klingon")


def test_clean_clip_and_other_sample_rate(traits):
    voice = speaker_voice(traits.iloc[0])
    profile = speech_profile(traits["accent"].iloc[0], traits["mother_tongue"].iloc[0])
    audio, meta = synthesize_clip(voice, profile, 8000, np.random.default_rng(0), 8000, recording=False)
    assert audio.shape == (8000,) and audio.dtype == np.float32 and np.isinf(meta["snr_db"])
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 0.99 and np.abs(audio).max() > 0.01
    clips, _ = synthesize_clips(traits.iloc[:2], 1, seed=0, clip_seconds=(1.0, 1.0), sample_rate=22050)
    assert [len(c) for c in clips] == [22050, 22050]


def test_bad_input_is_rejected(traits):
    with pytest.raises(ValueError, match="accent"):
        synthesize_clips(traits.drop(columns="accent"), 1, seed=0)
    with pytest.raises(ValueError, match="clips_per_identity"):
        synthesize_clips(traits, 0, seed=0)
    with pytest.raises(ValueError, match="clip_seconds"):
        synthesize_clips(traits, 1, seed=0, clip_seconds=(2.0, 1.0))
    with pytest.raises(ValueError, match="accent"):
        synthesize_clips(traits.assign(accent="Martian"), 1, seed=0)
    with pytest.raises(ValueError, match="sample_rate"):
        synthesize_clips(traits.iloc[:2], 1, seed=0, sample_rate=4000)
