"""Real media in: the one front-end for voice files and face photos.

Every place that takes a recording or a photo from outside the simulator goes
through here: the commands on files (``vfmatch match``, ``rank``, ``compare``,
``fuse``), :meth:`vfmatch.extractors.ExtractorSet.predict_voices` /
``predict_faces`` and :func:`vfmatch.load_population` (its resampling and
down-mixing). Each conversion is *said*: a note on the ``vfmatch.data.media``
logger (level INFO; the commands print these notes on the terminal), never a
silent assumption.

Voices (book chapter 13, "Your own recordings and photos")
    1. :func:`read_audio` -- any format the audio backend (libsndfile, through
       soundfile) reads: WAV, FLAC, OGG, MP3, AIFF, ...; at the file's own
       sample rate and channel count. Nothing is written back.
    2. :func:`conform_voice` -- channels averaged to mono and the rate brought
       to 16 kHz (:data:`~vfmatch.data.population.SAMPLE_RATE`, with
       :func:`vfmatch.data.preprocess.resample`), each with a note. A bare array
       has no sample rate, so this function demands one.
    3. :func:`trim_silence` (optional) -- voice-activity detection with Silero
       VAD (a small neural network whose weights ship inside the ``silero-vad``
       wheel; ``data_cards/silero_vad.md``): the clip is cut from the first to
       the last stretch of speech. No speech at all is an error naming the file.
    4. :func:`normalize_loudness` (optional) -- gain to a target integrated
       loudness in LUFS (ITU-R BS.1770-4, measured by ``pyloudnorm``).

    Steps 3 and 4 are off unless asked for: the simulator's models were trained
    on untrimmed clips whose level varies from person to person, and a
    front-end must do to new input what was done to the training input.

Faces
    :func:`read_image` reads JPEG, PNG and anything else Pillow reads, in any
    mode (grayscale, palette, alpha, 16-bit, CMYK), applies the EXIF rotation
    of phone photos and converts to 8-bit RGB, with a note. :func:`load_face`
    puts the face on a common canvas: with the five landmarks a
    ``vfmatch population`` export lists in its ``faces/metadata.csv``
    (:func:`export_landmarks`), or else found by the dlib detector
    (:func:`vfmatch.data.faces.align_photo`; a photo without a face is an error
    naming the file).

Simulated or real?
    :func:`simulated_export` says whether a file lies in a folder that
    ``vfmatch population`` wrote from the simulator (its ``info.json``). The
    commands use it to warn when models trained on simulated people meet
    other input: what they say about a real person means nothing.
"""

from __future__ import annotations

import functools
import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..utils import limit_threads
from .audio_checks import validate_waveform
from .faces import align_photo
from .layout import IMAGE_SUFFIXES, LANDMARK_COLUMNS, LAYOUT
from .population import SAMPLE_RATE
from .preprocess import ARCFACE_SIZE, ARCFACE_TEMPLATE, align_face, resample, similarity_transform, transform_landmarks

__all__ = [
    "AUDIO_SUFFIXES",
    "NoSpeechError",
    "VoiceInput",
    "FaceInput",
    "read_audio",
    "conform_voice",
    "trim_silence",
    "loudness_lufs",
    "normalize_loudness",
    "load_voice",
    "read_image",
    "landmarks_table",
    "export_landmarks",
    "load_face",
    "simulated_export",
    "is_media_file",
    "SIMULATOR",
]

logger = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".aiff", ".aif", ".au", ".caf", ".w64")
SIMULATOR = "vfmatch.simulator"  # the ``generator`` the simulator writes into Population.info and info.json
CANVAS_SIZE, CANVAS_ZOOM = 224, 0.6  # the faces' common canvas: wide enough for every encoder's own crop
_MEDIA_EXTRA = 'pip install "vfmatch[media]" (silero-vad and pyloudnorm)'


class NoSpeechError(ValueError):
    """A recording in which the voice-activity detector finds no speech."""


@dataclass
class VoiceInput:
    """A voice ready for the extractors (:func:`load_voice`).

    wave : float32 (n_samples,) at 16 kHz, mono; source : the file;
    sample_rate, channels : what the file had; notes : each conversion made."""

    wave: np.ndarray
    source: str
    sample_rate: int
    channels: int
    notes: list[str] = field(default_factory=list)


@dataclass
class FaceInput:
    """A face on the common canvas (:func:`load_face`).

    image : uint8 (size, size, 3); landmarks : (5, 2) pixels in ``image`` (left
    eye, right eye, nose tip, left and right mouth corner); points : (K, 2), the
    five then, for a detected face, dlib's 65 others (K = 70; for morphing);
    source : the file; detected : True when found by the detector, False when
    the landmarks came from an export's metadata; notes : each conversion made."""

    image: np.ndarray
    landmarks: np.ndarray
    points: np.ndarray
    source: str
    detected: bool
    notes: list[str] = field(default_factory=list)


def _note(notes: list[str], text: str) -> None:
    notes.append(text)
    logger.info(text)


# ---------------------------------------------------------------------- voices
def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """A sound file as it is: float32 samples (n_samples, n_channels) and its sample rate in Hz.

    Raises FileNotFoundError / ValueError naming the file when it is missing,
    unreadable (corrupt, or a format libsndfile does not know), or empty."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such audio file")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as err:
        raise ValueError(f"{path}: cannot be read as audio ({err})") from None
    if data.shape[0] == 0:
        raise ValueError(f"{path}: the audio file holds no samples")
    return data, int(sr)


def conform_voice(wave, sample_rate: int | None, *, name: str = "clip", notes: list[str] | None = None,
                  silence_threshold: float = 1e-4) -> np.ndarray:
    """Bring a clip to what the extractors take: mono, 16 kHz, float32 (n_samples,).

    Parameters
    ----------
    wave : array (n_samples,) or (n_samples, n_channels)
        Samples in [-1, 1]; channels (the smaller axis of a 2-D array, at
        most 8) are averaged, with a note.
    sample_rate : int, Hz
        The clip's rate. Required: a bare array does not say it, and a 48 kHz
        clip read as 16 kHz sounds three times lower (a woman becomes a man).
    name : how notes and errors name the clip (a file name, ``"clip 3"``)
    notes : a list the notes are appended to (they are logged either way)
    silence_threshold : peak amplitude below which the clip is silent (0 accepts silence)

    Raises ValueError (:class:`~vfmatch.data.audio_checks.WaveformError`)
    naming the clip when it is empty, NaN, too short or silent.
    """
    notes = [] if notes is None else notes
    if sample_rate is None:
        raise ValueError(f"{name}: no sample rate given; a bare array does not carry one (pass sample_rate= in Hz)")
    sr = int(sample_rate)
    x = np.asarray(wave, dtype=np.float32)
    if x.ndim == 2 and min(x.shape) > 1:
        axis = int(np.argmin(x.shape))
        if x.shape[axis] > 8:
            raise ValueError(f"{name}: shape {x.shape} looks like neither (n_samples,) nor (n_samples, n_channels)")
        _note(notes, f"{name}: mixed {x.shape[axis]} channels down to mono")
        x = x.mean(axis=axis)
    elif x.ndim == 2:
        x = x.reshape(-1)
    # Checked at its own rate, before resampling: the minimum length is 25 ms of it.
    x = validate_waveform(x, name=name, sample_rate=sr, silence_threshold=silence_threshold).numpy()
    if sr != SAMPLE_RATE:
        _note(notes, f"{name}: resampled from {sr} Hz to {SAMPLE_RATE} Hz")
        x = resample(x, sr, SAMPLE_RATE)
    return x


@functools.lru_cache(maxsize=1)
def _vad_model():
    """Silero VAD's TorchScript model, loaded once from the silero-vad wheel (no download)."""
    threads = torch.get_num_threads()
    try:
        import silero_vad  # optional dependency (the "media" extra), imported only when trimming
    except ImportError:
        raise ImportError(f"voice-activity trimming needs silero-vad: {_MEDIA_EXTRA}") from None
    finally:
        torch.set_num_threads(threads)  # importing silero_vad sets torch to one thread; undo that
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice: not the user's concern
        model = silero_vad.load_silero_vad()
    return model, silero_vad.get_speech_timestamps


def trim_silence(wave: np.ndarray, sample_rate: int = SAMPLE_RATE, *, pad_seconds: float = 0.1, threshold: float = 0.5,
                 name: str = "clip", notes: list[str] | None = None) -> np.ndarray:
    """Cut a clip to the span from its first to its last stretch of speech.

    Silero VAD scores 32 ms frames for speech (probability above ``threshold``);
    stretches shorter than 250 ms are ignored. Pauses inside the span are kept,
    so the rhythm of speech is not changed.

    Parameters
    ----------
    wave : float32 (n_samples,), mono at ``sample_rate`` (8 or 16 kHz)
    pad_seconds : silence kept before the first and after the last speech, in s
    threshold : speech probability above which a frame is speech

    Returns float32 (n_trimmed,). Raises :class:`NoSpeechError` naming the clip
    when no speech is found.
    """
    notes = [] if notes is None else notes
    sr = int(sample_rate)
    if sr not in (8000, 16000):
        raise ValueError(f"{name}: trim_silence works at 8 or 16 kHz, got {sr} Hz; conform_voice first")
    model, timestamps = _vad_model()
    x = np.asarray(wave, dtype=np.float32)
    # One thread: the model runs frame by frame, and a second thread competing for a busy
    # core made it 20-50 times slower in our measurements on a 2-core machine.
    with limit_threads(1), torch.inference_mode():
        spans = timestamps(torch.from_numpy(np.ascontiguousarray(x)), model, sampling_rate=sr, threshold=float(threshold))
        model.reset_states()
    if not spans:
        raise NoSpeechError(f"{name}: no speech found by the voice-activity detector ({x.shape[0] / sr:.2f} s of audio)")
    pad = int(round(pad_seconds * sr))
    a, b = max(0, spans[0]["start"] - pad), min(x.shape[0], spans[-1]["end"] + pad)
    if b - a < x.shape[0]:
        _note(notes, f"{name}: trimmed to speech, {a / sr:.2f}-{b / sr:.2f} s of {x.shape[0] / sr:.2f} s")
    return x[a:b].copy()


def loudness_lufs(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Integrated loudness of a mono clip in LUFS (ITU-R BS.1770-4: K-weighted,
    gated mean power of 400 ms blocks), measured by ``pyloudnorm``."""
    try:
        import pyloudnorm  # optional dependency (the "media" extra), imported only when measuring
    except ImportError:
        raise ImportError(f"loudness normalisation needs pyloudnorm: {_MEDIA_EXTRA}") from None
    return float(pyloudnorm.Meter(int(sample_rate)).integrated_loudness(np.asarray(wave, dtype=np.float64)))


def normalize_loudness(wave: np.ndarray, sample_rate: int = SAMPLE_RATE, *, target_lufs: float = -23.0,
                       name: str = "clip", notes: list[str] | None = None) -> np.ndarray:
    """Scale a clip to ``target_lufs`` integrated loudness (-23 LUFS: EBU R 128).

    If the gain would push a sample past full scale, the clip is scaled to a
    peak of 0.99 instead (a quieter result, never clipped), with a note.
    Needs at least 0.4 s of audio (one measuring block)."""
    notes = [] if notes is None else notes
    x = np.asarray(wave, dtype=np.float32)
    sr = int(sample_rate)
    if x.shape[0] < int(0.4 * sr):
        raise ValueError(f"{name}: {x.shape[0] / sr:.2f} s is too short to measure loudness (at least 0.4 s)")
    level = loudness_lufs(x, sr)
    if not np.isfinite(level):
        raise ValueError(f"{name}: loudness cannot be measured (silent after gating)")
    gain = 10.0 ** ((float(target_lufs) - level) / 20.0)
    peak = float(np.max(np.abs(x))) * gain
    if peak > 0.99:
        gain *= 0.99 / peak
        _note(notes, f"{name}: loudness {level:.1f} LUFS; scaled by {gain:.3g} (peak-limited, short of {target_lufs:g} LUFS)")
    else:
        _note(notes, f"{name}: loudness {level:.1f} LUFS normalised to {target_lufs:g} LUFS")
    return (x * gain).astype(np.float32)


def load_voice(path: str | Path, *, trim: bool = False, loudness: float | None = None, min_seconds: float = 0.5) -> VoiceInput:
    """A voice file through the whole front-end: read, mono, 16 kHz, then
    optionally trimmed to speech (``trim``) and normalised to ``loudness`` LUFS.

    ``min_seconds``: the shortest result accepted (the extractors' features
    need about half a second). Every error names the file; the file is only read.
    """
    path = Path(path)
    data, sr = read_audio(path)
    notes: list[str] = []
    wave = conform_voice(data, sr, name=str(path), notes=notes)
    if trim:
        wave = trim_silence(wave, SAMPLE_RATE, name=str(path), notes=notes)
    if loudness is not None:
        wave = normalize_loudness(wave, SAMPLE_RATE, target_lufs=loudness, name=str(path), notes=notes)
    if wave.shape[0] < int(min_seconds * SAMPLE_RATE):
        raise ValueError(f"{path}: {wave.shape[0] / SAMPLE_RATE:.2f} s of audio; at least {min_seconds:g} s of speech is needed")
    return VoiceInput(wave, str(path), sr, int(data.shape[1]), notes)


# ---------------------------------------------------------------------- faces
def read_image(path: str | Path, *, notes: list[str] | None = None) -> np.ndarray:
    """An image file as uint8 RGB (H, W, 3): EXIF rotation applied, any mode converted, with a note.

    Raises FileNotFoundError / ValueError naming the file."""
    notes = [] if notes is None else notes
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such image file")
    try:
        with Image.open(path) as im:
            im.load()
            upright = ImageOps.exif_transpose(im)
            if im.getexif().get(0x0112, 1) not in (1, None):  # EXIF tag 274: Orientation; 1 = as stored
                _note(notes, f"{path}: rotated upright as its EXIF orientation says")
            mode = upright.mode
            if mode != "RGB":
                what = {"L": "grayscale", "LA": "grayscale with alpha", "RGBA": "RGB with alpha", "P": "palette",
                        "CMYK": "CMYK", "I;16": "16-bit grayscale", "I": "32-bit grayscale", "1": "black-and-white"}.get(mode, mode)
                _note(notes, f"{path}: converted from {what} (mode {mode!r}) to 8-bit RGB")
            rgb = upright.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise ValueError(f"{path}: cannot be read as an image ({err})") from None
    return np.asarray(rgb, dtype=np.uint8)


def landmarks_table(folder: str | Path) -> dict[str, np.ndarray]:
    """file name (relative to ``folder``) -> (5, 2) landmarks, from the folder's
    ``metadata.csv`` when it has the columns ``vfmatch population`` writes
    (``file_name``, ``lm_x0`` ... ``lm_y4``); empty otherwise."""
    table = Path(folder) / "metadata.csv"
    if not table.is_file():
        return {}
    try:
        df = pd.read_csv(table)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"{table}: cannot be read as a CSV table ({err})") from None
    if "file_name" not in df or not set(LANDMARK_COLUMNS) <= set(df.columns):
        return {}
    rows = df.dropna(subset=list(LANDMARK_COLUMNS))
    return {str(f): r.reshape(5, 2) for f, r in zip(rows["file_name"], rows[list(LANDMARK_COLUMNS)].to_numpy(np.float64))}


def export_landmarks(path: str | Path, *, levels: int = 3) -> np.ndarray | None:
    """The five landmarks (5, 2) an export lists for this image file, or None.

    Looks in the ``metadata.csv`` of the image's folder and up to ``levels``
    folders above it (an export lists ``faces/<speaker>/<face>.png`` in
    ``faces/metadata.csv``)."""
    path = Path(path).resolve()
    folder = path.parent
    for _ in range(levels):
        known = landmarks_table(folder)
        key = path.relative_to(folder).as_posix()
        if key in known:
            return known[key]
        if folder.parent == folder:
            break
        folder = folder.parent
    return None


def _canvas_template(size: int, zoom: float) -> np.ndarray:
    """The ArcFace five-point template shrunk towards the centre by ``zoom``, for a ``size`` canvas."""
    return ((ARCFACE_TEMPLATE - ARCFACE_SIZE / 2) * float(zoom) + ARCFACE_SIZE / 2) * (int(size) / ARCFACE_SIZE)


def load_face(path: str | Path, *, landmarks: np.ndarray | None = None, detect: bool | None = None,
              size: int = CANVAS_SIZE, zoom: float = CANVAS_ZOOM, canvas: bool = True) -> FaceInput:
    """A face photo on the common canvas: read (:func:`read_image`), then aligned
    by its five landmarks so that they land on the (zoomed) ArcFace template.

    Parameters
    ----------
    path : the image file (never modified)
    landmarks : (5, 2) pixel landmarks of the file, if known; default those an
        export lists (:func:`export_landmarks`), else the detector's
    detect : True forces the detector even when landmarks are listed
    size, zoom : the canvas side in pixels and the template's zoom (0.6 keeps
        hair and jaw in view, so every encoder's own crop lies inside)
    canvas : False keeps an image whose landmarks are known as it is, with its
        own landmarks: exactly what extractors trained on that export saw. A
        detected face is always cut out onto the canvas.

    Raises ValueError naming the file when it is unreadable or holds no face.
    """
    notes: list[str] = []
    img = read_image(path, notes=notes)
    lm = None if detect else (landmarks if landmarks is not None else export_landmarks(path))
    template = _canvas_template(size, zoom)
    if lm is None:
        photo = align_photo(img, path=str(path), size=size, zoom=zoom)
        if photo.n_faces > 1:
            _note(notes, f"{path}: {photo.n_faces} faces found; the largest is used")
        return FaceInput(photo.image, photo.landmarks, photo.morph_points, str(path), True, notes)
    lm = np.asarray(lm, dtype=np.float64)
    if lm.shape != (5, 2) or not np.all(np.isfinite(lm)):
        raise ValueError(f"{path}: landmarks must be five finite (x, y) points, got shape {lm.shape}")
    if not canvas:
        return FaceInput(img, lm, lm, str(path), False, notes)
    image = align_face(img, lm, template=template, size=size)
    moved = transform_landmarks(lm, similarity_transform(lm, template))
    return FaceInput(image, moved, moved, str(path), False, notes)


# ---------------------------------------------------------------------- provenance
def simulated_export(path: str | Path, *, levels: int = 4) -> Path | None:
    """The root of the simulated ``vfmatch population`` export holding ``path``, or None.

    An export's root has an ``info.json`` with ``"layout": "vfmatch-population/..."``
    and ``"generator": "vfmatch.simulator"`` (:mod:`vfmatch.data.export`); the
    file must lie inside it, up to ``levels`` folders down. A copy of a
    simulated file saved elsewhere (or converted) is not recognised: it is
    then treated as outside input, which errs on the side of the warning."""
    folder = Path(path).resolve().parent
    for _ in range(levels):
        info = folder / "info.json"
        if info.is_file():
            try:
                doc = json.loads(info.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError, OSError):
                return None
            layout = str(doc.get("layout", "")).split("/")[0] if isinstance(doc, dict) else ""
            if layout == LAYOUT.split("/")[0] and doc.get("generator") == SIMULATOR:
                return folder
            return None
        if folder.parent == folder:
            break
        folder = folder.parent
    return None


def is_media_file(path: Path, kind: str) -> bool:
    """Whether ``path`` has a suffix of ``kind`` (``"audio"`` or ``"image"``)."""
    return path.suffix.lower() in (AUDIO_SUFFIXES if kind == "audio" else IMAGE_SUFFIXES)
