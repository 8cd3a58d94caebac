"""The vision-transformer calculator: a timm ``VisionTransformer`` trained from
scratch on Mel spectrograms (voice) or on aligned face images (face).

The patent (US 12,217,549) extracts the Fitzpatrick skin-tone metaproperty by
"feeding the facial image into a transformer, e.g. a vision transformer" and,
for the voice, by "performing predictions on [a Mel spectrogram] using
transformers". This module is that calculator, registered as ``"vit"``:

* spectrograms: a list of ``(n_mels, n_frames_i)`` arrays (encoder
  ``"logmel"``), seen as one-channel, non-square ``n_mels x window`` inputs;
  training crops a random window per clip and epoch, prediction averages
  overlapping windows;
* images: an array ``(n, C, H, W)`` (encoder ``"pixels"``); training flips and
  shifts, prediction averages the image and its mirror.

``predict_proba`` returns ``(n, K)`` like every calculator
(:mod:`vfmatch.extractors.calculators`); :meth:`ViTCalculator.attention_rollout`
maps where the networks look. Book chapter: ``book/04_metaproperties.ipynb``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..config import default_device
from ..features.audio import time_windows
from ..utils import parallel_map, progress as progress_bar
from .calculators import Calculator, _class_weights, _load_torch_state, _n_items, _torch_state, register_calculator

__all__ = ["ViTCalculator", "PatchProjection"]


class PatchProjection(nn.Conv2d):
    """A ViT's patch embedding, computed as unfold + one matrix product.

    Same parameters (``weight`` of shape (embed_dim, C, patch_h, patch_w),
    ``bias``) and same output ``(n, embed_dim, H / patch_h, W / patch_w)`` as
    the ``nn.Conv2d`` whose stride is its kernel that timm builds, so saved
    networks load either way. Why: on a CPU, ``conv2d``'s backward pass for the
    voice's tall 64 x 4 patches took 38 ms per batch of 64 spectrograms against
    6 ms this way (torch 2.14, 2 threads), which made a training step of the
    voice ViT 1.7x slower (69 ms against 40 ms); for 8 x 8 face patches the two
    cost the same per step.
    """

    def __init__(self, in_chans: int, embed_dim: int, patch: Sequence[int]):
        super().__init__(in_chans, embed_dim, kernel_size=tuple(patch), stride=tuple(patch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (n, C, H, W) -> (n, embed_dim, H // patch_h, W // patch_w)."""
        (ph, pw), (n, c, h, w) = self.kernel_size, x.shape
        # (n, C, H', W', ph, pw) -> one row per patch, flattened in the weight's (C, ph, pw) order
        patches = x.unfold(2, ph, ph).unfold(3, pw, pw).permute(0, 2, 3, 1, 4, 5).reshape(n, (h // ph) * (w // pw), c * ph * pw)
        out = nn.functional.linear(patches, self.weight.reshape(self.out_channels, -1), self.bias)
        return out.transpose(1, 2).reshape(n, self.out_channels, h // ph, w // pw)


@register_calculator("vit")
class ViTCalculator(Calculator):
    """A vision transformer (timm ``VisionTransformer``) trained from scratch.

    The patent extracts the skin-tone metaproperty by "feeding the facial image
    into a transformer, e.g. a vision transformer" and, for the voice, by
    "performing predictions on [a Mel spectrogram] using transformers".

    Two input kinds:

    * **spectrograms** -- a list of (n_mels, n_frames_i) arrays (encoder
      ``"logmel"``). The ViT sees one channel and a non-square input of
      ``n_mels x window`` frames, cut into ``patch_size`` = (mel bands, frames)
      patches. Training draws a random window from each clip every epoch (a
      cheap augmentation); prediction averages the probabilities of
      overlapping windows covering the whole clip. Each clip's mean level is
      removed first (loudness is a recording property).
    * **images** -- an array (n, C, H, W) (encoder ``"pixels"``). Training
      flips and shifts; prediction averages the image and its mirror.

    :meth:`attention_rollout` shows which patches the prediction attends to.

    **Auxiliary targets** (``fit(..., auxiliary=...)``): other metaproperties of
    the same items, each with its own output head on the shared transformer,
    trained with weight ``aux_weight``. A voice carries skin tone only
    indirectly (through accent and mother tongue, which go with ethnicity), so
    learning those richer targets alongside gives the few hundred training
    people a representation worth reading skin tone from. Prediction uses only
    the main head.

    Parameters
    ----------
    patch_size : int or (height, width); default (8, 16) for spectrograms, 8 for images
    window : int, frames per spectrogram input (ignored for images)
    embed_dim, depth, num_heads, mlp_ratio : the transformer's size
    pool : "token" (a class token) or "avg" (mean of the patch tokens)
    epochs, batch_size, lr, weight_decay, drop_rate, label_smoothing : training
        (AdamW with a one-cycle learning rate)
    class_weight, smoothing : as for :class:`LogisticCalculator`
    aux_weight : float, weight of the mean auxiliary loss beside the main one
    n_models : int, networks trained with seeds ``seed, seed+1, ...`` whose
        probabilities are averaged (an ensemble: steadier than one network
        when training people are few)
    seed : int; device : None = :func:`vfmatch.config.default_device`
    progress : bool, a progress bar over epochs
    """

    input_kind = "matrix"
    takes_auxiliary = True

    def __init__(
        self,
        patch_size: int | Sequence[int] | None = None,
        window: int = 128,
        embed_dim: int = 64,
        depth: int = 3,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
        epochs: int = 40,
        batch_size: int = 64,
        lr: float = 2e-3,
        weight_decay: float = 0.05,
        drop_rate: float = 0.1,
        pool: str = "token",
        label_smoothing: float = 0.1,
        class_weight: str | None = "balanced",
        smoothing: float = 1e-3,
        aux_weight: float = 1.0,
        n_models: int = 1,
        seed: int = 0,
        device: str | None = None,
        progress: bool = False,
    ):
        self.patch_size, self.window, self.embed_dim, self.depth, self.num_heads = patch_size, window, embed_dim, depth, num_heads
        self.pool = pool
        self.mlp_ratio, self.epochs, self.batch_size, self.lr, self.weight_decay = mlp_ratio, epochs, batch_size, lr, weight_decay
        self.drop_rate, self.label_smoothing, self.class_weight = drop_rate, label_smoothing, class_weight
        self.smoothing, self.aux_weight, self.n_models = smoothing, aux_weight, n_models
        self.seed, self.device, self.progress = seed, device, progress

    # -- inputs ------------------------------------------------------------------
    @staticmethod
    def _mode(X) -> str:
        if isinstance(X, (list, tuple)):
            if not all(np.ndim(x) == 2 for x in X):
                raise ValueError("vit: a list input must hold spectrograms of shape (n_mels, n_frames)")
            return "spectrogram"
        if np.ndim(X) == 4:
            return "image"
        raise ValueError(f"vit: expected a list of spectrograms (n_mels, n_frames) or images (n, C, H, W), got shape {np.shape(X)}")

    def _prepare(self, X) -> list[np.ndarray] | np.ndarray:
        """Normalise inputs with the statistics stored at fit time."""
        mode = self._mode(X)
        if mode != self.mode_:
            raise ValueError(f"vit: fitted on {self.mode_}s, got {mode}s")
        if mode == "spectrogram":
            out = []
            for i, s in enumerate(X):
                s = np.asarray(s, dtype=np.float32)
                if s.shape[0] != self.img_size_[0] or s.shape[1] == 0 or not np.all(np.isfinite(s)):
                    raise ValueError(f"vit: spectrogram {i} has shape {s.shape} or non-finite values; expected ({self.img_size_[0]}, n_frames)")
                out.append(((s - s.mean()) - self.band_mean_[:, None]) / self.band_std_[:, None])
            return out
        X = np.asarray(X, dtype=np.float32)
        if X.shape[1:] != (self.in_chans_, *self.img_size_) or not np.all(np.isfinite(X)):
            raise ValueError(f"vit: expected finite images of shape (n, {self.in_chans_}, {self.img_size_[0]}, {self.img_size_[1]}), got {X.shape}")
        return (X - self.mean_[None, :, None, None]) / self.std_[None, :, None, None]

    def _build(self) -> nn.Module:
        # deferred: timm (and the torchvision it loads) takes seconds to import, and only
        # training or loading a ViT needs it, not every user of vfmatch.extractors
        from timm.models.vision_transformer import VisionTransformer

        net = VisionTransformer(
            img_size=tuple(self.img_size_), patch_size=tuple(self.patch_), in_chans=self.in_chans_,
            num_classes=len(self.classes_) + sum(self.aux_sizes_), embed_dim=self.embed_dim, depth=self.depth, num_heads=self.num_heads,
            mlp_ratio=self.mlp_ratio, drop_rate=self.drop_rate, class_token=self.pool == "token", global_pool=self.pool,
        )
        net.patch_embed.proj = PatchProjection(self.in_chans_, self.embed_dim, self.patch_)
        return net

    def _fit(self, X, y, groups, auxiliary=None):
        self.mode_ = self._mode(X)
        auxiliary = auxiliary or {}
        self.aux_names_, self.aux_sizes_ = list(auxiliary), [k for _, k in auxiliary.values()]
        if self.mode_ == "spectrogram":
            self.in_chans_, self.img_size_ = 1, (int(np.shape(X[0])[0]), int(self.window))
            self.patch_ = tuple(self.patch_size) if isinstance(self.patch_size, (list, tuple)) else ((8, 16) if self.patch_size is None else (self.patch_size,) * 2)
            # Per-band statistics over all training frames, after removing each clip's level.
            frames = np.concatenate([np.asarray(s) - np.mean(s) for s in X], axis=1)
            self.band_mean_, self.band_std_ = frames.mean(axis=1), frames.std(axis=1) + 1e-6
        else:
            X = np.asarray(X, dtype=np.float32)
            self.in_chans_, self.img_size_ = int(X.shape[1]), (int(X.shape[2]), int(X.shape[3]))
            p = self.patch_size or 8
            self.patch_ = tuple(p) if isinstance(p, (list, tuple)) else (p, p)
            self.mean_, self.std_ = X.mean(axis=(0, 2, 3)), X.std(axis=(0, 2, 3)) + 1e-6
        if any(s % p for s, p in zip(self.img_size_, self.patch_)):
            raise ValueError(f"vit: input size {self.img_size_} is not a multiple of patch_size {self.patch_}")
        data = self._prepare(X)
        # Auxiliary heads: their labels (-1 = unknown) and class weights over the known ones.
        aux = [(torch.as_tensor(labels), _class_weights(labels[labels >= 0], k, self.class_weight)) for labels, k in auxiliary.values()]
        seeds = [self.seed + m for m in range(int(self.n_models))]
        if len(seeds) == 1 or default_device(self.device) != "cpu":
            self.nets_ = [self._train_one(data, y, aux, s) for s in seeds]
        else:
            # An ensemble on a CPU: one network per worker process, one thread each
            # (vfmatch.utils.parallel_map), so the result does not depend on the number of workers.
            states = parallel_map(_train_member, [(self, data, y, aux, s) for s in seeds], min_items=2,
                                  show_progress=self.progress, desc=f"ViT ensemble ({self.mode_}s)")
            self.nets_ = [self._build() for _ in states]
            for net, state in zip(self.nets_, states):
                net.load_state_dict(state)
                net.eval()

    @property
    def net_(self) -> nn.Module:
        """The first network of the ensemble (all of them: ``nets_``)."""
        return self.nets_[0]

    def _train_one(self, data, y, aux, seed: int, show_progress: bool | None = None) -> nn.Module:
        """One network trained from scratch with its own seed (AdamW, one-cycle schedule)."""
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        device = default_device(self.device)
        net = self._build().to(device)
        weight = torch.as_tensor(_class_weights(y, len(self.classes_), self.class_weight), dtype=torch.float32, device=device)
        aux = [(labels, torch.as_tensor(w, dtype=torch.float32, device=device)) for labels, w in aux]
        bounds = np.cumsum([len(self.classes_), *self.aux_sizes_])  # main head, then each auxiliary head
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        steps_per_epoch = int(np.ceil(len(y) / self.batch_size))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=max(1, steps_per_epoch * int(self.epochs)), pct_start=0.15)
        yt = torch.as_tensor(y)
        net.train()
        show = self.progress if show_progress is None else show_progress
        for _ in progress_bar(range(int(self.epochs)), show, f"ViT ({self.mode_}s, seed {seed})", int(self.epochs)):
            order = rng.permutation(len(y))
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                logits = net(self._augment(data, idx, rng).to(device))
                loss = nn.functional.cross_entropy(logits[:, : bounds[0]], yt[idx].to(device), weight=weight, label_smoothing=self.label_smoothing)
                for (labels, w), lo, hi in zip(aux, bounds[:-1], bounds[1:]):
                    target = labels[idx].to(device)
                    if (target >= 0).any():  # ignore_index=-1 skips unknown labels
                        aux_loss = nn.functional.cross_entropy(logits[:, lo:hi], target, weight=w, ignore_index=-1, label_smoothing=self.label_smoothing)
                        loss = loss + self.aux_weight * aux_loss / len(aux)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        return net.eval().cpu()

    def _augment(self, data, idx, rng) -> torch.Tensor:
        if self.mode_ == "spectrogram":
            w = self.img_size_[1]
            crops = []
            for i in idx:
                s = data[i]
                if s.shape[1] <= w:
                    s = np.tile(s, (1, int(np.ceil(w / s.shape[1]))))
                start = rng.integers(0, s.shape[1] - w + 1)
                crops.append(s[:, start : start + w])
            return torch.as_tensor(np.stack(crops))[:, None]
        x = torch.as_tensor(data[idx])
        flip = torch.as_tensor(rng.random(len(idx)) < 0.5)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        dy, dx = (int(v) for v in rng.integers(-3, 4, 2))
        return torch.roll(x, shifts=(dy, dx), dims=(2, 3))

    def _windows(self, data) -> tuple[torch.Tensor, np.ndarray]:
        """All model inputs for prediction and which item each belongs to."""
        if self.mode_ == "spectrogram":
            wins = [time_windows(s, self.img_size_[1]) for s in data]
            owner = np.repeat(np.arange(len(wins)), [len(w) for w in wins])
            return torch.as_tensor(np.concatenate(wins))[:, None], owner
        x = torch.as_tensor(data)
        return torch.cat([x, x.flip(-1)]), np.concatenate([np.arange(len(x))] * 2)

    @torch.no_grad()
    def _predict_local(self, X):
        inputs, owner = self._windows(self._prepare(X))
        device = default_device(self.device)
        k = len(self.classes_)  # the main head; auxiliary heads follow it
        out = np.zeros((_n_items(X), k))
        for net in self.nets_:  # the ensemble's mean probability over every window of an item
            net.to(device)
            probs = torch.cat([net(inputs[s : s + 256].to(device))[:, :k].softmax(dim=1).cpu() for s in range(0, len(inputs), 256)]).numpy()
            net.cpu()
            np.add.at(out, owner, probs)
        return out / out.sum(axis=1, keepdims=True)

    @torch.no_grad()
    def attention_rollout(self, x) -> np.ndarray:
        """Where the model looks: attention rollout (Abnar & Zuidema 2020).

        Multiplies the head-averaged attention matrices of all blocks (each
        mixed half-and-half with the identity, for the residual connections)
        and reads the class token's row over the patches (with ``pool="avg"``,
        the mean row of all tokens, since their average is what is classified).

        Parameters
        ----------
        x : one spectrogram (n_mels, n_frames) or one image (C, H, W)

        Returns
        -------
        float array of the input's spatial shape ((n_mels, n_frames) or (H, W)),
        each patch's share of attention (sums to 1 per window), averaged over
        overlapping windows.
        """
        if not hasattr(self, "nets_"):
            raise RuntimeError("attention_rollout needs a fitted ViT")
        item = [np.asarray(x, dtype=np.float32)] if self.mode_ == "spectrogram" else np.asarray(x, dtype=np.float32)[None]
        inputs, _ = self._windows(self._prepare(item))
        if self.mode_ == "image":
            inputs = inputs[:1]  # the image itself, not its mirror
        maps = np.mean([self._rollout(net, inputs) for net in self.nets_], axis=0)  # (n_windows, grid_h, grid_w)
        ph, pw = self.patch_
        big = maps.repeat(ph, axis=1).repeat(pw, axis=2)  # back to input pixels
        if self.mode_ == "image":
            return big[0]
        n_frames = max(np.shape(x)[1], self.img_size_[1])
        w = self.img_size_[1]
        starts = [int(s) for s in _window_starts(n_frames, w)]
        total, count = np.zeros((self.img_size_[0], n_frames)), np.zeros((1, n_frames))
        for m, s in zip(big, starts):
            total[:, s : s + w] += m
            count[:, s : s + w] += 1
        out = total / np.maximum(count, 1)
        return out[:, : np.shape(x)[1]]

    @staticmethod
    def _rollout(net: nn.Module, inputs: torch.Tensor) -> np.ndarray:
        blocks = net.blocks
        captured: list[torch.Tensor] = []
        hooks, fused = [], []
        for blk in blocks:
            fused.append(blk.attn.fused_attn)
            blk.attn.fused_attn = False  # the explicit path exposes the attention matrix
            hooks.append(blk.attn.attn_drop.register_forward_hook(lambda m, inp, out: captured.append(out.detach())))
        try:
            net.eval()(inputs)
        finally:
            for blk, f, h in zip(blocks, fused, hooks):
                blk.attn.fused_attn = f
                h.remove()
        n_tokens = captured[0].shape[-1]
        rollout = torch.eye(n_tokens).expand(inputs.shape[0], n_tokens, n_tokens)
        for attn in captured:
            a = 0.5 * attn.mean(dim=1) + 0.5 * torch.eye(n_tokens)
            a = a / a.sum(dim=-1, keepdim=True)
            rollout = a @ rollout
        n_prefix = n_tokens - int(np.prod(net.patch_embed.grid_size))
        # With a class token, its row; with average pooling, the mean row of all tokens.
        cls_to_patches = rollout[:, 0, n_prefix:] if n_prefix else rollout.mean(dim=1)
        cls_to_patches = cls_to_patches / cls_to_patches.sum(dim=1, keepdim=True)
        return cls_to_patches.reshape(-1, *net.patch_embed.grid_size).numpy()

    def _state(self):
        arrays = {k: v for m, net in enumerate(self.nets_) for k, v in _torch_state(net, f"net{m}").items()}
        meta = {"mode_": self.mode_, "in_chans_": self.in_chans_, "img_size_": list(self.img_size_), "patch_": list(self.patch_),
                "aux_names_": list(self.aux_names_), "aux_sizes_": [int(k) for k in self.aux_sizes_], "n_nets_": len(self.nets_)}
        if self.mode_ == "spectrogram":
            arrays.update({"band_mean_": self.band_mean_, "band_std_": self.band_std_})
        else:
            arrays.update({"mean_": self.mean_, "std_": self.std_})
        return arrays, meta

    def _load_state(self, arrays, meta):
        self.mode_, self.in_chans_ = meta["mode_"], int(meta["in_chans_"])
        self.img_size_, self.patch_ = tuple(meta["img_size_"]), tuple(meta["patch_"])
        self.aux_names_, self.aux_sizes_ = list(meta.get("aux_names_", [])), [int(k) for k in meta.get("aux_sizes_", [])]
        if self.mode_ == "spectrogram":
            self.band_mean_, self.band_std_ = np.asarray(arrays["band_mean_"]), np.asarray(arrays["band_std_"])
        else:
            self.mean_, self.std_ = np.asarray(arrays["mean_"]), np.asarray(arrays["std_"])
        self.nets_ = []
        for m in range(int(meta["n_nets_"])):
            net = self._build()
            _load_torch_state(net, arrays, f"net{m}")
            self.nets_.append(net.eval())




def _train_member(job) -> dict:
    """One ensemble member's weights (a state dict): ``job = (calculator, data, y, aux, seed)``."""
    calc, data, y, aux, seed = job
    return calc._train_one(data, y, aux, seed, show_progress=False).state_dict()


def _window_starts(n_frames: int, width: int, hop: int | None = None) -> list[int]:
    """Start frames of :func:`vfmatch.features.audio.time_windows` (same rule)."""
    hop = max(1, int(hop or width // 2))
    n = max(n_frames, width)
    starts = list(range(0, n - width + 1, hop))
    if starts[-1] != n - width:
        starts.append(n - width)
    return starts


