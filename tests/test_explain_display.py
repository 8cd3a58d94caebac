"""How a per-decision explanation shows itself (vfmatch.matching.explain.MatchExplanation):
a rounded, labelled table (and its HTML for Jupyter), a contribution bar chart with
axis titles and units, and the widget output of chapter 07 that uses them.

Runs on noisy ground-truth tables of a metadata-only population (no audio, no
pixels), so nothing has to be trained but the matcher."""

from __future__ import annotations

import datasets
import numpy as np
import pytest

from vfmatch.data.pairs import make_pairs
from vfmatch.data.population import Population
from vfmatch.job.prepare import MatchingData
from vfmatch.job.report import distributions_figure, explanation_figure
from vfmatch.matching.matcher import MetapropertyMatcher
from vfmatch.matching.tables import noisy_metaproperties, oracle_metaproperties
from vfmatch.simulator.traits import draw_identities
from vfmatch.widgets.display import rich_output
from vfmatch.widgets.matching import build_gallery_widget

LABELS = ["metaproperty", "voice says (p)", "face says (p)", "distance function", "distance",
          "standardized distance", "weight", "contribution"]


@pytest.fixture(scope="module")
def fitted():
    """A metadata-only population (no audio, no pixels), its noisy tables and a matcher fitted on them."""
    ids = draw_identities(80, seed=3)
    rows = [s for s in ids["speaker_id"] for _ in range(2)]
    pop = Population(ids, datasets.Dataset.from_dict({"speaker_id": rows}), datasets.Dataset.from_dict({"speaker_id": rows}))
    v, f = oracle_metaproperties(pop)
    v, f = noisy_metaproperties(v, 1.5, seed=0), noisy_metaproperties(f, 1.5, seed=1)
    pairs = make_pairs(pop, 800, seed=0)
    matcher = MetapropertyMatcher().fit_pairs(v, f, pairs).calibrate(v, f, pairs)
    return pop, v, f, matcher


@pytest.fixture(scope="module")
def explanation(fitted):
    _, v, f, matcher = fitted
    return matcher.explain(v, f, 0, 5)


def test_summary_frame_is_rounded_labelled_and_sorted(explanation):
    t = explanation.summary_frame()
    assert list(t.columns) == LABELS
    assert len(t) == len(explanation.table)
    # Largest contribution first, the same numbers as the raw table, rounded to 3 digits.
    assert np.all(np.diff(t["contribution"].abs().to_numpy()) <= 1e-3)
    assert t["contribution"].sum() == pytest.approx(explanation.level, abs=5e-3 * len(t))
    for col in ("distance", "standardized distance", "weight", "contribution"):
        assert np.allclose(t[col], np.round(t[col], 3))
    raw = explanation.to_frame().set_index("metaproperty")
    assert np.allclose(t.set_index("metaproperty")["weight"], raw.loc[t["metaproperty"], "weight"], atol=5e-4)
    assert explanation.summary_frame(digits=1)["contribution"].tolist() == list(np.round(t["contribution"], 1))


def test_notebook_display_is_a_table_not_wrapped_text(explanation):
    out = rich_output(explanation)  # what a notebook cell or a widget's Output shows
    html = out["data"]["text/html"]
    assert "<table" in html and "contribution" in html and "voice says (p)" in html
    assert explanation.headline() in html.replace("&gt;", ">")
    # The plain-text fallback (a terminal) is the readable lines, not the dataclass repr.
    assert out["data"]["text/plain"] == explanation.to_text()
    assert "MatchExplanation(" not in out["data"]["text/plain"]


def test_contribution_figure_has_titled_axes_with_units(explanation):
    fig = explanation.figure()
    assert "log-odds" in fig.layout.xaxis.title.text
    assert fig.layout.yaxis.title.text == "metaproperty"
    bar = fig.data[0]
    assert bar.orientation == "h"
    assert sorted(bar.y) == sorted(explanation.table["metaproperty"])
    assert np.isclose(sum(bar.x), explanation.level)
    # job.report's builder is the same figure (one implementation).
    assert explanation_figure(explanation).to_json() == fig.to_json()


def test_distributions_figure_axes_are_titled(explanation):
    fig = distributions_figure(explanation)
    layout = fig.to_dict()["layout"]
    y_titles = [v.get("title", {}).get("text") for k, v in layout.items() if k.startswith("yaxis")]
    x_titles = [v.get("title", {}).get("text") for k, v in layout.items() if k.startswith("xaxis")]
    assert "probability" in y_titles and "value" in x_titles


def test_gallery_widget_shows_the_explanation_as_a_table(fitted):
    """Chapter 07's widget: the explanation under the gallery is an HTML table, and it follows the rank dropdown."""
    pytest.importorskip("ipywidgets")
    pop, v, f, matcher = fitted
    data = MatchingData(population=pop, parts={"test": pop}, voice={"test": v}, face={"test": f},
                        metaproperties=list(v))
    box = build_gallery_widget(data, matcher, top_k=3)
    rank, explain_out = box.children[0].children[1], box.children[2]
    first = explain_out.outputs[0]["data"]
    assert "<table" in first["text/html"] and "contribution" in first["text/html"]
    assert [o["output_type"] for o in explain_out.outputs] == ["display_data"] * 3  # table, bars, distributions: no text
    rank.value = 2
    assert explain_out.outputs[0]["data"]["text/html"] != first["text/html"]
