"""Widget and figure logic for ``book/10_learned_embeddings.ipynb``.

Everything here takes plain values (what a dropdown or slider holds) and
returns numbers, tables or plotly figures, so it is unit-tested without a
browser; :func:`build_training_widget` only wires them to ipywidgets.

* :func:`margin_parameter` -- which parameter plays the "margin" of each loss
  (beta of the triplet losses, m of seed 003 eq. (4), the InfoNCE temperature),
  its slider range and its default;
* :func:`train_and_score` -- one method trained with
  :func:`vfmatch.embeddings.fit_population` and scored with
  :func:`vfmatch.evaluation.evaluate_similarity` (1:2 with identity-bootstrap CIs);
* :func:`one_to_two_table`, :func:`one_to_two_figure` -- held-out 1:2 V->F,
  unrestricted and same-gender, with their 95 % intervals;
* :func:`history_figure` -- the training curve (``method.history_``);
* :func:`map_coordinates`, :func:`map_figure` -- a 2-D map (PCA or MDS) of the
  shared space, voices and faces together, as seed 003's figures;
* :func:`build_training_widget` -- loss, margin, epochs and embedding size in,
  training curve and 1:2 out.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from sklearn.decomposition import PCA
from sklearn.manifold import MDS

from ..embeddings import create_embedding_method, fit_population, list_embedding_methods
from ..evaluation import evaluate_similarity
from .display import show_in

__all__ = [
    "MARGIN_PARAMETERS",
    "EMBED_SIZES",
    "margin_parameter",
    "train_and_score",
    "one_to_two_table",
    "one_to_two_figure",
    "history_figure",
    "map_coordinates",
    "map_figure",
    "build_training_widget",
]

#: method -> (its margin-like parameter, slider minimum, maximum, step). The
#: triplet margin beta is in squared-distance units of L2-normalised embeddings
#: (0 to 4); seed 003's m (eq. (4)) must be > 0; the InfoNCE temperature tau > 0
#: plays the same role (a smaller tau separates the positive from the negatives more sharply).
MARGIN_PARAMETERS = {
    "triplet": ("margin", 0.0, 4.0, 0.05),
    "weighted_triplet": ("margin", 0.0, 4.0, 0.05),
    "sss": ("m", 0.1, 10.0, 0.1),
    "contrastive": ("temperature", 0.02, 1.0, 0.01),
}
#: the embedding sizes D the widget offers (the library default is 128, as seed 003)
EMBED_SIZES = (2, 8, 32, 128, 256)

_ONE_TO_TWO = {"identification_1to2_vf": "U", "identification_1to2_vf_gender_restricted": "G"}


def margin_parameter(method: str) -> dict:
    """The margin-like parameter of ``method``: ``{"name", "min", "max", "step", "default"}``.

    ``default`` is the method's own default (``create_embedding_method(method).get_params()``)."""
    if method not in MARGIN_PARAMETERS:
        raise ValueError(f"method must be one of {sorted(MARGIN_PARAMETERS)}, got {method!r}")
    name, low, high, step = MARGIN_PARAMETERS[method]
    default = float(create_embedding_method(method).get_params()[name])
    return {"name": name, "min": low, "max": high, "step": step, "default": default}


def train_and_score(method: str, train, test, *, margin: float | None = None, epochs: int | None = None,
                    embed_dim: int | None = None, seed: int = 0, n_boot: int = 200, n_triplets: int = 4000,
                    **params) -> tuple:
    """Train ``method`` on ``train``'s identities, score ``test``'s voices against their faces.

    Parameters
    ----------
    method : a name of :func:`vfmatch.embeddings.list_embedding_methods`
    train, test : identity-disjoint :class:`~vfmatch.data.population.Population` parts
        (e.g. ``split_roles(population, RunConfig())["train"]`` and ``["test"]``)
    margin : the value of :func:`margin_parameter`'s parameter (None: the method's default)
    epochs, embed_dim : training epochs and the size D of the shared space (None: defaults)
    n_boot : identity-bootstrap resamples of the 95 % intervals (0: none)
    params : any other parameter of the method (e.g. ``reweight=False`` for ``sss``)

    Returns
    -------
    ``(result, metrics)``: the :class:`~vfmatch.embeddings.EmbeddingResult` and
    the dict of :func:`vfmatch.evaluation.evaluate_similarity` on the test
    people (``identification_1to2_vf``, ``..._gender_restricted``, ``ci``, ...).
    """
    if margin is not None:
        params[margin_parameter(method)["name"]] = float(margin)
    if epochs is not None:
        params["epochs"] = int(epochs)
    if embed_dim is not None:
        params["embed_dim"] = int(embed_dim)
    result = fit_population(method, train, test, seed=seed, **params)
    metrics = evaluate_similarity(result.similarity(), result.voice_speakers, result.face_speakers,
                                  voice_gender=result.voice_gender, face_gender=result.face_gender,
                                  n_triplets=n_triplets, n_boot=n_boot, seed=seed)
    return result, metrics


def one_to_two_table(metrics: Mapping[str, dict]) -> pd.DataFrame:
    """Held-out 1:2 V->F accuracy per method, {name: evaluate_similarity dict} in.

    One row per method: accuracy on unrestricted (U) and same-gender (G) lists,
    each with the low and high ends of its 95 % identity-bootstrap interval
    (NaN when computed without a bootstrap) and the chance level; rounded to 3
    decimals. Accuracy is the share of 1:2 lists whose true face scores higher
    (a tie counts 1/2)."""
    rows = []
    for name, m in metrics.items():
        row = {"method": name}
        for key, tag in _ONE_TO_TWO.items():
            if key not in m:
                continue
            low, high = m.get("ci", {}).get(key, (np.nan, np.nan))
            row.update({f"1:2 V->F ({tag})": m[key], f"({tag}) CI low": low, f"({tag}) CI high": high})
        row["chance"] = m["chance"]["identification_1to2_vf"]
        rows.append(row)
    return pd.DataFrame(rows).set_index("method").astype(float).round(3)


def one_to_two_figure(metrics: Mapping[str, dict], title: str = "Held-out 1:2 V->F accuracy, 95 % identity-bootstrap CI"):
    """Points with error bars: one per method and list type (U, G); the dashed line is chance (0.5)."""
    fig = go.Figure()
    names = list(metrics)
    for key, tag in _ONE_TO_TWO.items():
        have = [n for n in names if key in metrics[n]]
        y = np.array([metrics[n][key] for n in have], dtype=float)
        ci = np.array([metrics[n].get("ci", {}).get(key, (v, v)) for n, v in zip(have, y)], dtype=float).reshape(-1, 2)
        label = "unrestricted lists (U)" if tag == "U" else "same-gender lists (G)"
        fig.add_trace(go.Scatter(x=have, y=y, mode="markers", name=label, marker=dict(size=10),
                                 error_y=dict(type="data", symmetric=False, array=ci[:, 1] - y, arrayminus=y - ci[:, 0])))
    fig.add_hline(y=0.5, line_dash="dash", line_color="grey", annotation_text="chance")
    fig.update_layout(title=title, xaxis_title="method", yaxis_title="1:2 V->F accuracy (share of lists right)",
                      yaxis_range=[0.3, 1.0], width=700, height=420)
    return fig


def history_figure(history: Sequence[dict], title: str = "Training curve"):
    """The mean training loss per epoch, one line per training stage, from ``method.history_``.

    ``history``: the list of ``{"stage", "epoch", "loss"}`` of
    :class:`~vfmatch.embeddings.EmbeddingMethod` (``sss`` trains in stages:
    ``warmup``, ``reweight`` -- one entry with ``"batches"`` instead of
    ``"epoch"``, named in the legend -- and ``train``, which restarts from new
    weights). The loss is in the method's own units, so compare curves of one
    method, not the levels of two."""
    fig = go.Figure()
    stages = list(dict.fromkeys(h["stage"] for h in history))
    for stage in stages:
        rows = [h for h in history if h["stage"] == stage]
        if "epoch" in rows[0]:
            fig.add_trace(go.Scatter(x=[h["epoch"] for h in rows], y=[h["loss"] for h in rows], mode="lines",
                                     name=f"stage {stage!r}"))
        else:  # a stage counted in batches (sss re-weighting): one mean loss, shown as a point at epoch 0
            for h in rows:
                fig.add_trace(go.Scatter(x=[0], y=[h["loss"]], mode="markers", marker=dict(symbol="diamond", size=10),
                                         name=f"stage {stage!r}: mean over {h.get('batches', '?')} batches"))
    if not history:
        title += " (no epochs trained)"
    fig.update_layout(title=title, xaxis_title="epoch (of its stage)", yaxis_title="mean training loss",
                      width=650, height=380)
    return fig


def map_coordinates(voice_embeddings, face_embeddings, voice_speakers, face_speakers, identities: pd.DataFrame,
                    *, projection: str = "pca", seed: int = 0) -> pd.DataFrame:
    """2-D coordinates of voices and faces in the shared space, for :func:`map_figure`.

    Parameters
    ----------
    voice_embeddings, face_embeddings : (n_voices, D), (n_faces, D), e.g. an
        :class:`~vfmatch.embeddings.EmbeddingResult`'s
    voice_speakers, face_speakers : identity of every row
    identities : the population's identities table (``speaker_id`` and, when
        present, ``gender`` and ``ethnicity``, copied onto every point)
    projection : ``"pca"`` (scikit-learn PCA of the voices and faces together:
        one linear view, the axes are the two directions of largest variance) or
        ``"mds"`` (metric MDS of the Euclidean distances, which for L2-normalised
        embeddings order pairs as the cosine does; slower, n^2 memory)

    Returns
    -------
    DataFrame, one row per point: ``x``, ``y``, ``modality`` ("voice"/"face"),
    ``speaker_id`` and the identity columns. ``df.attrs["axis_titles"]`` holds
    the two axis titles (PCA: with the share of variance each axis explains).
    """
    v = np.asarray(voice_embeddings, dtype=np.float64)
    f = np.asarray(face_embeddings, dtype=np.float64)
    if v.ndim != 2 or f.ndim != 2 or v.shape[1] != f.shape[1]:
        raise ValueError(f"voice and face embeddings must be (n, D) with the same D, got {v.shape} and {f.shape}")
    if len(voice_speakers) != len(v) or len(face_speakers) != len(f):
        raise ValueError("one speaker per embedding row is needed: got "
                         f"{len(voice_speakers)} voice and {len(face_speakers)} face speakers for {len(v)} and {len(f)} rows")
    X = np.vstack([v, f])
    if projection == "pca":
        pca = PCA(n_components=2, random_state=seed)
        xy = pca.fit_transform(X)
        share = 100 * pca.explained_variance_ratio_
        titles = [f"PC {k + 1} ({share[k]:.0f} % of the variance)" for k in range(2)]
    elif projection == "mds":
        xy = MDS(n_components=2, random_state=seed, n_init=1, init="classical_mds", normalized_stress="auto").fit_transform(X)
        titles = ["MDS axis 1 (embedding distance)", "MDS axis 2 (embedding distance)"]
    else:
        raise ValueError(f"projection must be 'pca' or 'mds', got {projection!r}")
    df = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "modality": ["voice"] * len(v) + ["face"] * len(f),
                       "speaker_id": np.concatenate([np.asarray(voice_speakers), np.asarray(face_speakers)]).astype(str)})
    cols = [c for c in ("gender", "ethnicity") if c in identities]
    info = identities.assign(speaker_id=identities["speaker_id"].astype(str)).set_index("speaker_id")[cols]
    missing = sorted(set(df["speaker_id"]) - set(info.index))
    if missing:
        raise ValueError(f"identities table lacks {len(missing)} speakers of the embeddings, e.g. {missing[:3]}")
    df = df.join(info, on="speaker_id")
    df.attrs["axis_titles"] = titles
    return df


def map_figure(coords: pd.DataFrame, color_by: str = "speaker_id", title: str | None = None):
    """Scatter of :func:`map_coordinates`: circles are voices, crosses faces, coloured by ``color_by``
    (``"speaker_id"``, ``"gender"``, ``"ethnicity"`` or any column)."""
    if color_by not in coords:
        raise ValueError(f"no column {color_by!r} to colour by; columns: {list(coords.columns)}")
    fig = px.scatter(coords, x="x", y="y", color=color_by, symbol="modality",
                     symbol_map={"voice": "circle", "face": "x"}, hover_data=["speaker_id", "modality"],
                     title=title or f"The shared space in 2-D, coloured by {color_by}")
    xt, yt = coords.attrs.get("axis_titles", ("axis 1", "axis 2"))
    fig.update_layout(xaxis_title=xt, yaxis_title=yt, width=700, height=520,
                      showlegend=color_by != "speaker_id")  # one legend entry per person is noise
    return fig


def build_training_widget(train, test, *, methods: Sequence[str] | None = None, epochs: int | None = None,
                          seed: int = 0, n_boot: int = 200):
    """Dropdowns and sliders for the loss, its margin, the epochs and the embedding size, and a *Train* button.

    Each press trains :func:`train_and_score` on ``train`` and shows the
    training curve (:func:`history_figure`) and the held-out 1:2 table
    (:func:`one_to_two_table`); results are kept, so going back to a setting is
    instant. The first setting (the first method's defaults; ``epochs`` to start
    the slider elsewhere) is trained at once."""
    import ipywidgets as w  # deferred: ipywidgets is optional (the "book" extra)

    methods = list(methods or list_embedding_methods())
    first = margin_parameter(methods[0])
    loss = w.Dropdown(options=methods, value=methods[0], description="loss")
    margin = w.FloatSlider(value=first["default"], min=first["min"], max=first["max"], step=first["step"],
                           description=first["name"], continuous_update=False)
    defaults = create_embedding_method(methods[0]).get_params()
    epochs = w.IntSlider(value=int(defaults["epochs"] if epochs is None else epochs), min=0, max=300, step=10, description="epochs",
                         continuous_update=False)
    size = w.Dropdown(options=list(EMBED_SIZES), value=int(defaults["embed_dim"]), description="embedding D")
    button = w.Button(description="Train", button_style="primary")
    out = w.Output()
    done: dict = {}

    def on_loss(change):
        p = margin_parameter(change["new"])
        # Widen the range before moving the value, so the slider never clips it.
        margin.min, margin.max = min(margin.min, p["min"]), max(margin.max, p["max"])
        margin.value, margin.step, margin.description = p["default"], p["step"], p["name"]
        margin.min, margin.max = p["min"], p["max"]

    def train_now(_=None):
        key = (loss.value, round(float(margin.value), 4), int(epochs.value), int(size.value))
        if key not in done:
            show_in(out, f"training {key[0]} ({margin.description} = {key[1]}, {key[2]} epochs, D = {key[3]}) ...")
            result, metrics = train_and_score(key[0], train, test, margin=key[1], epochs=key[2], embed_dim=key[3],
                                              seed=seed, n_boot=n_boot)
            done[key] = (result.method.history_, metrics, result.seconds.get("train", np.nan))
        history, metrics, seconds = done[key]
        label = f"{key[0]}, {margin.description} = {key[1]}, {key[2]} epochs, D = {key[3]}"
        show_in(out, history_figure(history, f"Training curve: {label} ({seconds:.1f} s)"),
                one_to_two_table({label: metrics}))

    loss.observe(on_loss, "value")
    button.on_click(train_now)
    train_now()
    return w.VBox([w.HBox([loss, margin]), w.HBox([epochs, size, button]), out])
