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


@pytest.fixture
def rng():
    return np.random.default_rng(0)
