"""Where the matcher loses, measured: the Bayes bound, calibrated probabilities, ablations.

The ``bounds`` stage of ``vfmatch run`` (after the evaluation stage), and what
chapter 05's bounds section shows (``book/05_distances_and_weights.ipynb``,
widget logic in :mod:`vfmatch.widgets.bounds`). Four measurements of the
fitted matcher, each on the test people:

1. **The Bayes bound.** The same matcher (same class and settings) fed the
   exact posteriors of :mod:`vfmatch.simulator.bayes` -- what a perfect
   extractor could say about each metaproperty from what a clip or a photo
   is made of -- trained on the "matcher" people's Bayes tables, thresholded
   on the "threshold" people's, scored on the test people's. Only for a
   simulated population: files read with ``--data`` follow no generative
   model we know, so the bound is skipped there, with the reason.
2. **The gap decomposition.** Between the extracted matcher and the all-truth
   oracle (the matcher fed every true metaproperty, including a face's accent
   and a voice's skin type, which the media never show)::

       all_truth - test  =  (bayes - test)        +  (all_truth - bayes)
                            extraction loss          not shown by the media

   on 1:2 V->F (any other face and a same-gender other face) and on the AUC.
3. **Probability calibration.** Platt scaling and isotonic regression
   (:mod:`vfmatch.matching.calibration`) fitted on the "threshold" people's
   pairs; the expected calibration error and the reliability table on the
   test pairs before and after, with a paired identity-bootstrap interval of
   the change. ``metrics["matcher"]["calibration"]`` already holds the
   *threshold's* calibration (the EER point), so these go under
   ``metrics["matcher"]["probability_calibration"]``.
4. **Ablations.** Drop-one and only-one per metaproperty
   (:func:`vfmatch.evaluation.ablation.ablation_table`), refitted on the
   "matcher" pairs and scored on the test lists, with paired identity-bootstrap
   intervals of every delta.

The all-truth oracle keeps its key ``"oracle"`` in ``metrics.json`` and is
labelled for what it is in every table, figure and printout
(:data:`vfmatch.job.report.MODEL_LABELS`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from sklearn.base import clone

from ..evaluation.ablation import ablation_figure, ablation_table
from ..evaluation.bootstrap import identity_resamples
from ..matching.calibration import CALIBRATION_METHODS, CalibratedMatcher, calibration_summary, reliability_figure
from ..matching.matcher import MetapropertyMatcher
from ..simulator.bayes import BAYES_METAPROPERTIES, FACE_TRAITS, VOICE_TRAITS, bayes_metaproperties
from ..utils import to_jsonable
from .prepare import MatchingData, RunConfig

__all__ = [
    "GAP_METRICS",
    "SHORT_LABELS",
    "BOUNDS_NOTES",
    "BOUNDS_BOOT",
    "Bounds",
    "bayes_skip_reason",
    "bayes_tables",
    "fit_on_tables",
    "gap_decomposition",
    "probability_calibration",
    "ece_change_ci",
    "ablation_summary",
    "measure_bounds",
    "model_entries",
    "gap_figure",
]

# The metrics the gap is decomposed on: (key of evaluate_similarity, label).
GAP_METRICS = (
    ("identification_1to2_vf", "1:2 V->F, any other face"),
    ("identification_1to2_vf_gender_restricted", "1:2 V->F, same-gender other face"),
    ("auc", "AUC"),
)
# Short names of the evaluation entries, for figure axes and legends (the long ones: report.MODEL_LABELS).
SHORT_LABELS = {"gender_only": "gender only", "test": "extracted", "bayes": "Bayes bound",
                "oracle": "all-truth oracle", "chance": "chance"}
BOUNDS_NOTES = [
    "Bayes bound = the same matcher fed the exact posteriors of each metaproperty given what the clip or the face is "
    "made of (vfmatch.simulator.bayes): the best any extractor could give this matcher on this population.",
    "All-truth oracle = the same matcher fed every true metaproperty, incl. those the media never show (a face's "
    "accent, a voice's skin type): it bounds nothing and is shown only to measure what the media cannot show.",
    "Gap: extraction loss = Bayes bound - extracted; not shown by the media = all-truth oracle - Bayes bound.",
    "Probability calibration (Platt, isotonic) is fitted on the threshold people and scored on the test people; "
    "matcher.calibration is the threshold's calibration, matcher.probability_calibration the probability's.",
]
# Bootstrap resamples of the bounds stage (ablation deltas, ECE change). 1000 is the
# library's default; 500 keeps the stage's cost small and moves the 95 % limits by
# about a tenth of their width (Monte Carlo error of a 2.5 % quantile).
BOUNDS_BOOT = 500


# ---------------------------------------------------------------------------
# 1. The Bayes bound
# ---------------------------------------------------------------------------


def bayes_skip_reason(population, config: RunConfig | None = None, metaproperties=None) -> str | None:
    """Why the Bayes bound cannot be computed for this population, or None when it can.

    It needs a population drawn by :mod:`vfmatch.simulator` (every trait the media
    are made of, in the identities table) and metaproperties whose generative
    model the simulator defines (:data:`vfmatch.simulator.bayes.BAYES_METAPROPERTIES`)."""
    if config is not None and config.data:
        return (f"--data {config.data}: these people were not drawn by vfmatch.simulator, so there is no generative "
                "model to compute the posteriors from")
    missing = [c for c in dict.fromkeys(VOICE_TRAITS + FACE_TRAITS) if c not in population.identities]
    if missing:
        return f"the identities table has no column(s) {missing}: not a population from vfmatch.make_population"
    unknown = [n for n in (metaproperties or []) if n not in BAYES_METAPROPERTIES]
    if unknown:
        return f"no generative model for metaproperty(s) {unknown} (the simulator's: {list(BAYES_METAPROPERTIES)})"
    return None


def bayes_tables(data: MatchingData, role: str) -> tuple[dict, dict]:
    """Bayes-posterior ``(voice_table, face_table)`` of one role, rows in the order of
    ``data.parts[role]`` (the format of :meth:`MatchingData.tables`)."""
    return bayes_metaproperties(data.parts[role], data.metaproperties)


def fit_on_tables(template: MetapropertyMatcher, tables: Callable[[str], tuple], pairs: dict) -> MetapropertyMatcher:
    """A clone of ``template`` fitted on ``tables("matcher")`` and thresholded on
    ``tables("threshold")``, as :func:`vfmatch.job.prepare.fit_matcher` does with the
    extracted or the all-truth tables. ``tables``: role -> (voice_table, face_table)."""
    matcher = clone(template)
    matcher.fit_pairs(*tables("matcher"), pairs["matcher"])
    return matcher.calibrate(*tables("threshold"), pairs["threshold"])


# ---------------------------------------------------------------------------
# 2. The gap decomposition
# ---------------------------------------------------------------------------


def gap_decomposition(evaluation: dict) -> dict:
    """Extraction loss and what the media cannot show, per metric of :data:`GAP_METRICS`.

    ``evaluation`` holds ``"test"``, ``"bayes"`` and ``"oracle"`` (the all-truth
    oracle), each a dict of those metrics (and ``"gender_only"``, optional).
    Returns ``{metric: {"gender_only", "extracted", "bayes", "all_truth",
    "extraction_loss", "not_shown_by_media"}}`` (extraction loss = bayes -
    extracted, not shown by the media = all_truth - bayes, in the metric's
    units), plus a ``"definition"``."""
    out: dict = {}
    for key, _ in GAP_METRICS:
        t, b, o = (float(evaluation[m][key]) for m in ("test", "bayes", "oracle"))
        out[key] = {"extracted": t, "bayes": b, "all_truth": o, "extraction_loss": b - t, "not_shown_by_media": o - b}
        if "gender_only" in evaluation and key in evaluation["gender_only"]:
            out[key]["gender_only"] = float(evaluation["gender_only"][key])
    out["definition"] = ("extraction_loss = bayes - extracted (what the extractors lose); not_shown_by_media = "
                         "all_truth - bayes (metaproperties the clips and faces do not carry); on the test people")
    return out


# ---------------------------------------------------------------------------
# 3. Probability calibration
# ---------------------------------------------------------------------------


def ece_change_ci(labels, before, after, groups, *, n_bins: int = 10, n_boot: int = BOUNDS_BOOT,
                  level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Paired identity-bootstrap interval of ``ECE(after) - ECE(before)`` on the same pairs.

    The interval of :func:`vfmatch.evaluation.ablation.paired_delta_ci` with
    :func:`~vfmatch.matching.calibration.expected_calibration_error` as the
    metric (same resampling, same numbers; ``tests/test_bounds_step.py`` checks),
    computed for all resamples at once: with equal-width bins ``b(p)``,
    ``ECE = sum_b |sum_{i in b} w_i (y_i - p_i)| / sum_i w_i``, one matrix product
    per probability set instead of one reliability table per resample.

    labels (n,) 1 = same person; before, after (n,) P(same person); groups (n,)
    the identity each pair is resampled with (the probe voice's)."""
    y = np.asarray(labels, np.float64)
    g, k = identity_resamples(groups, n_boot, seed)
    w = k[:, g]  # (n_boot, n): how often each pair is drawn in each resample

    def ece(p):
        p = np.asarray(p, np.float64)
        bins = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)  # [k/B, (k+1)/B); 1.0 in the last bin
        residual_by_bin = np.eye(n_bins)[bins] * (y - p)[:, None]  # (n, n_bins)
        return np.abs(w @ residual_by_bin).sum(axis=1) / w.sum(axis=1)

    lo, hi = np.quantile(ece(after) - ece(before), [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def probability_calibration(matcher: MetapropertyMatcher, data: MatchingData, pairs: dict, *,
                            methods=CALIBRATION_METHODS, n_bins: int = 10, n_boot: int = BOUNDS_BOOT,
                            seed: int = 0) -> dict:
    """Calibrate a fitted matcher's P(same person) on the threshold people; ECE on the test people.

    Parameters
    ----------
    matcher : fitted MetapropertyMatcher (on the "matcher" role)
    data, pairs : the job's tables and labelled pairs per role (:func:`vfmatch.job.prepare.make_role_pairs`)
    methods : among ``("platt", "isotonic")``
    n_bins : equal-width bins of the ECE and the reliability tables
    n_boot : identity-bootstrap resamples of the ECE change (0: no interval)

    Returns
    -------
    dict ``{"fitted_on", "scored_on", "n_bins", "methods": {method: summary}}``, where
    each summary is :func:`vfmatch.matching.calibration.calibration_summary`
    (``ece_before``, ``ece_after``, reliability tables) plus ``ece_change`` (after
    - before) and ``ece_change_ci`` (95 % paired interval, test voices' identities
    resampled). JSON-ready."""
    test_pairs = pairs["test"]
    vi, fi = test_pairs["voice_index"].to_numpy(), test_pairs["face_index"].to_numpy()
    y = test_pairs["label"].to_numpy().astype(np.int64)
    groups = test_pairs["voice_speaker"].astype(str).to_numpy()
    before = matcher.predict_proba(matcher.pair_distances(*data.tables("test"), vi, fi))[:, 1]
    out = {"fitted_on": f"threshold role: {len(pairs['threshold'])} balanced pairs",
           "scored_on": f"test role: {len(test_pairs)} balanced pairs", "n_bins": int(n_bins), "methods": {}}
    for method in methods:
        calibrated = CalibratedMatcher(matcher, method).fit_pairs(*data.tables("threshold"), pairs["threshold"])
        after = calibrated.pair_probability(*data.tables("test"), vi, fi)
        summary = calibration_summary(y, before, after, n_bins=n_bins, method=method)
        summary["ece_change"] = summary["ece_after"] - summary["ece_before"]
        summary["ece_change_ci"] = (list(ece_change_ci(y, before, after, groups, n_bins=n_bins, n_boot=n_boot, seed=seed))
                                    if n_boot else None)
        out["methods"][method] = summary
    return to_jsonable(out)


# ---------------------------------------------------------------------------
# 4. Ablations
# ---------------------------------------------------------------------------


def ablation_summary(template: MetapropertyMatcher, data: MatchingData, pairs: dict, *,
                     n_boot: int = BOUNDS_BOOT, seed: int = 0) -> pd.DataFrame:
    """Drop-one and only-one ablations of the job's matcher
    (:func:`vfmatch.evaluation.ablation.ablation_table`): variants fitted on the
    "matcher" pairs, scored on the test people's lists with the job's seeds
    (so the full row equals ``evaluation["test"]``)."""
    test = data.parts["test"]
    return ablation_table(template, data.tables("matcher"), pairs["matcher"], data.tables("test"),
                          test.voice_speakers, test.face_speakers, metaproperties=data.metaproperties,
                          n_lists=4000, n_pairs=4000, n_boot=n_boot, seed=seed)


# ---------------------------------------------------------------------------
# The stage
# ---------------------------------------------------------------------------


@dataclass
class Bounds:
    """What the bounds stage measured (:func:`measure_bounds`).

    Attributes
    ----------
    bayes_matcher : the matcher fitted on the Bayes tables, or None (skipped)
    bayes_skipped : why the Bayes bound was skipped, or None
    S_bayes : its (n_test_voices, n_test_faces) similarity matrix, or None
    evaluation : ``{"bayes": ..., "gap": ...}``, to add to ``metrics["evaluation"]``
        (each ``{"skipped": reason}`` when skipped)
    probability_calibration : :func:`probability_calibration`
    ablation : :func:`ablation_summary` frame
    timing : seconds per part
    """

    bayes_matcher: MetapropertyMatcher | None
    bayes_skipped: str | None
    S_bayes: np.ndarray | None
    evaluation: dict
    probability_calibration: dict
    ablation: pd.DataFrame
    timing: dict = field(default_factory=dict)

    def add_to(self, metrics: dict) -> dict:
        """Write the measurements into the job's ``metrics`` (in place; returned)."""
        metrics["evaluation"].update(self.evaluation)
        metrics["matcher"]["probability_calibration"] = self.probability_calibration
        if self.bayes_matcher is not None:
            metrics["bayes_matcher"] = {"weights": self.bayes_matcher.weights, "threshold": self.bayes_matcher.threshold_}
        metrics["ablation"] = {"settings": dict(self.ablation.attrs), "rows": self.ablation.to_dict(orient="records")}
        metrics.setdefault("timing_seconds", {})["bounds_detail"] = self.timing
        return metrics

    def save(self, out: Path) -> None:
        """The Bayes matcher under ``models/bayes_matcher``; the ablation table as CSV."""
        if self.bayes_matcher is not None:
            self.bayes_matcher.save(Path(out) / "models" / "bayes_matcher")
        self.ablation.to_csv(Path(out) / "ablation.csv", index=False)

    def figures(self) -> dict:
        """``{name: (plotly figure, title)}`` for the report: the gap, reliability, ablations."""
        figs = {}
        if "skipped" not in self.evaluation["gap"]:
            figs["gap"] = (gap_figure(self.evaluation["gap"]), "Where the gap to perfection comes from")
        methods = self.probability_calibration["methods"]
        before = next(iter(methods.values()))  # every method starts from the same uncalibrated probabilities
        curves = {f"uncalibrated (ECE {before['ece_before']:.3f})": pd.DataFrame(before["reliability_before"])}
        for method, s in methods.items():
            curves[f"{method} (ECE {s['ece_after']:.3f})"] = pd.DataFrame(s["reliability_after"])
        figs["reliability"] = (reliability_figure(curves, "Reliability of the match probability on the test pairs"),
                               "Calibrated match probabilities (fitted on the threshold people)")
        figs["ablation"] = (ablation_figure(self.ablation), "Ablations: each metaproperty dropped, or alone")
        return figs


def measure_bounds(config: RunConfig, data: MatchingData, pairs: dict, matcher: MetapropertyMatcher,
                   template: MetapropertyMatcher, evaluation: dict, evaluate: Callable, *,
                   n_boot: int = BOUNDS_BOOT) -> Bounds:
    """The bounds stage of ``vfmatch run`` (module docstring).

    Parameters
    ----------
    config : the run's options (``--data`` skips the Bayes bound; ``seed``)
    data, pairs : the tables and labelled pairs per role
    matcher : the fitted, thresholded extracted matcher
    template : an unfitted matcher with the run's settings
        (:func:`vfmatch.job.prepare.new_matcher`), cloned for the Bayes matcher
        and the ablation variants
    evaluate : the job's ``evaluate_matcher(matcher, voice_table, face_table, part,
        test_pairs, seed) -> (metrics, S)`` (:mod:`vfmatch.job.run`, which imports
        this module, so it passes it in), which gives the Bayes entry the keys of
        ``evaluation["test"]``
    evaluation : the job's evaluation so far, with ``"test"`` and ``"oracle"``
        (and ``"gender_only"``): the gap is measured from them (not changed here;
        :meth:`Bounds.add_to` adds the new entries)
    n_boot : bootstrap resamples of the ablation deltas and the ECE change
    """
    timing: dict = {}
    t0 = time.perf_counter()
    skipped = bayes_skip_reason(data.population, config, data.metaproperties)
    if config.subset and skipped is None:
        note = (f"with --subset {config.subset} the posteriors ignore that everyone is in the subset; an extractor "
                "that knew it could do better, so here the Bayes entry is a reference, not an upper bound")
    else:
        note = None
    bayes_matcher = S_bayes = None
    if skipped is None:
        bayes_matcher = fit_on_tables(template, lambda role: bayes_tables(data, role), pairs)
        ev_bayes, S_bayes = evaluate(bayes_matcher, *bayes_tables(data, "test"), data.parts["test"], pairs["test"], config.seed)
        if note:
            ev_bayes["note"] = note
        entries = {"bayes": ev_bayes, "gap": gap_decomposition({**evaluation, "bayes": ev_bayes})}
    else:
        entries = {"bayes": {"skipped": skipped}, "gap": {"skipped": f"no Bayes bound: {skipped}"}}
    timing["bayes"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    calibration = probability_calibration(matcher, data, pairs, n_boot=n_boot, seed=config.seed)
    timing["probability_calibration"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    ablation = ablation_summary(template, data, pairs, n_boot=n_boot, seed=config.seed)
    timing["ablation"] = round(time.perf_counter() - t0, 3)
    return Bounds(bayes_matcher, skipped, S_bayes, entries, calibration, ablation, timing)



# ---------------------------------------------------------------------------
# Figures and labels
# ---------------------------------------------------------------------------


def model_entries(evaluation: dict, labels: dict = SHORT_LABELS) -> dict:
    """``{label: metrics}`` of the evaluated models in ``evaluation`` (floor to ceiling),
    leaving out skipped ones and entries that are not a model (the gap)."""
    order = ("gender_only", "test", "bayes", "oracle", "chance")
    return {labels.get(k, k): evaluation[k] for k in order if k in evaluation and "skipped" not in evaluation[k]}


def gap_figure(gap: dict, title: str = "From the gender-only floor to the all-truth oracle, on the test people"):
    """Grouped bars per metric of :data:`GAP_METRICS`: gender only, extracted, the Bayes
    bound and the all-truth oracle; the hover text gives the extraction loss
    (Bayes - extracted) and what the media cannot show (all-truth - Bayes)."""
    keys = [(k, label) for k, label in GAP_METRICS if k in gap]
    fig = go.Figure()
    levels = (("gender_only", "gender only (floor)"), ("extracted", "extracted metaproperties"),
              ("bayes", "Bayes bound"), ("all_truth", "all-truth oracle"))
    for level, name in levels:
        if not all(level in gap[k] for k, _ in keys):
            continue
        hover = [f"{label}: {gap[k][level]:.3f}<br>extraction loss {gap[k]['extraction_loss']:+.3f}, "
                 f"not shown by the media {gap[k]['not_shown_by_media']:+.3f}" for k, label in keys]
        fig.add_bar(x=[label for _, label in keys], y=[gap[k][level] for k, _ in keys], name=name,
                    hovertext=hover, hoverinfo="text")
    fig.add_hline(y=0.5, line_dash="dot", annotation_text="chance")
    fig.update_layout(title=title, barmode="group", xaxis_title="protocol (test identities)",
                      yaxis_title="accuracy or AUC (chance 0.5)", yaxis_range=[0.4, 1.02], template="plotly_white")
    return fig
