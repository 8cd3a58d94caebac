"""The main job, ``vfmatch run``: population -> extractors -> matcher -> evaluation -> report.

Stages (each timed in ``metrics.json``, with a progress bar)::

    1. population   simulate the default population (cached), or read --data
    2. split        identity-disjoint: train / validation / test; the validation
                    identities are halved into "matcher" and "threshold" roles
    3. extractors   fit the metaproperty extractors on the train identities and
                    extract probability tables for the held-out ones (cached)
    4. matcher      fit the matcher on pairs of the "matcher" identities,
                    choose its threshold on the "threshold" identities
    5. baselines    the same matcher fed ground-truth metaproperties (oracle
                    bound) and a gender-only matcher (floor)
    6. difficulty   easy / medium / hard retraining strategies, scored on test
    7. evaluation   1:2 identification (both protocols), AUC, EER on the test identities
    8. report       metrics.json, weights.json, plots (HTML + PNG), saved models

*Why the matcher learns on people the extractors never saw.* An extractor is
over-confident on the people it was trained on (on the quick simulated
population the face accent extractor is right for every training face and
near chance on new ones), so distances between its in-sample predictions
describe a world the matcher will never meet; trained on them, the matcher
was no better and in some runs worse (``book/05_distances_and_weights.ipynb``
shows the comparison). Out-of-fold tables for the training people were tried
too: they need the extractors fitted once per fold (minutes more on a CPU),
and in the run we compared they did not beat the validation half.

``--subset gender=female,ethnicity=Asian`` keeps the split of the whole
population (so the extractors are the same as in an unrestricted run) and
restricts the matcher, threshold and test identities to the subset: a
homogeneous population as in paper 001 (seed 001).

Book chapters 05-07 call :func:`prepare` to get the extracted tables of the
quick population without running the whole job.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import cache_dir, default_device, quick_mode
from ..extractors import ExtractorSet, create_extractors, list_extractor_presets
from ..matching.matcher import MetapropertyMatcher, oracle_metaproperties
from ..metaproperties import DEFAULT_METAPROPERTIES
from ..utils import CODE_VERSION
from .report import to_jsonable

__all__ = ["RunConfig", "MatchingData", "prepare", "run", "add_arguments", "main", "QUICK_IDENTITIES"]

QUICK_IDENTITIES = 60
SPLIT_FRACTIONS = (0.5, 0.25, 0.25)  # train (extractors) / validation (matcher + threshold) / test
CHANCE = {"identification_1to2_vf": 0.5, "identification_1to2_vf_gender_restricted": 0.5, "auc": 0.5, "eer": 0.5}
_MARKER = ".vfmatch_report"  # marks a folder this job writes, so a re-run may write into it again


@dataclass
class RunConfig:
    """Options of the main job (the ``vfmatch run`` flags)."""

    identities: int | None = None  # None: the default population size (60 in quick mode)
    seed: int = 0
    subset: str | None = None
    concordance: float = 0.3
    quick: bool = False
    device: str = "auto"
    data: str | None = None
    out: str = "vfmatch_report"
    classifier: str = "logistic"
    distance: str = "auto"
    threshold_rule: str = "eer"
    target_fmr: float = 0.01
    eps_strong: float = 0.75
    eps_weak: float = 0.6
    extractors: str = "default"
    cache: bool = True
    progress: bool = True
    overwrite: bool = False

    @property
    def is_quick(self) -> bool:
        return bool(self.quick) or quick_mode()

    def n_identities(self) -> int:
        from ..simulator.traits import DEFAULT_N_IDENTITIES

        if self.identities is not None:
            return int(self.identities)
        return QUICK_IDENTITIES if self.is_quick else DEFAULT_N_IDENTITIES


@dataclass
class MatchingData:
    """Extracted metaproperty tables of the held-out identities, split by role.

    Attributes
    ----------
    population : the whole population
    parts : dict role -> Population, roles ``"train"`` (extractors),
        ``"matcher"`` and ``"threshold"`` (the two halves of the validation
        identities) and ``"test"``
    voice, face : dict role -> metaproperty table (row order of ``parts[role]``);
        no tables for ``"train"``
    extractors : the fitted :class:`vfmatch.extractors.ExtractorSet` (loaded from
        the cache with the tables; None only if that copy is missing)
    extractor_quality : dict metaproperty -> {"voice"|"face": {...}} on the test identities
    metaproperties : the metaproperties extracted
    """

    population: object
    parts: dict
    voice: dict
    face: dict
    extractors: object | None = None
    extractor_quality: dict = field(default_factory=dict)
    metaproperties: list = field(default_factory=list)
    timing: dict = field(default_factory=dict)

    def tables(self, role: str) -> tuple[dict, dict]:
        return self.voice[role], self.face[role]

    def oracle_tables(self, role: str) -> tuple[dict, dict]:
        return oracle_metaproperties(self.parts[role], self.metaproperties)


# ---------------------------------------------------------------------------
# Stages 1-3: population, split, extracted tables
# ---------------------------------------------------------------------------


def load_or_simulate(config: RunConfig, progress: bool = False):
    """Stage 1: the population named by ``--data``, or the simulated default."""
    if config.data:
        from ..data.load import load_population

        return load_population(config.data)
    from ..simulator.population import make_population

    n = config.n_identities()
    if config.is_quick:
        return make_population(n, seed=config.seed, concordance=config.concordance, clips_per_identity=3,
                               faces_per_identity=3, clip_seconds=(1.5, 3.0), cache=config.cache, progress=progress)
    return make_population(n, seed=config.seed, concordance=config.concordance, cache=config.cache, progress=progress)


def split_roles(population, config: RunConfig) -> dict:
    """Stage 2: identity-disjoint roles (see the module docstring).

    The validation identities are halved, within each gender, into
    ``"matcher"`` and ``"threshold"``; with a subset, every role but
    ``"train"`` keeps only the subset's identities, so the extractors are
    those of the unrestricted run."""
    splits = population.split(SPLIT_FRACTIONS, seed=config.seed)
    first, second = _halves(splits.validation, config.seed)
    parts = {"train": splits.train, "matcher": first, "threshold": second, "test": splits.test}
    if config.subset:
        for role in ("matcher", "threshold", "test"):
            try:
                parts[role] = parts[role].subset(config.subset)
            except ValueError:
                raise ValueError(
                    f"--subset {config.subset!r}: no {role} identity satisfies it among {len(population)} people; "
                    "raise --identities"
                ) from None
    for role, part in parts.items():
        if len(part) < 2:
            raise ValueError(
                f"the {role} role has {len(part)} identities; at least 2 are needed (raise --identities"
                + (" or loosen --subset)" if config.subset else ")")
            )
    return parts


def _halves(part, seed: int):
    """Two identity-disjoint halves, dealt alternately within each gender after a seeded shuffle."""
    ids = part.identities
    rng = np.random.default_rng([seed, 1])
    key = ids["gender"].astype(str) if "gender" in ids else pd.Series("", index=ids.index)
    first, second = [], []
    for _, group in ids.groupby(key):
        order = rng.permutation(group["speaker_id"].to_numpy())
        first += list(order[0::2])
        second += list(order[1::2])
    return part.select(first), part.select(second)


def _fingerprint(population, parts: dict, extractor_settings: dict) -> str:
    """Cache key of the extracted tables: the population's content (identities,
    clip and face ids, provenance), who is in which role, the extractor settings
    and :data:`vfmatch.utils.CODE_VERSION`. ``--no-cache`` recomputes regardless."""
    h = hashlib.sha1()
    ids = population.identities.drop(columns=["voice_latent", "face_latent"], errors="ignore").astype(str)
    h.update(pd.util.hash_pandas_object(ids, index=False).values.tobytes())
    for dataset, col in ((population.voices, "clip_id"), (population.faces, "face_id")):
        if col in dataset.column_names:
            h.update("|".join(map(str, dataset[col])).encode())
    h.update(json.dumps(population.info, sort_keys=True, default=str).encode())
    h.update(json.dumps({r: sorted(p.speaker_ids) for r, p in parts.items()}).encode())
    h.update(json.dumps(extractor_settings, sort_keys=True, default=str).encode())
    h.update(CODE_VERSION.encode())
    return h.hexdigest()[:20]


def extract_tables(population, parts: dict, config: RunConfig, progress: bool = False) -> MatchingData:
    """Stage 3: fit the extractors on ``parts["train"]``; tables for the held-out roles.

    The tables and the extractors' quality on the test identities are cached
    under the vfmatch cache (safetensors + JSON), keyed by the population, the
    identities of every role and the extractor settings, so a second run skips
    this stage."""
    from safetensors.numpy import load_file, save_file

    names = [n for n in DEFAULT_METAPROPERTIES if population.has_metaproperty(n)]
    extractors = build_extractors(names, config.extractors, quick=config.is_quick, progress=progress)
    # The key holds the extractors' fingerprints (encoder and calculator code, settings,
    # weights), so editing an encoder or a calculator recomputes the tables.
    key = _fingerprint(population, parts, {"extractors": extractors.fingerprint()})
    folder = cache_dir("features", key)
    roles = ("matcher", "threshold", "test")
    timing: dict = {}
    if config.cache and (folder / "tables.safetensors").exists():
        arrays = load_file(str(folder / "tables.safetensors"))
        meta = json.loads((folder / "meta.json").read_text())
        names, quality = meta["metaproperties"], meta["quality"]
        fitted = _load_extractors(folder / "extractors")
        voice = {r: {n: arrays[f"{r}.voice.{n}"] for n in names} for r in roles}
        face = {r: {n: arrays[f"{r}.face.{n}"] for n in names} for r in roles}
        timing["cached"] = True
        return MatchingData(population, parts, voice, face, fitted, quality, names, timing)

    t0 = time.perf_counter()
    fitted = extractors.fit(parts["train"]) or extractors
    timing["fit"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    voice = {r: {k: np.asarray(v, np.float64) for k, v in fitted.transform_voices(parts[r]).items()} for r in roles}
    face = {r: {k: np.asarray(v, np.float64) for k, v in fitted.transform_faces(parts[r]).items()} for r in roles}
    names = [n for n in names if n in voice["test"] and n in face["test"]]
    timing["extract"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    quality = _quality(fitted, parts["test"], seed=config.seed)
    timing["quality"] = round(time.perf_counter() - t0, 3)
    if config.cache:
        save_file({f"{r}.{side}.{n}": np.ascontiguousarray(tab[r][n]) for r in roles for side, tab in (("voice", voice), ("face", face))
                   for n in names}, str(folder / "tables.safetensors"))
        (folder / "meta.json").write_text(json.dumps(to_jsonable({"metaproperties": names, "quality": quality})))
        fitted.save(folder / "extractors")
    return MatchingData(population, parts, voice, face, fitted, quality, names, timing)


def _load_extractors(folder: Path):
    """The cached fitted extractors, or None if they were not saved (the tables suffice to match)."""
    try:
        return ExtractorSet.load(folder, progress=False)
    except (FileNotFoundError, ValueError, KeyError):
        return None


EXTRACTOR_PRESETS = tuple(list_extractor_presets())  # the registry's names ("default", "fast", ...)


def build_extractors(names, preset: str = "default", *, quick: bool = False, progress: bool = False):
    """The extractor set of the main job: :func:`vfmatch.extractors.create_extractors`
    (presets in :mod:`vfmatch.extractors.presets`; ``"fast"`` swaps the vision
    transformers for logistic regressions, benchmarks/bench_main_job.py measures both)."""
    return create_extractors(preset, names, quick=quick, progress=progress)


def _quality(extractors, test_population, seed: int = 0) -> dict:
    """``{metaproperty: {"voice"|"face": {...}}}`` from :func:`vfmatch.quality.quality_report`
    on the test identities; ``majority_baseline`` is the balanced accuracy of always
    answering one value (``1 / K``, K = values present), the baseline that report uses."""
    report = extractors.quality_report(test_population, n_boot=1000, seed=seed)
    out: dict = {}
    for row in report.to_dict(orient="records"):
        entry = {k: v for k, v in row.items() if k not in ("metaproperty", "modality")}
        entry["majority_baseline"] = entry.get("baseline_balanced_accuracy")
        out.setdefault(row["metaproperty"], {})[row["modality"]] = entry
    return to_jsonable(out)


@contextmanager
def device_setting(device: str):
    """Run the block with ``VFMATCH_DEVICE`` set (every encoder asks
    :func:`vfmatch.config.default_device`); ``"auto"`` leaves it alone.
    Raises ValueError for a CUDA device torch cannot see."""
    if device in (None, "", "auto"):
        yield default_device(None)
        return
    resolved = default_device(device)
    old = os.environ.get("VFMATCH_DEVICE")
    os.environ["VFMATCH_DEVICE"] = resolved
    try:
        yield resolved
    finally:
        if old is None:
            os.environ.pop("VFMATCH_DEVICE", None)
        else:
            os.environ["VFMATCH_DEVICE"] = old


def prepare(config: RunConfig | None = None, progress: bool = False) -> MatchingData:
    """Stages 1-3 in one call: what the book's chapters 05-07 start from."""
    config = config or RunConfig(quick=True)
    with device_setting(config.device):
        population = load_or_simulate(config, progress=progress)
        parts = split_roles(population, config)
        return extract_tables(population, parts, config, progress=progress)


# ---------------------------------------------------------------------------
# Stages 4-7: matcher, baselines, difficulty, evaluation
# ---------------------------------------------------------------------------


def n_pairs_for(part) -> int:
    """Balanced training pairs: 20 per voice clip, at most 8000."""
    return int(min(8000, max(200, 20 * part.voices.num_rows)))


def new_matcher(config: RunConfig, metaproperties=None) -> MetapropertyMatcher:
    return MetapropertyMatcher(
        metaproperties=metaproperties, distance=config.distance, classifier=config.classifier,
        threshold_rule=config.threshold_rule, target_fmr=config.target_fmr, random_state=config.seed,
    )


def fit_matcher(matcher: MetapropertyMatcher, data: MatchingData, pairs: dict, oracle: bool = False) -> MetapropertyMatcher:
    """Fit on the "matcher" role's pairs, choose the threshold on the "threshold" role's pairs."""
    tables = data.oracle_tables if oracle else data.tables
    matcher.fit_pairs(*tables("matcher"), pairs["matcher"])
    return matcher.calibrate(*tables("threshold"), pairs["threshold"])


def make_role_pairs(data: MatchingData, seed: int) -> dict:
    from ..data.pairs import make_pairs

    return {role: make_pairs(data.parts[role], n_pairs_for(data.parts[role]), seed=seed + k)
            for k, role in enumerate(("matcher", "threshold", "test"))}


def evaluate_matcher(matcher: MetapropertyMatcher, voice_table, face_table, part, test_pairs, seed: int) -> tuple[dict, np.ndarray]:
    """Identification, AUC and EER on every voice-face pair of ``part`` (via
    :func:`vfmatch.evaluation.evaluate_similarity`), plus match / no-match
    decision rates at the validation threshold on balanced test pairs."""
    from ..evaluation.summary import evaluate_similarity

    S = matcher.similarity_matrix(voice_table, face_table)
    metrics = dict(
        evaluate_similarity(
            S, part.voice_speakers, part.face_speakers,
            voice_gender=part.labels("gender", "voice") if part.has_metaproperty("gender") else None,
            face_gender=part.labels("gender", "face") if part.has_metaproperty("gender") else None,
            seed=seed,
        )
    )
    vi, fi = test_pairs["voice_index"].to_numpy(), test_pairs["face_index"].to_numpy()
    y = test_pairs["label"].to_numpy().astype(bool)
    decided = S[vi, fi] >= matcher.threshold_
    metrics["decision_accuracy"] = float(np.mean(decided == y))
    metrics["false_match_rate"] = float(np.mean(decided[~y]))
    metrics["false_non_match_rate"] = float(np.mean(~decided[y]))
    metrics["threshold"] = float(matcher.threshold_)
    return metrics, S


def subgroups(S: np.ndarray, part, seed: int) -> dict:
    """1:2 identification and AUC per gender and per ethnicity of the test voices,
    with every test face as a candidate (:func:`vfmatch.evaluation.subgroup_report`)."""
    from ..evaluation.summary import subgroup_report

    out = {}
    for col in ("gender", "ethnicity"):
        if col not in part.identities or not part.has_metaproperty(col):
            continue
        table = subgroup_report(S, part.voice_speakers, part.face_speakers, part.identities, by=(col,),
                                n_boot=0, min_identities=3, seed=seed)
        for row in table.to_dict(orient="records"):
            out[f"{col}={row[col]}"] = {k: row[k] for k in ("n_identities", "identification_1to2", "auc", "mean_rank")}
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
    from ..matching.difficulty import check_eps
    from ..matching.distances import resolve_distances
    from ..matching.matcher import CLASSIFIERS

    if config.classifier not in CLASSIFIERS:
        raise ValueError(f"--classifier must be one of {CLASSIFIERS}, got {config.classifier!r}")
    resolve_distances(DEFAULT_METAPROPERTIES, config.distance)
    check_eps(config.eps_strong, config.eps_weak)
    if config.threshold_rule not in ("eer", "fmr") or not 0 < config.target_fmr < 1:
        raise ValueError("--threshold-rule must be eer or fmr, and --target-fmr in (0, 1)")
    if config.extractors not in EXTRACTOR_PRESETS:
        raise ValueError(f"--extractors must be one of {EXTRACTOR_PRESETS}, got {config.extractors!r}")
    if not 0.0 <= config.concordance <= 1.0:
        raise ValueError(f"--concordance must be in [0, 1], got {config.concordance}")


def run(config: RunConfig) -> dict:
    """Run every stage and write the report folder; returns the metrics."""
    with device_setting(config.device):
        return _run(config)


def _run(config: RunConfig) -> dict:
    from tqdm.auto import tqdm

    from ..matching.difficulty import compare_strategies
    from .report import write_json

    out = Path(config.out)
    _check_out(out, config.overwrite)
    _check_options(config)
    timing: dict = {}
    stages = ["population", "split", "extractors", "matcher", "baselines", "difficulty", "evaluation", "report"]
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

    t0 = stage("evaluation")
    test = data.parts["test"]
    ev_test, S_test = evaluate_matcher(matcher, *data.tables("test"), test, pairs["test"], config.seed)
    ev_oracle, S_oracle = evaluate_matcher(oracle, *data.oracle_tables("test"), test, pairs["test"], config.seed)
    evaluation = {"test": ev_test, "oracle": ev_oracle}
    S_gender = None
    if gender_only is not None:
        evaluation["gender_only"], S_gender = evaluate_matcher(gender_only, *data.tables("test"), test, pairs["test"], config.seed)
    evaluation["chance"] = dict(CHANCE)
    by_group = subgroups(S_test, test, config.seed)
    done("evaluation", t0)

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
            "level_of_match": "sum_m weight_m * (distance_m - mean_m) / std_m; higher = more likely the same person",
        },
        "oracle_matcher": {"weights": oracle.weights, "threshold": oracle.threshold_},
        "gender_only_matcher": {"weights": gender_only.weights, "threshold": gender_only.threshold_} if gender_only else None,
        "evaluation": evaluation,
        "subgroups": by_group,
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
    _write_report(out, metrics, matcher, oracle, gender_only, data, strategies, S_test, S_oracle, S_gender, pairs)
    done("report", t0)
    bar.close()
    metrics["timing_seconds"]["total"] = round(sum(v for v in timing.values() if isinstance(v, (int, float))), 3)
    write_json(out / "metrics.json", metrics)
    return metrics


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


def _write_report(out: Path, metrics, matcher, oracle, gender_only, data, strategies, S_test, S_oracle, S_gender, pairs) -> None:
    from sklearn.metrics import roc_curve

    from . import report

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

    test = data.parts["test"]
    same = test.voice_speakers[:, None] == test.face_speakers[None, :]
    curves = {}
    for name, S in (("extracted", S_test), ("oracle", S_oracle), ("gender only", S_gender)):
        if S is not None:
            fpr, tpr, _ = roc_curve(same.ravel(), S.ravel())
            curves[name] = (fpr, tpr, metrics["evaluation"]["oracle" if name == "oracle" else ("test" if name == "extracted" else "gender_only")]["auc"])
    figs = {
        "weights": (report.weights_figure({"extracted": matcher.weights, "oracle": oracle.weights}), "Weights per metaproperty"),
        "roc": (report.roc_figure(curves), "ROC on the test identities"),
        "level_histogram": (report.level_histogram_figure(S_test.ravel(), same.ravel(), matcher.threshold_), "Level of match, same vs different people"),
        "identification": (report.identification_figure({k: v for k, v in metrics["evaluation"].items()}), "1:2 identification"),
        "difficulty": (report.difficulty_figure(strategies), "Retraining by difficulty"),
    }
    if data.extractor_quality:
        figs["extractors"] = (report.extractor_figure(data.extractor_quality), "Extractor quality")
    for name, (fig, _) in figs.items():
        report.save_figure(fig, out / "plots", name)
    notes = [
        "Level of match = sum of weight x standardized distance; higher = more likely the same person.",
        "Oracle = the same matcher fed ground-truth metaproperties: the upper bound of the metaproperty approach here.",
        "Gender-only = a matcher on the extracted gender alone: the floor.",
        "Simulated people: the figures describe this simulator, not any real population.",
    ]
    report.write_index(out, metrics, {f"plots/{k}": t for k, (_, t) in figs.items()}, notes)


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``vfmatch run`` options."""
    d = RunConfig()
    parser.add_argument("--identities", type=int, default=None,
                        help=f"population size to simulate (default 240; {QUICK_IDENTITIES} with --quick)")
    parser.add_argument("--seed", type=int, default=d.seed, help="seed of the simulation, split and training")
    parser.add_argument("--subset", default=None, metavar="COL=VAL,...",
                        help="homogeneous subset for matching and testing, e.g. gender=female,ethnicity=Asian")
    parser.add_argument("--concordance", type=float, default=d.concordance,
                        help="simulator: identity signal shared by voice and face beyond the metaproperties, 0-1")
    parser.add_argument("--quick", action="store_true", help="small population and short training (also VFMATCH_QUICK=1)")
    parser.add_argument("--device", default=d.device, help="auto, cpu or cuda[:N] (auto uses a GPU when torch sees one)")
    parser.add_argument("--data", default=None, help="a population folder or Hugging Face dataset id instead of the simulator")
    parser.add_argument("--out", default=d.out, help="report folder (default vfmatch_report/)")
    parser.add_argument("--classifier", default=d.classifier, choices=["logistic", "gradient_boosting", "random_forest"])
    parser.add_argument("--distance", default=d.distance,
                        help="auto, euclidean, cosine, jensen_shannon, hellinger, emd, or per metaproperty: age=emd,gender=cosine")
    parser.add_argument("--threshold-rule", dest="threshold_rule", default=d.threshold_rule, choices=["eer", "fmr"])
    parser.add_argument("--target-fmr", dest="target_fmr", type=float, default=d.target_fmr,
                        help="false-match rate for --threshold-rule fmr")
    parser.add_argument("--eps-strong", dest="eps_strong", type=float, default=d.eps_strong,
                        help="confidence above which a right (wrong) training pair is easy (hard); default 0.75")
    parser.add_argument("--eps-weak", dest="eps_weak", type=float, default=d.eps_weak,
                        help="confidence at or below which a pair is 'uncertain' rather than medium; default 0.6")
    parser.add_argument("--extractors", default=d.extractors, choices=list(EXTRACTOR_PRESETS),
                        help="default: the extractor module's own set, with vision transformers for skin tone (the "
                             "default); fast: logistic regression instead of the vision transformers (quicker on a CPU)")
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
    for name in ("test", "oracle", "gender_only", "chance"):
        if name in ev:
            m = ev[name]
            label = {"test": "extracted metaproperties", "oracle": "oracle (ground truth)", "gender_only": "gender only (floor)"}.get(name, name)
            print(f"    {label:<26} {m['identification_1to2_vf']:.3f} / {m['identification_1to2_vf_gender_restricted']:.3f}"
                  f"   AUC {m['auc']:.3f}   EER {m['eer']:.3f}")
    return 0
