"""`vfmatch match`, `rank` and `compare` on files, and the real-media front-end
(vfmatch.data.media), used as a new user would."""

import hashlib
import json
import warnings

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from vfmatch import cli
from vfmatch.data.media import (NoSpeechError, conform_voice, load_face, load_voice, loudness_lufs, normalize_loudness,
                                read_image, simulated_export, trim_silence)
from vfmatch.data.population import SAMPLE_RATE
from vfmatch.data.preprocess import resample
from vfmatch.extractors import ExtractorSet
from vfmatch.job.files import SimulatorModelWarning


@pytest.fixture(scope="module")
def setup(gender_models_folder):
    """The shared models + exported population (tests/conftest.py)."""
    return gender_models_folder


def _cli(*argv):
    return cli.main([str(a) for a in argv])


def _snapshot(*folders):
    return {str(p): hashlib.sha1(p.read_bytes()).hexdigest() for f in folders for p in sorted(f.rglob("*")) if p.is_file()}


def _files(setup):
    voices = sorted((setup / "population" / "voices").rglob("*.wav"))
    faces = sorted((setup / "population" / "faces").rglob("*.png"))
    return voices, faces


def test_match_rank_compare_on_exported_files(setup, capsys, tmp_path):
    voices, faces = _files(setup)
    models = setup / "models"
    before = _snapshot(setup / "population", models)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SimulatorModelWarning)  # exported simulated files: no warning
        assert _cli("match", "--models", models, voices[0], faces[0], "--json") == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["decision"] in ("match", "no match") and 0 < doc["probability"] < 1
        assert (doc["level_of_match"] >= doc["threshold"]) == (doc["decision"] == "match")
        assert [r["metaproperty"] for r in doc["explanation"]] == ["gender"]
        assert sum(r["contribution"] for r in doc["explanation"]) == pytest.approx(doc["level_of_match"])
        assert doc["trained_on_simulator"] is True

        assert _cli("match", "--models", models, voices[0], faces[0]) == 0
        text = capsys.readouterr().out
        assert "level of match" in text and "gender" in text and "contribution" in text

        csv = tmp_path / "ranked.csv"
        assert _cli("rank", "--models", models, "--voice", voices[0], "--faces", setup / "population" / "faces", "--csv", csv) == 0
        import pandas as pd

        ranked = pd.read_csv(csv)
        assert len(ranked) == len(faces) and list(ranked["rank"]) == list(range(1, len(faces) + 1))
        assert list(ranked["level"]) == sorted(ranked["level"], reverse=True)
        assert set(ranked["file"]) == {f.relative_to(setup / "population" / "faces").as_posix() for f in faces}
        capsys.readouterr()
        assert _cli("rank", "--models", models, "--face", faces[0], "--voices", setup / "population" / "voices", "--top", 3) == 0
        assert len([line for line in capsys.readouterr().out.splitlines() if line.strip().endswith(".wav") or ".wav " in line]) == 3

        assert _cli("compare", "--models", models, voices[0], faces[0], faces[-1], "--json") == 0
        cmp = json.loads(capsys.readouterr().out)
    assert cmp["p_a_rather_than_b"] == pytest.approx(1 / (1 + np.exp(cmp["level_b"] - cmp["level_a"])))
    assert _snapshot(setup / "population", models) == before  # nothing read was modified


def test_a_48khz_stereo_copy_gives_the_same_decision(setup, capsys, tmp_path):
    voices, faces = _files(setup)
    wave, sr = sf.read(voices[0], dtype="float32")
    assert sr == SAMPLE_RATE and wave.ndim == 1
    stereo48 = resample(np.stack([wave, 0.7 * wave]), SAMPLE_RATE, 48000).T  # (n, 2) at 48 kHz
    copy = tmp_path / "voice_48k_stereo.wav"
    sf.write(copy, stereo48, 48000)
    results = []
    for v in (voices[0], copy):
        for f in faces[:6]:
            assert _cli("match", "--models", setup / "models", v, f, "--json") == 0
            results.append(json.loads(capsys.readouterr().out))
    original, converted = results[:6], results[6:]
    assert [r["decision"] for r in original] == [r["decision"] for r in converted]
    assert np.allclose([r["level_of_match"] for r in original], [r["level_of_match"] for r in converted], atol=0.25)
    assert any("resampled from 48000 Hz" in n for n in converted[0]["notes"])
    assert any("mixed 2 channels" in n for n in converted[0]["notes"])


def test_simulator_models_warn_once_on_other_input(setup, capsys, tmp_path):
    voices, faces = _files(setup)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    for f in faces[:3]:
        (outside / f.name).write_bytes(f.read_bytes())  # copies outside the export: treated as real input
    (outside / "v.wav").write_bytes(voices[0].read_bytes())
    assert simulated_export(voices[0]) == (setup / "population").resolve() and simulated_export(outside / "v.wav") is None
    assert _cli("rank", "--models", setup / "models", "--voice", outside / "v.wav", "--faces", setup / "population" / "faces") == 0
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "trained on simulated people" in err and str(outside / "v.wav") in err


def test_predict_voices_refuses_bare_arrays_without_a_sample_rate(setup, tiny_population):
    extractors = ExtractorSet.load(setup / "models" / "extractors", progress=False)
    clip = np.asarray(tiny_population.audio(0), dtype=np.float32)
    with pytest.raises(ValueError, match="sample rate"):
        extractors.predict_voices([clip])
    at16 = extractors.predict_voices([clip], sample_rate=SAMPLE_RATE)["gender"]
    at48 = extractors.predict_voices([resample(clip, SAMPLE_RATE, 48000)], sample_rate=48000)["gender"]
    assert np.allclose(at16, at48, atol=0.1)
    files = extractors.predict_voices([_files(setup)[0][0]])["gender"]  # files carry their rate
    assert files.shape == (1, 2) and extractors.trained_on_simulator is True
    photos = extractors.predict_faces(_files(setup)[1][:2])["gender"]  # image files: read and aligned by the front-end
    arrays = extractors.predict_faces(np.stack([tiny_population.image(i) for i in range(2)]),
                                      landmarks=np.stack([tiny_population.faces[i]["landmarks"] for i in range(2)]))["gender"]
    assert photos.shape == (2, 2) and np.allclose(photos, arrays, atol=0.15)


def test_bad_files_are_named_in_the_error(setup, capsys, tmp_path):
    voices, faces = _files(setup)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    assert _cli("match", "--models", setup / "models", corrupt, faces[0]) == 2
    assert f"{corrupt}: cannot be read as audio" in capsys.readouterr().err
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(blank)
    assert _cli("match", "--models", setup / "models", voices[0], blank) == 2
    assert f"{blank}: no face found" in capsys.readouterr().err
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    assert _cli("compare", "--models", setup / "models", voices[0], faces[0], broken) == 2
    assert f"{broken}: cannot be read as an image" in capsys.readouterr().err
    hiss = tmp_path / "hiss.wav"
    sf.write(hiss, 1e-3 * np.random.default_rng(0).standard_normal(2 * SAMPLE_RATE), SAMPLE_RATE)
    assert _cli("match", "--models", setup / "models", hiss, faces[0], "--trim-silence") == 2
    assert f"{hiss}: no speech found" in capsys.readouterr().err
    assert _cli("match", "--models", tmp_path, voices[0], faces[0]) == 2
    assert "no extractors/ folder" in capsys.readouterr().err
    csv = setup / "population" / "faces" / "out.csv"
    assert _cli("rank", "--models", setup / "models", "--voice", voices[0], "--faces", setup / "population" / "faces", "--csv", csv) == 2
    assert "never modified" in capsys.readouterr().err and not csv.exists()


def test_voice_activity_trimming_and_loudness(tiny_population):
    clip = np.asarray(tiny_population.audio(1), dtype=np.float32)
    rng = np.random.default_rng(0)
    quiet = 1e-3 * rng.standard_normal(SAMPLE_RATE).astype(np.float32)  # 1 s of faint noise
    padded = np.concatenate([quiet, clip, quiet])
    notes = []
    trimmed = trim_silence(padded, SAMPLE_RATE, name="padded", notes=notes)
    assert len(clip) * 0.7 < len(trimmed) < len(clip) + 0.3 * SAMPLE_RATE and "trimmed to speech" in notes[0]
    with pytest.raises(NoSpeechError, match="noise: no speech"):
        trim_silence(np.concatenate([quiet, quiet]), SAMPLE_RATE, name="noise")
    louder = normalize_loudness(clip, SAMPLE_RATE, target_lufs=-20.0)
    assert loudness_lufs(louder, SAMPLE_RATE) == pytest.approx(-20.0, abs=0.5) or np.max(np.abs(louder)) == pytest.approx(0.99)


def test_front_end_conversions_are_noted(tmp_path, caplog):
    rng = np.random.default_rng(1)
    with pytest.raises(ValueError, match="no sample rate"):
        conform_voice(rng.standard_normal(1000), None)
    wave = 0.1 * rng.standard_normal((4410, 2)).astype(np.float32)
    path = tmp_path / "stereo.flac"
    sf.write(path, wave, 44100)
    with caplog.at_level("INFO", logger="vfmatch.data.media"):
        voice = load_voice(path, min_seconds=0.05)
    assert voice.sample_rate == 44100 and voice.channels == 2 and voice.wave.shape == (1600,)
    assert len(voice.notes) == 2 and all(n in caplog.text for n in voice.notes)
    mp3 = tmp_path / "voice.mp3"
    sf.write(mp3, np.stack([wave[:, 0]] * 2, axis=1), 44100, format="MP3")  # MP3 reads through libsndfile too
    assert load_voice(mp3, min_seconds=0.05).wave.shape[0] == pytest.approx(1600, abs=400)
    for mode in ("L", "RGBA", "P", "I;16"):
        img = Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).convert("RGBA" if mode == "RGBA" else "RGB")
        img = img.convert(mode) if mode != "I;16" else Image.fromarray(rng.integers(0, 60000, (40, 50), dtype=np.uint16))
        file = tmp_path / f"img_{mode.replace(';', '')}.png"
        img.save(file)
        notes = []
        arr = read_image(file, notes=notes)
        assert arr.shape == (40, 50, 3) and arr.dtype == np.uint8 and f"mode {mode!r}" in notes[0]


def test_load_population_uses_the_same_front_end(setup):
    from vfmatch import load_population

    pop = load_population(setup / "population", loudness=-23.0)
    levels = [loudness_lufs(np.asarray(pop.audio(i), dtype=np.float32)) for i in range(3)]
    assert np.allclose(levels, -23.0, atol=0.5)


def test_exported_faces_keep_their_listed_landmarks(setup, tiny_population):
    _, faces = _files(setup)
    face = load_face(faces[0], canvas=False)
    assert not face.detected and face.image.shape == np.asarray(tiny_population.faces[0]["image"]).shape
    assert np.allclose(face.landmarks, np.asarray(tiny_population.faces[0]["landmarks"]), atol=1e-3)
    on_canvas = load_face(faces[0])
    assert on_canvas.image.shape == (224, 224, 3)


@pytest.mark.slow
def test_readme_flow_vfmatch_run_then_match_rank_compare(tmp_path, capsys):
    """As the README has it: `vfmatch run`, `vfmatch population`, then the three commands on the exported files."""
    report, people = tmp_path / "vfmatch_report", tmp_path / "my_population"
    assert _cli("run", "--quick", "--extractors", "fast", "--out", report, "--no-progress") == 0
    assert _cli("population", "--identities", 3, "--seed", 7, "--out", people) == 0
    capsys.readouterr()
    before = _snapshot(people, report / "models")
    voice, face_a, face_b = (people / "voices/sim00000/sim00000_v00.wav", people / "faces/sim00000/sim00000_f00.png",
                             people / "faces/sim00001/sim00001_f00.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error", SimulatorModelWarning)
        assert _cli("match", "--models", report / "models", voice, face_a, "--json") == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["trained_on_simulator"] is True and len(doc["explanation"]) >= 2
        assert _cli("rank", "--models", report / "models", "--voice", voice, "--faces", people / "faces", "--top", 5) == 0
        assert "sim0000" in capsys.readouterr().out
        assert _cli("rank", "--models", report / "models", "--face", face_a, "--voices", people / "voices") == 0
        assert _cli("compare", "--models", report / "models", voice, face_a, face_b, "--json") == 0
    out = capsys.readouterr().out
    assert 0 < json.loads(out[out.index("{"):])["p_a_rather_than_b"] < 1
    assert _snapshot(people, report / "models") == before
