"""Distances between voice and face metaproperty distributions (vfmatch.matching.distances)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon as scipy_js
from scipy.stats import wasserstein_distance

from vfmatch.matching import distances as D
from vfmatch.matching.distances import default_distance, paired_distance, pairwise_distance, resolve_distances


def _dirichlet(rng, n, k):
    return rng.dirichlet(np.ones(k), size=n)


@pytest.mark.parametrize("name", D.list_distances())
def test_zero_on_identical_symmetric_and_nonnegative(name, rng):
    p, q = _dirichlet(rng, 50, 6), _dirichlet(rng, 50, 6)
    assert np.allclose(paired_distance(name, p, p), 0.0, atol=1e-7)
    assert np.allclose(paired_distance(name, p, q), paired_distance(name, q, p))
    assert np.all(paired_distance(name, p, q) >= 0)
    assert np.all(paired_distance(name, p, q) <= np.sqrt(2) + 1e-12)


def test_known_values_on_disjoint_one_hots():
    a, b = np.array([[1.0, 0.0, 0.0, 0.0]]), np.array([[0.0, 0.0, 0.0, 1.0]])
    assert paired_distance("euclidean", a, b)[0] == pytest.approx(np.sqrt(2))
    assert paired_distance("cosine", a, b)[0] == pytest.approx(1.0)
    assert paired_distance("jensen_shannon", a, b)[0] == pytest.approx(1.0)
    assert paired_distance("hellinger", a, b)[0] == pytest.approx(1.0)
    # Earth mover's: opposite ends cost 1, one bin over costs 1/(K-1).
    assert paired_distance("emd", a, b)[0] == pytest.approx(1.0)
    assert paired_distance("emd", a, np.array([[0.0, 1.0, 0.0, 0.0]]))[0] == pytest.approx(1 / 3)


def test_emd_respects_order_and_categorical_distances_do_not():
    young = np.array([[1.0, 0, 0, 0, 0]])
    a_bit_older = np.array([[0, 1.0, 0, 0, 0]])
    old = np.array([[0, 0, 0, 0, 1.0]])
    assert paired_distance("emd", young, a_bit_older)[0] < paired_distance("emd", young, old)[0]
    assert paired_distance("jensen_shannon", young, a_bit_older)[0] == pytest.approx(
        paired_distance("jensen_shannon", young, old)[0]
    )


def test_against_scipy(rng):
    p, q = _dirichlet(rng, 40, 9), _dirichlet(rng, 40, 9)
    js = np.array([scipy_js(a, b, base=2) for a, b in zip(p, q)])
    assert np.allclose(paired_distance("jensen_shannon", p, q), js, atol=1e-9)
    bins = np.arange(9)
    w = np.array([wasserstein_distance(bins, bins, a, b) for a, b in zip(p, q)]) / 8
    assert np.allclose(paired_distance("emd", p, q), w, atol=1e-9)
    hel = np.sqrt(0.5 * np.sum((np.sqrt(p) - np.sqrt(q)) ** 2, axis=1))
    assert np.allclose(paired_distance("hellinger", p, q), hel)
    cos = 1 - np.sum(p * q, 1) / (np.linalg.norm(p, axis=1) * np.linalg.norm(q, axis=1))
    assert np.allclose(paired_distance("cosine", p, q), cos)


@pytest.mark.parametrize("name", D.list_distances())
def test_pairwise_equals_paired(name, rng, monkeypatch):
    monkeypatch.setattr(D, "_CHUNK_FLOATS", 60)  # force several chunks
    p, q = _dirichlet(rng, 7, 5), _dirichlet(rng, 11, 5)
    full = pairwise_distance(name, p, q)
    assert full.shape == (7, 11)
    i, j = np.meshgrid(np.arange(7), np.arange(11), indexing="ij")
    assert np.allclose(full, paired_distance(name, p[i.ravel()], q[j.ravel()]).reshape(7, 11), atol=1e-7)


def test_resolve_distances():
    auto = resolve_distances(["gender", "age", "skin_tone", "accent"])
    assert auto == {"gender": "jensen_shannon", "age": "emd", "skin_tone": "emd", "accent": "jensen_shannon"}
    assert default_distance("bmi") == "emd"
    assert set(resolve_distances(["gender", "age"], "euclidean").values()) == {"euclidean"}
    mixed = resolve_distances(["gender", "age"], {"gender": "cosine"})
    assert mixed == {"gender": "cosine", "age": "emd"}
    assert resolve_distances(["gender", "age"], "gender=hellinger,age=js") == {"gender": "hellinger", "age": "jensen_shannon"}


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="unknown distance 'manhattan'"):
        resolve_distances(["gender"], "manhattan")
    with pytest.raises(ValueError, match="not among the metaproperties"):
        resolve_distances(["gender"], {"age": "emd"})
    with pytest.raises(ValueError, match="shape"):
        paired_distance("emd", np.ones(3) / 3, np.ones(3) / 3)
    with pytest.raises(ValueError, match="equal shapes"):
        paired_distance("emd", np.ones((2, 3)) / 3, np.ones((3, 3)) / 3)
    with pytest.raises(ValueError, match="same number of values"):
        pairwise_distance("cosine", np.ones((2, 3)) / 3, np.ones((2, 4)) / 4)
