"""Encoders: the registry, voice and face encoders, Hub models from tiny offline configs."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from vfmatch.features import (
    HubDownloadError,
    create_encoder,
    create_face_encoder,
    create_voice_encoder,
    individual_typology_angle,
    list_encoders,
    rgb_to_lab,
    skin_patches,
    validate_images,
)

SR = 16_000


def clips(n=4, seconds=0.6, seed=0):
    """Harmonic tones with a little noise: voiced, non-silent clips of varied pitch."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        t = np.arange(int(seconds * SR)) / SR
        f0 = 100 + 40 * i
        x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))
        out.append((0.2 * x + 0.01 * rng.normal(size=t.size)).astype(np.float32))
    return out


def faces(n=4, size=48, seed=0):
    """Images with a face-like disc of skin colour on a grey background, and their landmarks."""
    rng = np.random.default_rng(seed)
    imgs = np.full((n, size, size, 3), 120, np.uint8)
    yy, xx = np.mgrid[0:size, 0:size]
    skin = np.array([[240, 200, 170], [200, 150, 110], [140, 95, 65], [90, 60, 40]])
    for i in range(n):
        disc = (xx - size / 2) ** 2 + (yy - size / 2) ** 2 < (0.38 * size) ** 2
        imgs[i][disc] = skin[i % len(skin)]
        imgs[i] = np.clip(imgs[i] + rng.integers(-5, 6, imgs[i].shape), 0, 255)
    lm = np.array([[0.38, 0.42], [0.62, 0.42], [0.5, 0.55], [0.41, 0.68], [0.59, 0.68]]) * size
    return imgs, np.repeat(lm[None], n, axis=0).astype(np.float32)


# ------------------------------------------------------------------------ registry
def test_registry_lists_and_creates():
    names = list_encoders()
    for n in ("logmel", "logmel-stats", "f0-formants", "speaker-cnn", "pixels", "thumbnail", "ita", "face-cnn"):
        assert n in names
    assert any(n.startswith("hf:") for n in list_encoders("voice"))
    assert any(n.startswith("timm:") for n in list_encoders("face"))
    enc = create_voice_encoder("logmel-stats", n_mels=32)
    assert enc.config() == {"modality": "voice", "name": "logmel-stats", "kwargs": enc.kwargs}
    again = create_encoder(**{k: v for k, v in enc.config().items() if k != "kwargs"}, **enc.config()["kwargs"])
    assert again.fingerprint() == enc.fingerprint()


def test_registry_errors():
    with pytest.raises(KeyError, match="unknown voice encoder"):
        create_voice_encoder("no-such-encoder")
    with pytest.raises(ValueError, match="modality"):
        create_encoder("smell", "logmel")
    with pytest.raises(KeyError):
        create_face_encoder("logmel-stats")  # a voice encoder is not a face encoder


# --------------------------------------------------------------------------- voice
def test_logmel_stats_shape_and_loudness_invariance():
    enc = create_voice_encoder("logmel-stats", n_mels=32)
    c = clips()
    a = enc.encode(c)
    b = enc.encode([0.3 * x for x in c])
    assert a.shape == (4, 4 * 32) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_allclose(a, b, atol=1e-3)  # only the loudness changed


def test_logmel_matrix_and_f0_formants():
    spec = create_voice_encoder("logmel").encode(clips(2))
    assert isinstance(spec, list) and spec[0].shape[0] == 64
    stats = create_voice_encoder("f0-formants").encode(clips(2))
    assert stats.shape == (2, 19)
    assert stats[1, 0] > stats[0, 0]  # the second clip has the higher pitch


def test_concatenated_encoder():
    enc = create_voice_encoder("f0-formants+logmel-stats", n_mels=16)
    assert enc.dim == 19 + 4 * 16
    assert enc.encode(clips(2)).shape == (2, enc.dim)
    with pytest.raises(ValueError, match="vector"):
        create_voice_encoder("logmel+logmel-stats")


@pytest.mark.parametrize(
    "bad, message",
    [
        ([], "no clips"),
        ([np.zeros(8000, np.float32)], "silent"),
        ([np.full(8000, np.nan, np.float32)], "NaN"),
        ([np.ones((2, 8000), np.float32)], "mono"),
        (np.ones(8000, np.float32), "list of clips"),
    ],
)
def test_voice_encoders_reject_bad_input(bad, message):
    with pytest.raises(ValueError, match=message):
        create_voice_encoder("logmel-stats").encode(bad)


def test_speaker_cnn_trains_and_encodes():
    enc = create_voice_encoder("speaker-cnn", embed_dim=16, channels=(4, 8), crop_frames=32, epochs=2, batch_size=4)
    c = clips(6, seconds=0.5)
    with pytest.raises(RuntimeError, match="not fitted"):
        enc.encode(c)
    enc.fit(c, ["a", "a", "b", "b", "c", "c"])
    emb = enc.encode(c)
    assert emb.shape == (6, 16) and np.isfinite(emb).all()
    before = enc.fingerprint()
    enc2 = create_voice_encoder("speaker-cnn", embed_dim=16, channels=(4, 8), crop_frames=32, epochs=2, batch_size=4)
    enc2.fit(c, ["a", "a", "b", "b", "c", "c"])
    np.testing.assert_allclose(enc2.encode(c), emb, atol=1e-5)  # seeded: the same training gives the same net
    assert enc2.fingerprint() == before


# ---------------------------------------------------------------------------- faces
def test_validate_images():
    imgs, _ = faces(2)
    assert validate_images(imgs).shape == imgs.shape
    assert validate_images(imgs[0]).shape == (1, *imgs.shape[1:])
    assert validate_images(imgs.astype(np.float32) / 255).dtype == np.uint8
    for bad, message in [
        (np.zeros((0, 8, 8, 3), np.uint8), "empty"),
        (imgs[..., 0], "RGB"),
        (np.full((1, 8, 8, 3), np.nan, np.float32), "NaN"),
        (np.full((1, 8, 8, 3), 3.0, np.float32), r"\[0, 1\]"),
        (np.full((1, 8, 8, 3), 7, np.uint8), "blank"),
        ([], "no images"),
    ]:
        with pytest.raises(ValueError, match=message):
            validate_images(bad)


def test_face_vector_and_matrix_encoders():
    imgs, lm = faces(4)
    thumb = create_face_encoder("thumbnail", size=8)
    assert thumb.encode(imgs, landmarks=lm).shape == (4, 3 * 8 * 8)
    pix = create_face_encoder("pixels", size=32).encode(imgs, landmarks=lm)
    assert pix.shape == (4, 3, 32, 32) and 0 <= pix.min() and pix.max() <= 1
    assert create_face_encoder("pixels", size=16, align=False).encode(imgs).shape == (4, 3, 16, 16)
    with pytest.raises(ValueError, match="landmarks"):
        thumb.encode(imgs, landmarks=lm[:2])


def test_lab_and_ita():
    lab = rgb_to_lab(np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]))
    np.testing.assert_allclose(lab[0], [100, 0, 0], atol=0.05)
    np.testing.assert_allclose(lab[1], [0, 0, 0], atol=0.05)
    light, dark = rgb_to_lab(np.array([[0.94, 0.82, 0.75], [0.35, 0.23, 0.16]]))
    assert individual_typology_angle(light) > 41 > -30 > individual_typology_angle(dark)


def test_ita_encoder_orders_skin_tones():
    imgs, lm = faces(4)
    enc = create_face_encoder("ita")
    feats = enc.encode(imgs, landmarks=lm)
    assert feats.shape == (4, len(enc.feature_names))
    ita = feats[:, 0]
    assert np.all(np.diff(ita) < 0)  # lightest to darkest skin
    np.testing.assert_allclose(enc.encode(imgs)[:, 0], ita, atol=3)  # default landmarks: a centred face
    masks = skin_patches(lm[0], imgs.shape[1:3])
    assert set(masks) == {"forehead", "left_cheek", "right_cheek", "nose_bridge"} and all(m.any() for m in masks.values())


def test_face_cnn_trains():
    imgs, lm = faces(6)
    enc = create_face_encoder("face-cnn", embed_dim=8, size=16, channels=(4, 8), epochs=2, batch_size=3)
    enc.fit(imgs, ["a", "a", "b", "b", "c", "c"], landmarks=lm)
    assert enc.encode(imgs, landmarks=lm).shape == (6, 8)


# ------------------------------------------------------- Hub models, built offline
def test_timm_backbones_from_names():
    imgs, lm = faces(2, size=40)
    cnn = create_face_encoder("timm:resnet18", pretrained=False)
    assert cnn.saves_weights and cnn.encode(imgs, landmarks=lm).shape == (2, 512)
    vit = create_face_encoder("timm:vit_tiny_patch16_224", pretrained=False, img_size=32)
    assert vit.encode(imgs).shape == (2, 192)
    with pytest.raises(KeyError, match="unknown timm model"):
        create_face_encoder("timm:no_such_model", pretrained=False)


@pytest.fixture(scope="module")
def tiny_hub(tmp_path_factory):
    """Tiny randomly initialised transformers models saved like Hub checkpoints."""
    transformers = pytest.importorskip("transformers")
    root = tmp_path_factory.mktemp("hub")
    w2v = dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, conv_dim=(16, 16, 16),
        conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, vocab_size=10,
    )
    torch.manual_seed(0)
    transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**w2v)).save_pretrained(root / "speech")
    fe = transformers.Wav2Vec2FeatureExtractor(sampling_rate=16000, return_attention_mask=True)
    fe.save_pretrained(root / "speech")
    cls_cfg = transformers.Wav2Vec2Config(**w2v, id2label={0: "male", 1: "female"}, label2id={"male": 0, "female": 1})
    cls_cfg.architectures = ["Wav2Vec2ForSequenceClassification"]
    transformers.Wav2Vec2ForSequenceClassification(cls_cfg).save_pretrained(root / "speech-gender")
    fe.save_pretrained(root / "speech-gender")
    vit = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, image_size=32, patch_size=8)
    transformers.ViTModel(transformers.ViTConfig(**vit)).save_pretrained(root / "image")
    icfg = transformers.ViTConfig(**vit, id2label={0: "male", 1: "female"}, label2id={"male": 0, "female": 1})
    icfg.architectures = ["ViTForImageClassification"]
    transformers.ViTForImageClassification(icfg).save_pretrained(root / "image-gender")
    return root


def test_hf_speech_model_hidden_states(tiny_hub):
    enc = create_voice_encoder(f"hf:{tiny_hub / 'speech'}")
    assert enc.head == "hidden" and enc.dim == 32
    c = clips(3, seconds=0.4)
    emb = enc.encode(c, batch_size=2)
    assert emb.shape == (3, 32) and np.isfinite(emb).all()
    # Padding in a batch does not change a clip's pooled embedding much.
    alone = enc.encode(c[:1])
    np.testing.assert_allclose(emb[0], alone[0], atol=1e-3)


def test_hf_audio_classifier_gives_distributions(tiny_hub):
    enc = create_voice_encoder(f"hf:{tiny_hub / 'speech-gender'}")
    assert enc.head == "classifier" and enc.labels == ["male", "female"]
    p = enc.encode(clips(2))
    np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-5)


def test_hf_image_models(tiny_hub):
    imgs, lm = faces(2, size=40)
    enc = create_face_encoder(f"hf-image:{tiny_hub / 'image'}")
    assert enc.head == "hidden" and enc.encode(imgs, landmarks=lm).shape == (2, 32)
    cls = create_face_encoder(f"hf-image:{tiny_hub / 'image-gender'}")
    assert cls.labels == ["male", "female"]
    np.testing.assert_allclose(cls.encode(imgs).sum(axis=1), 1, atol=1e-5)


def test_hub_id_without_network_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(HubDownloadError, match="download"):
        create_voice_encoder("hf:some-org/some-speech-model-that-is-not-cached")
    with pytest.raises(HubDownloadError, match="download"):
        create_face_encoder("hf-image:some-org/some-image-model-that-is-not-cached")
    assert time.perf_counter() - t0 < 10
    with pytest.raises(FileNotFoundError):
        create_voice_encoder("hf:./no/such/folder")


# ---------------------------------------------------------- widget logic (chapters 2-3)
def test_mel_widget_logic():
    from vfmatch.widgets.encoders import build_mel_widget, mel_figure, mel_resolution, pitch_formant_figure

    res = mel_resolution(n_fft=400, hop_ms=10)
    assert res["window_ms"] == 25 and res["frames_per_second"] == 100 and res["fft_bin_hz"] == 40
    assert res["mel_band_hz_high"] > res["mel_band_hz_low"]  # Mel bands widen with frequency
    with pytest.raises(ValueError):
        mel_resolution(f_min=9000)
    wave = clips(1, seconds=0.5)[0]
    fig = mel_figure(wave, n_mels=32, hop_ms=5)
    heat = fig.data[1]
    assert np.asarray(heat.z).shape == (32, 1 + 8000 // 80)
    with pytest.raises(ValueError, match="silent"):
        mel_figure(np.zeros(8000, np.float32))
    with pytest.raises(ValueError, match="longer than the clip"):
        mel_figure(wave[:500], n_fft=800)
    assert len(pitch_formant_figure(wave).data) == 4  # F0 and three formants
    pytest.importorskip("ipywidgets")
    box = build_mel_widget(wave)
    assert len(box.children) == 3 and box.children[2].outputs  # the figure is drawn at once


def test_embedding_helpers():
    import pandas as pd

    from vfmatch.widgets.encoders import embedding_figure, embedding_projection, nearest_neighbour_accuracy

    rng = np.random.default_rng(0)
    centres = rng.normal(scale=5, size=(5, 8))
    X = np.repeat(centres, 4, axis=0) + rng.normal(size=(20, 8))
    speakers = np.repeat(np.arange(5), 4)
    assert nearest_neighbour_accuracy(X, speakers) > 0.9
    assert nearest_neighbour_accuracy(rng.normal(size=(20, 8)), speakers) < 0.6
    assert embedding_projection(X).shape == (20, 2)
    with pytest.raises(ValueError, match="method"):
        embedding_projection(X, "umap")
    table = pd.DataFrame({"speaker_id": speakers.astype(str), "gender": ["male", "female"] * 10})
    assert len(embedding_figure(X, table, "gender").data) == 2


def test_face_widget_logic():
    from vfmatch.widgets.encoders import aligned_faces_figure, ita_figure

    imgs, lm = faces(3)
    assert aligned_faces_figure(imgs, lm, size=16).data
    fig = ita_figure(imgs[0], lm[0])
    assert "ITA" in fig.layout.title.text and "forehead" in fig.layout.title.text


def test_hub_and_timm_models_inside_extractors(tiny_hub, tiny_population, tmp_path):
    from vfmatch.extractors.extractor import MetapropertyExtractor

    # A ready-made (here: tiny, random) audio gender classifier, its classes mapped to the values.
    ready = MetapropertyExtractor("gender", "voice", encoder=f"hf:{tiny_hub / 'speech-gender'}", calculator="labels").fit(tiny_population)
    p = ready.predict_proba(tiny_population)
    np.testing.assert_allclose(p.sum(axis=1), 1)
    # Pooled hidden states of a speech model, with a classical calculator on top.
    pooled = MetapropertyExtractor("age", "voice", encoder=f"hf:{tiny_hub / 'speech'}", calculator="knn").fit(tiny_population)
    assert pooled.predict_proba(tiny_population).shape == (tiny_population.voices.num_rows, 9)
    # A timm backbone by name; random weights are saved with the extractor and come back.
    face = MetapropertyExtractor("gender", "face", encoder="timm:resnet18", encoder_kwargs={"pretrained": False, "img_size": 32},
                                 calculator="logistic").fit(tiny_population)
    loaded = MetapropertyExtractor.load(face.save(tmp_path / "timm"))
    assert (tmp_path / "timm" / "encoder.safetensors").exists()
    np.testing.assert_allclose(loaded.predict_proba(tiny_population), face.predict_proba(tiny_population), atol=1e-5)
