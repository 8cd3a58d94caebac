"""Easy / medium / uncertain / hard pairs and difficulty-based retraining (vfmatch.matching.difficulty)."""

from __future__ import annotations

import datasets
import numpy as np
import pytest

from vfmatch.matching.difficulty import (
    CATEGORIES,
    STRATEGIES,
    categorize,
    category_counts,
    compare_strategies,
    confidence,
    curriculum_stages,
    difficulty_weights,
    retrain,
)
from vfmatch.matching.matcher import MetapropertyMatcher
from vfmatch.matching.tables import noisy_metaproperties, oracle_metaproperties
from vfmatch.data.pairs import make_pairs
from vfmatch.data.population import Population
from vfmatch.simulator.traits import draw_identities


def test_confidence():
    assert np.allclose(confidence([0.1, 0.5, 0.8]), [0.9, 0.5, 0.8])


def test_categories_follow_the_patent_prose():
    # eps_weak=0.6, eps_strong=0.8; columns: p, y_true, expected
    cases = [
        (0.95, 1, "easy"),  # right, confident
        (0.05, 0, "easy"),
        (0.95, 0, "hard"),  # wrong, confident
        (0.10, 1, "hard"),
        (0.70, 1, "medium"),  # right, medium confidence (the patent's formula would leave it out)
        (0.70, 0, "medium"),  # wrong, medium confidence
        (0.20, 0, "medium"),  # c = 0.8 = eps_strong exactly: medium, not easy
        (0.40, 1, "uncertain"),  # c = 0.6 = eps_weak exactly: uncertain
        (0.55, 0, "uncertain"),  # near a coin toss, wrong
        (0.50, 1, "uncertain"),
    ]
    p, y, want = zip(*cases)
    assert list(categorize(p, y, eps_strong=0.8, eps_weak=0.6)) == list(want)


def test_every_pair_gets_exactly_one_category(rng):
    p, y = rng.random(500), rng.integers(0, 2, 500)
    cats = categorize(p, y, 0.9, 0.7)
    counts = category_counts(cats)
    assert list(counts) == list(CATEGORIES) and sum(counts.values()) == 500
    # With eps_weak = eps_strong there is no medium band.
    assert category_counts(categorize(p, y, 0.7, 0.7))["medium"] == 0


@pytest.mark.parametrize("strong, weak", [(0.7, 0.8), (1.1, 0.6), (0.8, 0.4)])
def test_bad_thresholds_raise(strong, weak):
    with pytest.raises(ValueError, match="eps_weak <= eps_strong"):
        categorize([0.5], [1], strong, weak)


def test_weights_and_stages():
    cats = np.array(["easy", "hard", "medium", "uncertain", "easy"])
    w = difficulty_weights(cats)
    assert w[0] < w[2] < w[1] and w[3] == w[2]
    assert difficulty_weights(cats, {"hard": 5.0})[1] == 5.0
    stages = curriculum_stages(cats)
    assert [list(s) for s in stages] == [[0, 4], [0, 2, 3, 4], [0, 1, 2, 3, 4]]
    assert [list(s) for s in curriculum_stages(np.array(["hard", "medium"]))] == [[1], [0, 1]]


@pytest.fixture(scope="module")
def splits():
    ids = draw_identities(120, seed=3)
    rows = [s for s in ids["speaker_id"] for _ in range(3)]
    pop = Population(ids, datasets.Dataset.from_dict({"speaker_id": rows}), datasets.Dataset.from_dict({"speaker_id": rows}))
    out = {}
    for k, (name, part) in enumerate(pop.split(seed=0).items()):
        v, f = oracle_metaproperties(part)
        out[name] = (noisy_metaproperties(v, 1.5, seed=2 * k), noisy_metaproperties(f, 1.5, seed=2 * k + 1), make_pairs(part, 1200, seed=k))
    return out


def test_retrain_strategies(splits):
    v, f, pairs = splits["train"]
    m = MetapropertyMatcher().fit_pairs(v, f, pairs)
    X = m.pair_distances(v, f, pairs["voice_index"], pairs["face_index"])
    y = pairs["label"].to_numpy()
    cats = categorize(m.predict_proba(X)[:, 1], y)
    base = retrain(m, X, y, "baseline")
    assert np.allclose(base.weights_, m.weights_)
    weighted = retrain(m, X, y, "weighted")
    assert not np.allclose(weighted.weights_, m.weights_)
    dropped = retrain(m, X, y, "drop")
    assert dropped.n_train_pairs_ == int(np.sum(~np.isin(cats, ("easy", "hard"))))
    curr = retrain(m, X, y, "curriculum", categories=cats)
    control = retrain(m, X, y, "curriculum_control", categories=cats)
    assert type(curr.classifier_).__name__ == "SGDClassifier"
    assert not np.allclose(curr.weights_, control.weights_)  # the order of the stages matters
    # Weights are still coefficient x std, whatever the strategy.
    assert np.allclose(curr.weights_, curr.coef_ * X.std(axis=0))
    with pytest.raises(ValueError, match="strategy must be one of"):
        retrain(m, X, y, "shuffle")
    with pytest.raises(ValueError, match="only one class"):
        retrain(m, X, y, "drop", categories=np.where(y == 1, "medium", "easy"))


def test_tree_curriculum_grows_trees_stage_by_stage(splits):
    v, f, pairs = splits["train"]
    m = MetapropertyMatcher(classifier="gradient_boosting", n_estimators=30).fit_pairs(v, f, pairs)
    X = m.pair_distances(v, f, pairs["voice_index"], pairs["face_index"])
    curr = retrain(m, X, pairs["label"], "curriculum")
    assert len(curr.classifier_.estimators_) == 30


def test_compare_strategies_reports_held_out_figures(splits):
    v, f, pairs = splits["train"]
    m = MetapropertyMatcher().fit_pairs(v, f, pairs)
    df = compare_strategies(m, splits["train"], splits["validation"], splits["test"], eps_strong=0.8, eps_weak=0.6)
    assert list(df["strategy"]) == list(STRATEGIES)
    assert df["test_accuracy"].between(0.5, 1).all() and df["test_auc"].between(0.5, 1).all()
    assert df.loc[df["strategy"] == "baseline", "delta_accuracy"].iloc[0] == 0
    assert sum(df.attrs["category_counts"].values()) == len(pairs)
    assert {"weight.gender", "weight.age"} <= set(df.columns)
