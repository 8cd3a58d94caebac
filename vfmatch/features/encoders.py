"""Encoders: from a voice clip or a face image to a representation.

The patent's voice encoder 240 and image encoder 250 (FIG. 2A/2B) turn a raw
sample into a *representation*: a vector (an embedding, a latent vector, a few
measured statistics) or a matrix (a Mel spectrogram, an image). A calculator
(:mod:`vfmatch.extractors`) then maps the representation to a metaproperty's
distribution.

As in timm, encoders live in a registry and are made by name::

    enc = create_voice_encoder("logmel-stats")          # fast, nothing to train
    enc = create_voice_encoder("speaker-cnn", epochs=10) # trained on speaker ids
    enc = create_voice_encoder("hf:microsoft/wavlm-base-plus")   # a Hub model
    enc = create_face_encoder("timm:resnet18", pretrained=True)  # any timm model
    enc = create_face_encoder("hf-image:nateraw/vit-age-classifier")
    enc = create_voice_encoder("f0-formants+logmel-stats")       # concatenated
    list_encoders()

========================  ======  ========  =================================================
name                      input   output    what it is
========================  ======  ========  =================================================
``logmel``                voice   matrix    log-Mel spectrogram (n_mels, n_frames) per clip
``logmel-stats``          voice   vector    mean/std of log-Mel bands and of their deltas
``f0-formants``           voice   vector    pitch, voicing, formant and rhythm statistics
``speaker-cnn``           voice   vector    small CNN trained to tell training speakers apart
``hf:<id or folder>``     voice   vector    transformers speech model: pooled hidden states,
                                            or class probabilities of an audio classifier
``pixels``                face    matrix    the (aligned) image, (3, size, size)
``thumbnail``             face    vector    a small aligned image, flattened, plus colour stats
``ita``                   face    vector    skin colour in CIELAB and the Individual Typology Angle
``colours``               face    vector    colour of hair, irises, lips and chin in CIELAB
``face-cnn``              face    vector    small CNN trained to tell training identities apart
``timm:<model name>``     face    vector    any timm backbone's pooled features
``hf-image:<id>``         face    vector    transformers image model: pooled features, or
                                            class probabilities of an image classifier
========================  ======  ========  =================================================

Every encoder is a :class:`torch.nn.Module` with ``fit(items, speakers)``
(a no-op unless ``trainable``), ``encode(items) -> array`` and ``config()``
(JSON: enough to make it again). Voice items are lists of 16 kHz mono float32
arrays; face items are uint8 arrays (n, H, W, 3) with optional five-point
landmarks (n, 5, 2).

Hub models are downloaded by transformers/timm. Without a network the Hub id
fails fast with :class:`HubDownloadError` instead of hanging; a local folder
(``save_pretrained``) loads through the same names.

Book chapters: ``book/02_voice_encoders.ipynb``, ``book/03_face_encoders.ipynb``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, ClassVar, Sequence

import numpy as np
import torch
from torch import nn

from .audio import LogMelSpectrogram, log_mel_batch, time_windows, validate_waveform, voice_statistics, VOICE_STAT_NAMES
from ..config import default_device
from ..utils import batches, code_fingerprint, limit_threads, progress as progress_bar

__all__ = [
    "Encoder",
    "HubDownloadError",
    "register_encoder",
    "create_encoder",
    "create_voice_encoder",
    "create_face_encoder",
    "list_encoders",
    "validate_images",
    "images_to_tensor",
    "skin_patches",
    "rgb_to_lab",
    "individual_typology_angle",
]


class HubDownloadError(OSError):
    """A Hub model was asked for that is neither a local folder nor cached, and cannot be downloaded."""


# ---------------------------------------------------------------------------
# Base class and registry
# ---------------------------------------------------------------------------


class Encoder(nn.Module):
    """Base class: a representation of voice clips or face images.

    Subclasses set ``modality`` ("voice" or "face"), ``output`` ("vector": one
    array (n, dim); "matrix": a spectrogram/image per item) and ``trainable``,
    store their keyword arguments in ``self.kwargs`` and implement ``_encode``.
    """

    modality: ClassVar[str] = "voice"
    output: ClassVar[str] = "vector"
    trainable: ClassVar[bool] = False

    def __init__(self, name: str, **kwargs):
        super().__init__()
        self.name = name
        self.kwargs = kwargs
        self.is_fitted = not self.trainable
        self._fingerprint: str | None = None

    # -- what every encoder offers ------------------------------------------
    @property
    def saves_weights(self) -> bool:
        """True when the encoder's weights must be saved with it (trained or randomly initialised)."""
        return self.trainable

    def config(self) -> dict:
        """``{"name": ..., "kwargs": ...}``: ``create_encoder(modality, **config)`` makes it again."""
        return {"modality": self.modality, "name": self.name, "kwargs": dict(self.kwargs)}

    def fit(self, items, speakers: Sequence[str], *, progress: bool = False) -> "Encoder":
        """Train on items labelled by speaker (no-op for fixed encoders)."""
        self.is_fitted = True
        self._fingerprint = None
        return self

    def encode(self, items, *, landmarks=None, batch_size: int = 32, progress: bool = False):
        """Representations of ``items``.

        Returns
        -------
        ``output == "vector"``: float32 array (n, dim);
        ``output == "matrix"``: a list of float32 arrays (voices: (n_mels, n_frames_i))
        or one array (n, C, H, W) (faces).
        """
        if not self.is_fitted:
            raise RuntimeError(f"encoder {self.name!r} is trainable and not fitted yet; call fit(items, speakers) first")
        if self.modality == "voice":
            if landmarks is not None:
                raise ValueError("voice encoders take no landmarks")
            if isinstance(items, np.ndarray) and items.ndim == 1 or isinstance(items, torch.Tensor) and items.ndim == 1:
                raise ValueError(f"{self.name}: expected a list of clips; wrap a single clip as [clip]")
            if len(items) == 0:
                raise ValueError(f"{self.name}: no clips to encode")
            items = [validate_waveform(w, name=f"clip {i}").numpy() for i, w in enumerate(items)]
            with limit_threads():
                return self._encode(items, batch_size=batch_size, progress=progress)
        images = validate_images(items)
        lm = _check_landmarks(landmarks, len(images))
        with limit_threads():
            return self._encode(images, landmarks=lm, batch_size=batch_size, progress=progress)

    def _encode(self, items, *, landmarks=None, batch_size: int = 32, progress: bool = False):
        raise NotImplementedError

    def fingerprint(self) -> str:
        """A hash of the configuration, the weights and the class's source code
        (:func:`vfmatch.utils.code_fingerprint`): the key of cached features."""
        if self._fingerprint is None:
            h = hashlib.sha1(f"{type(self).__qualname__}:{code_fingerprint(self)}".encode())
            h.update(json.dumps(self.config(), sort_keys=True, default=str).encode())
            for key, value in sorted(self.state_dict().items()):
                h.update(key.encode())
                h.update(value.detach().cpu().contiguous().numpy().tobytes())
            self._fingerprint = h.hexdigest()[:20]
        return self._fingerprint

    def extra_repr(self) -> str:
        return f"name={self.name!r}, output={self.output!r}"


_REGISTRY: dict[str, dict[str, type[Encoder]]] = {"voice": {}, "face": {}}
_PREFIXES: dict[str, dict[str, type[Encoder]]] = {"voice": {}, "face": {}}


def register_encoder(name: str, *, prefix: bool = False) -> Callable[[type[Encoder]], type[Encoder]]:
    """Class decorator: register an encoder under ``name`` for its ``modality``.

    With ``prefix=True`` the name is a prefix such as ``"hf:"``: the rest of the
    requested name is passed to the class as its first argument."""

    def wrap(cls: type[Encoder]) -> type[Encoder]:
        (_PREFIXES if prefix else _REGISTRY)[cls.modality][name] = cls
        return cls

    return wrap


def create_encoder(modality: str, name: str, **kwargs) -> Encoder:
    """Make the encoder registered as ``name`` for ``modality`` ("voice" or "face").

    ``"a+b"`` concatenates the vectors of encoders ``a`` and ``b`` (keyword
    arguments go to every part that accepts them)."""
    if modality not in _REGISTRY:
        raise ValueError(f"modality must be 'voice' or 'face', not {modality!r}")
    if not isinstance(name, str) or not name:
        raise ValueError(f"encoder name must be a non-empty string, got {name!r}")
    for prefix, cls in _PREFIXES[modality].items():
        if name.startswith(prefix):
            return cls(name[len(prefix) :], **kwargs)
    if "+" in name:
        return ConcatEncoder(modality, name, **kwargs)
    if name not in _REGISTRY[modality]:
        raise KeyError(f"unknown {modality} encoder {name!r}; choose from {list_encoders(modality)}")
    return _REGISTRY[modality][name](**kwargs)


def create_voice_encoder(name: str = "logmel-stats", **kwargs) -> Encoder:
    """Make a voice encoder by name (see the module docstring)."""
    return create_encoder("voice", name, **kwargs)


def create_face_encoder(name: str = "thumbnail", **kwargs) -> Encoder:
    """Make a face encoder by name (see the module docstring)."""
    return create_encoder("face", name, **kwargs)


def list_encoders(modality: str | None = None) -> list[str]:
    """Registered encoder names; prefixes are shown as ``"hf:<id>"``."""
    mods = [modality] if modality else ["voice", "face"]
    out = []
    for m in mods:
        out += list(_REGISTRY[m]) + [f"{p}<{'id' if 'hf' in p else 'model name'}>" for p in _PREFIXES[m]]
    return out


# ---------------------------------------------------------------------------
# Voice encoders
# ---------------------------------------------------------------------------


class _LogMelMixin:
    """Shared log-Mel front-end settings (see :class:`vfmatch.audio.LogMelSpectrogram`)."""

    def _make_frontend(self, n_mels: int, n_fft: int, hop_length: int, f_min: float, f_max: float):
        return LogMelSpectrogram(n_mels=n_mels, n_fft=n_fft, hop_length=hop_length, f_min=f_min, f_max=f_max)


@register_encoder("logmel")
class LogMelEncoder(_LogMelMixin, Encoder):
    """The log-Mel spectrogram of each clip: a list of (n_mels, n_frames) arrays in dB.

    The "latent matrix in the form of a Mel spectrogram" that the patent feeds
    to a vision transformer for the voice skin-tone metaproperty."""

    output = "matrix"

    def __init__(self, n_mels: int = 64, n_fft: int = 400, hop_length: int = 160, f_min: float = 50.0, f_max: float = 8000.0):
        super().__init__("logmel", n_mels=n_mels, n_fft=n_fft, hop_length=hop_length, f_min=f_min, f_max=f_max)
        self.frontend = self._make_frontend(n_mels, n_fft, hop_length, f_min, f_max)

    def _encode(self, items, *, landmarks=None, batch_size=32, progress=False):
        out = []
        for sl in progress_bar(batches(len(items), batch_size), progress, "log-Mel", None):
            out += log_mel_batch(items[sl], self.frontend, batch_size=batch_size, validate=False)
        return out


@register_encoder("logmel-stats")
class LogMelStatsEncoder(_LogMelMixin, Encoder):
    """Mean and standard deviation over time of each log-Mel band and of its delta.

    A classic, training-free utterance descriptor: ``4 * n_mels`` numbers. The
    per-band means carry the long-term spectrum (formants, tilt); the deltas
    carry how fast it moves (speaking rate, articulation). The mean over all
    bands is removed from the band means so the clip's loudness does not count."""

    def __init__(self, n_mels: int = 64, n_fft: int = 400, hop_length: int = 160, f_min: float = 50.0, f_max: float = 8000.0):
        super().__init__("logmel-stats", n_mels=n_mels, n_fft=n_fft, hop_length=hop_length, f_min=f_min, f_max=f_max)
        self.frontend = self._make_frontend(n_mels, n_fft, hop_length, f_min, f_max)

    @property
    def dim(self) -> int:
        return 4 * self.kwargs["n_mels"]

    def _encode(self, items, *, landmarks=None, batch_size=32, progress=False):
        import torchaudio

        rows = []
        for sl in progress_bar(batches(len(items), batch_size), progress, "log-Mel stats", None):
            for spec in log_mel_batch(items[sl], self.frontend, batch_size=batch_size, validate=False):
                s = torch.as_tensor(spec)
                # Frames more than 50 dB below the clip's loudest are pauses/noise floor.
                frame_level = s.max(dim=0).values
                keep = frame_level > frame_level.max() - 50
                s = s[:, keep] if keep.sum() >= 3 else s
                d = torchaudio.functional.compute_deltas(s[None])[0]
                mean = s.mean(dim=1)
                rows.append(torch.cat([mean - mean.mean(), s.std(dim=1), d.mean(dim=1), d.std(dim=1)]).numpy())
        return np.stack(rows).astype(np.float32)


@register_encoder("f0-formants")
class VoiceStatsEncoder(Encoder):
    """Nineteen measured statistics per clip (:func:`vfmatch.audio.voice_statistics`):
    pitch in semitones, voicing, formants F1-F3, spectral centroid and slope,
    syllable-rate rhythm. NaN marks what could not be measured; calculators
    impute it."""

    def __init__(self):
        super().__init__("f0-formants")

    dim = len(VOICE_STAT_NAMES)
    feature_names = VOICE_STAT_NAMES

    def _encode(self, items, *, landmarks=None, batch_size=32, progress=False):
        rows = [voice_statistics(w) for w in progress_bar(items, progress, "F0/formants", len(items))]
        return np.stack(rows).astype(np.float32)


class _SpeakerNet(nn.Module):
    """Conv blocks over (1, n_mels, frames), then statistics pooling over time."""

    def __init__(self, n_mels: int, channels: Sequence[int], embed_dim: int):
        super().__init__()
        layers, c_in = [], 1
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c_in = c
        self.conv = nn.Sequential(*layers)
        freq_out = n_mels // (2 ** len(channels))
        self.embed = nn.Linear(2 * c_in * freq_out, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, n_mels, T) -> (B, embed_dim)
        h = self.conv(x[:, None])
        h = h.flatten(1, 2)  # (B, C * F, T')
        return self.embed(torch.cat([h.mean(dim=2), h.std(dim=2)], dim=1))


class _FaceNet(nn.Module):
    """Conv blocks over (3, size, size), then global average pooling."""

    def __init__(self, channels: Sequence[int], embed_dim: int):
        super().__init__()
        layers, c_in = [], 3
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c_in = c
        self.conv = nn.Sequential(*layers)
        self.embed = nn.Linear(c_in, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.conv(x).mean(dim=(2, 3)))


def _train_identity_net(net: nn.Module, dim: int, sample_batch: Callable, speakers, *, epochs, batch_size, lr, seed, device, progress, desc):
    """Train ``net`` + a linear head to classify training identities (cross-entropy).

    ``sample_batch(indices, generator) -> tensor`` draws one augmented input per
    item. Only the net is kept: its output is the embedding."""
    with limit_threads():
        _train_loop(net, dim, sample_batch, speakers, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device, progress=progress, desc=desc)


def _train_loop(net, dim, sample_batch, speakers, *, epochs, batch_size, lr, seed, device, progress, desc):
    speakers = np.asarray(speakers).astype(str)
    _, y = np.unique(speakers, return_inverse=True)
    n_classes = int(y.max()) + 1
    if n_classes < 2:
        raise ValueError(f"{desc}: need clips from at least two speakers to train, got {n_classes}")
    torch.manual_seed(seed)
    gen = np.random.default_rng(seed)
    for m in net.modules():  # re-initialise so fit() depends only on the seed
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    head = nn.Linear(dim, n_classes)
    net.to(device).train()
    head.to(device)
    opt = torch.optim.AdamW(list(net.parameters()) + list(head.parameters()), lr=lr, weight_decay=1e-3)
    steps = epochs * int(np.ceil(len(y) / batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1))
    y_t = torch.as_tensor(y)
    for _ in progress_bar(range(epochs), progress, desc, epochs):
        order = gen.permutation(len(y))
        for sl in batches(len(order), batch_size):
            idx = order[sl]
            if len(idx) < 2:
                continue
            x = sample_batch(idx, gen).to(device)
            loss = nn.functional.cross_entropy(head(net(x)), y_t[idx].to(device), label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval().cpu()


@register_encoder("speaker-cnn")
class SpeakerCNNEncoder(_LogMelMixin, Encoder):
    """A small trainable speaker encoder (voice encoder 240 of the patent).

    A 3-block CNN over log-Mel crops with statistics pooling, trained to tell
    the training speakers apart (cross-entropy over speakers, like an x-vector
    or ResNet speaker model at toy scale). At encoding time each clip is cut
    into overlapping windows of ``crop_frames`` and the window embeddings are
    averaged. Fast on a CPU: a few hundred clips train in tens of seconds."""

    trainable = True

    def __init__(
        self,
        embed_dim: int = 128,
        n_mels: int = 64,
        crop_frames: int = 128,
        channels: Sequence[int] = (16, 32, 64),
        epochs: int = 15,
        batch_size: int = 32,
        lr: float = 3e-3,
        seed: int = 0,
        device: str | None = None,
    ):
        channels = tuple(int(c) for c in channels)
        super().__init__(
            "speaker-cnn", embed_dim=embed_dim, n_mels=n_mels, crop_frames=crop_frames, channels=list(channels),
            epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device,
        )
        self.frontend = self._make_frontend(n_mels, 400, 160, 50.0, 8000.0)
        self.net = _SpeakerNet(n_mels, channels, embed_dim)

    @property
    def dim(self) -> int:
        return self.kwargs["embed_dim"]

    def _spectrograms(self, waves) -> list[np.ndarray]:
        # Remove each clip's mean level: loudness is a recording property, not a speaker one.
        return [s - s.mean() for s in log_mel_batch(waves, self.frontend, validate=False)]

    def fit(self, items, speakers, *, progress: bool = False) -> "SpeakerCNNEncoder":
        waves = [validate_waveform(w, name=f"clip {i}").numpy() for i, w in enumerate(items)]
        if len(waves) != len(speakers):
            raise ValueError(f"speaker-cnn: {len(waves)} clips but {len(speakers)} speaker labels")
        specs = self._spectrograms(waves)
        width = self.kwargs["crop_frames"]

        def sample(idx, gen):
            out = []
            for i in idx:
                s = specs[i]
                if s.shape[1] <= width:
                    out.append(time_windows(s, width)[0])
                else:
                    start = gen.integers(0, s.shape[1] - width + 1)
                    out.append(s[:, start : start + width])
            return torch.as_tensor(np.stack(out)) / 20.0

        k = self.kwargs
        _train_identity_net(
            self.net, k["embed_dim"], sample, speakers, epochs=k["epochs"], batch_size=k["batch_size"], lr=k["lr"],
            seed=k["seed"], device=default_device(k["device"]), progress=progress, desc="speaker-cnn",
        )
        return super().fit(items, speakers)

    @torch.no_grad()
    def _encode(self, items, *, landmarks=None, batch_size=32, progress=False):
        device = default_device(self.kwargs["device"])
        self.net.to(device).eval()
        width = self.kwargs["crop_frames"]
        rows = []
        for sl in progress_bar(batches(len(items), batch_size), progress, "speaker-cnn", None):
            specs = self._spectrograms(items[sl])
            windows = [time_windows(s, width) for s in specs]
            emb = self.net(torch.as_tensor(np.concatenate(windows)).to(device) / 20.0).cpu()
            bounds = np.cumsum([0] + [len(w) for w in windows])
            rows += [emb[a:b].mean(dim=0).numpy() for a, b in zip(bounds[:-1], bounds[1:])]
        self.net.cpu()
        return np.stack(rows).astype(np.float32)


# ---------------------------------------------------------------------------
# Hugging Face Hub loading (speech and image models)
# ---------------------------------------------------------------------------


def _offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Can a TCP connection to the Hub endpoint be opened within ``timeout`` seconds?"""
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout=timeout):
            return True
    except OSError:
        return False


def hub_load(loader: Callable, model_id: str, what: str, **kwargs):
    """``loader(model_id, **kwargs)`` for a local folder, the local HF cache, or the Hub.

    A folder is loaded as is. A Hub id is first looked up in the local cache
    (``local_files_only=True``); only when it is missing is it downloaded, and
    when that cannot work (``HF_HUB_OFFLINE=1`` or the Hub unreachable within
    3 s) :class:`HubDownloadError` says so instead of waiting on the network."""
    if Path(model_id).expanduser().is_dir():
        return loader(str(Path(model_id).expanduser()), **kwargs)
    if Path(model_id).expanduser().exists() or model_id.startswith((".", "/", "~")):
        raise FileNotFoundError(f"{what} {model_id!r}: not a folder saved with save_pretrained")
    try:
        return loader(model_id, local_files_only=True, **kwargs)
    except OSError:
        pass
    if _offline():
        raise HubDownloadError(
            f"{what} {model_id!r} is not a local folder and not in the Hugging Face cache, so it needs a download "
            "from the Hub, but offline mode is on (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE). Download it once with "
            "network access, or pass the path of a folder saved with save_pretrained."
        )
    if not _hub_reachable():
        raise HubDownloadError(
            f"{what} {model_id!r} needs a download from the Hugging Face Hub, which cannot be reached from this "
            "machine. Download it where there is network access, or pass a local folder saved with save_pretrained."
        )
    try:
        return loader(model_id, **kwargs)
    except OSError as exc:
        raise HubDownloadError(f"{what} {model_id!r} could not be loaded from the Hugging Face Hub: {exc}") from exc


def _is_classifier(config, suffixes: tuple[str, ...]) -> bool:
    return any(str(a).endswith(suffixes) for a in (getattr(config, "architectures", None) or []))


@register_encoder("hf:", prefix=True)
class HFSpeechEncoder(Encoder):
    """A transformers speech model (wav2vec2, WavLM, HuBERT, ...) as a voice encoder.

    Parameters
    ----------
    model_id : str
        A Hub id (``"microsoft/wavlm-base-plus"``) or a folder saved with
        ``save_pretrained`` (model + feature extractor).
    head : {"auto", "hidden", "classifier"}
        ``"hidden"``: mean over time of the hidden states of layer ``layer``
        (``AutoModel``), a vector of ``hidden_size``. ``"classifier"``: the class
        probabilities of an ``AutoModelForAudioClassification`` checkpoint
        (ready-made age/gender models), with the class names in ``labels``.
        ``"auto"`` picks the classifier when the checkpoint is one.
    layer : int
        Which hidden layer to pool (``-1`` the last; middle layers often carry
        more speaker information).
    max_seconds : float
        Clips are cut to this length (memory).
    """

    def __init__(self, model_id: str, head: str = "auto", layer: int = -1, max_seconds: float = 20.0, device: str | None = None):
        super().__init__(f"hf:{model_id}", head=head, layer=layer, max_seconds=max_seconds, device=device)
        import transformers

        if head not in ("auto", "hidden", "classifier"):
            raise ValueError(f"head must be 'auto', 'hidden' or 'classifier', not {head!r}")
        self.model_id = model_id
        config = hub_load(transformers.AutoConfig.from_pretrained, model_id, "speech model")
        self.head = ("classifier" if _is_classifier(config, ("ForAudioClassification", "ForSequenceClassification")) else "hidden") if head == "auto" else head
        auto = transformers.AutoModelForAudioClassification if self.head == "classifier" else transformers.AutoModel
        self.model = hub_load(auto.from_pretrained, model_id, "speech model").eval()
        try:
            self.processor = hub_load(transformers.AutoFeatureExtractor.from_pretrained, model_id, "feature extractor")
        except (OSError, ValueError):
            # Checkpoints without a saved feature extractor: wav2vec2's defaults.
            self.processor = transformers.Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True, return_attention_mask=True)
        self.labels = [config.id2label[i] for i in range(len(config.id2label))] if self.head == "classifier" else None

    @property
    def dim(self) -> int:
        return len(self.labels) if self.labels else int(self.model.config.hidden_size)

    @torch.no_grad()
    def _encode(self, items, *, landmarks=None, batch_size=8, progress=False):
        import torchaudio

        device = default_device(self.kwargs["device"])
        self.model.to(device)
        sr = int(getattr(self.processor, "sampling_rate", 16000))
        max_len = int(self.kwargs["max_seconds"] * sr)
        waves = [w if sr == 16000 else torchaudio.functional.resample(torch.as_tensor(w), 16000, sr).numpy() for w in items]
        waves = [w[:max_len] for w in waves]
        order = np.argsort([len(w) for w in waves])  # similar lengths together: little padding
        out = np.zeros((len(waves), self.dim), dtype=np.float32)
        for sl in progress_bar(batches(len(order), batch_size), progress, self.name, None):
            idx = order[sl]
            inputs = self.processor([waves[i] for i in idx], sampling_rate=sr, return_tensors="pt", padding=True)
            inputs = {k: v.to(device) for k, v in inputs.items()}
            if self.head == "classifier":
                out[idx] = self.model(**inputs).logits.softmax(dim=-1).float().cpu().numpy()
                continue
            hidden = self.model(**inputs, output_hidden_states=True).hidden_states[self.kwargs["layer"]]
            mask = torch.ones(hidden.shape[:2], device=device)
            if "attention_mask" in inputs and hasattr(self.model, "_get_feat_extract_output_lengths"):
                lengths = self.model._get_feat_extract_output_lengths(inputs["attention_mask"].sum(dim=1))
                mask = (torch.arange(hidden.shape[1], device=device)[None] < lengths[:, None]).float()
            pooled = (hidden * mask[..., None]).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp_min(1)
            out[idx] = pooled.float().cpu().numpy()
        self.model.cpu()
        return out

    def fingerprint(self) -> str:
        # Hashing hundreds of MB of weights would be slow; the id names them
        # (a local folder's content is hashed through its weight files' sizes and times).
        if self._fingerprint is None:
            h = hashlib.sha1(json.dumps(self.config(), sort_keys=True, default=str).encode())
            folder = Path(self.model_id).expanduser()
            if folder.is_dir():
                for f in sorted(folder.iterdir()):
                    h.update(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}".encode())
            self._fingerprint = h.hexdigest()[:20]
        return self._fingerprint


# ---------------------------------------------------------------------------
# Face helpers: checks, alignment, skin colour
# ---------------------------------------------------------------------------


def validate_images(images, *, name: str = "images") -> np.ndarray:
    """Check face images and return them as uint8 of shape (n, H, W, 3).

    Accepts uint8 arrays, float arrays in [0, 1], or a list of PIL images;
    a single (H, W, 3) image becomes a batch of one.

    Raises
    ------
    ValueError
        No images, not RGB (H, W, 3), NaN/inf, floats outside [0, 1], or a
        blank image (every pixel the same colour).
    """
    if images is None:
        raise ValueError(f"{name}: got None instead of images")
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise ValueError(f"{name}: no images")
        images = np.stack([np.asarray(im.convert("RGB") if hasattr(im, "convert") else im) for im in images])
    arr = np.asarray(images.detach().cpu() if isinstance(images, torch.Tensor) else images)
    if arr.ndim == 3 and arr.shape[-1] == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"{name}: expected RGB images of shape (n, H, W, 3) or (H, W, 3), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ValueError(f"{name}: empty (shape {arr.shape})")
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float32)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: contains NaN or inf")
        if arr.min() < 0 or arr.max() > 1:
            raise ValueError(f"{name}: float images must be in [0, 1], got values in [{arr.min():.3g}, {arr.max():.3g}]")
        arr = np.round(arr * 255).astype(np.uint8)
    flat = arr.reshape(arr.shape[0], -1, 3)
    blank = np.all(flat == flat[:, :1], axis=(1, 2))
    if blank.any():
        raise ValueError(f"{name}: image {int(np.flatnonzero(blank)[0])} is blank (every pixel has the same colour)")
    return arr


def _check_landmarks(landmarks, n: int) -> np.ndarray | None:
    if landmarks is None:
        return None
    lm = np.asarray(landmarks, dtype=np.float32)
    if lm.shape != (n, 5, 2):
        raise ValueError(f"landmarks must have shape ({n}, 5, 2) (x, y of five points per image), got {lm.shape}")
    if not np.all(np.isfinite(lm)):
        raise ValueError("landmarks contain NaN or inf")
    return lm


def images_to_tensor(images: np.ndarray, size: int, landmarks: np.ndarray | None = None, *, zoom: float = 0.8) -> torch.Tensor:
    """Float images in [0, 1] of shape (n, 3, size, size).

    With landmarks, each face is aligned (:class:`vfmatch.preprocess.AlignFaces`)
    to the ArcFace template shrunk by ``zoom`` towards the centre, so a little
    hair and jaw stay in view; without, the image is resized."""
    x = torch.as_tensor(np.require(images, requirements="W")).permute(0, 3, 1, 2).float() / 255.0  # copy if read-only
    if landmarks is None:
        return nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    from ..data.preprocess import ARCFACE_SIZE, ARCFACE_TEMPLATE, AlignFaces

    tpl = (ARCFACE_TEMPLATE - ARCFACE_SIZE / 2) * zoom + ARCFACE_SIZE / 2
    # Align at the input resolution (sharp), then shrink with anti-aliasing.
    h = x.shape[-1]
    aligned = AlignFaces(size=h, template=tpl * h / ARCFACE_SIZE)(x, torch.as_tensor(landmarks))
    return nn.functional.interpolate(aligned, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] (..., 3) to CIELAB (L* in [0, 100], a*, b*) under D65."""
    c = np.asarray(rgb, dtype=np.float64)
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def individual_typology_angle(lab: np.ndarray) -> np.ndarray:
    """ITA in degrees: ``arctan((L* - 50) / b*) * 180 / pi`` (Chardon et al. 1991).

    Above 55 deg is "very light" skin, 41-55 light, 28-41 intermediate, 10-28
    tan, -30-10 brown, below -30 dark: roughly Fitzpatrick I to VI."""
    lab = np.asarray(lab, dtype=np.float64)
    return np.degrees(np.arctan2(lab[..., 0] - 50.0, np.maximum(lab[..., 2], 1e-6)))


# Skin patches in face units (eye distance = 1; origin between the eyes; v down):
# forehead, left cheek, right cheek, nose bridge. Chosen to miss eyes, brows,
# nostrils, lips, beard and hair for most poses.
SKIN_PATCHES = {"forehead": (0.0, -0.45), "left_cheek": (-0.42, 0.62), "right_cheek": (0.42, 0.62), "nose_bridge": (0.0, 0.3)}


def skin_patches(landmarks: np.ndarray, image_size: tuple[int, int], *, radius: float = 0.12) -> dict[str, np.ndarray]:
    """Boolean masks (H, W) of the skin patches of one face, located from its landmarks."""
    lm = np.asarray(landmarks, dtype=np.float64)
    eyes_mid = (lm[0] + lm[1]) / 2
    across = lm[1] - lm[0]
    d = np.linalg.norm(across) + 1e-6
    u = across / d
    v = np.array([-u[1], u[0]])  # perpendicular, pointing down the face
    H, W = image_size
    yy, xx = np.mgrid[0:H, 0:W]
    out = {}
    for name, (a, b) in SKIN_PATCHES.items():
        c = eyes_mid + d * (a * u + b * v)
        out[name] = (xx - c[0]) ** 2 + (yy - c[1]) ** 2 <= (radius * d) ** 2 + 0.5
    return out


# ---------------------------------------------------------------------------
# Face encoders
# ---------------------------------------------------------------------------


class _FaceEncoder(Encoder):
    modality = "face"


@register_encoder("pixels")
class PixelsEncoder(_FaceEncoder):
    """The image itself, aligned with its landmarks when known: (n, 3, size, size) in [0, 1].

    The input of the image skin-tone vision transformer (the patent feeds "the
    facial image into a transformer")."""

    output = "matrix"

    def __init__(self, size: int = 64, align: bool = True, zoom: float = 0.8):
        super().__init__("pixels", size=size, align=align, zoom=zoom)

    def _encode(self, items, *, landmarks=None, batch_size=32, progress=False):
        lm = landmarks if self.kwargs["align"] else None
        parts = [
            images_to_tensor(items[sl], self.kwargs["size"], None if lm is None else lm[sl], zoom=self.kwargs["zoom"])
            for sl in progress_bar(batches(len(items), 256), progress, "pixels", None)
        ]
        return torch.cat(parts).numpy().astype(np.float32)


@register_encoder("thumbnail")
class ThumbnailEncoder(_FaceEncoder):
    """A small aligned face in CIELAB colour, flattened: a training-free face vector.

    Each face is aligned with its landmarks (``zoom`` 1 is the ArcFace crop:
    eyebrows to chin), shrunk to ``size x size`` pixels and converted to
    CIELAB, whose a* (red-green) and b* (yellow-blue) channels separate skin,
    lips and hair colour better than RGB. ``3 * size**2`` numbers (1728 at the
    default 24). Crude, but a linear model on such thumbnails is a classic
    gender classifier, and the simulator's cues (hair, beard shadow, brows,
    lipstick, wrinkles, skin colour, face width) are visible at that scale."""

    def __init__(self, size: int = 24, align: bool = True, zoom: float = 1.0):
        super().__init__("thumbnail", size=size, align=align, zoom=zoom)

    @property
    def dim(self) -> int:
        return 3 * self.kwargs["size"] ** 2

    def _encode(self, items, *, landmarks=None, batch_size=32, progress=False):
        lm = landmarks if self.kwargs["align"] else None
        size = self.kwargs["size"]
        rows = []
        for sl in progress_bar(batches(len(items), 256), progress, "thumbnail", None):
            # Align at twice the output size, then shrink with anti-aliasing (no jagged edges).
            x = images_to_tensor(items[sl], 2 * size, None if lm is None else lm[sl], zoom=self.kwargs["zoom"])
            small = nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
            rows.append(rgb_to_lab(small.permute(0, 2, 3, 1).numpy()).reshape(len(small), -1))
        return np.concatenate(rows).astype(np.float32)


@register_encoder("ita")
class ITAEncoder(_FaceEncoder):
    """Skin colour measured on the face: the Individual Typology Angle and CIELAB.

    For each of four skin patches located from the landmarks (forehead, both
    cheeks, nose bridge), the median L*, a*, b* and ITA; then the median and
    spread over patches. 8 numbers: ``ita, ita_spread, L, a, b, L_spread,
    b_spread, brightest_patch_ita``. Without landmarks the patches sit where an
    upright, centred face would have them. Lighting moves the ITA, so a
    calculator is fitted on top (the field maps ITA to Fitzpatrick types with
    thresholds; :func:`individual_typology_angle` gives the classical ones)."""

    feature_names = ("ita", "ita_spread", "L", "a", "b", "L_spread", "b_spread", "brightest_patch_ita")
    dim = len(feature_names)

    def __init__(self, radius: float = 0.12):
        super().__init__("ita", radius=radius)

    def _encode(self, items, *, landmarks=None, batch_size=32, progress=False):
        n, H, W, _ = items.shape
        if landmarks is None:
            landmarks = np.repeat(_default_landmarks(H, W)[None], n, axis=0)
        rows = []
        for img, lm in progress_bar(zip(items, landmarks), progress, "ITA", n):  # numpy only: one thread anyway
            lab = rgb_to_lab(img / 255.0)
            per_patch = []
            for mask in skin_patches(lm, (H, W), radius=self.kwargs["radius"]).values():
                if mask.sum() >= 3:
                    per_patch.append(np.median(lab[mask], axis=0))
            if not per_patch:  # landmarks outside the image: use the whole centre
                per_patch = [np.median(lab[H // 3 : 2 * H // 3, W // 3 : 2 * W // 3].reshape(-1, 3), axis=0)]
            p = np.asarray(per_patch)
            ita = individual_typology_angle(p)
            rows.append([np.median(ita), ita.max() - ita.min(), *np.median(p, axis=0), np.ptp(p[:, 0]), np.ptp(p[:, 2]), ita[np.argmax(p[:, 0])]])
        return np.asarray(rows, dtype=np.float32)


# Other regions in the same face units: hair above the forehead and beside the
# face (long hair hangs there), the irises (on the eye landmarks), the lips (between
# the mouth corners) and the chin (beard).
COLOUR_REGIONS = {"hair_top": (0.0, -1.1, 0.15), "hair_left": (-1.25, 0.1, 0.12), "hair_right": (1.25, 0.1, 0.12), "chin": (0.0, 1.45, 0.12)}


@register_encoder("colours")
class ColoursEncoder(_FaceEncoder):
    """Median CIELAB colour of the hair, irises, lips and chin, located from the landmarks.

    15 numbers: ``L, a, b`` of ``hair_top, hair_sides, iris, lips, chin``. Hair
    and eye colour vary with ethnicity and age (greying), lips with make-up,
    the chin with a beard: cues a small linear model reads easily, next to the
    skin colour of the ``ita`` encoder."""

    feature_names = tuple(f"{r}_{c}" for r in ("hair_top", "hair_sides", "iris", "lips", "chin") for c in ("L", "a", "b"))
    dim = len(feature_names)

    def __init__(self):
        super().__init__("colours")

    def _encode(self, items, *, landmarks=None, batch_size=32, progress=False):
        n, H, W, _ = items.shape
        if landmarks is None:
            landmarks = np.repeat(_default_landmarks(H, W)[None], n, axis=0)
        yy, xx = np.mgrid[0:H, 0:W]
        rows = []
        for img, lm in progress_bar(zip(items, landmarks), progress, "colours", n):
            lab = rgb_to_lab(img / 255.0)
            mid, d = (lm[0] + lm[1]) / 2, np.linalg.norm(lm[1] - lm[0]) + 1e-6
            u = (lm[1] - lm[0]) / d
            v = np.array([-u[1], u[0]])

            def median_in(centres, radius):
                mask = np.zeros((H, W), dtype=bool)
                for c in centres:
                    mask |= (xx - c[0]) ** 2 + (yy - c[1]) ** 2 <= (radius * d) ** 2 + 0.5
                return np.median(lab[mask], axis=0) if mask.any() else np.full(3, np.nan)

            at = lambda a, b: mid + d * (a * u + b * v)  # noqa: E731
            r = COLOUR_REGIONS
            feats = [
                median_in([at(*r["hair_top"][:2])], r["hair_top"][2]),
                median_in([at(*r["hair_left"][:2]), at(*r["hair_right"][:2])], r["hair_left"][2]),
                median_in([lm[0], lm[1]], 0.05),
                median_in([(lm[3] + lm[4]) / 2 + 0.03 * d * v], 0.07),
                median_in([at(*r["chin"][:2])], r["chin"][2]),
            ]
            rows.append(np.concatenate(feats))
        return np.asarray(rows, dtype=np.float32)


def _default_landmarks(H: int, W: int) -> np.ndarray:
    """Landmarks of an upright, centred face: eyes at 42 % height, 30 % of the width apart."""
    return np.array([[0.35 * W, 0.42 * H], [0.65 * W, 0.42 * H], [0.5 * W, 0.57 * H], [0.38 * W, 0.7 * H], [0.62 * W, 0.7 * H]])


@register_encoder("face-cnn")
class FaceCNNEncoder(_FaceEncoder):
    """A small trainable face encoder (image encoder 250 of the patent).

    A 4-block CNN on aligned ``size x size`` faces, trained to tell the
    training identities apart (cross-entropy), with flips and small shifts as
    augmentation; the pooled features are the embedding."""

    trainable = True

    def __init__(
        self,
        embed_dim: int = 128,
        size: int = 64,
        channels: Sequence[int] = (16, 32, 64, 128),
        epochs: int = 15,
        batch_size: int = 32,
        lr: float = 3e-3,
        seed: int = 0,
        device: str | None = None,
    ):
        channels = tuple(int(c) for c in channels)
        super().__init__(
            "face-cnn", embed_dim=embed_dim, size=size, channels=list(channels), epochs=epochs,
            batch_size=batch_size, lr=lr, seed=seed, device=device,
        )
        self.net = _FaceNet(channels, embed_dim)

    @property
    def dim(self) -> int:
        return self.kwargs["embed_dim"]

    def fit(self, items, speakers, *, landmarks=None, progress: bool = False) -> "FaceCNNEncoder":
        images = validate_images(items)
        if len(images) != len(speakers):
            raise ValueError(f"face-cnn: {len(images)} images but {len(speakers)} identity labels")
        x_all = images_to_tensor(images, self.kwargs["size"], _check_landmarks(landmarks, len(images)))

        def sample(idx, gen):
            x = x_all[torch.as_tensor(idx)]
            flip = torch.as_tensor(gen.random(len(idx)) < 0.5)
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            dx, dy = (int(v) for v in gen.integers(-3, 4, 2))
            return torch.roll(x, shifts=(dy, dx), dims=(2, 3)) - 0.5

        k = self.kwargs
        _train_identity_net(
            self.net, k["embed_dim"], sample, speakers, epochs=k["epochs"], batch_size=k["batch_size"], lr=k["lr"],
            seed=k["seed"], device=default_device(k["device"]), progress=progress, desc="face-cnn",
        )
        return super().fit(items, speakers)

    @torch.no_grad()
    def _encode(self, items, *, landmarks=None, batch_size=32, progress=False):
        device = default_device(self.kwargs["device"])
        self.net.to(device).eval()
        rows = []
        for sl in progress_bar(batches(len(items), batch_size), progress, "face-cnn", None):
            x = images_to_tensor(items[sl], self.kwargs["size"], None if landmarks is None else landmarks[sl]) - 0.5
            rows.append(self.net(x.to(device)).cpu().numpy())
        self.net.cpu()
        return np.concatenate(rows).astype(np.float32)


@register_encoder("timm:", prefix=True)
class TimmEncoder(_FaceEncoder):
    """Any timm backbone as a face encoder: ``timm.create_model(name, num_classes=0)``.

    Parameters
    ----------
    model_name : str
        A timm model name (``"resnet18"``, ``"vit_small_patch16_224"``, or
        ``"hf-hub:<id>"`` for timm weights on the Hub).
    pretrained : bool
        Download pretrained weights (Hugging Face Hub). With ``False`` the
        weights are random and are saved with the extractor.
    img_size : int, optional
        Input side; default the model's own. ViTs are built for that size.
    align : bool
        Align faces with their landmarks before resizing.
    **create_kwargs
        Passed on to ``timm.create_model`` (e.g. ``embed_dim`` for a tiny test model).
    """

    def __init__(self, model_name: str, pretrained: bool = True, img_size: int | None = None, align: bool = True, device: str | None = None, **create_kwargs):
        super().__init__(f"timm:{model_name}", pretrained=pretrained, img_size=img_size, align=align, device=device, **create_kwargs)
        import timm

        if not model_name.startswith("hf-hub:") and not timm.is_model(model_name.split(".")[0]):
            raise KeyError(f"unknown timm model {model_name!r}; see timm.list_models()")
        if pretrained and not _offline() and not _hub_reachable():
            raise HubDownloadError(
                f"timm model {model_name!r} with pretrained=True needs its weights from the Hugging Face Hub, which "
                "cannot be reached from this machine. Use pretrained=False, or set HF_HUB_OFFLINE=1 if they are cached."
            )
        kw = dict(create_kwargs)
        if img_size is not None:
            kw["img_size"] = int(img_size)
        try:
            try:
                self.model = timm.create_model(model_name, pretrained=pretrained, num_classes=0, **kw).eval()
            except TypeError:  # CNNs take any input size and have no img_size argument
                kw.pop("img_size", None)
                self.model = timm.create_model(model_name, pretrained=pretrained, num_classes=0, **kw).eval()
        except (OSError, RuntimeError) as exc:
            if pretrained:
                raise HubDownloadError(
                    f"timm model {model_name!r} with pretrained=True needs its weights from the Hugging Face Hub, "
                    f"which cannot be downloaded here ({type(exc).__name__}: {exc}). Use pretrained=False or download them once."
                ) from exc
            raise
        cfg = timm.data.resolve_model_data_config(self.model)
        self.input_size = int(img_size) if img_size is not None else int(cfg["input_size"][-1])
        self.register_buffer("mean", torch.as_tensor(cfg["mean"], dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.as_tensor(cfg["std"], dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    @property
    def saves_weights(self) -> bool:
        return not self.kwargs["pretrained"]

    @property
    def dim(self) -> int:
        return int(self.model.num_features)

    @torch.no_grad()
    def _encode(self, items, *, landmarks=None, batch_size=32, progress=False):
        device = default_device(self.kwargs["device"])
        self.to(device)
        lm = landmarks if self.kwargs["align"] else None
        rows = []
        for sl in progress_bar(batches(len(items), batch_size), progress, self.name, None):
            x = images_to_tensor(items[sl], self.input_size, None if lm is None else lm[sl]).to(device)
            rows.append(self.model((x - self.mean) / self.std).float().cpu().numpy())
        self.cpu()
        return np.concatenate(rows).astype(np.float32)


@register_encoder("hf-image:", prefix=True)
class HFImageEncoder(_FaceEncoder):
    """A transformers image model as a face encoder.

    ``head="classifier"`` (automatic for ``*ForImageClassification``
    checkpoints, e.g. ready-made age or gender classifiers) returns the class
    probabilities, with names in ``labels``; ``"hidden"`` returns the pooled
    output (or the CLS token) of ``AutoModel``."""

    def __init__(self, model_id: str, head: str = "auto", align: bool = True, device: str | None = None):
        super().__init__(f"hf-image:{model_id}", head=head, align=align, device=device)
        import transformers

        if head not in ("auto", "hidden", "classifier"):
            raise ValueError(f"head must be 'auto', 'hidden' or 'classifier', not {head!r}")
        self.model_id = model_id
        config = hub_load(transformers.AutoConfig.from_pretrained, model_id, "image model")
        self.head = ("classifier" if _is_classifier(config, ("ForImageClassification",)) else "hidden") if head == "auto" else head
        auto = transformers.AutoModelForImageClassification if self.head == "classifier" else transformers.AutoModel
        self.model = hub_load(auto.from_pretrained, model_id, "image model").eval()
        self.labels = [config.id2label[i] for i in range(len(config.id2label))] if self.head == "classifier" else None
        size = getattr(config, "image_size", 224)
        self.input_size = int(size if isinstance(size, int) else size[0])
        mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
        try:
            proc = hub_load(transformers.AutoImageProcessor.from_pretrained, model_id, "image processor")
            mean, std = getattr(proc, "image_mean", None) or mean, getattr(proc, "image_std", None) or std
            s = getattr(proc, "size", None) or {}
            self.input_size = int(s.get("height", s.get("shortest_edge", self.input_size)) if isinstance(s, dict) else s)
        except (OSError, ValueError):
            pass  # no saved processor: ViT-style defaults
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    @property
    def dim(self) -> int:
        if self.labels:
            return len(self.labels)
        return int(getattr(self.model.config, "hidden_size", None) or self.model.config.hidden_sizes[-1])

    @torch.no_grad()
    def _encode(self, items, *, landmarks=None, batch_size=32, progress=False):
        device = default_device(self.kwargs["device"])
        self.to(device)
        lm = landmarks if self.kwargs["align"] else None
        rows = []
        for sl in progress_bar(batches(len(items), batch_size), progress, self.name, None):
            x = images_to_tensor(items[sl], self.input_size, None if lm is None else lm[sl]).to(device)
            out = self.model(pixel_values=(x - self.mean) / self.std)
            if self.head == "classifier":
                rows.append(out.logits.softmax(dim=-1).float().cpu().numpy())
                continue
            pooled = getattr(out, "pooler_output", None)
            if pooled is None:
                pooled = out.last_hidden_state[:, 0]
            rows.append(pooled.flatten(1).float().cpu().numpy())
        self.cpu()
        return np.concatenate(rows).astype(np.float32)

    fingerprint = HFSpeechEncoder.fingerprint


# ---------------------------------------------------------------------------
# Concatenation
# ---------------------------------------------------------------------------


class ConcatEncoder(Encoder):
    """``"a+b"``: the vectors of several encoders side by side (e.g. measured
    pitch statistics next to log-Mel statistics)."""

    def __init__(self, modality: str, name: str, **kwargs):
        self.modality = modality  # instance attribute: one class serves both modalities
        parts = [p.strip() for p in name.split("+") if p.strip()]
        if len(parts) < 2:
            raise ValueError(f"{name!r}: a concatenation needs two or more encoder names joined by '+'")
        super().__init__(name, **kwargs)
        self.parts = nn.ModuleList([create_encoder(modality, p, **_accepted(modality, p, kwargs)) for p in parts])
        for p in self.parts:
            if p.output != "vector":
                raise ValueError(f"{name!r}: only vector encoders can be concatenated; {p.name!r} gives a {p.output}")
        self.is_fitted = all(p.is_fitted for p in self.parts)

    @property
    def trainable(self) -> bool:  # type: ignore[override]
        parts = self._modules.get("parts")  # not there yet while Encoder.__init__ runs
        return parts is not None and any(p.trainable for p in parts)

    @property
    def saves_weights(self) -> bool:
        return any(p.saves_weights for p in self.parts)

    @property
    def dim(self) -> int:
        return sum(int(p.dim) for p in self.parts)

    def fit(self, items, speakers, *, landmarks=None, progress: bool = False):
        for p in self.parts:
            if p.trainable:
                p.fit(items, speakers, **({"landmarks": landmarks} if self.modality == "face" else {}), progress=progress)
        return super().fit(items, speakers)

    def _encode(self, items, *, landmarks=None, batch_size=32, progress=False):
        kw = {"landmarks": landmarks} if self.modality == "face" else {}
        return np.concatenate([p._encode(items, batch_size=batch_size, progress=progress, **kw) for p in self.parts], axis=1)


def _accepted(modality: str, name: str, kwargs: dict) -> dict:
    """The keyword arguments that encoder ``name``'s constructor accepts."""
    import inspect

    cls = _REGISTRY[modality].get(name)
    if cls is None:
        return {}
    params = inspect.signature(cls.__init__).parameters
    return {k: v for k, v in kwargs.items() if k in params}
