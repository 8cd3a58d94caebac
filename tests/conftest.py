"""Shared fixtures. Everything is seeded and offline; the vfmatch cache goes to a
temporary folder so tests never read a user's cache."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("VFMATCH_QUICK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("vfmatch-cache")
    old = os.environ.get("VFMATCH_CACHE")
    os.environ["VFMATCH_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("VFMATCH_CACHE", None)
    else:
        os.environ["VFMATCH_CACHE"] = old


@pytest.fixture(scope="session")
def tiny_population(_isolated_cache):
    """12 people, 2 short clips and 2 faces each: for fast unit tests."""
    from vfmatch import make_population

    return make_population(12, seed=0, clips_per_identity=2, faces_per_identity=2, clip_seconds=(1.0, 1.5), image_size=64)


@pytest.fixture(scope="session")
def small_population(_isolated_cache):
    """60 people with the default clip and face counts: for tests that train."""
    from vfmatch import make_population

    return make_population(60, seed=1)


@pytest.fixture(scope="session")
def gender_models_folder(tiny_population, tmp_path_factory):
    """A models folder laid out as `vfmatch run` writes it (``models/extractors``,
    ``models/matcher``: gender only, small models fitted on simulated people) and the
    population exported as `vfmatch population` does (``population/``): what the
    commands on files (`match`, `rank`, `compare`, `fuse`) read. Tests must not write into it."""
    from vfmatch.data.export import export_population
    from vfmatch.data.pairs import make_pairs
    from vfmatch.extractors import ExtractorSet, MetapropertyExtractor
    from vfmatch.matching.matcher import MetapropertyMatcher

    root = tmp_path_factory.mktemp("gender-models")
    pop = tiny_population
    extractors = ExtractorSet([
        MetapropertyExtractor("gender", "voice", encoder="f0-formants", calculator="logistic", cache=False),
        MetapropertyExtractor("gender", "face", encoder="thumbnail", calculator="logistic", cache=False),
    ], progress=False).fit(pop)
    voice, face = extractors.transform_voices(pop), extractors.transform_faces(pop)
    matcher = MetapropertyMatcher(metaproperties=["gender"]).fit_pairs(voice, face, make_pairs(pop, 200, seed=0))
    matcher.calibrate(voice, face, make_pairs(pop, 200, seed=1))
    extractors.save(root / "models" / "extractors")
    matcher.save(root / "models" / "matcher")
    export_population(pop, root / "population")
    return root


@pytest.fixture
def rng():
    return np.random.default_rng(0)
