"""The bounds stage of ``vfmatch run`` (vfmatch.job.bounds): the Bayes bound and the gap
decomposition, calibrated match probabilities, ablations, subgroup intervals.

The fast tests run on a metadata-only simulated population (traits drawn by the
simulator, no media) whose "extracted" tables are blurred ground truth
(:func:`vfmatch.matching.tables.noisy_metaproperties`): sharper for the matcher's
people than for the threshold and test people, so the matcher meets noisier
tables than it learnt on and its probabilities are over-confident, the case
calibration is for. The slow test runs ``vfmatch run --quick`` end to end."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest

from vfmatch.data.population import Population
from vfmatch.evaluation.ablation import paired_delta_ci
from vfmatch.job import bounds
from vfmatch.job.prepare import MatchingData, RunConfig, make_role_pairs, new_matcher, split_roles, fit_matcher
from vfmatch.job.report import save_figure
from vfmatch.job.run import evaluate_matcher, subgroups
from vfmatch.matching.calibration import expected_calibration_error
from vfmatch.matching.tables import noisy_metaproperties, oracle_metaproperties
from vfmatch.simulator.traits import draw_identities
from vfmatch.utils import to_jsonable

NOISE = {"matcher": 0.5, "threshold": 1.5, "test": 1.5}  # blur of the "extracted" tables per role


def metadata_population(n=200, per_identity=2, seed=0):
    ids = draw_identities(n, seed=seed)
    rows = [s for s in ids["speaker_id"] for _ in range(per_identity)]
    return Population(ids, datasets.Dataset.from_dict({"speaker_id": rows}), datasets.Dataset.from_dict({"speaker_id": rows}))


@pytest.fixture(scope="module")
def job():
    """What the job holds when the bounds stage starts: data, pairs, fitted matchers, the evaluation so far."""
    config = RunConfig(seed=0, progress=False)
    pop = metadata_population()
    parts = split_roles(pop, config)
    voice, face = {}, {}
    for k, role in enumerate(("matcher", "threshold", "test")):
        v, f = oracle_metaproperties(parts[role])
        voice[role] = noisy_metaproperties(v, NOISE[role], seed=2 * k)
        face[role] = noisy_metaproperties(f, NOISE[role], seed=2 * k + 1)
    data = MatchingData(pop, parts, voice, face, metaproperties=list(voice["test"]))
    pairs = make_role_pairs(data, config.seed)
    matcher = fit_matcher(new_matcher(config), data, pairs)
    oracle = fit_matcher(new_matcher(config), data, pairs, oracle=True)
    test = parts["test"]
    evaluation = {"test": evaluate_matcher(matcher, *data.tables("test"), test, pairs["test"], 0)[0],
                  "oracle": evaluate_matcher(oracle, *data.oracle_tables("test"), test, pairs["test"], 0)[0]}
    measured = bounds.measure_bounds(config, data, pairs, matcher, new_matcher(config), evaluation, evaluate_matcher,
                                     n_boot=100)
    return dict(config=config, data=data, pairs=pairs, matcher=matcher, evaluation=evaluation, bounds=measured)


def test_bayes_entry_has_the_test_keys_and_lies_between_test_and_one(job):
    ev, b = job["evaluation"], job["bounds"]
    bayes = b.evaluation["bayes"]
    assert set(bayes) == set(ev["test"])
    assert b.bayes_skipped is None and b.S_bayes.shape == (job["data"].parts["test"].voices.num_rows,) * 2
    for key, _ in bounds.GAP_METRICS:
        # Blurred tables lose information the posteriors keep; the posteriors miss what the media never show.
        assert ev["test"][key] < bayes[key] < 1.0, key
        assert bayes[key] <= ev["oracle"][key]
    # The bound's matcher is thresholded on the threshold people, as the extracted one.
    assert bayes["threshold"] == pytest.approx(b.bayes_matcher.threshold_)


def test_gap_decomposition_adds_up(job):
    gap = job["bounds"].evaluation["gap"]
    for key, _ in bounds.GAP_METRICS:
        g = gap[key]
        assert g["extraction_loss"] == pytest.approx(g["bayes"] - g["extracted"])
        assert g["not_shown_by_media"] == pytest.approx(g["all_truth"] - g["bayes"])
        assert g["extraction_loss"] + g["not_shown_by_media"] == pytest.approx(g["all_truth"] - g["extracted"])
        assert g["extraction_loss"] > 0 and g["not_shown_by_media"] > 0
    assert "definition" in gap


def test_calibration_lowers_the_ece_on_the_test_people(job):
    cal = job["bounds"].probability_calibration
    assert "threshold role" in cal["fitted_on"] and "test role" in cal["scored_on"]
    for method in ("platt", "isotonic"):
        s = cal["methods"][method]
        assert s["ece_after"] < s["ece_before"], method
        lo, hi = s["ece_change_ci"]
        assert lo <= s["ece_change"] <= hi and hi < 0, method  # the drop is larger than the resampling noise
        assert len(s["reliability_before"]) == len(s["reliability_after"]) == cal["n_bins"]


def test_ece_change_interval_is_the_paired_bootstrap_of_the_library():
    rng = np.random.default_rng(0)
    n = 500
    groups = rng.integers(0, 40, n).astype(str)
    y = rng.integers(0, 2, n)
    before = rng.random(n)
    after = np.clip(0.5 * before + 0.3 * y + 0.1, 0, 1)
    fast = bounds.ece_change_ci(y, before, after, groups, n_boot=150, seed=4)
    slow = paired_delta_ci(expected_calibration_error, y, before, after, groups, n_boot=150, seed=4)
    np.testing.assert_allclose(fast, slow, atol=1e-12)


def test_ablation_has_every_variant_with_intervals(job):
    table, names = job["bounds"].ablation, job["data"].metaproperties
    assert list(table["kind"]) == ["full"] + ["drop_one"] * len(names) + ["only_one"] * len(names)
    full = table.iloc[0]
    assert full["identification_1to2_vf"] == pytest.approx(job["evaluation"]["test"]["identification_1to2_vf"])
    assert full["auc"] == pytest.approx(job["evaluation"]["test"]["auc"])
    rest = table.iloc[1:]
    for metric in ("identification_1to2_vf", "auc"):
        lo, hi = rest[f"delta_{metric}_low"].to_numpy(), rest[f"delta_{metric}_high"].to_numpy()
        delta = rest[f"delta_{metric}"].to_numpy()
        assert np.all(np.isfinite(lo)) and np.all(lo <= delta + 1e-12) and np.all(delta <= hi + 1e-12)
    assert sorted(rest.loc[rest["kind"] == "drop_one", "metaproperty"]) == sorted(names)


def test_metrics_and_figures(job, tmp_path):
    metrics = {"evaluation": dict(job["evaluation"]), "matcher": {"calibration": {"eer": 0.1}}}
    job["bounds"].add_to(metrics)
    assert {"test", "oracle", "bayes", "gap"} <= set(metrics["evaluation"])
    assert metrics["matcher"]["calibration"] == {"eer": 0.1}  # the threshold's calibration stays where it was
    assert set(metrics["matcher"]["probability_calibration"]["methods"]) == {"platt", "isotonic"}
    assert len(metrics["ablation"]["rows"]) == len(job["bounds"].ablation)
    assert metrics["ablation"]["settings"]["n_boot"] == 100
    json.dumps(to_jsonable(metrics))
    assert list(bounds.model_entries(metrics["evaluation"])) == ["extracted", "Bayes bound", "all-truth oracle"]
    figs = job["bounds"].figures()
    assert set(figs) == {"gap", "reliability", "ablation"}
    for name, (fig, title) in figs.items():
        assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text and title
        written = save_figure(fig, tmp_path, name)
        assert written["png"].stat().st_size > 0
    gap = figs["gap"][0]
    assert [t.name for t in gap.data] == ["extracted metaproperties", "Bayes bound", "all-truth oracle"]
    job["bounds"].save(tmp_path)
    assert (tmp_path / "models" / "bayes_matcher").exists() and (tmp_path / "ablation.csv").exists()


def test_the_bound_is_skipped_with_a_reason_for_data_populations(job):
    config = RunConfig(seed=0, data="my_population", progress=False)
    d = job["data"]
    keep = ["gender", "age"]  # two metaproperties: a quick ablation
    small = MatchingData(d.population, d.parts, {r: {n: t[n] for n in keep} for r, t in d.voice.items()},
                         {r: {n: t[n] for n in keep} for r, t in d.face.items()}, metaproperties=keep)
    matcher = fit_matcher(new_matcher(config), small, job["pairs"])
    b = bounds.measure_bounds(config, small, job["pairs"], matcher, new_matcher(config), job["evaluation"],
                              evaluate_matcher, n_boot=20)
    assert b.bayes_matcher is None and "--data my_population" in b.evaluation["bayes"]["skipped"]
    assert "skipped" in b.evaluation["gap"]
    assert "gap" not in b.figures() and "reliability" in b.figures()
    assert "not drawn by vfmatch.simulator" in bounds.bayes_skip_reason(job["data"].population, config)
    no_traits = Population(job["data"].population.identities.drop(columns=["height"]),
                           job["data"].population.voices, job["data"].population.faces)
    assert "height" in bounds.bayes_skip_reason(no_traits)
    assert "my_mp" in bounds.bayes_skip_reason(job["data"].population, metaproperties=["gender", "my_mp"])


def test_subgroups_carry_intervals(job):
    data, matcher = job["data"], job["matcher"]
    S = matcher.similarity_matrix(*data.tables("test"))
    groups = subgroups(S, data.parts["test"], seed=0)
    assert {"gender=female", "gender=male"} <= set(groups)
    for name, row in groups.items():
        for key in ("identification_1to2", "mean_rank"):
            lo, hi = row[f"{key}_ci"]
            if np.isfinite(row[key]):
                assert lo <= row[key] <= hi, (name, key)


@pytest.mark.slow
def test_vfmatch_run_quick_writes_the_bounds(tmp_path, capsys):
    from vfmatch.cli import main as cli_main

    out = tmp_path / "report"
    assert cli_main(["run", "--quick", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "all-truth oracle: every metaproperty known, incl. those the media never show" in printed
    assert "Bayes bound" in printed
    m = json.loads((out / "metrics.json").read_text())
    ev = m["evaluation"]
    assert set(ev["bayes"]) == set(ev["test"])
    assert 0.5 < ev["bayes"]["identification_1to2_vf"] < 1.0
    assert set(ev["gap"]["auc"]) >= {"extraction_loss", "not_shown_by_media"}
    assert {"platt", "isotonic"} == set(m["matcher"]["probability_calibration"]["methods"])
    assert m["ablation"]["rows"][0]["kind"] == "full"
    assert all("identification_1to2_ci" in row for row in m["subgroups"].values())
    assert "bounds" in m["timing_seconds"]
    for name in ("gap", "reliability", "ablation"):
        assert (out / "plots" / f"{name}.png").exists()
    assert "all-truth oracle" in (out / "index.html").read_text()
