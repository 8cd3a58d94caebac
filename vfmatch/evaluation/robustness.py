"""Robustness of a matcher to noise and telephone codecs (paper 001, appendix A).

Paper 001 re-evaluates its model on audio with additive noise at three SNR
bands -- 20-30 dB (minor), 10-20 dB (medium), 0-10 dB (major) -- and passed
through the codecs of telephone and VoIP networks, alone and combined
(its Figure 7 table). This module does the same for any matcher:

* :func:`add_noise` -- white (or pink) Gaussian noise at a given SNR, or at an
  SNR drawn uniformly from a band;
* :func:`degrade` -- noise, then a codec round trip
  (:func:`vfmatch.evaluation.codecs.encode_decode`: the noise is in the room,
  the codec in the network), back at 16 kHz and the same length;
* :data:`ROBUSTNESS_CONDITIONS` -- the conditions of paper 001's appendix, one
  :class:`Condition` each: the three SNR bands, G.711 mu-law and A-law, AMR-NB
  at 4.75 and 12.2 kbit/s, SILK at 6, 12, 24 and 40 kbit/s, G.729;
  :func:`condition_status` says which of them this machine can run;
* :func:`score_conditions` -- a trained matcher under every condition: 1:2
  voice->face identification (unrestricted and same-gender) and the AUC, each
  with an identity-bootstrap interval and its paired change from clean audio,
  for any ``scores_from_voices(clips) -> (n_clips, n_faces)``;
* :func:`robustness_sweep` -- the codec x noise table (every codec with every
  band), identification accuracy and percentile recall per condition;
* :func:`statistics_scorer` -- a small baseline matcher trained on clean clips,
  to sweep when no other matcher is at hand.

Training on degraded clips (paper 001's remedy) is
:mod:`vfmatch.evaluation.augment`. Book chapter: ``book/09_robustness.ipynb``;
the command is ``vfmatch robustness`` (:mod:`vfmatch.job.robustness_command`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..data.population import SAMPLE_RATE
from ..data.preprocess import resample
from ..features.audio import VOICE_STAT_NAMES, voice_statistics
from ..utils import limit_threads
from ..utils import progress as progress_bar
from .ablation import paired_auc_delta_ci
from .bootstrap import bootstrap_auc_ci, bootstrap_ci
from .codecs import CODECS, CodecUnavailableError, codec_backend, encode_decode
from .identification import identification_accuracy, verification_metrics
from .percentile import percentile_recall
from .scorers import as_scorer

__all__ = [
    "DEFAULT_SNR_BANDS",
    "Condition",
    "ROBUSTNESS_CONDITIONS",
    "ROBUSTNESS_METRICS",
    "get_condition",
    "condition_status",
    "clip_seed",
    "degrade_clips",
    "score_conditions",
    "add_noise",
    "degrade",
    "snr_label",
    "robustness_sweep",
    "statistics_scorer",
]

# Paper 001 appendix A.1: minor, medium and major noise.
DEFAULT_SNR_BANDS: tuple[tuple[float, float], ...] = ((20.0, 30.0), (10.0, 20.0), (0.0, 10.0))


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



def degrade(wave: np.ndarray, sr: int = SAMPLE_RATE, *, codec: str | None = None, snr_db=None, seed: int = 0,
            noise: str = "white", bitrate: int | None = None, backend: str | None = None) -> np.ndarray:
    """A clip as a telephone line would deliver it: noise first, then the codec.

    Parameters
    ----------
    wave : float array, shape (n_samples,), in [-1, 1]
    sr : its sampling rate (Hz)
    codec : a key of :data:`vfmatch.evaluation.codecs.CODECS`, or None for no codec
    snr_db : None (no noise), a float, or a (low, high) band to draw from
    seed : seeds the noise (and the SNR drawn from a band)
    bitrate : bit/s, for AMR-NB (one of its modes) and SILK (6,000-40,000); None: the default

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
# Paper 001's conditions, and a trained matcher under each
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """One way a voice reaches the matcher: clean, through noise, or through a codec.

    ``snr`` is an SNR band in dB (the SNR of each clip is drawn uniformly from it)
    or None; ``codec`` a key of :data:`vfmatch.evaluation.codecs.CODECS` or None;
    ``bitrate`` in bit/s for the codecs that have several (AMR-NB, SILK)."""

    name: str
    label: str
    snr: tuple[float, float] | None = None
    codec: str | None = None
    bitrate: int | None = None

    @property
    def kind(self) -> str:
        """``"clean"``, ``"noise"`` or ``"codec"``."""
        return "codec" if self.codec else ("noise" if self.snr else "clean")

    def apply(self, wave: np.ndarray, seed: int = 0) -> np.ndarray:
        """The clip (16 kHz, 1-D) under this condition: :func:`degrade`."""
        return degrade(wave, SAMPLE_RATE, codec=self.codec, snr_db=self.snr, bitrate=self.bitrate, seed=seed)


def _codec_condition(codec: str, bitrate: int | None = None) -> Condition:
    rate = f"{bitrate / 1000:g}" if bitrate else CODECS[codec].kbit_s
    name = codec if bitrate is None else f"{codec}_{bitrate / 1000:g}"
    return Condition(name, f"{CODECS[codec].label} {rate} kbit/s", codec=codec, bitrate=bitrate)


# Paper 001, appendix A: minor / medium / major noise (A.1) and its four codecs at the
# rates it names (A.2: AMR "4.75 to 12.2 kbps", SILK "6 to 40 kbps", G.729 8, G.711 64).
ROBUSTNESS_CONDITIONS: tuple[Condition, ...] = (
    Condition("clean", "clean"),
    *(Condition(f"snr_{hi:g}_{lo:g}", f"noise, SNR {hi:g}-{lo:g} dB", snr=(lo, hi)) for lo, hi in DEFAULT_SNR_BANDS),
    _codec_condition("g711_mulaw"),
    _codec_condition("g711_alaw"),
    _codec_condition("amr_nb", 4_750),
    _codec_condition("amr_nb", 12_200),
    *(_codec_condition("silk", br) for br in (6_000, 12_000, 24_000, 40_000)),
    _codec_condition("g729"),
)
# What score_conditions reports per condition (chance 0.5 for each).
ROBUSTNESS_METRICS = ("identification_1to2_vf", "identification_1to2_vf_gender_restricted", "auc")


def get_condition(name) -> Condition:
    """A :class:`Condition` of :data:`ROBUSTNESS_CONDITIONS` by name (a Condition is returned as it is)."""
    if isinstance(name, Condition):
        return name
    for c in ROBUSTNESS_CONDITIONS:
        if c.name == name:
            return c
    raise ValueError(f"unknown condition {name!r}; choose from {[c.name for c in ROBUSTNESS_CONDITIONS]}")


def condition_status(conditions: Sequence = ROBUSTNESS_CONDITIONS) -> pd.DataFrame:
    """Which conditions this machine can run: one row each with ``condition``,
    ``label``, ``runs`` (bool), ``backend`` (the codec implementation used) and
    ``reason`` (why not, with the install command; empty when it runs)."""
    rows = []
    for c in map(get_condition, conditions):
        backend, reason = ("numpy" if c.kind == "noise" else ""), ""
        if c.codec:
            try:
                backend = codec_backend(c.codec)[0]
            except CodecUnavailableError as exc:
                backend, reason = "", str(exc)
        rows.append({"condition": c.name, "label": c.label, "runs": not reason, "backend": backend, "reason": reason})
    return pd.DataFrame(rows)


def clip_seed(seed: int, index: int, condition: Condition) -> int:
    """The noise seed of clip ``index`` under ``condition``: the same in every codec and
    every run with this ``seed`` (a paired design), another one per SNR band (as in
    :func:`robustness_sweep`, whose bands are numbered 0, 1, 2 in :data:`DEFAULT_SNR_BANDS` order)."""
    bands = [tuple(b) for b in DEFAULT_SNR_BANDS]
    if condition.snr is None:
        band = -1
    elif tuple(condition.snr) in bands:
        band = bands.index(tuple(condition.snr))
    else:  # a band of one's own: a stream of its own
        band = 1000 + int(round(100 * condition.snr[0])) * 10_000 + int(round(100 * condition.snr[1]))
    return int(np.random.SeedSequence([seed, index, band + 1]).generate_state(1)[0])


def degrade_clips(clips: Sequence[np.ndarray], condition, *, seed: int = 0) -> list[np.ndarray]:
    """Every clip (16 kHz, 1-D float arrays) under ``condition`` (a :class:`Condition` or its name)."""
    c = get_condition(condition)
    return [c.apply(x, seed=clip_seed(seed, i, c)) for i, x in enumerate(clips)]


def _metrics(S, vs, fs, vg, fg, n_triplets, n_pairs, seed) -> dict:
    """The per-list credits and per-pair scores behind :data:`ROBUSTNESS_METRICS`;
    the same seeds in every condition, so the lists and pairs are the same."""
    sc = as_scorer(S, vs.size, fs.size)
    kw = dict(probe_gender=vg, candidate_gender=fg)
    out = {"identification_1to2_vf": identification_accuracy(sc, vs, fs, n_lists=n_triplets, seed=seed, **kw)}
    if vg is not None or fg is not None:
        out["identification_1to2_vf_gender_restricted"] = identification_accuracy(
            sc, vs, fs, n_lists=n_triplets, same_gender=True, seed=seed + 2, **kw)
    out["auc"] = verification_metrics(sc, vs, fs, n_pairs=n_pairs, seed=seed + 4, **kw)
    return out


def score_conditions(
    scores_from_voices: Callable[[list], np.ndarray],
    clips: Sequence[np.ndarray],
    voice_speakers,
    face_speakers,
    *,
    voice_gender=None,
    face_gender=None,
    conditions: Sequence = ROBUSTNESS_CONDITIONS,
    n_triplets: int = 4000,
    n_pairs: int = 4000,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    progress: bool = False,
) -> pd.DataFrame:
    """A trained matcher under every condition, with identity-bootstrap intervals.

    Parameters
    ----------
    scores_from_voices : ``f(clips) -> (n_clips, n_faces)`` similarity of the given
        (degraded) voice clips to the fixed gallery of faces, higher = more alike;
        e.g. re-extract the voice metaproperties and run the matcher
        (:func:`vfmatch.job.robustness_command.matcher_scores_from_voices`), or
        embed the clips with a learned voice encoder.
    clips : the clean test clips, 16 kHz; ``voice_speakers`` (n_clips,) their
        identities, ``face_speakers`` (n_faces,) those of the gallery faces
    voice_gender, face_gender : genders, for the same-gender ("G") 1:2 lists
    conditions : :class:`Condition` objects or names (default all of
        :data:`ROBUSTNESS_CONDITIONS`); ``"clean"`` is always scored, first,
        since every change is measured from it
    n_triplets, n_pairs : sizes of the seeded 1:2 lists and verification pairs,
        the same lists and pairs in every condition
    n_boot, level : identity bootstrap (:mod:`vfmatch.evaluation.bootstrap`)

    Returns
    -------
    pandas.DataFrame, one row per condition, in the given order: ``condition``,
    ``label``, ``kind``, ``codec``, ``bitrate``, ``snr``, ``status`` (``"ok"`` or
    ``"skipped"``), ``reason`` (why skipped: the codec is not installed here, and
    how to install it), ``backend``; for each metric m of :data:`ROBUSTNESS_METRICS`
    ``m``, ``m_low``, ``m_high`` (the interval) and ``m_delta`` (condition minus
    clean) with ``m_delta_low``, ``m_delta_high`` (a *paired* interval: each
    bootstrap sample draws the test identities once and scores both conditions
    on their lists); ``n_clips``, ``seconds``. A skipped condition keeps its row,
    with NaN metrics.
    """
    vs, fs = np.asarray(voice_speakers).astype(str), np.asarray(face_speakers).astype(str)
    clips = list(clips)
    if len(clips) != vs.size:
        raise ValueError(f"{len(clips)} clips but {vs.size} voice speakers")
    conds = [get_condition(c) for c in conditions]
    conds = [get_condition("clean")] + [c for c in conds if c.name != "clean"]
    status = condition_status(conds).set_index("condition")
    boot = dict(n_boot=n_boot, level=level, seed=seed)
    rows, clean = [], None
    for c in progress_bar(conds, progress, "conditions"):
        st = status.loc[c.name]
        row = {"condition": c.name, "label": c.label, "kind": c.kind, "codec": c.codec or "none", "bitrate": c.bitrate,
               "snr": snr_label(c.snr), "status": "ok" if st["runs"] else "skipped", "reason": st["reason"],
               "backend": st["backend"], "n_clips": len(clips)}
        for m in ROBUSTNESS_METRICS:
            row.update({m: np.nan, f"{m}_low": np.nan, f"{m}_high": np.nan,
                        f"{m}_delta": np.nan, f"{m}_delta_low": np.nan, f"{m}_delta_high": np.nan})
        t0 = time.perf_counter()
        if st["runs"]:
            # Per-clip work is small: one thread (VFMATCH_THREADS) avoids torch's spinning on a shared CPU.
            with limit_threads():
                S = np.asarray(scores_from_voices(degrade_clips(clips, c, seed=seed)), dtype=np.float64)
            if S.shape != (vs.size, fs.size):
                raise ValueError(f"scores_from_voices returned shape {S.shape}, expected ({vs.size}, {fs.size}) (clips x faces)")
            got = _metrics(S, vs, fs, voice_gender, face_gender, n_triplets, n_pairs, seed)
            clean = got if clean is None else clean
            for m, r in got.items():
                if m == "auc":
                    row[m] = r["auc"]
                    row[f"{m}_low"], row[f"{m}_high"] = bootstrap_auc_ci(r["labels"], r["scores"], r["probe_code"], **boot)
                    row[f"{m}_delta"] = r["auc"] - clean[m]["auc"]
                    row[f"{m}_delta_low"], row[f"{m}_delta_high"] = paired_auc_delta_ci(
                        r["labels"], clean[m]["scores"], r["scores"], r["probe_code"], **boot)
                else:
                    row[m] = r.accuracy
                    row[f"{m}_low"], row[f"{m}_high"] = bootstrap_ci(r.correct, r.probe_code, **boot)
                    delta = r.correct - clean[m].correct  # the same lists: a paired difference per list
                    row[f"{m}_delta"] = float(delta.mean())
                    row[f"{m}_delta_low"], row[f"{m}_delta_high"] = bootstrap_ci(delta, r.probe_code, **boot)
        row["seconds"] = round(time.perf_counter() - t0, 3)
        rows.append(row)
    return pd.DataFrame(rows)


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
    bitrate : SILK's bit rate (bit/s); the other codecs run at their defaults
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
            degrade(c, SAMPLE_RATE, codec=codec, snr_db=band, noise=noise, bitrate=bitrate if codec == "silk" else None,
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
