"""The main job, ``vfmatch run``: population -> extractors -> matcher -> evaluation -> report.

Stages (each timed in ``metrics.json``, with a progress bar)::

    1. population   simulate the default population (cached), or read --data
    2. split        identity-disjoint: train / validation / test; the validation
                    identities are halved into "matcher" and "threshold" roles
    3. extractors   fit the metaproperty extractors on the train identities and
                    extract probability tables for the held-out ones (cached)
    4. matcher      fit the matcher on pairs of the "matcher" identities,
                    choose its threshold on the "threshold" identities
    5. baselines    the same matcher fed every true metaproperty (the all-truth
                    oracle, which bounds nothing) and a gender-only matcher (floor)
    6. difficulty   easy / medium / hard retraining strategies, scored on test
    7. methods      the learned embeddings (triplet, weighted triplet, SSS, contrastive)
                    and the hybrid, trained and scored on the same people and lists
                    (:mod:`vfmatch.job.methods`; ``--methods`` chooses)
    8. evaluation   1:2 identification (both protocols), AUC, EER on the test identities
    9. bounds       the Bayes bound and the gap decomposition, calibrated probabilities,
                    ablations (:mod:`vfmatch.job.bounds`)
   10. fusion       rebuild each test speaker's face from their best-matching test faces
                    and evaluate it as Speech2Face did (:mod:`vfmatch.job.fusion_step`)
   11. report       metrics.json, weights.json, plots (HTML + PNG), saved models

Stages 1-3 and the matcher helpers live in :mod:`vfmatch.job.prepare`, which
the book (chapters 05-07) and the widgets share; this module is the command
(:func:`add_arguments`, :func:`main`) and what only the command does: the
evaluation of the fitted matchers and the report (:mod:`vfmatch.job.report`).
The choices of ``--classifier``, ``--distance``, ``--extractors`` and
``--metaproperties`` come from the registries
(:func:`vfmatch.matching.classifiers.list_classifiers`,
:func:`vfmatch.matching.distances.list_distances`, the extractor presets,
:func:`vfmatch.metaproperties.list_metaproperties`), so a component registered
before the command runs is a choice.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_curve
from tqdm.auto import tqdm

from ..config import default_device
from ..evaluation.augment import AUGMENT_MODES, check_augment
from ..evaluation.summary import subgroup_report
from ..matching.classifiers import list_classifiers
from ..matching.difficulty import check_eps, compare_strategies
from ..matching.distances import list_distances, resolve_distances
from ..matching.matcher import MetapropertyMatcher
from ..matching.threshold import THRESHOLD_RULES
from ..metaproperties import DEFAULT_METAPROPERTIES, get_metaproperty, list_metaproperties
from ..simulator.traits import DEFAULT_N_IDENTITIES
from . import bounds, report
from .methods import (
    EMBEDDING_TRAINING,
    check_methods,
    compare_methods,
    evaluate_scores,
    list_methods,
    methods_metrics,
    save_methods,
)
from .fusion_step import fusion_note, fusion_stage
from .prepare import (
    EXTRACTOR_PRESETS,
    QUICK_IDENTITIES,
    MatchingData,
    RunConfig,
    device_setting,
    extract_tables,
    fit_matcher,
    load_or_simulate,
    make_role_pairs,
    new_matcher,
    split_roles,
)

__all__ = ["run", "evaluate_matcher", "subgroups", "add_arguments", "main", "CHANCE"]

CHANCE = {"identification_1to2_vf": 0.5, "identification_1to2_vf_gender_restricted": 0.5, "auc": 0.5, "eer": 0.5}
_MARKER = ".vfmatch_report"  # marks a folder this job writes, so a re-run may write into it again


# ---------------------------------------------------------------------------
# Stage 7: evaluation of a fitted matcher
# ---------------------------------------------------------------------------


def evaluate_matcher(matcher: MetapropertyMatcher, voice_table, face_table, part, test_pairs, seed: int) -> tuple[dict, np.ndarray]:
    """Identification, AUC and EER on every voice-face pair of ``part``, plus match /
    no-match decision rates at the validation threshold on balanced test pairs
    (:func:`vfmatch.job.methods.evaluate_scores`)."""
    S = matcher.similarity_matrix(voice_table, face_table)
    return evaluate_scores(S, part, test_pairs, matcher.threshold_, seed), S


def subgroups(S: np.ndarray, part, seed: int) -> dict:
    """1:2 identification and AUC per gender and per ethnicity of the test voices,
    with every test face as a candidate (:func:`vfmatch.evaluation.summary.subgroup_report`);
    ``identification_1to2_ci`` and ``mean_rank_ci``: 95 % identity-bootstrap intervals (200 resamples)."""
    out = {}
    for col in ("gender", "ethnicity"):
        if col not in part.identities or not part.has_metaproperty(col):
            continue
        table = subgroup_report(S, part.voice_speakers, part.face_speakers, part.identities, by=(col,),
                                n_boot=200, min_identities=3, seed=seed)
        for row in table.to_dict(orient="records"):
            out[f"{col}={row[col]}"] = {k: row[k] for k in ("n_identities", "identification_1to2", "auc", "mean_rank")}
            out[f"{col}={row[col]}"].update({f"{k}_ci": [row[f"{k}_low"], row[f"{k}_high"]] for k in ("identification_1to2", "mean_rank")})
    return out


# ---------------------------------------------------------------------------
# The whole job
# ---------------------------------------------------------------------------


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder")
    ours = (out / "metrics.json").exists() or (out / _MARKER).exists()
    if out.exists() and any(out.iterdir()) and not ours and not overwrite:
        raise ValueError(
            f"--out {out}: folder is not empty and holds no earlier vfmatch report; choose another --out "
            "(or pass --overwrite to write into it; nothing else in it is touched)"
        )


def _check_options(config: RunConfig) -> None:
    """Fail on bad options before any expensive stage runs."""
    if config.classifier not in list_classifiers():
        raise ValueError(f"--classifier must be one of {list_classifiers()}, got {config.classifier!r}")
    names = config.metaproperties or DEFAULT_METAPROPERTIES
    for name in names:
        if name not in list_metaproperties():
            raise ValueError(f"--metaproperties: unknown metaproperty {name!r}; choose from {list_metaproperties()}")
    resolve_distances([get_metaproperty(n).name for n in names], config.distance)
    check_eps(config.eps_strong, config.eps_weak)
    if config.threshold_rule not in THRESHOLD_RULES or not 0 < config.target_fmr < 1:
        raise ValueError(f"--threshold-rule must be one of {THRESHOLD_RULES}, and --target-fmr in (0, 1)")
    if config.extractors not in EXTRACTOR_PRESETS:
        raise ValueError(f"--extractors must be one of {EXTRACTOR_PRESETS}, got {config.extractors!r}")
    if not 0.0 <= config.concordance <= 1.0:
        raise ValueError(f"--concordance must be in [0, 1], got {config.concordance}")
    check_methods(config.methods)
    if config.embedding_train not in EMBEDDING_TRAINING:
        raise ValueError(f"--embedding-train must be one of {EMBEDDING_TRAINING}, got {config.embedding_train!r}")
    if config.embedding_train != "all" and not config.subset:
        raise ValueError(f"--embedding-train {config.embedding_train}: needs --subset (the homogeneous population)")
    check_augment(config.augment)


def run(config: RunConfig) -> dict:
    """Run every stage and write the report folder; returns the metrics."""
    with device_setting(config.device):
        return _run(config)


def _run(config: RunConfig) -> dict:
    out = Path(config.out)
    _check_out(out, config.overwrite)
    _check_options(config)
    timing: dict = {}
    stages = ["population", "split", "extractors", "matcher", "baselines", "difficulty", "methods", "evaluation", "bounds",
              "fusion", "report"]
    bar = tqdm(total=len(stages), desc="vfmatch run", disable=not config.progress, unit="stage")

    def stage(name):
        bar.set_postfix_str(name)
        return time.perf_counter()

    def done(name, t0):
        timing[name] = round(time.perf_counter() - t0, 3)
        bar.update(1)

    t0 = stage("population")
    population = load_or_simulate(config, progress=config.progress)
    done("population", t0)

    t0 = stage("split")
    parts = split_roles(population, config)
    done("split", t0)

    t0 = stage("extractors")
    data = extract_tables(population, parts, config, progress=config.progress)
    done("extractors", t0)

    t0 = stage("matcher")
    pairs = make_role_pairs(data, config.seed)
    matcher = fit_matcher(new_matcher(config), data, pairs)
    done("matcher", t0)

    t0 = stage("baselines")
    oracle = fit_matcher(new_matcher(config), data, pairs, oracle=True)
    gender_only = fit_matcher(new_matcher(config, ["gender"]), data, pairs) if "gender" in data.metaproperties else None
    done("baselines", t0)

    t0 = stage("difficulty")
    splits3 = tuple((*data.tables(r), pairs[r]) for r in ("matcher", "threshold", "test"))
    strategies = compare_strategies(matcher, *splits3, eps_strong=config.eps_strong, eps_weak=config.eps_weak)
    counts = strategies.attrs["category_counts"]
    done("difficulty", t0)

    t0 = stage("methods")
    scores = compare_methods(data, pairs, config, matcher=matcher, methods=config.methods, progress=config.progress)
    done("methods", t0)

    t0 = stage("evaluation")
    test = data.parts["test"]
    if "metaproperty" in scores:  # scored with every other method on the same lists
        ev_test, S_test = scores["metaproperty"].metrics, scores["metaproperty"].similarity
    else:
        ev_test, S_test = evaluate_matcher(matcher, *data.tables("test"), test, pairs["test"], config.seed)
    ev_oracle, S_oracle = evaluate_matcher(oracle, *data.oracle_tables("test"), test, pairs["test"], config.seed)
    evaluation = {"test": ev_test, "oracle": ev_oracle}
    S_gender = None
    if gender_only is not None:
        evaluation["gender_only"], S_gender = evaluate_matcher(gender_only, *data.tables("test"), test, pairs["test"], config.seed)
    evaluation["chance"] = dict(CHANCE)
    by_group = subgroups(S_test, test, config.seed)
    done("evaluation", t0)

    t0 = stage("bounds")  # Bayes bound and gap, calibrated probabilities, ablations (vfmatch.job.bounds)
    limits = bounds.measure_bounds(config, data, pairs, matcher, new_matcher(config), evaluation, evaluate_matcher)
    done("bounds", t0)

    t0 = stage("fusion")  # rebuild each test speaker's face from their best-matching faces (patent claims 6, 12)
    fusion, fusion_figures = fusion_stage(data, matcher, config, scores=S_test)
    done("fusion", t0)

    t0 = stage("report")
    metrics = {
        "population": _population_summary(population, data, config),
        "config": {k: v for k, v in asdict(config).items() if k not in ("progress",)},
        "extractors": data.extractor_quality,
        "matcher": {
            "classifier": matcher.classifier,
            "weight_method": matcher.weight_method_,
            "distances": matcher.distances_,
            "weights": matcher.weights,
            "threshold": matcher.threshold_,
            "threshold_rule": matcher.threshold_rule,
            "calibration": matcher.calibration_,
            "n_train_pairs": matcher.n_train_pairs_,
            "level_of_match": _level_description(matcher),
        },
        "oracle_matcher": {"weights": oracle.weights, "threshold": oracle.threshold_},
        "gender_only_matcher": {"weights": gender_only.weights, "threshold": gender_only.threshold_} if gender_only else None,
        "evaluation": evaluation,
        "methods": methods_metrics(scores, config),
        "subgroups": by_group,
        "fusion": fusion,
        "difficulty": {
            "eps_strong": config.eps_strong, "eps_weak": config.eps_weak,
            "category_counts": counts,
            "note": "categories of the matcher-training pairs; medium = eps_weak < c <= eps_strong right or wrong "
                    "(the patent's prose); uncertain = c <= eps_weak, retrained like medium",
            "strategies": strategies.to_dict(orient="records"),
        },
        "timing_seconds": timing,
        "device": default_device(None if config.device == "auto" else config.device),
    }
    metrics["timing_seconds"]["extractor_detail"] = data.timing
    limits.add_to(metrics)
    _write_report(out, metrics, matcher, oracle, gender_only, data, strategies, S_test, S_oracle, S_gender, pairs,
                  fusion_figures, limits)
    save_methods(scores, out / "models")
    done("report", t0)
    bar.close()
    metrics["timing_seconds"]["total"] = round(sum(v for v in timing.values() if isinstance(v, (int, float))), 3)
    report.write_json(out / "metrics.json", metrics)
    return metrics


def _level_description(matcher: MetapropertyMatcher) -> str:
    """What the level of match of this matcher is, in one line (:mod:`vfmatch.matching.matcher`)."""
    if matcher.is_linear:
        return ("sum_m weight_m * (distance_m - mean_m) / std_m, the classifier's log-odds up to a constant; "
                "higher = more likely the same person")
    return ("logit P(same | distances) - logit P(same | mean training distances) of the fitted ensemble; weights are "
            "signed permutation importances (not factors of the level); higher = more likely the same person")


def _population_summary(population, data: MatchingData, config: RunConfig) -> dict:
    src = config.data or f"simulated (vfmatch.simulator, seed {config.seed}, concordance {config.concordance})"
    return {
        "description": f"{len(population)} identities, {population.voices.num_rows} clips, {population.faces.num_rows} faces; {src}"
        + (f"; subset {config.subset}" if config.subset else ""),
        "identities": len(population),
        "subset": config.subset,
        "roles": {r: {"identities": len(p), "voice_clips": p.voices.num_rows, "face_images": p.faces.num_rows}
                  for r, p in data.parts.items()},
        "metaproperties": data.metaproperties,
    }


def _write_report(out: Path, metrics, matcher, oracle, gender_only, data, strategies, S_test, S_oracle, S_gender, pairs,
                  more_figures: dict | None, limits: bounds.Bounds) -> None:
    # sklearn's roc_curve thins the curve for plotting (drop_intermediate); every
    # number of the report (AUC, EER) comes from vfmatch.evaluation.metrics.
    out.mkdir(parents=True, exist_ok=True)
    (out / _MARKER).write_text("written by vfmatch run\n")
    weights = {"extracted": matcher.weights_frame(), "oracle": oracle.weights_frame()}
    if gender_only is not None:
        weights["gender_only"] = gender_only.weights_frame()
    report.write_json(out / "weights.json", weights)
    models = out / "models"
    matcher.save(models / "matcher")
    oracle.save(models / "oracle_matcher")
    if gender_only is not None:
        gender_only.save(models / "gender_only_matcher")
    if data.extractors is not None and hasattr(data.extractors, "save"):
        data.extractors.save(models / "extractors")
    strategies.to_csv(out / "difficulty_strategies.csv", index=False)
    limits.save(out)

    test = data.parts["test"]
    same = test.voice_speakers[:, None] == test.face_speakers[None, :]
    curves = {}
    for key, S in (("test", S_test), ("bayes", limits.S_bayes), ("oracle", S_oracle), ("gender_only", S_gender)):
        if S is not None:
            fpr, tpr, _ = roc_curve(same.ravel(), S.ravel())
            curves[bounds.SHORT_LABELS[key]] = (fpr, tpr, metrics["evaluation"][key]["auc"])
    figs = {
        "weights": (report.weights_figure({"extracted": matcher.weights, "all-truth oracle": oracle.weights}), "Weights per metaproperty"),
        "roc": (report.roc_figure(curves), "ROC on the test identities"),
        "level_histogram": (report.level_histogram_figure(S_test.ravel(), same.ravel(), matcher.threshold_), "Level of match, same vs different people"),
        "identification": (report.identification_figure(bounds.model_entries(metrics["evaluation"])), "1:2 identification"),
        "methods": (report.identification_figure(
            {**metrics["methods"], "all-truth oracle": metrics["evaluation"]["oracle"],
             **({"gender only": metrics["evaluation"]["gender_only"]} if "gender_only" in metrics["evaluation"] else {})},
            title="1:2 V→F of every method on the same test lists (95% identity-bootstrap CIs)"),
            "Methods: metaproperties, learned embeddings, hybrid"),
        "difficulty": (report.difficulty_figure(strategies), "Retraining by difficulty"),
    }
    if data.extractor_quality:
        figs["extractors"] = (report.extractor_figure(data.extractor_quality), "Extractor quality")
    figs.update(more_figures or {})  # the fusion stage's strip and bars
    figs.update(limits.figures())
    for name, (fig, _) in figs.items():
        report.save_figure(fig, out / "plots", name)
    notes = [
        f"Level of match = {_level_description(matcher)}.",
        *bounds.BOUNDS_NOTES,
        "Gender-only = a matcher on the extracted gender alone: the floor.",
        "Simulated people: the figures describe this simulator, not any real population.",
    ]
    notes.append(fusion_note(metrics["fusion"]))
    report.write_index(out, metrics, {f"plots/{k}": t for k, (_, t) in figs.items()}, notes)


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``vfmatch run`` options."""
    d = RunConfig()
    parser.add_argument("--identities", type=int, default=None,
                        help=f"population size to simulate (default {DEFAULT_N_IDENTITIES}; {QUICK_IDENTITIES} with --quick)")
    parser.add_argument("--seed", type=int, default=d.seed, help="seed of the simulation, split and training")
    parser.add_argument("--subset", default=None, metavar="COL=VAL,...",
                        help="homogeneous subset for matching and testing, e.g. gender=female,ethnicity=Asian")
    parser.add_argument("--concordance", type=float, default=d.concordance,
                        help="simulator: identity signal shared by voice and face beyond the metaproperties, 0-1")
    parser.add_argument("--quick", action="store_true", help="small population and short training (also VFMATCH_QUICK=1)")
    parser.add_argument("--device", default=d.device, help="auto, cpu or cuda[:N] (auto uses a GPU when torch sees one)")
    parser.add_argument("--data", default=None, help="a population folder or Hugging Face dataset id instead of the simulator")
    parser.add_argument("--out", default=d.out, help="report folder (default vfmatch_report/)")
    parser.add_argument("--classifier", default=d.classifier, choices=list_classifiers(),
                        help=f"the matcher's classifier (default {d.classifier})")
    parser.add_argument("--distance", default=d.distance,
                        help=f"auto, one of {', '.join(list_distances())}, or per metaproperty: age=emd,gender=cosine")
    parser.add_argument("--metaproperties", nargs="+", default=None, choices=list_metaproperties(), metavar="NAME",
                        help=f"metaproperties to extract and match on (default: every one the population has of "
                             f"{', '.join(DEFAULT_METAPROPERTIES)}); choices: {', '.join(list_metaproperties())}")
    parser.add_argument("--threshold-rule", dest="threshold_rule", default=d.threshold_rule, choices=list(THRESHOLD_RULES))
    parser.add_argument("--target-fmr", dest="target_fmr", type=float, default=d.target_fmr,
                        help="false-match rate for --threshold-rule fmr")
    parser.add_argument("--eps-strong", dest="eps_strong", type=float, default=d.eps_strong,
                        help="confidence above which a right (wrong) training pair is easy (hard); default 0.75")
    parser.add_argument("--eps-weak", dest="eps_weak", type=float, default=d.eps_weak,
                        help="confidence at or below which a pair is 'uncertain' rather than medium; default 0.6")
    parser.add_argument("--extractors", default=d.extractors, choices=list(EXTRACTOR_PRESETS),
                        help="default: the extractor module's own set, with vision transformers for skin tone (the "
                             "default); fast: logistic regression instead of the vision transformers (quicker on a CPU)")
    parser.add_argument("--methods", nargs="+", default=None, metavar="NAME", choices=list_methods(),
                        help=f"methods to train and compare (default: all of {', '.join(list_methods())})")
    parser.add_argument("--embedding-train", dest="embedding_train", default=d.embedding_train, choices=EMBEDDING_TRAINING,
                        help="who the embeddings learn from with --subset: all train identities (default), the "
                             "subset's only, or all then fine-tuned on the subset (seed 001's recipe)")
    parser.add_argument("--augment", default=None, choices=list(AUGMENT_MODES),
                        help="train the extractors on half their clips degraded: through codecs (AMR-NB and G.729 "
                             "most often), noise at 0-30 dB SNR, or both (paper 001's remedy; vfmatch robustness measures it)")
    parser.add_argument("--no-cache", dest="cache", action="store_false", help="recompute the population and features")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty --out folder")


def main(args: argparse.Namespace) -> int:
    fields = RunConfig.__dataclass_fields__
    config = RunConfig(**{k: v for k, v in vars(args).items() if k in fields})
    if config.identities is not None and config.identities < 8:
        raise ValueError(f"--identities must be at least 8, got {config.identities}")
    t0 = time.perf_counter()
    metrics = run(config)
    ev = metrics["evaluation"]
    print(f"\nvfmatch run: report written to {Path(config.out).resolve()} in {time.perf_counter() - t0:.0f} s")
    print(f"  {metrics['population']['description']}")
    print("  1:2 voice->face identification on held-out identities (any / same-gender other face), AUC, EER:")
    for name in ("test", "bayes", "oracle", "gender_only", "chance"):
        if name in ev and "skipped" not in ev[name]:
            m = ev[name]
            print(f"    {m['identification_1to2_vf']:.3f} / {m['identification_1to2_vf_gender_restricted']:.3f}"
                  f"   AUC {m['auc']:.3f}   EER {m['eer']:.3f}   {report.MODEL_LABELS.get(name, name)}")
    if "skipped" in ev.get("bayes", {}):
        print(f"    Bayes bound skipped: {ev['bayes']['skipped']}")
    if metrics.get("methods"):
        print("  every method on the same test lists: 1:2 V->F [95% CI] / same gender [95% CI]:")
        for name, m in metrics["methods"].items():
            ci, cig = m.get("identification_1to2_vf_ci", [np.nan] * 2), m.get("identification_1to2_vf_gender_restricted_ci", [np.nan] * 2)
            print(f"    {name:<26} {m['identification_1to2_vf']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] / "
                  f"{m.get('identification_1to2_vf_gender_restricted', np.nan):.3f} [{cig[0]:.3f}, {cig[1]:.3f}]")
    return 0
