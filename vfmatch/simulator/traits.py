"""The simulated people's traits: the population tables and :func:`draw_identities`.

:func:`draw_identities` draws each identity's traits from plausible joint
distributions (gender, age, ethnicity, Fitzpatrick skin type, height, weight,
BMI, mother tongue, accent). :func:`vfmatch.simulator.make_population` then

* synthesises voice clips from them with a source-filter speech model
  (:mod:`vfmatch.simulator.voices`), and
* renders face images procedurally (:mod:`vfmatch.simulator.faces`).

Both modalities see the same traits, so the metaproperties link a voice to its
face exactly as the patent assumes. Beyond the traits, each identity has a
latent vector ``z`` (8 numbers: vocal-tract and face-geometry idiosyncrasies).
``concordance`` sets how much of it voice and face share::

    voice_latent = c * z + sqrt(1 - c^2) * e_voice
    face_latent  = c * z + sqrt(1 - c^2) * e_face

so ``concordance=0`` means only the metaproperties link the two modalities
(the setting of the metaproperty method), and ``1`` adds a shared identity
signal that learned embeddings can exploit.

The numbers below are rough population statistics chosen to be plausible,
not measurements of any real population. Book chapter: ``book/01_population.ipynb``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..metaproperties import ACCENTS, ETHNICITIES, MOTHER_TONGUES

__all__ = ["draw_identities", "DEFAULT_N_IDENTITIES", "SIMULATOR_VERSION", "LATENT_DIM"]

DEFAULT_N_IDENTITIES = 480  # people in the default population (make_population, vfmatch run)
# Recorded in every simulated population's info["params"]. The population cache
# is keyed on the simulator's code itself (vfmatch.simulator.population.simulator_fingerprint).
SIMULATOR_VERSION = "3"
LATENT_DIM = 8  # numbers in each identity's latent vectors

ETHNICITY_P = {"Asian": 0.2, "Black": 0.13, "White": 0.3, "Middle-Eastern": 0.1, "Indian": 0.12, "Latino-Hispanic": 0.15}
# P(Fitzpatrick type I..VI | ethnicity)
SKIN_P = {
    "White": (0.25, 0.45, 0.20, 0.08, 0.02, 0.00),
    "Asian": (0.02, 0.15, 0.45, 0.30, 0.08, 0.00),
    "Black": (0.00, 0.00, 0.02, 0.13, 0.40, 0.45),
    "Middle-Eastern": (0.02, 0.13, 0.40, 0.35, 0.10, 0.00),
    "Indian": (0.00, 0.02, 0.13, 0.40, 0.35, 0.10),
    "Latino-Hispanic": (0.03, 0.12, 0.35, 0.35, 0.13, 0.02),
}
# Mean adult height offset (cm) by ethnicity, added to 176 (male) / 163 (female).
HEIGHT_OFFSET = {"White": 1.0, "Asian": -5.0, "Black": 1.0, "Middle-Eastern": -1.0, "Indian": -4.0, "Latino-Hispanic": -4.0}
# P(mother tongue | ethnicity)
TONGUE_P = {
    "White": {"English": 0.6, "Russian": 0.2, "Spanish": 0.1, "Portuguese": 0.1},
    "Asian": {"Mandarin": 0.75, "English": 0.25},
    "Black": {"Yoruba": 0.5, "English": 0.45, "Portuguese": 0.05},
    "Middle-Eastern": {"Arabic": 0.8, "English": 0.2},
    "Indian": {"Hindi": 0.75, "English": 0.25},
    "Latino-Hispanic": {"Spanish": 0.65, "Portuguese": 0.25, "English": 0.1},
}
# The accent an L1 carries into English; fluent speakers sometimes sound General American.
L1_ACCENT = {
    "Spanish": "Latin American",
    "Portuguese": "Latin American",
    "Arabic": "Arabic",
    "Hindi": "Indian",
    "Mandarin": "Chinese",
    "Yoruba": "Nigerian",
    "Russian": "Russian",
}


def _choice(rng: np.random.Generator, table: dict, n: int) -> np.ndarray:
    keys = list(table)
    p = np.asarray([table[k] for k in keys], dtype=float)
    return np.asarray(keys, dtype=object)[rng.choice(len(keys), size=n, p=p / p.sum())]


def draw_identities(n_identities: int, *, seed: int = 0, concordance: float = 0.3) -> pd.DataFrame:
    """Draw the traits of ``n_identities`` people.

    Returns
    -------
    pandas.DataFrame, one row per identity, with ``speaker_id`` ("sim00000"...),
    ``gender``, ``age`` (years, float), ``ethnicity``, ``skin_tone`` (1-6),
    ``height`` (cm), ``weight`` (kg), ``bmi`` (kg/m^2), ``mother_tongue``,
    ``accent``, and the latent vectors ``voice_latent`` and ``face_latent``
    (each a float array of shape (8,)).
    """
    if n_identities < 2:
        raise ValueError(f"a population needs at least 2 identities, got {n_identities}")
    if not 0.0 <= concordance <= 1.0:
        raise ValueError(f"concordance must be in [0, 1], got {concordance}")
    rng = np.random.default_rng([seed, 0])
    n = int(n_identities)
    gender = np.where(rng.random(n) < 0.5, "male", "female").astype(object)
    ethnicity = _choice(rng, ETHNICITY_P, n)
    # Ages 12-80, most people between 20 and 50 (a Beta bump).
    age = 12.0 + 68.0 * rng.beta(1.6, 2.4, n)
    skin = np.array([rng.choice(6, p=np.asarray(SKIN_P[e]) / sum(SKIN_P[e])) + 1 for e in ethnicity], dtype=np.int64)

    adult_height = np.where(gender == "male", 176.0, 163.0) + np.array([HEIGHT_OFFSET[e] for e in ethnicity])
    adult_height = adult_height + rng.normal(0.0, 6.5, n)
    # Teenagers are still growing: about 3 % of adult height per year below 18.
    growth = np.clip(1.0 - 0.03 * np.clip(18.0 - age, 0.0, None), 0.8, 1.0)
    height = adult_height * growth
    # BMI rises slowly with age; log-normal spread.
    bmi = np.exp(np.log(23.5) + 0.004 * (np.clip(age, 18, 70) - 18) + rng.normal(0.0, 0.16, n))
    bmi = np.clip(bmi, 15.5, 48.0)
    weight = bmi * (height / 100.0) ** 2

    tongue = np.array([_choice(rng, TONGUE_P[e], 1)[0] for e in ethnicity], dtype=object)
    accent = np.empty(n, dtype=object)
    for i, (t, e) in enumerate(zip(tongue, ethnicity)):
        if t == "English":
            if e == "Indian":
                accent[i] = "Indian" if rng.random() < 0.6 else "British"
            elif e == "Black":
                accent[i] = _choice(rng, {"Nigerian": 0.4, "General American": 0.4, "British": 0.2}, 1)[0]
            else:
                accent[i] = "General American" if rng.random() < 0.6 else "British"
        else:
            accent[i] = L1_ACCENT[t] if rng.random() < 0.8 else "General American"

    z = rng.normal(size=(n, LATENT_DIM))
    c = float(concordance)
    voice_latent = c * z + np.sqrt(1 - c * c) * rng.normal(size=(n, LATENT_DIM))
    face_latent = c * z + np.sqrt(1 - c * c) * rng.normal(size=(n, LATENT_DIM))

    assert set(ethnicity) <= set(ETHNICITIES) and set(tongue) <= set(MOTHER_TONGUES) and set(accent) <= set(ACCENTS)
    return pd.DataFrame(
        {
            "speaker_id": [f"sim{i:05d}" for i in range(n)],
            "gender": gender,
            "age": np.round(age, 1),
            "ethnicity": ethnicity,
            "skin_tone": skin,
            "height": np.round(height, 1),
            "weight": np.round(weight, 1),
            "bmi": np.round(bmi, 2),
            "mother_tongue": tongue,
            "accent": accent,
            "voice_latent": list(voice_latent.astype(np.float32)),
            "face_latent": list(face_latent.astype(np.float32)),
        }
    )
