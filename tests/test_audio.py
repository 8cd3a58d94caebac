"""Audio front-ends: input checks, log-Mel spectrograms, pitch and formants."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch

from vfmatch.features.audio import (
    VOICE_STAT_NAMES,
    LogMelSpectrogram,
    formant_track,
    frame_signal,
    log_mel_batch,
    lpc_coefficients,
    pitch_track,
    time_windows,
    validate_waveform,
    voice_statistics,
)

SR = 16_000


def vowel(f0=120.0, formants=((700, 80), (1200, 90), (2600, 120)), seconds=1.0, noise=1e-3, seed=0):
    """A steady vowel: a glottal pulse train through second-order resonators."""
    n = int(seconds * SR)
    src = np.zeros(n)
    src[(np.arange(0, seconds, 1 / f0) * SR).astype(int)] = 1.0
    x = src
    for freq, bw in formants:
        r = np.exp(-np.pi * bw / SR)
        x = scipy.signal.lfilter([1.0], [1.0, -2 * r * np.cos(2 * np.pi * freq / SR), r * r], x)
    x = 0.5 * x / np.abs(x).max()
    return (x + noise * np.random.default_rng(seed).normal(size=n)).astype(np.float32)


# --------------------------------------------------------------------------- checks
def test_validate_accepts_mono_and_row_vector():
    x = vowel(seconds=0.2)
    assert validate_waveform(x).shape == (x.size,)
    assert validate_waveform(x[None]).shape == (x.size,)
    assert validate_waveform(torch.as_tensor(x)).dtype == torch.float32


@pytest.mark.parametrize(
    "wave, message",
    [
        (np.zeros(0, np.float32), "empty"),
        (np.zeros(16000, np.float32), "silent"),
        (np.full(16000, np.nan, np.float32), "NaN"),
        (np.r_[np.ones(100), np.inf, np.ones(1000)].astype(np.float32), "NaN or inf"),
        (np.random.default_rng(0).normal(size=(2, 16000)).astype(np.float32), "mono"),
        (np.random.default_rng(0).normal(size=(16000, 2)).astype(np.float32), "mono"),
        (np.ones(100, np.float32), "at least"),
        (None, "None"),
    ],
)
def test_validate_rejects_bad_waves(wave, message):
    with pytest.raises(ValueError, match=message):
        validate_waveform(wave, name="clip 3")


def test_error_names_the_clip():
    with pytest.raises(ValueError, match="clip 7"):
        validate_waveform(np.zeros(1000), name="clip 7")


# ------------------------------------------------------------------------- log-Mel
def test_log_mel_shape_and_units():
    m = LogMelSpectrogram(n_mels=40, hop_length=160)
    x = torch.as_tensor(vowel(seconds=0.5))
    s = m(x)
    assert s.shape == (40, m.n_frames(x.numel())) == (40, 1 + 8000 // 160)
    assert torch.isfinite(s).all()
    assert float(s.max() - s.min()) <= m.top_db + 1e-3  # dynamic range clipped at top_db


def test_log_mel_gain_is_a_shift_in_db():
    m = LogMelSpectrogram()
    x = torch.as_tensor(vowel(seconds=0.5))
    diff = m(10 * x) - m(x)
    assert torch.allclose(diff, torch.full_like(diff, 20.0), atol=1e-2)  # 10x amplitude = +20 dB


def test_log_mel_batch_equals_one_at_a_time():
    m = LogMelSpectrogram()
    clips = [vowel(seconds=s, seed=i) for i, s in enumerate((0.3, 0.55, 0.41))]
    batched = log_mel_batch(clips, m, batch_size=2)
    for clip, spec in zip(clips, batched):
        alone = m(torch.as_tensor(clip)).numpy()
        assert spec.shape == alone.shape
        np.testing.assert_allclose(spec, alone, atol=1e-3)


def test_log_mel_batch_rejects_bad_clip_by_index():
    with pytest.raises(ValueError, match="clip 1"):
        log_mel_batch([vowel(seconds=0.2), np.zeros(4000)])


def test_time_windows_cover_the_clip():
    spec = np.arange(64 * 300, dtype=np.float32).reshape(64, 300)
    w = time_windows(spec, 128)
    assert w.shape[1:] == (64, 128)
    np.testing.assert_array_equal(w[0], spec[:, :128])
    np.testing.assert_array_equal(w[-1], spec[:, -128:])  # last window aligned to the end
    short = time_windows(spec[:, :50], 128)
    assert short.shape == (1, 64, 128)
    np.testing.assert_array_equal(short[0, :, 50:100], spec[:, :50])  # padded by repetition
    with pytest.raises(ValueError):
        time_windows(spec[0], 128)


# ------------------------------------------------------------------ pitch, formants
def test_frame_signal_shapes():
    frames = frame_signal(torch.arange(1000.0), 400, 160)
    assert frames.shape[1] == 400
    assert float(frames[1, 0]) == 160.0


@pytest.mark.parametrize("f0", [95.0, 140.0, 220.0])
def test_pitch_track_finds_f0(f0):
    track, strength = pitch_track(vowel(f0=f0))
    voiced = np.isfinite(track)
    assert voiced.mean() > 0.8
    assert abs(np.median(track[voiced]) - f0) / f0 < 0.02
    assert strength[voiced].mean() > 0.8


def test_pitch_track_calls_noise_unvoiced():
    noise = np.random.default_rng(0).normal(scale=0.1, size=SR).astype(np.float32)
    track, _ = pitch_track(noise)
    assert np.isfinite(track).mean() < 0.2


def test_lpc_recovers_an_autoregressive_process():
    rng = np.random.default_rng(0)
    a = [1.0, -1.3, 0.7]  # a stable AR(2) process
    x = scipy.signal.lfilter([1.0], a, rng.normal(size=20000))
    est = lpc_coefficients(torch.as_tensor(x[None], dtype=torch.float32), 2)[0].numpy()
    np.testing.assert_allclose(est, a, atol=0.03)


def test_formants_of_a_synthetic_vowel():
    fm = formant_track(vowel(formants=((500, 80), (1500, 100), (2500, 120))))
    med = np.nanmedian(fm, axis=0)
    np.testing.assert_allclose(med, [500, 1500, 2500], rtol=0.05)


def test_voice_statistics_names_and_values():
    stats = voice_statistics(vowel(f0=200.0, seconds=1.5))
    assert stats.shape == (len(VOICE_STAT_NAMES),) == (19,)
    named = dict(zip(VOICE_STAT_NAMES, stats))
    assert abs(named["f0_median_semitones"] - 12 * np.log2(2.0)) < 0.3  # 200 Hz = 12 st above 100 Hz
    assert named["voiced_fraction"] > 0.8
    assert 600 < named["f1_median_hz"] < 800


def test_voice_statistics_of_an_unvoiced_clip_are_nan_not_errors():
    noise = np.random.default_rng(1).normal(scale=0.1, size=SR).astype(np.float32)
    named = dict(zip(VOICE_STAT_NAMES, voice_statistics(noise)))
    assert named["voiced_fraction"] < 0.2
    assert np.isfinite(named["spectral_centroid_hz"])


def test_log_mel_floor_does_not_depend_on_the_batch():
    """top_db clips below each clip's own peak, not the loudest clip of the batch."""
    import torch

    from vfmatch.features.audio import LogMelSpectrogram, log_mel_batch

    rng = np.random.default_rng(0)
    loud = rng.normal(0, 0.5, 16000).astype(np.float32)
    quiet = (rng.normal(0, 1e-3, 12000) * np.linspace(0, 1, 12000) ** 4).astype(np.float32)  # needs its own floor
    tf = LogMelSpectrogram()
    together = log_mel_batch([loud, quiet], tf)
    alone = log_mel_batch([quiet], tf)[0]
    np.testing.assert_allclose(together[1], alone, atol=1e-4)
    np.testing.assert_allclose(alone, tf(torch.as_tensor(quiet)).numpy(), atol=1e-4)
    assert alone.min() >= alone.max() - tf.top_db - 1e-3
