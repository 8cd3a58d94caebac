"""The one waveform check: every clip that is loaded, exported or encoded passes it.

:func:`validate_waveform` says what is wrong with a clip -- not mono, empty,
NaN or infinite samples, too short, silent -- instead of letting it become a
silently wrong spectrogram. It raises :class:`WaveformError`, a ``ValueError``
whose ``kind`` names the problem, so that :func:`vfmatch.load_population`
with ``skip_bad=True`` can count what it skipped.

A bare array carries no sample rate, so the function takes one where it matters:
the shortest clip accepted is 25 ms *at that rate* (400 samples at the
population's 16 kHz, :data:`vfmatch.data.population.SAMPLE_RATE`).

Book chapters: ``book/01_population.ipynb`` (loading) and
``book/02_voice_encoders.ipynb`` (the audio front-ends).
"""

from __future__ import annotations

import numpy as np
import torch

from .population import SAMPLE_RATE

__all__ = ["validate_waveform", "WaveformError", "MIN_CLIP_SECONDS"]

# The shortest clip accepted: one 25 ms analysis window (400 samples at 16 kHz).
MIN_CLIP_SECONDS = 0.025


class WaveformError(ValueError):
    """A clip that cannot be used. ``kind`` names the problem for counts of skipped
    input: "not mono audio", "empty audio", "NaN audio", "audio too short" or "silent audio"."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


def validate_waveform(
    wave,
    *,
    name: str = "wave",
    sample_rate: int = SAMPLE_RATE,
    min_samples: int | None = None,
    silence_threshold: float = 1e-4,
) -> torch.Tensor:
    """Check one mono clip and return it as a float32 tensor of shape (n_samples,).

    Parameters
    ----------
    wave : array-like or torch.Tensor, shape (n_samples,)
        Samples in [-1, 1]. A (1, n) array is accepted as mono.
    name : str
        How the error messages refer to the clip (e.g. ``"clip 12"`` or a file).
    sample_rate : int, Hz
        The clip's sample rate (default the population's 16 kHz). It sets the
        default minimum length and the durations in the messages.
    min_samples : int, optional
        Shortest clip accepted, in samples; default :data:`MIN_CLIP_SECONDS` (25 ms)
        at ``sample_rate``: 400 samples at 16 kHz, one STFT window.
    silence_threshold : float
        A clip whose peak amplitude (full scale 1.0) is below this is silent;
        0 accepts silence.

    Raises
    ------
    WaveformError (a ValueError)
        None, not 1-D (e.g. stereo), empty, NaN/inf, too short, or silent;
        the message starts with ``name``.
    """
    sample_rate = int(sample_rate)
    if sample_rate <= 0:
        raise ValueError(f"{name}: sample_rate must be a positive number of Hz, got {sample_rate}")
    if min_samples is None:
        min_samples = int(round(MIN_CLIP_SECONDS * sample_rate))
    if wave is None:
        raise WaveformError(f"{name}: got None instead of a waveform", "empty audio")
    x = wave.detach().cpu() if isinstance(wave, torch.Tensor) else torch.as_tensor(np.asarray(wave, dtype=np.float32))
    x = x.to(torch.float32)
    if x.ndim == 2 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 1:
        raise WaveformError(
            f"{name}: expected mono audio of shape (n_samples,), got shape {tuple(x.shape)}; "
            "mix the channels first, e.g. wave.mean(axis=0)",
            "not mono audio",
        )
    n = x.numel()
    if n == 0:
        raise WaveformError(f"{name}: empty audio (0 samples)", "empty audio")
    if not np.isfinite(x.numpy()).all():  # numpy: the same test, without torch's per-op thread start-up
        raise WaveformError(f"{name}: audio contains NaN or infinite samples", "NaN audio")
    if n < min_samples:
        raise WaveformError(
            f"{name}: audio too short, {n} samples ({1000 * n / sample_rate:.1f} ms at {sample_rate} Hz); "
            f"need at least {min_samples}",
            "audio too short",
        )
    peak = float(np.abs(x.numpy()).max())
    if peak < silence_threshold:
        raise WaveformError(f"{name}: silent audio (peak amplitude {peak:.2g} below {silence_threshold:g})", "silent audio")
    return x
