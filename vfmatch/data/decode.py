"""Decoding one input item -- an audio file or an image -- with a clear error for bad input.

:func:`vfmatch.load_population` plans which files to read
(:mod:`vfmatch.data.readers`), then decodes each one here:

* audio: read with soundfile, checked by
  :func:`vfmatch.data.audio_checks.validate_waveform` (at the file's own sample
  rate), mixed down (on request) and resampled to 16 kHz by the one front-end
  (:func:`vfmatch.data.media.conform_voice`, which logs each conversion),
  optionally trimmed to speech and loudness-normalised
  (:mod:`vfmatch.data.media`) and cut into segments (:mod:`vfmatch.data.preprocess`);
* images: read with PIL, checked for size and colour mode, optionally aligned
  to the ArcFace landmark template or centre-cropped and resized.

A bad item raises ``_Bad``: with ``skip_bad=True`` the loader counts it under
its ``kind`` and moves on, otherwise it is raised as a ``ValueError`` (or
``FileNotFoundError``) whose message starts with the file's name.

Book chapter: ``book/01_population.ipynb``.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
from PIL import Image, UnidentifiedImageError

from .audio_checks import WaveformError
from .population import SAMPLE_RATE
from .media import NoSpeechError, conform_voice, normalize_loudness, trim_silence
from .preprocess import align_face, segment_audio

__all__ = ["SkippedInputWarning"]

_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
_ALPHA_MODES = ("RGBA", "RGBa", "PA", "La")


class SkippedInputWarning(UserWarning):
    """Warned once per :func:`load_population` call with ``skip_bad=True``: what was skipped and why."""


@dataclass
class _Item:
    """One clip or face to decode: where it comes from and its per-item metadata."""

    speaker_id: str
    item_id: str
    where: str  # the file (or dataset row) named in messages
    source: Path | Callable[[], object]  # a path, or a function returning {"bytes", "path"}
    meta: dict = field(default_factory=dict)
    landmarks: np.ndarray | None = None  # faces only, shape (5, 2)
    listed_in: str = ""


@dataclass
class _Options:
    """The pre-processing options of :func:`load_population` (its docstring says what each does)."""

    skip_bad: bool
    mix_down: bool
    resample: bool
    segment_seconds: tuple[float, float] | None
    silence_threshold: float
    convert_rgb: bool
    min_image_size: int
    filter_faces: bool
    max_pose: float
    align_faces: bool
    image_size: int | None
    trim_silence: bool = False  # cut each clip to its speech (vfmatch.data.media.trim_silence)
    loudness: float | None = None  # normalise each clip to this many LUFS

    def key(self) -> str:
        """The options as text, for the cache key of the decoded data."""
        return json.dumps(self.__dict__, sort_keys=True, default=str)


class _Bad(Exception):
    """A problem with one input item: raised as ``error`` or counted under ``kind``."""

    def __init__(self, kind: str, message: str, error: type[Exception] = ValueError):
        super().__init__(message)
        self.kind, self.message, self.error = kind, message, error


def _problem(bad: _Bad, problems: Counter, opts: _Options) -> None:
    """Raise ``bad`` as its error, or count it under its kind when skipping bad input."""
    if not opts.skip_bad:
        raise bad.error(bad.message)
    problems[bad.kind] += 1


def _open_source(it: _Item):
    """Return something soundfile/PIL can open (path or BytesIO); missing files are bad input."""
    if isinstance(it.source, Path):
        if not it.source.is_file():
            listed = f" (listed in {it.listed_in})" if it.listed_in else ""
            raise _Bad("missing file", f"{it.where}: file not found{listed}", FileNotFoundError)
        return it.source
    value = it.source()
    if value is None:
        raise _Bad("missing file", f"{it.where}: no data", FileNotFoundError)
    if isinstance(value, dict):
        if value.get("bytes"):
            return io.BytesIO(value["bytes"])
        if value.get("path"):
            p = Path(value["path"])
            if not p.is_file():
                raise _Bad("missing file", f"{it.where}: file not found ({p})", FileNotFoundError)
            return p
    raise _Bad("missing file", f"{it.where}: no data", FileNotFoundError)


def _decode_audio(it: _Item, opts: _Options) -> list[np.ndarray]:
    """The clip as 16 kHz mono float32 samples: one array, or its segments with ``segment_seconds``."""
    src = _open_source(it)
    try:
        data, sr = sf.read(src, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as exc:
        raise _Bad("unreadable audio", f"{it.where}: cannot read audio ({exc})") from None
    if data.shape[1] > 1 and data.shape[0] > 0 and not opts.mix_down:
        raise _Bad("multi-channel audio", f"{it.where}: {data.shape[1]} channels; expected mono (pass mix_down=True to average the channels)")
    if sr != SAMPLE_RATE and not opts.resample:
        raise _Bad("wrong sample rate", f"{it.where}: sample rate {sr} Hz; expected {SAMPLE_RATE} Hz (pass resample=True to resample)")
    try:
        # The one front-end (vfmatch.data.media): down-mix, check at the file's own rate, resample; each noted.
        wave = conform_voice(data, sr, name=it.where, silence_threshold=opts.silence_threshold)
        if opts.trim_silence:
            wave = trim_silence(wave, SAMPLE_RATE, name=it.where)
        if opts.loudness is not None:
            wave = normalize_loudness(wave, SAMPLE_RATE, target_lufs=opts.loudness, name=it.where)
    except WaveformError as exc:
        raise _Bad(exc.kind, str(exc)) from None
    except NoSpeechError as exc:
        raise _Bad("no speech", str(exc)) from None
    except ValueError as exc:  # loudness not measurable (too short, or silent once gated)
        raise _Bad("unmeasurable loudness", str(exc)) from None
    if opts.segment_seconds is None:
        return [wave]
    lo, hi = opts.segment_seconds
    segments = segment_audio(wave, SAMPLE_RATE, lo, hi)
    if not segments:
        raise _Bad("audio too short", f"{it.where}: {wave.shape[0] / SAMPLE_RATE:.2f} s long, shorter than the {lo:g} s minimum segment")
    return segments


def _decode_image(it: _Item, opts: _Options):
    """Returns (image for datasets.Image, landmarks (5, 2) or None)."""
    src = _open_source(it)
    try:
        with Image.open(src) as im:
            im.load()
            mode, fmt = im.mode, im.format
            if mode == "P":
                mode = "PA" if "transparency" in im.info else "RGB"
            img = im.copy()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise _Bad("unreadable image", f"{it.where}: cannot read image ({exc})") from None
    w, h = img.size
    if min(w, h) < opts.min_image_size:
        raise _Bad("tiny image", f"{it.where}: image is {w}x{h} pixels, smaller than the {opts.min_image_size}-pixel minimum")
    if mode in _GRAY_MODES:
        if not opts.convert_rgb:
            raise _Bad("grayscale image", f"{it.where}: grayscale image (mode {mode!r}); expected RGB (pass convert_rgb=True to convert)")
    elif mode in _ALPHA_MODES:
        if not opts.convert_rgb:
            raise _Bad("RGBA image", f"{it.where}: image has an alpha channel (mode {mode!r}); expected RGB (pass convert_rgb=True to drop it)")
    lm = None if it.landmarks is None else np.asarray(it.landmarks, dtype=np.float64)
    if opts.align_faces:
        if lm is None:
            raise _Bad("face without landmarks", f"{it.where}: no landmarks, cannot align (add lm_x0..lm_y4 or pass align_faces=False)")
        arr, lm = align_face(img.convert("RGB"), lm, size=opts.image_size or 112, return_landmarks=True)
        return arr, lm
    if opts.image_size is not None:
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        s = opts.image_size / side
        img = img.convert("RGB").crop((left, top, left + side, top + side)).resize((opts.image_size, opts.image_size), Image.Resampling.BICUBIC)
        if lm is not None:
            # Pixel centres: x_out + 0.5 = (x_in + 0.5 - left) * s
            lm = (lm + 0.5 - [left, top]) * s - 0.5
        return np.asarray(img, dtype=np.uint8), lm
    if mode == "RGB" and img.mode == "RGB" and fmt in ("PNG", "JPEG") and isinstance(src, Path):
        return {"bytes": src.read_bytes(), "path": None}, lm  # keep the file's own bytes: no re-encoding
    return np.asarray(img.convert("RGB"), dtype=np.uint8), lm
