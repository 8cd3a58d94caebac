"""The main job (vfmatch.job.prepare and vfmatch.job.run), its report (vfmatch.job.report)
and the widget logic of chapters 05-07 (vfmatch.widgets.matching).

Unit tests run on a metadata-only population with blurred ground-truth
tables (no extractor is trained); the end-to-end test runs ``vfmatch run --quick``."""

from __future__ import annotations

import argparse
import dataclasses
import json

import datasets
import numpy as np
import pandas as pd
import pytest

from vfmatch.job import report
from vfmatch.matching.matcher import MetapropertyMatcher
from vfmatch.matching.tables import noisy_metaproperties, oracle_metaproperties
from vfmatch.job.prepare import MatchingData, RunConfig, device_setting, extract_tables, prepare, split_roles
from vfmatch.job.prepare import EXTRACTOR_PRESETS
from vfmatch.job.run import add_arguments, main, run
from vfmatch.matching.classifiers import list_classifiers, register_classifier, unregister_classifier
from vfmatch.matching.distances import list_distances, register_distance, unregister_distance
from vfmatch.metaproperties import list_metaproperties
from vfmatch.data.population import Population
from vfmatch.simulator.traits import DEFAULT_N_IDENTITIES, draw_identities
from vfmatch.utils import to_jsonable
from vfmatch.widgets import matching as W


def metadata_population(n=120, per_identity=3, seed=0):
    ids = draw_identities(n, seed=seed)
    rows = [s for s in ids["speaker_id"] for _ in range(per_identity)]
    return Population(ids, datasets.Dataset.from_dict({"speaker_id": rows}), datasets.Dataset.from_dict({"speaker_id": rows}))


@pytest.fixture(scope="module")
def data():
    pop = metadata_population()
    parts = split_roles(pop, RunConfig(seed=0))
    voice, face = {}, {}
    for k, role in enumerate(("matcher", "threshold", "test")):
        v, f = oracle_metaproperties(parts[role])
        voice[role], face[role] = noisy_metaproperties(v, 1.2, seed=2 * k), noisy_metaproperties(f, 1.2, seed=2 * k + 1)
    return MatchingData(pop, parts, voice, face, metaproperties=list(voice["test"]))


@pytest.fixture(scope="module")
def matcher(data):
    return W.fit_and_score(data)["matcher"]


# ---------------------------------------------------------------------------
# Pipeline pieces
# ---------------------------------------------------------------------------


def test_roles_are_identity_disjoint_and_subset_restricts_held_out_roles():
    pop = metadata_population(200)
    parts = split_roles(pop, RunConfig(seed=1))
    ids = {r: set(p.speaker_ids) for r, p in parts.items()}
    assert sum(len(s) for s in ids.values()) == 200
    for a in ids:
        for b in ids:
            assert a == b or not ids[a] & ids[b]
    for role in ("matcher", "threshold"):
        assert set(parts[role].identities["gender"]) == {"male", "female"}
    sub = split_roles(pop, RunConfig(seed=1, subset="gender=female"))
    assert set(sub["train"].speaker_ids) == ids["train"]  # the extractors' people do not change
    for role in ("matcher", "threshold", "test"):
        assert set(sub[role].identities["gender"]) == {"female"}
        assert set(sub[role].speaker_ids) <= ids[role]
    with pytest.raises(ValueError, match="raise --identities"):
        split_roles(metadata_population(12), RunConfig(subset="gender=female,ethnicity=Black,accent=British"))


def test_command_line_options(monkeypatch):
    monkeypatch.delenv("VFMATCH_QUICK", raising=False)  # the suite runs in quick mode
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--identities", "300", "--subset", "gender=female,ethnicity=Asian", "--quick",
                              "--concordance", "0.1", "--device", "cpu", "--classifier", "random_forest",
                              "--distance", "age=emd,gender=cosine", "--seed", "3", "--out", "x"])
    assert (args.identities, args.subset, args.quick, args.concordance, args.device) == (300, "gender=female,ethnicity=Asian", True, 0.1, "cpu")
    assert (args.classifier, args.distance, args.seed, args.out) == ("random_forest", "age=emd,gender=cosine", 3, "x")
    assert RunConfig(quick=True).n_identities() == 60 and RunConfig().n_identities() == 480
    with pytest.raises(ValueError, match="--identities must be at least 8"):
        main(parser.parse_args(["--identities", "3"]))


def _run_help() -> str:
    from vfmatch.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return " ".join(sub.choices["run"].format_help().split())  # argparse wraps lines: one space each


def test_help_states_the_real_defaults_and_the_registries_choices():
    text = _run_help()
    assert f"(default {DEFAULT_N_IDENTITIES};" in text and DEFAULT_N_IDENTITIES == 480
    for name in (*list_classifiers(), *list_distances(), *EXTRACTOR_PRESETS, *list_metaproperties()):
        assert name in text, name


def test_command_line_choices_come_from_the_registries(tmp_path):
    @register_classifier("naive_bayes")
    def naive_bayes(**_):
        from sklearn.naive_bayes import GaussianNB

        return GaussianNB()

    @register_distance("total_variation", aliases=("tv",))
    def total_variation(p, q):
        return 0.5 * np.abs(p - q).sum(axis=-1)

    try:
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        args = parser.parse_args(["--classifier", "naive_bayes", "--distance", "tv", "--metaproperties", "gender", "age"])
        assert (args.classifier, args.distance, args.metaproperties) == ("naive_bayes", "tv", ["gender", "age"])
        assert "total_variation" in _run_help() and "naive_bayes" in _run_help()
    finally:
        unregister_classifier("naive_bayes")
        unregister_distance("total_variation")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(SystemExit):  # argparse refuses a classifier no one registered
        parser.parse_args(["--classifier", "naive_bayes"])
    for bad, message in ((dict(metaproperties=["shoe_size"]), "unknown metaproperty 'shoe_size'"),
                         (dict(distance="manhattan"), "unknown distance"),
                         (dict(classifier="svm"), "--classifier must be one of")):
        with pytest.raises(ValueError, match=message):  # checked before any stage runs
            run(RunConfig(out=str(tmp_path / "never"), progress=False, **bad))
    assert not (tmp_path / "never").exists()


def test_out_folder_with_someone_elses_files_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(ValueError, match="not empty"):
        main(parser.parse_args(["--out", str(tmp_path), "--quick"]))
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_device_setting():
    import torch

    with device_setting("cpu") as dev:
        import os

        assert dev == "cpu" and os.environ["VFMATCH_DEVICE"] == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            with device_setting("cuda"):
                pass


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def test_figures_save_as_html_and_png(tmp_path, data, matcher):
    figs = {
        "w": report.weights_figure({"a": matcher.weights}),
        "roc": report.roc_figure({"a": (np.linspace(0, 1, 5), np.linspace(0, 1, 5) ** 0.5, 0.7)}),
        "hist": report.level_histogram_figure(np.r_[np.zeros(5), np.ones(5)], np.r_[np.zeros(5), np.ones(5)] > 0, 0.5),
        "id": report.identification_figure({"test": {"identification_1to2_vf": 0.7, "identification_1to2_vf_gender_restricted": 0.6}}),
        "ex": report.extractor_figure({"gender": {"voice": {"balanced_accuracy": 0.9, "majority_baseline": 0.5}, "face": {"balanced_accuracy": 0.8}}}),
        "diff": report.difficulty_figure(pd.DataFrame({"strategy": ["a"], "test_accuracy": [0.7], "test_auc": [0.8]})),
        "expl": report.explanation_figure(matcher.explain(*data.tables("test"), 0, 0)),
    }
    for name, fig in figs.items():
        paths = report.save_figure(fig, tmp_path, name)
        assert paths["png"].stat().st_size > 1000
        assert "plotly.min.js" in paths["html"].read_text()
    assert (tmp_path / "plotly.min.js").exists()  # offline: the library sits beside the pages
    page = report.write_index(tmp_path, {"evaluation": {"test": {"auc": 0.7, "eer": 0.3}}}, {"w": "weights"})
    assert "w.png" in page.read_text()
    written = json.loads(report.write_json(tmp_path / "m.json", {"a": np.float32(1.2), "b": np.arange(2), "c": float("nan")}).read_text())
    assert written == to_jsonable({"a": np.float32(1.2), "b": np.arange(2), "c": float("nan")}) == {"a": 1.2, "b": [0, 1], "c": None}


# ---------------------------------------------------------------------------
# Widget logic (chapters 05-07)
# ---------------------------------------------------------------------------


def test_chapter05_distance_and_classifier_choices(data):
    base = W.fit_and_score(data)
    assert set(base["metrics"]) == {"test_auc", "decision_accuracy", "identification_1to2_vf"}
    assert base["metrics"]["test_auc"] > 0.75
    assert np.allclose(base["weights"]["weight"], base["weights"]["coefficient"] * base["weights"]["distance_std"])
    eu = W.fit_and_score(data, "euclidean")
    assert set(eu["weights"]["distance_function"]) == {"euclidean"}
    forest = W.fit_and_score(data, classifier="random_forest")
    assert forest["matcher"].weight_method_ == "permutation_importance_auc"
    oracle = W.fit_and_score(data, oracle=True)
    gender = W.fit_and_score(data, metaproperties=["gender"])
    assert oracle["metrics"]["test_auc"] > base["metrics"]["test_auc"] > gender["metrics"]["test_auc"]
    fig = W.weights_accuracy_figure(base)
    assert "test AUC" in fig.layout.title.text and len(fig.data[0].x) == len(data.metaproperties)
    with pytest.raises(ValueError, match="classifier"):
        W.fit_and_score(data, classifier="svm")


def test_chapter06_epsilon_sliders_and_retraining(data, matcher):
    loose = W.difficulty_summary(data, matcher, eps_strong=0.9, eps_weak=0.55)
    tight = W.difficulty_summary(data, matcher, eps_strong=0.7, eps_weak=0.6)
    n = len(data.role_pairs(0)["matcher"])  # every matcher-training pair gets exactly one category
    assert len(loose["categories"]) == len(tight["categories"]) == n
    assert sum(loose["counts"].values()) == sum(tight["counts"].values()) == n
    assert tight["counts"]["easy"] >= loose["counts"]["easy"]  # a lower bar makes more pairs "easy"
    fig = W.confidence_figure(tight, 0.7, 0.6)
    assert "easy" in fig.layout.title.text
    table = W.retraining_comparison(data, matcher, 0.75, 0.6)
    assert {"baseline", "curriculum", "weighted", "drop"} <= set(table["strategy"])


def test_widgets_share_pairs_through_the_data_cache(data, matcher):
    """The widgets' pairs live in MatchingData.pairs_by_seed (via role_pairs), not in ad-hoc attributes."""
    first = data.role_pairs(0)
    assert data.role_pairs(0) is first and data.pairs_by_seed[0] is first
    assert set(first) == {"matcher", "threshold", "test"}
    assert data.role_pairs(1)["matcher"]["voice_index"].tolist() != first["matcher"]["voice_index"].tolist()
    W.difficulty_summary(data, matcher, 0.75, 0.6)
    assert set(vars(data)) == {f.name for f in dataclasses.fields(MatchingData)}


def test_chapter07_ranked_gallery_with_explanations(data, matcher):
    g = W.ranked_gallery(data, matcher, voice_index=3, top_k=6)
    assert list(g["rank"]) == [1, 2, 3, 4, 5, 6] and np.all(np.diff(g["level"]) <= 0)
    test = data.parts["test"]
    assert (g["true_speaker"] == (g["speaker_id"] == test.voice_speakers[3])).all()
    assert all(len(b.split(",")) == 2 for b in g["because"])
    r = W.true_rank(data, matcher, 3)
    assert 1 <= r <= len(test.faces)
    fig = W.gallery_figure(data, g)
    assert len(fig.data) == 6
    parts = W.explain_pair(data, matcher, 3, int(g["face_index"].iloc[0]))
    assert parts["explanation"].table["contribution"].sum() == pytest.approx(g["level"].iloc[0])
    assert len(parts["contributions"].data[0].y) == len(data.metaproperties)
    with pytest.raises(ValueError, match="voice_index"):
        W.ranked_gallery(data, matcher, voice_index=10_000)


def test_widgets_build_without_a_browser(data, matcher):
    pytest.importorskip("ipywidgets")
    for box in (W.build_distances_widget(data), W.build_difficulty_widget(data, matcher), W.build_gallery_widget(data, matcher, top_k=4)):
        assert box.children
    box = W.build_distances_widget(data)
    every, per = box.children[0].children[0], box.children[1].children
    every.value = "hellinger"  # "all" sets every metaproperty's dropdown
    assert {d.value for d in per} == {"hellinger"} and len(per) == len(data.metaproperties)


# ---------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_vfmatch_run_quick_end_to_end(tmp_path):
    from vfmatch.cli import main as cli_main

    out = tmp_path / "report"
    assert cli_main(["run", "--quick", "--out", str(out), "--no-progress"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    for mp, sides in m["extractors"].items():
        for side in ("voice", "face"):
            assert {"balanced_accuracy", "majority_baseline"} <= set(sides[side]), (mp, side)
    assert set(m["matcher"]["weights"]) == set(m["population"]["metaproperties"])
    assert isinstance(m["matcher"]["threshold"], float)
    for model in ("test", "oracle", "gender_only"):
        for key in ("identification_1to2_vf", "identification_1to2_vf_gender_restricted", "auc", "eer"):
            assert 0.0 <= m["evaluation"][model][key] <= 1.0, (model, key)
    assert m["evaluation"]["chance"]["identification_1to2_vf"] == 0.5
    assert {r["strategy"] for r in m["difficulty"]["strategies"]} >= {"baseline", "curriculum", "weighted", "drop"}
    assert json.loads((out / "weights.json").read_text())["extracted"][0]["metaproperty"] == "gender"
    for name in ("weights", "roc", "identification", "difficulty", "level_histogram"):
        assert (out / "plots" / f"{name}.html").exists() and (out / "plots" / f"{name}.png").exists()
    back = MetapropertyMatcher.load(out / "models" / "matcher")
    assert back.threshold_ == pytest.approx(m["matcher"]["threshold"])
    assert (out / "index.html").exists()
    # every method on the same lists (issue 11): the metaproperty entry is evaluation.test itself
    assert list(m["methods"]) == ["metaproperty", "triplet", "weighted_triplet", "contrastive", "sss", "hybrid"]
    assert m["methods"]["metaproperty"]["identification_1to2_vf"] == m["evaluation"]["test"]["identification_1to2_vf"]
    for name, entry in m["methods"].items():
        assert set(m["evaluation"]["test"]) <= set(entry), name
        for key in ("identification_1to2_vf", "identification_1to2_vf_gender_restricted"):
            lo, hi = entry[f"{key}_ci"]
            assert 0 <= lo <= entry[key] <= hi <= 1, (name, key)
        assert "mean_rank" in entry["percentile_recall"]
    assert m["methods"]["hybrid"]["embedding"] in m["methods"]
    assert f"embedding:{m['methods']['hybrid']['embedding']}" in m["methods"]["hybrid"]["weights"]
    hybrid = MetapropertyMatcher.load(out / "models" / "hybrid_matcher")
    assert hybrid.metaproperties_[-1].startswith("embedding:")
    from vfmatch.embeddings import load_method

    assert load_method(out / "models" / "methods" / "sss").name == "sss"
    assert (out / "plots" / "methods.png").exists() and "Methods on the same test people" in (out / "index.html").read_text()


# ---------------------------------------------------------------------------
# The extracted-table cache
# ---------------------------------------------------------------------------


def _tiny_extractors(n_mels: int):
    """Gender from log-Mel statistics (voice) and thumbnails (face): a set that fits in seconds."""
    from vfmatch.extractors import ExtractorSet, MetapropertyExtractor

    return ExtractorSet([
        MetapropertyExtractor("gender", "voice", encoder="logmel-stats", encoder_kwargs={"n_mels": n_mels}, calculator="logistic"),
        MetapropertyExtractor("gender", "face", encoder="thumbnail", encoder_kwargs={"size": 12}, calculator="logistic"),
    ], quick=True, progress=False)


def test_table_cache_notices_an_encoder_change():
    """The cache key holds the extractors' fingerprints: the same set loads the cached tables,
    a voice encoder with another n_mels recomputes them."""
    config = RunConfig(quick=True, identities=16, seed=5, progress=False)
    first = prepare(config, extractors=_tiny_extractors(24))
    assert "cached" not in first.timing and "fit" in first.timing
    again = prepare(config, extractors=_tiny_extractors(24))
    assert again.timing == {"cached": True}
    for role in ("matcher", "threshold", "test"):
        assert np.array_equal(again.voice[role]["gender"], first.voice[role]["gender"])
    changed = prepare(config, extractors=_tiny_extractors(32))
    assert "cached" not in changed.timing and "fit" in changed.timing
    assert not np.array_equal(changed.voice["test"]["gender"], first.voice["test"]["gender"])
