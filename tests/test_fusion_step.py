"""The fusion stage of vfmatch run (vfmatch.job.fusion_step) on a small simulated population.

The extractors read gender only (log-Mel statistics / thumbnails: seconds to fit), so the
matcher's level of match carries gender and little else; fused faces should then be read
as the speaker's gender far more often than fused random faces."""

from __future__ import annotations

import numpy as np
import pytest

from vfmatch.extractors import ExtractorSet, MetapropertyExtractor
from vfmatch.job.fusion_step import fusion_figure, fusion_inputs, fusion_note, fusion_stage
from vfmatch.job.prepare import RunConfig, fit_matcher, make_role_pairs, new_matcher, prepare
from vfmatch.job.report import plotly_to_matplotlib


def _gender_extractors():
    return ExtractorSet([
        MetapropertyExtractor("gender", "voice", encoder="logmel-stats", calculator="logistic"),
        MetapropertyExtractor("gender", "face", encoder="thumbnail", calculator="logistic"),
    ], quick=True, progress=False)


@pytest.fixture(scope="module")
def run_parts():
    config = RunConfig(quick=True, identities=48, seed=3, progress=False)
    data = prepare(config, extractors=_gender_extractors())
    matcher = fit_matcher(new_matcher(config), data, make_role_pairs(data, config.seed))
    return data, matcher, config


@pytest.fixture(scope="module")
def stage(run_parts):
    data, matcher, config = run_parts
    return fusion_stage(data, matcher, config, top_n=3, n_boot=300)


def test_metrics_have_every_arm_with_intervals_and_the_settings(stage, run_parts):
    data = run_parts[0]
    metrics, _ = stage
    for fig in ("true_face_percentile_rank", "gender_agreement"):
        e = metrics[fig]
        for arm in ("matched", "random", "mean_face"):
            assert 0.0 <= e[arm] <= 1.0
            lo, hi = e[f"{arm}_ci"]
            assert lo - 1e-9 <= e[arm] <= hi + 1e-9
        assert len(e["matched_minus_random_ci"]) == 2
    s = metrics["settings"]
    n_test = len(data.parts["test"])
    assert s["rule"] == {"top_n": 3.0} and s["n_voices"] == n_test == s["n_identities"]  # one voice per speaker
    assert s["scores"] == "metaproperty matcher" and s["face_encoder"] == "thumbnail" and s["exclude_own"]
    assert s["seconds"] > 0


def test_gender_matched_fusion_beats_random_faces(stage):
    g = stage[0]["gender_agreement"]
    # The matcher knows gender from the voice, so its best faces share the speaker's gender.
    assert g["matched"] > g["random"] + 0.2
    assert g["matched_minus_random_ci"][0] > 0


def test_figures_are_a_strip_and_bars_that_save_as_png(stage):
    metrics, figures = stage
    assert set(figures) == {"fusion_strip", "fusion"}
    strip_fig, title = figures["fusion_strip"]
    assert strip_fig.data[0].type == "image" and "fused" in title
    bars = figures["fusion"][0]
    assert [t.name for t in bars.data] == ["fused best matches", "fused random faces", "mean face"]
    for fig, _ in figures.values():
        assert plotly_to_matplotlib(fig) is not None  # the report's PNG copy draws both
    assert "percentile rank" in fusion_note(metrics) and "stereotype" in fusion_note(metrics)


def test_other_scores_are_used_and_bad_shapes_named(run_parts):
    data, matcher, config = run_parts
    test = data.parts["test"]
    # Scores that know who is who: each voice scores its own speaker's faces 1 (excluded from fusion) and the rest 0.
    same = (test.voice_speakers[:, None] == test.face_speakers[None, :]).astype(float)
    metrics, _ = fusion_stage(data, matcher, config, scores=same, scores_name="identity oracle", top_n=2, n_boot=0)
    assert metrics["settings"]["scores"] == "identity oracle" and metrics["gender_agreement"]["matched_ci"] is None
    n_other = test.faces.num_rows - np.unique(test.face_speakers, return_counts=True)[1].max()
    big, _ = fusion_stage(data, matcher, config, top_n=10_000, n_boot=0)  # more faces than there are: all of them
    assert big["settings"]["rule"] == {"top_n": float(n_other)}
    with pytest.raises(ValueError, match=r"scores must have shape \(clips, faces\) of the test role"):
        fusion_inputs(data, np.zeros((3, 3)))


def test_faces_without_landmarks_skip_the_stage(run_parts):
    data, matcher, config = run_parts
    test = data.parts["test"]
    no_lm = type(test)(test.identities, test.voices, test.faces.remove_columns("landmarks"))
    data2 = type(data)(data.population, {**data.parts, "test": no_lm}, data.voice, data.face, data.extractors,
                       metaproperties=data.metaproperties)
    metrics, figures = fusion_stage(data2, matcher, config)
    assert "landmarks" in metrics["skipped"] and figures == {}
    assert fusion_note(metrics).startswith("Fusion skipped")


def test_fusion_figure_leaves_out_absent_figures():
    m = {"true_face_percentile_rank": {"matched": 0.6, "random": 0.5, "mean_face": 0.5,
                                       "matched_ci": [0.55, 0.65], "random_ci": [0.45, 0.55], "mean_face_ci": [0.5, 0.5]}}
    fig = fusion_figure(m)
    assert list(fig.data[0].x) == ["true face percentile rank"]
    assert fig.data[0].error_y.array[0] == pytest.approx(0.05) and fig.data[0].error_y.arrayminus[0] == pytest.approx(0.05)


@pytest.mark.slow
def test_vfmatch_run_writes_the_fusion_metrics_and_figures(tmp_path):
    import json

    from vfmatch.cli import main as cli_main

    out = tmp_path / "report"
    assert cli_main(["run", "--quick", "--out", str(out), "--no-progress"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    for fig in ("true_face_percentile_rank", "gender_agreement"):
        assert {"matched", "random", "mean_face", "matched_ci"} <= set(m["fusion"][fig])
    assert m["fusion"]["settings"]["rule"] == {"top_n": 10.0} and m["timing_seconds"]["fusion"] > 0
    for name in ("fusion_strip", "fusion"):
        assert (out / "plots" / f"{name}.html").exists() and (out / "plots" / f"{name}.png").exists()
    assert "fusion_strip.png" in (out / "index.html").read_text()
