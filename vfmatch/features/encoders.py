"""Encoders: the base class, the registry, and concatenated encoders.

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
    list_encoders("voice")

========================  ======  ========  =================================================
name                      input   output    what it is (module)
========================  ======  ========  =================================================
``logmel``                voice   matrix    log-Mel spectrogram (n_mels, n_frames) per clip (voice)
``logmel-stats``          voice   vector    mean/std of log-Mel bands and of their deltas (voice)
``f0-formants``           voice   vector    pitch, voicing, formant and rhythm statistics (voice)
``speaker-cnn``           voice   vector    small CNN trained to tell training speakers apart (voice)
``hf:<id or folder>``     voice   vector    transformers speech model: pooled hidden states,
                                            or class probabilities of an audio classifier (hub)
``hf-age-gender:<id>``    voice   vector    audEERING's wav2vec2 age/gender model: age in years,
                                            P(female), P(male), P(child) (hub)
``pixels``                face    matrix    the (aligned) image, (3, size, size) (face)
``thumbnail``             face    vector    a small aligned image, flattened, in CIELAB (face)
``ita``                   face    vector    skin colour in CIELAB and the Individual Typology Angle (face)
``colours``               face    vector    colour of hair, irises, lips and chin in CIELAB (face)
``face-cnn``              face    vector    small CNN trained to tell training identities apart (face)
``timm:<model name>``     face    vector    any timm backbone's pooled features (hub)
``hf-image:<id>``         face    vector    transformers image model: pooled features, or
                                            class probabilities of an image classifier (hub)
========================  ======  ========  =================================================

Every encoder is a :class:`torch.nn.Module` with ``fit(items, speakers)``
(a no-op unless ``trainable``), ``encode(items) -> array``, ``config()``
(JSON: enough to make it again) and ``fingerprint()`` (the key of cached
features). Voice items are lists of 16 kHz mono float32 arrays in [-1, 1];
face items are uint8 arrays (n, H, W, 3) with optional five-point landmarks
(n, 5, 2) in pixels.

A new encoder is a subclass of :class:`Encoder` decorated with
``@register_encoder("my-name")``; ``create_encoder`` and ``list_encoders``
then know it. Book chapters: ``book/02_voice_encoders.ipynb``,
``book/03_face_encoders.ipynb``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from typing import Callable, ClassVar, Sequence

import numpy as np
import torch
from torch import nn

from ..utils import limit_threads
from .audio import validate_waveform
from ..fingerprints import traced_code_fingerprint
from .images import validate_images, validate_landmarks

__all__ = [
    "Encoder",
    "register_encoder",
    "unregister_encoder",
    "create_encoder",
    "create_voice_encoder",
    "create_face_encoder",
    "list_encoders",
    "ConcatEncoder",
]

MODALITIES = ("voice", "face")


# ---------------------------------------------------------------------------
# The base class
# ---------------------------------------------------------------------------


class Encoder(nn.Module):
    """Base class: a representation of voice clips or face images.

    Subclasses set ``modality`` ("voice" or "face"), ``output`` ("vector": one
    array (n, dim); "matrix": a spectrogram/image per item) and ``trainable``,
    store their keyword arguments in ``self.kwargs`` (through
    ``super().__init__(name, **kwargs)``) and implement ``_encode``, which gets
    items already checked. Trainable encoders also implement ``fit``.
    """

    modality: ClassVar[str]  # every subclass says which: "voice" or "face"
    output: ClassVar[str] = "vector"
    trainable: ClassVar[bool] = False

    def __init__(self, name: str, **kwargs):
        super().__init__()
        self.name = name
        self.kwargs = kwargs
        self.is_fitted = not self.trainable

    # -- what every encoder offers ------------------------------------------
    @property
    def saves_weights(self) -> bool:
        """True when the weights must be saved with the encoder (trained or randomly
        initialised); otherwise the configuration names them (none, or pretrained)."""
        return self.trainable

    def config(self) -> dict:
        """``{"modality", "name", "kwargs"}``: ``create_encoder(modality, name, **kwargs)`` makes it again."""
        return {"modality": self.modality, "name": self.name, "kwargs": dict(self.kwargs)}

    def check_items(self, items, landmarks=None):
        """The checks every input passes before ``fit`` or ``_encode``.

        Returns ``(items, landmarks)``: voices as a list of float32 arrays
        (n_samples,) and ``None``; faces as uint8 (n, H, W, 3) and float32
        (n, 5, 2) or ``None``. Raises ValueError naming what is wrong."""
        if self.modality == "voice":
            if landmarks is not None:
                raise ValueError(f"{self.name}: voice encoders take no landmarks")
            if isinstance(items, (np.ndarray, torch.Tensor)) and items.ndim == 1:
                raise ValueError(f"{self.name}: expected a list of clips; wrap a single clip as [clip]")
            if len(items) == 0:
                raise ValueError(f"{self.name}: no clips")
            return [validate_waveform(w, name=f"clip {i}").numpy() for i, w in enumerate(items)], None
        images = validate_images(items)
        return images, validate_landmarks(landmarks, len(images))

    def fit(self, items, speakers: Sequence[str], *, landmarks=None, progress: bool = False) -> "Encoder":
        """Train on items labelled by identity (a no-op for fixed encoders)."""
        self.is_fitted = True
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
        # One thread (VFMATCH_THREADS), the checks included: per-clip tensor ops are tiny,
        # and with two threads torch.isnan on a 4 s clip took 2.5 ms instead of 0.15 ms here.
        with limit_threads():
            items, landmarks = self.check_items(items, landmarks)
            kw = {"landmarks": landmarks} if self.modality == "face" else {}
            return self._encode(items, batch_size=batch_size, progress=progress, **kw)

    def _encode(self, items, *, landmarks=None, batch_size: int = 32, progress: bool = False):
        raise NotImplementedError

    def fingerprint(self) -> str:
        """The key of cached features: a hash of everything the features depend on.

        That is the code the class runs
        (:func:`vfmatch.fingerprints.traced_code_fingerprint`: the
        class, its bases and the functions they call), the configuration and,
        when the configuration does not name them (trained or random), the
        weights. Recomputed at every call, so it cannot go stale after ``fit``
        or ``load_state_dict``; only the hash of each piece of source is remembered."""
        h = hashlib.sha1(f"{type(self).__qualname__}:{traced_code_fingerprint(type(self))}".encode())
        h.update(json.dumps(self.config(), sort_keys=True, default=str).encode())
        self._hash_weights(h)
        return h.hexdigest()[:20]

    def _hash_weights(self, h) -> None:
        """Add the weights to hash ``h`` when the configuration does not name them."""
        if self.saves_weights:
            for key, value in sorted(self.state_dict().items()):
                h.update(key.encode())
                h.update(value.detach().cpu().contiguous().numpy().tobytes())

    def extra_repr(self) -> str:
        return f"name={self.name!r}, output={self.output!r}"


# ---------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------

# modality -> name -> class. A name ending in ":" ("hf:", "timm:") is a family:
# the rest of a requested name ("hf:microsoft/wavlm-base-plus") is passed to the
# class as its first argument.
_REGISTRY: dict[str, dict[str, type[Encoder]]] = {m: {} for m in MODALITIES}


def register_encoder(name: str) -> Callable[[type[Encoder]], type[Encoder]]:
    """Class decorator: register an encoder under ``name`` for its ``modality``.

    A name ending in ``":"`` (``"hf:"``) registers a family: ``create_encoder``
    passes the rest of the requested name to the class as its first argument.
    Registering a name again replaces the class (re-running a notebook cell)."""
    if not isinstance(name, str) or not name or "+" in name:
        raise ValueError(f"encoder name must be a non-empty string without '+', got {name!r}")

    def wrap(cls: type[Encoder]) -> type[Encoder]:
        if not (inspect.isclass(cls) and issubclass(cls, Encoder)):
            raise TypeError(f"register_encoder({name!r}) decorates Encoder subclasses, not {cls!r}")
        if getattr(cls, "modality", None) not in _REGISTRY:
            raise ValueError(f"{cls.__name__}.modality must be one of {MODALITIES}, not {getattr(cls, 'modality', None)!r}")
        _REGISTRY[cls.modality][name] = cls
        return cls

    return wrap


def unregister_encoder(modality: str, name: str) -> None:
    """Remove encoder ``name`` of ``modality`` from the registry (a notebook's or a test's own encoder)."""
    _REGISTRY.get(modality, {}).pop(name, None)


def create_encoder(modality: str, name: str, **kwargs) -> Encoder:
    """Make the encoder registered as ``name`` for ``modality`` ("voice" or "face").

    ``"a+b"`` concatenates the vectors of encoders ``a`` and ``b`` (keyword
    arguments go to every part that accepts them)."""
    if modality not in _REGISTRY:
        raise ValueError(f"modality must be 'voice' or 'face', not {modality!r}")
    if not isinstance(name, str) or not name:
        raise ValueError(f"encoder name must be a non-empty string, got {name!r}")
    for family, cls in _REGISTRY[modality].items():
        if family.endswith(":") and name.startswith(family):
            return cls(name[len(family) :], **kwargs)
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
    """Registered encoder names, of one modality or of both; families are shown
    as ``"hf:<id>"``. Any vector encoders joined by ``"+"`` also make one."""
    if modality is not None and modality not in _REGISTRY:
        raise ValueError(f"modality must be 'voice' or 'face', not {modality!r}")
    out = []
    for m in [modality] if modality else MODALITIES:
        out += [f"{n}<{'id' if n.startswith('hf') else 'model name'}>" if n.endswith(":") else n for n in _REGISTRY[m]]
    return out


# ---------------------------------------------------------------------------
# Concatenation
# ---------------------------------------------------------------------------


class ConcatEncoder(Encoder):
    """``"a+b"``: the vectors of several encoders side by side (e.g. measured
    pitch statistics next to log-Mel statistics), (n, dim_a + dim_b)."""

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
                p.fit(items, speakers, landmarks=landmarks, progress=progress)
        return super().fit(items, speakers)

    def _encode(self, items, *, landmarks=None, batch_size=32, progress=False):
        kw = {"landmarks": landmarks} if self.modality == "face" else {}
        return np.concatenate([p._encode(items, batch_size=batch_size, progress=progress, **kw) for p in self.parts], axis=1)

    def _hash_weights(self, h) -> None:
        # Each part's fingerprint: its code, configuration and weights.
        for p in self.parts:
            h.update(p.fingerprint().encode())


def _accepted(modality: str, name: str, kwargs: dict) -> dict:
    """The keyword arguments that encoder ``name``'s constructor accepts."""
    cls = _REGISTRY[modality].get(name)
    if cls is None:
        return {}
    params = inspect.signature(cls.__init__).parameters
    return {k: v for k, v in kwargs.items() if k in params}
