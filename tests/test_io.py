"""Files in, files out (vfmatch.data.export, vfmatch.data.load and the `vfmatch population`
command): export, the readers, and every kind of bad input.

All fixtures are tiny files written into tmp_path; nothing touches the network."""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

from vfmatch.data.export import export_population
from vfmatch.data.layout import LANDMARK_COLUMNS
from vfmatch.data.load import SkippedInputWarning, load_population
from vfmatch.job import population_command
from vfmatch.data.population import IDENTITY_COLUMNS

SR = 16_000


# ------------------------------------------------------------------ helpers
def tree_hash(root: Path) -> dict[str, str]:
    """sha1 of every file under root, by relative path."""
    return {p.relative_to(root).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def tone(seconds=1.0, freq=220.0, amp=0.3, sr=SR, channels=1):
    t = np.arange(int(seconds * sr)) / sr
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return x if channels == 1 else np.stack([x, 0.5 * x], axis=1)


def write_wav(path: Path, wave, sr=SR, subtype="PCM_16"):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wave, sr, subtype=subtype, format="WAV")


def write_image(path: Path, arr, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr, dtype=np.uint8), mode=mode).save(path)


def rgb(size=48, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


SPEAKERS = {"s1": ("m", 31), "s2": ("f", 45), "s3": ("f", 22)}


def make_folder(root: Path) -> Path:
    """An audiofolder + imagefolder pair in voices/ and faces/, 3 speakers x 2 clips x 2 faces."""
    v_rows, f_rows = [], []
    for i, (sid, (g, age)) in enumerate(SPEAKERS.items()):
        for k in range(2):
            write_wav(root / "voices" / sid / f"c{k}.wav", tone(1.0, 150 + 40 * i + 5 * k))
            v_rows.append({"file_name": f"{sid}/c{k}.wav", "speaker_id": sid, "gender": g, "age": age})
            write_image(root / "faces" / sid / f"f{k}.png", rgb(48, seed=10 * i + k))
            f_rows.append({"file_name": f"{sid}/f{k}.png", "speaker_id": sid, "gender": g, "age": age, "yaw": 5.0 * k})
    pd.DataFrame(v_rows).to_csv(root / "voices" / "metadata.csv", index=False)
    pd.DataFrame(f_rows).to_csv(root / "faces" / "metadata.csv", index=False)
    return root


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path / "data")


@pytest.fixture(scope="module")
def sim_population():
    from vfmatch import make_population

    return make_population(6, seed=7, clips_per_identity=2, faces_per_identity=2, clip_seconds=(1.0, 1.2), image_size=64)


def run_cli(argv):
    """`vfmatch population ARGV` in this process (the console script calls the same function)."""
    from vfmatch.cli import main

    return main(["population", *argv])


# ------------------------------------------------------------------ export
def test_cli_export_is_deterministic_and_seed_dependent(tmp_path, monkeypatch):
    common = ["--identities", "6", "--clips", "1", "--faces", "1", "--image-size", "64"]
    outs = {}
    for name, seed in (("A", 7), ("B", 7), ("C", 8)):
        # A fresh cache each time: the second run simulates again rather than reusing the first.
        monkeypatch.setenv("VFMATCH_CACHE", str(tmp_path / f"cache_{name}"))
        assert run_cli([*common, "--seed", str(seed), "--out", str(tmp_path / name)]) == 0
        outs[name] = tree_hash(tmp_path / name)
    assert outs["A"] == outs["B"]
    assert outs["A"].keys() == outs["C"].keys()
    assert outs["A"]["identities.csv"] != outs["C"]["identities.csv"]
    changed = [k for k in outs["A"] if outs["A"][k] != outs["C"][k]]
    assert any(k.endswith(".wav") for k in changed) and any(k.endswith(".png") for k in changed)


def test_cli_refuses_non_empty_folder(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert run_cli(["--identities", "4", "--out", str(out)]) == 2
    assert f"vfmatch population: error: {out}: folder is not empty" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"
    with pytest.raises(ValueError, match=re.escape(f"{out}: folder is not empty")):  # the function itself raises
        population_command.main(argparse.Namespace(out=str(out), overwrite=False))


def test_export_layout_columns_and_files(sim_population, tmp_path):
    out = export_population(sim_population, tmp_path / "pop")
    assert {p.name for p in out.iterdir()} == {"README.md", "info.json", "identities.csv", "voices", "faces"}
    required = ["speaker_id", "file_name", *IDENTITY_COLUMNS[1:]]
    voices = pd.read_csv(out / "voices" / "metadata.csv", dtype={"speaker_id": str})
    faces = pd.read_csv(out / "faces" / "metadata.csv", dtype={"speaker_id": str})
    ids = pd.read_csv(out / "identities.csv", dtype={"speaker_id": str})
    for table in (voices, faces):
        assert set(required) <= set(table.columns)
        assert table[list(required)].notna().all().all()
    assert set(LANDMARK_COLUMNS) | {"yaw", "pitch", "roll", "eyes_closed", "mouth_open"} <= set(faces.columns)
    assert list(ids.columns[: len(IDENTITY_COLUMNS)]) == list(IDENTITY_COLUMNS)
    assert len(voices) == sim_population.voices.num_rows and len(faces) == sim_population.faces.num_rows
    for name in voices["file_name"]:
        info = sf.info(str(out / "voices" / name))
        assert (info.samplerate, info.channels, info.subtype, info.format) == (SR, 1, "PCM_16", "WAV")
    for name in faces["file_name"]:
        with Image.open(out / "faces" / name) as im:
            assert im.mode == "RGB" and im.size == (64, 64)
            assert "tIME" not in im.info and not im.text  # no timestamp, no text chunk
    info = json.loads((out / "info.json").read_text())
    assert info["params"]["seed"] == 7 and "seconds_to_simulate" not in info
    assert "load_population" in (out / "README.md").read_text()


def test_export_round_trip(sim_population, tmp_path):
    out = export_population(sim_population, tmp_path / "pop")
    before = tree_hash(out)
    back = load_population(out)
    assert tree_hash(out) == before
    a, b = sim_population.identities, back.identities
    assert b["speaker_id"].tolist() == a["speaker_id"].tolist()
    for col in IDENTITY_COLUMNS[1:]:
        if pd.api.types.is_numeric_dtype(a[col]):
            np.testing.assert_allclose(b[col].to_numpy(float), a[col].to_numpy(float), rtol=1e-6)
        else:
            assert b[col].tolist() == a[col].tolist()
    for col in ("voice_latent", "face_latent"):
        np.testing.assert_array_equal(np.stack(b[col]), np.stack(a[col]))
    assert back.voices["clip_id"] == sim_population.voices["clip_id"]
    assert back.faces["face_id"] == sim_population.faces["face_id"]
    for i in range(back.voices.num_rows):
        x, y = sim_population.audio(i), back.audio(i)
        assert x.shape == y.shape
        assert np.abs(x - y).max() <= 0.5 / 32768 + 1e-7  # 16-bit PCM rounding only
    np.testing.assert_array_equal(back.images(), sim_population.images())
    np.testing.assert_allclose(np.asarray(back.faces["landmarks"]), np.asarray(sim_population.faces["landmarks"]), rtol=1e-6)
    for col in ("yaw", "pitch", "roll", "duration_s") if "duration_s" in back.voices.column_names else ("yaw", "pitch", "roll"):
        ds_a = sim_population.faces if col in sim_population.faces.column_names else sim_population.voices
        ds_b = back.faces if col in back.faces.column_names else back.voices
        np.testing.assert_allclose(ds_b[col], ds_a[col], rtol=1e-6)
    assert back.faces["eyes_closed"] == sim_population.faces["eyes_closed"]
    # Exporting what was read gives the same bytes again.
    again = tree_hash(export_population(back, tmp_path / "again"))
    assert again.pop("info.json") != before.pop("info.json")  # which now records where it was read from
    assert again == before


def test_export_folder_is_an_imagefolder(sim_population, tmp_path):
    import datasets

    out = export_population(sim_population, tmp_path / "pop")
    ds = datasets.load_dataset("imagefolder", data_dir=str(out / "faces"), split="train", cache_dir=str(tmp_path / "hf"))
    assert ds.num_rows == sim_population.faces.num_rows
    assert {"image", "speaker_id", "gender", "lm_x0"} <= set(ds.column_names)


def test_export_overwrite_rules(sim_population, tmp_path):
    out = export_population(sim_population, tmp_path / "pop")
    with pytest.raises(ValueError, match=re.escape(f"{out}: folder is not empty")):
        export_population(sim_population, out)
    export_population(sim_population, out, overwrite=True)
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not part of an exported population"):
        export_population(sim_population, out, overwrite=True)
    assert (out / "mine.txt").read_text() == "keep me"


# ------------------------------------------------------------------ readers
def test_audiofolder_imagefolder_pair_and_folder(folder):
    before = tree_hash(folder)
    for source in (folder, (folder / "voices", folder / "faces")):
        pop = load_population(source)
        assert pop.speaker_ids == ["s1", "s2", "s3"]
        assert pop.identities["gender"].tolist() == ["male", "female", "female"]  # m/f normalised
        assert pop.identities["age"].tolist() == [31, 45, 22]
        assert pd.isna(pop.identities["ethnicity"]).all()  # unknown, not invented
        assert pop.voices.num_rows == 6 and pop.faces.num_rows == 6
        assert pop.voices["clip_id"][:2] == ["s1/c0", "s1/c1"]
        np.testing.assert_allclose(pop.audio(0), tone(1.0, 150), atol=1 / 32768)
        np.testing.assert_array_equal(pop.image(1), rgb(48, seed=1))
        assert pop.faces["yaw"][:2] == [0.0, 5.0]
    assert tree_hash(folder) == before


def test_audiofolder_with_split_subfolders(tmp_path):
    root = tmp_path / "hf"
    for split, sids in (("train", ["a", "b"]), ("test", ["c"])):
        rows_v, rows_f = [], []
        for sid in sids:
            write_wav(root / "voices" / split / f"{sid}.wav", tone(1.0))
            write_image(root / "faces" / split / f"{sid}.png", rgb(40))
            rows_v.append({"file_name": f"{sid}.wav", "speaker_id": sid})
            rows_f.append({"file_name": f"{sid}.png", "speaker_id": sid})
        pd.DataFrame(rows_v).to_csv(root / "voices" / split / "metadata.csv", index=False)
        pd.DataFrame(rows_f).to_csv(root / "faces" / split / "metadata.csv", index=False)
    pop = load_population(root)
    assert dict(zip(pop.speaker_ids, pop.identities["split"])) == {"a": "train", "b": "train", "c": "test"}
    assert load_population(root, split="test").speaker_ids == ["c"]
    assert pop.split().test.speaker_ids == ["c"]


def test_columns_rename(folder):
    meta = folder / "voices" / "metadata.csv"
    df = pd.read_csv(meta).rename(columns={"speaker_id": "client_id"})
    df.to_csv(meta, index=False)
    df = pd.read_csv(folder / "faces" / "metadata.csv").rename(columns={"speaker_id": "client_id"})
    df.to_csv(folder / "faces" / "metadata.csv", index=False)
    pop = load_population(folder, columns={"client_id": "speaker_id"})
    assert pop.speaker_ids == ["s1", "s2", "s3"]


def make_voxceleb(root: Path, *, tab_meta=True) -> Path:
    """A VoxCeleb1 + VGGFace1 style root with made-up identities."""
    people = [("id90001", "Person_One", "m", "Ireland", "dev"), ("id90002", "Person_Two", "f", "India", "test")]
    if tab_meta:
        lines = ["VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet"] + ["\t".join(p) for p in people]
        (root / "vox1_meta.csv").parent.mkdir(parents=True, exist_ok=True)
        (root / "vox1_meta.csv").write_text("\n".join(lines) + "\n")
    for vid, name, *_ in people:
        for yt in ("abcDEF123_x", "zz9"):
            write_wav(root / "wav" / vid / yt / "00001.wav", tone(1.0, 200))
        write_image(root / "images" / name / "00000001.jpg", rgb(48))
        write_image(root / "images" / name / "00000002.jpg", rgb(48, seed=3))
    return root


def test_voxceleb_meta_tab_separated(tmp_path):
    root = make_voxceleb(tmp_path / "vox")
    before = tree_hash(root)
    pop = load_population(root)
    assert pop.speaker_ids == ["id90001", "id90002"]
    ids = pop.identities
    assert ids["gender"].tolist() == ["male", "female"]
    assert ids["nationality"].tolist() == ["Ireland", "India"]
    assert pd.isna(ids["ethnicity"]).all()  # nationality is kept as metadata, never mapped to ethnicity
    assert ids["vggface1_id"].tolist() == ["Person_One", "Person_Two"]
    assert ids["vox1_set"].tolist() == ["dev", "test"]
    assert "split" not in ids
    assert pop.voices["clip_id"][:2] == ["id90001/abcDEF123_x/00001", "id90001/zz9/00001"]
    assert pop.faces["face_id"][:1] == ["Person_One/00000001"]
    assert tree_hash(root) == before
    # Re-exported, VoxCeleb paths become file names without the speaker prefix.
    out = export_population(pop, tmp_path / "out")
    assert (out / "voices" / "id90001" / "abcDEF123_x__00001.wav").exists()
    assert load_population(out).voices["clip_id"] == pop.voices["clip_id"]


def test_voxceleb_sss_lists_with_splits(tmp_path):
    root = make_voxceleb(tmp_path / "vox", tab_meta=False)
    header = "VoxCeleb1_ID,VGGFace1_ID,Gender,Nationality,Set\n"
    (root / "vox1_train.csv").write_text(header + "id90001,Person_One,m,Ireland,dev\n")
    with gzip.open(root / "vox1_test.csv.gz", "wt") as fh:
        fh.write(header + "id90002,Person_Two,f,India,test\n")
    pop = load_population(root)
    assert dict(zip(pop.speaker_ids, pop.identities["split"])) == {"id90001": "train", "id90002": "test"}
    only = load_population(root, meta=[root / "vox1_test.csv.gz"])
    assert only.speaker_ids == ["id90002"]
    assert load_population(root / "vox1_train.csv").speaker_ids == ["id90001"]
    assert load_population(root, split="test").speaker_ids == ["id90002"]


def test_voxceleb_missing_meta_column(tmp_path):
    root = make_voxceleb(tmp_path / "vox")
    meta = root / "vox1_meta.csv"
    meta.write_text("VoxCeleb1 ID\tVGGFace1 ID\tNationality\tSet\nid90001\tPerson_One\tIreland\tdev\n")
    with pytest.raises(ValueError, match=re.escape(f"{meta}: missing column(s) ['gender']")):
        load_population(root)


def make_parquet_dataset(root: Path) -> Path:
    """A local Hub-style dataset: Parquet with Audio and Image columns (as load_dataset reads from the Hub)."""
    import datasets

    def wav_bytes(freq):
        b = io.BytesIO()
        sf.write(b, tone(1.0, freq), SR, format="WAV", subtype="PCM_16")
        return b.getvalue()

    def png_bytes(seed):
        b = io.BytesIO()
        Image.fromarray(rgb(40, seed)).save(b, format="PNG")
        return b.getvalue()

    rows = {
        "speaker_id": ["p1", "p1", "p2"],
        "gender": ["female", "female", "male"],
        "audio": [{"bytes": wav_bytes(f), "path": f"{i}.wav"} for i, f in enumerate((200, 210, 120))],
        "image": [{"bytes": png_bytes(s), "path": f"{s}.png"} for s in (1, 2, 3)],
    }
    ds = datasets.Dataset.from_dict(rows).cast_column("audio", datasets.Audio(decode=False)).cast_column("image", datasets.Image(decode=False))
    (root / "data").mkdir(parents=True)
    ds.to_parquet(str(root / "data" / "train-00000-of-00001.parquet"))
    return root


def test_hub_dataset_through_load_dataset(tmp_path):
    root = make_parquet_dataset(tmp_path / "hubdata")
    before = tree_hash(root)
    pop = load_population(str(root), load_kwargs={"cache_dir": str(tmp_path / "hf")})  # auto: Parquet -> load_dataset
    assert pop.speaker_ids == ["p1", "p2"]
    assert pop.voices.num_rows == 3 and pop.faces.num_rows == 3
    assert pop.identities["split"].tolist() == ["train", "train"]
    np.testing.assert_allclose(pop.audio(2), tone(1.0, 120), atol=1 / 32768)
    np.testing.assert_array_equal(pop.image(0), rgb(40, 1))
    assert tree_hash(root) == before


def test_missing_hub_id_offline_is_a_clear_error():
    with pytest.raises(ValueError, match=re.escape("nobody-vfmatch/no-such-dataset: not a local folder vfmatch reads")):
        load_population("nobody-vfmatch/no-such-dataset")


def test_missing_local_path():
    with pytest.raises(FileNotFoundError, match=re.escape("./no/such/folder: no such file or folder")):
        load_population("./no/such/folder")


def test_saved_population_loads(sim_population, tmp_path):
    path = sim_population.save_to_disk(tmp_path / "arrow")
    assert load_population(path).speaker_ids == sim_population.speaker_ids
    with pytest.raises(ValueError, match="already decoded"):
        load_population(path, align_faces=True)


# ---------------------------------------------------------------- bad input
def _rewrite(path: Path, drop_speaker=None, drop_column=None):
    df = pd.read_csv(path, dtype=str)
    if drop_speaker:
        df = df[df["speaker_id"] != drop_speaker]
    if drop_column:
        df = df.drop(columns=[drop_column])
    df.to_csv(path, index=False)


# name -> (mutate(root) -> path named in the message, exception, message after "<path>: ", kind counted when skipping)
BAD_INPUTS = {
    "unreadable audio": (lambda r: _write_bytes(r / "voices/s2/c1.wav", b"this is not a wav file"), ValueError, "cannot read audio", "unreadable audio"),
    "empty audio": (lambda r: _wav(r / "voices/s2/c1.wav", np.zeros(0, np.float32)), ValueError, "empty audio (0 samples)", "empty audio"),
    "silent audio": (lambda r: _wav(r / "voices/s2/c1.wav", np.zeros(SR, np.float32)), ValueError, "silent audio (peak amplitude 0", "silent audio"),
    "NaN audio": (lambda r: _wav(r / "voices/s2/c1.wav", np.full(SR, np.nan, np.float32), subtype="FLOAT"), ValueError, "audio contains NaN or infinite samples", "NaN audio"),
    "stereo audio": (lambda r: _wav(r / "voices/s2/c1.wav", tone(1.0, channels=2)), ValueError, "2 channels; expected mono (pass mix_down=True", "multi-channel audio"),
    "missing audio file": (lambda r: _unlink(r / "voices/s2/c1.wav"), FileNotFoundError, "file not found (listed in", "missing file"),
    "unreadable image": (lambda r: _write_bytes(r / "faces/s2/f1.png", b"\x89PNG broken"), ValueError, "cannot read image", "unreadable image"),
    "grayscale image": (lambda r: _img(r / "faces/s2/f1.png", rgb(48)[..., 0], "L"), ValueError, "grayscale image (mode 'L'); expected RGB (pass convert_rgb=True", "grayscale image"),
    "RGBA image": (lambda r: _img(r / "faces/s2/f1.png", np.dstack([rgb(48), np.full((48, 48), 200, np.uint8)]), "RGBA"), ValueError, "image has an alpha channel (mode 'RGBA')", "RGBA image"),
    "tiny image": (lambda r: _img(r / "faces/s2/f1.png", rgb(16)), ValueError, "image is 16x16 pixels, smaller than the 32-pixel minimum", "tiny image"),
}


def _write_bytes(path, data):
    path.write_bytes(data)
    return path


def _wav(path, wave, subtype="PCM_16"):
    write_wav(path, wave, subtype=subtype)
    return path


def _img(path, arr, mode=None):
    write_image(path, arr, mode)
    return path


def _unlink(path):
    path.unlink()
    return path


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_file_raises_naming_file_or_is_skipped(folder, name):
    mutate, exc, message, kind = BAD_INPUTS[name]
    bad_path = mutate(folder)
    before = tree_hash(folder)
    with pytest.raises(exc, match=re.escape(f"{bad_path}: {message}")):
        load_population(folder)
    with pytest.warns(SkippedInputWarning, match=re.escape(f"skipped 1 (skip_bad=True) -- {kind}: 1")):
        pop = load_population(folder, skip_bad=True)
    assert pop.info["skipped"] == {kind: 1}
    modality = pop.voices if "voices" in str(bad_path) else pop.faces
    assert modality.num_rows == 5 and len(pop) == 3
    assert tree_hash(folder) == before  # the user's files are never modified


def test_other_sample_rate_is_resampled_or_refused(folder):
    path = folder / "voices/s1/c0.wav"
    write_wav(path, tone(1.0, 300, sr=8000), sr=8000)
    pop = load_population(folder)
    x = pop.audio(0)
    assert x.shape == (SR,)
    spectrum = np.abs(np.fft.rfft(x))
    assert abs(np.argmax(spectrum) * SR / len(x) - 300) <= 1.0  # still a 300 Hz tone
    with pytest.raises(ValueError, match=re.escape(f"{path}: sample rate 8000 Hz; expected 16000 Hz (pass resample=True")):
        load_population(folder, resample=False)


def test_stereo_mixed_down_on_request(folder):
    path = folder / "voices/s1/c0.wav"
    stereo = tone(1.0, channels=2)
    write_wav(path, stereo)
    pop = load_population(folder, mix_down=True)
    np.testing.assert_allclose(pop.audio(0), stereo.mean(axis=1), atol=1 / 32768)


def test_grayscale_and_rgba_converted_on_request(folder):
    _img(folder / "faces/s1/f0.png", rgb(48)[..., 0], "L")
    _img(folder / "faces/s1/f1.png", np.dstack([rgb(48, 5), np.zeros((48, 48), np.uint8)]), "RGBA")
    pop = load_population(folder, convert_rgb=True)
    np.testing.assert_array_equal(pop.image(0), np.repeat(rgb(48)[..., :1], 3, axis=2))
    np.testing.assert_array_equal(pop.image(1), rgb(48, 5))


def test_missing_metadata_column(folder):
    csv = folder / "faces" / "metadata.csv"
    _rewrite(csv, drop_column="speaker_id")
    with pytest.raises(ValueError, match=re.escape(f"{csv}: missing column(s) ['speaker_id']; found ['file_name', ")):
        load_population(folder)
    with pytest.raises(ValueError, match=re.escape(f"{csv}: missing column(s) ['speaker_id']")):
        load_population(folder, skip_bad=True)  # a broken table is never skipped silently


def test_empty_metadata_file(folder):
    csv = folder / "voices" / "metadata.csv"
    csv.write_text("")
    with pytest.raises(ValueError, match=re.escape(f"{csv}: empty file")):
        load_population(folder)


@pytest.mark.parametrize("modality,what", [("voices", "voice clips"), ("faces", "faces")])
def test_identity_without_clips_or_faces(folder, modality, what):
    _rewrite(folder / modality / "metadata.csv", drop_speaker="s3")
    with pytest.raises(ValueError, match=re.escape(f"{folder}: 1 identity has no {what}: ['s3']")):
        load_population(folder)
    with pytest.warns(SkippedInputWarning, match=re.escape(f"identity with no {what}: 1")):
        pop = load_population(folder, skip_bad=True)
    assert pop.speaker_ids == ["s1", "s2"]


def test_every_clip_of_an_identity_bad(folder):
    for k in range(2):
        _wav(folder / f"voices/s3/c{k}.wav", np.zeros(SR, np.float32))
    with pytest.warns(SkippedInputWarning) as record:
        pop = load_population(folder, skip_bad=True)
    assert pop.speaker_ids == ["s1", "s2"]
    assert pop.info["skipped"] == {"silent audio": 2, "identity with no voice clips": 1}
    assert "identity with no voice clips: 1; silent audio: 2" in str(record[0].message)


def test_identities_csv_is_authoritative(folder):
    pd.DataFrame({"speaker_id": ["s1", "s2"], "gender": ["male", "female"]}).to_csv(folder / "identities.csv", index=False)
    csv = folder / "voices" / "metadata.csv"
    with pytest.raises(ValueError, match=re.escape(f"{csv}: speaker_id 's3'")):
        load_population(folder)
    with pytest.warns(SkippedInputWarning, match="item of a speaker not in identities.csv: 4"):
        pop = load_population(folder, skip_bad=True)
    assert pop.speaker_ids == ["s1", "s2"]


def test_conflicting_identity_values(folder):
    csv = folder / "voices" / "metadata.csv"
    df = pd.read_csv(csv)
    df.loc[1, "gender"] = "f"
    df.to_csv(csv, index=False)
    with pytest.raises(ValueError, match=re.escape(f"{csv}: speaker 's1' has conflicting gender values 'm' and 'f'")):
        load_population(folder)


def test_cached_load_sees_changed_files_and_replays_warnings(folder):
    load_population(folder)
    _wav(folder / "voices/s2/c1.wav", np.zeros(SR, np.float32))
    with pytest.raises(ValueError, match="silent audio"):
        load_population(folder)
    for _ in range(2):  # the second load comes from the Arrow cache and must warn the same
        with pytest.warns(SkippedInputWarning, match="silent audio: 1"):
            pop = load_population(folder, skip_bad=True)
        assert pop.voices.num_rows == 5


@pytest.mark.slow
def test_issue_command_40_identities_twice_identical(tmp_path, monkeypatch):
    """The issue's check: `vfmatch population --identities 40 --seed 7 --out A` twice gives identical files."""
    for name in ("A", "B"):
        monkeypatch.setenv("VFMATCH_CACHE", str(tmp_path / f"cache_{name}"))
        assert run_cli(["--identities", "40", "--seed", "7", "--out", str(tmp_path / name)]) == 0
    a = tree_hash(tmp_path / "A")
    assert a == tree_hash(tmp_path / "B")
    assert len([k for k in a if k.endswith(".wav")]) == 160 and len([k for k in a if k.endswith(".png")]) == 160
    pop = load_population(tmp_path / "A")  # every file loads
    assert len(pop) == 40 and pop.voices.num_rows == 160 and pop.faces.num_rows == 160
    assert tree_hash(tmp_path / "A") == a


def test_jsonl_metadata_and_literal_na_speaker(folder):
    csv = folder / "faces" / "metadata.csv"
    pd.read_csv(csv).to_json(folder / "faces" / "metadata.jsonl", orient="records", lines=True)
    csv.unlink()
    pop = load_population(folder)
    assert pop.faces.num_rows == 6 and pop.faces["yaw"][:2] == [0.0, 5.0]
    # "NA" is a name, not a missing value.
    voices = folder / "voices" / "metadata.csv"
    df = pd.read_csv(voices, dtype=str)
    df.loc[df["speaker_id"] == "s1", "speaker_id"] = "NA"
    df.to_csv(voices, index=False)
    with pytest.raises(ValueError, match=re.escape("1 identity has no voice clips: ['s1']")):
        load_population(folder)  # and not "line 2 has no speaker_id"
    with pytest.warns(SkippedInputWarning):
        pop = load_population(folder, skip_bad=True)
    assert pop.info["skipped"] == {"identity with no faces": 1, "identity with no voice clips": 1}
    assert pop.speaker_ids == ["s2", "s3"]


def test_load_cache_notices_edited_decoding_code(folder, monkeypatch):
    """Decoded rows are cached by the decoding code too: an edited decoder decodes afresh."""
    from vfmatch.data import load as load_module

    first = load_population(folder)
    decode = load_module._decode_audio

    def half_level(item, opts):
        return [0.5 * wave for wave in decode(item, opts)]

    half_level.__module__ = "vfmatch.data.decode"  # as if edited in decode.py
    monkeypatch.setattr(load_module, "_decode_audio", half_level)
    np.testing.assert_allclose(load_population(folder).audio(0), 0.5 * first.audio(0), atol=1e-7)
    monkeypatch.undo()
    np.testing.assert_array_equal(load_population(folder).audio(0), first.audio(0))
