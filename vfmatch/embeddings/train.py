"""Training data on the device and identity-balanced mini-batches.

Every method trains on the same batches, built as seed 003 does (sec. 4.2,
"we sample several identities in an iteration, and then randomly sample one
face image and one voice audio clip for each identity"): an epoch shuffles the
training identities, cuts them into groups of ``batch_size``, and draws one
voice and one face of each. So a batch never holds two items of one identity,
and every identity is seen once per epoch whatever its number of clips.

``Batch.neg`` gives every row another row of the batch (uniformly among the
others): the random other-identity negative of the triplet losses (seed 001).

All draws use one ``torch.Generator`` (CPU) seeded by the method's ``seed``,
so training is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .tables import FeatureTable

__all__ = ["TrainingData", "Batch", "epoch_batches"]


def _csr(codes: np.ndarray, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Items grouped by identity: ``order`` (items sorted by code), ``start`` and ``count`` per code."""
    order = np.argsort(codes, kind="stable")
    count = np.bincount(codes, minlength=n)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    return torch.as_tensor(order), torch.as_tensor(start), torch.as_tensor(count)


@dataclass
class TrainingData:
    """The training items of both modalities as tensors on ``device``.

    ``xv`` (n_voices, d_v), ``xf`` (n_faces, d_f): features; ``yv``, ``yf``:
    identity codes (index into ``classes``); ``ref``: optional (n_faces, d_r)
    face features under a frozen reference encoder F (weighted triplet).
    Fine-tuning only: ``media`` ``{modality: EncoderInputs}``, the raw inputs of
    the modalities whose encoders learn (rows as in ``xv`` / ``xf``), and
    ``media_rng``, the seeded generator of their random crops and flips."""

    xv: torch.Tensor
    xf: torch.Tensor
    yv: torch.Tensor
    yf: torch.Tensor
    classes: np.ndarray
    ref: torch.Tensor | None = None
    v_groups: tuple = field(default=(), repr=False)  # (order, start, count) of the voices per identity
    f_groups: tuple = field(default=(), repr=False)  # the same for the faces
    media: dict = field(default_factory=dict, repr=False)
    media_rng: np.random.Generator | None = field(default=None, repr=False)

    @classmethod
    def from_tables(cls, voice: FeatureTable, face: FeatureTable, classes: np.ndarray, device: str,
                    face_reference: np.ndarray | None = None, media: dict | None = None,
                    media_rng: np.random.Generator | None = None) -> "TrainingData":
        index = {c: i for i, c in enumerate(classes)}
        yv = np.array([index[s] for s in voice.labels], dtype=np.int64)
        yf = np.array([index[s] for s in face.labels], dtype=np.int64)
        ref = None
        if face_reference is not None:
            ref = torch.as_tensor(np.asarray(face_reference, dtype=np.float32), device=device)
        return cls(torch.as_tensor(voice.features, device=device), torch.as_tensor(face.features, device=device),
                   torch.as_tensor(yv, device=device), torch.as_tensor(yf, device=device), np.asarray(classes), ref,
                   _csr(yv, len(classes)), _csr(yf, len(classes)), dict(media or {}), media_rng)

    @property
    def n_identities(self) -> int:
        return len(self.classes)

    @property
    def device(self) -> torch.device:
        return self.xv.device

    def draw(self, ids: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One random voice item and one random face item of each identity code in ``ids`` (CPU int64)."""
        picks = []
        for order, start, count in (self.v_groups, self.f_groups):
            u = torch.rand(len(ids), generator=gen)
            k = (u * count[ids]).long().clamp_max(count[ids] - 1)
            picks.append(order[start[ids] + k])
        return picks[0], picks[1]


@dataclass
class Batch:
    """One mini-batch: B distinct identities, one voice and one face each.

    ``y`` (B,) identity codes; ``vi``, ``fi`` item indices into the voice and
    face tables; ``xv``, ``xf`` their features; ``neg`` (B,) for each row the
    row whose face is its negative."""

    y: torch.Tensor
    vi: torch.Tensor
    fi: torch.Tensor
    xv: torch.Tensor
    xf: torch.Tensor
    neg: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


def epoch_batches(data: TrainingData, batch_size: int, gen: torch.Generator) -> list[Batch]:
    """One epoch: every identity once, in ``ceil(M / batch_size)`` batches (a last batch of one identity is dropped)."""
    perm = torch.randperm(data.n_identities, generator=gen)
    out = []
    for a in range(0, len(perm), batch_size):
        ids = perm[a : a + batch_size]
        if len(ids) < 2:
            continue
        vi, fi = data.draw(ids, gen)
        B = len(ids)
        neg = (torch.arange(B) + torch.randint(1, B, (B,), generator=gen)) % B
        dev = data.device
        vi, fi = vi.to(dev), fi.to(dev)
        out.append(Batch(ids.to(dev), vi, fi, data.xv[vi], data.xf[fi], neg.to(dev)))
    return out
