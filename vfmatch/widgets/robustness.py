"""Widget and figure logic for ``book/09_robustness.ipynb``: a trained matcher under noise and codecs.

Everything takes plain values (what a dropdown or a slider holds) and returns
numbers, tables or plotly figures, so it is unit-tested without a browser;
:func:`build_robustness_widget` only wires them to ipywidgets.

* :func:`degraded_clip` -- one clip under a condition of
  :data:`~vfmatch.evaluation.robustness.ROBUSTNESS_CONDITIONS`, optionally with
  noise at an exact SNR before the codec;
* :func:`spectrogram_figure` -- what the codec or the noise did to it (log power,
  dB, over time and frequency);
* :func:`one_to_two_view` -- what each trained model makes of that clip: its
  score with the speaker's own face and with another person's face (one 1:2
  list), and the percentile rank of the own face among all test faces;
* :func:`curves_figure` -- the per-condition table of
  :func:`vfmatch.job.robustness_command.robustness_report` as grouped bars with
  their intervals; :func:`augmentation_table` -- the change augmentation makes;
* :func:`robustness_view` -- all of it for one choice of condition and noise,
  what :func:`build_robustness_widget` redraws.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from scipy.signal import spectrogram

from ..data.population import SAMPLE_RATE
from ..evaluation.robustness import ROBUSTNESS_CONDITIONS, ROBUSTNESS_METRICS, add_noise, degrade, get_condition
from ..job.robustness_command import METRIC_TITLES, robustness_figure
from .display import show_in

__all__ = [
    "condition_options",
    "degraded_clip",
    "spectrogram_figure",
    "one_to_two_view",
    "curves_figure",
    "augmentation_table",
    "SNR_CHOICES",
    "robustness_view",
    "build_robustness_widget",
]


def condition_options(conditions: Sequence = ROBUSTNESS_CONDITIONS) -> list[tuple[str, str]]:
    """``(label, name)`` of each condition, as an ipywidgets Dropdown takes them."""
    return [(c.label, c.name) for c in map(get_condition, conditions)]


def degraded_clip(clip: np.ndarray, condition, *, snr_db: float | None = None, seed: int = 0) -> np.ndarray:
    """``clip`` (16 kHz, 1-D) under ``condition`` (a name or Condition).

    ``snr_db`` (dB) adds white noise at exactly that SNR *before* the condition's
    codec, in place of the condition's own SNR band: noise in the room, then the
    network. Returns float32 of the clip's length."""
    c = get_condition(condition)
    x = np.asarray(clip, dtype=np.float32)
    if snr_db is None:
        return c.apply(x, seed=seed)
    x = add_noise(x, float(snr_db), seed=seed)
    return degrade(x, SAMPLE_RATE, codec=c.codec, bitrate=c.bitrate, seed=seed)


def spectrogram_figure(wave: np.ndarray, sr: int = SAMPLE_RATE, *, title: str = "Spectrogram",
                       max_khz: float = 8.0) -> go.Figure:
    """Log power spectrogram (32 ms Hann windows, 8 ms hop) as a heatmap: time (s)
    across, frequency (kHz) up, power in dB relative to the loudest cell (floored at -80 dB)."""
    x = np.asarray(wave, dtype=np.float64)
    f, t, P = spectrogram(x, fs=sr, window="hann", nperseg=int(0.032 * sr), noverlap=int(0.024 * sr))
    db = 10 * np.log10(P + 1e-12)
    db = np.maximum(db - db.max(), -80.0)
    keep = f <= max_khz * 1000
    fig = go.Figure(go.Heatmap(x=t, y=f[keep] / 1000, z=db[keep], colorscale="Viridis", zmin=-80, zmax=0,
                               colorbar=dict(title="power (dB)")))
    fig.update_layout(title=title, xaxis_title="time (s)", yaxis_title="frequency (kHz)", height=300,
                      margin=dict(l=60, r=20, t=40, b=40))
    return fig


def one_to_two_view(scores_by_method: Mapping[str, Callable], clip: np.ndarray, voice_speaker: str, face_speakers,
                    condition, *, snr_db: float | None = None, other_face: int | None = None, seed: int = 0) -> pd.DataFrame:
    """One 1:2 list for one clip under a condition, as each trained model sees it.

    ``scores_by_method``: ``{model: scores_from_voices}`` (``clips -> (n_clips, n_faces)``);
    ``face_speakers`` (n_faces,) the gallery's identities. The list is the
    speaker's first face and ``other_face`` (default: a seeded face of another
    person). Returns one row per model: ``score own face``, ``score other face``,
    ``1:2 right`` (own > other; a tie counts 1/2) and ``own face beats`` (the
    share of other people's faces the own face outscores, ties 1/2: 1 = ranked first)."""
    fs = np.asarray(face_speakers).astype(str)
    own = np.flatnonzero(fs == str(voice_speaker))
    if own.size == 0:
        raise ValueError(f"no face of speaker {voice_speaker!r} in the gallery")
    others = np.flatnonzero(fs != str(voice_speaker))
    if other_face is None:
        other_face = int(np.random.default_rng(seed).choice(others))
    elif fs[other_face] == str(voice_speaker):
        raise ValueError(f"face {other_face} is the speaker's own; choose a face of another person")
    wave = degraded_clip(clip, condition, snr_db=snr_db, seed=seed)
    rows = []
    for name, fn in scores_by_method.items():
        s = np.asarray(fn([wave]), dtype=np.float64)[0]
        a, b = s[own[0]], s[other_face]
        rows.append({"model": name, "score own face": a, "score other face": b,
                     "1:2 right": 1.0 if a > b else (0.5 if a == b else 0.0),
                     "own face beats": float(np.mean((a > s[others]) + 0.5 * (a == s[others])))})
    return pd.DataFrame(rows).set_index("model").round(3)


def curves_figure(table: pd.DataFrame, metric: str = "identification_1to2_vf", *, by: str = "method") -> go.Figure:
    """The robustness table (:func:`vfmatch.job.robustness_command.robustness_report`, one
    ``by`` value per model) as grouped bars per condition with 95% intervals."""
    return robustness_figure(table, metric, by=by)


def augmentation_table(table: pd.DataFrame, reference: str, augmented: str, metric: str = "identification_1to2_vf",
                       *, by: str = "method") -> pd.DataFrame:
    """Per condition: ``metric`` [interval] of the ``reference`` model and of the
    ``augmented`` one, their difference, and each model's drop from its own clean
    score. Rounded to 3 decimals; rows in condition order; skipped conditions are NaN."""
    if metric not in ROBUSTNESS_METRICS:
        raise KeyError(f"metric must be one of {ROBUSTNESS_METRICS}, got {metric!r}")
    models = set(table[by])
    for name in (reference, augmented):
        if name not in models:
            raise KeyError(f"no rows with {by} = {name!r}; have {sorted(models)}")
    ref = table[table[by] == reference].set_index("condition")
    aug = table[table[by] == augmented].set_index("condition").reindex(ref.index)
    title = METRIC_TITLES[metric]
    out = pd.DataFrame({
        "condition": ref["label"],
        f"{reference}": ref[metric], f"{reference} CI": _ci(ref, metric),
        f"{augmented}": aug[metric], f"{augmented} CI": _ci(aug, metric),
        "augmented - reference": aug[metric] - ref[metric],
        f"change from clean, {reference}": ref[f"{metric}_delta"],
        f"change from clean, {augmented}": aug[f"{metric}_delta"],
    }).reset_index(drop=True)
    out.attrs["metric"] = title
    return out.round(3)


def _ci(rows: pd.DataFrame, metric: str) -> list[str]:
    return [f"[{lo:.3f}, {hi:.3f}]" if np.isfinite(lo) else "skipped" for lo, hi in zip(rows[f"{metric}_low"], rows[f"{metric}_high"])]


SNR_CHOICES = ("condition's own", "30 dB", "20 dB", "10 dB", "5 dB", "0 dB")  # the widget's noise slider


def robustness_view(scores_by_method: Mapping[str, Callable], clip: np.ndarray, voice_speaker: str, face_speakers,
                    condition, snr_choice: str = SNR_CHOICES[0], *, table: pd.DataFrame | None = None, seed: int = 0) -> list:
    """What the widget shows for one (condition, noise) choice, in order: the degraded
    clip's :func:`spectrogram_figure`, the :func:`one_to_two_view` table and (with
    ``table``) that condition's rows of the robustness table. ``snr_choice`` is one of
    :data:`SNR_CHOICES` ("condition's own" keeps the condition as it is)."""
    if snr_choice not in SNR_CHOICES:
        raise ValueError(f"snr_choice must be one of {SNR_CHOICES}, got {snr_choice!r}")
    snr_db = None if snr_choice == SNR_CHOICES[0] else float(snr_choice.split()[0])
    c = get_condition(condition)
    wave = degraded_clip(clip, c, snr_db=snr_db, seed=seed)
    label = c.label + ("" if snr_db is None else f", white noise at {snr_db:g} dB first")
    items = [spectrogram_figure(wave, title=f"The clip: {label}"),
             one_to_two_view(scores_by_method, clip, voice_speaker, face_speakers, c, snr_db=snr_db, seed=seed)]
    if table is not None:
        rows = table[table["condition"] == c.name]
        cols = ["method", "status", *[x for m in ROBUSTNESS_METRICS for x in (m, f"{m}_low", f"{m}_high")]]
        items.append(rows[[x for x in cols if x in rows]].round(3).set_index("method"))
    return items


def build_robustness_widget(scores_by_method: Mapping[str, Callable], clip: np.ndarray, voice_speaker: str, face_speakers,
                            *, table: pd.DataFrame | None = None, conditions: Sequence = ROBUSTNESS_CONDITIONS, seed: int = 0):
    """Choose a condition and (optionally) extra noise: :func:`robustness_view` redrawn."""
    import ipywidgets as w  # deferred: only a notebook needs ipywidgets

    cond = w.Dropdown(options=condition_options(conditions), value=get_condition(conditions[0]).name, description="condition")
    snr = w.SelectionSlider(options=list(SNR_CHOICES), value=SNR_CHOICES[0], description="extra noise",
                            style={"description_width": "initial"})
    out = w.Output()

    def update(*_):
        show_in(out, *robustness_view(scores_by_method, clip, voice_speaker, face_speakers, cond.value, snr.value,
                                      table=table, seed=seed))

    cond.observe(update, "value")
    snr.observe(update, "value")
    update()
    return w.VBox([w.HBox([cond, snr]), out])
