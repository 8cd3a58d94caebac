"""Drop-one / only-one ablations (vfmatch.evaluation.ablation) on a fixture whose
answer is known: gender is exact, age is blurred, accent is pure noise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vfmatch.evaluation.ablation import (ablation_figure, ablation_table, ablation_variants, paired_auc_delta_ci,
                                        paired_delta_ci)
from vfmatch.matching.calibration import expected_calibration_error
from vfmatch.evaluation.metrics import roc_auc
from vfmatch.matching.matcher import MetapropertyMatcher
from vfmatch.matching.tables import noisy_metaproperties
from vfmatch.metaproperties import get_metaproperty

NAMES = ["gender", "age", "accent"]


def role(n_ids, seed, offset):
    """Tables of ``n_ids`` people with 2 clips and 2 faces each: true gender on both sides,
    a blurred true age, and an accent drawn independently for every clip and face (noise)."""
    rng = np.random.default_rng(seed)
    speakers = np.array([f"p{offset + i:04d}" for i in range(n_ids)])
    gender, age = rng.integers(0, 2, n_ids), rng.integers(0, 9, n_ids)
    rows = np.repeat(np.arange(n_ids), 2)
    tables = []
    for side in range(2):
        t = {"gender": np.eye(2)[gender[rows]],
             "age": noisy_metaproperties({"age": np.eye(9)[age[rows]]}, 1.0, seed=seed * 10 + side)["age"],
             "accent": np.eye(8)[rng.integers(0, 8, rows.size)]}
        tables.append(t)
    return tables, speakers[rows], speakers[rows]


def pairs_of(speakers, n, seed):
    """Balanced labelled pairs over rows (voice rows and face rows share speakers)."""
    rng = np.random.default_rng(seed)
    vi = rng.integers(0, speakers.size, n)
    fi = np.empty(n, dtype=np.int64)
    label = np.arange(n) % 2
    for k in range(n):
        pool = np.flatnonzero((speakers == speakers[vi[k]]) == bool(label[k]))
        fi[k] = rng.choice(pool)
    return pd.DataFrame({"voice_index": vi, "face_index": fi, "label": label})


@pytest.fixture(scope="module")
def table():
    (train_v, train_f), train_s, _ = role(150, seed=1, offset=0)
    (test_v, test_f), vs, fs = role(120, seed=2, offset=1000)
    return ablation_table(MetapropertyMatcher(metaproperties=NAMES), (train_v, train_f), pairs_of(train_s, 2000, 3),
                          (test_v, test_f), vs, fs, n_lists=3000, n_pairs=3000, n_boot=300, seed=0)


def test_variants():
    assert ablation_variants(["a", "b"]) == [("full", None, ["a", "b"]), ("drop_one", "a", ["b"]), ("drop_one", "b", ["a"]),
                                             ("only_one", "a", ["a"]), ("only_one", "b", ["b"])]
    assert ablation_variants(["a"]) == [("full", None, ["a"])]
    with pytest.raises(ValueError, match="kinds"):
        ablation_variants(["a"], kinds=("leave_two",))


def test_noise_is_harmless_gender_matters(table):
    t = table.set_index(["kind", "metaproperty"], drop=False)
    full = table.iloc[0]
    assert table.iloc[0]["kind"] == "full" and table.iloc[0]["metaproperties"] == ",".join(NAMES)
    assert len(table) == 1 + 2 * len(NAMES)
    noise = t.loc[("drop_one", "accent")]
    assert noise["delta_identification_1to2_vf_low"] <= 0 <= noise["delta_identification_1to2_vf_high"]
    # The paired AUC interval is so tight that a noise weight's tiny effect on these very test
    # people may sit just outside it (it resamples test identities, not the training pairs): negligible.
    assert abs(noise["delta_auc"]) < 0.005 and noise["delta_auc_high"] - noise["delta_auc_low"] < 0.01
    gender = t.loc[("drop_one", "gender")]
    assert gender["delta_identification_1to2_vf_high"] < 0 and gender["delta_auc_high"] < 0
    assert gender["delta_identification_1to2_vf_low"] <= gender["delta_identification_1to2_vf"] <= gender["delta_identification_1to2_vf_high"]
    # alone, noise is at chance and gender alone is 3/4 (half the other faces share the gender; ties count 1/2)
    assert abs(t.loc[("only_one", "accent")]["identification_1to2_vf"] - 0.5) < 0.05
    assert abs(t.loc[("only_one", "gender")]["identification_1to2_vf"] - 0.75) < 0.05
    np.testing.assert_allclose(table["delta_auc"], table["auc"] - full["auc"])
    assert table.attrs["n_boot"] == 300 and table.attrs["n_test_identities"] == 120


def test_weighted_aucs_equal_the_weighted_roc_auc():
    # the ablation's paired AUC intervals use this one vectorised AUC
    from vfmatch.evaluation.metrics import weighted_roc_auc as _weighted_aucs

    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.normal(size=300) + y, 1)  # many ties
    w = rng.integers(0, 3, (3, 300)).astype(float)
    np.testing.assert_allclose(_weighted_aucs(y, s, w), [roc_auc(y, s, sample_weight=row) for row in w])
    assert np.isnan(_weighted_aucs(y, s, np.where(y == 1, 0.0, 1.0)[None, :])[0])


def test_paired_interval_is_narrower_than_unpaired_noise_and_zero_for_identical_scores():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(60), 20)
    y = np.tile([0, 1], 600)
    a = y + rng.normal(0, 1.0, y.size)
    lo, hi = paired_auc_delta_ci(y, a, a, groups, n_boot=200)
    assert lo == hi == 0.0
    b = a + rng.normal(0, 0.1, y.size)  # nearly the same scorer: the paired difference is tiny
    lo, hi = paired_auc_delta_ci(y, a, b, groups, n_boot=200)
    assert lo <= roc_auc(y, b) - roc_auc(y, a) <= hi and hi - lo < 0.02
    with pytest.raises(ValueError, match="equal length"):
        paired_auc_delta_ci(y, a, b[:-1], groups)


def test_figure(table):
    fig = ablation_figure(table)
    assert [tr.name for tr in fig.data] == ["without it (drop-one)", "it alone (only-one)"]
    assert fig.layout.yaxis.title.text and fig.layout.xaxis.title.text


def test_paired_delta_of_the_calibration_error():
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(80), 25)
    logit = rng.normal(0, 1.5, groups.size)
    y = (rng.random(groups.size) < 1 / (1 + np.exp(-logit))).astype(int)
    calibrated, overconfident = 1 / (1 + np.exp(-logit)), 1 / (1 + np.exp(-3 * logit))
    lo, hi = paired_delta_ci(expected_calibration_error, y, overconfident, calibrated, groups, n_boot=200)
    delta = expected_calibration_error(y, calibrated) - expected_calibration_error(y, overconfident)
    assert lo <= delta <= hi < 0
    assert paired_delta_ci(expected_calibration_error, y, calibrated, calibrated, groups, n_boot=50) == (0.0, 0.0)
    # the vectorised AUC interval is the generic one with the weighted roc_auc
    s = calibrated + rng.normal(0, 0.3, groups.size)
    assert paired_auc_delta_ci(y, calibrated, s, groups, n_boot=20) == pytest.approx(
        paired_delta_ci(roc_auc, y, calibrated, s, groups, n_boot=20))
    # a weight of 2 is the pair counted twice
    w = rng.integers(0, 3, groups.size)
    assert expected_calibration_error(y, calibrated, sample_weight=w) == pytest.approx(
        expected_calibration_error(np.repeat(y, w), np.repeat(calibrated, w)))
