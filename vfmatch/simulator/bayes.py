"""The Bayes bound: what each medium can reveal about a metaproperty, from the simulator's own tables.

The all-truth oracle (:func:`vfmatch.matching.oracle_metaproperties`) hands the
matcher every person's true value on both sides, including a face's accent,
mother tongue and weight, which the face renderer never draws. It therefore
bounds nothing. This module computes the tables a *perfect* extractor could
produce instead: for each modality and metaproperty, the exact posterior

    P(metaproperty value | the traits that modality's renderer or synthesiser uses)

from the generative model of :mod:`vfmatch.simulator.traits`.

Which traits each medium uses (read off the code, and checked by
``tests/test_bayes.py``, which changes every other trait and sees identical
pixels and samples):

* a **voice** (:mod:`vfmatch.simulator.voices`) is made from gender, age,
  height, BMI, mother tongue and accent (and ``voice_latent``);
* a **face** (:mod:`vfmatch.simulator.faces`) from gender, age, ethnicity,
  skin tone and BMI (and ``face_latent``).

The latents, the per-clip and per-image random draws (recording, pose,
lighting) are independent of every metaproperty, so given those traits a clip
or an image carries no further information about any metaproperty. Where a
medium uses the trait itself, its posterior is one-hot on the truth (the
voice's accent, the face's skin tone); elsewhere it is a Bayes' rule
computation over the tables:

===============  =====================================================  ==================================================
metaproperty     voice (sees gender, age, height, BMI, tongue, accent)  face (sees gender, age, ethnicity, skin, BMI)
===============  =====================================================  ==================================================
gender, age,     one-hot                                                one-hot
BMI
ethnicity        P(e | tongue, accent, height, gender, age)             one-hot
                 ∝ P(e) P(tongue | e) P(accent | tongue, e)
                 N(height; mean(gender, e, age), sd(age))
skin tone        sum_e P(e | voice) P(skin | e)                         one-hot
weight           weight = BMI x height^2: one-hot up to the table's     P(BMI x height^2 in the bin), height ~
                 rounding (see below)                                   N(mean(gender, e, age), sd(age))
mother tongue    one-hot                                                P(tongue | e)  (a row of ``TONGUE_P``)
accent           one-hot                                                sum_t P(t | e) P(accent | t, e)
===============  =====================================================  ==================================================

What "given the traits the medium uses" means, honestly: the posterior of an
extractor that *perceived those traits perfectly*, e.g. read a speaker's
height exactly. A real clip mixes height with the ``voice_latent`` spread of
the vocal-tract length and with recording noise, so no extractor can do as
well; the Bayes tables are an upper bound on what a clip or an image tells
about each metaproperty, not an achievable target. Fed to the same matcher
they give the matcher's score with the best possible inputs, so the gap
"Bayes - extracted" is what extraction loses and "all-truth - Bayes" is what
the media cannot show. (The matcher compares metaproperties one at a time, so
a cleverer decision rule on the same posteriors could still score higher: it
bounds this matcher's inputs, not every method.)

Assumptions, all of them:

* The tables of :mod:`vfmatch.simulator.traits` (``ETHNICITY_P``, ``SKIN_P``,
  ``TONGUE_P``, ``L1_ACCENT``, ``HEIGHT_OFFSET``) and the rules that
  :func:`~vfmatch.simulator.traits.draw_identities` writes inline (the accent of
  English speakers, the height model) are copied here as
  :data:`ENGLISH_ACCENT_P`, :data:`L1_KEEP`, :data:`HEIGHT_BASE_CM`,
  :data:`HEIGHT_SD_CM` and :func:`growth_factor`; the tests check them against
  draws from the simulator, so a change there fails a test here.
* ``draw_identities`` rounds age (0.1 year), height (0.1 cm), weight (0.1 kg)
  and BMI (0.01) before anything is rendered, so the renderers see the rounded
  values and so do we. Rounding enters in two places only: (1) a voice's weight
  is BMI x height^2 of the *unrounded* values, which lie in a box of one
  rounding step around the table's; we spread the weight uniformly over the
  interval that box allows (an approximation: the product is not exactly
  uniform there) and shift the bin edges by half the 0.1 kg rounding step of
  the weight itself. Everyone farther than ~0.1 kg from a bin edge gets a
  one-hot row. (2) The face's weight and the voice's ethnicity use the height
  density at the rounded age; the growth factor changes by 0.15 % within a
  rounding step of age, and only below 18. We ignore that.
* BMI is drawn independently of ethnicity and height, and skin tone
  independently of everything but ethnicity (as the simulator does), so seeing
  BMI tells nothing about height, and seeing skin adds nothing about the accent
  once the ethnicity is known.

The tables here follow ``population.identities``; :func:`bayes_metaproperties`
spreads them to the voice clips and face images in the format of
:func:`vfmatch.matching.oracle_metaproperties`. Book chapter:
``book/05_distances_and_weights.ipynb`` (the bounds section).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy.special import ndtr

from ..metaproperties import ACCENTS, DEFAULT_METAPROPERTIES, ETHNICITIES, MOTHER_TONGUES, get_metaproperty
from .traits import ETHNICITY_P, HEIGHT_OFFSET, L1_ACCENT, SKIN_P, TONGUE_P

__all__ = [
    "bayes_metaproperties",
    "voice_posteriors",
    "face_posteriors",
    "voice_ethnicity_posterior",
    "accent_given_tongue",
    "trait_joint",
    "height_distribution",
    "growth_factor",
    "VOICE_TRAITS",
    "FACE_TRAITS",
    "BAYES_METAPROPERTIES",
    "ENGLISH_ACCENT_P",
    "L1_KEEP",
    "HEIGHT_BASE_CM",
    "HEIGHT_SD_CM",
]

# The identity traits each medium is made from (besides its latent vector).
VOICE_TRAITS = ("gender", "age", "height", "bmi", "mother_tongue", "accent")
FACE_TRAITS = ("gender", "age", "ethnicity", "skin_tone", "bmi")
# The metaproperties this module knows the generative model of.
BAYES_METAPROPERTIES = DEFAULT_METAPROPERTIES

# draw_identities' accent rule. Native English speakers: by ethnicity ("other" = the rest).
ENGLISH_ACCENT_P = {
    "Indian": {"Indian": 0.6, "British": 0.4},
    "Black": {"Nigerian": 0.4, "General American": 0.4, "British": 0.2},
    "other": {"General American": 0.6, "British": 0.4},
}
L1_KEEP = 0.8  # any other mother tongue: its L1 accent with this probability, else General American
# draw_identities' height model: adult height ~ N(base + HEIGHT_OFFSET[e], sd), times a growth factor below 18.
HEIGHT_BASE_CM = {"male": 176.0, "female": 163.0}
HEIGHT_SD_CM = 6.5
WEIGHT_STEP_KG, HEIGHT_STEP_CM, BMI_STEP = 0.1, 0.1, 0.01  # draw_identities' rounding of the table


# ---------------------------------------------------------------------------
# The generative model as arrays
# ---------------------------------------------------------------------------


def _normalised(values) -> np.ndarray:
    p = np.asarray(values, dtype=np.float64)
    return p / p.sum()


def accent_given_tongue(mother_tongue: str, ethnicity: str) -> np.ndarray:
    """P(accent | mother tongue, ethnicity), shape ``(len(ACCENTS),)`` in the order of
    :data:`vfmatch.metaproperties.ACCENTS` (draw_identities' rule)."""
    if mother_tongue not in MOTHER_TONGUES or ethnicity not in ETHNICITIES:
        raise ValueError(f"unknown mother tongue {mother_tongue!r} or ethnicity {ethnicity!r}")
    if mother_tongue == "English":
        table = ENGLISH_ACCENT_P.get(ethnicity, ENGLISH_ACCENT_P["other"])
    else:
        table = {L1_ACCENT[mother_tongue]: L1_KEEP, "General American": 1.0 - L1_KEEP}
    return np.array([table.get(a, 0.0) for a in ACCENTS])


def trait_joint() -> np.ndarray:
    """P(ethnicity, mother tongue, accent), shape ``(6, 8, 8)``; axes follow
    ``ETHNICITIES``, ``MOTHER_TONGUES`` and ``ACCENTS``. Sums to 1."""
    joint = np.zeros((len(ETHNICITIES), len(MOTHER_TONGUES), len(ACCENTS)))
    p_e = _normalised([ETHNICITY_P[e] for e in ETHNICITIES])
    for i, e in enumerate(ETHNICITIES):
        p_t = _normalised([TONGUE_P[e].get(t, 0.0) for t in MOTHER_TONGUES])
        for j, t in enumerate(MOTHER_TONGUES):
            if p_t[j] > 0:
                joint[i, j] = p_e[i] * p_t[j] * accent_given_tongue(t, e)
    return joint


def _skin_matrix() -> np.ndarray:
    """P(skin type | ethnicity), shape (6 ethnicities, 6 types)."""
    return np.stack([_normalised(SKIN_P[e]) for e in ETHNICITIES])


def growth_factor(age) -> np.ndarray:
    """draw_identities' teenage growth: about 3 % of adult height per year below 18, at least 0.8."""
    age = np.asarray(age, dtype=np.float64)
    return np.clip(1.0 - 0.03 * np.clip(18.0 - age, 0.0, None), 0.8, 1.0)


def height_distribution(gender, age) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of height (cm) for every ethnicity.

    ``gender`` and ``age`` (years) are arrays of shape (n,). Returns ``mean`` of
    shape (n, 6) (columns follow ``ETHNICITIES``) and ``sd`` of shape (n,): the
    normal law draw_identities draws height from."""
    g = np.asarray(gender, dtype=object)
    base = np.array([HEIGHT_BASE_CM[str(x)] for x in g])
    grow = growth_factor(age)
    offset = np.array([HEIGHT_OFFSET[e] for e in ETHNICITIES])
    return (base[:, None] + offset[None, :]) * grow[:, None], HEIGHT_SD_CM * grow


# ---------------------------------------------------------------------------
# Per modality
# ---------------------------------------------------------------------------


def _check(identities: pd.DataFrame, traits: Sequence[str], where: str) -> None:
    missing = [c for c in traits if c not in identities]
    if missing:
        raise ValueError(
            f"{where}: the identities table has no column(s) {missing}; the Bayes bound needs the simulator's "
            f"traits {list(traits)} (a population from vfmatch.make_population)"
        )
    for c in traits:
        v = identities[c]
        if v.isna().any():
            raise ValueError(f"{where}: column {c!r} has missing values; the Bayes bound needs every trait")
    for col, allowed in (("gender", ("male", "female")), ("ethnicity", ETHNICITIES),
                         ("mother_tongue", MOTHER_TONGUES), ("accent", ACCENTS)):
        if col in traits:
            bad = sorted(set(identities[col].astype(str)) - set(allowed))
            if bad:
                raise ValueError(f"{where}: column {col!r} has values {bad} outside the simulator's {list(allowed)}")


def _names(names) -> list[str]:
    names = list(BAYES_METAPROPERTIES if names is None else [get_metaproperty(n).name for n in names])
    unknown = [n for n in names if n not in BAYES_METAPROPERTIES]
    if unknown:
        raise ValueError(f"no Bayes posterior for metaproperty(s) {unknown}: the simulator's model covers {list(BAYES_METAPROPERTIES)}")
    return names


def _index(values, labels) -> np.ndarray:
    lookup = {x: i for i, x in enumerate(labels)}
    return np.array([lookup[str(v)] for v in values], dtype=np.int64)


def _one_hot(identities: pd.DataFrame, name: str) -> np.ndarray:
    """The table's value as a one-hot row (the metaproperty's own encoding, run once per distinct value)."""
    mp = get_metaproperty(name)
    column = identities[mp.source_column].to_numpy(dtype=object)
    distinct, inverse = np.unique(column.astype(str), return_inverse=True)
    first = np.unique(inverse, return_index=True)[1]  # one original value per distinct string
    return mp.one_hot(column[first])[inverse.ravel()].astype(np.float64)


def voice_ethnicity_posterior(identities: pd.DataFrame) -> np.ndarray:
    """P(ethnicity | the traits a voice is made from), shape (n_identities, 6).

    Bayes' rule over the tables: ``P(e) P(tongue | e) P(accent | tongue, e)``
    times the normal density of the person's height under ethnicity ``e``
    (given gender and age). BMI, age and gender alone say nothing about
    ethnicity in the simulator; they enter only through the height law."""
    _check(identities, VOICE_TRAITS, "voice_ethnicity_posterior")
    joint = trait_joint()
    t = _index(identities["mother_tongue"], MOTHER_TONGUES)
    a = _index(identities["accent"], ACCENTS)
    prior = joint[:, t, a].T  # (n, 6): P(e, tongue, accent)
    mean, sd = height_distribution(identities["gender"], identities["age"].to_numpy(float))
    h = identities["height"].to_numpy(float)
    log_lik = -0.5 * ((h[:, None] - mean) / sd[:, None]) ** 2  # the 1/(sd sqrt(2 pi)) factor is common to all e
    with np.errstate(divide="ignore"):
        log_post = np.log(prior) + log_lik
    log_post -= log_post.max(axis=1, keepdims=True)
    post = np.exp(log_post)
    return post / post.sum(axis=1, keepdims=True)


def _weight_edges() -> np.ndarray:
    """Weight-bin edges (kg) for the *unrounded* weight: the table rounds to 0.1 kg,
    so a table value reaches edge E when the drawn weight reaches E - 0.05."""
    return np.asarray(get_metaproperty("weight").bin_edges, dtype=np.float64) - WEIGHT_STEP_KG / 2


def _voice_weight(identities: pd.DataFrame) -> np.ndarray:
    """Weight bins from BMI and height (both heard): the interval of BMI x height^2
    that one rounding step of each allows, spread uniformly over the bins."""
    bmi = identities["bmi"].to_numpy(float)
    h = identities["height"].to_numpy(float) / 100.0
    lo = (bmi - BMI_STEP / 2) * (h - HEIGHT_STEP_CM / 200) ** 2
    hi = (bmi + BMI_STEP / 2) * (h + HEIGHT_STEP_CM / 200) ** 2
    edges = np.concatenate([[-np.inf], _weight_edges(), [np.inf]])
    overlap = np.clip(np.minimum(hi[:, None], edges[None, 1:]) - np.maximum(lo[:, None], edges[None, :-1]), 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def _face_weight(identities: pd.DataFrame) -> np.ndarray:
    """Weight bins from BMI (seen) and the height law of the seen gender, age and
    ethnicity: weight < E  <=>  height < 100 sqrt(E / BMI)."""
    bmi = identities["bmi"].to_numpy(float)
    e = _index(identities["ethnicity"], ETHNICITIES)
    mean, sd = height_distribution(identities["gender"], identities["age"].to_numpy(float))
    mean = mean[np.arange(len(e)), e]
    cut = 100.0 * np.sqrt(_weight_edges()[None, :] / bmi[:, None])  # height (cm) at each edge, (n, n_edges)
    cdf = ndtr((cut - mean[:, None]) / sd[:, None])
    cdf = np.concatenate([np.zeros((len(e), 1)), cdf, np.ones((len(e), 1))], axis=1)
    p = np.clip(np.diff(cdf, axis=1), 0.0, None)
    return p / p.sum(axis=1, keepdims=True)


def voice_posteriors(identities: pd.DataFrame, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Bayes posteriors of the metaproperties given what a voice is made from.

    Parameters
    ----------
    identities : DataFrame from :func:`vfmatch.draw_identities` (columns ``VOICE_TRAITS`` at least)
    names : metaproperties (default: all of :data:`BAYES_METAPROPERTIES`)

    Returns
    -------
    dict name -> float64 array (n_identities, n_values), rows in the order of
    ``identities``, each row summing to 1 (module docstring for each rule).
    """
    names = _names(names)
    _check(identities, VOICE_TRAITS, "voice_posteriors")
    out: dict[str, np.ndarray] = {}
    ethnicity = voice_ethnicity_posterior(identities) if {"ethnicity", "skin_tone"} & set(names) else None
    for name in names:
        if name in VOICE_TRAITS:  # the synthesiser uses the trait itself
            out[name] = _one_hot(identities, name)
        elif name == "ethnicity":
            out[name] = ethnicity
        elif name == "skin_tone":
            out[name] = ethnicity @ _skin_matrix()
        elif name == "weight":
            out[name] = _voice_weight(identities)
    return out


def face_posteriors(identities: pd.DataFrame, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Bayes posteriors of the metaproperties given what a face is made from.

    Same parameters and return format as :func:`voice_posteriors`; needs the
    columns ``FACE_TRAITS``. Mother tongue is a row of ``TONGUE_P``; accent
    marginalises the mother tongue out; weight integrates the unseen height."""
    names = _names(names)
    _check(identities, FACE_TRAITS, "face_posteriors")
    e = _index(identities["ethnicity"], ETHNICITIES)
    joint = trait_joint()
    given_e = joint / joint.sum(axis=(1, 2), keepdims=True)  # P(tongue, accent | e)
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name in FACE_TRAITS:  # the renderer uses the trait itself
            out[name] = _one_hot(identities, name)
        elif name == "mother_tongue":
            out[name] = given_e.sum(axis=2)[e]
        elif name == "accent":
            out[name] = given_e.sum(axis=1)[e]
        elif name == "weight":
            out[name] = _face_weight(identities)
    return out


def bayes_metaproperties(population, names: Sequence[str] | None = None) -> tuple[dict, dict]:
    """Bayes-posterior metaproperty tables of a simulated population.

    Parameters
    ----------
    population : vfmatch.Population from :func:`vfmatch.make_population`
    names : metaproperties to include; default: those of the patent's list for
        which the population has ground truth (as :func:`~vfmatch.matching.oracle_metaproperties`).

    Returns
    -------
    (voice_table, face_table) : dicts ``name -> (n_items, n_values)`` float64
        arrays, rows following ``population.voices`` and ``population.faces``:
        the format of ``oracle_metaproperties``. Every clip (image) of a person
        gets that person's posterior.
    """
    if names is None:
        names = [n for n in BAYES_METAPROPERTIES if population.has_metaproperty(n)]
    ids = population.identities
    voice, face = voice_posteriors(ids, names), face_posteriors(ids, names)
    row_of = {s: i for i, s in enumerate(ids["speaker_id"].astype(str))}
    try:
        v_rows = np.array([row_of[str(s)] for s in population.voice_speakers], dtype=np.int64)
        f_rows = np.array([row_of[str(s)] for s in population.face_speakers], dtype=np.int64)
    except KeyError as err:
        raise ValueError(f"population: clip or face of speaker {err} has no row in the identities table") from None
    return ({n: voice[n][v_rows] for n in voice}, {n: face[n][f_rows] for n in face})
