"""Saving and loading a fitted embedding method without pickle.

A folder holds two files:

* ``model.safetensors``: every tensor of the two-branch net (heads, their
  standardisation buffers, the classifier of ``sss``, and with
  ``finetune_encoders`` the fine-tuned encoders' weights), read with
  :func:`safetensors.torch.load_file`, which cannot run code;
* ``config.json``: the method's name and parameters (so
  :func:`~vfmatch.embeddings.create_embedding_method` makes it again), the
  input sizes, the training identities, the training history and the
  method's fitted values (e.g. the weighted triplet's damping centre, the
  ``sss`` identity weights) and, when fine-tuned, each encoder's registry
  configuration (``create_encoder(modality, name, **kwargs)`` rebuilds it
  before its weights are loaded).

Book chapter: ``book/10_learned_embeddings.ipynb``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.torch import load_file, save_file

from ..features import create_encoder
from ..utils import CODE_VERSION, to_jsonable
from .heads import TwoBranchNet
from .registry import create_embedding_method

__all__ = ["save_method", "load_method", "FORMAT"]

FORMAT = "vfmatch-embedding-method"
FORMAT_VERSION = 1
WEIGHTS, CONFIG = "model.safetensors", "config.json"


def save_method(method, folder) -> Path:
    """Write a fitted method to ``folder`` (created if needed); returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    net = method.net_
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(folder / WEIGHTS), metadata={"format": FORMAT, "method": method.name})
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "code_version": CODE_VERSION,
        "method": method.name,
        "params": method.get_params(),
        "fitted": {
            "voice_dim": int(method.voice_dim_),
            "face_dim": int(method.face_dim_),
            "n_classes": 0 if net.classifier is None else int(net.classifier.out_features),
            "classes": [str(c) for c in method.classes_],
            "history": method.history_,
            "train_seconds": float(method.train_seconds_),
            "extra": method._fitted_extra(),
            # the fine-tuned encoders' configurations (None: a frozen modality)
            "encoders": {m: None if net.encoder(m) is None else net.encoder(m).config() for m in ("voice", "face")},
        },
    }
    (folder / CONFIG).write_text(json.dumps(to_jsonable(config), indent=1))
    return folder


def load_method(folder, *, device: str | None = None):
    """The fitted method saved in ``folder`` by :func:`save_method`."""
    folder = Path(folder)
    for name in (WEIGHTS, CONFIG):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name}: missing; not a folder written by EmbeddingMethod.save")
    config = json.loads((folder / CONFIG).read_text())
    if config.get("format") != FORMAT:
        raise ValueError(f"{folder / CONFIG}: format {config.get('format')!r} is not {FORMAT!r}")
    if int(config.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(f"{folder / CONFIG}: written by a newer vfmatch (format {config['format_version']})")
    params = dict(config["params"])
    if device is not None:
        params["device"] = device
    method = create_embedding_method(config["method"], **params)
    fitted = config["fitted"]
    encoders = {}
    for modality, spec in (fitted.get("encoders") or {}).items():
        if spec is not None:  # rebuilt untrained from the registry; the weights come next
            encoders[modality] = create_encoder(spec["modality"], spec["name"], **spec["kwargs"])
    net = TwoBranchNet(fitted["voice_dim"], fitted["face_dim"], embed_dim=int(params["embed_dim"]),
                       hidden_dim=int(params["hidden_dim"]), n_hidden=int(params["n_hidden"]),
                       dropout=float(params["dropout"]), n_classes=int(fitted["n_classes"]),
                       voice_encoder=encoders.get("voice"), face_encoder=encoders.get("face"))
    net.load_state_dict(load_file(str(folder / WEIGHTS)), strict=True)
    for enc in encoders.values():
        enc.is_fitted = True  # its trained weights are loaded
    method.net_ = net.eval()
    method.classes_ = np.asarray(fitted["classes"], dtype=str)
    method.voice_dim_, method.face_dim_ = int(fitted["voice_dim"]), int(fitted["face_dim"])
    method.history_ = list(fitted["history"])
    method.train_seconds_ = float(fitted["train_seconds"])
    method._restore_extra(fitted.get("extra", {}))
    return method
