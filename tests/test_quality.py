"""Quality measures: balanced accuracy, bootstrap over identities, calibration, figures."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from vfmatch.extractors.extractor import MetapropertyExtractor
from vfmatch.extractors.quality import (
    balanced_accuracy,
    bootstrap_balanced_accuracy,
    confusion_figure,
    confusion_matrix,
    expected_calibration_error,
    extractor_quality,
    ordinal_mae,
    quality_figure,
    quality_report,
    reliability_figure,
    reliability_table,
)


def test_balanced_accuracy_matches_scikit_learn(rng):
    y = rng.integers(0, 4, 200)
    pred = np.where(rng.random(200) < 0.6, y, rng.integers(0, 4, 200))
    assert balanced_accuracy(y, pred, 4) == pytest.approx(balanced_accuracy_score(y, pred))
    # A value never predicted but present counts as recall 0; absent values do not count.
    assert balanced_accuracy([0, 0, 2, 2], [0, 0, 0, 0], 5) == pytest.approx(0.5)


def test_confusion_matrix():
    cm = confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], 3)
    np.testing.assert_array_equal(cm, [[1, 0, 0], [0, 1, 1], [0, 0, 1]])


def test_calibration_measures(rng):
    # Perfectly calibrated by construction: the label is drawn from the predicted distribution.
    p1 = rng.uniform(0.5, 1.0, 20000)
    proba = np.stack([p1, 1 - p1], axis=1)
    y = (rng.random(20000) > p1).astype(int)
    assert expected_calibration_error(y, proba) < 0.02
    # Always 90 % sure, right half of the time: ECE = 0.4.
    over = np.tile([0.9, 0.1], (1000, 1))
    assert expected_calibration_error(np.r_[np.zeros(500), np.ones(500)].astype(int), over) == pytest.approx(0.4)
    table = reliability_table(y, proba, n_bins=5)
    assert table["count"].sum() == len(y) and (table["confidence"] >= 0.5).all()


def test_ordinal_mae():
    assert ordinal_mae([0, 3, 5], [1, 3, 2]) == pytest.approx(4 / 3)


def test_bootstrap_over_identities():
    groups = np.repeat(np.arange(20), 4)
    y = np.repeat(np.arange(20) % 2, 4)
    perfect = bootstrap_balanced_accuracy(y, y, groups, 2, n_boot=200, seed=0)
    np.testing.assert_allclose(perfect, 1.0)
    noisy = np.where(np.arange(80) % 3 == 0, 1 - y, y)
    a = bootstrap_balanced_accuracy(y, noisy, groups, 2, n_boot=300, seed=1)
    b = bootstrap_balanced_accuracy(y, noisy, groups, 2, n_boot=300, seed=1)
    np.testing.assert_array_equal(a, b)  # seeded
    lo, hi = np.percentile(a, [2.5, 97.5])
    assert lo < balanced_accuracy(y, noisy, 2) < hi


def test_extractor_quality_and_report(tiny_population):
    ex = MetapropertyExtractor("skin_tone", "face", encoder="ita", calculator="logistic").fit(tiny_population)
    q = extractor_quality(ex, tiny_population, n_boot=100)
    assert q["baseline_balanced_accuracy"] == pytest.approx(1 / q["n_values_present"])
    assert q["ci_low"] <= q["balanced_accuracy"] <= q["ci_high"]
    assert np.isfinite(q["ordinal_mae"]) and np.isfinite(q["baseline_ordinal_mae"])
    assert np.asarray(q["confusion"]).sum() == q["n_items"] == tiny_population.faces.num_rows
    gender = MetapropertyExtractor("gender", "voice", encoder="f0-formants", calculator="logistic").fit(tiny_population)
    report, details = quality_report([ex, gender], tiny_population, n_boot=50, return_details=True)
    assert list(report["metaproperty"]) == ["skin_tone", "gender"]
    assert np.isnan(report.loc[1, "ordinal_mae"])  # gender has no order
    assert ("gender", "voice") in details and details[("gender", "voice")]["proba"].shape[1] == 2
    # Figures build without a browser.
    assert quality_figure(report).data
    d = details[("gender", "voice")]
    assert reliability_figure(d["y"], d["proba"]).data
    assert confusion_figure(report.loc[1, "confusion"], ["male", "female"]).data
