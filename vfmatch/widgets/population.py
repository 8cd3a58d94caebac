"""Widget logic for ``book/01_population.ipynb``: simulate a person with chosen traits.

``simulate_person`` and ``trait_sweep`` do the work and are unit-tested;
``build_person_widget`` only wires them to ipywidgets.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..metaproperties import ACCENTS, ETHNICITIES, MOTHER_TONGUES
from ..data.population import SAMPLE_RATE, Population
from ..simulator.population import make_population
from ..simulator.traits import draw_identities
from .display import show_in

__all__ = ["simulate_person", "trait_sweep", "person_figure", "build_person_widget", "EDITABLE_TRAITS"]

# The traits a reader may set, with the widget range of each.
EDITABLE_TRAITS = {
    "gender": ("male", "female"),
    "age": (12.0, 80.0),
    "ethnicity": ETHNICITIES,
    "skin_tone": (1, 6),
    "height": (140.0, 205.0),
    "bmi": (16.0, 45.0),
    "mother_tongue": MOTHER_TONGUES,
    "accent": ACCENTS,
}


def _with_traits(base: pd.DataFrame, **traits) -> pd.DataFrame:
    """Copy ``base`` and overwrite traits, keeping weight = BMI x height^2 consistent."""
    df = base.copy()
    for key, value in traits.items():
        if value is None:
            continue
        if key not in EDITABLE_TRAITS:
            raise KeyError(f"unknown trait {key!r}; editable traits: {list(EDITABLE_TRAITS)}")
        allowed = EDITABLE_TRAITS[key]
        if isinstance(allowed[0], str) and value not in allowed:
            raise ValueError(f"{key} must be one of {list(allowed)}, got {value!r}")
        if not isinstance(allowed[0], str) and not allowed[0] <= float(value) <= allowed[1]:
            raise ValueError(f"{key} must be between {allowed[0]} and {allowed[1]}, got {value!r}")
        df[key] = value
    df["weight"] = np.round(df["bmi"].astype(float) * (df["height"].astype(float) / 100.0) ** 2, 1)
    return df


def simulate_person(
    *, seed: int = 0, concordance: float = 0.3, clips: int = 2, faces: int = 4, clip_seconds: float = 3.0, **traits
) -> Population:
    """One simulated person; unspecified traits are drawn at random with ``seed``.

    Example: ``simulate_person(gender="female", age=70, skin_tone=5, seed=3)``.
    Returns a one-identity :class:`~vfmatch.data.population.Population`."""
    base = draw_identities(2, seed=seed, concordance=concordance).iloc[:1]
    ids = _with_traits(base, **traits)
    return make_population(
        identities=ids,
        seed=seed,
        clips_per_identity=clips,
        faces_per_identity=faces,
        concordance=concordance,
        clip_seconds=(clip_seconds, clip_seconds),
        cache=False,
    )


def trait_sweep(trait: str, values, *, seed: int = 0, clip_seconds: float = 2.5, **fixed) -> Population:
    """The same person (same latent identity and other traits) with one trait set to each of ``values``.

    Shows how a single trait drives both modalities: one face and one clip per value.
    Speaker ids are ``"<trait>=<value>"``."""
    base = draw_identities(2, seed=seed).iloc[:1]
    rows = [_with_traits(base, **{**fixed, trait: v}) for v in values]
    ids = pd.concat(rows, ignore_index=True)
    ids["speaker_id"] = [f"{trait}={v}" for v in values]
    # Same per-clip randomness for every row would need per-row seeds; the simulator
    # derives per-identity randomness from (seed, row), so content differs slightly.
    return make_population(
        identities=ids, seed=seed, clips_per_identity=1, faces_per_identity=1,
        clip_seconds=(clip_seconds, clip_seconds), cache=False,
    )


def person_figure(population: Population, speaker_id: str | None = None, *, max_faces: int = 4):
    """A matplotlib figure: the person's faces (top row) and clip spectrograms (bottom row)."""
    sid = speaker_id or population.speaker_ids[0]
    f_idx = np.flatnonzero(population.face_speakers == sid)[:max_faces]
    v_idx = np.flatnonzero(population.voice_speakers == sid)[:max_faces]
    cols = max(len(f_idx), len(v_idx), 1)
    fig, axes = plt.subplots(2, cols, figsize=(2.6 * cols, 5.2), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes[0], f_idx):
        ax.imshow(population.image(i))
    for ax, i in zip(axes[1], v_idx):
        ax.axis("on")
        ax.specgram(population.audio(i), NFFT=512, Fs=SAMPLE_RATE, noverlap=384, cmap="magma")
        ax.set_ylim(0, 5000)
        ax.set_xlabel("s")
    axes[1][0].set_ylabel("Hz")
    row = population.identity_row(sid)
    fig.suptitle(
        f"{row['gender']}, {row['age']:.0f} y, {row['ethnicity']}, Fitzpatrick {row['skin_tone']}, "
        f"BMI {row['bmi']:.1f}, {row['mother_tongue']} / {row['accent']} accent",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def build_person_widget():
    """Sliders and dropdowns for every trait; 'Resample' draws the person again."""
    import ipywidgets as w  # deferred: ipywidgets is optional (the "book" extra)
    from IPython.display import Audio  # deferred: IPython comes with the notebook (the "book" extra)

    controls = {
        "gender": w.Dropdown(options=EDITABLE_TRAITS["gender"], description="gender"),
        "age": w.FloatSlider(value=30, min=12, max=80, step=1, description="age (y)"),
        "ethnicity": w.Dropdown(options=ETHNICITIES, description="ethnicity"),
        "skin_tone": w.IntSlider(value=3, min=1, max=6, description="Fitzpatrick"),
        "height": w.FloatSlider(value=170, min=140, max=205, step=1, description="height (cm)"),
        "bmi": w.FloatSlider(value=24, min=16, max=45, step=0.5, description="BMI"),
        "mother_tongue": w.Dropdown(options=MOTHER_TONGUES, description="L1"),
        "accent": w.Dropdown(options=ACCENTS, description="accent"),
    }
    seed = w.IntText(value=0, description="seed")
    concordance = w.FloatSlider(value=0.3, min=0, max=1, step=0.1, description="concordance")
    button = w.Button(description="Simulate")
    out = w.Output()

    def show(_=None):
        person = simulate_person(seed=seed.value, concordance=concordance.value, **{k: c.value for k, c in controls.items()})
        show_in(out, person_figure(person), *(Audio(clip, rate=SAMPLE_RATE) for clip in person.audios()))

    button.on_click(show)
    box = w.VBox([w.HBox(list(controls.values())[:4]), w.HBox(list(controls.values())[4:]), w.HBox([seed, concordance, button]), out])
    show()
    return box
