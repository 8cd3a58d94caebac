"""The `vfmatch fuse` command (vfmatch.fusion.command), called as a user would."""

import argparse
import hashlib
import json

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from vfmatch.data.population import SAMPLE_RATE
from vfmatch.fusion import command
from vfmatch.matching.matcher import MetapropertyMatcher


@pytest.fixture(scope="module")
def setup(gender_models_folder, tiny_population, tmp_path_factory):
    """The shared models + exported population (tests/conftest.py), and one voice file beside them."""
    root = tmp_path_factory.mktemp("fuse")
    for name in ("models", "population"):
        (root / name).symlink_to(gender_models_folder / name, target_is_directory=True)
    sf.write(root / "voice.wav", tiny_population.audio(0), SAMPLE_RATE)
    return root


def _run(*argv):
    parser = argparse.ArgumentParser(prog="vfmatch fuse")
    command.add_arguments(parser)
    return command.main(parser.parse_args([str(a) for a in argv]))


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_fuse_writes_the_face_and_the_list_of_faces_used(setup, tmp_path):
    faces = setup / "population" / "faces"
    before = _snapshot(faces), _snapshot(setup / "models")
    out = tmp_path / "fused.png"
    assert _run("--models", setup / "models", "--voice", setup / "voice.wav", "--faces", faces, "--out", out,
                "--top-n", 4, "--weighted", "--size", 96) == 0
    img = np.asarray(Image.open(out))
    assert img.shape == (96, 96, 3) and 20 < img.mean() < 235
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["rule"] == {"top_n": 4} and doc["method"] == "morph" and doc["weighted"]
    assert len(doc["faces"]) == 24 and [f["rank"] for f in doc["faces"]] == list(range(1, 25))
    used = [f for f in doc["faces"] if f["used"]]
    assert len(used) == 4 and sum(f["weight"] for f in used) == pytest.approx(1.0)
    assert all(f["file"].endswith(".png") for f in used)
    levels = [f["level_of_match"] for f in doc["faces"]]
    assert levels == sorted(levels, reverse=True)
    assert (_snapshot(faces), _snapshot(setup / "models")) == before  # nothing of the user's was changed


def test_fuse_threshold_and_percent_rules(setup, tmp_path):
    faces = setup / "population" / "faces"
    out = tmp_path / "a.png"
    _run("--models", setup / "models", "--voice", setup / "voice.wav", "--faces", faces, "--out", out, "--threshold", "--method", "align")
    doc = json.loads(out.with_suffix(".json").read_text())
    threshold = MetapropertyMatcher.load(setup / "models" / "matcher").threshold_
    assert doc["rule"]["threshold"] == pytest.approx(threshold)
    assert all(f["used"] == (f["level_of_match"] > threshold) for f in doc["faces"])
    _run("--models", setup / "models", "--voice", setup / "voice.wav", "--faces", faces, "--out", out, "--top-percent", 25, "--overwrite")
    assert sum(f["used"] for f in json.loads(out.with_suffix(".json").read_text())["faces"]) == 6


def test_fuse_bad_input_is_named(setup, tmp_path):
    models, faces, voice = setup / "models", setup / "population" / "faces", setup / "voice.wav"
    bad_voice = tmp_path / "voice.wav"
    bad_voice.write_text("not audio")
    with pytest.raises(ValueError, match="--voice .*voice.wav: cannot be read as audio"):
        _run("--models", models, "--voice", bad_voice, "--faces", faces, "--out", tmp_path / "f.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="--faces .*empty: no image files"):
        _run("--models", models, "--voice", voice, "--faces", empty, "--out", tmp_path / "f.png")
    with pytest.raises(ValueError, match="--top-n 30: the --faces folder .* has 24 faces"):
        _run("--models", models, "--voice", voice, "--faces", faces, "--out", tmp_path / "f.png", "--top-n", 30)
    with pytest.raises(ValueError, match="lies inside the --faces folder"):
        _run("--models", models, "--voice", voice, "--faces", faces, "--out", faces / "fused.png")
    with pytest.raises(FileNotFoundError, match="no extractors/ folder"):
        _run("--models", tmp_path, "--voice", voice, "--faces", faces, "--out", tmp_path / "f.png")
    (tmp_path / "taken.png").write_bytes(b"")
    with pytest.raises(ValueError, match="taken.png exists; pass --overwrite"):
        _run("--models", models, "--voice", voice, "--faces", faces, "--out", tmp_path / "taken.png")
    with pytest.raises(ValueError, match="--threshold 99: no face has a level of match above"):
        _run("--models", models, "--voice", voice, "--faces", faces, "--out", tmp_path / "f.png", "--threshold", 99)
    assert not (faces / "fused.png").exists() and not (tmp_path / "f.png").exists()


def test_fuse_is_a_vfmatch_subcommand(setup, tmp_path):
    from vfmatch.cli import main

    out = tmp_path / "cli.png"
    assert main(["fuse", "--models", str(setup / "models"), "--voice", str(setup / "voice.wav"),
                 "--faces", str(setup / "population" / "faces"), "--out", str(out), "--top-n", "3"]) == 0
    assert out.exists() and out.with_suffix(".json").exists()
    # bad input through the command line: a clear message and exit status 2, no traceback
    assert main(["fuse", "--models", str(setup / "models"), "--voice", str(tmp_path / "missing.wav"),
                 "--faces", str(setup / "population" / "faces"), "--out", str(tmp_path / "x.png")]) == 2
