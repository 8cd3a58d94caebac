"""The two-branch network: one projection head per modality into a shared space.

Seed 001 (sec. 3, Fig. 3) puts "two feed-forward neural networks" on top of
frozen pretrained encoders (TitaNet for voices, IR-SE50 for faces); seed 003
(Fig. 2) ends its two encoders in a 128-d embedding followed by one identity
classifier shared by both. Here the encoders are those of the registry
(:func:`vfmatch.features.create_encoder`)::

    voice features (n, d_v) -> standardise -> Linear -> ReLU -> Dropout -> Linear -> v (n, D)
    face features  (n, d_f) -> standardise -> Linear -> ReLU -> Dropout -> Linear -> x (n, D)
    scoring: cos(v, x), i.e. the dot product of the L2-normalised embeddings

*Frozen by default.* The encoders' features are computed once (and cached)
and only the heads (and, for ``sss``, the classifier) learn: seed 001's
setting, and the only one open to every encoder of the registry, since most
compute their features through steps with no gradient (pitch and formant
measurements, log-Mel statistics, CIELAB thumbnails, Hub models run as
feature extractors).

*Fine-tuning.* With ``finetune_encoders=True`` the two trainable encoders,
``speaker-cnn`` and ``face-cnn`` (torch networks on log-Mel crops and
aligned face pixels), become part of this net (``voice_encoder`` /
``face_encoder``) and learn end to end with the method's loss, at their own
smaller learning rate ``encoder_lr``, starting from their identity-trained
weights (:mod:`vfmatch.embeddings.finetune`). Their weights are saved with
the heads. Measured with ``benchmarks/bench_methods.py --finetune-encoders``
(default population, seed 0, 240 training identities, a 2-core CPU): the
held-out 1:2 V->F accuracy moved from 0.700 to 0.715 (``triplet``) and from
0.698 to 0.719 (``contrastive``), gains well inside the 95 % identity-bootstrap
intervals (about +-0.04), for 50-70 times the training time, since every step
runs both CNNs forward and backward.

Book chapter: ``book/10_learned_embeddings.ipynb``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["ProjectionHead", "TwoBranchNet"]


class ProjectionHead(nn.Module):
    """Standardise, then an MLP: ``in_dim -> hidden_dim (x n_hidden, ReLU, dropout) -> out_dim``.

    The per-feature mean and standard deviation of the training items are
    buffers (saved with the weights), so features of any scale (dB, CIELAB,
    network activations) enter on one footing. ``forward(x)`` returns the raw
    (B, out_dim) embedding; :meth:`embed` the L2-normalised one."""

    def __init__(self, in_dim: int, out_dim: int = 128, hidden_dim: int = 256, n_hidden: int = 1, dropout: float = 0.2):
        super().__init__()
        if in_dim < 1 or out_dim < 1:
            raise ValueError(f"a projection head needs in_dim and out_dim >= 1, got {in_dim} and {out_dim}")
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        layers: list[nn.Module] = []
        d = in_dim
        for _ in range(int(n_hidden)):
            layers += [nn.Linear(d, hidden_dim), nn.ReLU(), nn.Dropout(dropout)]
            d = hidden_dim
        layers.append(nn.Linear(d, out_dim))
        self.mlp = nn.Sequential(*layers)

    def set_standardisation(self, features: torch.Tensor) -> None:
        """Use the mean and standard deviation of ``features`` (n, in_dim); constant columns get std 1."""
        self.mean.copy_(features.mean(dim=0))
        std = features.std(dim=0)
        self.std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.standardise(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.forward(x), dim=1)


class TwoBranchNet(nn.Module):
    """A voice head, a face head and, with ``n_classes``, an identity classifier shared by both;
    when fine-tuning, the encoders in front of the heads (``voice_encoder``, ``face_encoder``).

    The classifier is seed 003's ``W = [w_1 .. w_M]`` (D x M, no bias, eq. (1)-(2)):
    ``classify(e) = e W``."""

    def __init__(self, voice_dim: int, face_dim: int, *, embed_dim: int = 128, hidden_dim: int = 256,
                 n_hidden: int = 1, dropout: float = 0.2, n_classes: int = 0,
                 voice_encoder: nn.Module | None = None, face_encoder: nn.Module | None = None):
        super().__init__()
        self.voice = ProjectionHead(voice_dim, embed_dim, hidden_dim, n_hidden, dropout)
        self.face = ProjectionHead(face_dim, embed_dim, hidden_dim, n_hidden, dropout)
        self.classifier = nn.Linear(embed_dim, n_classes, bias=False) if n_classes else None
        # Fine-tuning only: the trainable encoders (IdentityNetEncoder, their torch net in `.net`),
        # submodules so that their weights train, move to the device and are saved with the heads.
        self.voice_encoder = voice_encoder
        self.face_encoder = face_encoder

    def encoder(self, modality: str) -> nn.Module | None:
        """The fine-tuned encoder of ``modality`` ("voice" or "face"), or None when its features are frozen."""
        return self.voice_encoder if modality == "voice" else self.face_encoder

    def classify(self, embeddings: torch.Tensor) -> torch.Tensor:
        if self.classifier is None:
            raise RuntimeError("this network has no identity classifier (n_classes=0)")
        return self.classifier(embeddings)
