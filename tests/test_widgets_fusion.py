"""Widget logic of chapter 12 (vfmatch.widgets.fusion), without a browser, on the tiny population.

The level of match is made by hand (1 for a face of the voice's gender, plus noise), and the
only extractor reads gender from face thumbnails, so what the widget reports can be checked."""

from __future__ import annotations

import numpy as np
import pytest

from vfmatch.extractors import ExtractorSet, MetapropertyExtractor
from vfmatch.fusion import fusion_sweep
from vfmatch.job.prepare import MatchingData
from vfmatch.widgets import fusion as WF


@pytest.fixture(scope="module")
def setup(tiny_population):
    pop = tiny_population
    extractors = ExtractorSet([MetapropertyExtractor("gender", "face", encoder="thumbnail", calculator="logistic")],
                              quick=True, progress=False).fit(pop)
    data = MatchingData(pop, {"test": pop}, {}, {}, extractors, metaproperties=["gender"])
    vg, fg = pop.labels("gender", "voice"), pop.labels("gender", "face")
    scores = (vg[:, None] == fg[None, :]) + 0.1 * np.random.default_rng(0).normal(size=(len(vg), len(fg)))
    return WF.fusion_setup(data, scores=scores)


def test_setup_has_one_voice_per_speaker_and_an_aligned_gallery(setup, tiny_population):
    assert setup.n_voices == len(tiny_population) == 12
    assert setup.gallery.aligned.images.shape == (24, WF.FUSED_SIZE, WF.FUSED_SIZE, 3)
    assert np.allclose(np.linalg.norm(setup.gallery.embeddings, axis=1), 1.0)


@pytest.mark.parametrize("method", ["align", "morph"])
def test_rebuild_fuses_other_peoples_faces_of_the_speakers_gender(setup, method):
    res = WF.rebuild(setup, 3, top_n=4, method=method)
    assert res["fused"].shape == (WF.FUSED_SIZE, WF.FUSED_SIZE, 3) and res["fused"].dtype == np.uint8
    assert len(res["selected"]) == 4 and np.isclose(res["weights"].sum(), 1.0)
    assert res["speaker"] not in set(setup.gallery.speakers[res["selected"]])
    assert np.all(np.diff(res["scores"]) <= 0)  # best first
    for fig in ("true_face_percentile_rank", "gender_agreement"):
        assert set(res["figures"][fig]) == {"matched", "random", "mean_face"}
        assert all(0.0 <= x <= 1.0 for x in res["figures"][fig].values())
    assert list(res["reading"]["metaproperty"]) == ["gender"] and res["reading"]["true"].iloc[0] in ("male", "female")
    assert np.abs(res["fused"].astype(int) - res["true_face"].astype(int)).mean() > 1  # not the speaker's face


def test_rules_and_weighting_change_what_is_fused(setup):
    pct = WF.rebuild(setup, 0, top_percent=25)
    assert len(pct["selected"]) == round(0.25 * 22)  # 25 % of the 22 faces of other people
    uniform, weighted = WF.rebuild(setup, 0, top_n=5), WF.rebuild(setup, 0, top_n=5, weighted=True)
    assert np.allclose(uniform["weights"], 0.2) and weighted["weights"][0] > weighted["weights"][-1]
    assert not np.array_equal(uniform["fused"], weighted["fused"])
    with pytest.raises(ValueError, match="voice must be between 0 and 11"):
        WF.rebuild(setup, 12)
    with pytest.raises(ValueError, match="method must be one of"):
        WF.rebuild(setup, 0, method="blend")


def test_gender_scores_give_fused_faces_read_as_the_speakers_gender(setup):
    agree = [WF.rebuild(setup, v, top_n=4, method="align")["figures"]["gender_agreement"]["matched"] for v in range(setup.n_voices)]
    assert np.mean(agree) >= 0.75  # the thumbnail reader, fitted on these 24 faces, reads the fused faces


def test_figures(setup):
    res = WF.rebuild(setup, 1, top_n=3)
    fig = WF.rebuild_figure(setup, res, shown=3)
    assert len(fig.data) == 5 and all(t.type == "image" for t in fig.data)
    assert "percentile rank" in fig.layout.title.text
    fig = WF.methods_figure(setup, 1, top_n=3)
    a, m = (np.asarray(t.z) for t in fig.data[:2])
    assert a.shape == m.shape and np.abs(a.astype(int) - m.astype(int)).mean() > 0.5  # the morph differs from the average
    inp = setup.inputs
    rows = fusion_sweep(inp["scores"], inp["images"], inp["landmarks"], inp["voice_speakers"], inp["face_speakers"],
                        inp["truth"], setup.extractors, setup.encoder, rules=({"top_n": 1}, {"top_n": 3}),
                        method="align", size=48, n_boot=50)
    fig = WF.sweep_figure(rows, "gender_agreement")
    assert [t.name for t in fig.data] == ["fused best matches", "fused random faces", "mean face"]
    assert len(fig.data[0].x) == len(rows) == 3  # top 1 (uniform only), top 3 uniform and weighted


def test_widget_builds_without_a_browser(setup):
    pytest.importorskip("ipywidgets")
    box = WF.build_fusion_widget(setup)
    out = box.children[-1]
    assert len(out.outputs) == 3  # the faces, the figures table, the extractors' reading
