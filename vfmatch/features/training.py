"""Training the small identity CNNs: one trainer for ``speaker-cnn`` and ``face-cnn``.

Both learn an embedding the same way: a CNN (``net``: a batch of inputs ->
(B, embed_dim)) and a linear head are trained with cross-entropy to tell the
training identities (speakers) apart; only the CNN is kept, and its output is
the embedding. This is how x-vector speaker models and face-recognition
networks are trained, at toy scale. The two encoders differ only in what an
input is (a log-Mel crop (n_mels, frames) or an aligned face (3, size, size))
and how it is augmented (random crops; flips and shifts).

:class:`IdentityNetEncoder` holds the shared ``fit``; :func:`train_identity_net`
the loop (AdamW, one-cycle learning rate, label smoothing 0.1, seeded).
Book chapters: ``book/02_voice_encoders.ipynb``, ``book/03_face_encoders.ipynb``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..config import default_device
from ..utils import batches, limit_threads, progress as progress_bar
from .encoders import Encoder

__all__ = ["IdentityNetEncoder", "train_identity_net"]


class IdentityNetEncoder(Encoder):
    """Base of the encoders whose CNN ``self.net`` is trained to tell identities apart.

    A subclass builds ``self.net`` in ``__init__`` (untrained: ``fit`` trains
    it), passes ``embed_dim, epochs, batch_size, lr, seed, device`` among its
    keyword arguments, and implements

    * ``_training_inputs(items, landmarks)``: what the net learns from, computed
      once per ``fit`` (spectrograms, aligned faces);
    * ``_augmented_batch(inputs, indices, rng) -> tensor``: one augmented net
      input per index;
    * ``_encode``, the embedding of checked items.
    """

    trainable = True

    @property
    def dim(self) -> int:
        return self.kwargs["embed_dim"]

    def fit(self, items, speakers: Sequence[str], *, landmarks=None, progress: bool = False) -> "IdentityNetEncoder":
        """Train ``self.net`` on ``items`` labelled by identity (``speakers``, one per item)."""
        items, landmarks = self.check_items(items, landmarks)
        if len(items) != len(speakers):
            raise ValueError(f"{self.name}: {len(items)} items but {len(speakers)} identity labels")
        inputs = self._training_inputs(items, landmarks)
        k = self.kwargs
        train_identity_net(
            self.net, k["embed_dim"], lambda idx, rng: self._augmented_batch(inputs, idx, rng), speakers,
            epochs=k["epochs"], batch_size=k["batch_size"], lr=k["lr"], seed=k["seed"],
            device=default_device(k["device"]), progress=progress, desc=self.name,
        )
        return super().fit(items, speakers)

    def training_inputs(self, items, *, landmarks=None):
        """What the net learns from, computed once: checked ``items`` turned into log-Mel spectrograms
        (a list of (n_mels, n_frames_i), dB) or aligned faces ((n, 3, size, size) in [0, 1]).

        Public for end-to-end fine-tuning (:mod:`vfmatch.embeddings.finetune`), which trains
        ``self.net`` further on :meth:`training_batch` of these."""
        items, landmarks = self.check_items(items, landmarks)
        return self._training_inputs(items, landmarks)

    def training_batch(self, inputs, indices: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """One augmented net input per index of ``inputs`` (:meth:`training_inputs`), as ``fit`` draws them:
        a random ``crop_frames`` crop of each spectrogram (B, n_mels, crop_frames), or each face flipped
        and shifted (B, 3, size, size); scaled as ``encode`` scales its inputs."""
        return self._augmented_batch(inputs, np.asarray(indices), rng)

    def _training_inputs(self, items, landmarks):
        raise NotImplementedError

    def _augmented_batch(self, inputs, indices: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        raise NotImplementedError


def train_identity_net(
    net: nn.Module,
    dim: int,
    sample_batch: Callable[[np.ndarray, np.random.Generator], torch.Tensor],
    speakers: Sequence[str],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str = "cpu",
    progress: bool = False,
    desc: str = "identity net",
) -> nn.Module:
    """Train ``net`` and a linear head (dim -> n identities) to classify ``speakers``.

    ``sample_batch(indices, rng) -> tensor`` draws one augmented input per
    item index. The net is re-initialised first, so the result depends only on
    ``seed`` and the data; it is returned in eval mode on the CPU (the head is
    dropped). Raises ValueError with fewer than two identities."""
    y = np.unique(np.asarray(speakers).astype(str), return_inverse=True)[1]
    n_classes = int(y.max()) + 1 if len(y) else 0
    if n_classes < 2:
        raise ValueError(f"{desc}: need items from at least two identities to train, got {n_classes}")
    with limit_threads():
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
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
            order = rng.permutation(len(y))
            for sl in batches(len(order), batch_size):
                idx = order[sl]
                if len(idx) < 2:  # batch norm needs two items
                    continue
                x = sample_batch(idx, rng).to(device)
                loss = nn.functional.cross_entropy(head(net(x)), y_t[idx].to(device), label_smoothing=0.1)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
    return net.eval().cpu()
