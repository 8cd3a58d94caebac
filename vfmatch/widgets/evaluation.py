"""Widget and figure logic for ``book/08_evaluation.ipynb`` and ``book/09_robustness.ipynb``.

Everything here takes plain values and returns numbers, tables or plotly
figures, so it is unit-tested without a browser; the ``build_*`` functions only
wire them to ipywidgets.

* :func:`recall_at_k` -- the "Recall at N'" cell for one gallery size and k, two
  ways: paper 001's approximation P(R <= k / N') from the percentile-rank CDF,
  and a direct count in sampled galleries of N' faces; :func:`build_recall_widget`.
* :func:`roc_figure`, :func:`cdf_figure`, :func:`one_to_n_figure`, :func:`metrics_table`.
* :func:`sweep_table` (paper 001's Figure 7 layout), :func:`sweep_figure`,
  :func:`listening_examples`, :func:`codec_spectra_figure`, :func:`build_listen_widget`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from scipy.signal import welch

from ..data.lists import sample_lists, speaker_codes
from ..evaluation.metrics import equal_error_rate, roc_curve
from ..evaluation.percentile import PercentileRecall, percentile_recall
from ..evaluation.scorers import as_scorer
from ..evaluation.robustness import CODECS, DEFAULT_SNR_BANDS, degrade, snr_label
from .display import show_in

__all__ = [
    "recall_at_k",
    "build_recall_widget",
    "roc_figure",
    "cdf_figure",
    "one_to_n_figure",
    "metrics_table",
    "sweep_table",
    "sweep_figure",
    "listening_examples",
    "codec_spectra_figure",
    "build_listen_widget",
]


# ---------------------------------------------------------------------------
# Chapter 8
# ---------------------------------------------------------------------------


def recall_at_k(scorer, voice_speakers, face_speakers, gallery_size: int, k: int, *, ranks: PercentileRecall | None = None,
                n_lists: int = 2000, seed: int = 0) -> dict:
    """Probability that the true face is in the top ``k`` of a gallery of ``gallery_size`` faces.

    Returns ``{"approximation", "direct", "chance", "gallery_size", "k"}``:

    * ``approximation`` -- paper 001's P(R <= k / N') from the full-gallery
      percentile ranks (``ranks``, computed with ties counted 1/2 if not given);
    * ``direct`` -- measured: 1:N' lists (the true face and N'-1 faces of other
      people), the share whose true face ranks in the top k, a tie broken at
      random (in expectation); ``None`` when the population has fewer than N'
      identities;
    * ``chance`` -- k / N'.
    """
    n, k = int(gallery_size), int(k)
    if n < 2 or not 1 <= k <= n:
        raise ValueError(f"need gallery_size >= 2 and 1 <= k <= gallery_size, got {gallery_size}, {k}")
    (vc, fc), _ = speaker_codes(voice_speakers, face_speakers)
    sc = as_scorer(scorer, vc.size, fc.size)
    if ranks is None:
        ranks = percentile_recall(sc, voice_speakers, face_speakers, ties="half", seed=seed)
    direct = None
    if n <= np.unique(fc).size:
        lists = sample_lists(vc, fc, n, n_lists, seed=seed)
        s = sc.pairs(np.repeat(lists.probe, n), lists.candidates.reshape(-1)).reshape(-1, n)
        above = (s[:, 1:] > s[:, :1]).sum(1)
        tied = (s[:, 1:] == s[:, :1]).sum(1)
        # The true face lands uniformly among positions above .. above + tied.
        direct = float(np.clip((k - above) / (tied + 1.0), 0.0, 1.0).mean())
    return {"approximation": ranks.recall_at(k, n), "direct": direct, "chance": k / n, "gallery_size": n, "k": k}


def build_recall_widget(scorer, voice_speakers, face_speakers, *, ranks: PercentileRecall | None = None,
                        max_gallery: int = 10_000, n_lists: int = 1000, seed: int = 0):
    """Sliders for the gallery size N' and k; shows :func:`recall_at_k`."""
    import ipywidgets as w  # deferred: ipywidgets is optional (the "book" extra)

    if ranks is None:
        ranks = percentile_recall(scorer, voice_speakers, face_speakers, ties="half", seed=seed)
    size = w.IntSlider(value=100, min=2, max=max_gallery, step=1, description="gallery N'", continuous_update=False)
    k = w.IntSlider(value=10, min=1, max=100, description="top k", continuous_update=False)
    out = w.Output()

    def show(_=None):
        k.max = size.value
        r = recall_at_k(scorer, voice_speakers, face_speakers, size.value, k.value, ranks=ranks, n_lists=n_lists, seed=seed)
        show_in(out, pd.DataFrame({
            "P(true face in top k)": ["from the rank CDF (paper 001)", "measured in 1:N' galleries", "chance k/N'"],
            "value": [r["approximation"], r["direct"] if r["direct"] is not None else "too few identities", r["chance"]],
        }))

    size.observe(show, "value")
    k.observe(show, "value")
    show()
    return w.VBox([w.HBox([size, k]), out])


def roc_figure(pairs: Mapping[str, tuple], title: str = "ROC of cross-modal verification"):
    """ROC curves, {name: (labels, scores)}, each with its EER point and the chance diagonal."""
    fig = go.Figure()
    for name, (labels, scores) in pairs.items():
        fpr, tpr, _ = roc_curve(labels, scores)
        eer = equal_error_rate(labels, scores)
        fig.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", name=f"{name} (EER {eer:.3f})"))
        fig.add_trace(go.Scatter(x=[eer], y=[1 - eer], mode="markers", marker=dict(size=9), showlegend=False, name=f"{name} EER"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dash", color="grey"), name="chance"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[1, 0], mode="lines", line=dict(dash="dot", color="lightgrey"), name="FPR = FNR"))
    fig.update_layout(title=title, xaxis_title="false match rate", yaxis_title="true match rate", width=620, height=520)
    return fig


def cdf_figure(results: Mapping[str, PercentileRecall], title: str = "Percentile recall: CDF of the rank R"):
    """P(R <= alpha) against alpha for each result (paper 001's Figure 4), chance = the diagonal."""
    alpha = np.linspace(0, 1, 201)
    fig = go.Figure()
    for name, res in results.items():
        fig.add_trace(go.Scatter(x=alpha, y=res.cdf(alpha), mode="lines", name=f"{name} (mean rank {res.mean_rank:.3f})"))
    fig.add_trace(go.Scatter(x=alpha, y=alpha, mode="lines", line=dict(dash="dash", color="grey"), name="chance"))
    fig.update_layout(title=title, xaxis_title="alpha (share of the gallery)", yaxis_title="P(R <= alpha)", width=620, height=480)
    return fig


def one_to_n_figure(curves: Mapping[str, Mapping[int, float]], title: str = "1:N identification accuracy"):
    """Accuracy against N for each {name: {N: accuracy}}, with the chance level 1/N."""
    fig = go.Figure()
    ns = sorted({n for c in curves.values() for n in c})
    for name, c in curves.items():
        xs = sorted(c)
        fig.add_trace(go.Scatter(x=xs, y=[c[n] for n in xs], mode="lines+markers", name=name))
    fig.add_trace(go.Scatter(x=ns, y=[1 / n for n in ns], mode="lines", line=dict(dash="dash", color="grey"), name="chance 1/N"))
    fig.update_layout(title=title, xaxis_title="N (gallery size)", yaxis_title="accuracy", width=620, height=450)
    return fig


_METRIC_NAMES = {
    "identification_1to2_vf": "1:2 V-F (U)",
    "identification_1to2_vf_gender_restricted": "1:2 V-F (G)",
    "identification_1to2_fv": "1:2 F-V (U)",
    "identification_1to2_fv_gender_restricted": "1:2 F-V (G)",
    "auc": "verification AUC V-F (U)",
    "auc_gender_restricted": "verification AUC V-F (G)",
    "auc_fv": "verification AUC F-V (U)",
    "eer": "EER V-F (U)",
    "binary_accuracy_at_eer": "binary accuracy at the EER",
    "map_vf": "retrieval mAP V-F",
    "map_fv": "retrieval mAP F-V",
}


def metrics_table(results: Mapping[str, dict]) -> pd.DataFrame:
    """One row per metric of :func:`vfmatch.evaluation.evaluate_similarity`, one column per scorer,
    with the chance level and, where computed, the bootstrap interval."""
    rows = []
    for key, label in _METRIC_NAMES.items():
        if not any(key in r for r in results.values()):
            continue
        row = {"metric": label}
        for name, r in results.items():
            v = r.get(key)
            ci = r.get("ci", {}).get(key)
            row[name] = "" if v is None else (f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{v:.3f}")
        row["chance"] = next(f"{r['chance'][key]:.3f}" for r in results.values() if key in r.get("chance", {}))
        rows.append(row)
    for sub, label in (("mean_rank", "percentile recall: mean rank"), ("recall_at_10pct", "percentile recall: P(R <= 0.1)")):
        row = {"metric": label}
        for name, r in results.items():
            v = r["percentile_recall"][sub]
            ci = r.get("ci", {}).get("percentile_mean_rank") if sub == "mean_rank" else None
            row[name] = f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{v:.3f}"
        row["chance"] = f"{next(iter(results.values()))['chance']['percentile_recall'][sub]:.3f}"
        rows.append(row)
    return pd.DataFrame(rows).set_index("metric")


# ---------------------------------------------------------------------------
# Chapter 9
# ---------------------------------------------------------------------------


def _snr_order(df: pd.DataFrame) -> list[str]:
    seen = list(dict.fromkeys(df["snr"]))
    return (["clean"] if "clean" in seen else []) + [s for s in seen if s != "clean"]


def sweep_table(df: pd.DataFrame, metric: str = "identification_1to2") -> pd.DataFrame:
    """Codec x noise table of one metric (rows: codec, columns: SNR band), as paper 001's Figure 7."""
    if metric not in df:
        raise KeyError(f"no column {metric!r} in the sweep; columns: {list(df.columns)}")
    table = df.pivot_table(index="codec_label", columns="snr", values=metric, sort=False)
    return table.reindex(columns=_snr_order(df))


def sweep_figure(df: pd.DataFrame, metric: str = "identification_1to2", title: str | None = None):
    """Metric against noise level, one line per codec, with the chance level."""
    order = _snr_order(df)
    fig = go.Figure()
    for label, g in df.groupby("codec_label", sort=False):
        g = g.set_index("snr").reindex(order)
        fig.add_trace(go.Scatter(x=order, y=g[metric], mode="lines+markers", name=label))
    chance_col = f"{metric}_chance"
    if chance_col in df:
        fig.add_trace(go.Scatter(x=order, y=[df[chance_col].mean()] * len(order), mode="lines",
                                 line=dict(dash="dash", color="grey"), name="chance"))
    fig.update_layout(title=title or f"{metric} per codec and noise level", xaxis_title="noise (SNR band)",
                      yaxis_title=metric, width=680, height=450)
    return fig


def listening_examples(wave, sr: int = 16_000, *, codecs: Sequence[str | None] | None = None,
                       snr_bands: Sequence = (None,) + DEFAULT_SNR_BANDS, seed: int = 0) -> dict:
    """The same clip through every (codec, noise) condition: {(codec or "none", snr label): wave at 16 kHz}."""
    codecs = [None] + list(CODECS) if codecs is None else list(codecs)
    out = {}
    for codec in codecs:
        for band in snr_bands:
            out[(codec or "none", snr_label(band))] = degrade(wave, sr, codec=codec, snr_db=band, seed=seed)
    return out


def codec_spectra_figure(wave, sr: int = 16_000, *, codecs: Sequence[str | None] | None = None):
    """Average power spectrum of a clip after each codec: what the 8 kHz telephone band removes."""
    codecs = [None] + list(CODECS) if codecs is None else list(codecs)
    fig = go.Figure()
    for codec in codecs:
        y = degrade(wave, sr, codec=codec)
        f, p = welch(y, 16_000, nperseg=512)
        fig.add_trace(go.Scatter(x=f, y=10 * np.log10(p + 1e-12), mode="lines", name=CODECS[codec].label if codec else "original"))
    fig.update_layout(title="Power spectrum after each codec", xaxis_title="frequency (Hz)", yaxis_title="power (dB)",
                      width=680, height=420)
    return fig


def build_listen_widget(wave, sr: int = 16_000, *, codecs: Sequence[str] | None = None,
                        snr_bands: Sequence = (None,) + DEFAULT_SNR_BANDS, seed: int = 0):
    """Two dropdowns (codec, noise) and a player for the degraded clip."""
    import ipywidgets as w  # deferred: ipywidgets is optional (the "book" extra)
    from IPython.display import Audio  # deferred: IPython comes with the notebook (the "book" extra)

    codecs = list(CODECS) if codecs is None else list(codecs)
    codec = w.Dropdown(options=[("none", None)] + [(CODECS[c].label, c) for c in codecs], description="codec")
    noise = w.Dropdown(options=[(snr_label(b), b) for b in snr_bands], description="noise")
    out = w.Output()

    def play(_=None):
        show_in(out, Audio(degrade(wave, sr, codec=codec.value, snr_db=noise.value, seed=seed), rate=16_000))

    codec.observe(play, "value")
    noise.observe(play, "value")
    play()
    return w.VBox([w.HBox([codec, noise]), out])
