"""Widget logic for chapter 05's bounds section: where the gap to perfection comes from.

``book/05_distances_and_weights.ipynb`` shows, for a chosen set of
metaproperties, four matchers of the same class fitted on the same pairs:

* the **gender-only** floor (extracted gender alone),
* the **extracted** metaproperties (what ``vfmatch run`` scores),
* the **Bayes bound** (the exact posteriors of :mod:`vfmatch.simulator.bayes`:
  what perfect extractors could say from what the clips and faces are made of),
* the **all-truth oracle** (every true metaproperty, incl. those the media never show),

and the decomposition of the gap (:func:`vfmatch.job.bounds.gap_decomposition`);
and the matcher's match probability before and after calibration on the
threshold people (:func:`vfmatch.job.bounds.probability_calibration`). Every
function takes a :class:`vfmatch.job.prepare.MatchingData` and plain values and
returns frames, dicts or plotly figures; :func:`build_bounds_widget` only wires
them to ipywidgets. Scores use the job's seeds and list sizes
(:func:`score_gap_metrics`), so with every metaproperty they are the numbers
of ``metrics.json``.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from ..evaluation.identification import identification_accuracy, verification_metrics
from ..job.bounds import (GAP_METRICS, bayes_skip_reason, bayes_tables, fit_on_tables, gap_decomposition,
                          gap_figure, probability_calibration)
from ..job.prepare import MatchingData, RunConfig, new_matcher
from ..matching.calibration import CALIBRATION_METHODS, reliability_figure
from .display import show_in

__all__ = ["MODELS", "score_gap_metrics", "bounds_comparison", "bounds_figure", "calibration_comparison", "calibration_figure",
           "build_bounds_widget"]

# The four matchers, floor to ceiling: (key, label).
MODELS = (("gender_only", "gender only (floor)"), ("test", "extracted metaproperties"),
          ("bayes", "Bayes bound"), ("oracle", "all-truth oracle"))


def score_gap_metrics(matcher, tables, part, seed: int = 0) -> dict:
    """The metrics of :data:`~vfmatch.job.bounds.GAP_METRICS` on ``part`` (the test people).

    The lists and pairs of :func:`vfmatch.evaluation.summary.evaluate_similarity`
    (4000 each, its seeds: ``seed`` for 1:2, ``seed + 2`` same-gender, ``seed + 4``
    the AUC pairs), so the numbers are those of ``metrics.json``; only these three
    protocols are run, which keeps a widget move quick."""
    S = matcher.similarity_matrix(*tables)
    vs, fs = part.voice_speakers, part.face_speakers
    gender = {}
    if part.has_metaproperty("gender"):
        gender = dict(probe_gender=part.labels("gender", "voice"), candidate_gender=part.labels("gender", "face"))
    out = {"identification_1to2_vf": identification_accuracy(S, vs, fs, n_lists=4000, ties="half", seed=seed, **gender).accuracy,
           "identification_1to2_vf_gender_restricted": float("nan"),
           "auc": verification_metrics(S, vs, fs, n_pairs=4000, seed=seed + 4, **gender)["auc"]}
    if gender:
        out["identification_1to2_vf_gender_restricted"] = identification_accuracy(
            S, vs, fs, n_lists=4000, same_gender=True, ties="half", seed=seed + 2, **gender).accuracy
    return {k: float(v) for k, v in out.items()}


def bounds_comparison(data: MatchingData, metaproperties: Sequence[str] | None = None, *,
                      classifier: str = "logistic", seed: int = 0) -> dict:
    """The four matchers of :data:`MODELS` on one set of metaproperties, scored on the test people.

    Parameters
    ----------
    data : the job's tables (:func:`vfmatch.job.prepare.prepare`)
    metaproperties : the set to match on (default: every one of ``data``)
    classifier : the matchers' classifier (:func:`vfmatch.matching.classifiers.list_classifiers`)
    seed : seed of the pairs and lists (0 = the job's)

    Returns
    -------
    dict with ``table`` (DataFrame: one row per model, columns the metrics of
    :data:`vfmatch.job.bounds.GAP_METRICS`), ``gap``
    (:func:`~vfmatch.job.bounds.gap_decomposition`, or None when the Bayes bound
    is skipped), ``skipped`` (why, or None) and ``metaproperties``.
    """
    names = list(metaproperties or data.metaproperties)
    unknown = [n for n in names if n not in data.metaproperties]
    if not names or unknown:
        raise ValueError(f"metaproperties must be a non-empty subset of {data.metaproperties}, got {names}")
    pairs = data.role_pairs(seed)
    config = RunConfig(classifier=classifier, seed=seed)
    template = new_matcher(config, names)
    test = data.parts["test"]
    skipped = bayes_skip_reason(data.population, metaproperties=names)
    tables = {"test": data.tables, "oracle": data.oracle_tables}
    if skipped is None:
        tables["bayes"] = lambda role: bayes_tables(data, role)
    scores = {}
    if "gender" in data.metaproperties:
        floor = fit_on_tables(new_matcher(config, ["gender"]), data.tables, pairs)
        scores["gender_only"] = score_gap_metrics(floor, data.tables("test"), test, seed)
    for key, get in tables.items():
        scores[key] = score_gap_metrics(fit_on_tables(template, get, pairs), get("test"), test, seed)
    labels = dict(MODELS)
    table = pd.DataFrame({labels[k]: scores[k] for k, _ in MODELS if k in scores}).T
    table.columns = [label for _, label in GAP_METRICS]
    table.index.name = "matcher"
    gap = gap_decomposition(scores) if skipped is None else None
    return {"table": table, "gap": gap, "skipped": skipped, "metaproperties": names}


def bounds_figure(result: dict):
    """The gap figure (:func:`vfmatch.job.bounds.gap_figure`) of a :func:`bounds_comparison`,
    titled with the metaproperty set; None when the Bayes bound was skipped."""
    if result["gap"] is None:
        return None
    names = result["metaproperties"]
    shown = ", ".join(names) if len(names) <= 4 else f"{len(names)} metaproperties"
    return gap_figure(result["gap"], title=f"Floor to ceiling on the test people, matching on {shown}")


def calibration_comparison(data: MatchingData, matcher, *, n_bins: int = 10, n_boot: int = 200, seed: int = 0) -> dict:
    """Platt and isotonic calibration of a fitted matcher's probability, fitted on the threshold
    people and scored on the test people (:func:`vfmatch.job.bounds.probability_calibration`)."""
    return probability_calibration(matcher, data, data.role_pairs(seed), n_bins=n_bins, n_boot=n_boot, seed=seed)


def calibration_figure(calibration: dict, method: str = "isotonic"):
    """Reliability diagram before and after one calibration method of :func:`calibration_comparison`."""
    if method not in calibration["methods"]:
        raise ValueError(f"method must be one of {list(calibration['methods'])}, got {method!r}")
    s = calibration["methods"][method]
    curves = {f"uncalibrated (ECE {s['ece_before']:.3f})": pd.DataFrame(s["reliability_before"]),
              f"{method} (ECE {s['ece_after']:.3f})": pd.DataFrame(s["reliability_after"])}
    return reliability_figure(curves, title=f"Match probability on the test pairs, before and after {method} calibration")


def build_bounds_widget(data: MatchingData, matcher):
    """Tick metaproperties and press *compare*: the four matchers and the gap; pick a
    calibration method: the reliability diagram of ``matcher`` (fitted on every metaproperty)."""
    import ipywidgets as W  # deferred: ipywidgets is optional (the "book" extra)

    pick = W.SelectMultiple(options=list(data.metaproperties), value=tuple(data.metaproperties),
                            description="match on", rows=min(8, len(data.metaproperties)))
    go_button = W.Button(description="compare")
    method = W.Dropdown(options=list(CALIBRATION_METHODS), value="isotonic", description="calibration")
    out_bounds, out_cal = W.Output(), W.Output()
    calibration = calibration_comparison(data, matcher, n_boot=0)  # the figure shows no interval

    def compare(*_):
        if not pick.value:
            show_in(out_bounds, "tick at least one metaproperty")
            return
        result = bounds_comparison(data, list(pick.value))
        fig = bounds_figure(result)
        show_in(out_bounds, result["table"].round(3), *([fig] if fig is not None else [f"Bayes bound skipped: {result['skipped']}"]))

    def recalibrate(*_):
        show_in(out_cal, calibration_figure(calibration, method.value))

    go_button.on_click(compare)
    method.observe(recalibrate, names="value")
    compare()
    recalibrate()
    return W.VBox([W.HBox([pick, go_button]), out_bounds, method, out_cal])
