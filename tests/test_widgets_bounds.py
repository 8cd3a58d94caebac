"""Widget logic of chapter 05's bounds section (vfmatch.widgets.bounds), without a browser.

Runs on a metadata-only simulated population (traits, no media) whose
"extracted" tables are blurred ground truth, so no extractor is trained."""

from __future__ import annotations

import datasets
import pytest

from vfmatch.data.population import Population
from vfmatch.job.prepare import MatchingData, RunConfig, fit_matcher, new_matcher, split_roles
from vfmatch.matching.tables import noisy_metaproperties, oracle_metaproperties
from vfmatch.simulator.traits import draw_identities
from vfmatch.widgets import bounds as B


@pytest.fixture(scope="module")
def data():
    ids = draw_identities(160, seed=1)
    rows = [s for s in ids["speaker_id"] for _ in range(2)]
    pop = Population(ids, datasets.Dataset.from_dict({"speaker_id": rows}), datasets.Dataset.from_dict({"speaker_id": rows}))
    parts = split_roles(pop, RunConfig(seed=0))
    voice, face = {}, {}
    for k, role in enumerate(("matcher", "threshold", "test")):
        v, f = oracle_metaproperties(parts[role])
        voice[role], face[role] = noisy_metaproperties(v, 1.2, seed=2 * k), noisy_metaproperties(f, 1.2, seed=2 * k + 1)
    return MatchingData(pop, parts, voice, face, metaproperties=list(voice["test"]))


@pytest.fixture(scope="module")
def full(data):
    return B.bounds_comparison(data)


def test_four_matchers_floor_to_ceiling(full):
    t = full["table"]
    assert list(t.index) == [label for _, label in B.MODELS]
    one_to_two = t["1:2 V->F, any other face"]
    assert one_to_two["extracted metaproperties"] < one_to_two["Bayes bound"] < one_to_two["all-truth oracle"] == 1.0
    assert full["skipped"] is None
    gap = full["gap"]["identification_1to2_vf"]
    assert gap["extraction_loss"] == pytest.approx(one_to_two["Bayes bound"] - one_to_two["extracted metaproperties"])


def test_what_both_media_show_has_no_gap_to_the_oracle(data):
    """Both the synthesiser and the renderer use gender and age themselves, so their
    posteriors are the truth: the Bayes bound equals the all-truth oracle on that set."""
    r = B.bounds_comparison(data, ["gender", "age"])
    for key in ("identification_1to2_vf", "auc"):
        assert r["gap"][key]["not_shown_by_media"] == pytest.approx(0.0, abs=1e-12)
    # Accent is heard but never seen: a face's accent posterior is a guess from its ethnicity.
    accent = B.bounds_comparison(data, ["gender", "accent"])
    assert accent["gap"]["identification_1to2_vf"]["not_shown_by_media"] > 0


def test_figures(data, full):
    fig = B.bounds_figure(full)
    assert len(fig.data) == 4 and fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
    matcher = fit_matcher(new_matcher(RunConfig()), data, data.role_pairs(0))
    cal = B.calibration_comparison(data, matcher, n_boot=50)
    assert set(cal["methods"]) == {"platt", "isotonic"}
    rel = B.calibration_figure(cal, "platt")
    assert len(rel.data) == 3 and "platt" in rel.data[2].name  # the diagonal, before, after
    with pytest.raises(ValueError, match="method"):
        B.calibration_figure(cal, "temperature")


def test_scores_are_those_of_the_job(data):
    from vfmatch.evaluation.summary import evaluate_similarity

    matcher = fit_matcher(new_matcher(RunConfig()), data, data.role_pairs(0))
    test = data.parts["test"]
    fast = B.score_gap_metrics(matcher, data.tables("test"), test, seed=0)
    full = evaluate_similarity(matcher.similarity_matrix(*data.tables("test")), test.voice_speakers, test.face_speakers,
                               voice_gender=test.labels("gender", "voice"), face_gender=test.labels("gender", "face"),
                               n_boot=0, seed=0)
    assert fast == {k: pytest.approx(full[k]) for k in fast}


def test_bad_choices_are_named(data):
    with pytest.raises(ValueError, match="non-empty subset"):
        B.bounds_comparison(data, ["gender", "shoe_size"])
    skipped = dict(B.bounds_comparison(data, ["gender"]), gap=None, skipped="no model")
    assert B.bounds_figure(skipped) is None


def test_widget_builds_without_a_browser(data):
    pytest.importorskip("ipywidgets")
    matcher = fit_matcher(new_matcher(RunConfig()), data, data.role_pairs(0))
    box = B.build_bounds_widget(data, matcher)
    pick, button = box.children[0].children
    out_bounds, method, out_cal = box.children[1:]
    assert out_bounds.outputs and out_cal.outputs
    pick.value = ("gender", "age")
    button.click()
    assert out_bounds.outputs
    method.value = "platt"
    assert out_cal.outputs
