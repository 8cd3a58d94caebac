"""What the book and ``vfmatch run`` share: a population's extracted tables, split by role.

Stages 1-3 of the main job, and the matcher helpers built on them::

    1. population   simulate the default population (cached), or read --data
    2. split        identity-disjoint: train / validation / test; the validation
                    identities are halved into "matcher" and "threshold" roles
    3. extractors   fit the metaproperty extractors on the train identities and
                    extract probability tables for the held-out ones (cached)

:func:`prepare` runs the three and returns a :class:`MatchingData`; the book's
chapters 05-07 (``book/05_distances_and_weights.ipynb``,
``book/06_difficulty_and_curriculum.ipynb``,
``book/07_matching_and_retrieval.ipynb``) and their widgets
(:mod:`vfmatch.widgets.matching`) start from it, and so does the command
(:mod:`vfmatch.job.run`). :func:`make_role_pairs`, :func:`new_matcher` and
:func:`fit_matcher` give the labelled pairs per role and the matcher exactly
as ``vfmatch run`` makes them.

*Why the matcher learns on people the extractors never saw.* An extractor is
over-confident on the people it was trained on (on the quick simulated
population the face accent extractor is right for every training face and
near chance on new ones), so distances between its in-sample predictions
describe a world the matcher will never meet; trained on them, the matcher
was no better and in some runs worse (``book/05_distances_and_weights.ipynb``
shows the comparison). Out-of-fold tables for the training people were tried
too: they need the extractors fitted once per fold (minutes more on a CPU),
and in the run we compared they did not beat the validation half.

``subset="gender=female,ethnicity=Asian"`` keeps the split of the whole
population (so the extractors are the same as in an unrestricted run) and
restricts the matcher, threshold and test identities to the subset: a
homogeneous population as in paper 001 (seed 001).

*The table cache.* The extracted tables, the extractors' quality and the fitted
extractors are saved under the vfmatch cache (:func:`vfmatch.config.cache_dir`),
keyed by the population's content, who is in which role, the extractor set's
fingerprint (:meth:`vfmatch.extractors.ExtractorSet.fingerprint`: every
encoder's configuration, weights and code, every calculator's name, parameters
and code) and :data:`vfmatch.utils.CODE_VERSION`. Editing an encoder or a
calculator, or choosing other metaproperties, therefore recomputes them;
``RunConfig(cache=False)`` (``--no-cache``) recomputes regardless.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from safetensors.numpy import load_file, save_file

from ..config import cache_dir, default_device, quick_mode
from ..data.load import load_population
from ..data.pairs import make_pairs
from ..evaluation.augment import augment_population
from ..extractors import ExtractorSet, create_extractors, list_extractor_presets
from ..matching.matcher import MetapropertyMatcher
from ..matching.tables import oracle_metaproperties
from ..metaproperties import DEFAULT_METAPROPERTIES, get_metaproperty
from ..simulator.population import make_population
from ..simulator.traits import DEFAULT_N_IDENTITIES
from ..utils import CODE_VERSION, to_jsonable

__all__ = [
    "RunConfig",
    "MatchingData",
    "QUICK_IDENTITIES",
    "SPLIT_FRACTIONS",
    "ROLES",
    "EXTRACTOR_PRESETS",
    "load_or_simulate",
    "split_roles",
    "extract_tables",
    "build_extractors",
    "device_setting",
    "prepare",
    "n_pairs_for",
    "make_role_pairs",
    "new_matcher",
    "fit_matcher",
]

QUICK_IDENTITIES = 60
SPLIT_FRACTIONS = (0.5, 0.25, 0.25)  # train (extractors) / validation (matcher + threshold) / test
ROLES = ("matcher", "threshold", "test")  # the held-out roles, each with extracted tables


@dataclass
class RunConfig:
    """Options of the main job (the ``vfmatch run`` flags; ``vfmatch run --help``)."""

    identities: int | None = None  # None: DEFAULT_N_IDENTITIES (QUICK_IDENTITIES in quick mode)
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
    metaproperties: list | None = None  # None: every default metaproperty the population has
    methods: list | None = None  # None: every method (vfmatch.job.methods.list_methods)
    embedding_train: str = "all"  # who the embeddings learn from: all | subset | all+subset
    cache: bool = True
    progress: bool = True
    overwrite: bool = False
    # None, "codecs", "noise" or "codecs+noise": degrade half of the extractors' training
    # clips (paper 001's remedy, vfmatch.evaluation.augment); part of the tables' cache key.
    augment: str | None = None

    @property
    def is_quick(self) -> bool:
        return bool(self.quick) or quick_mode()

    def n_identities(self) -> int:
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
    timing : seconds per step of :func:`extract_tables` (``fit``, ``extract``,
        ``quality``), or ``{"cached": True}`` when the tables came from the cache
    pairs_by_seed : dict seed -> :func:`make_role_pairs` of this data, filled by
        :meth:`role_pairs` so every widget move sees the same pairs
    """

    population: object
    parts: dict
    voice: dict
    face: dict
    extractors: object | None = None
    extractor_quality: dict = field(default_factory=dict)
    metaproperties: list = field(default_factory=list)
    timing: dict = field(default_factory=dict)
    pairs_by_seed: dict = field(default_factory=dict, repr=False, compare=False)

    def tables(self, role: str) -> tuple[dict, dict]:
        """``(voice_table, face_table)`` of one held-out role."""
        return self.voice[role], self.face[role]

    def oracle_tables(self, role: str) -> tuple[dict, dict]:
        """Ground-truth tables of one role (:func:`vfmatch.matching.tables.oracle_metaproperties`)."""
        return oracle_metaproperties(self.parts[role], self.metaproperties)

    def role_pairs(self, seed: int = 0) -> dict:
        """:func:`make_role_pairs` for ``seed``, computed once and kept in ``pairs_by_seed``."""
        if seed not in self.pairs_by_seed:
            self.pairs_by_seed[seed] = make_role_pairs(self, seed)
        return self.pairs_by_seed[seed]


# ---------------------------------------------------------------------------
# Stages 1-3: population, split, extracted tables
# ---------------------------------------------------------------------------


def load_or_simulate(config: RunConfig, progress: bool = False):
    """Stage 1: the population named by ``--data``, or the simulated default."""
    if config.data:
        return load_population(config.data)
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


def _fingerprint(population, parts: dict, extractor_set: ExtractorSet, augment: str | None = None) -> str:
    """Cache key of the extracted tables: the population's content (identities,
    clip and face ids, provenance), who is in which role, the extractor set's
    fingerprint (encoders, calculators, their code), the training augmentation
    (``RunConfig.augment``) and :data:`vfmatch.utils.CODE_VERSION`."""
    h = hashlib.sha1()
    ids = population.identities.drop(columns=["voice_latent", "face_latent"], errors="ignore").astype(str)
    h.update(pd.util.hash_pandas_object(ids, index=False).values.tobytes())
    for dataset, col in ((population.voices, "clip_id"), (population.faces, "face_id")):
        if col in dataset.column_names:
            h.update("|".join(map(str, dataset[col][:])).encode())
    h.update(json.dumps(population.info, sort_keys=True, default=str).encode())
    h.update(json.dumps({r: sorted(p.speaker_ids) for r, p in parts.items()}).encode())
    h.update(extractor_set.fingerprint().encode())
    h.update(CODE_VERSION.encode())
    if augment:  # only when set, so the keys of runs without augmentation stay as they were
        h.update(f"augment={augment}".encode())
    return h.hexdigest()[:20]


def _metaproperty_names(population, config: RunConfig) -> list[str]:
    """``config.metaproperties`` (checked against the population), else every default one it has."""
    if config.metaproperties is None:
        return [n for n in DEFAULT_METAPROPERTIES if population.has_metaproperty(n)]
    names = [get_metaproperty(n).name for n in config.metaproperties]
    missing = [n for n in names if not population.has_metaproperty(n)]
    if missing:
        raise ValueError(f"--metaproperties: the population has no ground truth for {missing}")
    return names


def extract_tables(population, parts: dict, config: RunConfig, progress: bool = False,
                   extractors: ExtractorSet | None = None) -> MatchingData:
    """Stage 3: fit the extractors on ``parts["train"]``; tables for the held-out roles.

    ``extractors`` is an unfitted :class:`~vfmatch.extractors.ExtractorSet` to use
    instead of the ``config.extractors`` preset (an experiment with another
    encoder, say). With ``config.augment`` the extractors are fitted on
    :func:`vfmatch.evaluation.augment.augment_population` of the training people. The tables, the extractors' quality on the test identities
    and the fitted extractors are cached (safetensors + JSON; module docstring),
    so a second identical call loads them (``timing == {"cached": True}``)."""
    if extractors is None:
        extractors = build_extractors(_metaproperty_names(population, config), config.extractors,
                                      quick=config.is_quick, progress=progress)
    names = extractors.metaproperties
    folder = cache_dir("features", _fingerprint(population, parts, extractors, config.augment))
    timing: dict = {}
    if config.cache and (folder / "tables.safetensors").exists():
        arrays = load_file(str(folder / "tables.safetensors"))
        meta = json.loads((folder / "meta.json").read_text())
        names, quality = meta["metaproperties"], meta["quality"]
        fitted = _load_extractors(folder / "extractors")
        voice = {r: {n: arrays[f"{r}.voice.{n}"] for n in names} for r in ROLES}
        face = {r: {n: arrays[f"{r}.face.{n}"] for n in names} for r in ROLES}
        timing["cached"] = True
        return MatchingData(population, parts, voice, face, fitted, quality, names, timing)

    t0 = time.perf_counter()
    # --augment: the extractors train on partly degraded clips; every other role stays clean.
    fitted = extractors.fit(augment_population(parts["train"], config.augment, seed=config.seed)) or extractors
    timing["fit"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    voice = {r: {k: np.asarray(v, np.float64) for k, v in fitted.transform_voices(parts[r]).items()} for r in ROLES}
    face = {r: {k: np.asarray(v, np.float64) for k, v in fitted.transform_faces(parts[r]).items()} for r in ROLES}
    names = [n for n in names if n in voice["test"] and n in face["test"]]
    timing["extract"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    quality = _quality(fitted, parts["test"], seed=config.seed)
    timing["quality"] = round(time.perf_counter() - t0, 3)
    if config.cache:
        save_file({f"{r}.{side}.{n}": np.ascontiguousarray(tab[r][n]) for r in ROLES for side, tab in (("voice", voice), ("face", face))
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
    """``{metaproperty: {"voice"|"face": {...}}}`` from :func:`vfmatch.extractors.quality.quality_report`
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


def prepare(config: RunConfig | None = None, progress: bool = False, *, extractors: ExtractorSet | None = None) -> MatchingData:
    """Stages 1-3 in one call: what the book's chapters 05-07 start from.

    ``extractors``: an unfitted extractor set instead of the preset (:func:`extract_tables`)."""
    config = config or RunConfig(quick=True)
    with device_setting(config.device):
        population = load_or_simulate(config, progress=progress)
        parts = split_roles(population, config)
        return extract_tables(population, parts, config, progress=progress, extractors=extractors)


# ---------------------------------------------------------------------------
# The matcher as the job makes it
# ---------------------------------------------------------------------------


def n_pairs_for(part) -> int:
    """Balanced training pairs: 20 per voice clip, at least 200, at most 8000."""
    return int(min(8000, max(200, 20 * part.voices.num_rows)))


def make_role_pairs(data: MatchingData, seed: int) -> dict:
    """Balanced labelled pairs (:func:`vfmatch.data.pairs.make_pairs`) of each held-out role:
    ``{"matcher" | "threshold" | "test": frame}`` (:meth:`MatchingData.role_pairs` caches them)."""
    return {role: make_pairs(data.parts[role], n_pairs_for(data.parts[role]), seed=seed + k)
            for k, role in enumerate(ROLES)}


def new_matcher(config: RunConfig, metaproperties=None) -> MetapropertyMatcher:
    """An unfitted matcher with the run's classifier, distances, threshold rule and seed."""
    return MetapropertyMatcher(
        metaproperties=metaproperties, distance=config.distance, classifier=config.classifier,
        threshold_rule=config.threshold_rule, target_fmr=config.target_fmr, random_state=config.seed,
    )


def fit_matcher(matcher: MetapropertyMatcher, data: MatchingData, pairs: dict, oracle: bool = False) -> MetapropertyMatcher:
    """Fit on the "matcher" role's pairs, choose the threshold on the "threshold" role's pairs."""
    tables = data.oracle_tables if oracle else data.tables
    matcher.fit_pairs(*tables("matcher"), pairs["matcher"])
    return matcher.calibrate(*tables("threshold"), pairs["threshold"])
