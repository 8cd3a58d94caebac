"""Widget logic for chapter 12, ``book/12_rebuilding_faces.ipynb``: rebuilding a face from a voice.

:func:`fusion_setup` gathers what every move of the widget reuses -- the test
speakers (one voice each), the matcher's level of match to every test face,
the gallery aligned and embedded once (:class:`vfmatch.fusion.FusionGallery`);
:func:`rebuild` fuses one voice's best faces under a rule and returns the fused
face, the speaker's own face and the figures of that one voice (the true
face's percentile rank and the extractors' agreement, beside the random-faces
and mean-face baselines); :func:`rebuild_figure` and :func:`reading_table`
show it; :func:`build_fusion_widget` wires voice, N (or P %), weighting and
method to ipywidgets. :func:`methods_figure` puts the aligned average and the
morph of the same faces side by side, :func:`sweep_figure` draws
:func:`vfmatch.fusion.fusion_sweep`'s rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..features.encoders import create_face_encoder
from ..fusion.evaluate import FusionGallery, evaluate_fusion
from ..fusion.reconstruct import FUSION_METHODS, align_to_template, fuse_aligned, match_weights, select_best_matches
from ..job.fusion_step import FUSION_DEFAULTS, fusion_inputs
from ..job.prepare import MatchingData
from ..metaproperties import get_metaproperty
from .display import show_in

__all__ = ["FusionSetup", "fusion_setup", "rebuild", "rebuild_figure", "reading_table", "methods_figure",
           "sweep_figure", "build_fusion_widget"]

FUSED_SIZE, FUSED_ZOOM = 112, 0.8  # as the run's fusion stage: the encoders' own crop (zoom 0.8) fits inside


@dataclass
class FusionSetup:
    """What every widget move reuses.

    inputs : :func:`vfmatch.job.fusion_step.fusion_inputs` (scores (n_speakers, n_faces),
        images, landmarks, speakers, truth); gallery : the test faces aligned
        (``FUSED_SIZE`` px, zoom ``FUSED_ZOOM``) and embedded by ``encoder``;
        extractors : the run's fitted extractor set (reads the fused faces), or None"""

    inputs: dict
    gallery: FusionGallery
    encoder: object
    extractors: object | None

    @property
    def n_voices(self) -> int:
        return len(self.inputs["voice_speakers"])


def fusion_setup(data: MatchingData, matcher=None, *, scores: np.ndarray | None = None,
                 face_encoder: str = FUSION_DEFAULTS["face_encoder"]) -> FusionSetup:
    """The test role of ``data`` ready for :func:`rebuild`: scored by ``matcher``
    (its level of match) unless ``scores`` (n_test_clips, n_test_faces) is given."""
    if scores is None:
        scores = matcher.similarity_matrix(*data.tables("test"))
    inputs = fusion_inputs(data, scores)
    if isinstance(inputs, str):
        raise ValueError(inputs)
    encoder = create_face_encoder(face_encoder)
    emb = np.asarray(encoder.encode(inputs["images"], landmarks=inputs["landmarks"][:, :5]), dtype=np.float64)
    emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    aligned = align_to_template(inputs["images"], inputs["landmarks"], size=FUSED_SIZE, zoom=FUSED_ZOOM)
    return FusionSetup(inputs, FusionGallery(aligned, emb, np.asarray(inputs["face_speakers"]).astype(str)), encoder, data.extractors)


def _rule(top_n, top_percent, threshold) -> dict:
    if top_percent is not None:
        return {"top_percent": float(top_percent), "top_n": None}
    if threshold is not None:
        return {"threshold": float(threshold), "top_n": None}
    return {"top_n": int(top_n)}


def rebuild(setup: FusionSetup, voice: int, *, top_n: int | None = 10, top_percent: float | None = None,
            threshold: float | None = None, weighted: bool = False, method: str = "morph", seed: int = 0) -> dict:
    """Rebuild one test speaker's face and measure it against the two baselines.

    Parameters
    ----------
    setup : :func:`fusion_setup`
    voice : index of the test speaker (0 .. ``setup.n_voices - 1``)
    top_n, top_percent, threshold : the selection rule (one; ``top_n`` unless another is given)
    weighted, method : match-weighted or uniform average; ``"align"`` or ``"morph"``
    seed : seed of the random-faces baseline

    Returns
    -------
    dict: ``fused`` (size, size, 3) uint8, ``true_face`` (the speaker's first face,
    aligned alike), ``mean_face``, ``selected`` (gallery indices, best first),
    ``weights``, ``scores`` (their levels of match), ``speaker``, ``figures``
    (figure -> {"matched", "random", "mean_face"} for this voice; percentile rank
    0.5 = chance), ``reading`` (:func:`reading_table`'s frame).
    """
    inp = setup.inputs
    if not 0 <= int(voice) < setup.n_voices:
        raise ValueError(f"voice must be between 0 and {setup.n_voices - 1}, got {voice}")
    if method not in FUSION_METHODS:
        raise ValueError(f"method must be one of {FUSION_METHODS}, got {method!r}")
    v = slice(int(voice), int(voice) + 1)
    truth = {k: y[v] for k, y in inp["truth"].items()}
    res = evaluate_fusion(inp["scores"][v], inp["images"], inp["landmarks"], inp["voice_speakers"][v], inp["face_speakers"],
                          truth, setup.extractors, setup.encoder, **_rule(top_n, top_percent, threshold), weighted=weighted,
                          method=method, size=FUSED_SIZE, zoom=FUSED_ZOOM, n_boot=0, seed=seed, gallery=setup.gallery,
                          return_faces=True)
    faces = res.pop("faces")
    speaker = str(inp["voice_speakers"][voice])
    own = np.flatnonzero(setup.gallery.speakers == speaker)
    true_face = (np.clip(setup.gallery.aligned.images[own[0]], 0, 1) * 255 + 0.5).astype(np.uint8)
    sel = faces["selected"][0]
    out = {
        "fused": faces["matched"][0], "true_face": true_face, "mean_face": faces["mean_face"], "selected": sel,
        "weights": faces["weights"][0], "scores": inp["scores"][voice, sel], "speaker": speaker, "method": method,
        "figures": {k: {a: e[a] for a in ("matched", "random", "mean_face")} for k, e in res.items() if k != "settings"},
        "settings": res["settings"],
    }
    out["reading"] = reading_table(setup, out["fused"], faces["landmarks"][0], {k: int(y[0]) for k, y in truth.items()})
    return out


def reading_table(setup: FusionSetup, image: np.ndarray, landmarks: np.ndarray, truth: dict) -> pd.DataFrame:
    """What the run's face extractors read in a fused face, beside the speaker's true value.

    One row per metaproperty: ``read`` (the most probable value), ``p_read`` (its
    probability), ``true`` (the speaker's value), ``agrees``. Empty when the run
    saved no extractors."""
    if setup.extractors is None:
        return pd.DataFrame(columns=["metaproperty", "read", "p_read", "true", "agrees"])
    probs = setup.extractors.predict_faces(image[None], landmarks=np.asarray(landmarks, np.float32)[None, :5])
    rows = []
    for name, y in truth.items():
        if name not in probs or y < 0:
            continue
        mp, p = get_metaproperty(name), np.asarray(probs[name][0], dtype=float)
        k = int(np.argmax(p))
        rows.append({"metaproperty": name, "read": mp.values[k], "p_read": round(float(p[k]), 3),
                     "true": mp.values[y], "agrees": k == y})
    return pd.DataFrame(rows)


def _tile(fig, img, row, col, name):
    fig.add_trace(go.Image(z=img, name=name, hovertemplate=f"{name}<extra></extra>"), row=row, col=col)


def rebuild_figure(setup: FusionSetup, result: dict, shown: int = 4):
    """The voice's ``shown`` best faces (with their levels of match), the fused face, the true face."""
    sel = result["selected"][:shown]
    titles = [f"#{i + 1}: {s:.2f}" for i, s in enumerate(result["scores"][:shown])] + [
        f"fused ({len(result['selected'])}, {result['method']})", f"true face ({result['speaker']})"]
    fig = make_subplots(rows=1, cols=len(titles), subplot_titles=titles, horizontal_spacing=0.01)
    for i, j in enumerate(sel):
        img = (np.clip(setup.gallery.aligned.images[j], 0, 1) * 255 + 0.5).astype(np.uint8)
        _tile(fig, img, 1, i + 1, f"best match {i + 1}, {setup.gallery.speakers[j]}")
    _tile(fig, result["fused"], 1, len(sel) + 1, "fused face")
    _tile(fig, result["true_face"], 1, len(sel) + 2, "the speaker's own face")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    pr = result["figures"]["true_face_percentile_rank"]
    fig.update_layout(height=260, margin=dict(l=5, r=5, t=70, b=5), title=(
        f"true face's percentile rank: fused {pr['matched']:.2f} · random faces {pr['random']:.2f} · "
        f"mean face {pr['mean_face']:.2f} (0.5 = chance); tile titles = level of match"))
    return fig


def methods_figure(setup: FusionSetup, voice: int, top_n: int = 10, weighted: bool = False):
    """The same selected faces fused both ways: similarity-aligned average | landmark morph | true face."""
    inp = setup.inputs
    speaker = str(inp["voice_speakers"][voice])
    pool = np.flatnonzero(setup.gallery.speakers != speaker)  # never the speaker's own faces, as in the evaluation
    sel = pool[select_best_matches(inp["scores"][voice, pool], top_n=top_n)]
    faces = setup.gallery.aligned.take(sel)
    w = match_weights(inp["scores"][voice, sel]) if weighted else None
    tiles = [fuse_aligned(faces, w, method=m)[0] for m in ("align", "morph")]
    own = np.flatnonzero(setup.gallery.speakers == speaker)[0]
    tiles.append(setup.gallery.aligned.images[own])
    titles = [f"aligned average of {top_n}", f"morph of the same {top_n}", "true face"]
    fig = make_subplots(rows=1, cols=3, subplot_titles=titles, horizontal_spacing=0.02)
    for i, (img, t) in enumerate(zip(tiles, titles)):
        _tile(fig, (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), 1, i + 1, t)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=300, margin=dict(l=5, r=5, t=50, b=5))
    return fig


def sweep_figure(rows: list[dict], figure: str = "true_face_percentile_rank", title: str | None = None):
    """Matched vs random-faces vs mean-face value of ``figure`` for every row of
    :func:`vfmatch.fusion.fusion_sweep` (x: rule and weighting), matched with its 95 % interval."""
    labels = [f"{r['rule']} {'weighted' if r['weighted'] else 'uniform'} (~{r['mean_faces_fused']:.0f} faces)" for r in rows]
    m = np.array([r[f"{figure}.matched"] for r in rows], dtype=float)
    ci = np.array([r.get(f"{figure}.matched_ci") or [v, v] for r, v in zip(rows, m)], dtype=float).reshape(-1, 2)
    fig = go.Figure()
    fig.add_bar(x=labels, y=m, name="fused best matches", marker_color="#1f77b4",
                error_y=dict(type="data", symmetric=False, array=ci[:, 1] - m, arrayminus=m - ci[:, 0]))
    fig.add_bar(x=labels, y=[r[f"{figure}.random"] for r in rows], name="fused random faces", marker_color="#ff7f0e")
    fig.add_bar(x=labels, y=[r[f"{figure}.mean_face"] for r in rows], name="mean face", marker_color="#7f7f7f")
    fig.update_layout(barmode="group", title=title or f"{figure.replace('_', ' ')} by selection rule",
                      xaxis_title="selection rule, weighting (mean faces fused)", yaxis=dict(title="share (0-1)", range=[0, 1]))
    return fig


def build_fusion_widget(setup: FusionSetup, max_n: int = 30):
    """Pick a test voice, N (or P %), weighting and method: the fused face beside the true one, and the figures."""
    import ipywidgets as W  # deferred: ipywidgets is optional (the "book" extra)

    n_faces = len(setup.gallery.speakers)
    voice = W.IntSlider(value=0, min=0, max=setup.n_voices - 1, description="voice")
    rule = W.ToggleButtons(options=["top N", "top P %"], value="top N", description="rule")
    n = W.IntSlider(value=min(10, n_faces - 1), min=1, max=min(max_n, n_faces - 1), description="N")
    p = W.FloatSlider(value=10.0, min=1.0, max=50.0, step=1.0, description="P %")
    weighted = W.Checkbox(value=False, description="weight by level of match")
    method = W.Dropdown(options=list(FUSION_METHODS), value="morph", description="method")
    out = W.Output()

    def redraw(*_):
        kw = {"top_n": n.value} if rule.value == "top N" else {"top_percent": p.value}
        res = rebuild(setup, voice.value, **kw, weighted=weighted.value, method=method.value)
        table = pd.DataFrame(res["figures"]).T.round(3)
        show_in(out, rebuild_figure(setup, res), table, res["reading"])

    for c in (voice, rule, n, p, weighted, method):
        c.observe(redraw, names="value")
    redraw()
    return W.VBox([W.HBox([voice, rule]), W.HBox([n, p]), W.HBox([weighted, method]), out])
