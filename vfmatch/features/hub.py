"""Pretrained backbones as encoders: Hugging Face transformers and timm models.

* ``hf:<id or folder>`` (:class:`HFSpeechEncoder`, voice): a speech model
  (wav2vec2, WavLM, HuBERT, ...): hidden states of one layer mean-pooled over
  time, (n, hidden_size); or, for an audio-classification checkpoint, its class
  probabilities (n, n_classes) with the names in ``labels``.
* ``timm:<model name>`` (:class:`TimmEncoder`, face): any timm backbone's pooled
  features, (n, num_features), on aligned faces resized to its input size.
* ``hf-image:<id or folder>`` (:class:`HFImageEncoder`, face): a transformers
  image model: pooled features (n, hidden_size), or class probabilities.
* ``hf-age-gender:<id or folder>`` (:class:`AgeGenderSpeechEncoder`, voice):
  audEERING's wav2vec2 age and gender model (a custom head, not an
  ``AutoModel``): (n, 4), the age in years, then P(female), P(male), P(child).

Models come from a local folder (``save_pretrained``), the local Hugging Face
cache, or a download (:func:`hub_load`). Without a network a Hub id fails fast
with :class:`HubDownloadError` instead of hanging.
Clips are 16 kHz mono (resampled to the model's rate when it differs); images
are normalised with the model's own mean and std.
Book chapters: ``book/02_voice_encoders.ipynb``, ``book/03_face_encoders.ipynb``.
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import numpy as np
import torch
import torchaudio

from ..config import default_device
from ..utils import batches, progress as progress_bar
from .encoders import Encoder, register_encoder
from .images import images_to_tensor

__all__ = ["HubDownloadError", "hub_load", "HFSpeechEncoder", "TimmEncoder", "HFImageEncoder", "AgeGenderSpeechEncoder",
           "age_gender_model_class", "AGE_YEARS_LABEL"]

# The name of a regression output (age in years) among an encoder's ``labels``:
# not a class probability, so label-mapping calculators treat it apart.
AGE_YEARS_LABEL = "age:years"


class HubDownloadError(OSError):
    """A Hub model was asked for that is neither a local folder nor cached, and cannot be downloaded."""


def _offline() -> bool:
    """Is Hugging Face's offline mode on (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``)?"""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Can a TCP connection to the Hub endpoint be opened within ``timeout`` seconds?"""
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


def _hash_model_folder(h, model_id: str) -> None:
    """Add a local model folder's files (names, sizes, modification times) to hash ``h``.

    Hashing hundreds of MB of weights would be slow; a Hub id names its
    weights (it is in the configuration), a folder is known by its files."""
    folder = Path(model_id).expanduser()
    if folder.is_dir():
        for f in sorted(folder.iterdir()):
            h.update(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}".encode())


def _is_classifier(config, suffixes: tuple[str, ...]) -> bool:
    return any(str(a).endswith(suffixes) for a in (getattr(config, "architectures", None) or []))


@register_encoder("hf:")
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

    modality = "voice"

    def __init__(self, model_id: str, head: str = "auto", layer: int = -1, max_seconds: float = 20.0, device: str | None = None):
        super().__init__(f"hf:{model_id}", head=head, layer=layer, max_seconds=max_seconds, device=device)
        import transformers  # deferred: heavy (seconds to import), needed only for Hub models

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
        def forward(inputs, device):
            inputs = {k: v.to(device) for k, v in inputs.items()}
            if self.head == "classifier":
                return self.model(**inputs).logits.softmax(dim=-1).float().cpu().numpy()
            hidden = self.model(**inputs, output_hidden_states=True).hidden_states[self.kwargs["layer"]]
            mask = torch.ones(hidden.shape[:2], device=device)
            if "attention_mask" in inputs and hasattr(self.model, "_get_feat_extract_output_lengths"):
                lengths = self.model._get_feat_extract_output_lengths(inputs["attention_mask"].sum(dim=1))
                mask = (torch.arange(hidden.shape[1], device=device)[None] < lengths[:, None]).float()
            pooled = (hidden * mask[..., None]).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp_min(1)
            return pooled.float().cpu().numpy()

        return _speech_batches(self, items, batch_size, progress, forward)

    def _hash_weights(self, h) -> None:
        _hash_model_folder(h, self.model_id)


def _speech_batches(encoder, items, batch_size: int, progress: bool, forward) -> np.ndarray:
    """What the Hub speech encoders share: 16 kHz clips resampled to the processor's
    rate and cut to ``max_seconds``, batched by length (little padding), each batch
    through the processor and ``forward(inputs, device) -> (B, dim)``; (n, dim) float32."""
    device = default_device(encoder.kwargs["device"])
    encoder.model.to(device)
    sr = int(getattr(encoder.processor, "sampling_rate", 16000))
    max_len = int(encoder.kwargs["max_seconds"] * sr)
    waves = [(w if sr == 16000 else torchaudio.functional.resample(torch.as_tensor(w), 16000, sr).numpy())[:max_len]
             for w in items]
    order = np.argsort([len(w) for w in waves])  # similar lengths together: little padding
    out = np.zeros((len(waves), encoder.dim), dtype=np.float32)
    for sl in progress_bar(batches(len(order), batch_size), progress, encoder.name, None):
        idx = order[sl]
        inputs = encoder.processor([waves[i] for i in idx], sampling_rate=sr, return_tensors="pt", padding=True)
        out[idx] = forward(inputs, device)
    encoder.model.cpu()
    return out


def _image_batches(encoder, items, landmarks, batch_size: int, progress: bool, forward) -> np.ndarray:
    """The batched loop of the pretrained image encoders: align on the landmarks (when
    the encoder's ``align`` is set), resize to its input size, normalise with its mean
    and std, run ``forward`` on the device. Returns (n_items, dim) float32."""
    device = default_device(encoder.kwargs["device"])
    encoder.to(device)
    lm = landmarks if encoder.kwargs["align"] else None
    rows = []
    for sl in progress_bar(batches(len(items), batch_size), progress, encoder.name, None):
        x = images_to_tensor(items[sl], encoder.input_size, None if lm is None else lm[sl]).to(device)
        rows.append(forward((x - encoder.mean) / encoder.std).float().cpu().numpy())
    encoder.cpu()
    return np.concatenate(rows).astype(np.float32)


@register_encoder("timm:")
class TimmEncoder(Encoder):
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

    modality = "face"

    def __init__(self, model_name: str, pretrained: bool = True, img_size: int | None = None, align: bool = True, device: str | None = None, **create_kwargs):
        super().__init__(f"timm:{model_name}", pretrained=pretrained, img_size=img_size, align=align, device=device, **create_kwargs)
        import timm  # deferred: heavy, needed only for timm backbones

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
        return _image_batches(self, items, landmarks, batch_size, progress, self.model)


@register_encoder("hf-image:")
class HFImageEncoder(Encoder):
    """A transformers image model as a face encoder.

    ``head="classifier"`` (automatic for ``*ForImageClassification``
    checkpoints, e.g. ready-made age or gender classifiers) returns the class
    probabilities, with names in ``labels``; ``"hidden"`` returns the pooled
    output (or the CLS token) of ``AutoModel``."""

    modality = "face"

    def __init__(self, model_id: str, head: str = "auto", align: bool = True, device: str | None = None):
        super().__init__(f"hf-image:{model_id}", head=head, align=align, device=device)
        import transformers  # deferred: heavy (seconds to import), needed only for Hub models

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
        return _image_batches(self, items, landmarks, batch_size, progress, self._forward)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised images -> (B, dim): class probabilities, or the pooled embedding."""
        out = self.model(pixel_values=x)
        if self.head == "classifier":
            return out.logits.softmax(dim=-1)
        pooled = getattr(out, "pooler_output", None)
        if pooled is None:
            pooled = out.last_hidden_state[:, 0]
        return pooled.flatten(1)

    def _hash_weights(self, h) -> None:
        _hash_model_folder(h, self.model_id)


@functools.lru_cache(maxsize=None)
def age_gender_model_class():
    """The model class of audEERING's age and gender checkpoints (built once).

    ``audeering/wav2vec2-large-robust-24-ft-age-gender`` (and its 6-layer sibling)
    is a ``Wav2Vec2Model`` whose hidden states, averaged over time, feed two heads
    (dense, tanh, linear; as published on the model card): ``age``, one number
    (age / 100 years), and ``gender``, three logits for female, male, child.
    ``from_pretrained`` on a folder or Hub id loads it; ``forward`` returns
    ``(age in [0, 1] roughly, (B, 3) probabilities)``.

    A function, not a module-level class, because subclassing transformers'
    ``Wav2Vec2PreTrainedModel`` needs transformers imported (heavy, optional)."""
    import transformers  # deferred: heavy (seconds to import), needed only for this model
    from torch import nn

    class _Head(nn.Module):
        def __init__(self, config, num_labels: int):
            super().__init__()
            self.dense = nn.Linear(config.hidden_size, config.hidden_size)
            self.dropout = nn.Dropout(config.final_dropout)
            self.out_proj = nn.Linear(config.hidden_size, num_labels)

        def forward(self, x):
            return self.out_proj(self.dropout(torch.tanh(self.dense(self.dropout(x)))))

    class AgeGenderModel(transformers.Wav2Vec2PreTrainedModel):
        def __init__(self, config):
            super().__init__(config)
            self.wav2vec2 = transformers.Wav2Vec2Model(config)
            self.age = _Head(config, 1)
            self.gender = _Head(config, 3)
            self.post_init()

        def forward(self, input_values, attention_mask=None):
            hidden = self.wav2vec2(input_values, attention_mask=attention_mask)[0]
            mask = torch.ones(hidden.shape[:2], device=hidden.device)
            if attention_mask is not None:  # mean over the frames of each clip, not the padding
                lengths = self._get_feat_extract_output_lengths(attention_mask.sum(dim=1))
                mask = (torch.arange(hidden.shape[1], device=hidden.device)[None] < lengths[:, None]).float()
            pooled = (hidden * mask[..., None]).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp_min(1)
            return self.age(pooled)[:, 0], self.gender(pooled).softmax(dim=-1)

    return AgeGenderModel


@register_encoder("hf-age-gender:")
class AgeGenderSpeechEncoder(Encoder):
    """audEERING's wav2vec2 age and gender model as a voice encoder.

    Output (n, 4), named in ``labels``: ``"age:years"`` (the age head times 100,
    the model card's scale; a number, not a probability), then the gender head's
    probabilities of ``"female"``, ``"male"`` and ``"child"`` (rows of those three
    sum to 1). The calculator ``pretrained-labels``
    (:mod:`vfmatch.extractors.pretrained`) turns them into the age and gender
    distributions.

    Parameters
    ----------
    model_id : str
        ``"audeering/wav2vec2-large-robust-24-ft-age-gender"`` (or the ``-6-``
        model), or a folder saved with ``save_pretrained``.
    max_seconds : float
        Clips are cut to this length (memory).
    """

    modality = "voice"

    def __init__(self, model_id: str, max_seconds: float = 20.0, device: str | None = None):
        super().__init__(f"hf-age-gender:{model_id}", max_seconds=max_seconds, device=device)
        import transformers  # deferred: heavy (seconds to import), needed only for Hub models

        self.model_id = model_id
        self.model = hub_load(age_gender_model_class().from_pretrained, model_id, "age and gender model").eval()
        try:
            self.processor = hub_load(transformers.AutoFeatureExtractor.from_pretrained, model_id, "feature extractor")
        except (OSError, ValueError):
            # No saved feature extractor: wav2vec2's defaults, normalised input as the checkpoint expects.
            self.processor = transformers.Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True, return_attention_mask=True)
        self.labels = [AGE_YEARS_LABEL, "female", "male", "child"]

    @property
    def dim(self) -> int:
        return 4

    @torch.no_grad()
    def _encode(self, items, *, landmarks=None, batch_size=8, progress=False):
        def forward(inputs, device):
            mask = inputs.get("attention_mask")
            age, gender = self.model(inputs["input_values"].to(device), attention_mask=None if mask is None else mask.to(device))
            # the model card: 0...1 stands for 0...100 years
            return torch.cat([100.0 * age.reshape(-1, 1), gender], dim=1).float().cpu().numpy()

        return _speech_batches(self, items, batch_size, progress, forward)

    def _hash_weights(self, h) -> None:
        _hash_model_folder(h, self.model_id)
