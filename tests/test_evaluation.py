"""vfmatch.evaluation (metrics, scorers, identification, percentile, bootstrap, summary):
agreement with scikit-learn, paper 001's definitions, tie rules."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.optimize import brentq
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from vfmatch import evaluation as ev

# ---------------------------------------------------------------- score sets


def _score_sets():
    """Random and adversarial (labels, scores, weights) triples."""
    rng = np.random.default_rng(0)
    sets = []
    for i in range(60):
        n = int(rng.integers(2, 80))
        y = rng.integers(0, 2, n)
        y[0], y[1] = 0, 1
        kind = i % 4
        if kind == 0:
            s = rng.normal(size=n)
        elif kind == 1:
            s = rng.integers(0, 3, n).astype(float)  # heavy ties, like discrete metaproperties
        elif kind == 2:
            s = np.where(y == 1, 1.0, 0.0) + rng.integers(0, 2, n) * (rng.random() < 0.5)  # ties across classes
        else:
            s = -y + 0.1 * rng.normal(size=n)  # worse than chance
        w = rng.random(n) + 0.1 if i % 3 == 0 else None
        sets.append((y, s, w))
    sets.append((np.array([0, 1, 0, 1, 1]), np.full(5, 0.3), None))  # all equal
    sets.append((np.array([1, 0]), np.array([2.0, 1.0]), None))  # perfect, minimal
    sets.append((np.array([0, 0, 0, 1]), np.array([5.0, 5.0, 1.0, 5.0]), None))  # positive tied with negatives at the top
    return sets


SETS = _score_sets()


def _reference_eer(y, s, w):
    """EER from scikit-learn's ROC, by a root search along the curve (independent of ours)."""
    fpr, tpr, _ = sk_roc_curve(y, s, sample_weight=w)
    idx = np.arange(fpr.size, dtype=float)

    def h(t):
        x = np.interp(t, idx, fpr)
        return x + np.interp(t, idx, tpr) - 1.0

    t = brentq(h, 0.0, fpr.size - 1.0, xtol=1e-13)
    return float(np.interp(t, idx, fpr))


@pytest.mark.parametrize("k", range(len(SETS)))
def test_binary_metrics_match_sklearn(k):
    y, s, w = SETS[k]
    assert ev.roc_auc(y, s, sample_weight=w) == pytest.approx(roc_auc_score(y, s, sample_weight=w), abs=1e-6)
    assert ev.average_precision(y, s, sample_weight=w) == pytest.approx(average_precision_score(y, s, sample_weight=w), abs=1e-6)
    f1, t1, th1 = ev.roc_curve(y, s, sample_weight=w)
    f2, t2, th2 = sk_roc_curve(y, s, sample_weight=w, drop_intermediate=False)
    np.testing.assert_allclose(f1, f2, atol=1e-6)
    np.testing.assert_allclose(t1, t2, atol=1e-6)
    np.testing.assert_allclose(th1, th2)
    assert ev.equal_error_rate(y, s, sample_weight=w) == pytest.approx(_reference_eer(y, s, w), abs=1e-6)


def test_tie_rules_of_binary_metrics():
    y = np.array([1, 0, 1, 0])
    s = np.array([1.0, 1.0, 1.0, 1.0])
    assert ev.roc_auc(y, s) == 0.5  # a positive tied with a negative counts 1/2
    assert ev.equal_error_rate(y, s) == 0.5
    assert ev.average_precision(y, s) == 0.5  # the tie group enters the ranking at once
    acc = ev.binary_accuracy_at_eer(y, s)
    assert acc["threshold"] == 1.0 and acc["accuracy"] == 0.5  # score == threshold is a "match"
    # A perfect scorer: EER 0, accuracy 1 at the EER threshold.
    acc = ev.binary_accuracy_at_eer([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert acc["eer"] == 0.0 and acc["accuracy"] == 1.0 and 0.2 < acc["threshold"] <= 0.8


def test_binary_accuracy_at_eer_balanced_close_to_one_minus_eer():
    rng = np.random.default_rng(1)
    y = np.r_[np.ones(2000), np.zeros(2000)].astype(int)
    s = y + rng.normal(size=y.size)
    acc = ev.binary_accuracy_at_eer(y, s)
    assert acc["accuracy"] == pytest.approx(1 - acc["eer"], abs=0.01)


@pytest.mark.parametrize(
    "labels, scores, message",
    [
        ([1, 1, 1], [0.1, 0.2, 0.3], "only one class"),
        ([0, 0], [0.1, 0.2], "only one class"),
        ([], [], "empty"),
        ([0, 1], [0.1, np.nan], "NaN"),
        ([0, 2], [0.1, 0.2], "0/1"),
        ([0, 1, 1], [0.1, 0.2], "differ in length"),
        ([[0, 1]], [[0.1, 0.2]], "1-D"),
    ],
)
def test_degenerate_input_is_a_clear_error(labels, scores, message):
    for fn in (ev.roc_auc, ev.equal_error_rate, ev.roc_curve):
        with pytest.raises(ValueError, match=message):
            fn(labels, scores)


def test_average_precision_one_class():
    assert ev.average_precision([1, 1, 1], [0.3, 0.1, 0.2]) == average_precision_score([1, 1, 1], [0.3, 0.1, 0.2]) == 1.0
    with pytest.raises(ValueError, match="one class"):
        ev.average_precision([0, 0, 0], [0.3, 0.1, 0.2])


# ---------------------------------------------------------------- retrieval mAP


def test_mean_average_precision_matches_sklearn_per_row():
    rng = np.random.default_rng(2)
    S = rng.integers(0, 4, (25, 40)).astype(float)
    S[::5] = 0.0  # all-equal rows
    R = rng.random((25, 40)) < 0.15
    R[:, 3] = True
    per_row = ev.mean_average_precision(S, R, reduction="none")
    ref = np.array([average_precision_score(R[i], S[i]) for i in range(25)])
    np.testing.assert_allclose(per_row, ref, atol=1e-9)
    assert ev.mean_average_precision(S, R) == pytest.approx(ref.mean(), abs=1e-9)
    R[4] = False
    with pytest.raises(ValueError, match="no relevant item"):
        ev.mean_average_precision(S, R)


def test_chance_average_precision_is_exact():
    """Average over every permutation of a small gallery."""
    n, R = 6, 2
    rel = np.array([1] * R + [0] * (n - R))
    aps = [average_precision_score(rel, -np.asarray(p, float)) for p in itertools.permutations(range(n))]
    assert ev.chance_average_precision(R, n) == pytest.approx(np.mean(aps), abs=1e-12)


def test_retrieval_map_function_equals_matrix():
    rng = np.random.default_rng(3)
    vs, fs = np.repeat(np.arange(8), 3), np.repeat(np.arange(8), 2)
    sim = rng.normal(size=(24, 16))
    rel = vs[:, None] == fs[None, :]
    want = ev.mean_average_precision(sim, rel)
    assert ev.retrieval_map(sim, vs, fs, chunk_size=5) == pytest.approx(want)
    assert ev.retrieval_map(lambda i, j: sim[i, j], vs, fs) == pytest.approx(want)
    assert ev.retrieval_map(sim.T, fs, vs) == pytest.approx(ev.mean_average_precision(sim.T, rel.T))


# ---------------------------------------------------------------- percentile recall


def _transcription(sim, vs, fs, ties="strict"):
    """Paper 001 sec. 2.3.2 steps vi-vii, one voice, one positive, one negative at a time."""
    w = {"strict": 0.0, "half": 0.5, "pessimistic": 1.0}[ties]
    ranks = []
    for i in range(len(vs)):
        positives = [j for j in range(len(fs)) if fs[j] == vs[i]]
        negatives = [j for j in range(len(fs)) if fs[j] != vs[i]]
        size = len(positives) + len(negatives)
        per_positive = []
        for jp in positives:
            count = 0.0
            for jn in negatives:
                if sim[i, jp] < sim[i, jn]:
                    count += 1
                elif sim[i, jp] == sim[i, jn]:
                    count += w
            per_positive.append(count / size)
        ranks.append(sum(per_positive) / len(per_positive))
    return np.array(ranks)


@pytest.fixture(scope="module")
def uneven():
    rng = np.random.default_rng(4)
    vs = np.repeat(np.arange(20), 2)
    fs = np.repeat(np.arange(20), np.r_[[1] * 5, [3] * 10, [30] * 5])  # 30 faces: the sort path
    sim = rng.integers(0, 5, (vs.size, fs.size)).astype(float)
    return sim, vs, fs


@pytest.mark.parametrize("ties", ["strict", "half", "pessimistic"])
def test_percentile_recall_matches_the_definition(uneven, ties):
    sim, vs, fs = uneven
    res = ev.percentile_recall(sim, vs, fs, ties=ties, chunk_size=7)
    np.testing.assert_allclose(res.ranks[0], _transcription(sim, vs, fs, ties), atol=1e-12)
    # Few positives per voice (the comparison path), continuous scores.
    sim2 = np.random.default_rng(5).normal(size=(12, 12))
    v2, f2 = np.repeat(np.arange(6), 2), np.repeat(np.arange(6), 2)
    np.testing.assert_allclose(ev.percentile_recall(sim2, v2, f2, ties=ties).ranks[0], _transcription(sim2, v2, f2, ties))


def test_percentile_recall_monte_carlo_galleries(uneven):
    """Each query's gallery obeys the paper's steps, and its rank is the definition on that gallery."""
    sim, vs, fs = uneven
    a, p, n_tilde = 1, 2, 10
    res = ev.percentile_recall(sim, vs, fs, M=3, a=a, p=p, n_tilde=n_tilde, seed=7, return_galleries=True)
    assert res.ranks.shape == (3, 20)  # a_j = min(1, 2) voice per speaker, 20 speakers
    for m in range(3):
        assert sorted(vs[res.query_index[m]]) == list(range(20))
        for k, (v, pos, neg) in enumerate(res.galleries[m]):
            own = vs[v]
            assert np.all(fs[pos] == own) and len(pos) == min(p, np.sum(fs == own))
            assert own not in fs[neg] and len(set(neg)) == len(neg)
            per_speaker = np.bincount(fs[neg])
            assert per_speaker.max() <= n_tilde
            assert len(neg) >= n_tilde
            # stop rule: before its last speaker (who added at most the largest share) the list was short of n~
            assert len(neg) - per_speaker.max() < n_tilde
            size = len(pos) + len(neg)
            # The default tie rule: a tied negative counts 1/2.
            want = np.mean([(np.sum(sim[v, neg] > sim[v, j]) + 0.5 * np.sum(sim[v, neg] == sim[v, j])) / size for j in pos])
            assert res.ranks[m, k] == pytest.approx(want)
            assert res.gallery_size[m, k] == size


def test_monte_carlo_subsamples_big_speakers_uniformly():
    vs = np.array([0] * 1)
    fs = np.r_[0, np.ones(10, dtype=int)]  # speaker 1 has 10 faces, n~ = 3 takes 3 of them
    sim = np.zeros((1, 11))
    counts = np.zeros(11)
    for seed in range(300):
        res = ev.percentile_recall(sim, vs, fs, n_tilde=3, seed=seed, return_galleries=True)
        neg = res.galleries[0][0][2]
        assert len(neg) == 3
        counts[neg] += 1
    assert counts[0] == 0
    assert np.all(np.abs(counts[1:] / 300 - 0.3) < 0.12)


def test_percentile_recall_full_gallery_is_the_monte_carlo_limit(uneven):
    sim, vs, fs = uneven
    full = ev.percentile_recall(sim, vs, fs)
    mc = ev.percentile_recall(sim, vs, fs, n_tilde=10_000, seed=3)
    np.testing.assert_allclose(full.ranks, mc.ranks)
    assert ev.percentile_recall(sim, vs, fs, M=4).ranks.shape == (4, vs.size)


def test_percentile_recall_cdf_and_table():
    rng = np.random.default_rng(6)
    vs, fs = np.repeat(np.arange(30), 2), np.repeat(np.arange(30), 2)
    res = ev.percentile_recall(rng.normal(size=(60, 60)), vs, fs)
    alphas = np.linspace(0, 1, 11)
    cdf = res.cdf(alphas)
    assert np.all(np.diff(cdf) >= 0) and cdf[-1] == 1.0
    assert res.cdf(0.1)[0] == pytest.approx(np.mean(res.ranks <= 0.1))
    table = res.table()
    assert list(table.index) == [100, 1000, 10000] and list(table.columns) == [5, 10, 50, 100, 250, 500, 1000, 5000]
    assert table.loc[1000, 50] == pytest.approx(res.cdf(0.05)[0])
    assert np.isnan(table.loc[100, 250])
    assert 0.35 < res.mean_rank < 0.65 and res.chance_mean_rank == pytest.approx(58 / 120)


def test_percentile_recall_strict_ties_are_optimistic():
    vs, fs = np.array([0, 1]), np.array([0, 1])
    sim = np.ones((2, 2))  # a constant scorer
    assert ev.percentile_recall(sim, vs, fs, ties="strict").mean_rank == 0.0  # the paper's rule: ties never count
    assert ev.percentile_recall(sim, vs, fs).mean_rank == 0.25  # the default counts a tie 1/2
    assert ev.percentile_recall(sim, vs, fs, ties="pessimistic").mean_rank == 0.5


def test_a_constant_scorer_gets_exactly_chance_by_default():
    """The honest tie rule is the default everywhere: a scorer that ties everything wins nothing."""
    vs, fs = np.repeat(np.arange(6), 2), np.repeat(np.arange(6), np.r_[1, 2, 3, 1, 2, 3])
    const = np.full((vs.size, fs.size), 0.7)
    full = ev.percentile_recall(const, vs, fs)
    assert full.params["ties"] == "half"
    np.testing.assert_array_equal(full.ranks, (full.gallery_size - full.n_positives) / (2.0 * full.gallery_size))
    assert full.mean_rank == pytest.approx(full.chance_mean_rank, abs=1e-15)
    mc = ev.percentile_recall(const, vs, fs, M=3, a=1, p=1, n_tilde=4, seed=1)
    assert mc.mean_rank == pytest.approx(mc.chance_mean_rank, abs=1e-15)
    out = ev.evaluate_similarity(const, vs.astype(str), fs.astype(str), n_triplets=200, n_pairs=200, n_lists=50, n_boot=0)
    assert out["settings"]["rank_ties"] == "half"
    assert out["percentile_recall"]["mean_rank"] == pytest.approx(out["chance"]["percentile_recall"]["mean_rank"], abs=1e-15)
    assert out["identification_1to2_vf"] == 0.5 and out["auc"] == 0.5
    ids = pd.DataFrame({"speaker_id": np.arange(6).astype(str), "gender": np.where(np.arange(6) % 2, "male", "female")})
    rep = ev.subgroup_report(const, vs.astype(str), fs.astype(str), ids, by=("gender",), n_triplets=100, n_boot=0)
    np.testing.assert_allclose(rep["mean_rank"], rep["mean_rank_chance"], atol=1e-15)


def test_scorer_kinds_agree():
    rng = np.random.default_rng(8)
    v, f = rng.normal(size=(30, 4)), rng.normal(size=(20, 4))
    vs, fs = np.arange(30) % 10, np.arange(20) % 10
    emb = ev.EmbeddingScorer(v, f)
    cos = (v / np.linalg.norm(v, axis=1, keepdims=True)) @ (f / np.linalg.norm(f, axis=1, keepdims=True)).T
    np.testing.assert_allclose(emb.block(np.arange(30)).numpy(), cos, atol=1e-5)
    a = ev.percentile_recall(cos.astype(np.float32), vs, fs).ranks
    b = ev.percentile_recall(emb, vs, fs).ranks
    c = ev.percentile_recall(lambda i, j: cos.astype(np.float32)[i, j], vs, fs).ranks
    np.testing.assert_allclose(a, b, atol=1e-3)
    np.testing.assert_allclose(a, c)
    np.testing.assert_allclose(emb.T.block(np.arange(20)).numpy(), cos.T, atol=1e-5)


def test_percentile_recall_bad_input():
    with pytest.raises(ValueError, match="without any face"):
        ev.percentile_recall(np.zeros((2, 2)), ["a", "c"], ["a", "b"])
    with pytest.raises(ValueError, match="rows"):
        ev.percentile_recall(np.zeros((3, 2)), ["a", "b"], ["a", "b"])
    with pytest.raises(ValueError, match="NaN"):
        ev.percentile_recall(np.array([[0.0, np.nan], [0, 0]]), ["a", "b"], ["a", "b"])
    with pytest.raises(ValueError, match="ties"):
        ev.percentile_recall(np.zeros((2, 2)), ["a", "b"], ["a", "b"], ties="random")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_percentile_recall_on_gpu_equals_cpu(uneven):
    sim, vs, fs = uneven
    np.testing.assert_allclose(ev.percentile_recall(sim, vs, fs, device="cuda").ranks,
                               ev.percentile_recall(sim, vs, fs, device="cpu").ranks)


# ---------------------------------------------------------------- identification


def test_identification_tie_rules():
    vs = fs = np.repeat(np.arange(10), 2)
    flat = np.zeros((20, 20))
    half = ev.identification_accuracy(flat, vs, fs, n_lists=400, ties="half")
    assert half.accuracy == 0.5 and half.chance == 0.5
    assert ev.identification_accuracy(flat, vs, fs, n_lists=400, ties="wrong").accuracy == 0.0
    order = ev.identification_accuracy(flat, vs, fs, n_lists=400, ties="order")
    shown_first = np.mean(order.lists.order[:, 0] == 0)  # sigma = identity
    assert order.accuracy == pytest.approx(shown_first)
    assert 0.4 < shown_first < 0.6
    four = ev.identification_accuracy(flat, vs, fs, n_way=4, n_lists=100)
    assert four.accuracy == 0.25 and four.chance == 0.25
    with pytest.raises(ValueError, match="ties"):
        ev.identification_accuracy(flat, vs, fs, ties="coin")


def test_identification_perfect_and_random_scorers():
    vs, fs = np.repeat(np.arange(15), 3), np.repeat(np.arange(15), 2)
    perfect = (vs[:, None] == fs[None, :]).astype(float)
    curve = ev.one_to_n_accuracy(perfect, vs, fs, n_lists=200)
    assert list(curve) == list(range(2, 11)) and all(v == 1.0 for v in curve.values())
    rng = np.random.default_rng(9)
    rand = ev.one_to_n_accuracy(rng.normal(size=perfect.shape), vs, fs, n_ways=[2, 5, 10], n_lists=3000)
    for n, acc in rand.items():
        assert acc == pytest.approx(1 / n, abs=0.04)
    assert ev.one_to_n_accuracy(perfect[:6, :4], vs[:6], fs[:4], n_lists=10) == {2: 1.0}  # N beyond the identities is skipped


def test_gender_restricted_lists():
    vs = fs = np.repeat(np.arange(12), 2)
    gender = np.where(np.arange(12) % 2, "male", "female")
    # A scorer that only knows gender: perfect on mixed-gender triplets, 1/2 on restricted ones.
    sim = (gender[vs][:, None] == gender[fs][None, :]).astype(float)
    u = ev.identification_accuracy(sim, vs, fs, n_lists=2000, probe_gender=gender[vs])
    g = ev.identification_accuracy(sim, vs, fs, n_lists=2000, probe_gender=gender[vs], same_gender=True)
    assert g.accuracy == 0.5
    assert u.accuracy == pytest.approx(0.5 * 6 / 11 + 0.5, abs=0.03)
    neg = g.lists.candidates[:, 1]
    assert np.all(gender[fs[neg]] == gender[vs[g.lists.probe]])
    with pytest.raises(ValueError, match="disagree"):
        ev.identification_accuracy(sim, vs, fs, probe_gender=gender[vs], candidate_gender=gender[::-1][fs], same_gender=True)


# ---------------------------------------------------------------- bootstrap


def test_bootstrap_ci_resamples_identities():
    values = np.r_[np.ones(50), np.zeros(50)]
    groups = np.r_[np.zeros(50), np.ones(50)]  # two identities: one always right, one always wrong
    lo, hi = ev.bootstrap_ci(values, groups, n_boot=500)
    assert lo == 0.0 and hi == 1.0  # resampling 2 identities gives 0, 1/2 or 1
    lo, hi = ev.bootstrap_ci(values, np.arange(100), n_boot=500)  # 100 independent items: narrow
    assert 0.38 < lo < 0.5 < hi < 0.62


def test_weighted_auc_matches_sklearn_sample_weight():
    rng = np.random.default_rng(10)
    y = rng.integers(0, 2, 200).astype(bool)
    s = rng.integers(0, 5, 200).astype(float)
    w = rng.integers(0, 3, (4, 200)).astype(float)
    auc = ev.weighted_roc_auc(y, s, w)
    assert auc.shape == (4,)
    for b in range(4):
        assert auc[b] == pytest.approx(roc_auc_score(y, s, sample_weight=w[b]), abs=1e-9)
    only_negatives = np.where(y, 0.0, 1.0)[None, :]  # a weighting that leaves no positive: undefined
    assert np.isnan(ev.weighted_roc_auc(y, s, only_negatives)[0])
    with pytest.raises(ValueError, match="weights must have shape"):
        ev.weighted_roc_auc(y, s, w[:, :-1])
    lo, hi = ev.bootstrap_auc_ci(y, s, rng.integers(0, 20, 200), n_boot=200)
    assert lo <= ev.roc_auc(y, s) <= hi


# ---------------------------------------------------------------- evaluate_similarity, subgroups


def _toy(seed=11, n_spk=16):
    rng = np.random.default_rng(seed)
    vs, fs = np.repeat(np.arange(n_spk), 3).astype(str), np.repeat(np.arange(n_spk), 2).astype(str)
    gender = np.where(np.arange(n_spk) % 2, "male", "female")
    sim = (vs[:, None] == fs[None, :]) * 1.0 + rng.normal(scale=0.8, size=(vs.size, fs.size))
    return sim, vs, fs, gender


def test_evaluate_similarity_keys_chance_and_json():
    sim, vs, fs, gender = _toy()
    out = ev.evaluate_similarity(sim, vs, fs, voice_gender=gender[vs.astype(int)], n_triplets=300, n_pairs=300,
                                 n_lists=100, n_boot=50)
    keys = ["identification_1to2_vf", "identification_1to2_fv", "identification_1to2_vf_gender_restricted",
            "identification_1to2_fv_gender_restricted", "auc", "eer", "binary_accuracy_at_eer", "map_vf", "map_fv",
            "auc_fv", "auc_gender_restricted"]
    for k in keys:
        assert 0.0 <= out[k] <= 1.0 and k in out["chance"]
    assert out["chance"]["identification_1to2_vf"] == 0.5 and out["chance"]["one_to_n"][10] == 0.1
    assert set(out["one_to_n"]) == set(range(2, 11))
    assert out["identification_1to2_vf"] > 0.7 and out["auc"] > 0.7
    assert out["ci"]["identification_1to2_vf"][0] <= out["identification_1to2_vf"] <= out["ci"]["identification_1to2_vf"][1]
    assert set(out["percentile_recall"]) >= {"mean_rank", "recall_at_10pct"}
    back = json.loads(json.dumps(out))
    assert back["identification_1to2_vf"] == out["identification_1to2_vf"]


def test_evaluate_similarity_function_equals_matrix_and_perfect():
    sim, vs, fs, _ = _toy(n_spk=10)
    kw = dict(n_triplets=200, n_pairs=200, n_lists=50, n_boot=0)
    a = ev.evaluate_similarity(sim, vs, fs, **kw)
    b = ev.evaluate_similarity(lambda i, j: sim[i, j], vs, fs, **kw)
    assert a == b
    perfect = ev.evaluate_similarity((vs[:, None] == fs[None, :]).astype(float), vs, fs, **kw)
    assert perfect["identification_1to2_vf"] == perfect["auc"] == perfect["map_vf"] == 1.0
    assert perfect["eer"] == 0.0 and perfect["percentile_recall"]["mean_rank"] == 0.0
    with pytest.raises(ValueError, match="columns"):
        ev.evaluate_similarity(sim[:, :-1], vs, fs)


def test_subgroup_report():
    sim, vs, fs, gender = _toy(n_spk=16)
    ids = pd.DataFrame({"speaker_id": np.arange(16).astype(str), "gender": gender,
                        "ethnicity": np.where(np.arange(16) < 8, "Asian", "White"), "skin_tone": 3})
    rep = ev.subgroup_report(sim, vs, fs, ids, n_triplets=200, n_boot=50)
    assert len(rep) == 4 and rep["n_identities"].sum() == 16 and rep["n_voices"].sum() == vs.size
    assert (rep["identification_1to2_low"] <= rep["identification_1to2"]).all()
    assert (rep["identification_1to2_chance"] == 0.5).all()
    homo = ev.subgroup_report(sim, vs, fs, ids, by=["gender"], homogeneous=True, n_triplets=200, n_boot=0)
    assert len(homo) == 2 and homo["mean_rank"].notna().all()
    small = ev.subgroup_report(sim, vs, fs, ids, min_identities=5, n_boot=0)
    assert small["identification_1to2"].isna().all()  # every group has 4 people


# ---------------------------------------------------------------- widget logic (book/08)


def test_recall_at_k_direct_and_approximation():
    from vfmatch.widgets.evaluation import recall_at_k

    vs = fs = np.repeat(np.arange(12), 2)
    perfect = (vs[:, None] == fs[None, :]).astype(float)
    r = recall_at_k(perfect, vs, fs, 10, 1, n_lists=200)
    assert r["direct"] == 1.0 and r["approximation"] == 1.0 and r["chance"] == 0.1
    flat = np.zeros((24, 24))  # every face tied: the true face lands anywhere
    r = recall_at_k(flat, vs, fs, 8, 3, n_lists=200)
    assert r["direct"] == pytest.approx(3 / 8)
    rng = np.random.default_rng(12)
    res = ev.percentile_recall(rng.normal(size=(24, 24)), vs, fs)
    r = recall_at_k(rng.normal(size=(24, 24)), vs, fs, 100, 10, ranks=res)
    assert r["direct"] is None and r["approximation"] == res.recall_at(10, 100)  # 100 > 12 people
    with pytest.raises(ValueError, match="gallery_size"):
        recall_at_k(flat, vs, fs, 5, 6)


def test_figures_and_tables():
    from vfmatch.widgets.evaluation import build_recall_widget, cdf_figure, metrics_table, one_to_n_figure, roc_figure

    sim, vs, fs, gender = _toy(n_spk=10)
    out = ev.evaluate_similarity(sim, vs, fs, voice_gender=gender[vs.astype(int)], n_triplets=200, n_pairs=200,
                                 n_lists=50, n_boot=20)
    table = metrics_table({"toy": out})
    assert "1:2 V-F (G)" in table.index and table.loc["1:2 V-F (U)", "chance"] == "0.500"
    v = ev.verification_metrics(sim, vs, fs, n_pairs=200)
    assert len(roc_figure({"toy": (v["labels"], v["scores"])}).data) == 4
    assert len(cdf_figure({"toy": ev.percentile_recall(sim, vs, fs)}).data) == 2
    assert len(one_to_n_figure({"toy": out["one_to_n"]}).data) == 2
    widget = build_recall_widget(sim, vs, fs, max_gallery=50, n_lists=50)
    assert len(widget.children) == 2
