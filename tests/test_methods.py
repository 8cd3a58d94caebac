"""The hybrid matcher (embedding columns in the matcher) and the comparison of methods (vfmatch.job.methods)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vfmatch.data.pairs import make_pairs
from vfmatch.evaluation.metrics import roc_auc
from vfmatch.job.methods import check_methods, evaluate_scores, list_methods, methods_table
from vfmatch.job.prepare import RunConfig
from vfmatch.job.run import _check_options
from vfmatch.matching.distances import default_distance
from vfmatch.matching.matcher import MetapropertyMatcher
from vfmatch.matching.tables import (
    embedding_column,
    is_embedding_column,
    noisy_metaproperties,
    oracle_metaproperties,
    table_sides,
    with_embedding,
)


@pytest.fixture(scope="module")
def hybrid_case(tiny_population):
    """Blurred metaproperty tables plus a toy 'embedding': a per-person code plus noise."""
    pop = tiny_population
    v, f = oracle_metaproperties(pop)
    v, f = noisy_metaproperties(v, 2.0, seed=1), noisy_metaproperties(f, 2.0, seed=2)
    rng = np.random.default_rng(0)
    codes = {s: rng.normal(size=8) for s in np.unique(pop.voice_speakers)}
    ev = np.stack([codes[s] + 0.7 * rng.normal(size=8) for s in pop.voice_speakers])
    ef = np.stack([codes[s] + 0.7 * rng.normal(size=8) for s in pop.face_speakers])
    ev /= np.linalg.norm(ev, axis=1, keepdims=True)
    ef /= np.linalg.norm(ef, axis=1, keepdims=True)
    pairs = make_pairs(pop, 600, seed=0)
    return pop, with_embedding(v, "toy", ev), with_embedding(f, "toy", ef), pairs, (v, f)


def test_embedding_column_is_a_cosine_distance_of_any_width(hybrid_case):
    _, v, f, _, _ = hybrid_case
    name = embedding_column("toy")
    assert name == "embedding:toy" and is_embedding_column(name) and not is_embedding_column("gender")
    assert default_distance(name) == "cosine"
    p, q = table_sides(v, f, name)
    assert p.shape[1] == q.shape[1] == 8


def test_bad_embeddings_are_refused_by_name(hybrid_case):
    _, _, _, _, (v, _) = hybrid_case
    n = len(v["gender"])
    with pytest.raises(ValueError, match="toy.*rows"):
        with_embedding(v, "toy", np.ones((n + 1, 4)))
    bad = np.ones((n, 4))
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="toy.*NaN"):
        with_embedding(v, "toy", bad)
    with pytest.raises(ValueError, match="toy.*shape"):
        with_embedding(v, "toy", np.ones(n))
    with pytest.raises(ValueError, match="one width"):
        table_sides({"embedding:x": np.ones((3, 4))}, {"embedding:x": np.ones((3, 5))}, "embedding:x")


def test_hybrid_weight_is_coefficient_times_std_and_explanations_show_it(hybrid_case):
    pop, v, f, pairs, (v0, f0) = hybrid_case
    hybrid = MetapropertyMatcher().fit_pairs(v, f, pairs)
    name = embedding_column("toy")
    assert hybrid.metaproperties_[-1] == name and hybrid.distances_[name] == "cosine"
    k = hybrid.metaproperties_.index(name)
    assert hybrid.weights[name] == pytest.approx(hybrid.coef_[k] * hybrid.std_[k])
    assert hybrid.weights[name] < 0  # a larger cosine distance argues against a match
    # the learned column carries signal the blurred metaproperties lack: the hybrid ranks better
    plain = MetapropertyMatcher().fit_pairs(v0, f0, pairs)
    same = pop.voice_speakers[:, None] == pop.face_speakers[None, :]
    assert roc_auc(same.ravel(), hybrid.similarity_matrix(v, f).ravel()) > roc_auc(same.ravel(), plain.similarity_matrix(v0, f0).ravel())
    ex = hybrid.explain(v, f, 0, 0)
    row = ex.table.set_index("metaproperty").loc[name]
    assert row["voice_top"] == "(learned embedding)" and np.isfinite(row["contribution"])
    assert ex.table["contribution"].sum() == pytest.approx(ex.level, abs=1e-9)


def test_hybrid_saves_and_loads_to_identical_scores(hybrid_case, tmp_path):
    _, v, f, pairs, _ = hybrid_case
    hybrid = MetapropertyMatcher().fit_pairs(v, f, pairs)
    back = MetapropertyMatcher.load(hybrid.save(tmp_path / "hybrid"))
    np.testing.assert_allclose(back.similarity_matrix(v, f), hybrid.similarity_matrix(v, f), rtol=0, atol=1e-12)
    assert MetapropertyMatcher(metaproperties=["gender", "embedding:toy"]).fit_pairs(v, f, pairs).metaproperties_ == [
        "gender", "embedding:toy"]


def test_methods_are_checked_and_ordered():
    assert list_methods()[0] == "metaproperty" and list_methods()[-1] == "hybrid"
    assert {"triplet", "weighted_triplet", "sss", "contrastive"} <= set(list_methods())
    assert check_methods(["hybrid", "triplet"]) == ["triplet", "hybrid"]
    assert check_methods(None) == list_methods()
    with pytest.raises(ValueError, match="unknown method.*nope"):
        check_methods(["nope"])
    with pytest.raises(ValueError, match="unknown method"):
        _check_options(RunConfig(methods=["triplet", "bogus"]))
    with pytest.raises(ValueError, match="needs --subset"):
        _check_options(RunConfig(embedding_train="all+subset"))
    with pytest.raises(ValueError, match="embedding-train"):
        _check_options(RunConfig(embedding_train="sometimes"))


def test_evaluate_scores_adds_decisions_and_the_two_intervals(hybrid_case):
    pop, v, f, pairs, _ = hybrid_case
    S = MetapropertyMatcher().fit_pairs(v, f, pairs).similarity_matrix(v, f)
    m = evaluate_scores(S, pop, pairs, threshold=0.0, seed=0)
    for key in ("identification_1to2_vf", "identification_1to2_vf_gender_restricted"):
        lo, hi = m[f"{key}_ci"]
        assert lo <= m[key] <= hi
    assert 0 <= m["false_match_rate"] <= 1 and m["threshold"] == 0.0
    row = methods_table({"x": m})[0]
    assert row["method"] == "x" and row["1:2 V->F"] == round(m["identification_1to2_vf"], 3)
    assert isinstance(pd.DataFrame(methods_table({"x": m, "y": m})), pd.DataFrame)
