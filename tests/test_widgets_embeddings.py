"""The logic of chapter 10's widgets and figures (vfmatch.widgets.embeddings), without a browser.

Training runs on the 12-person ``tiny_population`` with a few epochs and a
small net, so the whole file takes seconds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vfmatch.embeddings import create_embedding_method, list_embedding_methods
from vfmatch.widgets.embeddings import (MARGIN_PARAMETERS, history_figure, map_coordinates, map_figure,
                                        margin_parameter, one_to_two_figure, one_to_two_table, train_and_score)

SMALL = dict(hidden_dim=16, batch_size=4)


@pytest.fixture(scope="module")
def halves(tiny_population):
    """Six people to train on, six to test on (both genders in each: the split is gender-stratified)."""
    s = tiny_population.split((0.5, 0.0, 0.5), seed=0)
    return s.train, s.test


@pytest.fixture(scope="module")
def trained(halves):
    return train_and_score("triplet", *halves, margin=0.5, epochs=3, embed_dim=8, n_boot=20, n_triplets=200, **SMALL)


def test_every_registered_method_has_a_margin_parameter_with_its_default():
    assert set(MARGIN_PARAMETERS) == set(list_embedding_methods())
    for method in MARGIN_PARAMETERS:
        p = margin_parameter(method)
        assert p["default"] == create_embedding_method(method).get_params()[p["name"]]
        assert p["min"] <= p["default"] <= p["max"]
    assert margin_parameter("sss")["name"] == "m" and margin_parameter("contrastive")["name"] == "temperature"
    with pytest.raises(ValueError, match="method must be one of"):
        margin_parameter("nope")


def test_train_and_score_passes_the_settings_and_scores_the_test_people(trained, halves):
    result, metrics = trained
    m = result.method
    assert (m.margin, m.epochs, m.embed_dim) == (0.5, 3, 8)
    assert [h["epoch"] for h in m.history_] == [1, 2, 3]
    assert result.voice_embeddings.shape == (halves[1].voices.num_rows, 8)
    assert set(result.voice_speakers) == set(halves[1].speaker_ids)
    for key in ("identification_1to2_vf", "identification_1to2_vf_gender_restricted"):
        low, high = metrics["ci"][key]
        assert 0 <= low <= metrics[key] <= high <= 1


def test_one_to_two_table_and_figure(trained):
    _, metrics = trained
    table = one_to_two_table({"a": metrics, "b": metrics})
    assert list(table.index) == ["a", "b"]
    assert list(table.columns) == ["1:2 V->F (U)", "(U) CI low", "(U) CI high", "1:2 V->F (G)", "(G) CI low",
                                   "(G) CI high", "chance"]
    assert table.loc["a", "1:2 V->F (U)"] == round(metrics["identification_1to2_vf"], 3)
    assert table.loc["a", "chance"] == 0.5
    fig = one_to_two_figure({"a": metrics})
    assert len(fig.data) == 2 and fig.layout.yaxis.title.text.startswith("1:2 V->F accuracy")
    u = fig.data[0]
    low, high = metrics["ci"]["identification_1to2_vf"]
    assert np.isclose(u.y[0] - u.error_y.arrayminus[0], low) and np.isclose(u.y[0] + u.error_y.array[0], high)


def test_history_figure_draws_each_stage():
    history = [{"stage": "warmup", "epoch": 1, "loss": 3.0}, {"stage": "warmup", "epoch": 2, "loss": 2.5},
               {"stage": "reweight", "batches": 7, "loss": 2.0},
               {"stage": "train", "epoch": 1, "loss": 2.9}, {"stage": "train", "epoch": 2, "loss": 2.1}]
    fig = history_figure(history)
    assert [t.name for t in fig.data] == ["stage 'warmup'", "stage 'reweight': mean over 7 batches", "stage 'train'"]
    assert list(fig.data[2].y) == [2.9, 2.1]
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
    assert "no epochs" in history_figure([]).layout.title.text


def test_map_coordinates_pca_and_mds():
    rng = np.random.default_rng(0)
    v, f = rng.normal(size=(6, 5)), rng.normal(size=(4, 5))
    ids = pd.DataFrame({"speaker_id": ["a", "b"], "gender": ["female", "male"], "ethnicity": ["x", "y"]})
    vs, fs = ["a", "a", "a", "b", "b", "b"], ["a", "a", "b", "b"]
    df = map_coordinates(v, f, vs, fs, ids)
    assert len(df) == 10 and list(df["modality"]) == ["voice"] * 6 + ["face"] * 4
    assert list(df.loc[df["speaker_id"] == "b", "gender"].unique()) == ["male"]
    # PCA keeps the centred points' first two principal coordinates: their variance is the largest two.
    X = np.vstack([v, f])
    top = np.sort(np.linalg.eigvalsh(np.cov(X.T)))[::-1][:2]
    assert np.allclose(df[["x", "y"]].var(ddof=1).to_numpy(), top)
    assert "% of the variance" in df.attrs["axis_titles"][0]
    mds = map_coordinates(v, f, vs, fs, ids, projection="mds")
    assert mds[["x", "y"]].notna().all().all()
    fig = map_figure(df, "gender")
    assert fig.layout.xaxis.title.text == df.attrs["axis_titles"][0]
    assert {t.name for t in fig.data} == {"female, voice", "female, face", "male, voice", "male, face"}


def test_map_coordinates_rejects_bad_input():
    ids = pd.DataFrame({"speaker_id": ["a"]})
    with pytest.raises(ValueError, match="same D"):
        map_coordinates(np.zeros((2, 3)), np.zeros((2, 4)), ["a", "a"], ["a", "a"], ids)
    with pytest.raises(ValueError, match="one speaker per embedding row"):
        map_coordinates(np.zeros((2, 3)), np.zeros((2, 3)), ["a"], ["a", "a"], ids)
    with pytest.raises(ValueError, match="lacks 1 speakers"):
        map_coordinates(np.eye(3)[:2], np.eye(3)[1:], ["a", "z"], ["a", "a"], ids)
    with pytest.raises(ValueError, match="projection must be"):
        map_coordinates(np.eye(3)[:2], np.eye(3)[1:], ["a", "a"], ["a", "a"], ids, projection="tsne")
    with pytest.raises(ValueError, match="no column 'age'"):
        map_figure(map_coordinates(np.eye(3)[:2], np.eye(3)[1:], ["a", "a"], ["a", "a"], ids), "age")


def test_training_widget_trains_once_per_setting_and_follows_the_loss(halves, monkeypatch):
    W = pytest.importorskip("ipywidgets")
    import vfmatch.widgets.embeddings as we

    calls = []
    real = we.train_and_score

    def counted(*args, **kwargs):
        calls.append(kwargs)
        fast = dict(warmup_epochs=2, update_every=1) if args[0] == "sss" else {}
        return real(*args, n_triplets=200, **SMALL, **fast, **kwargs)

    monkeypatch.setattr(we, "train_and_score", counted)
    box = we.build_training_widget(*halves, methods=["triplet", "sss"], epochs=3, n_boot=10)
    (loss, margin), (epochs, size, button), out = box.children[0].children, box.children[1].children, box.children[2]
    assert isinstance(out, W.Output) and len(calls) == 1 and calls[0]["epochs"] == 3
    assert [o["output_type"] for o in out.outputs] == ["display_data", "display_data"]  # the curve and the table
    assert "1:2 V-&gt;F (U)" in out.outputs[1]["data"]["text/html"]
    loss.value = "sss"
    assert (margin.description, margin.value) == ("m", margin_parameter("sss")["default"])
    epochs.value = 2
    button.click()
    assert len(calls) == 2 and calls[1]["margin"] == margin.value and calls[1]["epochs"] == 2
    loss.value = "triplet"
    epochs.value = 3
    button.click()  # the first setting again: kept, not retrained
    assert len(calls) == 2
