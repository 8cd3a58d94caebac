"""Telephone and VoIP codecs: one round trip at 8 kHz (paper 001, appendix A.2).

Paper 001 passes its test audio through the codecs of phones and VoIP networks
and re-scores its model (its Figures 7-12). This module gives each codec as one
function, :func:`encode_decode` (16 kHz in, 16 kHz out, same length):

========== ============== =========================================== =======================================
codec       bit rates      implementation                               Debian packages
========== ============== =========================================== =======================================
G.711       64 kbit/s      the ITU-T G.711 segment tables, in numpy     none
AMR-NB      4.75-12.2      libopencore-amrnb (ctypes), any of its 8       ``libopencore-amrnb0``
                           modes; else ``sox -t amr-nb -C mode``          (or ``sox libsox-fmt-all``)
SILK        6-40 kbit/s    libopus (ctypes) at 8 kHz, forced to its       ``libopus0`` (or ``ffmpeg``)
                           SILK mode; else ``ffmpeg -c:a libopus
                           -application voip`` (which cannot force it)
G.729       8 kbit/s       libbcg729 (ctypes), G.729 Annex A            ``libbcg729-0``
========== ============== =========================================== =======================================

The libraries are the ones the command-line tools use; calling them in-process
avoids one process per clip. Each round trip is aligned with its input: the
decoders lag by the encoders' look-ahead (Opus: ``OPUS_GET_LOOKAHEAD``; AMR-NB and
G.729: 5 ms), which is dropped. A codec that is not installed raises
:class:`CodecUnavailableError` with the command that installs it;
:func:`available_codecs` lists what works on this machine.

Noise, :func:`~vfmatch.evaluation.robustness.degrade` (noise, then codec) and the
sweeps live in :mod:`vfmatch.evaluation.robustness`. Book chapter:
``book/09_robustness.ipynb``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from ..data.population import SAMPLE_RATE
from ..data.preprocess import resample

__all__ = [
    "CODECS",
    "CODEC_RATE",
    "AMR_NB_MODES",
    "SILK_BITRATES",
    "CodecInfo",
    "CodecUnavailableError",
    "available_codecs",
    "codec_backend",
    "default_bitrate",
    "encode_decode",
    "g711_encode",
    "g711_decode",
]

CODEC_RATE = 8_000  # every codec here is narrowband


@dataclass(frozen=True)
class CodecInfo:
    """What the sweeps print about a codec: its name, its bit rates (kbit/s, as text)
    and the command that installs it."""

    label: str
    kbit_s: str
    install: str


CODECS: dict[str, CodecInfo] = {
    "g711_mulaw": CodecInfo("G.711 mu-law", "64", "built in (numpy)"),
    "g711_alaw": CodecInfo("G.711 A-law", "64", "built in (numpy)"),
    "amr_nb": CodecInfo("AMR-NB", "4.75-12.2", "apt-get install libopencore-amrnb0   (or: apt-get install sox libsox-fmt-all)"),
    "silk": CodecInfo("SILK (Opus)", "6-40", "apt-get install libopus0   (or: apt-get install ffmpeg)"),
    "g729": CodecInfo("G.729", "8", "apt-get install libbcg729-0"),
}

# AMR-NB's eight modes (3GPP TS 26.071): bit/s -> mode number (MR475 = 0 ... MR122 = 7);
# the number is what libopencore-amrnb's encoder and sox's -C option take.
AMR_NB_MODES: dict[int, int] = {4750: 0, 5150: 1, 5900: 2, 6700: 3, 7400: 4, 7950: 5, 10200: 6, 12200: 7}
# SILK's range as paper 001 gives it (appendix A.2: "operating between 6 to 40 kbps").
SILK_BITRATES: tuple[int, int] = (6_000, 40_000)
_DEFAULT_BITRATE = {"g711_mulaw": 64_000, "g711_alaw": 64_000, "amr_nb": 12_200, "silk": 12_000, "g729": 8_000}


def default_bitrate(codec: str) -> int:
    """The bit rate (bit/s) :func:`encode_decode` uses when none is given."""
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; known: {sorted(CODECS)}")
    return _DEFAULT_BITRATE[codec]


class CodecUnavailableError(RuntimeError):
    """A codec's library or tool is not installed; the message says how to install it."""


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
        # Left to itself, Opus switches to its CELT mode at high rates; SILK is what
        # paper 001 names, so force it (OPUS_SET_FORCE_MODE = 11002, MODE_SILK_ONLY = 1000,
        # from opus_private.h) and say it is speech (OPUS_SET_SIGNAL = 4024, VOICE = 3001).
        if lib.opus_encoder_ctl(ctypes.c_void_p(enc), ctypes.c_int(11002), ctypes.c_int(1000)) != 0:
            raise RuntimeError("libopus refused to force its SILK mode")
        lib.opus_encoder_ctl(ctypes.c_void_p(enc), ctypes.c_int(4024), ctypes.c_int(3001))
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


def _amr_library(pcm: np.ndarray, mode: int = 7) -> np.ndarray:
    lib = _load_library("amrnb")
    enc, dec = lib.Encoder_Interface_init(0), lib.Decoder_Interface_init()
    try:
        frames = _frames(pcm, 160, pad_end=CELP_DELAY)  # 20 ms
        out = np.zeros_like(frames)
        packet = np.zeros(64, dtype=np.uint8)
        for k in range(frames.shape[0]):
            n = lib.Encoder_Interface_Encode(enc, int(mode), _ptr(frames[k], ctypes.c_short), _ptr(packet, ctypes.c_uint8), 0)
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


def _amr_sox(pcm: np.ndarray, mode: int = 7) -> np.ndarray:
    padded = np.concatenate([pcm, np.zeros(CELP_DELAY, np.int16)])
    return _through_files(
        padded,
        lambda a, b: ["sox", str(a), "-C", str(int(mode)), "-t", "amr-nb", str(b)],
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
            out.append(("libopencore-amrnb", lambda pcm, br: _amr_library(pcm, AMR_NB_MODES[br])))
        if _tool_supports("sox", "amr-nb"):
            out.append(("sox", lambda pcm, br: _amr_sox(pcm, AMR_NB_MODES[br])))
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

    ``bitrate`` (bit/s): AMR-NB takes one of its modes (:data:`AMR_NB_MODES`,
    4,750-12,200; default 12,200), SILK any rate in :data:`SILK_BITRATES`
    (6,000-40,000; default 12,000); G.711 (64,000) and G.729 (8,000) have one rate.
    Returns float32 of the input's length (samples beyond [-1, 1] are clipped,
    as a 16-bit line would)."""
    br = default_bitrate(codec) if bitrate is None else int(bitrate)
    if codec == "amr_nb" and br not in AMR_NB_MODES:
        raise ValueError(f"AMR-NB has the bit rates {sorted(AMR_NB_MODES)} bit/s, got {br}")
    if codec == "silk" and not SILK_BITRATES[0] <= br <= SILK_BITRATES[1]:
        raise ValueError(f"SILK is used at {SILK_BITRATES[0]:,}-{SILK_BITRATES[1]:,} bit/s here, got {br}")
    if codec not in ("amr_nb", "silk") and br != default_bitrate(codec):
        raise ValueError(f"{CODECS[codec].label} has one bit rate, {default_bitrate(codec):,} bit/s; got {br}")
    _name, fn = codec_backend(codec, backend)
    x = np.asarray(wave, dtype=np.float64)
    x8 = resample(x, sr, CODEC_RATE)
    pcm = np.round(np.clip(x8, -1.0, 1.0) * 32767.0).astype(np.int16)
    y8 = fn(pcm, br).astype(np.float64) / 32768.0
    y = resample(y8, CODEC_RATE, sr)
    out = np.zeros(x.size, dtype=np.float64)
    out[: min(x.size, y.size)] = y[: x.size]
    return out.astype(np.float32)

