"""Widget logic for chapters 05-07: distances and weights, difficulty, retrieval.

Every function takes a :class:`vfmatch.job.prepare.MatchingData` (the extracted
metaproperty tables of the "matcher", "threshold" and "test" identities, from
:func:`vfmatch.job.prepare.prepare`) and plain parameter values, and returns
frames, dicts or plotly figures; the ``build_*`` functions only wire them to
ipywidgets. The labelled pairs of every role come from
:meth:`~vfmatch.job.prepare.MatchingData.role_pairs`, computed once per seed,
so every move of a widget sees the same pairs. The dropdowns offer what the
registries hold (:func:`vfmatch.matching.distances.list_distances`,
:func:`vfmatch.matching.classifiers.list_classifiers`).

* ``book/05_distances_and_weights.ipynb`` -- :func:`fit_and_score`,
  :func:`weights_accuracy_figure`, :func:`build_distances_widget`;
* ``book/06_difficulty_and_curriculum.ipynb`` -- :func:`difficulty_summary`,
  :func:`confidence_figure`, :func:`retraining_comparison`,
  :func:`build_difficulty_widget`;
* ``book/07_matching_and_retrieval.ipynb`` -- :func:`ranked_gallery`,
  :func:`gallery_figure`, :func:`explain_pair`, :func:`build_gallery_widget`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..evaluation.metrics import roc_auc
from ..evaluation.summary import evaluate_similarity
from ..job.prepare import MatchingData
from ..job.report import distributions_figure, explanation_figure
from ..matching.classifiers import list_classifiers
from ..matching.difficulty import categorize, category_counts, compare_strategies, confidence
from ..matching.distances import list_distances
from ..matching.matcher import MetapropertyMatcher
from .display import show_in

__all__ = [
    "DISTANCE_CHOICES",
    "distance_choices",
    "fit_and_score",
    "score_matcher",
    "weights_accuracy_figure",
    "build_distances_widget",
    "difficulty_summary",
    "confidence_figure",
    "retraining_comparison",
    "build_difficulty_widget",
    "ranked_gallery",
    "gallery_figure",
    "true_rank",
    "explain_pair",
    "build_gallery_widget",
]



def distance_choices() -> tuple[str, ...]:
    """``"auto"`` and every registered distance: the options of chapter 05's dropdowns."""
    return ("auto",) + tuple(list_distances())


# The choices when this module was imported (chapter 05 loops over them);
# the widgets ask distance_choices() again, so a distance registered later shows up.
DISTANCE_CHOICES = distance_choices()


# ---------------------------------------------------------------------------
# Chapter 05: distances, classifier, weights
# ---------------------------------------------------------------------------


def fit_and_score(
    data: MatchingData,
    distance: str | Mapping[str, str] = "auto",
    classifier: str = "logistic",
    *,
    oracle: bool = False,
    metaproperties: Sequence[str] | None = None,
    seed: int = 0,
) -> dict:
    """Fit a matcher with these choices and score it on the test identities.

    Returns
    -------
    dict with ``matcher`` (fitted and calibrated), ``weights`` (frame from
    :meth:`MetapropertyMatcher.weights_frame`) and ``metrics``: ``test_auc``
    and ``decision_accuracy`` on balanced test pairs (threshold from the
    threshold identities), and ``identification_1to2_vf`` from
    :func:`vfmatch.evaluation.summary.evaluate_similarity`.
    """
    if classifier not in list_classifiers():
        raise ValueError(f"classifier must be one of {list_classifiers()}, got {classifier!r}")
    pairs = data.role_pairs(seed)
    tables = data.oracle_tables if oracle else data.tables
    m = MetapropertyMatcher(metaproperties=metaproperties, distance=distance, classifier=classifier,
                            n_estimators=60, random_state=seed)
    m.fit_pairs(*tables("matcher"), pairs["matcher"]).calibrate(*tables("threshold"), pairs["threshold"])
    return {"matcher": m, "weights": m.weights_frame(), "metrics": score_matcher(data, m, oracle=oracle, seed=seed)}


def score_matcher(data: MatchingData, matcher: MetapropertyMatcher, *, oracle: bool = False, seed: int = 0) -> dict:
    """Held-out figures of a fitted, calibrated matcher on the test identities:
    ``test_auc`` and ``decision_accuracy`` on balanced test pairs, and
    ``identification_1to2_vf`` (:func:`vfmatch.evaluation.evaluate_similarity`)."""
    vt, ft = (data.oracle_tables if oracle else data.tables)("test")
    tp = data.role_pairs(seed)["test"]
    level = matcher.level_of_match(vt, ft, tp["voice_index"], tp["face_index"])
    y = tp["label"].to_numpy()
    test = data.parts["test"]
    ident = evaluate_similarity(matcher.similarity_matrix(vt, ft), test.voice_speakers, test.face_speakers, seed=seed, n_boot=0)
    return {
        "test_auc": float(roc_auc(y, level)),
        "decision_accuracy": float(np.mean((level >= matcher.threshold_) == (y == 1))),
        "identification_1to2_vf": float(ident["identification_1to2_vf"]),
    }


def weights_accuracy_figure(result: dict, title: str | None = None):
    """Bars of the weights, with the held-out figures in the title."""
    w = result["weights"]
    mt = result["metrics"]
    colors = ["#d62728" if v < 0 else "#2ca02c" for v in w["weight"]]
    fig = go.Figure(go.Bar(x=w["metaproperty"], y=w["weight"], marker_color=colors,
                           text=w["distance_function"], hovertemplate="%{x}: %{y:.3f} (%{text})<extra></extra>"))
    fig.update_layout(
        title=title or f"test AUC {mt['test_auc']:.3f} | decision accuracy {mt['decision_accuracy']:.3f} | "
        f"1:2 identification {mt['identification_1to2_vf']:.3f}",
        yaxis_title="weight (negative: a larger distance argues against a match)", template="plotly_white", height=380,
    )
    fig.add_hline(y=0, line_dash="dot")
    return fig


def build_distances_widget(data):
    """One distance dropdown per metaproperty (and one to set them all), the
    classifier, and the oracle switch; redraws the weights and held-out figures."""
    import ipywidgets as W  # deferred: ipywidgets is optional (the "book" extra)

    choices = distance_choices()
    every = W.Dropdown(options=choices, value="auto", description="all")
    per = {n: W.Dropdown(options=choices, value="auto", description=n, style={"description_width": "110px"})
           for n in data.metaproperties}
    clf = W.Dropdown(options=list_classifiers(), value="logistic", description="classifier")
    oracle = W.Checkbox(value=False, description="ground-truth metaproperties (oracle)")
    out = W.Output()
    state = {"busy": False}

    def redraw(*_):
        if state["busy"]:
            return
        choice = {n: d.value for n, d in per.items()}
        show_in(out, weights_accuracy_figure(fit_and_score(data, choice, clf.value, oracle=oracle.value)))

    def set_all(change):
        state["busy"] = True
        for d in per.values():
            d.value = change["new"]
        state["busy"] = False
        redraw()

    every.observe(set_all, names="value")
    for w in (*per.values(), clf, oracle):
        w.observe(redraw, names="value")
    redraw()
    grid = W.GridBox(list(per.values()), layout=W.Layout(grid_template_columns="repeat(4, 250px)"))
    return W.VBox([W.HBox([every, clf, oracle]), grid, out])


# ---------------------------------------------------------------------------
# Chapter 06: difficulty
# ---------------------------------------------------------------------------


def _train_probabilities(data: MatchingData, matcher, seed: int = 0):
    pairs = data.role_pairs(seed)["matcher"]
    X = matcher.pair_distances(*data.tables("matcher"), pairs["voice_index"], pairs["face_index"])
    return matcher.predict_proba(X)[:, 1], pairs["label"].to_numpy()


def difficulty_summary(data: MatchingData, matcher: MetapropertyMatcher, eps_strong: float, eps_weak: float, seed: int = 0) -> dict:
    """Categories of the matcher's training pairs for these thresholds.

    Returns ``{"counts": {category: n}, "categories": array, "confidence": array, "correct": array}``."""
    p, y = _train_probabilities(data, matcher, seed)
    cats = categorize(p, y, eps_strong, eps_weak)
    return {"counts": category_counts(cats), "categories": cats, "confidence": confidence(p), "correct": (p >= 0.5) == (y == 1)}


def confidence_figure(summary: dict, eps_strong: float, eps_weak: float):
    """Histogram of the confidence c = max(p, 1 - p), right and wrong pairs apart, with both thresholds."""
    c, ok = summary["confidence"], summary["correct"]
    fig = go.Figure()
    fig.add_histogram(x=c[ok], name="classifier right", xbins=dict(start=0.5, end=1.0, size=0.02), marker_color="#2ca02c")
    fig.add_histogram(x=c[~ok], name="classifier wrong", xbins=dict(start=0.5, end=1.0, size=0.02), marker_color="#d62728")
    fig.add_vline(x=eps_weak, line_dash="dash", annotation_text="eps_weak")
    fig.add_vline(x=eps_strong, line_dash="dash", annotation_text="eps_strong")
    counts = ", ".join(f"{k} {v}" for k, v in summary["counts"].items())
    fig.update_layout(barmode="stack", title=f"training pairs: {counts}", xaxis_title="confidence c = max(p, 1 - p)",
                      yaxis_title="pairs", template="plotly_white", height=360)
    return fig


def retraining_comparison(data: MatchingData, matcher: MetapropertyMatcher, eps_strong: float, eps_weak: float,
                          seed: int = 0) -> pd.DataFrame:
    """:func:`vfmatch.matching.difficulty.compare_strategies` on the data's roles (retrain on
    "matcher", threshold on "threshold", score on "test")."""
    pairs = data.role_pairs(seed)
    roles = [(*data.tables(r), pairs[r]) for r in ("matcher", "threshold", "test")]
    return compare_strategies(matcher, *roles, eps_strong=eps_strong, eps_weak=eps_weak)


def build_difficulty_widget(data: MatchingData, matcher: MetapropertyMatcher):
    """Two sliders (eps_weak, eps_strong) update the counts; a button retrains and compares."""
    import ipywidgets as W  # deferred: ipywidgets is optional (the "book" extra)

    weak = W.FloatSlider(value=0.6, min=0.5, max=1.0, step=0.01, description="eps_weak")
    strong = W.FloatSlider(value=0.75, min=0.5, max=1.0, step=0.01, description="eps_strong")
    go_btn = W.Button(description="retrain and compare")
    out, table = W.Output(), W.Output()

    def redraw(*_):
        if weak.value > strong.value:
            weak.value = strong.value
            return
        show_in(out, confidence_figure(difficulty_summary(data, matcher, strong.value, weak.value), strong.value, weak.value))

    def retrain(*_):
        show_in(table, retraining_comparison(data, matcher, strong.value, weak.value).round(4))

    weak.observe(redraw, names="value")
    strong.observe(redraw, names="value")
    go_btn.on_click(retrain)
    redraw()
    return W.VBox([W.HBox([weak, strong, go_btn]), out, table])


# ---------------------------------------------------------------------------
# Chapter 07: retrieval with explanations
# ---------------------------------------------------------------------------


def ranked_gallery(data: MatchingData, matcher: MetapropertyMatcher, voice_index: int, top_k: int = 8, role: str = "test") -> pd.DataFrame:
    """The faces of the ``role`` identities sorted by level of match with one voice.

    Columns: ``rank``, ``face_index``, ``speaker_id``, ``true_speaker`` (the
    voice's own person), ``level``, ``match``, ``probability``, and ``because``:
    the two metaproperties with the largest contributions, signed."""
    vt, ft = data.tables(role)
    part = data.parts[role]
    n_voices = len(next(iter(vt.values())))
    if not 0 <= int(voice_index) < n_voices:
        raise ValueError(f"voice_index must be between 0 and {n_voices - 1}, got {voice_index}")
    df = matcher.rank_faces(vt, ft, int(voice_index), top_k=top_k)
    df.insert(2, "speaker_id", part.face_speakers[df["face_index"].to_numpy()])
    df.insert(3, "true_speaker", df["speaker_id"] == part.voice_speakers[int(voice_index)])
    X = matcher.pair_distances(vt, ft, np.full(len(df), int(voice_index)), df["face_index"].to_numpy())
    contrib = matcher.contributions(X)
    names = np.asarray(matcher.metaproperties_)
    because = []
    for row in contrib:
        top = np.argsort(-np.abs(row))[:2]
        because.append(", ".join(f"{names[k]} {row[k]:+.2f}" for k in top))
    df["because"] = because
    return df


def true_rank(data: MatchingData, matcher: MetapropertyMatcher, voice_index: int, role: str = "test") -> int:
    """Rank (1 = top) of the voice's own best face in the whole gallery."""
    df = ranked_gallery(data, matcher, voice_index, top_k=None, role=role)
    return int(df.loc[df["true_speaker"], "rank"].min())


def gallery_figure(data: MatchingData, ranking: pd.DataFrame, role: str = "test", show_images: bool = True):
    """The ranked faces as thumbnails, titled with rank, level and whether it is the true person."""
    n = len(ranking)
    cols = min(n, 8)
    rows = int(np.ceil(n / cols))
    titles = [f"#{r.rank} {'✔ ' if r.true_speaker else ''}{r.level:+.2f}" for r in ranking.itertuples()]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.01, vertical_spacing=0.08)
    part = data.parts[role]
    for k, r in enumerate(ranking.itertuples()):
        if show_images and "image" in part.faces.column_names:
            img = part.image(int(r.face_index))
        else:  # no pixels (a metadata-only population): a grey tile
            img = np.full((32, 32, 3), 200, dtype=np.uint8)
        fig.add_trace(go.Image(z=img, hovertemplate=f"{r.speaker_id}<br>{r.because}<extra></extra>"), row=k // cols + 1, col=k % cols + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=170 * rows + 60, margin=dict(l=5, r=5, t=50, b=5), title="faces sorted by level of match (✔ = the voice's own person)")
    return fig


def explain_pair(data: MatchingData, matcher: MetapropertyMatcher, voice_index: int, face_index: int,
                 role: str = "test") -> dict:
    """The :class:`~vfmatch.matching.explain.MatchExplanation` of one pair and its two figures."""
    e = matcher.explain(*data.tables(role), int(voice_index), int(face_index))
    return {"explanation": e, "contributions": explanation_figure(e), "distributions": distributions_figure(e)}


def build_gallery_widget(data: MatchingData, matcher: MetapropertyMatcher, top_k: int = 8, role: str = "test"):
    """Pick a voice: its ranked gallery; pick a rank: the explanation of that face's place."""
    import ipywidgets as W  # deferred: ipywidgets is optional (the "book" extra)

    n_voices = len(next(iter(data.tables(role)[0].values())))
    voice = W.IntSlider(value=0, min=0, max=n_voices - 1, description="voice")
    rank = W.Dropdown(options=list(range(1, top_k + 1)), value=1, description="explain rank")
    gallery_out, explain_out = W.Output(), W.Output()
    state = {}

    def show_gallery(*_):
        state["ranking"] = ranked_gallery(data, matcher, voice.value, top_k, role)
        show_in(gallery_out, gallery_figure(data, state["ranking"], role))
        show_explanation()

    def show_explanation(*_):
        row = state["ranking"].iloc[rank.value - 1]
        parts = explain_pair(data, matcher, voice.value, int(row["face_index"]), role)
        # The explanation itself (not its text): a notebook shows it as a table (MatchExplanation._repr_html_).
        show_in(explain_out, parts["explanation"], parts["contributions"], parts["distributions"])

    voice.observe(show_gallery, names="value")
    rank.observe(show_explanation, names="value")
    show_gallery()
    return W.VBox([W.HBox([voice, rank]), gallery_out, explain_out])
