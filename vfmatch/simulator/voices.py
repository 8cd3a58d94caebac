"""Source-filter speech synthesis: the voices of the simulated population.

Speech is modelled the textbook way (Fant's source-filter theory):

    speech = glottal source  *  vocal-tract filter  *  lip radiation  (+ noise sources)

* **Source.** The vocal folds open and close once per period ``1/F0``. The
  glottal air flow of one cycle is a Rosenberg pulse (a raised-cosine opening,
  a quarter-cosine closing, then closed); its time derivative includes the +6
  dB/octave lip radiation. Cycle-to-cycle period noise is *jitter*, amplitude
  noise is *shimmer*; a breathy voice leaks turbulent *aspiration* noise and
  keeps the folds open longer (larger open quotient, steeper spectral tilt).
* **Filter.** The vocal tract is a tube closed at the glottis; its resonances
  (formants) scale as ``1 / length`` (a uniform tube has F_n = (2n-1) c / 4L).
  Vowels and consonants move the formants; frication noise (s, sh, f, bursts)
  is shaped by the small cavity in front of the constriction.
* **Content.** A clip is phrases of CV(C) syllables separated by pauses. The
  accent sets the vowel inventory, the consonants, the rhythm (stress-timed
  English lengthens stressed and reduces unstressed syllables; syllable-timed
  accents keep syllables even), the syllable rate and the intonation (pitch
  range, declination, final rises, lexical tones for Chinese and Nigerian).
  The mother tongue leaks through: 30 % of the numeric style comes from the
  mother tongue's own accent, so a Spanish speaker with a General American
  accent still speaks slightly faster than a native one.
* **Recording.** Each clip gets a random level, a gentle microphone/channel
  colouring (high-pass, tilt, one peak, low-pass) and background noise at a
  random SNR.

Filtering happens frame by frame in the STFT domain (8 ms hop at 16 kHz):
each windowed frame of excitation is multiplied by that frame's spectral
envelope (product of formant resonances), then overlap-added. This makes a
time-varying filter with a few numpy calls per clip.

Traits -> voice (per identity, no randomness besides ``voice_latent``):
``F0`` from gender, age and BMI, ``VTL`` from height, gender and age,
jitter/shimmer/breathiness and an F0 tremor from gender and age (breathiness and a darker
spectrum also with BMI), speaking rate slowing with age; ``voice_latent`` dims: 0 F0,
1 vocal-tract length, 2 F1, 3 F2/F3, 4 pitch range, 5 speaking rate,
6 breathiness/jitter/shimmer, 7 spectral tilt.

The numbers are rough, plausible values from the phonetics literature
(Peterson & Barney 1952 vowels, typical F0 and perturbation norms), not a
model fitted to any real population. Book chapter: ``book/01_population.ipynb``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import scipy.fft
from scipy.ndimage import convolve1d
from scipy.signal import lfilter

from ..data.population import SAMPLE_RATE
from ..metaproperties import ACCENTS, MOTHER_TONGUES
from ..utils import parallel_map
from .traits import L1_ACCENT  # the accent each mother tongue carries into English

__all__ = ["synthesize_clips", "synthesize_clip", "speaker_voice", "speech_profile", "Voice",
           "ACCENT_PROFILES", "VOWELS", "CONSONANTS", "FRAME_RATE"]

FRAME_RATE = 125  # analysis frames per second (8 ms hop): about one glottal cycle
REF_VTL_CM = 17.0  # VTL at which the (adult male) reference formants below hold
_STREAM = 7001  # tags the voice random stream, apart from the trait and face streams
L1_TRANSFER = 0.3  # share of the numeric speaking style that comes from the mother tongue

# Vowel targets (F1, F2, F3) in Hz for an adult male (Peterson & Barney 1952, and
# close-mid /e o/, schwa and Russian /ɨ/ placed between them).
VOWELS = {
    "i": (270, 2290, 3010), "I": (390, 1990, 2550), "e": (420, 2050, 2600), "E": (530, 1840, 2480),
    "ae": (660, 1720, 2410), "a": (730, 1090, 2440), "V": (640, 1190, 2390), "O": (570, 840, 2410),
    "o": (450, 850, 2450), "U": (440, 1020, 2240), "u": (300, 870, 2240), "3r": (490, 1350, 1690),
    "@": (500, 1450, 2450), "1": (320, 1500, 2400),
}
# Consonants: manner, formant locus (F1, F2, F3) that transitions point to,
# voiced?, frication centre and bandwidth (Hz, adult male), frication level.
CONSONANTS = {
    "p": ("stop", (250, 900, 2300), False, 1200, 1500, 0.25), "b": ("stop", (250, 900, 2300), True, 1200, 1500, 0.2),
    "t": ("stop", (300, 1800, 2700), False, 4000, 1500, 0.3), "d": ("stop", (300, 1800, 2700), True, 4000, 1500, 0.25),
    "k": ("stop", (300, 2100, 2500), False, 2200, 800, 0.3), "g": ("stop", (300, 2100, 2500), True, 2200, 800, 0.25),
    "f": ("fric", (300, 1100, 2400), False, 5000, 3000, 0.1), "v": ("fric", (300, 1100, 2400), True, 5000, 3000, 0.08),
    "s": ("fric", (300, 1700, 2700), False, 5800, 1300, 0.4), "z": ("fric", (300, 1700, 2700), True, 5800, 1300, 0.25),
    "sh": ("fric", (300, 1900, 2400), False, 3000, 900, 0.4), "h": ("asp", None, False, 0, 1, 0.0),
    "m": ("nasal", (250, 1000, 2300), True, 0, 1, 0.0), "n": ("nasal", (250, 1500, 2500), True, 0, 1, 0.0),
    "l": ("approx", (350, 1100, 2700), True, 0, 1, 0.0), "r": ("approx", (350, 1150, 1650), True, 0, 1, 0.0),
    "w": ("approx", (300, 700, 2200), True, 0, 1, 0.0), "j": ("approx", (280, 2200, 2900), True, 0, 1, 0.0),
}


def _accent(rate, stress, reduction, range_st, decl, rise, coda, vot, shift, vowels, onsets, codas, tone="stress"):
    return dict(rate=rate, stress=stress, reduction=reduction, range_st=range_st, decl=decl, rise=rise, coda=coda,
                vot=vot, f1=shift[0], f2=shift[1], f3=shift[2], vowels=vowels.split(), onsets=onsets.split(),
                codas=codas.split(), tone=tone)


# How each accent speaks English. rate: syllables/s; stress: lengthening of stressed
# syllables (stress-timed ~0.6, syllable-timed ~0.1-0.2); reduction: how far unstressed
# vowels move to schwa; range_st: pitch-accent range (semitones); decl: declination
# (semitones/s); rise: P(final rise); coda: P(closed syllable); vot: aspiration of
# voiceless stops (frames); shift: F1/F2/F3 factors (Indian retroflexion lowers F3,
# Arabic pharyngealisation lowers F2, Russian palatalisation raises it).
ACCENT_PROFILES = {
    "General American": _accent(5.0, 0.6, 0.6, 6.5, 1.0, 0.2, 0.5, 7, (1, 1, 1), "i I E ae a V U u 3r",
                                "p t k b d g s z f v sh h m n l r r w j", "t d k s z n m l r r"),
    "British": _accent(5.2, 0.6, 0.65, 8.0, 1.2, 0.1, 0.45, 6, (1, 1.03, 1.02), "i I E ae a O V U u @",
                       "p t k b d g s z f v sh h m n l r w j", "t d k s z n m l"),
    "Indian": _accent(5.8, 0.25, 0.2, 5.0, 0.6, 0.3, 0.35, 1, (1, 1, 0.9), "i e E a o u @",
                      "p t t k b d d g s sh h m n l r v j", "t n l r m"),
    "Chinese": _accent(4.6, 0.1, 0.05, 9.0, 0.8, 0.1, 0.12, 8, (1, 0.98, 1), "i a u 3r e o",
                       "p t k s sh sh h m n l w j", "n", tone="contour"),
    "Latin American": _accent(6.3, 0.2, 0.05, 5.0, 0.8, 0.25, 0.3, 1, (1.05, 1, 1), "i e a o u",
                              "p t k b d g s f m n l r w j", "s n l r"),
    "Arabic": _accent(5.0, 0.45, 0.3, 6.5, 1.0, 0.15, 0.45, 4, (1.05, 0.93, 1), "i a u E",
                      "t k b d s z f sh h h m n l r w j", "t d k s n m l r"),
    "Nigerian": _accent(5.4, 0.1, 0.05, 6.5, 1.5, 0.1, 0.1, 3, (1, 1, 1), "i e E a O o u",
                        "p t k b d g s f sh h m n l r w j", "n", tone="register"),
    "Russian": _accent(4.8, 0.55, 0.5, 5.0, 1.0, 0.05, 0.55, 1, (1, 1.06, 1), "i 1 e a o u",
                       "p t k b d g s z f v sh h m n l r j", "t k s sh n m l r"),
}
_NUMERIC = ("rate", "stress", "reduction", "range_st", "decl", "rise", "coda", "vot", "f1", "f2", "f3")


def speech_profile(accent: str, mother_tongue: str) -> dict:
    """Speaking style: the accent's profile with ``L1_TRANSFER`` of the mother tongue's
    own accent mixed into its numeric entries (rate, rhythm, intonation, vowel shifts)."""
    if accent not in ACCENT_PROFILES:
        raise ValueError(f"unknown accent {accent!r}; expected one of {ACCENTS}")
    if mother_tongue not in MOTHER_TONGUES:
        raise ValueError(f"unknown mother_tongue {mother_tongue!r}; expected one of {MOTHER_TONGUES}")
    profile = dict(ACCENT_PROFILES[accent])
    native = ACCENT_PROFILES[L1_ACCENT.get(mother_tongue, accent)]
    for key in _NUMERIC:
        profile[key] = (1 - L1_TRANSFER) * profile[key] + L1_TRANSFER * native[key]
    return profile


@dataclass(frozen=True)
class Voice:
    """The stable acoustic parameters of one speaker (units in the names)."""

    f0_hz: float  # mean speaking fundamental frequency
    vtl_cm: float  # vocal-tract length; formants scale as REF_VTL_CM / vtl_cm
    formant_factors: tuple  # idiosyncratic factors on F1, F2, F3
    jitter_pct: float  # local jitter: mean |T_i - T_i+1| / mean T
    shimmer_pct: float  # local shimmer, same on cycle amplitudes
    breathiness: float  # 0 (pressed) .. 1 (very breathy): aspiration noise level
    open_quotient: float  # fraction of the glottal cycle the folds are open
    tilt_db_oct: float  # extra spectral slope (negative = darker voice)
    rate_factor: float  # speaking-rate factor on the accent's syllable rate
    range_factor: float  # factor on the accent's pitch range
    tremor_st: float = 0.0  # depth of a slow (5 Hz) F0 tremor in semitones; grows in old age


def speaker_voice(traits) -> Voice:
    """The :class:`Voice` of one identity from its traits (a row of ``draw_identities``).

    Uses ``gender``, ``age`` (years), ``height`` (cm), ``bmi`` and ``voice_latent``
    (at least 8 numbers, ~N(0, 1)). Deterministic: no random draws."""
    gender, age, height, bmi = traits["gender"], float(traits["age"]), float(traits["height"]), float(traits["bmi"])
    z = np.asarray(traits["voice_latent"], dtype=float).ravel()
    if gender not in ("male", "female"):
        raise ValueError(f"gender must be 'male' or 'female', got {gender!r}")
    if z.size < 8 or not np.all(np.isfinite(z)) or not all(np.isfinite([age, height, bmi])):
        raise ValueError(f"{traits.get('speaker_id', 'identity')}: voice_latent needs 8 finite numbers "
                         "and age, height and bmi must be finite")
    male = gender == "male"
    # Mean speaking F0 by age: the male voice drops about an octave during puberty
    # (12-16 y); women's F0 falls after menopause, men's rises slightly in old age.
    if male:
        f0 = np.interp(age, [12, 13, 14, 15, 16, 17, 20, 40, 60, 80],
                       [230, 215, 185, 150, 132, 125, 120, 118, 122, 130])
    else:
        f0 = np.interp(age, [12, 14, 16, 20, 40, 50, 60, 80], [240, 228, 218, 212, 208, 200, 192, 185])
    # Higher BMI: a somewhat lower, darker and breathier voice (soft tissue in the
    # neck and pharynx loads and damps the tract). Real effects are small and vary
    # between studies; these are set so that a few hundred people reveal them.
    heavy = float(np.clip(bmi - 24.0, -6.0, 16.0))
    f0 *= np.exp(0.11 * z[0]) * np.exp(-0.009 * heavy)
    # VTL ~ height x a ratio; the male larynx descends at puberty, so the ratio
    # grows from the female 14.5/163 to 17/176 between 12 and 17 years.
    ratio = 14.5 / 163 + (17.0 / 176 - 14.5 / 163) * np.clip((age - 12) / 5, 0, 1) * male
    vtl = height * ratio * np.exp(0.04 * z[1])
    old = max(age - 35.0, 0.0)
    jitter = (0.45 + 0.02 * old + 0.15 * (age < 16)) * np.exp(0.25 * z[6])
    shimmer = (2.5 + 0.08 * old) * np.exp(0.2 * z[6])
    tremor = 0.6 * float(np.clip((age - 55.0) / 25.0, 0.0, 1.0))  # presbyphonia: an unsteady pitch
    breath = float(np.clip((0.2 if male else 0.35) + 0.006 * max(age - 40, 0) + 0.008 * max(heavy, 0) + 0.08 * z[6], 0.05, 0.9))
    tilt = -2.0 * breath - 0.12 * max(heavy, 0) + 0.8 * z[7]
    # Older speakers talk more slowly (about 5 % per decade after 30 here).
    rate = np.exp(0.08 * z[5]) * np.exp(-0.005 * max(age - 30.0, 0.0))
    factors = (np.exp(0.04 * z[2]), np.exp(0.03 * z[3]), np.exp(0.03 * z[3]))
    return Voice(float(f0), float(vtl), tuple(float(f) for f in factors), float(jitter), float(shimmer), breath,
                 0.5 + 0.3 * breath, float(tilt), float(rate), float(np.exp(0.15 * z[4])), tremor)


# --------------------------------------------------------------------------- content
def _consonant(name, vowel, rng, profile, coda):
    """Segments of one consonant (see :func:`_plan`); formants point at its locus, so the
    smoothing in :func:`synthesize_clip` turns the jumps into formant transitions."""
    manner, locus, voiced, fc, fbw, level = CONSONANTS[name]
    locus = vowel if locus is None else locus  # /h/ is aspiration through the vowel's own formants
    short = 0.7 if coda else 1.0  # codas are shorter and released more weakly
    if manner == "stop":  # closure (silence or a weak voice bar), burst, then aspiration (VOT)
        segs = [(rng.integers(4, 8), locus, 0.08 * voiced, 0, 0, fc, fbw), (2, locus, 0, 0, level * short, fc, fbw)]
        vot = int(round(profile["vot"] * (not voiced) * short))
        return segs + [(vot, locus, 0, 0.3, 0, fc, fbw)] * (vot > 0)
    if manner == "fric":
        return [(int(rng.integers(8, 13) * short), locus, 0.25 * voiced, 0, level, fc, fbw)]
    if manner == "asp":
        return [(rng.integers(5, 9), locus, 0, 0.35, 0, fc, fbw)]
    # nasal murmur is weak (closed mouth, low F1); approximants are vowel-like
    return [(int(rng.integers(5, 9) * short), locus, 0.3 if manner == "nasal" else 0.6, 0, 0, fc, fbw)]


def _syllable(profile, rng, frames, stressed):
    """Segments of one (C)V(C) syllable about ``frames`` frames long."""
    vowel = np.asarray(VOWELS[profile["vowels"][rng.integers(len(profile["vowels"]))]], float)
    if not stressed:  # vowel reduction towards schwa in unstressed syllables
        vowel += profile["reduction"] * (np.asarray(VOWELS["@"], float) - vowel)
    pick = lambda names: names[rng.integers(len(names))]  # noqa: E731  (rng.choice is 10x slower)
    onset = _consonant(pick(profile["onsets"]), vowel, rng, profile, False) if rng.random() < 0.8 else []
    coda = _consonant(pick(profile["codas"]), vowel, rng, profile, True) if rng.random() < profile["coda"] else []
    used = sum(s[0] for s in onset + coda)
    return onset + [(max(int(frames - used), 4), vowel, 1.0 if stressed else 0.75, 0, 0, 0, 1)] + coda


def _pitch_targets(profile, rng, stressed, R):
    """Start and end pitch (semitones re the speaker's F0) of one syllable."""
    if profile["tone"] == "contour":  # Mandarin tones 1-4: high, rising, low, falling
        start, end = [(0.5, 0.5), (0.0, 0.6), (-0.3, -0.4), (0.6, -0.2)][rng.integers(4)]
    elif profile["tone"] == "register":  # Yoruba: high, mid, low level tones
        start = end = [0.45, 0.1, -0.3][rng.integers(3)]
    elif stressed:  # a rising pitch accent
        start, end = 0.3, 0.7
    else:
        start = end = rng.normal(0, 0.1)
        start += 0.1
    return start * R, end * R


def _plan(profile, voice, rng, n_frames):
    """Per-frame control tracks of one utterance: phrases of syllables separated by pauses.

    A *segment* is (n_frames, (F1, F2, F3) target in Hz for the reference adult male,
    voicing, aspiration and frication amplitudes, frication centre and bandwidth in Hz).
    Returns a dict of arrays with one row per frame: ``formants`` (n_frames, 3),
    ``voice``, ``asp``, ``fric``, ``fc``, ``fbw``, ``st`` (intonation in semitones),
    and ``n_syllables`` (syllables completed within the clip)."""
    rate = profile["rate"] * voice.rate_factor * np.exp(rng.normal(0, 0.05))
    R = profile["range_st"] * voice.range_factor * np.exp(rng.normal(0, 0.1))
    base = FRAME_RATE / rate  # frames per syllable
    silence = lambda n: (n, VOWELS["@"], 0, 0, 0, 0, 1)  # noqa: E731
    segs, pitch = [silence(min(rng.integers(4, 20), n_frames // 4))], [(0.0, 0.0)]
    t, n_syllables = segs[0][0], 0
    while t < n_frames:
        t_phrase = t
        n_phrase = rng.integers(3, 10)
        for j in range(n_phrase):
            stressed = rng.random() < 0.4
            frames = base * (1 + profile["stress"] * (1 if stressed else -0.5)) * np.exp(rng.normal(0, 0.15))
            syl = _syllable(profile, rng, frames, stressed)
            s0, s1 = _pitch_targets(profile, rng, stressed, R)
            if j == n_phrase - 1:  # phrase-final rise (question, continuation) or fall
                s1 = s0 + 0.8 * R if rng.random() < profile["rise"] else -0.5 * R
            # the syllable's pitch line, minus declination since the phrase began, at segment edges
            edges = [0]
            for seg in syl:
                edges.append(edges[-1] + int(seg[0]))
            st = [s0 + (s1 - s0) * e / edges[-1] - profile["decl"] * (t - t_phrase + e) / FRAME_RATE for e in edges]
            segs += syl
            pitch += list(zip(st[:-1], st[1:]))
            t += edges[-1]
            n_syllables += t <= n_frames
        pause = silence(int(rng.uniform(0.15, 0.45) * FRAME_RATE))
        segs.append(pause)
        pitch.append((pitch[-1][1],) * 2)
        t += pause[0]
    n = np.array([s[0] for s in segs], dtype=np.int64)
    idx = np.repeat(np.arange(len(segs)), n)[:n_frames]
    pos = (np.arange(idx.size) - (np.cumsum(n) - n)[idx] + 0.5) / n[idx]
    p0, p1 = np.array(pitch).T
    track = lambda k: np.array([s[k] for s in segs], float)[idx]  # noqa: E731
    return dict(formants=np.array([s[1] for s in segs], float)[idx], voice=track(2), asp=track(3), fric=track(4),
                fc=track(5), fbw=track(6), st=p0[idx] + (p1 - p0)[idx] * pos, n_syllables=int(n_syllables))


def _upsample(track, hop, n):
    """Linear interpolation of a per-frame track (frame t at sample t*hop) to ``n`` samples."""
    frac = np.tile(np.arange(hop, dtype=track.dtype) / hop, track.size - 1)[:n]
    return np.repeat(track[:-1], hop)[:n] + np.repeat(np.diff(track), hop)[:n] * frac


def _white(rng, n):
    """Unit-variance white noise. Uniform samples are 5x cheaper to draw than Gaussian
    ones, and after the spectral filters the noise is Gaussian in practice."""
    return (rng.random(n, dtype=np.float32) - np.float32(0.5)) * np.float32(12 ** 0.5)


def _smooth(x, frames):
    """Moving Hann average over ``frames`` frames (coarticulation, no clicks)."""
    w = np.hanning(frames + 2)[1:-1]
    return convolve1d(x, w / w.sum(), axis=0, mode="nearest")


# ---------------------------------------------------------------------------- source
def _glottal_source(f0_frames, voice, rng, n, hop, sr):
    """Glottal flow derivative (Rosenberg pulses with jitter and shimmer) and the flow itself.

    ``f0_frames`` (Hz, one per frame) is interpolated to samples; the phase is
    the running sum of F0/sr, and each integer step of it is one glottal cycle.
    Returns two float arrays of length ``n``; the derivative has unit RMS."""
    f0 = _upsample(f0_frames, hop, n)
    cycle = (np.cumsum(f0) / sr).astype(np.int64)
    # An i.i.d. relative perturbation with s.d. s per cycle has mean |difference| ~ 1.13 s.
    f0 *= 1 + voice.jitter_pct / 113 * rng.standard_normal(cycle[-1] + 2)[cycle]
    phase = np.cumsum(f0) / sr
    cycle = phase.astype(np.int64)
    # One Rosenberg cycle, tabulated at 4096 phases (looking it up is 3x faster than evaluating
    # cosines): raised-cosine opening (tp), quarter-cosine closing (tn), then closed.
    grid = np.arange(4096) / 4096
    tp, tn = 0.72 * voice.open_quotient, 0.28 * voice.open_quotient
    table = np.where(grid < tp, 0.5 - 0.5 * np.cos(np.pi * grid / tp),
                     np.where(grid < tp + tn, np.cos(0.5 * np.pi * np.minimum(grid - tp, tn) / tn), 0.0))
    flow = np.take(table.astype(np.float32), ((phase - cycle) * 4096).astype(np.intp))
    dflow = np.diff(flow, prepend=np.float32(0))  # radiation at the lips ~ differentiation
    shimmer = (1 + voice.shimmer_pct / 113 * rng.standard_normal(cycle[-1] + 2)) / (dflow.std() + 1e-12)
    dflow *= shimmer.astype(np.float32)[cycle]
    return dflow, flow


# ---------------------------------------------------------------------------- filter
def _stft(x, hop, n_frames, rows):
    """Spectra of Hann-windowed frames ``rows`` (length 2*hop, centred on sample t*hop), zero-padded to 4*hop.

    Frame t is blocks t and t+1 of the signal (delayed by one hop) cut into hop-long blocks."""
    blocks = np.zeros((n_frames + 1, hop), np.float32)
    blocks.ravel()[hop: hop + x.size] = x
    window = np.hanning(2 * hop + 1)[:-1].astype(np.float32)  # periodic Hann: shifted copies sum to 1
    frames = np.zeros((rows.size, 4 * hop), np.float32)
    np.multiply(blocks[rows], window[:hop], out=frames[:, :hop])
    np.multiply(blocks[rows + 1], window[hop:], out=frames[:, hop: 2 * hop])
    return scipy.fft.rfft(frames)


def _overlap_add(spectra, hop, n):
    """Filtered frames back to a signal. Zero-phase filtering leaves each 4*hop frame circularly
    centred, so its blocks in time order are 3, 0, 1, 2 (block 3 is the part before the window)."""
    y = scipy.fft.irfft(spectra, n=4 * hop).reshape(len(spectra), 4, hop)
    out = np.zeros((len(spectra) + 3, hop), np.float32)
    for j, block in enumerate((3, 0, 1, 2)):
        out[j: j + len(spectra)] += y[:, block]
    return out.ravel()[2 * hop: 2 * hop + n].astype(np.float64)


def _tract_gain(formants, bandwidths, freqs):
    """|H(f)| of a cascade of second-order resonances, each with unit gain at 0 Hz:
    |H_k| = c / sqrt((c - f^2)^2 + f^2 B^2), c = F^2 + B^2/4 (an all-pole vocal tract).

    formants (T, K) Hz, bandwidths (K,) Hz, freqs (F,) Hz -> float32 (T, F)."""
    f2 = (freqs ** 2).astype(np.float32)
    den = np.float32(1.0)
    for k in range(formants.shape[1]):
        c = formants[:, k: k + 1] ** 2 + bandwidths[k] ** 2 / 4
        u = f2 * (1 / c).astype(np.float32)  # (f/F)^2, roughly
        den = den * ((1 - u) ** 2 + u * (bandwidths[k] ** 2 / c).astype(np.float32))
    return 1 / np.sqrt(den)


def _channel_gain(freqs, rng, sr):
    """A random microphone/room colouring: high-pass, spectral tilt, one peak, low-pass."""
    f = np.maximum(freqs, 1.0)
    hp, tilt = rng.uniform(60, 250), rng.uniform(-2, 2)
    peak_f, peak_db = np.exp(rng.uniform(np.log(500), np.log(4000))), rng.uniform(-4, 4)
    lp = rng.uniform(0.55 * sr, sr) / 2
    db = tilt * np.log2(np.maximum(f, 50) / 1000) + peak_db * np.exp(-0.5 * (np.log2(f / peak_f) / 0.7) ** 2)
    return 10 ** (db / 20) * (f / hp) ** 2 / np.sqrt(1 + (f / hp) ** 4) / np.sqrt(1 + (f / lp) ** 8), tilt


def synthesize_clip(voice: Voice, profile: dict, n_samples: int, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE,
                    *, recording: bool = True):
    """One recorded utterance of ``n_samples`` samples by ``voice`` speaking in ``profile``'s style.

    ``recording=False`` leaves out the channel colouring and the background noise
    (clean speech, for demonstrations and tests).

    Returns ``(audio, meta)``: a float32 array (peak <= 0.99) and a dict of scalars
    (f0_mean_hz, f0_std_st, syllable_rate, n_syllables, voiced_fraction, snr_db
    (inf when clean), loudness_db in dBFS, channel_tilt_db_oct)."""
    if not 8000 <= sample_rate <= 96000:
        raise ValueError(f"sample_rate must be between 8000 and 96000 Hz, got {sample_rate}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be positive, got {n_samples}")
    hop, n = int(round(sample_rate / FRAME_RATE)), int(n_samples)
    n_frames = -(-n // hop) + 1
    plan = _plan(profile, voice, rng, n_frames)
    # ---- source: F0 = speaker F0 x day-to-day factor x intonation (+ slow wander), in semitones
    st = _smooth(plan["st"], 7) + _smooth(rng.normal(0, 1.2, n_frames), 25)
    voiced = _smooth(plan["voice"], 3) > 0.5
    st -= st[voiced].mean() if voiced.any() else 0.0  # intonation moves around the speaker's mean F0
    st += voice.tremor_st * np.sin(2 * np.pi * 5.0 * np.arange(n_frames) / FRAME_RATE + rng.uniform(0, 2 * np.pi))
    f0_frames = np.clip(voice.f0_hz * np.exp(rng.normal(0, 0.03)) * 2 ** (st / 12), 50, 600)
    dflow, flow = _glottal_source(f0_frames, voice, rng, n, hop, sample_rate)
    tracks = {k: _smooth(plan[k], 3).astype(np.float32) for k in ("voice", "asp", "fric")}
    amp = {k: _upsample(v, hop, n) for k, v in tracks.items()}
    # breath noise is glottal turbulence, strongest while the folds are open; /h/ and VOT add aspiration
    breath = np.float32(0.35 * voice.breathiness) * (np.float32(0.3) + np.float32(0.7) * flow)
    excitation = amp["voice"] * dflow + _white(rng, n) * (amp["voice"] * breath + amp["asp"])
    frication = _white(rng, n) * amp["fric"]
    # ---- filter: the speaker's formants (scaled by vocal-tract length), frame by frame
    scale = REF_VTL_CM / voice.vtl_cm
    factors = np.array(voice.formant_factors) * [profile["f1"], profile["f2"], profile["f3"]]
    fm = np.exp(_smooth(np.log(plan["formants"]), 7)) * factors * scale  # (frames, 3) Hz
    # F4 and up hardly move; without them the spectrum would fall off far too steeply above F3
    # (a lossless tube has a resonance every ~1 kHz and no overall roll-off).
    upper = np.array([[3500.0, 4500.0, 5500.0, 6500.0, 7500.0]]) * scale
    freqs = scipy.fft.rfftfreq(4 * hop, 1 / sample_rate)
    channel, tilt = _channel_gain(freqs, rng, sample_rate) if recording else (np.ones_like(freqs), 0.0)
    source_tilt = 10 ** (voice.tilt_db_oct / 20 * np.log2(np.maximum(freqs, 50) / 500))
    spectra = np.zeros((n_frames, freqs.size), np.complex64)
    rows = np.flatnonzero(tracks["voice"] + tracks["asp"] > 1e-4)  # skip silent frames
    if rows.size:
        static = _tract_gain(upper, [200, 250, 300, 350, 400], freqs)[0] * source_tilt * channel
        bandwidths = [60 * (1 + voice.breathiness), 90, 130]  # losses at the open glottis widen B1
        gain = _tract_gain(fm[rows], bandwidths, freqs) * static.astype(np.float32)
        spectra[rows] = _stft(excitation, hop, n_frames, rows) * gain
    rows = np.flatnonzero(tracks["fric"] > 1e-4)
    if rows.size:  # frication: a band of noise from the front cavity, which also scales with the speaker
        fc, bw = plan["fc"][rows, None] * scale, plan["fbw"][rows, None] * scale
        gain = (np.exp(-0.5 * ((freqs - fc) / bw) ** 2) * channel).astype(np.float32)
        spectra[rows] += _stft(frication, hop, n_frames, rows) * gain
    speech = _overlap_add(spectra, hop, n)
    ramp = np.linspace(0.0, 1.0, min(int(0.005 * sample_rate), n // 2))  # 5 ms fades: no clicks at the cuts
    speech[: ramp.size] *= ramp
    speech[speech.size - ramp.size:] *= ramp[::-1]
    # ---- recording: background noise (white to brownish) at a random SNR, a random level
    speech_power = np.mean(speech ** 2) + 1e-20
    noise = lfilter([1.0], [1.0, -rng.uniform(0.5, 0.98)], _white(rng, n))  # pinkish to brownish
    snr_db = rng.uniform(15, 40) if recording else np.inf
    noise *= np.sqrt(speech_power / 10 ** (snr_db / 10) / (np.mean(noise ** 2) + 1e-20))
    audio = (speech + noise) * (10 ** (rng.uniform(-32, -18) / 20) / np.sqrt(speech_power))
    audio *= min(1.0, 0.99 / (np.abs(audio).max() + 1e-12))
    v = f0_frames[voiced] if voiced.any() else f0_frames
    speech_frames = max(int(((plan["voice"] > 0) | (plan["fric"] > 0) | (plan["asp"] > 0)).sum()), 1)
    meta = dict(f0_mean_hz=float(v.mean()), f0_std_st=float(np.std(12 * np.log2(v))),
                syllable_rate=float(plan["n_syllables"] * FRAME_RATE / speech_frames), n_syllables=plan["n_syllables"],
                voiced_fraction=float(voiced.mean()), snr_db=float(snr_db),
                loudness_db=float(10 * np.log10(np.mean(audio ** 2) + 1e-20)), channel_tilt_db_oct=float(tilt))
    return audio.astype(np.float32), meta


def _person_clips(job) -> tuple[list[np.ndarray], list[dict]]:
    """The clips and their metadata rows of one person: ``job = (row, i, clips, seed, lo, hi, sample_rate)``."""
    row, i, clips_per_identity, seed, lo, hi, sample_rate = job
    voice = speaker_voice(row)
    profile = speech_profile(row["accent"], row["mother_tongue"])
    stable = {key: value for key, value in asdict(voice).items() if key in
              ("f0_hz", "vtl_cm", "jitter_pct", "shimmer_pct", "breathiness")}
    stable["speaker_f0_hz"] = stable.pop("f0_hz")
    clips, meta = [], []
    for k in range(clips_per_identity):
        rng = np.random.default_rng([seed, _STREAM, i, k])
        n = int(round(rng.uniform(lo, hi) * sample_rate))
        audio, clip_meta = synthesize_clip(voice, profile, n, rng, sample_rate)
        clips.append(audio)
        meta.append(dict(speaker_id=row["speaker_id"], clip_id=f"{row['speaker_id']}_v{k:02d}",
                         duration_s=n / sample_rate, **stable, **clip_meta))
    return clips, meta


def synthesize_clips(traits: pd.DataFrame, clips_per_identity: int, *, seed: int, clip_seconds=(3.0, 6.0),
                     sample_rate=SAMPLE_RATE, progress=False) -> tuple[list[np.ndarray], pd.DataFrame]:
    """Synthesise ``clips_per_identity`` voice clips for every identity in ``traits``.

    Parameters
    ----------
    traits : DataFrame from :func:`vfmatch.simulator.draw_identities` (one row per
        identity: speaker_id, gender, age, height, bmi, mother_tongue, accent, voice_latent).
    clips_per_identity : int >= 1
    seed : int
        Clip ``k`` of the identity in row ``i`` uses the random stream ``(seed, i, k)``,
        so adding identities or clips leaves the others unchanged.
    clip_seconds : (min, max) seconds; each clip's duration is uniform in it.
    sample_rate : Hz, 8000 to 96000 (default 16 kHz).

    Returns
    -------
    clips : list of float32 arrays (mono, peak <= 0.99), identity-major order.
    meta : DataFrame, one row per clip: speaker_id, clip_id ("sim00003_v02"),
        duration_s, speaker_f0_hz, vtl_cm, jitter_pct, shimmer_pct, breathiness,
        and the per-clip values of :func:`synthesize_clip` (f0_mean_hz, snr_db, loudness_db, ...).
    """
    required = ["speaker_id", "gender", "age", "height", "bmi", "mother_tongue", "accent", "voice_latent"]
    missing = [c for c in required if c not in traits.columns]
    if missing:
        raise ValueError(f"traits is missing columns {missing}")
    if int(clips_per_identity) < 1:
        raise ValueError(f"clips_per_identity must be >= 1, got {clips_per_identity}")
    lo, hi = map(float, clip_seconds)
    if not 0.1 <= lo <= hi:
        raise ValueError(f"clip_seconds must be (min, max) with 0.1 <= min <= max, got {clip_seconds}")
    # One person at a time, on every core (vfmatch.utils.parallel_map): each person's clips
    # depend only on their row and their own random streams, so the order of work is free.
    jobs = [(traits.iloc[i], i, int(clips_per_identity), int(seed), lo, hi, sample_rate) for i in range(len(traits))]
    clips, meta = [], []
    for person_clips, person_meta in parallel_map(_person_clips, jobs, show_progress=progress, desc="voices"):
        clips += person_clips
        meta += person_meta
    return clips, pd.DataFrame(meta)
