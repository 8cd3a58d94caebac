"""Audio front-ends: checked waveforms, log-Mel spectrograms, pitch and formants.

Following torchaudio, the transforms are :class:`torch.nn.Module` objects built
on pure functions:

* :func:`validate_waveform` -- the one gate every clip passes: mono, finite,
  long enough, not silent. Bad input raises a ``ValueError`` that says what is
  wrong instead of yielding a silently wrong spectrogram.
* :class:`LogMelSpectrogram` -- ``torchaudio.transforms.MelSpectrogram`` then
  ``AmplitudeToDB``: the "latent matrix in the form of a Mel spectrogram" of the
  patent (voice encoder 240), the input of the voice skin-tone ViT.
* :func:`pitch_track`, :func:`formant_track`, :func:`voice_statistics` --
  signal-level cues the field has used for decades: the fundamental frequency
  (F0, set by the vocal folds: lower for men, falling with age) and the formants
  (resonances of the vocal tract: lower in longer tracts, i.e. taller people).

All clips are 16 kHz mono float32 in [-1, 1] (``vfmatch.data.population.SAMPLE_RATE``).
Book chapter: ``book/02_voice_encoders.ipynb``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torchaudio

from ..data.audio_checks import validate_waveform
from ..data.population import SAMPLE_RATE as DEFAULT_SAMPLE_RATE
from ..utils import batches

__all__ = [
    "validate_waveform",
    "LogMelSpectrogram",
    "log_mel_batch",
    "time_windows",
    "frame_signal",
    "pitch_track",
    "lpc_coefficients",
    "formant_track",
    "voice_statistics",
    "VOICE_STAT_NAMES",
]

# ------------------------------------------------------------------------- log-Mel
class LogMelSpectrogram(torch.nn.Module):
    """Log-Mel spectrogram in decibels.

    ``forward(wave)`` maps shape (..., n_samples) to (..., n_mels, n_frames) with
    ``n_frames = 1 + n_samples // hop_length`` (centred frames). Defaults: 25 ms
    windows every 10 ms, 64 Mel bands from 50 Hz to 8 kHz, the usual choice for
    speaker and paralinguistic models.

    Parameters
    ----------
    sample_rate : int, Hz
    n_fft : int, samples per STFT window (400 = 25 ms at 16 kHz)
    hop_length : int, samples between frames (160 = 10 ms)
    n_mels : int, Mel bands
    f_min, f_max : float, Hz, band limits of the Mel filter bank
    top_db : float
        Dynamic range kept below each spectrogram's peak (quieter cells are
        clipped), so a clip's loudness does not move its spectrogram's floor.
    """

    def __init__(
        self,
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        n_fft: int = 400,
        hop_length: int = 160,
        n_mels: int = 64,
        f_min: float = 50.0,
        f_max: float | None = 8000.0,
        top_db: float = 80.0,
    ):
        super().__init__()
        self.sample_rate, self.n_fft, self.hop_length, self.n_mels = int(sample_rate), int(n_fft), int(hop_length), int(n_mels)
        self.f_min, self.f_max, self.top_db = float(f_min), f_max, float(top_db)
        # center=False: the clip is padded here instead (reflect, as torch.stft does),
        # so that a clip gives the same frames alone or zero-padded in a batch.
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=self.sample_rate,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            n_mels=self.n_mels,
            f_min=self.f_min,
            f_max=f_max,
            power=2.0,
            norm="slaney",
            mel_scale="slaney",
            center=False,
        )
        self.to_db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=self.top_db)

    def pad(self, wave: torch.Tensor) -> torch.Tensor:
        """Reflect ``n_fft // 2`` samples at both ends, so frame ``k`` is centred on sample ``k * hop_length``."""
        shape = wave.shape
        flat = wave.reshape(-1, 1, shape[-1])
        padded = torch.nn.functional.pad(flat, (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        return padded.reshape(*shape[:-1], padded.shape[-1])

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.from_padded(self.pad(wave))

    def from_padded(self, padded: torch.Tensor) -> torch.Tensor:
        """The spectrogram of waves already passed through :meth:`pad` (and perhaps zero-padded after)."""
        power = self.mel(padded)
        # torchaudio clips at top_db below the peak of each (..., C, n_mels, frames) block,
        # taking the dimension before n_mels as channels: give each wave its own block so
        # that a clip's floor never depends on the other clips of its batch.
        return self.to_db(power.reshape(-1, 1, *power.shape[-2:])).reshape(power.shape)

    def n_frames(self, n_samples: int) -> int:
        """Frames produced for a clip of ``n_samples`` samples."""
        return 1 + int(n_samples) // self.hop_length

    def extra_repr(self) -> str:
        return f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, hop_length={self.hop_length}, n_mels={self.n_mels}, f_min={self.f_min}, f_max={self.f_max}, top_db={self.top_db}"


@torch.no_grad()
def log_mel_batch(
    waves: Sequence[np.ndarray],
    transform: LogMelSpectrogram | None = None,
    *,
    batch_size: int = 32,
    validate: bool = True,
) -> list[np.ndarray]:
    """Log-Mel spectrograms of clips of different lengths, computed in batches.

    Each clip is reflect-padded at its ends (:meth:`LogMelSpectrogram.pad`),
    then zero-padded to the longest one in its batch; all are transformed
    together and cut back to their own number of frames, so each result equals
    the one-at-a-time spectrogram.

    Returns
    -------
    list of float32 arrays, each of shape (n_mels, n_frames_i), in dB.
    """
    transform = transform or LogMelSpectrogram()
    tensors = [validate_waveform(w, name=f"clip {i}") if validate else torch.as_tensor(w, dtype=torch.float32) for i, w in enumerate(waves)]
    out: list[np.ndarray] = []
    for sl in batches(len(tensors), batch_size):
        chunk = tensors[sl]
        padded = [transform.pad(t) for t in chunk]
        batch = torch.zeros(len(chunk), max(p.numel() for p in padded))
        for row, p in enumerate(padded):
            batch[row, : p.numel()] = p
        # AmplitudeToDB clips at top_db below each item's own peak, so the zeros
        # after a clip never change its frames.
        spec = transform.from_padded(batch)
        out += [spec[row, :, : transform.n_frames(t.numel())].numpy().astype(np.float32) for row, t in enumerate(chunk)]
    return out


def time_windows(spec: np.ndarray, width: int, *, hop: int | None = None) -> np.ndarray:
    """Cut a spectrogram (n_mels, n_frames) into windows of ``width`` frames.

    Windows start every ``hop`` frames (default ``width // 2``); the last window
    is aligned to the end so no frame is dropped. A clip shorter than ``width``
    is padded by repeating it (a clip of silence padding would look like a pause).

    Returns
    -------
    float32 array, shape (n_windows, n_mels, width)
    """
    spec = np.asarray(spec, dtype=np.float32)
    if spec.ndim != 2:
        raise ValueError(f"expected a spectrogram of shape (n_mels, n_frames), got {spec.shape}")
    n = spec.shape[1]
    if n == 0:
        raise ValueError("the spectrogram has no frames")
    if n < width:
        spec = np.tile(spec, (1, int(np.ceil(width / n))))[:, :width]
        n = width
    hop = max(1, int(hop or width // 2))
    starts = list(range(0, n - width + 1, hop))
    if starts[-1] != n - width:
        starts.append(n - width)
    return np.stack([spec[:, s : s + width] for s in starts])


# --------------------------------------------------------------------------- pitch
def frame_signal(wave: torch.Tensor, frame_length: int, hop_length: int) -> torch.Tensor:
    """Overlapping frames of a 1-D signal, shape (n_frames, frame_length).

    The signal is zero-padded at the end so the last samples get a frame."""
    n = wave.numel()
    if n < frame_length:
        wave = torch.nn.functional.pad(wave, (0, frame_length - n))
    else:
        extra = (-(n - frame_length)) % hop_length
        wave = torch.nn.functional.pad(wave, (0, extra))
    return wave.unfold(0, frame_length, hop_length)


def pitch_track(
    wave,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    *,
    fmin: float = 60.0,
    fmax: float = 500.0,
    frame_ms: float = 40.0,
    hop_ms: float = 10.0,
    voicing_threshold: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Fundamental frequency per frame by normalised autocorrelation.

    For each frame, the autocorrelation ``r(lag) / r(0)`` (corrected for the
    shrinking overlap) peaks at the pitch period. A frame is voiced when that
    peak exceeds ``voicing_threshold`` and the frame is not much quieter than
    the loudest ones. To avoid octave errors (the peak at twice the period is
    about as high) the shortest lag within 10 % of the best peak wins.

    Returns
    -------
    f0 : float32 array, shape (n_frames,), Hz; NaN in unvoiced frames
    strength : float32 array, shape (n_frames,), the autocorrelation peak in [0, 1]
        (a harmonics-to-noise proxy)
    """
    x = validate_waveform(wave)
    frame = int(round(sample_rate * frame_ms / 1000))
    hop = int(round(sample_rate * hop_ms / 1000))
    frames = frame_signal(x, frame, hop)
    frames = frames - frames.mean(dim=1, keepdim=True)
    n_fft = 1 << int(np.ceil(np.log2(2 * frame)))
    spec = torch.fft.rfft(frames, n=n_fft)
    ac = torch.fft.irfft(spec.real**2 + spec.imag**2, n=n_fft)[:, :frame]
    energy = ac[:, :1].clamp_min(1e-12)
    lags = torch.arange(frame, dtype=torch.float32)
    # Unbiased autocorrelation: fewer products are summed at long lags.
    nac = (ac / energy) * (frame / (frame - lags).clamp_min(1.0))
    lo, hi = int(sample_rate / fmax), min(int(sample_rate / fmin), frame - 2)
    window = nac[:, lo : hi + 1]
    best = window.max(dim=1).values
    # First lag whose value is within 10 % of the best one (octave-error guard),
    # and a local maximum.
    is_peak = torch.zeros_like(window, dtype=torch.bool)
    is_peak[:, 1:-1] = (window[:, 1:-1] >= window[:, :-2]) & (window[:, 1:-1] >= window[:, 2:])
    good = is_peak & (window >= 0.9 * best[:, None])
    has = good.any(dim=1)
    first = torch.where(has, good.float().argmax(dim=1), window.argmax(dim=1))
    lag = (first + lo).clamp(1, frame - 2)
    # Parabolic interpolation of the peak for sub-sample precision.
    rows = torch.arange(nac.shape[0])
    a, b, c = nac[rows, lag - 1], nac[rows, lag], nac[rows, lag + 1]
    denom = a - 2 * b + c
    shift = torch.where(denom.abs() > 1e-9, 0.5 * (a - c) / denom, torch.zeros_like(denom)).clamp(-0.5, 0.5)
    f0 = sample_rate / (lag.float() + shift)
    rms = energy[:, 0].sqrt()
    loud = rms > 0.05 * rms.max()
    strength = nac[rows, lag].clamp(0.0, 1.0)
    voiced = (strength >= voicing_threshold) & loud
    f0 = torch.where(voiced, f0, torch.full_like(f0, float("nan")))
    return f0.numpy().astype(np.float32), strength.numpy().astype(np.float32)


# ------------------------------------------------------------------------ formants
def lpc_coefficients(frames: torch.Tensor, order: int) -> torch.Tensor:
    """Linear-prediction coefficients of each frame (autocorrelation method).

    Solves the Yule-Walker equations with the Levinson-Durbin recursion, for
    all frames at once.

    Parameters
    ----------
    frames : tensor, shape (n_frames, frame_length), windowed
    order : int, number of poles

    Returns
    -------
    tensor, shape (n_frames, order + 1): ``a`` with ``a[:, 0] = 1`` so that
    ``x[t] ~ -sum_k a[k] x[t-k]``.
    """
    n, length = frames.shape
    n_fft = 1 << int(np.ceil(np.log2(2 * length)))
    spec = torch.fft.rfft(frames.double(), n=n_fft)
    r = torch.fft.irfft(spec.real**2 + spec.imag**2, n=n_fft)[:, : order + 1]
    r[:, 0] = r[:, 0] * (1 + 1e-9) + 1e-12  # tiny white-noise floor keeps silent frames stable
    a = torch.zeros(n, order + 1, dtype=torch.float64)
    a[:, 0] = 1.0
    err = r[:, 0].clone()
    for i in range(1, order + 1):
        acc = (a[:, :i] * r[:, 1 : i + 1].flip(1)).sum(dim=1)
        k = -acc / err
        a_prev = a.clone()
        a[:, 1 : i + 1] = a_prev[:, 1 : i + 1] + k[:, None] * a_prev[:, :i].flip(1)
        err = err * (1 - k * k)
    return a.float()


def formant_track(
    wave,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    *,
    n_formants: int = 3,
    order: int | None = None,
    frame_ms: float = 25.0,
    hop_ms: float = 10.0,
    max_bandwidth: float = 500.0,
    frames: np.ndarray | None = None,
) -> np.ndarray:
    """Formant frequencies per frame from the roots of the LPC polynomial.

    Each frame is pre-emphasised and Hamming-windowed; the LPC polynomial's
    complex roots are resonances with frequency ``angle * sr / 2pi`` and
    bandwidth ``-ln|root| * sr / pi``. Narrow resonances (bandwidth below
    ``max_bandwidth``) above 90 Hz, sorted by frequency, are the formants.

    Parameters
    ----------
    order : int, default ``2 + sample_rate // 1000`` (18 at 16 kHz)
    frames : array of frame indices to analyse (e.g. the voiced ones), optional

    Returns
    -------
    float32 array, shape (n_frames, n_formants), Hz; NaN where fewer formants were found.
    """
    x = validate_waveform(wave)
    order = int(order or 2 + sample_rate // 1000)
    x = torch.cat([x[:1], x[1:] - 0.97 * x[:-1]])  # pre-emphasis flattens the -6 dB/octave source slope
    length = int(round(sample_rate * frame_ms / 1000))
    hop = int(round(sample_rate * hop_ms / 1000))
    fr = frame_signal(x, length, hop)
    if frames is not None:
        fr = fr[torch.as_tensor(np.asarray(frames, dtype=np.int64))]
    out = np.full((fr.shape[0], n_formants), np.nan, dtype=np.float32)
    if fr.shape[0] == 0:
        return out
    a = lpc_coefficients(fr * torch.hamming_window(length, periodic=False), order).numpy().astype(np.float64)
    # Roots of all polynomials at once: eigenvalues of their companion matrices.
    companion = np.zeros((a.shape[0], order, order))
    companion[:, 0, :] = -a[:, 1:]
    companion[:, np.arange(1, order), np.arange(order - 1)] = 1.0
    roots = np.linalg.eigvals(companion)
    freq = np.angle(roots) * sample_rate / (2 * np.pi)
    bandwidth = -np.log(np.abs(roots) + 1e-12) * sample_rate / np.pi
    ok = (freq > 90.0) & (freq < sample_rate / 2 - 50) & (bandwidth < max_bandwidth)
    freq = np.where(ok, freq, np.inf)
    freq.sort(axis=1)
    found = freq[:, :n_formants]
    out[:] = np.where(np.isfinite(found), found, np.nan)
    return out


# ---------------------------------------------------------------------- statistics
VOICE_STAT_NAMES = (
    "f0_median_semitones",  # re 100 Hz
    "f0_p10_semitones",
    "f0_p90_semitones",
    "f0_std_semitones",
    "f0_jitter_percent",  # fast frame-to-frame F0 wobble, a jitter proxy
    "voiced_fraction",
    "voicing_strength",  # autocorrelation peak: a harmonics-to-noise proxy
    "h1_h2_db",  # first minus second harmonic: breathier voices have more H1
    "f1_median_hz",
    "f2_median_hz",
    "f3_median_hz",
    "f1_std_hz",
    "f2_std_hz",
    "formant_spacing_hz",  # (F3 - F1) / 2: shorter vocal tracts space formants further apart
    "spectral_centroid_hz",
    "spectral_slope_db_per_khz",
    "high_band_db",  # energy above 4 kHz relative to below (aspiration, frication)
    "energy_modulation_4hz",  # syllable-rate rhythm of the loudness envelope
    "energy_modulation_8hz",
)


def _semitones(f: np.ndarray) -> np.ndarray:
    return 12.0 * np.log2(np.asarray(f, dtype=np.float64) / 100.0)


def _harmonic_difference(x: torch.Tensor, f0: np.ndarray, frames: np.ndarray, sample_rate: int, frame: int, hop: int) -> float:
    """Median H1 - H2 (dB) over the given voiced pitch frames."""
    if frames.size == 0:
        return np.nan
    n_fft = 4096  # 3.9 Hz bins: harmonics of a 60 Hz voice stay apart
    fr = frame_signal(x, frame, hop)[torch.as_tensor(frames)] * torch.hann_window(frame)
    spec = torch.fft.rfft(fr, n=n_fft)
    mag = (spec.real**2 + spec.imag**2).numpy()
    bins = np.arange(mag.shape[1])
    out = []
    for row, f in zip(mag, f0[frames]):
        def peak(h):
            lo, hi = int((h * f * 0.9) * n_fft / sample_rate), int((h * f * 1.1) * n_fft / sample_rate) + 1
            return row[lo:hi].max() if hi > lo else np.nan
        out.append(10 * np.log10((peak(1) + 1e-12) / (peak(2) + 1e-12)))
    return float(np.nanmedian(out))


def voice_statistics(wave, sample_rate: int = DEFAULT_SAMPLE_RATE, *, max_frames: int = 80) -> np.ndarray:
    """Nineteen signal-level statistics of one clip, named in :data:`VOICE_STAT_NAMES`.

    Pitch (median, spread and range in semitones re 100 Hz, and a jitter proxy),
    voice quality (voicing strength, H1-H2, high-band energy), the first three
    formants over voiced frames, spectral centroid and slope, and how strongly
    the loudness envelope is modulated at syllable rates (4 and 8 Hz). Formants
    and harmonics are measured on at most ``max_frames`` voiced frames.
    Statistics that cannot be measured (e.g. a clip without voiced frames) are
    NaN; the calculators replace them with the training mean.

    Returns
    -------
    float32 array, shape (19,)
    """
    x = validate_waveform(wave)
    f0, strength = pitch_track(x, sample_rate)  # 40 ms frames every 10 ms
    voiced = np.isfinite(f0)
    st = _semitones(f0[voiced]) if voiced.any() else np.array([np.nan])
    # Jitter proxy: second difference of log-F0 over three voiced frames in a row
    # removes slow intonation and keeps the fast wobble.
    log_f0 = np.log(f0)
    second = np.abs(log_f0[2:] - 2 * log_f0[1:-1] + log_f0[:-2])
    second = second[np.isfinite(second)]
    jitter = 100 * float(np.median(second)) if second.size else np.nan

    idx = np.flatnonzero(voiced)
    if idx.size > max_frames:
        idx = idx[np.linspace(0, idx.size - 1, max_frames).astype(int)]
    h1_h2 = _harmonic_difference(x, f0, idx, sample_rate, int(round(sample_rate * 0.04)), int(round(sample_rate * 0.01)))
    stats = [np.median(st), np.percentile(st, 10), np.percentile(st, 90), np.std(st), jitter, voiced.mean(),
             float(strength[voiced].mean()) if voiced.any() else np.nan, h1_h2]

    # Formants on the same voiced frames (formant and pitch frames both hop 10 ms).
    n_formant_frames = frame_signal(x, int(sample_rate * 0.025), int(sample_rate * 0.01)).shape[0]
    fidx = idx[idx < n_formant_frames]
    fm = formant_track(x, sample_rate, frames=fidx) if fidx.size else np.full((1, 3), np.nan)
    with np.errstate(all="ignore"), _quiet_nan_warnings():
        med = np.nanmedian(fm, axis=0)
        sd = np.nanstd(fm, axis=0)
    stats += [med[0], med[1], med[2], sd[0], sd[1], (med[2] - med[0]) / 2]

    # Long-term spectrum: centroid, slope of the dB spectrum, energy above 4 kHz.
    spec = torch.stft(x, n_fft=512, hop_length=256, window=torch.hann_window(512), return_complex=True)
    power = (spec.real**2 + spec.imag**2).mean(dim=1).numpy().astype(np.float64)
    freqs = np.linspace(0, sample_rate / 2, power.size)
    stats.append(float((freqs * power).sum() / max(power.sum(), 1e-20)))
    band = (freqs > 100) & (freqs < 5000)
    db = 10 * np.log10(power[band] + 1e-12)
    stats.append(float(np.polyfit(freqs[band] / 1000.0, db, 1)[0]))
    stats.append(float(10 * np.log10((power[freqs >= 4000].sum() + 1e-12) / (power[(freqs > 100) & (freqs < 4000)].sum() + 1e-12))))

    # Rhythm: modulation spectrum of the 10 ms energy envelope.
    env = frame_signal(x, 160, 160).pow(2).mean(dim=1).add(1e-10).log().numpy()
    env = env - env.mean()
    mod = np.abs(np.fft.rfft(env * np.hanning(env.size))) ** 2
    mod_freqs = np.fft.rfftfreq(env.size, d=0.01)
    total = mod[(mod_freqs > 0.5) & (mod_freqs < 20)].sum() + 1e-12
    for lo, hi in ((2.5, 5.5), (5.5, 10.0)):
        stats.append(float(mod[(mod_freqs >= lo) & (mod_freqs < hi)].sum() / total))
    return np.asarray(stats, dtype=np.float32)


class _quiet_nan_warnings:
    """Silence numpy's 'All-NaN slice' warnings inside a block (NaN is the answer there)."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", category=RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)
