"""Robustness of a matcher to noise and telephone codecs (paper 001, appendix A).

Paper 001 re-evaluates its model on audio with additive noise at three SNR
bands -- 20-30 dB (minor), 10-20 dB (medium), 0-10 dB (major) -- and passed
through the codecs of telephone and VoIP networks, alone and combined
(its Figure 7 table). This module does the same for any matcher:

* :func:`add_noise` -- white (or pink) Gaussian noise at a given SNR, or at an
  SNR drawn uniformly from a band;
* :func:`encode_decode` -- one codec round trip at 8 kHz: G.711 mu-law and
  A-law (64 kbit/s), AMR-NB 12.2 kbit/s, SILK (Opus in VoIP mode at
  8-12 kbit/s) and G.729 (8 kbit/s);
* :func:`degrade` -- noise, then codec (the noise is in the room, the codec in
  the network), back at 16 kHz and the same length;
* :func:`robustness_sweep` -- the codec x noise table, identification accuracy
  and percentile recall per condition, for any ``score_fn``;
* :func:`statistics_scorer` -- a small baseline matcher trained on clean clips,
  to sweep when no other matcher is at hand.

Codecs and where they come from
-------------------------------
========== =========================================== =======================================
codec       implementation                               Debian packages
========== =========================================== =======================================
G.711       the ITU-T G.711 segment tables, in numpy     none
AMR-NB      libopencore-amrnb (ctypes), mode MR122;       ``libopencore-amrnb0``
            else ``sox -t amr-nb -C 7``                   (or ``sox libsox-fmt-all``)
SILK        libopus (ctypes), ``OPUS_APPLICATION_VOIP``  ``libopus0`` (or ``ffmpeg``)
            at 8 kHz, 8-12 kbit/s (SILK-only there);
            else ``ffmpeg -c:a libopus -application voip``
G.729       libbcg729 (ctypes), G.729 Annex A            ``libbcg729-0``
========== =========================================== =======================================

The libraries are the ones the command-line tools use; calling them in-process
avoids one process per clip. Each round trip is aligned with its input: the
decoders lag by the encoders' look-ahead (Opus: ``OPUS_GET_LOOKAHEAD``; AMR-NB and
G.729: 5 ms), which is dropped. A codec that is not installed raises
:class:`CodecUnavailableError` with the command that installs it;
:func:`available_codecs` lists what works on this machine.

Book chapter: ``book/09_robustness.ipynb``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import soundfile as sf
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..data.population import SAMPLE_RATE
from ..data.preprocess import resample
from ..features.audio import VOICE_STAT_NAMES, voice_statistics
from ..utils import limit_threads
from ..utils import progress as progress_bar
from .identification import identification_accuracy, verification_metrics
from .percentile import percentile_recall
from .scorers import as_scorer

__all__ = [
    "CODECS",
    "DEFAULT_SNR_BANDS",
    "CodecUnavailableError",
    "available_codecs",
    "codec_backend",
    "add_noise",
    "encode_decode",
    "g711_encode",
    "g711_decode",
    "degrade",
    "snr_label",
    "robustness_sweep",
    "statistics_scorer",
]

CODEC_RATE = 8_000  # every codec here is narrowband


@dataclass(frozen=True)
class CodecInfo:
    label: str
    kbit_s: str
    install: str


CODECS: dict[str, CodecInfo] = {
    "g711_mulaw": CodecInfo("G.711 mu-law", "64", "built in (numpy)"),
    "g711_alaw": CodecInfo("G.711 A-law", "64", "built in (numpy)"),
    "amr_nb": CodecInfo("AMR-NB", "12.2", "apt-get install libopencore-amrnb0   (or: apt-get install sox libsox-fmt-all)"),
    "silk": CodecInfo("SILK (Opus VoIP)", "8-12", "apt-get install libopus0   (or: apt-get install ffmpeg)"),
    "g729": CodecInfo("G.729", "8", "apt-get install libbcg729-0"),
}
# Paper 001 appendix A.1: minor, medium and major noise.
DEFAULT_SNR_BANDS: tuple[tuple[float, float], ...] = ((20.0, 30.0), (10.0, 20.0), (0.0, 10.0))


class CodecUnavailableError(RuntimeError):
    """A codec's library or tool is not installed; the message says how to install it."""


# ---------------------------------------------------------------------------
# Noise
# ---------------------------------------------------------------------------


def snr_label(snr) -> str:
    """``None`` -> ``"clean"``, ``(20, 30)`` -> ``"20-30 dB"``, ``15`` -> ``"15 dB"``."""
    if snr is None:
        return "clean"
    if isinstance(snr, (tuple, list)):
        return f"{snr[0]:g}-{snr[1]:g} dB"
    return f"{float(snr):g} dB"


def add_noise(wave: np.ndarray, snr_db, *, seed: int = 0, noise: str = "white") -> np.ndarray:
    """Add Gaussian noise so that 10 log10(P_signal / P_noise) = ``snr_db``.

    Parameters
    ----------
    wave : float array, shape (n_samples,)
    snr_db : float, or (low, high) to draw the SNR uniformly from a band
    noise : ``"white"`` (flat spectrum) or ``"pink"`` (power falling as 1/f,
        closer to room and street noise)

    Signal power is the mean square over the whole clip. Returns float32."""
    x = np.asarray(wave, dtype=np.float64)
    rng = np.random.default_rng(seed)
    if isinstance(snr_db, (tuple, list)):
        lo, hi = float(snr_db[0]), float(snr_db[1])
        if hi < lo:
            raise ValueError(f"SNR band must be (low, high), got {snr_db}")
        snr = rng.uniform(lo, hi)
    else:
        snr = float(snr_db)
    p_signal = float(np.mean(x**2))
    if p_signal <= 0:
        raise ValueError("cannot set an SNR on a silent clip (signal power 0)")
    n = rng.standard_normal(x.size)
    if noise == "pink":
        spec = np.fft.rfft(n)
        f = np.arange(spec.size, dtype=np.float64)
        spec[1:] /= np.sqrt(f[1:])
        spec[0] = 0.0
        n = np.fft.irfft(spec, n=x.size)
    elif noise != "white":
        raise ValueError(f"noise must be 'white' or 'pink', got {noise!r}")
    n *= np.sqrt(p_signal / (10 ** (snr / 10)) / np.mean(n**2))
    return (x + n).astype(np.float32)


# ---------------------------------------------------------------------------
# G.711 (ITU-T G.711 segment tables, as in the reference g711.c)
# ---------------------------------------------------------------------------

_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


def g711_encode(pcm: np.ndarray, law: str = "mulaw") -> np.ndarray:
    """16-bit linear PCM -> 8-bit G.711 codes (``law`` = ``"mulaw"`` or ``"alaw"``)."""
    x = np.asarray(pcm).astype(np.int32)
    if law == "mulaw":
        v = x >> 2  # 14-bit magnitude range
        mask = np.where(v < 0, 0x7F, 0xFF)
        v = np.minimum(np.abs(v), 8159) + (0x84 >> 2)
        seg = np.searchsorted(_ULAW_SEG_END, v, side="left")
        code = (seg << 4) | ((v >> (np.minimum(seg, 7) + 1)) & 0xF)
        code = np.where(seg >= 8, 0x7F, code)
        return ((code ^ mask) & 0xFF).astype(np.uint8)
    if law == "alaw":
        v = x >> 3  # 13-bit
        mask = np.where(v >= 0, 0xD5, 0x55)
        v = np.where(v >= 0, v, -v - 1)
        seg = np.searchsorted(_ALAW_SEG_END, v, side="left")
        shift = np.where(seg < 2, 1, np.minimum(seg, 7))
        code = (seg << 4) | ((v >> shift) & 0xF)
        code = np.where(seg >= 8, 0x7F, code)
        return ((code ^ mask) & 0xFF).astype(np.uint8)
    raise ValueError(f"law must be 'mulaw' or 'alaw', got {law!r}")


def g711_decode(codes: np.ndarray, law: str = "mulaw") -> np.ndarray:
    """8-bit G.711 codes -> 16-bit linear PCM (int16)."""
    u = np.asarray(codes).astype(np.int32)
    if law == "mulaw":
        u = ~u & 0xFF
        t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
        return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)
    if law == "alaw":
        a = u ^ 0x55
        t = (a & 0x0F) << 4
        seg = (a & 0x70) >> 4
        t = np.where(seg == 0, t + 8, np.where(seg == 1, t + 0x108, (t + 0x108) << np.maximum(seg - 1, 0)))
        return np.where(a & 0x80, t, -t).astype(np.int16)
    raise ValueError(f"law must be 'mulaw' or 'alaw', got {law!r}")


# ---------------------------------------------------------------------------
# Library codecs through ctypes, command-line fallbacks
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _load_library(key: str):
    names = {
        "opus": ["libopus.so.0", ctypes.util.find_library("opus")],
        "amrnb": ["libopencore-amrnb.so.0", ctypes.util.find_library("opencore-amrnb")],
        "bcg729": ["libbcg729.so.0", ctypes.util.find_library("bcg729")],
    }[key]
    for name in names:
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        _declare(key, lib)
        return lib
    return None


def _declare(key: str, lib) -> None:
    c_void_p, c_int, POINTER = ctypes.c_void_p, ctypes.c_int, ctypes.POINTER
    i16, u8 = ctypes.c_int16, ctypes.c_uint8
    if key == "opus":
        lib.opus_encoder_create.restype = c_void_p
        lib.opus_encoder_create.argtypes = [ctypes.c_int32, c_int, c_int, POINTER(c_int)]
        lib.opus_encode.restype = ctypes.c_int32
        lib.opus_encode.argtypes = [c_void_p, POINTER(i16), c_int, POINTER(u8), ctypes.c_int32]
        lib.opus_decoder_create.restype = c_void_p
        lib.opus_decoder_create.argtypes = [ctypes.c_int32, c_int, POINTER(c_int)]
        lib.opus_decode.restype = c_int
        lib.opus_decode.argtypes = [c_void_p, POINTER(u8), ctypes.c_int32, POINTER(i16), c_int, c_int]
        lib.opus_encoder_ctl.restype = c_int  # variadic: arguments passed as c_int / pointers
        lib.opus_encoder_destroy.argtypes = [c_void_p]
        lib.opus_decoder_destroy.argtypes = [c_void_p]
    elif key == "amrnb":
        lib.Encoder_Interface_init.restype = c_void_p
        lib.Encoder_Interface_init.argtypes = [c_int]
        lib.Encoder_Interface_Encode.restype = c_int
        lib.Encoder_Interface_Encode.argtypes = [c_void_p, c_int, POINTER(ctypes.c_short), POINTER(u8), c_int]
        lib.Encoder_Interface_exit.argtypes = [c_void_p]
        lib.Decoder_Interface_init.restype = c_void_p
        lib.Decoder_Interface_init.argtypes = []
        lib.Decoder_Interface_Decode.argtypes = [c_void_p, POINTER(u8), POINTER(ctypes.c_short), c_int]
        lib.Decoder_Interface_exit.argtypes = [c_void_p]
    elif key == "bcg729":
        lib.initBcg729EncoderChannel.restype = c_void_p
        lib.initBcg729EncoderChannel.argtypes = [u8]
        lib.bcg729Encoder.argtypes = [c_void_p, POINTER(i16), POINTER(u8), POINTER(u8)]
        lib.closeBcg729EncoderChannel.argtypes = [c_void_p]
        lib.initBcg729DecoderChannel.restype = c_void_p
        lib.initBcg729DecoderChannel.argtypes = []
        lib.bcg729Decoder.argtypes = [c_void_p, POINTER(u8), u8, u8, u8, u8, POINTER(i16)]
        lib.closeBcg729DecoderChannel.argtypes = [c_void_p]


def _frames(pcm: np.ndarray, frame: int, pad_end: int = 0) -> np.ndarray:
    """int16 samples zero-padded to whole frames, shape (n_frames, frame)."""
    n = pcm.size + pad_end
    n_frames = -(-n // frame)
    out = np.zeros(n_frames * frame, dtype=np.int16)
    out[: pcm.size] = pcm
    return out.reshape(n_frames, frame)


def _ptr(a: np.ndarray, ctype):
    return a.ctypes.data_as(ctypes.POINTER(ctype))


def _opus_library(pcm: np.ndarray, bitrate: int, configs: list | None = None) -> np.ndarray:
    lib = _load_library("opus")
    err = ctypes.c_int()
    enc = lib.opus_encoder_create(CODEC_RATE, 1, 2048, ctypes.byref(err))  # 2048 = OPUS_APPLICATION_VOIP
    if err.value != 0 or not enc:
        raise RuntimeError(f"libopus: opus_encoder_create failed (error {err.value})")
    dec = lib.opus_decoder_create(CODEC_RATE, 1, ctypes.byref(err))
    try:
        if lib.opus_encoder_ctl(ctypes.c_void_p(enc), ctypes.c_int(4002), ctypes.c_int(int(bitrate))) != 0:  # SET_BITRATE
            raise ValueError(f"libopus refused bitrate {bitrate}")
        look = ctypes.c_int()
        lib.opus_encoder_ctl(ctypes.c_void_p(enc), ctypes.c_int(4027), ctypes.byref(look))  # GET_LOOKAHEAD
        frame = CODEC_RATE // 50  # 20 ms
        frames = _frames(pcm, frame, pad_end=look.value)
        out = np.zeros_like(frames)
        packet = np.zeros(1500, dtype=np.uint8)
        for k in range(frames.shape[0]):
            nbytes = lib.opus_encode(enc, _ptr(frames[k], ctypes.c_int16), frame, _ptr(packet, ctypes.c_uint8), packet.size)
            if nbytes < 0:
                raise RuntimeError(f"libopus: opus_encode failed (error {nbytes})")
            if configs is not None:
                configs.append(int(packet[0]) >> 3)  # TOC config: 0-11 SILK-only, 12-15 hybrid, 16-31 CELT
            got = lib.opus_decode(dec, _ptr(packet, ctypes.c_uint8), nbytes, _ptr(out[k], ctypes.c_int16), frame, 0)
            if got != frame:
                raise RuntimeError(f"libopus: opus_decode returned {got}")
        # The decoder lags the input by the encoder's look-ahead: drop it.
        return out.reshape(-1)[look.value : look.value + pcm.size]
    finally:
        lib.opus_encoder_destroy(enc)
        lib.opus_decoder_destroy(dec)


# AMR-NB and G.729 encode each frame 5 ms (40 samples) behind the newest input
# (their look-ahead), so the decoded signal lags by 40 samples: compensated below.
CELP_DELAY = 40


def _amr_library(pcm: np.ndarray) -> np.ndarray:
    lib = _load_library("amrnb")
    enc, dec = lib.Encoder_Interface_init(0), lib.Decoder_Interface_init()
    try:
        frames = _frames(pcm, 160, pad_end=CELP_DELAY)  # 20 ms
        out = np.zeros_like(frames)
        packet = np.zeros(64, dtype=np.uint8)
        for k in range(frames.shape[0]):
            n = lib.Encoder_Interface_Encode(enc, 7, _ptr(frames[k], ctypes.c_short), _ptr(packet, ctypes.c_uint8), 0)  # 7 = MR122
            if n <= 0:
                raise RuntimeError("libopencore-amrnb: encoding failed")
            lib.Decoder_Interface_Decode(dec, _ptr(packet, ctypes.c_uint8), _ptr(out[k], ctypes.c_short), 0)
        return out.reshape(-1)[CELP_DELAY : CELP_DELAY + pcm.size]
    finally:
        lib.Encoder_Interface_exit(enc)
        lib.Decoder_Interface_exit(dec)


def _g729_library(pcm: np.ndarray) -> np.ndarray:
    lib = _load_library("bcg729")
    enc, dec = lib.initBcg729EncoderChannel(0), lib.initBcg729DecoderChannel()  # 0: no VAD / DTX
    try:
        frames = _frames(pcm, 80, pad_end=CELP_DELAY)  # 10 ms -> 10 bytes
        out = np.zeros_like(frames)
        packet = np.zeros(16, dtype=np.uint8)
        length = ctypes.c_uint8()
        for k in range(frames.shape[0]):
            lib.bcg729Encoder(enc, _ptr(frames[k], ctypes.c_int16), _ptr(packet, ctypes.c_uint8), ctypes.byref(length))
            lib.bcg729Decoder(dec, _ptr(packet, ctypes.c_uint8), length.value, 0, 0, 0, _ptr(out[k], ctypes.c_int16))
        return out.reshape(-1)[CELP_DELAY : CELP_DELAY + pcm.size]
    finally:
        lib.closeBcg729EncoderChannel(enc)
        lib.closeBcg729DecoderChannel(dec)


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")


def _through_files(pcm: np.ndarray, encode: Callable[[Path, Path], list], decode: Callable[[Path, Path], list], suffix: str) -> np.ndarray:
    """Round trip through command-line tools, in a private temporary folder."""
    with tempfile.TemporaryDirectory(prefix="vfmatch-codec-") as tmp:
        src, mid, dst = Path(tmp) / "in.wav", Path(tmp) / f"coded{suffix}", Path(tmp) / "out.wav"
        sf.write(src, pcm, CODEC_RATE, subtype="PCM_16")
        _run(encode(src, mid))
        _run(decode(mid, dst))
        y, rate = sf.read(dst, dtype="int16", always_2d=False)
    if rate != CODEC_RATE:
        raise RuntimeError(f"decoder returned {rate} Hz, expected {CODEC_RATE}")
    out = np.zeros(pcm.size, dtype=np.int16)
    out[: min(pcm.size, y.size)] = y[: pcm.size]
    return out


def _amr_sox(pcm: np.ndarray) -> np.ndarray:
    padded = np.concatenate([pcm, np.zeros(CELP_DELAY, np.int16)])
    return _through_files(
        padded,
        lambda a, b: ["sox", str(a), "-C", "7", "-t", "amr-nb", str(b)],
        lambda a, b: ["sox", "-t", "amr-nb", str(a), "-e", "signed-integer", "-b", "16", "-r", str(CODEC_RATE), str(b)],
        ".amr",
    )[CELP_DELAY:]


def _opus_ffmpeg(pcm: np.ndarray, bitrate: int) -> np.ndarray:
    base = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i"]
    return _through_files(
        pcm,
        lambda a, b: base + [str(a), "-c:a", "libopus", "-application", "voip", "-b:a", str(int(bitrate)), str(b)],
        lambda a, b: base + [str(a), "-ar", str(CODEC_RATE), "-ac", "1", "-c:a", "pcm_s16le", str(b)],
        ".ogg",
    )


@functools.lru_cache(maxsize=None)
def _tool_supports(tool: str, what: str) -> bool:
    if shutil.which(tool) is None:
        return False
    cmd = ["sox", "-h"] if tool == "sox" else ["ffmpeg", "-hide_banner", "-encoders"]
    try:
        text = subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return what in text


def _backends(codec: str) -> list[tuple[str, Callable]]:
    """Working implementations of a codec, preferred first: (name, fn(pcm, bitrate))."""
    if codec in ("g711_mulaw", "g711_alaw"):
        law = codec.split("_")[1]
        return [("numpy", lambda pcm, br: g711_decode(g711_encode(pcm, law), law))]
    out = []
    if codec == "amr_nb":
        if _load_library("amrnb") is not None:
            out.append(("libopencore-amrnb", lambda pcm, br: _amr_library(pcm)))
        if _tool_supports("sox", "amr-nb"):
            out.append(("sox", lambda pcm, br: _amr_sox(pcm)))
    elif codec == "silk":
        if _load_library("opus") is not None:
            out.append(("libopus", _opus_library))
        if _tool_supports("ffmpeg", "libopus"):
            out.append(("ffmpeg", _opus_ffmpeg))
    elif codec == "g729":
        if _load_library("bcg729") is not None:
            out.append(("libbcg729", lambda pcm, br: _g729_library(pcm)))
    else:
        raise ValueError(f"unknown codec {codec!r}; known: {sorted(CODECS)}")
    return out


def codec_backend(codec: str, backend: str | None = None) -> tuple[str, Callable]:
    """The implementation used for ``codec`` (or the named ``backend``).

    Raises :class:`CodecUnavailableError` with install instructions when there is none."""
    found = _backends(codec)
    if backend is not None:
        found = [b for b in found if b[0] == backend]
    if not found:
        what = f"backend {backend!r} of " if backend else ""
        raise CodecUnavailableError(f"{what}codec {codec!r} ({CODECS[codec].label}) is not installed here; install it with: {CODECS[codec].install}")
    return found[0]


def available_codecs() -> list[str]:
    """Names of the codecs that work on this machine, in :data:`CODECS` order."""
    return [c for c in CODECS if _backends(c)]


def encode_decode(wave: np.ndarray, sr: int = SAMPLE_RATE, codec: str = "g711_mulaw", *, bitrate: int | None = None,
                  backend: str | None = None) -> np.ndarray:
    """One codec round trip: resample to 8 kHz, 16-bit, encode, decode, back to ``sr``.

    ``bitrate`` (bit/s) is used by SILK only (8,000-12,000; default 12,000).
    Returns float32 of the input's length (samples beyond [-1, 1] are clipped,
    as a 16-bit line would)."""
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; known: {sorted(CODECS)}")
    br = 12_000 if bitrate is None else int(bitrate)
    if codec == "silk" and not 8_000 <= br <= 12_000:
        raise ValueError(f"SILK is used at 8,000-12,000 bit/s here, got {br}")
    _name, fn = codec_backend(codec, backend)
    x = np.asarray(wave, dtype=np.float64)
    x8 = resample(x, sr, CODEC_RATE)
    pcm = np.round(np.clip(x8, -1.0, 1.0) * 32767.0).astype(np.int16)
    y8 = fn(pcm, br).astype(np.float64) / 32768.0
    y = resample(y8, CODEC_RATE, sr)
    out = np.zeros(x.size, dtype=np.float64)
    out[: min(x.size, y.size)] = y[: x.size]
    return out.astype(np.float32)


def degrade(wave: np.ndarray, sr: int = SAMPLE_RATE, *, codec: str | None = None, snr_db=None, seed: int = 0,
            noise: str = "white", bitrate: int | None = None, backend: str | None = None) -> np.ndarray:
    """A clip as a telephone line would deliver it: noise first, then the codec.

    Parameters
    ----------
    wave : float array, shape (n_samples,), in [-1, 1]
    sr : its sampling rate (Hz)
    codec : a key of :data:`CODECS`, or None for no codec
    snr_db : None (no noise), a float, or a (low, high) band to draw from
    seed : seeds the noise (and the SNR drawn from a band)

    Returns
    -------
    float32 array at 16 kHz, of the input's length when ``sr`` is 16 kHz
    (``round(n * 16000 / sr)`` otherwise), clipped to [-1, 1].
    """
    x = np.asarray(wave, dtype=np.float64)
    if x.ndim != 1 or x.size < 80:
        raise ValueError(f"wave must be a 1-D clip of at least 80 samples, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("wave contains NaN or inf")
    if int(sr) <= 0:
        raise ValueError(f"sr must be a positive sampling rate, got {sr}")
    if sr != SAMPLE_RATE:
        x = resample(x, int(sr), SAMPLE_RATE)
    if snr_db is not None:
        x = add_noise(x, snr_db, seed=seed, noise=noise).astype(np.float64)
    if codec is not None:
        x = encode_decode(x, SAMPLE_RATE, codec, bitrate=bitrate, backend=backend).astype(np.float64)
    return np.clip(x, -1.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------


def robustness_sweep(
    population,
    score_fn: Callable[[list, object], np.ndarray],
    *,
    codecs: Sequence[str] = tuple(CODECS),
    snr_bands: Sequence = DEFAULT_SNR_BANDS,
    include_clean: bool = True,
    seed: int = 0,
    voice_indices=None,
    max_clips: int | None = None,
    n_triplets: int = 2000,
    noise: str = "white",
    bitrate: int | None = None,
    ties: str = "half",
    rank_ties: str = "half",
    skip_unavailable: bool = False,
    progress: bool = False,
) -> pd.DataFrame:
    """The codec x noise table of paper 001 (Figure 7) for any matcher.

    Parameters
    ----------
    population : :class:`vfmatch.Population`
        Its voices are degraded; its faces are the gallery.
    score_fn : ``score_fn(clips, population) -> (n_clips, n_faces)`` similarity
        (higher = more similar); e.g. a matcher that re-extracts the voice
        metaproperties from the degraded clips.
    codecs : codec names (all of :data:`CODECS` by default)
    snr_bands : SNR bands in dB, drawn per clip (paper 001: 20-30, 10-20, 0-10)
    include_clean : also run no codec / no noise, and each codec without noise
    voice_indices, max_clips : which clips (default all; ``max_clips`` takes an
        evenly spread subset)
    n_triplets : 1:2 triplets, the same ones in every condition
    ties, rank_ties : tie rules of the 1:2 accuracy and of the percentile rank
        (:mod:`vfmatch.evaluation`); both count a tie 1/2 by default, since
        metaproperty matchers tie often and the paper's strict rank would
        reward them for it

    Returns
    -------
    pandas.DataFrame, one row per condition: ``codec`` ("none" or a name),
    ``codec_label``, ``snr`` ("clean" or "20-30 dB"), ``identification_1to2``
    with ``identification_1to2_chance``, ``percentile_mean_rank`` with
    ``percentile_mean_rank_chance``, ``recall_at_10pct``, ``auc``,
    ``n_clips``, ``seconds``.
    Every clip gets the same noise in every codec at a given band (a paired design).
    """
    codecs = list(codecs)
    unknown = [c for c in codecs if c not in CODECS]
    if unknown:
        raise ValueError(f"unknown codecs {unknown}; known: {sorted(CODECS)}")
    usable = []
    for c in codecs:
        try:
            codec_backend(c)
            usable.append(c)
        except CodecUnavailableError:
            if not skip_unavailable:
                raise
    idx = np.arange(population.voices.num_rows) if voice_indices is None else np.asarray(voice_indices, dtype=np.int64)
    if max_clips is not None and idx.size > max_clips:
        idx = idx[np.linspace(0, idx.size - 1, int(max_clips)).round().astype(np.int64)]
    clips = population.audios(idx)
    v_spk = population.voice_speakers[idx].astype(str)
    f_spk = population.face_speakers.astype(str)
    n_faces = f_spk.size

    conditions = []
    for codec in [None] + usable:
        bands = ([None] if include_clean else []) + list(snr_bands)
        conditions += [(codec, b) for b in bands]
    rows = []
    for codec, band in progress_bar(conditions, progress, "codec x noise"):
        t0 = time.perf_counter()
        band_id = -1 if band is None else list(snr_bands).index(band)
        degraded = [
            degrade(c, SAMPLE_RATE, codec=codec, snr_db=band, noise=noise, bitrate=bitrate,
                    seed=int(np.random.SeedSequence([seed, i, band_id + 1]).generate_state(1)[0]))
            for i, c in enumerate(clips)
        ]
        sim = np.asarray(score_fn(degraded, population), dtype=np.float64)
        if sim.shape != (len(degraded), n_faces):
            raise ValueError(f"score_fn returned shape {sim.shape}, expected ({len(degraded)}, {n_faces}) (clips x faces)")
        sc = as_scorer(sim)
        ident = identification_accuracy(sc, v_spk, f_spk, n_lists=n_triplets, ties=ties, seed=seed)
        pr = percentile_recall(sc, v_spk, f_spk, ties=rank_ties, seed=seed)
        auc = verification_metrics(sc, v_spk, f_spk, n_pairs=n_triplets, seed=seed)["auc"]
        rows.append({
            "codec": codec or "none",
            "codec_label": CODECS[codec].label if codec else "none",
            "snr": snr_label(band),
            "identification_1to2": ident.accuracy,
            "identification_1to2_chance": ident.chance,
            "percentile_mean_rank": pr.mean_rank,
            "percentile_mean_rank_chance": pr.chance_mean_rank,
            "recall_at_10pct": float(pr.cdf(0.1)[0]),
            "auc": auc,
            "n_clips": len(degraded),
            "seconds": round(time.perf_counter() - t0, 3),
        })
    return pd.DataFrame(rows)


def _clip_statistics(clips) -> np.ndarray:
    """The :data:`~vfmatch.features.audio.VOICE_STAT_NAMES` statistics of each clip,
    shape (n_clips, len(VOICE_STAT_NAMES)); a row of NaN where nothing is measurable."""
    rows = []
    # Per-clip tensors are small: more threads only add overhead (a lot when other work shares the CPU).
    with limit_threads(1):
        for c in clips:
            try:
                rows.append(voice_statistics(np.asarray(c, dtype=np.float32), SAMPLE_RATE))
            except ValueError:  # silent or too short after degradation: nothing measurable
                rows.append(np.full(len(VOICE_STAT_NAMES), np.nan, dtype=np.float32))
    return np.stack(rows)


def statistics_scorer(train_population, metaproperties: Sequence[str] = ("gender", "age", "ethnicity", "mother_tongue", "accent"),
                      *, C: float = 0.3) -> Callable:
    """A small baseline matcher for the sweep, trained on *clean* clips.

    For each metaproperty, a logistic regression maps the signal statistics of
    a clip (the 19 of :func:`vfmatch.features.audio.voice_statistics`: pitch,
    voice quality, formants, spectral centroid and slope, rhythm; a clip with
    nothing measurable gets the training means) to a distribution over the metaproperty's
    values. A face is known by its labels, so the score of (clip, face) is
    ``sum_m log P_m(face's value of m | clip)`` (floored at log 1e-3). Codecs and
    noise shift the statistics away from what the regressions saw in training:
    the sweep then shows the cost of training on clean audio only.

    Returns ``score_fn(clips, population) -> (n_clips, n_faces)``; its ``models``
    attribute holds the fitted scikit-learn pipelines."""
    X = _clip_statistics(train_population.audios())
    models = {}
    for name in metaproperties:
        y = train_population.labels(name, "voice")
        known = y >= 0
        if len(np.unique(y[known])) < 2:
            raise ValueError(f"metaproperty {name!r}: the training clips show fewer than two values")
        models[name] = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(C=C, max_iter=2000)).fit(X[known], y[known])

    def score_fn(clips, population) -> np.ndarray:
        Xc = _clip_statistics(clips)
        S = np.zeros((len(clips), population.faces.num_rows))
        for name, model in models.items():
            logp = np.log(np.clip(model.predict_proba(Xc), 1e-3, 1.0))
            classes = list(model.classes_)
            label = population.labels(name, "face")
            col = np.array([classes.index(v) if v in classes else -1 for v in label])
            S += np.where(col[None, :] >= 0, logp[:, np.maximum(col, 0)], np.log(1e-3))
        return S

    score_fn.models = models
    return score_fn
