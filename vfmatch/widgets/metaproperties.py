"""Widget logic for chapter 4: one person's metaproperties from the voice and the face.

Book chapter: ``book/04_metaproperties.ipynb``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from plotly.subplots import make_subplots

from ..metaproperties import get_metaproperty
from .display import show_in

__all__ = ["person_distributions", "distributions_figure", "build_person_widget", "attention_figure", "quality_table"]


def _rows_of(speakers: np.ndarray, speaker_id: str, which: int, what: str) -> int:
    rows = np.flatnonzero(np.asarray(speakers) == str(speaker_id))
    if rows.size == 0:
        raise KeyError(f"no {what} of {speaker_id!r} in this population")
    if not 0 <= which < rows.size:
        raise IndexError(f"{speaker_id!r} has {rows.size} {what}s; asked for number {which}")
    return int(rows[which])


def person_distributions(extractors, population, speaker_id: str, *, clip: int = 0, face: int = 0) -> pd.DataFrame:
    """The voice's and the face's distribution for every metaproperty of one person.

    Parameters
    ----------
    extractors : ExtractorSet (fitted)
    population : Population holding the person
    speaker_id : str
    clip, face : int
        Which of the person's clips and faces (0 = the first).

    Returns
    -------
    DataFrame, one row per (metaproperty, value): ``metaproperty, value, voice,
    face, truth`` (truth is 1 for the person's true value, 0 otherwise, NaN if unknown).
    """
    v_row = _rows_of(population.voice_speakers, speaker_id, clip, "clip")
    f_row = _rows_of(population.face_speakers, speaker_id, face, "face")
    one = population.select([speaker_id])
    v_local = int(np.flatnonzero(np.flatnonzero(population.voice_speakers == str(speaker_id)) == v_row)[0])
    f_local = int(np.flatnonzero(np.flatnonzero(population.face_speakers == str(speaker_id)) == f_row)[0])
    voices, faces = extractors.transform_voices(one), extractors.transform_faces(one)
    rows = []
    for name in extractors.metaproperties:
        mp = get_metaproperty(name)
        truth = one.labels(name)[0] if one.has_metaproperty(name) else -1
        for k, value in enumerate(mp.values):
            rows.append({
                "metaproperty": name,
                "value": value,
                "voice": float(voices[name][v_local, k]) if name in voices else np.nan,
                "face": float(faces[name][f_local, k]) if name in faces else np.nan,
                "truth": float(truth == k) if truth >= 0 else np.nan,
            })
    return pd.DataFrame(rows)


def distributions_figure(table: pd.DataFrame, *, title: str = "", columns: int = 2):
    """Bars of voice and face probabilities per metaproperty (a grid of panels); the true value is starred."""
    names = list(dict.fromkeys(table["metaproperty"]))
    rows = int(np.ceil(len(names) / columns))
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=names, vertical_spacing=0.12 / max(rows / 4, 1))
    for i, name in enumerate(names):
        t = table[table["metaproperty"] == name]
        r, c = i // columns + 1, i % columns + 1
        labels = [f"{v} *" if tr == 1 else str(v) for v, tr in zip(t["value"], t["truth"])]
        fig.add_bar(x=labels, y=t["voice"], name="voice", marker_color="#1f77b4", showlegend=i == 0, row=r, col=c)
        fig.add_bar(x=labels, y=t["face"], name="face", marker_color="#ff7f0e", showlegend=i == 0, row=r, col=c)
        fig.update_yaxes(range=[0, 1], title_text="probability" if c == 1 else None, row=r, col=c)
        if i + columns >= len(names):  # bottom panel of its column
            fig.update_xaxes(title_text="value", row=r, col=c)
    fig.update_layout(barmode="group", height=260 * rows, title=title or "Voice and face distributions (* = true value)")
    return fig


def build_person_widget(extractors, population):
    """A dropdown of people redrawing :func:`distributions_figure` for the chosen one."""
    import ipywidgets as w  # deferred: ipywidgets is optional (the "book" extra)

    out = w.Output()
    pick = w.Dropdown(options=population.speaker_ids, description="person")
    clip = w.IntSlider(0, min=0, max=3, description="clip")
    face = w.IntSlider(0, min=0, max=3, description="face")

    def redraw(_=None):
        n_clips = int(np.sum(population.voice_speakers == pick.value))
        n_faces = int(np.sum(population.face_speakers == pick.value))
        clip.max, face.max = max(n_clips - 1, 0), max(n_faces - 1, 0)
        table = person_distributions(extractors, population, pick.value, clip=min(clip.value, clip.max), face=min(face.value, face.max))
        show_in(out, distributions_figure(table, title=f"{pick.value}: voice and face distributions (* = true value)"))

    for c in (pick, clip, face):
        c.observe(redraw, names="value")
    redraw()
    return w.VBox([w.HBox([pick, clip, face]), out])


def attention_figure(extractor, item, *, title: str = ""):
    """What a fitted ViT extractor looks at in one clip (or face): its input beside the attention rollout.

    ``item`` is one 16 kHz clip (voice) or one face image (H, W, 3) with its
    landmarks as ``(image, landmarks)`` (face)."""
    calc = getattr(extractor, "calculator_", None)
    if calc is None or not hasattr(calc, "attention_rollout"):
        raise ValueError("attention_figure needs a fitted extractor whose calculator is 'vit'")
    if extractor.modality == "voice":
        x = extractor.encoder_.encode([item])[0]
        shown = x
    else:
        image, landmarks = item if isinstance(item, tuple) else (item, None)
        x = extractor.encoder_.encode(np.asarray(image)[None], landmarks=None if landmarks is None else np.asarray(landmarks, np.float32)[None])[0]
        shown = x.mean(axis=0)  # grey-level view of the aligned face
    att = calc.attention_rollout(x)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("input (log-Mel, dB)" if extractor.modality == "voice" else "input (aligned face, grey)", "attention of the class token"))
    fig.add_heatmap(z=shown, colorscale="Magma" if extractor.modality == "voice" else "gray", showscale=False, row=1, col=1)
    fig.add_heatmap(z=att, colorscale="Viridis", colorbar=dict(title="share"), row=2, col=1)
    if extractor.modality == "face":
        fig.update_yaxes(autorange="reversed")
    # The rollout is spread back onto the input's grid, so both panels share its axes.
    ylabel, xlabel = ("row (pixels)", "column (pixels)") if extractor.modality == "face" else ("Mel band", "frame (20 ms)")
    fig.update_yaxes(title_text=ylabel)
    fig.update_xaxes(title_text=xlabel, row=2, col=1)
    fig.update_layout(height=520, title=title or f"ViT for {extractor.metaproperty} ({extractor.modality}): attention rollout")
    return fig


def quality_table(report: pd.DataFrame) -> pd.DataFrame:
    """The report's headline columns, rounded, one row per metaproperty x modality."""
    cols = ["metaproperty", "modality", "encoder", "calculator", "balanced_accuracy", "ci_low", "ci_high",
            "baseline_balanced_accuracy", "beats_baseline", "accuracy", "baseline_accuracy", "ordinal_mae", "baseline_ordinal_mae", "ece"]
    return report[[c for c in cols if c in report]].round(3)
