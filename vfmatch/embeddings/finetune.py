"""Fine-tuning the trainable encoders end to end with the heads (the option ``finetune_encoders=True``).

By default the heads sit on frozen encoders whose features are computed once
(seed 001's setting; :mod:`vfmatch.embeddings.heads`). With
``finetune_encoders=True`` the registry's trainable encoders, ``speaker-cnn``
(voices) and ``face-cnn`` (faces), become the first layers of the two-branch
net and learn with the method's own loss::

    log-Mel crop (B, n_mels, crop_frames) -> speaker-cnn net -> (B, d_v) -> voice head -> v (B, D)
    aligned face (B, 3, size, size)       -> face-cnn net    -> (B, d_f) -> face head  -> x (B, D)

Each training step draws, for every voice of the batch, a fresh random crop of
its log-Mel spectrogram, and for every face its aligned image flipped and
shifted at random: the inputs and augmentation the encoders were pre-trained
with (:meth:`vfmatch.features.IdentityNetEncoder.training_batch`). The
encoders start from their pre-trained weights (``fit_population`` trains them
on the training identities first) and learn with the smaller ``encoder_lr``,
so a few epochs adapt them without wiping out what identity training taught.

Only a modality whose encoder is one of these networks is fine-tuned; the
other keeps its cached features (e.g. ``speaker-cnn`` fine-tuned, the
``thumbnail`` face features fixed), and so does a concatenation such as
``f0-formants+speaker-cnn`` (its measured part has no gradient). Raw media are needed, so the option works
from a :class:`~vfmatch.data.population.Population`
(:func:`vfmatch.embeddings.fit_population`), not from precomputed features.

This module holds what the shared training loop
(:meth:`vfmatch.embeddings.EmbeddingMethod._train_epochs`) calls: the raw
inputs of one modality (:class:`EncoderInputs`), a batch's features through
the encoders (:func:`finetune_batch`), every training item's features under
the current encoders (:func:`current_features`), the optimiser's two
learning rates (:func:`parameter_groups`) and training mode with the
encoders' batch-norm statistics kept (:func:`train_mode`).

Book chapter: ``book/10_learned_embeddings.ipynb``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..features import IdentityNetEncoder, population_items

__all__ = ["EncoderInputs", "finetune_inputs", "finetune_batch", "current_features", "parameter_groups",
           "train_mode", "FINETUNABLE"]

#: the registry's encoders that can be fine-tuned: torch networks on raw inputs
FINETUNABLE = ("speaker-cnn", "face-cnn")


@dataclass
class EncoderInputs:
    """One modality's pre-trained encoder and the raw media of the training items.

    ``encoder``: the fitted :class:`~vfmatch.features.IdentityNetEncoder` (never
    changed: the net trains a copy); ``items``, ``landmarks``: the raw clips or
    images (and five-point landmarks), rows as in the modality's training
    table; ``inputs``: ``encoder.training_inputs(items)``, computed once
    (spectrograms or aligned faces)."""

    encoder: IdentityNetEncoder
    items: object
    landmarks: np.ndarray | None
    inputs: object

    @classmethod
    def from_population(cls, encoder: IdentityNetEncoder, population, modality: str) -> "EncoderInputs":
        items, landmarks = population_items(population, modality)
        inputs = encoder.training_inputs(items, landmarks=landmarks)
        return cls(encoder, items, landmarks, inputs)

    def __len__(self) -> int:
        return len(self.items)

    def batch(self, rows: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """One augmented input per training row (a random crop / a flipped, shifted face)."""
        return self.encoder.training_batch(self.inputs, rows, rng)


def finetune_inputs(encoders: dict, population) -> dict[str, EncoderInputs]:
    """``{modality: EncoderInputs}`` for each of ``encoders`` (``{"voice": enc, "face": enc}``) that can be
    fine-tuned, on ``population``'s items. Raises ValueError when none can."""
    out = {m: EncoderInputs.from_population(enc, population, m)
           for m, enc in encoders.items() if isinstance(enc, IdentityNetEncoder)}
    if not out:
        names = ", ".join(f"{m}: {enc.name!r}" for m, enc in encoders.items())
        raise ValueError(f"finetune_encoders=True: no encoder to fine-tune ({names}); only the torch networks "
                         f"on raw inputs {FINETUNABLE} can learn end to end. Pass voice_encoder='speaker-cnn' "
                         "and/or face_encoder='face-cnn'")
    return out


def finetune_batch(net, batch, data):
    """``batch`` with the features of its fine-tuned modalities recomputed through ``net``'s encoders
    (with gradients): fresh random crops / augmented faces of the batch's items. Unchanged when
    ``data`` holds no raw inputs (frozen encoders)."""
    if not data.media:
        return batch
    feats = {"voice": batch.xv, "face": batch.xf}
    for modality, rows in (("voice", batch.vi), ("face", batch.fi)):
        encoder = net.encoder(modality)
        if encoder is not None:
            x = data.media[modality].batch(rows.cpu().numpy(), data.media_rng).to(data.device)
            feats[modality] = encoder.net(x)
    return dataclasses.replace(batch, xv=feats["voice"], xf=feats["face"])


@torch.no_grad()
def current_features(net, data) -> tuple[torch.Tensor, torch.Tensor]:
    """Every training voice's and face's features under ``net``'s current encoders, ``(xv, xf)`` on
    ``data.device`` (encoded as at test time: all windows of a clip averaged). The stored features
    when nothing is fine-tuned. ``sss`` measures each identity's hardness with them."""
    feats = {"voice": data.xv, "face": data.xf}
    for modality, media in data.media.items():
        encoder = net.encoder(modality)
        kw = {"landmarks": media.landmarks} if modality == "face" else {}
        feats[modality] = torch.as_tensor(encoder.encode(media.items, **kw), device=data.device)
        encoder.to(data.device)  # encode() leaves its net on the CPU
    return feats["voice"], feats["face"]


def parameter_groups(net, lr: float, encoder_lr: float) -> list[dict]:
    """The optimiser's parameter groups: heads (and classifier) at ``lr``, encoders at ``encoder_lr``."""
    enc = [p for m in ("voice", "face") if net.encoder(m) is not None for p in net.encoder(m).parameters()]
    ids = {id(p) for p in enc}
    groups = [{"params": [p for p in net.parameters() if id(p) not in ids], "lr": float(lr)}]
    if enc:
        groups.append({"params": enc, "lr": float(encoder_lr)})
    return groups


def train_mode(net) -> None:
    """``net.train()``, but the encoders' batch norms keep their running statistics (eval mode).

    A batch holds one item per identity (a few dozen), and its statistics would differ from the
    running ones that the pre-trained encoder encodes with at test time, and that the heads'
    standardisation was measured on; frozen statistics keep training and test inputs on one footing
    (the usual practice when fine-tuning with small batches). The convolution weights still learn."""
    net.train()
    for modality in ("voice", "face"):
        encoder = net.encoder(modality)
        if encoder is not None:
            for m in encoder.modules():
                if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
                    m.eval()
