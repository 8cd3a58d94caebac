"""Calibrated match probabilities (vfmatch.matching.calibration): ECE by hand, on
calibrated and miscalibrated synthetic scores, and on a matcher that meets noisier
tables than it was trained on."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest

from vfmatch.data.pairs import make_pairs
from vfmatch.data.population import Population
from vfmatch.matching.calibration import (
    CALIBRATION_METHODS,
    CalibratedMatcher,
    ScoreCalibrator,
    calibration_summary,
    expected_calibration_error,
    reliability_figure,
    reliability_table,
)
from vfmatch.matching.matcher import MetapropertyMatcher
from vfmatch.matching.tables import noisy_metaproperties, oracle_metaproperties
from vfmatch.simulator.traits import draw_identities


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def synthetic(n, seed, stretch=1.0, shift=0.0):
    """True log-odds ``s`` with labels drawn from them, and a predictor ``sigmoid(stretch * s + shift)``."""
    rng = np.random.default_rng(seed)
    s = rng.normal(0.0, 1.5, n)
    y = (rng.random(n) < sigmoid(s)).astype(int)
    return s, y, sigmoid(stretch * s + shift)


def test_ece_by_hand():
    p = np.array([0.1, 0.2, 0.9, 0.95])
    y = np.array([0, 1, 1, 1])
    # two bins: [0, 0.5) holds 0.1, 0.2 (mean 0.15, 1 of 2 matches); [0.5, 1] holds 0.9, 0.95 (mean 0.925, 2 of 2)
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx((2 * 0.35 + 2 * 0.075) / 4)
    t = reliability_table(y, p, n_bins=2)
    assert t["n"].tolist() == [2, 2] and t["fraction_positive"].tolist() == [0.5, 1.0]
    # 1.0 belongs to the last bin, 0.5 to the upper one; empty bins are NaN and do not count
    t = reliability_table([0, 1, 1], [0.0, 0.5, 1.0], n_bins=4)
    assert t["n"].tolist() == [1, 0, 1, 1] and np.isnan(t.loc[1, "mean_probability"])


def test_ece_of_a_calibrated_predictor_is_zero():
    # exactly: in each bin the fraction of matches equals the predicted probability
    p = np.array([0.25] * 4 + [0.75] * 4)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    assert expected_calibration_error(y, p) == 0.0
    # up to sampling noise: labels drawn from the probabilities themselves
    s, y, p = synthetic(200_000, seed=0)
    assert expected_calibration_error(y, p) < 0.005


@pytest.mark.parametrize("method", CALIBRATION_METHODS)
@pytest.mark.parametrize("stretch, shift", [(3.0, 0.5), (0.3, -0.4)])
def test_calibration_lowers_the_ece_of_a_miscalibrated_predictor(method, stretch, shift):
    """Over-confident (stretch 3) and under-confident, biased (stretch 0.3) predictors:
    fitted on one half, the ECE on the other half drops to near zero."""
    s, y, p = synthetic(20_000, seed=1, stretch=stretch, shift=shift)
    logit = np.log(p / (1 - p))
    fit, held = slice(0, 10_000), slice(10_000, None)
    cal = ScoreCalibrator(method).fit(logit[fit], y[fit])
    after = cal.predict_proba(logit[held])[:, 1]
    before = expected_calibration_error(y[held], p[held])
    assert before > 0.08
    assert expected_calibration_error(y[held], after) < 0.02
    assert np.all(np.diff(after[np.argsort(logit[held])]) >= 0)  # the order of the pairs is kept


def test_platt_inverts_a_stretch_of_the_log_odds():
    s, y, _ = synthetic(50_000, seed=2)
    cal = ScoreCalibrator("platt").fit(3.0 * s + 1.0, y)
    assert cal.coef_ == pytest.approx(1 / 3, rel=0.05) and cal.intercept_ == pytest.approx(-1 / 3, abs=0.05)


def metadata_population(n, seed):
    ids = draw_identities(n, seed=seed)
    rows = [s for s in ids["speaker_id"] for _ in range(2)]
    return Population(ids, datasets.Dataset.from_dict({"speaker_id": rows}), datasets.Dataset.from_dict({"speaker_id": rows}))


def test_calibrated_matcher_fixes_a_matcher_that_meets_noisier_tables():
    """A matcher trained on sharp tables is over-confident on blurred ones; calibrated on
    held-out blurred pairs, its probabilities on other people's pairs are calibrated."""
    roles = {r: metadata_population(150, seed=k) for k, r in enumerate(("matcher", "threshold", "test"))}
    pairs = {r: make_pairs(p, 1200, seed=k) for k, (r, p) in enumerate(roles.items())}
    tables = {}
    for k, (role, pop) in enumerate(roles.items()):
        v, f = oracle_metaproperties(pop)
        noise = 0.5 if role == "matcher" else 2.0
        tables[role] = (noisy_metaproperties(v, noise, seed=2 * k), noisy_metaproperties(f, noise, seed=2 * k + 1))
    matcher = MetapropertyMatcher().fit_pairs(*tables["matcher"], pairs["matcher"])
    test = pairs["test"]
    X = matcher.pair_distances(*tables["test"], test["voice_index"], test["face_index"])
    before = matcher.predict_proba(X)[:, 1]
    ece_before = expected_calibration_error(test["label"], before)
    for method in CALIBRATION_METHODS:
        cal = CalibratedMatcher(matcher, method=method).fit_pairs(*tables["threshold"], pairs["threshold"])
        after = cal.pair_probability(*tables["test"], test["voice_index"], test["face_index"])
        np.testing.assert_allclose(after, cal.predict_proba(X)[:, 1])
        assert expected_calibration_error(test["label"], after) < ece_before / 2, method
        summary = calibration_summary(test["label"], before, after, method=method)
        assert summary["ece_before"] == pytest.approx(ece_before)
        json.dumps(summary)  # JSON-ready: empty bins are null
        assert len(summary["reliability_after"]) == 10
    assert ece_before > 0.1


def test_reliability_figure_has_titled_axes_and_one_line_per_curve():
    s, y, p = synthetic(2000, seed=3, stretch=2.0)
    fig = reliability_figure({"before": reliability_table(y, p), "after": reliability_table(y, sigmoid(s))})
    assert [t.name for t in fig.data] == ["perfectly calibrated", "before", "after"]
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text


def test_clear_errors():
    with pytest.raises(ValueError, match="method"):
        ScoreCalibrator("temperature").fit([0.0, 1.0], [0, 1])
    with pytest.raises(ValueError, match="both"):
        ScoreCalibrator().fit([0.0, 1.0], [1, 1])
    with pytest.raises(RuntimeError, match="not fitted"):
        ScoreCalibrator().predict_proba([0.0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        expected_calibration_error([1], [1.2])
    with pytest.raises(ValueError, match="equal length"):
        reliability_table([1], [0.2, 0.3])
