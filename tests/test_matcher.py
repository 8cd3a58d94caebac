"""The metaproperty matcher (vfmatch.matching.matcher, .classifiers, .threshold, .explain):
weights, level of match, threshold, uses and explanations. Runs on ground-truth tables with noise, so no extractor
has to be trained; the population has metadata but no audio or images."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.naive_bayes import GaussianNB

from vfmatch.evaluation.metrics import equal_error_rate
from vfmatch.matching.classifiers import create_classifier, list_classifiers, register_classifier, unregister_classifier
from vfmatch.matching.explain import shapley_contributions
from vfmatch.matching.matcher import MetapropertyMatcher
from vfmatch.matching.tables import as_pairs, noisy_metaproperties, oracle_metaproperties, select_rows
from vfmatch.data.pairs import make_pairs
from vfmatch.data.population import Population
from vfmatch.simulator.traits import draw_identities


def metadata_population(n=150, per_identity=3, seed=0):
    """Identities with clip and face rows but no audio or pixels: enough for matching."""
    ids = draw_identities(n, seed=seed)
    rows = [s for s in ids["speaker_id"] for _ in range(per_identity)]
    return Population(ids, datasets.Dataset.from_dict({"speaker_id": rows}), datasets.Dataset.from_dict({"speaker_id": rows}))


@pytest.fixture(scope="module")
def data():
    pop = metadata_population()
    splits = pop.split(seed=0)
    out = {}
    for k, (name, part) in enumerate(splits.items()):
        v, f = oracle_metaproperties(part)
        out[name] = (
            part,
            noisy_metaproperties(v, 1.5, seed=2 * k),
            noisy_metaproperties(f, 1.5, seed=2 * k + 1),
            make_pairs(part, 1500, seed=k),
        )
    return out


@pytest.fixture(scope="module")
def fitted(data):
    _, v, f, pairs = data["train"]
    m = MetapropertyMatcher().fit_pairs(v, f, pairs)
    _, vv, fv, pv = data["validation"]
    return m.calibrate(vv, fv, pv)


def test_logistic_weights_are_coefficient_times_distance_std(data):
    """The patent: weight = logistic coefficient x std of that metaproperty's distances."""
    _, v, f, pairs = data["train"]
    m = MetapropertyMatcher(C=0.5).fit_pairs(v, f, pairs)
    X = m.pair_distances(v, f, pairs["voice_index"], pairs["face_index"])
    independent = LogisticRegression(C=0.5, max_iter=2000).fit(X, pairs["label"])
    expected = independent.coef_[0] * X.std(axis=0)
    assert np.allclose(m.weights_, expected, rtol=0, atol=1e-9)
    assert np.allclose(m.coef_ * m.std_, m.weights_, rtol=0, atol=1e-12)
    assert list(m.weights) == m.metaproperties_


def test_weights_are_negative_for_informative_and_small_for_noise(data):
    part, v, f, pairs = data["train"]
    from vfmatch.metaproperties import Metaproperty, register_metaproperty, unregister_metaproperty

    @register_metaproperty
    class Coin(Metaproperty):  # a metaproperty unrelated to identity
        name = "coin"
        values = ("heads", "tails")

    rng = np.random.default_rng(0)
    v = {**v, "coin": rng.dirichlet(np.ones(2), len(part.voices))}
    f = {**f, "coin": rng.dirichlet(np.ones(2), len(part.faces))}
    try:
        m = MetapropertyMatcher().fit_pairs(v, f, pairs)
    finally:
        unregister_metaproperty("coin")
    w = m.weights
    for name in ("gender", "ethnicity", "mother_tongue"):
        assert w[name] < -0.3, w
    assert abs(w["coin"]) < 0.2 * abs(w["gender"]), w


def test_level_is_logit_up_to_a_constant_and_higher_means_match(fitted, data):
    _, v, f, pairs = data["test"]
    X = fitted.pair_distances(v, f, pairs["voice_index"], pairs["face_index"])
    level = fitted.decision_function(X)
    logit = np.log(fitted.predict_proba(X)[:, 1] / fitted.predict_proba(X)[:, 0])
    assert np.allclose(logit - level, (logit - level)[0], atol=1e-8)
    assert roc_auc_score(pairs["label"], level) > 0.8
    assert np.allclose(fitted.contributions(X).sum(axis=1), level)


@pytest.mark.parametrize("distance", ["auto", "euclidean", "cosine", "hellinger"])
def test_similarity_matrix_matches_pairwise_levels(data, distance):
    _, v, f, pairs = data["train"]
    m = MetapropertyMatcher(distance=distance).fit_pairs(v, f, pairs)
    _, vt, ft, pt = data["test"]
    S = m.similarity_matrix(vt, ft)
    assert S.shape == (len(vt["gender"]), len(ft["gender"]))
    vi, fi, _ = as_pairs(pt)
    assert np.allclose(S[vi, fi], m.level_of_match(vt, ft, vi, fi))
    sub = m.similarity_matrix(vt, ft, voice_rows=[0, 3], face_rows=[1, 2, 5])
    assert np.allclose(sub, S[np.ix_([0, 3], [1, 2, 5])])


def test_threshold_rules(data):
    _, v, f, pairs = data["train"]
    _, vv, fv, pv = data["validation"]
    eer = MetapropertyMatcher().fit_pairs(v, f, pairs).calibrate(vv, fv, pv)
    cal = eer.calibration_
    assert cal["source"] == "held-out pairs" and cal["n_pairs"] == len(pv)
    assert abs(cal["false_match_rate"] - cal["false_non_match_rate"]) < 0.03
    strict = MetapropertyMatcher(threshold_rule="fmr", target_fmr=0.02).fit_pairs(v, f, pairs).calibrate(vv, fv, pv)
    assert strict.calibration_["false_match_rate"] <= 0.02
    assert strict.threshold_ > eer.threshold_
    X = eer.pair_distances(vv, fv, pv["voice_index"], pv["face_index"])
    assert np.array_equal(eer.predict(X), (eer.decision_function(X) >= eer.threshold_).astype(int))
    assert np.array_equal(eer.decide(vv, fv, pv["voice_index"], pv["face_index"]), eer.predict(X) == 1)


def test_explanation_accounts_for_the_decision(fitted, data):
    _, v, f, _ = data["test"]
    e = fitted.explain(v, f, 0, 4)
    t = e.to_frame()
    assert list(t["metaproperty"]) == fitted.metaproperties_
    assert t["contribution"].sum() == pytest.approx(e.level)
    assert np.allclose(t["contribution"], t["weight"] * t["standardized"])
    assert e.level == pytest.approx(fitted.level_of_match(v, f, [0], [4])[0])
    assert e.decision == (e.level >= fitted.threshold_)
    assert set(e.voice) == set(fitted.metaproperties_)
    assert sum(e.voice["age"].values()) == pytest.approx(1.0)
    assert np.allclose(list(e.face["gender"].values()), f["gender"][4])
    text = str(e)
    assert "level of match" in text and "gender" in text and "contribution" in text


def test_rankings_and_comparison(fitted, data):
    part, v, f, _ = data["test"]
    ranked = fitted.rank_faces(v, f, voice_index=2)
    assert len(ranked) == len(part.faces)
    assert np.all(np.diff(ranked["level"]) <= 0) and ranked["rank"].iloc[0] == 1
    assert np.allclose(ranked["level"], fitted.similarity_matrix(v, f)[2, ranked["face_index"]])
    top = fitted.rank_voices(v, f, face_index=1, top_k=5)
    assert len(top) == 5 and np.all(np.diff(top["level"]) <= 0)
    assert set(top.columns) >= {"rank", "voice_index", "level", "match", "probability"}
    c = fitted.compare(v, f, 2, 0, 7)
    assert c["p_a_rather_than_b"] == pytest.approx(1 / (1 + np.exp(-(c["level_a"] - c["level_b"]))))
    assert c["odds_ratio"] == pytest.approx(c["p_a_rather_than_b"] / (1 - c["p_a_rather_than_b"]))


def test_oracle_bounds_noisy_and_gender_only_is_the_floor(data):
    part, v, f, pairs = data["train"]
    tpart, vt, ft, pt = data["test"]
    ov, of = oracle_metaproperties(part)
    assert set(ov) == {"gender", "age", "skin_tone", "ethnicity", "weight", "bmi", "mother_tongue", "accent"}
    assert np.allclose(ov["gender"].sum(axis=1), 1) and set(np.unique(ov["gender"])) == {0.0, 1.0}
    assert np.array_equal(ov["gender"].argmax(1), part.labels("gender", "voice"))
    same = tpart.voice_speakers[:, None] == tpart.face_speakers[None, :]

    def auc(m, vtab, ftab):
        return roc_auc_score(same.ravel(), m.similarity_matrix(vtab, ftab).ravel())

    oracle = MetapropertyMatcher().fit_pairs(ov, of, pairs)
    tov, tof = oracle_metaproperties(tpart)
    noisy = MetapropertyMatcher().fit_pairs(v, f, pairs)
    gender = MetapropertyMatcher(metaproperties=["gender"]).fit_pairs(v, f, pairs)
    a_oracle, a_noisy, a_gender = auc(oracle, tov, tof), auc(noisy, vt, ft), auc(gender, vt, ft)
    assert a_oracle > a_noisy > a_gender > 0.5


def test_unknown_ground_truth_becomes_uniform():
    pop = metadata_population(10, 2)
    pop.identities.loc[0, "age"] = np.nan
    v, _ = oracle_metaproperties(pop, ["age"])
    assert np.allclose(v["age"][:2], 1 / 9)


def test_threshold_is_at_the_evaluation_eer_with_a_margin(data):
    """One EER for vfmatch: the calibration's EER is vfmatch.evaluation.metrics.equal_error_rate
    on the same pairs, and the threshold makes that vertex's decisions, midway between two levels."""
    _, v, f, pairs = data["train"]
    _, vv, fv, pv = data["validation"]
    for classifier in ("logistic", "random_forest"):
        m = MetapropertyMatcher(classifier=classifier, n_estimators=30).fit_pairs(v, f, pairs).calibrate(vv, fv, pv)
        level = m.level_of_match(vv, fv, pv["voice_index"], pv["face_index"])
        y = pv["label"].to_numpy()
        eer, vertex = equal_error_rate(y, level, return_threshold=True)
        assert m.calibration_["eer"] == eer
        assert np.array_equal(level >= m.threshold_, level >= vertex)  # the same operating point
        below = level[level < vertex].max()
        assert m.threshold_ == pytest.approx((vertex + below) / 2)  # not on a score: a margin for new pairs
        assert m.calibration_["false_non_match_rate"] == pytest.approx(np.mean(level[y == 1] < vertex))


def test_oracle_threshold_keeps_its_matches_on_new_pairs(data):
    """Every true pair of ground-truth tables has the same level; computed again through the
    pairwise distances of the similarity matrix they must still be matches (FNMR 0, not 1)."""
    part, _, _, pairs = data["train"]
    vpart, _, _, pv = data["validation"]
    tpart = data["test"][0]
    m = MetapropertyMatcher().fit_pairs(*oracle_metaproperties(part), pairs).calibrate(*oracle_metaproperties(vpart), pv)
    S = m.similarity_matrix(*oracle_metaproperties(tpart))
    same = tpart.voice_speakers[:, None] == tpart.face_speakers[None, :]
    assert np.mean(S[same] < m.threshold_) == 0.0


@pytest.mark.parametrize("classifier", ["gradient_boosting", "random_forest"])
def test_tree_matcher_scores_with_its_own_ensemble(data, classifier):
    """Decisions, AUC and rankings of a tree matcher come from the fitted ensemble's
    predict_proba (level = its logit, measured from an average pair), not from a linear surrogate."""
    _, v, f, pairs = data["train"]
    _, vt, ft, pt = data["test"]
    m = MetapropertyMatcher(classifier=classifier, n_estimators=30).fit_pairs(v, f, pairs)
    X = m.pair_distances(vt, ft, pt["voice_index"], pt["face_index"])
    p = np.clip(m.classifier_.predict_proba(X)[:, 1], 1e-6, 1 - 1e-6)
    level = m.decision_function(X)
    assert np.allclose(1 / (1 + np.exp(-(level + m.baseline_logit_))), p)
    assert np.allclose(m.predict_proba(X), m.classifier_.predict_proba(X))
    assert np.allclose(level, np.log(p / (1 - p)) - m.baseline_logit_)
    assert m.decision_function(m.mean_[None])[0] == pytest.approx(0.0)  # 0 = an average training pair
    surrogate = m.standardize(X) @ m.weights_
    assert not np.allclose(level, surrogate)
    S = m.similarity_matrix(vt, ft)
    assert np.allclose(S[pt["voice_index"], pt["face_index"]], level)
    ranked = m.rank_faces(vt, ft, voice_index=1)
    assert np.all(np.diff(ranked["probability"].to_numpy()) <= 1e-12)  # sorted by the ensemble's probability
    assert np.array_equal(m.predict(X), (level >= m.threshold_).astype(int))


def test_tree_explanations_are_shapley_values_that_add_up(data):
    _, v, f, pairs = data["train"]
    _, vt, ft, _ = data["test"]
    m = MetapropertyMatcher(classifier="gradient_boosting", n_estimators=30).fit_pairs(v, f, pairs)
    e = m.explain(vt, ft, 0, 4)
    assert e.method == "shapley" and "Shapley" in e.to_text()
    assert e.table["contribution"].sum() == pytest.approx(e.level)
    X = m.pair_distances(vt, ft, np.arange(6), np.arange(6))
    assert np.allclose(m.contributions(X).sum(axis=1), m.decision_function(X))


def test_shapley_values_of_a_linear_function_are_its_terms(rng):
    w, b, base = np.array([0.5, -2.0, 1.5]), 0.3, np.array([0.1, 0.2, 0.3])
    X = rng.random((5, 3))
    phi = shapley_contributions(lambda Z: Z @ w + b, X, base)
    assert np.allclose(phi, (X - base) * w)
    # A pure interaction x0 * x1 (baseline 0) is shared equally by the two features.
    phi = shapley_contributions(lambda Z: Z[:, 0] * Z[:, 1], np.array([[2.0, 3.0, 5.0]]), np.zeros(3))
    assert np.allclose(phi, [[3.0, 3.0, 0.0]])


def test_classifier_registry(data):
    _, v, f, pairs = data["train"]
    assert list_classifiers()[:3] == ["logistic", "gradient_boosting", "random_forest"]
    with pytest.raises(ValueError, match="classifier must be one of"):
        create_classifier("svm")

    @register_classifier("naive_bayes")
    def naive_bayes(**_):
        return GaussianNB()

    try:
        with pytest.raises(ValueError, match="already registered"):
            register_classifier("naive_bayes")(naive_bayes)
        m = MetapropertyMatcher(classifier="naive_bayes").fit_pairs(v, f, pairs)
        assert isinstance(m.classifier_, GaussianNB) and m.weight_method_ == "permutation_importance_auc"
        X = m.pair_distances(v, f, pairs["voice_index"][:20], pairs["face_index"][:20])
        assert np.allclose(m.predict_proba(X), m.classifier_.predict_proba(X))
    finally:
        unregister_classifier("naive_bayes")
    assert "naive_bayes" not in list_classifiers()


@pytest.mark.parametrize("classifier", ["gradient_boosting", "random_forest"])
def test_tree_weights_are_signed_permutation_importances(data, classifier):
    _, v, f, pairs = data["train"]
    _, vv, fv, pv = data["validation"]
    m = MetapropertyMatcher(classifier=classifier, n_estimators=40).fit_pairs(v, f, pairs)
    before = m.weights_.copy()
    m.calibrate(vv, fv, pv)
    assert m.weight_method_ == "permutation_importance_auc"
    assert np.all(m.importances_ >= 0)
    assert np.allclose(np.abs(m.weights_), m.importances_)
    assert not np.allclose(before, m.weights_)  # recomputed on held-out pairs
    assert m.weights["gender"] < 0
    _, vt, ft, pt = data["test"]
    assert roc_auc_score(pt["label"], m.level_of_match(vt, ft, pt["voice_index"], pt["face_index"])) > 0.8


def test_save_and_load_without_pickles(fitted, data, tmp_path):
    _, v, f, pairs = data["test"]
    path = fitted.save(tmp_path / "m")
    assert path.name == "matcher.json"
    back = MetapropertyMatcher.load(tmp_path / "m")
    assert back.get_params() == fitted.get_params()
    assert np.allclose(back.similarity_matrix(v, f), fitted.similarity_matrix(v, f))
    X = fitted.pair_distances(v, f, pairs["voice_index"], pairs["face_index"])
    assert np.allclose(back.predict_proba(X), fitted.predict_proba(X))
    assert back.threshold_ == fitted.threshold_

    _, vtr, ftr, ptr = data["train"]
    tree = MetapropertyMatcher(classifier="random_forest", n_estimators=10).fit_pairs(vtr, ftr, ptr)
    tree.save(tmp_path / "t")
    tback = MetapropertyMatcher.load(tmp_path / "t")
    assert tback.weights == tree.weights and tback.threshold_ == tree.threshold_  # kept for reading
    for score in (tback.predict_proba, tback.decision_function):  # the trees themselves are not saved
        with pytest.raises(RuntimeError, match="not saved"):
            score(X)
    with pytest.raises(RuntimeError, match="not saved"):
        tback.similarity_matrix(v, f)
    with pytest.raises(FileNotFoundError, match="matcher.json"):
        MetapropertyMatcher.load(tmp_path / "nothing")


def test_clear_errors(data):
    _, v, f, pairs = data["train"]
    with pytest.raises(RuntimeError, match="not fitted"):
        MetapropertyMatcher().similarity_matrix(v, f)
    with pytest.raises(ValueError, match="classifier must be one of"):
        MetapropertyMatcher(classifier="svm").fit_pairs(v, f, pairs)
    with pytest.raises(KeyError, match="face metaproperty table has no 'age'"):
        MetapropertyMatcher().fit_pairs(v, {k: x for k, x in f.items() if k != "age"}, pairs)
    one_class = pairs[pairs["label"] == 1]
    with pytest.raises(ValueError, match="both matching"):
        MetapropertyMatcher().fit_pairs(v, f, one_class)
    with pytest.raises(ValueError, match=r"expected \(n, 2\)"):
        MetapropertyMatcher(metaproperties=["gender"]).fit_pairs({"gender": v["age"]}, f, pairs)
    with pytest.raises(ValueError, match="give the metaproperty names"):
        MetapropertyMatcher().fit(np.zeros((4, 2)), [0, 1, 0, 1])


def test_helpers(data):
    _, v, _, _ = data["train"]
    sub = select_rows(v, [3, 1])
    assert np.array_equal(sub["age"], v["age"][[3, 1]])
    sharp = noisy_metaproperties({"gender": np.eye(2)[[0, 1, 1]]}, 0.0)["gender"]
    assert np.array_equal(sharp.argmax(1), [0, 1, 1]) and np.allclose(sharp.sum(1), 1)
    with pytest.raises(TypeError):
        as_pairs("nope")
