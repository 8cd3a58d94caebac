"""The `vfmatch robustness` command (vfmatch.job.robustness_command), called as a user would.

The fast tests build a models folder as `vfmatch run` lays it out (small gender + age
extractors, the run's config in metrics.json); the slow one runs `vfmatch run --quick`
with augmentation first."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest

from vfmatch import cli
from vfmatch.data.pairs import make_pairs
from vfmatch.evaluation import codecs as cd
from vfmatch.evaluation.robustness import ROBUSTNESS_CONDITIONS, ROBUSTNESS_METRICS
from vfmatch.evaluation.summary import evaluate_similarity
from vfmatch.extractors import ExtractorSet, MetapropertyExtractor
from vfmatch.job import robustness_command as rc
from vfmatch.job.prepare import RunConfig, load_or_simulate, split_roles
from vfmatch.matching.matcher import MetapropertyMatcher


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """REPORT/ with metrics.json["config"] and models/{matcher, extractors}, trained on the
    roles of a quick 24-person population, as `vfmatch run --quick --identities 24` would."""
    root = tmp_path_factory.mktemp("robustness") / "report"
    config = RunConfig(quick=True, identities=24, seed=0, progress=False)
    parts = split_roles(load_or_simulate(config), config)
    extractors = ExtractorSet([
        MetapropertyExtractor(name, modality, encoder=enc, calculator="logistic", cache=False)
        for name in ("gender", "age") for modality, enc in (("voice", "f0-formants"), ("face", "thumbnail"))
    ], progress=False).fit(parts["train"])
    voice = {r: extractors.transform_voices(parts[r]) for r in ("matcher", "threshold", "test")}
    face = {r: extractors.transform_faces(parts[r]) for r in ("matcher", "threshold", "test")}
    matcher = MetapropertyMatcher(metaproperties=["gender", "age"], random_state=0)
    matcher.fit_pairs(voice["matcher"], face["matcher"], make_pairs(parts["matcher"], 200, seed=0))
    matcher.calibrate(voice["threshold"], face["threshold"], make_pairs(parts["threshold"], 200, seed=1))
    matcher.save(root / "models" / "matcher")
    extractors.save(root / "models" / "extractors")
    (root / "metrics.json").write_text(json.dumps({"config": asdict(config)}))
    test = parts["test"]
    S = matcher.similarity_matrix(voice["test"], face["test"])
    expected = evaluate_similarity(S, test.voice_speakers, test.face_speakers, voice_gender=test.labels("gender", "voice"),
                                   face_gender=test.labels("gender", "face"), n_boot=0, seed=0)
    return root, expected


def _run(*argv) -> int:
    return cli.main(["robustness", *map(str, argv)])


def test_clean_row_reproduces_the_run_and_files_are_written(report, tmp_path, capsys):
    root, expected = report
    out = tmp_path / "rob"
    assert _run("--models", root / "models", "--out", out, "--conditions", "snr_10_0", "g711_alaw", "--n-boot", 200,
                "--no-progress") == 0
    table = pd.read_csv(out / "robustness.csv")
    assert list(table["condition"]) == ["clean", "snr_10_0", "g711_alaw"]
    clean = table.iloc[0]
    # The same lists, pairs and seeds as the run's evaluation: clean audio gives the run's numbers.
    for m in ROBUSTNESS_METRICS:
        assert clean[m] == pytest.approx(expected[m], abs=1e-12)
        assert clean[f"{m}_low"] <= clean[m] <= clean[f"{m}_high"]
    doc = json.loads((out / "robustness.json").read_text())
    assert doc["settings"]["n_test_identities"] == 6 and doc["config"]["identities"] == 24
    assert len(doc["conditions"]) == 3 and doc["skipped"] == []
    for m in ROBUSTNESS_METRICS:
        assert (out / "plots" / f"robustness_{m}.html").exists() and (out / "plots" / f"robustness_{m}.png").stat().st_size > 0
    assert "G.711 A-law 64 kbit/s" in capsys.readouterr().out


def test_every_condition_runs_or_is_reported_skipped(report, tmp_path, monkeypatch):
    """All of paper 001's conditions on a handful of clips; G.729 as if libbcg729 were absent."""
    root, _ = report
    real = cd._backends
    monkeypatch.setattr(cd, "_backends", lambda codec: [] if codec == "g729" else real(codec))
    out = tmp_path / "all"
    assert _run("--models", root / "models", "--out", out, "--max-clips", 6, "--n-boot", 100, "--no-progress") == 0
    table = pd.read_csv(out / "robustness.csv", keep_default_na=False, na_values=[""])
    assert list(table["condition"]) == [c.name for c in ROBUSTNESS_CONDITIONS]
    assert (table["n_clips"] == 6).all()
    ok, skipped = table[table["status"] == "ok"], table[table["status"] == "skipped"]
    assert list(skipped["condition"]) == ["g729"] and "apt-get install libbcg729-0" in skipped["reason"].iloc[0]
    assert ok[list(ROBUSTNESS_METRICS)].notna().all().all() and skipped["auc"].isna().all()
    for name in ok["condition"]:  # every other condition ran with a real codec backend (or none needed)
        assert name in [c.name for c in ROBUSTNESS_CONDITIONS if cd.CODECS.get(c.codec) is None or real(c.codec)]
    doc = json.loads((out / "robustness.json").read_text())
    assert [s["condition"] for s in doc["skipped"]] == ["g729"]


def test_bad_input_is_a_clear_error(report, tmp_path, capsys):
    root, _ = report
    assert _run("--models", tmp_path / "nowhere", "--out", tmp_path / "o") == 2
    assert "no such folder" in capsys.readouterr().err
    (tmp_path / "lonely" / "models").mkdir(parents=True)
    assert _run("--models", tmp_path / "lonely" / "models", "--out", tmp_path / "o") == 2
    assert "metrics.json is missing" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _run("--models", root / "models", "--out", tmp_path / "o", "--conditions", "mp3")
    assert _run("--models", root / "models", "--out", tmp_path / "o", "--max-clips", 1) == 2
    assert "--max-clips" in capsys.readouterr().err


def test_figure_has_one_bar_group_per_method():
    rows = []
    for method, shift in (("clean-trained", 0.0), ("augmented", 0.05)):
        for k, c in enumerate(ROBUSTNESS_CONDITIONS[:3]):
            row = {"method": method, "condition": c.name, "label": c.label, "status": "ok"}
            for m in ROBUSTNESS_METRICS:
                v = 0.8 - 0.1 * k + shift
                row.update({m: v, f"{m}_low": v - 0.05, f"{m}_high": v + 0.04})
            rows.append(row)
    fig = rc.robustness_figure(pd.DataFrame(rows), "auc")
    assert [t.name for t in fig.data] == ["clean-trained", "augmented"]
    assert np.allclose(fig.data[0].error_y.array, 0.04) and np.allclose(fig.data[0].error_y.arrayminus, 0.05)
    assert fig.layout.yaxis.title.text and fig.layout.xaxis.title.text
    with pytest.raises(KeyError):
        rc.robustness_figure(pd.DataFrame(rows), "map_vf")


@pytest.mark.slow
def test_after_a_quick_augmented_run(tmp_path):
    """`vfmatch run --quick --augment codecs+noise`, then `vfmatch robustness` on its models:
    the clean row equals the run's test metrics."""
    rep = tmp_path / "report"
    assert cli.main(["run", "--quick", "--identities", "24", "--extractors", "fast", "--augment", "codecs+noise",
                     "--no-progress", "--out", str(rep)]) == 0
    metrics = json.loads((rep / "metrics.json").read_text())
    assert metrics["config"]["augment"] == "codecs+noise"
    assert _run("--models", rep / "models", "--out", tmp_path / "rob", "--conditions", "amr_nb_4.75", "--n-boot", 100,
                "--no-progress") == 0
    table = pd.read_csv(tmp_path / "rob" / "robustness.csv")
    for m in ROBUSTNESS_METRICS:
        assert table.loc[0, m] == pytest.approx(metrics["evaluation"]["test"][m], abs=1e-12)
    # every embedding method the run saved is scored too; its clean row is the run's figure
    clean = table[table["condition"] == "clean"].set_index("method")
    for name in ("triplet", "weighted_triplet", "contrastive", "sss"):
        assert clean.loc[name, "identification_1to2_vf"] == pytest.approx(
            metrics["methods"][name]["identification_1to2_vf"], abs=1e-9), name
