"""Voice encoders: from 16 kHz mono clips to a spectrogram or a vector.

The patent's voice encoder 240, four ways (registered in
:mod:`vfmatch.features.encoders`; made with ``create_voice_encoder(name)``):

=================  ===================================  =========================================
name               output                               what it is
=================  ===================================  =========================================
``logmel``         list of (n_mels, n_frames_i), dB     the log-Mel spectrogram of each clip
``logmel-stats``   (n, 4 * n_mels)                      mean/std over time of bands and deltas
``f0-formants``    (n, 19), semitones / Hz / ...        measured pitch, formant, rhythm statistics
``speaker-cnn``    (n, embed_dim)                       small CNN trained to tell speakers apart
=================  ===================================  =========================================

Frames are 25 ms windows every 10 ms (``n_fft=400``, ``hop_length=160`` at
16 kHz). The front-ends themselves are in :mod:`vfmatch.features.audio`.
Book chapter: ``book/02_voice_encoders.ipynb``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torchaudio
from torch import nn

from ..config import default_device
from ..utils import batches, parallel_map, progress as progress_bar
from .audio import VOICE_STAT_NAMES, LogMelSpectrogram, log_mel_batch, time_windows, voice_statistics
from .encoders import Encoder, register_encoder
from .training import IdentityNetEncoder

__all__ = ["LogMelEncoder", "LogMelStatsEncoder", "VoiceStatsEncoder", "SpeakerCNNEncoder"]


@register_encoder("logmel")
class LogMelEncoder(Encoder):
    """The log-Mel spectrogram of each clip: a list of (n_mels, n_frames) arrays in dB.

    The "latent matrix in the form of a Mel spectrogram" that the patent feeds
    to a vision transformer for the voice skin-tone metaproperty."""

    modality = "voice"
    output = "matrix"

    def __init__(self, n_mels: int = 64, n_fft: int = 400, hop_length: int = 160, f_min: float = 50.0, f_max: float = 8000.0):
        super().__init__("logmel", n_mels=n_mels, n_fft=n_fft, hop_length=hop_length, f_min=f_min, f_max=f_max)
        self.frontend = LogMelSpectrogram(n_mels=n_mels, n_fft=n_fft, hop_length=hop_length, f_min=f_min, f_max=f_max)

    def _encode(self, items, *, landmarks=None, batch_size=32, progress=False):
        out = []
        for sl in progress_bar(batches(len(items), batch_size), progress, "log-Mel", None):
            out += log_mel_batch(items[sl], self.frontend, batch_size=batch_size, validate=False)
        return out


@register_encoder("logmel-stats")
class LogMelStatsEncoder(Encoder):
    """Mean and standard deviation over time of each log-Mel band and of its delta.

    A classic, training-free utterance descriptor: ``4 * n_mels`` numbers. The
    per-band means carry the long-term spectrum (formants, tilt); the deltas
    carry how fast it moves (speaking rate, articulation). The mean over all
    bands is removed from the band means so the clip's loudness does not count."""

    modality = "voice"

    def __init__(self, n_mels: int = 64, n_fft: int = 400, hop_length: int = 160, f_min: float = 50.0, f_max: float = 8000.0):
        super().__init__("logmel-stats", n_mels=n_mels, n_fft=n_fft, hop_length=hop_length, f_min=f_min, f_max=f_max)
        self.frontend = LogMelSpectrogram(n_mels=n_mels, n_fft=n_fft, hop_length=hop_length, f_min=f_min, f_max=f_max)

    @property
    def dim(self) -> int:
        return 4 * self.kwargs["n_mels"]

    def _encode(self, items, *, landmarks=None, batch_size=32, progress=False):
        rows = []
        for sl in progress_bar(batches(len(items), batch_size), progress, "log-Mel stats", None):
            for spec in log_mel_batch(items[sl], self.frontend, batch_size=batch_size, validate=False):
                s = torch.as_tensor(spec)
                # Frames more than 50 dB below the clip's loudest are pauses/noise floor.
                frame_level = s.max(dim=0).values
                keep = frame_level > frame_level.max() - 50
                s = s[:, keep] if keep.sum() >= 3 else s
                d = torchaudio.functional.compute_deltas(s[None])[0]
                mean = s.mean(dim=1)
                rows.append(torch.cat([mean - mean.mean(), s.std(dim=1), d.mean(dim=1), d.std(dim=1)]).numpy())
        return np.stack(rows).astype(np.float32)


@register_encoder("f0-formants")
class VoiceStatsEncoder(Encoder):
    """Nineteen measured statistics per clip (:func:`vfmatch.features.audio.voice_statistics`):
    pitch in semitones, voicing, formants F1-F3, spectral centroid and slope,
    syllable-rate rhythm. NaN marks what could not be measured; calculators
    impute it."""

    modality = "voice"
    dim = len(VOICE_STAT_NAMES)
    feature_names = VOICE_STAT_NAMES

    def __init__(self):
        super().__init__("f0-formants")

    def _encode(self, items, *, landmarks=None, batch_size=32, progress=False):
        # Clip by clip, on every core: pitch and formant tracking is per-clip Python work.
        rows = parallel_map(voice_statistics, items, show_progress=progress, desc="F0/formants")
        return np.stack(rows).astype(np.float32)


class _SpeakerNet(nn.Module):
    """Conv blocks over (1, n_mels, frames), then statistics pooling over time: (B, n_mels, T) -> (B, embed_dim)."""

    def __init__(self, n_mels: int, channels: Sequence[int], embed_dim: int):
        super().__init__()
        layers, c_in = [], 1
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c_in = c
        self.conv = nn.Sequential(*layers)
        freq_out = n_mels // (2 ** len(channels))
        self.embed = nn.Linear(2 * c_in * freq_out, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x[:, None])
        h = h.flatten(1, 2)  # (B, C * F, T')
        return self.embed(torch.cat([h.mean(dim=2), h.std(dim=2)], dim=1))


@register_encoder("speaker-cnn")
class SpeakerCNNEncoder(IdentityNetEncoder):
    """A small trainable speaker encoder (voice encoder 240 of the patent): (n, embed_dim).

    A 3-block CNN over log-Mel crops with statistics pooling, trained to tell
    the training speakers apart (:mod:`vfmatch.features.training`: like an
    x-vector or ResNet speaker model at toy scale), with random crops of
    ``crop_frames`` frames as augmentation. At encoding time each clip is cut
    into overlapping windows of ``crop_frames`` and the window embeddings are
    averaged. Fast on a CPU: a few hundred clips train in tens of seconds."""

    modality = "voice"

    def __init__(
        self,
        embed_dim: int = 128,
        n_mels: int = 64,
        crop_frames: int = 128,
        channels: Sequence[int] = (16, 32, 64),
        epochs: int = 15,
        batch_size: int = 32,
        lr: float = 3e-3,
        seed: int = 0,
        device: str | None = None,
    ):
        channels = tuple(int(c) for c in channels)
        super().__init__(
            "speaker-cnn", embed_dim=embed_dim, n_mels=n_mels, crop_frames=crop_frames, channels=list(channels),
            epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device,
        )
        self.frontend = LogMelSpectrogram(n_mels=n_mels, n_fft=400, hop_length=160, f_min=50.0, f_max=8000.0)
        self.net = _SpeakerNet(n_mels, channels, embed_dim)  # untrained until fit()

    def _spectrograms(self, waves) -> list[np.ndarray]:
        # Remove each clip's mean level: loudness is a recording property, not a speaker one.
        return [s - s.mean() for s in log_mel_batch(waves, self.frontend, validate=False)]

    def _training_inputs(self, items, landmarks):
        return self._spectrograms(items)

    def _augmented_batch(self, inputs, indices, rng):
        width = self.kwargs["crop_frames"]
        out = []
        for i in indices:
            s = inputs[i]
            if s.shape[1] <= width:
                out.append(time_windows(s, width)[0])
            else:
                start = rng.integers(0, s.shape[1] - width + 1)
                out.append(s[:, start : start + width])
        return torch.as_tensor(np.stack(out)) / 20.0  # dB / 20: inputs of order one

    @torch.no_grad()
    def _encode(self, items, *, landmarks=None, batch_size=32, progress=False):
        device = default_device(self.kwargs["device"])
        self.net.to(device).eval()
        width = self.kwargs["crop_frames"]
        rows = []
        for sl in progress_bar(batches(len(items), batch_size), progress, "speaker-cnn", None):
            windows = [time_windows(s, width) for s in self._spectrograms(items[sl])]
            emb = self.net(torch.as_tensor(np.concatenate(windows)).to(device) / 20.0).cpu()
            bounds = np.cumsum([0] + [len(w) for w in windows])
            rows += [emb[a:b].mean(dim=0).numpy() for a, b in zip(bounds[:-1], bounds[1:])]
        self.net.cpu()
        return np.stack(rows).astype(np.float32)
