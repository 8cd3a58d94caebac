"""Training on degraded clips: paper 001's remedy for noise and codecs.

Paper 001 finds its model loses most under AMR and G.729 and under heavy noise
(appendix A), and suggests "adding to training procedure codecs as part of
artificial augmentation of the data, with high percentage of audios being
encoded using the more challenging codecs, AMR and G729" (A.2), and "random
noising as an augmentation performed during training" (A.1). This module does
that to the *training* clips of the extractors:

* :func:`augment_clips` -- a seeded ``fraction`` of the clips (half by default)
  replaced by a degraded copy: ``"noise"`` (white noise at an SNR drawn from
  0-30 dB, all three of the paper's bands), ``"codecs"`` (one codec round trip,
  drawn with the weights of :data:`AUGMENT_CODECS`: AMR-NB and G.729 most
  often, as the paper asks) or ``"codecs+noise"`` (noise, then a codec);
* :func:`augment_population` -- the same on a population's voices, with a
  dataset fingerprint of its own so the feature cache never mixes augmented
  and clean features.

Replacing clips rather than adding copies keeps the training time the same.
``vfmatch run --augment codecs|noise|codecs+noise`` (``RunConfig.augment``)
applies it to the extractors' training people only; the matcher, threshold and
test people keep their clean clips. The codecs here are the ones the robustness
conditions test (:data:`vfmatch.evaluation.robustness.ROBUSTNESS_CONDITIONS`):
an augmentation matched to the test, as in the paper, which says nothing about
codecs never seen in training.

Book chapter: ``book/09_robustness.ipynb``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Sequence

import datasets
import numpy as np
import pyarrow as pa

from ..data.population import SAMPLE_RATE, Population
from ..fingerprints import traced_code_fingerprint
from ..utils import limit_threads
from .codecs import CODECS, CodecUnavailableError, codec_backend
from .robustness import degrade

__all__ = ["AUGMENT_MODES", "AUGMENT_CODECS", "AUGMENT_SNR", "AUGMENT_FRACTION", "augment_plan", "augment_clips",
           "augment_population", "check_augment"]

AUGMENT_MODES = ("codecs", "noise", "codecs+noise")
# (codec, bit rate in bit/s or None, probability): AMR-NB and G.729 most often (paper 001, A.2).
AUGMENT_CODECS: tuple[tuple[str, int | None, float], ...] = (
    ("amr_nb", 4_750, 0.2),
    ("amr_nb", 12_200, 0.2),
    ("g729", None, 0.3),
    ("silk", 6_000, 0.05),
    ("silk", 12_000, 0.05),
    ("silk", 24_000, 0.05),
    ("silk", 40_000, 0.05),
    ("g711_mulaw", None, 0.05),
    ("g711_alaw", None, 0.05),
)
AUGMENT_SNR = (0.0, 30.0)  # dB, drawn uniformly: minor, medium and major noise alike
AUGMENT_FRACTION = 0.5


def check_augment(mode: str | None) -> None:
    """Raise ValueError for an unknown mode, or when a codec it needs is not installed here
    (the message says how to install it)."""
    if mode is None:
        return
    if mode not in AUGMENT_MODES:
        raise ValueError(f"--augment must be one of {AUGMENT_MODES}, got {mode!r}")
    if "codecs" in mode:
        for codec in dict.fromkeys(c for c, _, _ in AUGMENT_CODECS):
            try:
                codec_backend(codec)
            except CodecUnavailableError as exc:
                raise ValueError(f"--augment {mode}: {exc}") from None


def augment_plan(n_clips: int, mode: str, *, fraction: float = AUGMENT_FRACTION, seed: int = 0) -> list[dict | None]:
    """What happens to each clip: None (left clean) or ``{"codec", "bitrate", "snr_db", "seed"}``.

    Seeded: the same ``(n_clips, mode, fraction, seed)`` gives the same plan.
    Exactly ``round(fraction * n_clips)`` clips are degraded."""
    if mode not in AUGMENT_MODES:
        raise ValueError(f"augment mode must be one of {AUGMENT_MODES}, got {mode!r}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    rng = np.random.default_rng([seed, 14])
    chosen = rng.permutation(n_clips)[: int(round(fraction * n_clips))]
    probs = np.array([p for _, _, p in AUGMENT_CODECS])
    plan: list[dict | None] = [None] * n_clips
    for i in np.sort(chosen):
        step = {"codec": None, "bitrate": None, "snr_db": None, "seed": int(rng.integers(2**31))}
        if "codecs" in mode:
            codec, bitrate, _ = AUGMENT_CODECS[int(rng.choice(len(AUGMENT_CODECS), p=probs / probs.sum()))]
            step["codec"], step["bitrate"] = codec, bitrate
        if "noise" in mode:
            step["snr_db"] = float(rng.uniform(*AUGMENT_SNR))
        plan[int(i)] = step
    return plan


def augment_clips(clips: Sequence[np.ndarray], mode: str, *, fraction: float = AUGMENT_FRACTION, seed: int = 0) -> list[np.ndarray]:
    """The clips (16 kHz, 1-D float32) with a seeded ``fraction`` degraded (:func:`augment_plan`).

    Each degraded clip keeps its length (:func:`vfmatch.evaluation.robustness.degrade`)."""
    check_augment(mode)
    plan = augment_plan(len(clips), mode, fraction=fraction, seed=seed)
    with limit_threads():  # small per-clip work: one thread (VFMATCH_THREADS) is faster on a shared CPU
        return [np.asarray(x, np.float32) if step is None else
                degrade(x, SAMPLE_RATE, codec=step["codec"], bitrate=step["bitrate"], snr_db=step["snr_db"], seed=step["seed"])
                for x, step in zip(clips, plan)]


def augment_population(population: Population, mode: str | None, *, fraction: float = AUGMENT_FRACTION, seed: int = 0) -> Population:
    """A copy of ``population`` whose voice clips are :func:`augment_clips` of its own
    (faces, identities and clip metadata unchanged); ``mode=None`` returns it as it is.

    The voices dataset gets a fingerprint derived from the original one, the
    settings and the code of this module, so cached features of the clean clips
    are never reused for the augmented ones. ``info["augment"]`` records the
    settings and how many clips went through each codec."""
    if mode is None:
        return population
    clips = population.audios()
    degraded = augment_clips(clips, mode, fraction=fraction, seed=seed)
    plan = augment_plan(len(clips), mode, fraction=fraction, seed=seed)
    voices = population.voices
    table = voices.with_format("arrow")[:]  # rows in the dataset's order (its index mapping applied)
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in degraded])]).astype(np.int64)
    audio = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(np.concatenate(degraded).astype(np.float32)))
    table = table.set_column(table.schema.get_field_index("audio"), table.schema.field("audio"), audio)
    settings = {"mode": mode, "fraction": float(fraction), "seed": int(seed)}
    key = json.dumps([getattr(voices, "_fingerprint", None), voices.num_rows, settings,
                      traced_code_fingerprint(augment_clips)], sort_keys=True)
    new = datasets.Dataset(table, info=voices.info.copy(), fingerprint=hashlib.sha1(key.encode()).hexdigest()[:16])
    counts: dict[str, int] = {}
    for step in plan:
        if step is not None:
            name = "noise only" if step["codec"] is None else CODECS[step["codec"]].label + (
                f" {step['bitrate'] / 1000:g}" if step["bitrate"] else "")
            counts[name] = counts.get(name, 0) + 1
    info = {**population.info, "augment": {**settings, "clips": len(clips), "degraded": counts}}
    return Population(population.identities.copy(), new, population.faces, info)
