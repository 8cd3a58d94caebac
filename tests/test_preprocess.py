"""Pre-processing from paper 001 (vfmatch.data.preprocess) and its use by load_population."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from PIL import Image

from vfmatch.data import SkippedInputWarning, export_population, load_population
from vfmatch.data.audio_checks import WaveformError, validate_waveform
from vfmatch.data.preprocess import (
    ARCFACE_TEMPLATE,
    AlignFaces,
    Resample,
    SegmentAudio,
    align_face,
    face_quality,
    resample,
    segment_audio,
    similarity_transform,
    transform_landmarks,
)

SR = 16_000


# -------------------------------------------------------------------- audio
@pytest.mark.parametrize(
    "seconds,expected",
    [(2.0, []), (3.0, [3.0]), (9.5, [9.5]), (10.0, [10.0]), (25.0, [25 / 3] * 3), (31.0, [31 / 4] * 4)],
)
def test_segment_audio_lengths(seconds, expected):
    x = np.arange(int(seconds * SR), dtype=np.float32)
    segs = segment_audio(x, SR, 3, 10)
    assert [len(s) for s in segs] == [int(seconds * SR) // len(expected)] * len(expected) if expected else segs == []
    for s in segs:
        assert 3 * SR <= len(s) <= 10 * SR
    if segs:  # consecutive pieces of the clip
        np.testing.assert_array_equal(np.concatenate(segs), x[: sum(len(s) for s in segs)])


def test_segment_audio_when_max_below_twice_min():
    segs = segment_audio(np.zeros(11 * SR), SR, 4, 6)  # two 5.5 s pieces
    assert [len(s) / SR for s in segs] == [5.5, 5.5]
    segs = segment_audio(np.zeros(int(6.5 * SR)), SR, 4, 6)  # one 4 s piece fits, two 3.25 s would not
    assert [len(s) / SR for s in segs] == [4.0]
    with pytest.raises(ValueError, match="0 < min_s <= max_s"):
        segment_audio(np.zeros(SR), SR, 5, 3)
    with pytest.raises(ValueError, match=re.escape("mono audio of shape (n_samples,), got shape (2, 16000)")):
        segment_audio(np.zeros((2, SR)), SR)


def test_segment_module_matches_function():
    x = np.random.default_rng(0).normal(size=23 * SR).astype(np.float32)
    out = SegmentAudio(SR)(torch.from_numpy(x))
    ref = np.stack(segment_audio(x, SR))
    assert out.shape == ref.shape == (3, 23 * SR // 3)
    np.testing.assert_array_equal(out.numpy(), ref)
    assert SegmentAudio(SR)(torch.zeros(SR)).shape == (0, 0)


def test_resample_keeps_frequency_and_module_agrees():
    sr_in = 44_100
    t = np.arange(sr_in) / sr_in
    x = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    y = resample(x, sr_in, SR)
    assert y.shape == (SR,) and y.dtype == np.float32
    assert abs(np.argmax(np.abs(np.fft.rfft(y))) - 440) <= 1  # 1 s long: bin k is k Hz
    np.testing.assert_allclose(Resample(sr_in, SR)(torch.from_numpy(x)).numpy(), y, atol=1e-6)
    np.testing.assert_array_equal(resample(x, SR, SR), x)
    with pytest.raises(ValueError, match="sample rates must be positive"):
        resample(x, 0, SR)


def test_validate_waveform_minimum_is_25_ms_at_the_clips_rate():
    tone = np.sin(np.arange(1000) / 5.0).astype(np.float32)
    assert validate_waveform(tone[:400]).shape == (400,)  # 25 ms at the default 16 kHz
    with pytest.raises(WaveformError, match=re.escape("clip 1: audio too short, 399 samples (24.9 ms at 16000 Hz); need at least 400")):
        validate_waveform(tone[:399], name="clip 1")
    assert validate_waveform(tone[:200], sample_rate=8000).shape == (200,)  # 25 ms at 8 kHz
    with pytest.raises(WaveformError, match=re.escape("(22.7 ms at 44100 Hz); need at least 1102")):
        validate_waveform(np.tile(tone, 2)[:1000], sample_rate=44_100)
    assert validate_waveform(tone[:10], min_samples=10).shape == (10,)
    with pytest.raises(WaveformError) as err:
        validate_waveform(np.zeros(SR, np.float32))
    assert err.value.kind == "silent audio" and isinstance(err.value, ValueError)
    with pytest.raises(ValueError, match="sample_rate must be a positive"):
        validate_waveform(tone, sample_rate=0)


def test_loader_checks_length_at_the_files_rate(tmp_path):
    """A 20 ms file at 8 kHz is too short; the message names the file and its rate."""
    root = tmp_path / "data"
    rows_v, rows_f = [], []
    for k, sid in enumerate(("a", "b")):
        (root / "voices" / sid).mkdir(parents=True)
        (root / "faces" / sid).mkdir(parents=True)
        sf.write(root / "voices" / sid / "c.wav", (0.3 * np.sin(np.arange(8000) / 3.0)).astype(np.float32), 8000)
        Image.fromarray(np.full((40, 40, 3), 100 + k, np.uint8)).save(root / "faces" / sid / "f.png")
        rows_v.append({"file_name": f"{sid}/c.wav", "speaker_id": sid})
        rows_f.append({"file_name": f"{sid}/f.png", "speaker_id": sid})
    short = root / "voices" / "b" / "short.wav"
    sf.write(short, (0.3 * np.sin(np.arange(160) / 3.0)).astype(np.float32), 8000)
    rows_v.append({"file_name": "b/short.wav", "speaker_id": "b"})
    pd.DataFrame(rows_v).to_csv(root / "voices" / "metadata.csv", index=False)
    pd.DataFrame(rows_f).to_csv(root / "faces" / "metadata.csv", index=False)
    with pytest.raises(ValueError, match=re.escape(f"{short}: audio too short, 160 samples (20.0 ms at 8000 Hz); need at least 200")):
        load_population(root)
    with pytest.warns(SkippedInputWarning, match=re.escape("audio too short: 1")):
        pop = load_population(root, skip_bad=True)
    assert pop.voices.num_rows == 2 and pop.audio(0).shape == (SR,)  # the 1 s clips, resampled to 16 kHz


# -------------------------------------------------------------------- faces
def test_face_quality_rules():
    meta = pd.DataFrame(
        {
            "yaw": [0.0, 20.0, -16.0, np.nan, 5.0, 0.0, 15.0],
            "pitch": [0.0, 0.0, 0.0, 0.0, 0.0, -30.0, 0.0],
            "eyes_closed": [False, False, False, False, True, False, None],
            "mouth_open": [False, False, False, False, False, False, "false"],
        }
    )
    np.testing.assert_array_equal(face_quality(meta), [True, False, False, True, False, False, True])
    np.testing.assert_array_equal(face_quality(meta, max_angle=25), [True, True, True, True, False, False, True])
    assert face_quality({"roll": [1.0, 40.0]}).tolist() == [True, False]
    assert face_quality(pd.DataFrame({"other": [1, 2]})).tolist() == [True, True]  # nothing known: keep


def test_similarity_transform_recovers_a_known_one():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, (5, 2))
    a = np.deg2rad(25.0)
    sR = 1.7 * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    dst = src @ sR.T + [12.0, -4.0]
    M = similarity_transform(src, dst)
    np.testing.assert_allclose(M[:, :2], sR, atol=1e-9)
    np.testing.assert_allclose(M[:, 2], [12.0, -4.0], atol=1e-9)
    np.testing.assert_allclose(transform_landmarks(src, M), dst, atol=1e-9)
    # A mirror image is not a similarity: the fit must not reflect.
    mirrored = src * [-1, 1]
    assert np.linalg.det(similarity_transform(src, mirrored)[:, :2]) > 0
    with pytest.raises(ValueError, match="NaN"):
        similarity_transform(np.full((5, 2), np.nan), dst)


def dots_image(landmarks, shape=(200, 160)):
    img = np.zeros((*shape, 3), np.uint8)
    for x, y in np.round(landmarks).astype(int):
        img[y - 1 : y + 2, x - 1 : x + 2] = 255
    return img


def centroids(img, points, r=4):
    out = []
    for x, y in points:
        xi, yi = int(round(x)), int(round(y))
        w = img[yi - r : yi + r + 1, xi - r : xi + r + 1, 0].astype(float)
        yy, xx = np.mgrid[yi - r : yi + r + 1, xi - r : xi + r + 1]
        out.append(((w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()))
    return np.array(out)


@pytest.mark.parametrize("size", [112, 64])
def test_align_face_puts_landmarks_on_the_template(size):
    a = np.deg2rad(-18.0)
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    lm = np.round((ARCFACE_TEMPLATE - 56) @ R.T * 1.4 + [80, 95])
    out, moved = align_face(dots_image(lm), lm, size=size, return_landmarks=True)
    assert out.shape == (size, size, 3) and out.dtype == np.uint8
    target = ARCFACE_TEMPLATE * size / 112
    np.testing.assert_allclose(moved, target, atol=0.5)  # landmarks rounded to whole pixels
    np.testing.assert_allclose(centroids(out, target, r=max(2, size // 28)), target, atol=0.6)


def test_align_faces_module_matches_pil():
    lm = np.round((ARCFACE_TEMPLATE - 56) * 1.2 + [75, 90])
    img = dots_image(lm) + np.random.default_rng(0).integers(0, 50, (200, 160, 3), dtype=np.uint8)
    ref = align_face(img, lm, size=112).astype(np.float32)
    batch = torch.from_numpy(np.stack([img, img])).permute(0, 3, 1, 2).float()
    out = AlignFaces(112)(batch, torch.tensor(np.stack([lm, lm]), dtype=torch.float32))
    assert out.shape == (2, 3, 112, 112)
    got = out[0].permute(1, 2, 0).numpy()
    assert np.abs(got - ref).mean() < 1.0  # same warp; PIL rounds to uint8


# ------------------------------------------------------ through load_population
@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from vfmatch import make_population

    pop = make_population(6, seed=3, clips_per_identity=1, faces_per_identity=3, clip_seconds=(1.0, 1.2), image_size=64)
    return pop, export_population(pop, tmp_path_factory.mktemp("pre") / "pop")


def test_load_with_alignment_and_resize(exported):
    pop, folder = exported
    aligned = load_population(folder, align_faces=True, image_size=112)
    assert aligned.images().shape == (pop.faces.num_rows, 112, 112, 3)
    lm = np.asarray(aligned.faces["landmarks"])
    # After alignment the landmarks sit near the template (exactly, up to the fit's residual).
    assert np.abs(lm - ARCFACE_TEMPLATE).mean() < 3.0
    resized = load_population(folder, image_size=32)
    assert resized.images().shape == (pop.faces.num_rows, 32, 32, 3)
    np.testing.assert_allclose(np.asarray(resized.faces["landmarks"]), (np.asarray(pop.faces["landmarks"]) + 0.5) * 0.5 - 0.5, atol=1e-4)


def test_align_needs_landmarks(tmp_path):
    root = tmp_path / "d"
    for sub in ("voices", "faces"):
        (root / sub / "a").mkdir(parents=True)
    sf.write(str(root / "voices/a/0.wav"), 0.1 * np.ones(SR, np.float32), SR)
    Image.fromarray(np.full((40, 40, 3), 9, np.uint8)).save(root / "faces/a/0.png")
    pd.DataFrame({"file_name": ["a/0.wav"], "speaker_id": ["a"]}).to_csv(root / "voices/metadata.csv", index=False)
    pd.DataFrame({"file_name": ["a/0.png"], "speaker_id": ["a"]}).to_csv(root / "faces/metadata.csv", index=False)
    with pytest.raises(ValueError, match=re.escape(f"{root / 'faces/a/0.png'}: no landmarks, cannot align")):
        load_population(root, align_faces=True)


def test_load_with_quality_filter(exported):
    pop, folder = exported
    keep = face_quality(pop.faces.select_columns(["yaw", "pitch", "roll", "eyes_closed", "mouth_open"]))
    assert 0 < (~keep).sum() < len(keep)  # this seed has faces on both sides of the filter
    n_bad = int((~keep).sum())
    with pytest.warns(UserWarning, match=f"filter_faces dropped {n_bad} of {len(keep)} faces"):
        filtered = load_population(folder, filter_faces=True)
    assert filtered.faces["face_id"] == np.asarray(pop.faces["face_id"])[keep].tolist()
    assert filtered.info["low_quality_faces_dropped"] == n_bad


def test_load_with_segments(tmp_path):
    root = tmp_path / "d"
    for sub in ("voices", "faces"):
        (root / sub / "a").mkdir(parents=True)
    rng = np.random.default_rng(0)
    sf.write(str(root / "voices/a/long.wav"), (0.1 * rng.normal(size=25 * SR)).astype(np.float32), SR)
    sf.write(str(root / "voices/a/short.wav"), (0.1 * rng.normal(size=2 * SR)).astype(np.float32), SR)
    Image.fromarray(np.full((40, 40, 3), 9, np.uint8)).save(root / "faces/a/0.png")
    pd.DataFrame({"file_name": ["a/long.wav", "a/short.wav"], "speaker_id": ["a", "a"]}).to_csv(root / "voices/metadata.csv", index=False)
    pd.DataFrame({"file_name": ["a/0.png"], "speaker_id": ["a"]}).to_csv(root / "faces/metadata.csv", index=False)
    with pytest.raises(ValueError, match=re.escape(f"{root / 'voices/a/short.wav'}: 2.00 s long, shorter than the 3 s minimum segment")):
        load_population(root, segment_seconds=(3, 10))
    with pytest.warns(SkippedInputWarning, match="audio too short: 1"):
        pop = load_population(root, segment_seconds=(3, 10), skip_bad=True)
    assert pop.voices["clip_id"] == ["a/long_seg0", "a/long_seg1", "a/long_seg2"]
    assert pop.voices["source_clip"] == ["a/long"] * 3
    assert [len(a) for a in pop.audios()] == [25 * SR // 3] * 3
