"""The ``vfmatch robustness`` command: the trained models of a run under noise and codecs.

``vfmatch robustness --models REPORT/models --out DIR`` takes what ``vfmatch run``
saved (``REPORT/models/matcher`` and ``REPORT/models/extractors``), finds the run's
test people again and scores the trained metaproperty matcher under every
condition of :data:`vfmatch.evaluation.robustness.ROBUSTNESS_CONDITIONS` (paper
001, appendix A): each test voice clip is degraded (noise, or a codec round
trip), its voice metaproperties are *re-extracted* by the trained extractors,
and the matcher compares them with the (clean) test faces. Per condition: 1:2
voice->face identification, unrestricted and same-gender, and the AUC, each with
an identity-bootstrap interval and its paired change from clean audio
(:func:`vfmatch.evaluation.robustness.score_conditions`).

*Which people are test people.* The run's configuration is in
``REPORT/metrics.json["config"]``; the population and the roles are made again
from it (:func:`vfmatch.job.prepare.load_or_simulate`,
:func:`vfmatch.job.prepare.split_roles`), so the test people are the run's.
``--data``, ``--seed`` or ``--identities`` replace the population; its test role
(the same split rule) is then scored: people the models never saw either way.

Writes ``DIR/robustness.csv`` and ``DIR/robustness.json`` (the table, the
skipped conditions with the reason, the settings), and one figure per metric,
``DIR/plots/robustness_<metric>.html`` and ``.png`` (as the run's report does).
A condition whose codec is not installed here is a row with
``status = "skipped"`` and the reason, never dropped.

*More methods.* :func:`robustness_report` scores every entry of a dict
``{method name: scores_from_voices}`` (a function ``clips -> (n_clips,
n_faces)`` similarity to the test faces); the metaproperty matcher's is
:func:`matcher_scores_from_voices`. A learned-embedding method adds one entry:
embed the degraded clips with its voice branch and compare them with its
embeddings of the test faces.

Book chapter: ``book/09_robustness.ipynb``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import fields
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..data.population import SAMPLE_RATE
from ..evaluation.robustness import ROBUSTNESS_CONDITIONS, ROBUSTNESS_METRICS, get_condition, score_conditions
from ..extractors import ExtractorSet
from ..matching.matcher import MetapropertyMatcher
from ..utils import to_jsonable
from . import report
from .methods import embedding_scores_from_voices
from .prepare import RunConfig, device_setting, load_or_simulate, split_roles

# Reached through vfmatch.cli (SUBCOMMANDS); add_arguments / main are not re-exported (vfmatch.job.run has its own).
__all__ = ["load_run", "matcher_scores_from_voices", "robustness_report", "robustness_figure", "METRIC_TITLES"]

METRIC_TITLES = {
    "identification_1to2_vf": "1:2 voice->face identification accuracy",
    "identification_1to2_vf_gender_restricted": "1:2 voice->face accuracy, same-gender lists",
    "auc": "verification AUC",
}


def load_run(models: str | Path, *, data: str | None = None, seed: int | None = None, identities: int | None = None):
    """What ``vfmatch run`` left in ``models`` (``REPORT/models``) and its test people.

    Returns ``(matcher, extractors, config, test)``: the fitted
    :class:`~vfmatch.matching.matcher.MetapropertyMatcher` and
    :class:`~vfmatch.extractors.ExtractorSet`, the run's :class:`RunConfig` (with
    ``data`` / ``seed`` / ``identities`` replaced where given) and the test
    role of its population. Missing files raise FileNotFoundError naming them."""
    models = Path(models)
    if not models.is_dir():
        raise FileNotFoundError(f"--models {models}: no such folder (expected REPORT/models written by vfmatch run)")
    metrics_path = models.parent / "metrics.json"
    if not metrics_path.exists():
        raise FileNotFoundError(f"--models {models}: {metrics_path} is missing; it holds the run's configuration")
    saved = json.loads(metrics_path.read_text()).get("config")
    if not isinstance(saved, dict):
        raise ValueError(f"{metrics_path}: no 'config' entry (not written by vfmatch run?)")
    known = {f.name for f in fields(RunConfig)}
    config = RunConfig(**{k: v for k, v in saved.items() if k in known})
    for name, value in (("data", data), ("seed", seed), ("identities", identities)):
        if value is not None:
            setattr(config, name, value)
    for sub in ("matcher", "extractors"):
        if not (models / sub).exists():
            raise FileNotFoundError(f"--models {models}: {models / sub} is missing (vfmatch run saves it)")
    matcher = MetapropertyMatcher.load(models / "matcher")
    extractors = ExtractorSet.load(models / "extractors", progress=False)
    population = load_or_simulate(config, progress=False)
    test = split_roles(population, config)["test"]
    return matcher, extractors, config, test


def matcher_scores_from_voices(matcher: MetapropertyMatcher, extractors: ExtractorSet, face_table: Mapping) -> Callable:
    """``f(clips) -> (n_clips, n_faces)``: re-extract the voice metaproperties of
    ``clips`` (16 kHz, 1-D arrays) with the trained ``extractors`` and score them
    against ``face_table`` (the faces' extracted tables) with ``matcher``."""
    def scores(clips) -> np.ndarray:
        return matcher.similarity_matrix(extractors.predict_voices(list(clips), sample_rate=SAMPLE_RATE), face_table)
    return scores


def _spread(n: int, k: int | None) -> np.ndarray:
    """``k`` indices spread evenly over ``range(n)`` (all of them if ``k`` is None or >= n)."""
    if k is None or k >= n:
        return np.arange(n)
    if k < 2:
        raise ValueError(f"--max-clips must be at least 2, got {k}")
    return np.unique(np.linspace(0, n - 1, int(k)).round().astype(np.int64))


def robustness_report(scorers: Mapping[str, Callable], test, *, conditions: Sequence = ROBUSTNESS_CONDITIONS,
                      max_clips: int | None = None, n_triplets: int = 4000, n_pairs: int = 4000, n_boot: int = 1000,
                      seed: int = 0, progress: bool = False) -> pd.DataFrame:
    """:func:`~vfmatch.evaluation.robustness.score_conditions` for every method.

    ``scorers``: ``{method: scores_from_voices}``, each scoring clips against the
    faces of ``test`` (every face, in ``test.faces`` order). ``max_clips`` keeps an
    evenly spread subset of the test clips (the same for every method). Returns
    the conditions table with a ``method`` column first; every method sees the
    same degraded clips, lists and pairs."""
    idx = _spread(test.voices.num_rows, max_clips)
    clips = test.audios(idx)
    vs, fs = test.voice_speakers[idx], test.face_speakers
    keep = np.isin(vs.astype(str), fs.astype(str))
    if not keep.all():
        raise ValueError("every test voice needs a face of the same person among the test faces")
    genders = {}
    if test.has_metaproperty("gender"):
        genders = {"voice_gender": test.labels("gender", "voice")[idx], "face_gender": test.labels("gender", "face")}
    tables = []
    for name, fn in scorers.items():
        t = score_conditions(fn, clips, vs, fs, conditions=conditions, n_triplets=n_triplets, n_pairs=n_pairs,
                             n_boot=n_boot, seed=seed, progress=progress, **genders)
        tables.append(t.assign(method=name))
    out = pd.concat(tables, ignore_index=True)
    return out[["method"] + [c for c in out.columns if c != "method"]]


def robustness_figure(table: pd.DataFrame, metric: str = "identification_1to2_vf", *, by: str = "method",
                      title: str | None = None) -> go.Figure:
    """Grouped bars: ``metric`` per condition (x), one bar per value of ``by`` (a
    method, or which models: trained clean / augmented), with the identity-bootstrap
    interval as error bars and chance (0.5) as a dotted line. Skipped conditions
    keep their place on the axis, empty, with "(skipped)" in their label."""
    if metric not in ROBUSTNESS_METRICS:
        raise KeyError(f"metric must be one of {ROBUSTNESS_METRICS}, got {metric!r}")
    order = list(dict.fromkeys(table["condition"]))
    labels = {r.condition: r.label + (" (skipped)" if r.status == "skipped" else "") for r in table.itertuples()}
    fig = go.Figure()
    for name, grp in table.groupby(by, sort=False):
        grp = grp.set_index("condition").reindex(order)
        y = grp[metric].to_numpy(dtype=float)
        fig.add_bar(x=[labels[c] for c in order], y=y, name=str(name),
                    error_y=dict(type="data", symmetric=False, array=grp[f"{metric}_high"].to_numpy(float) - y,
                                 arrayminus=y - grp[f"{metric}_low"].to_numpy(float)))
    fig.add_hline(y=0.5, line_dash="dot", line_color="gray", annotation_text="chance")
    low = np.nanmin(table[f"{metric}_low"].to_numpy(float)) if table[f"{metric}_low"].notna().any() else 0.5
    fig.update_layout(title=title or f"{METRIC_TITLES[metric]} under noise and codecs (95% identity-bootstrap CI)",
                      xaxis_title="condition (noise SNR in dB; codec and bit rate in kbit/s)",
                      yaxis_title=f"{METRIC_TITLES[metric]} (fraction)", barmode="group",
                      yaxis_range=[min(0.4, float(low) - 0.05), 1.0], legend_title_text=by)
    return fig


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``vfmatch robustness``."""
    names = [c.name for c in ROBUSTNESS_CONDITIONS]
    parser.add_argument("--models", required=True, help="the models folder of a vfmatch run report (REPORT/models)")
    parser.add_argument("--out", required=True, help="folder for robustness.csv, robustness.json and plots/")
    parser.add_argument("--data", default=None, help="score this population's test role instead of the run's population")
    parser.add_argument("--seed", type=int, default=None, help="simulate with this seed instead of the run's (also seeds the split)")
    parser.add_argument("--identities", type=int, default=None, help="simulate this many people instead of the run's number")
    parser.add_argument("--conditions", nargs="+", default=None, metavar="NAME", choices=names,
                        help=f"conditions to score (default all; clean is always scored): {', '.join(names)}")
    parser.add_argument("--max-clips", dest="max_clips", type=int, default=None,
                        help="score an evenly spread subset of this many test clips (default all)")
    parser.add_argument("--n-boot", dest="n_boot", type=int, default=1000, help="identity-bootstrap samples (default 1000)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N], for re-extracting the voices")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    if args.n_boot < 100:
        raise ValueError(f"--n-boot must be at least 100, got {args.n_boot}")
    conditions = [get_condition(c) for c in (args.conditions or [c.name for c in ROBUSTNESS_CONDITIONS])]
    with device_setting(args.device):
        matcher, extractors, config, test = load_run(args.models, data=args.data, seed=args.seed, identities=args.identities)
        faces = extractors.transform_faces(test)
        scorers = {"metaproperty matcher": matcher_scores_from_voices(matcher, extractors, faces)}
        # every embedding method the run saved (vfmatch.job.methods.save_methods), on the same degraded clips
        for folder in sorted((Path(args.models) / "methods").glob("*/inputs.json")):
            scorers[folder.parent.name] = embedding_scores_from_voices(folder.parent, test)
        table = robustness_report(scorers, test, conditions=conditions, max_clips=args.max_clips, n_boot=args.n_boot,
                                  seed=config.seed, progress=args.progress)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "robustness.csv", index=False)
    skipped = table.loc[table["status"] == "skipped", ["method", "condition", "label", "reason"]]
    doc = {"models": str(Path(args.models).resolve()), "config": {k: v for k, v in vars(config).items() if k != "progress"},
           "settings": {"n_boot": args.n_boot, "max_clips": args.max_clips, "seed": config.seed, "n_test_identities": len(test),
                        "n_clips": int(table["n_clips"].iloc[0]), "n_faces": test.faces.num_rows},
           "conditions": table.to_dict(orient="records"), "skipped": skipped.to_dict(orient="records")}
    report.write_json(out / "robustness.json", to_jsonable(doc))
    for metric in ROBUSTNESS_METRICS:
        if table[metric].notna().any():
            report.save_figure(robustness_figure(table, metric), out / "plots", f"robustness_{metric}")
    print(f"vfmatch robustness: {len(table)} conditions on {doc['settings']['n_clips']} clips of {len(test)} test people, "
          f"written to {out.resolve()} in {time.perf_counter() - t0:.0f} s")
    for r in table.itertuples():
        if r.status == "skipped":
            print(f"  {r.label:<28} skipped: {r.reason}")
        else:
            print(f"  {r.label:<28} 1:2 {r.identification_1to2_vf:.3f} [{r.identification_1to2_vf_low:.3f}, "
                  f"{r.identification_1to2_vf_high:.3f}]  same-gender {r.identification_1to2_vf_gender_restricted:.3f}"
                  f"  AUC {r.auc:.3f}  (1:2 change {r.identification_1to2_vf_delta:+.3f})")
    return 0
