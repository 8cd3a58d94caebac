"""The four learned-embedding methods, registered by name.

==================  =================================================================
name                what it trains (equations of the seeds)
==================  =================================================================
``triplet``         the standard triplet loss with a voice anchor, its face and a
                    random other identity's face, margin beta (seed 001's baseline)
``weighted_triplet`` seed 001 eq. (4): each triplet damped by f(dist(f_i^F, f_j^F)),
                    f a sigmoid of the cosine distance between the positive's and
                    the negative's faces under a frozen face encoder F
``sss``             seed 003 ("Seeking the Shape of Sound"): implicit alignment
                    (a shared identity classifier, eq. (1)-(3)), explicit alignment
                    (the N-pair loss, eq. (4)) and adaptive identity re-weighting
                    (Algorithm 1, eq. (6)-(11)); each part can be switched off
``contrastive``     symmetric InfoNCE over the batch (CLIP-style), temperature tau
==================  =================================================================

All share the two-branch net and the training loop of
:class:`~vfmatch.embeddings.EmbeddingMethod`; each defines its loss on a
batch. Make one with ``create_embedding_method(name, **params)``.

Book chapter: ``book/10_learned_embeddings.ipynb``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .base import EmbeddingMethod
from .finetune import current_features, finetune_batch, train_mode
from .losses import (batch_weights, explicit_alignment_loss, implicit_alignment_loss, info_nce_loss, triplet_loss,
                     weighted_triplet_loss)
from .registry import register_embedding_method
from .reweight import IdentityReweighting
from .train import Batch, TrainingData, epoch_batches

__all__ = ["TripletEmbedding", "WeightedTripletEmbedding", "SSSEmbedding", "ContrastiveEmbedding"]


@register_embedding_method("triplet")
class TripletEmbedding(EmbeddingMethod):
    """The triplet loss with random other-identity negatives (seed 001 sec. 3, its baseline).

    For each voice ``v_i`` of a batch, ``f_i`` a face of the same identity and
    ``f_j`` the face of another identity of the batch drawn at random:
    ``(||v_i - f_i||^2 - ||v_i - f_j||^2 + margin)^+`` on L2-normalised
    embeddings (:func:`~vfmatch.embeddings.losses.triplet_loss`), averaged.

    Parameters: ``margin`` (beta, in squared-distance units, 0 to 4; 1.0 by
    default), ``dropout`` (0.3 by default) and those of
    :class:`~vfmatch.embeddings.EmbeddingMethod`.
    """

    reference = "seed 001 sec. 3: triplet loss (FaceNet), random other-identity negatives"

    def __init__(self, *, margin: float = 1.0, dropout: float = 0.3, **kwargs):
        super().__init__(dropout=dropout, **kwargs)
        self.margin = margin

    def _check_params(self) -> None:
        super()._check_params()
        if not self.margin >= 0:
            raise ValueError(f"{self.name}: margin must be >= 0, got {self.margin}")

    def batch_loss(self, net, batch: Batch, data: TrainingData, identity_weights=None) -> torch.Tensor:
        v, f = net.voice.embed(batch.xv), net.face.embed(batch.xf)
        return triplet_loss(v, f, f[batch.neg], margin=float(self.margin))


@register_embedding_method("weighted_triplet")
class WeightedTripletEmbedding(TripletEmbedding):
    """Seed 001 eq. (4), the face-distance-weighted triplet loss::

        L_F = sum_k ( ||v_ik - f_ik||^2 - ||v_ik - f_jk||^2 + beta )^+ * f(dist(f_ik^F, f_jk^F))

    The triplets are those of ``triplet``; each is damped by
    ``f(d) = sigmoid((d - damping_center) / damping_scale)``, ``d`` the cosine
    distance between the positive's and the negative's face under the frozen
    face encoder F: confusing two people who look alike costs less than
    confusing two who look different.

    F is, as in seed 001 (IR-SE50 both as the input encoder and as F), the face
    encoder whose features the method is fitted on, standardised with the
    training mean and standard deviation; ``fit(..., face_reference=R)`` uses
    other features (e.g. another face encoder's) instead.

    Parameters
    ----------
    margin : beta
    damping : ``"sigmoid"`` (seed 001's example of a non-decreasing f) or ``"none"``
        (f = 1: the plain triplet loss, for ablation)
    damping_center, damping_scale : the sigmoid's centre and width in cosine-distance
        units. ``None`` (default): measured at fit on 4096 random pairs of faces of
        two different training identities, the centre their median distance and
        the scale their standard deviation, so the factors spread over about
        (0.1, 0.9) whatever the encoder. Fitted values: ``damping_center_``,
        ``damping_scale_``.
    """

    reference = "seed 001 eq. (4): face-distance-weighted triplet loss"

    def __init__(self, *, damping: str = "sigmoid", damping_center: float | None = None,
                 damping_scale: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.damping = damping
        self.damping_center = damping_center
        self.damping_scale = damping_scale

    def _check_params(self) -> None:
        super()._check_params()
        if self.damping not in ("sigmoid", "none"):
            raise ValueError(f"{self.name}: damping must be 'sigmoid' or 'none', got {self.damping!r}")
        if self.damping_scale is not None and not self.damping_scale > 0:
            raise ValueError(f"{self.name}: damping_scale must be > 0, got {self.damping_scale}")

    def _prepare(self, data: TrainingData, gen: torch.Generator) -> None:
        if data.ref is None:  # F = the input face encoder, standardised as the head standardises it
            mean, std = data.xf.mean(dim=0), data.xf.std(dim=0)
            data.ref = (data.xf - mean) / torch.where(std > 1e-6, std, torch.ones_like(std))
        n = 4096
        a = torch.randint(0, len(data.yf), (n,), generator=gen).to(data.device)
        b = torch.randint(0, len(data.yf), (n,), generator=gen).to(data.device)
        other = data.yf[a] != data.yf[b]
        d = 1.0 - F.cosine_similarity(data.ref[a[other]], data.ref[b[other]], dim=1)
        self.damping_center_ = float(d.median()) if self.damping_center is None else float(self.damping_center)
        self.damping_scale_ = float(d.std().clamp_min(1e-3)) if self.damping_scale is None else float(self.damping_scale)

    def batch_loss(self, net, batch: Batch, data: TrainingData, identity_weights=None) -> torch.Tensor:
        v, f = net.voice.embed(batch.xv), net.face.embed(batch.xf)
        ref = data.ref[batch.fi]
        return weighted_triplet_loss(v, f, f[batch.neg], ref, ref[batch.neg], margin=float(self.margin),
                                     center=self.damping_center_, scale=self.damping_scale_, damping=self.damping)

    def _complete_data(self, data: TrainingData, net) -> None:
        if data.ref is None:  # F = the input face encoder, standardised with the training statistics
            data.ref = net.face.standardise(data.xf)

    def _fitted_extra(self) -> dict:
        return {"damping_center_": self.damping_center_, "damping_scale_": self.damping_scale_}

    def _restore_extra(self, extra: dict) -> None:
        self.damping_center_ = float(extra["damping_center_"])
        self.damping_scale_ = float(extra["damping_scale_"])


@register_embedding_method("contrastive")
class ContrastiveEmbedding(EmbeddingMethod):
    """Symmetric InfoNCE (CLIP-style) over the batch.

    Row i of a batch is identity i's voice and face; the other rows' faces
    (voices) are the negatives of voice (face) i:
    ``L = (CE(V F^T / tau, I) + CE(F V^T / tau, I)) / 2`` on cosine similarities
    (:func:`~vfmatch.embeddings.losses.info_nce_loss`).

    Parameters: ``temperature`` (tau > 0, fixed) and those of :class:`~vfmatch.embeddings.EmbeddingMethod`.
    """

    reference = "symmetric InfoNCE (CLIP), the contrastive baseline"

    def __init__(self, *, temperature: float = 0.2, **kwargs):
        super().__init__(**kwargs)
        self.temperature = temperature

    def _check_params(self) -> None:
        super()._check_params()
        if not self.temperature > 0:
            raise ValueError(f"{self.name}: temperature must be > 0, got {self.temperature}")

    def batch_loss(self, net, batch: Batch, data: TrainingData, identity_weights=None) -> torch.Tensor:
        return info_nce_loss(net.voice(batch.xv), net.face(batch.xf), temperature=float(self.temperature), y=batch.y)


@register_embedding_method("sss")
class SSSEmbedding(EmbeddingMethod):
    """Seed 003, "Seeking the Shape of Sound": two-level modality alignment and identity re-weighting.

    Loss (eq. (11)) = implicit alignment + explicit alignment, on the raw embeddings:

    * implicit (eq. (1)-(3)): one linear identity classifier ``W`` (D x M, no bias)
      shared by both modalities, softmax cross-entropy of ``x W`` (faces) and
      ``v W`` (voices) over the M training identities;
    * explicit (eq. (4)): the N-pair loss
      ``log(m + sum_{y_j != y_i} exp(v_i . x_hat_j) / exp(v_i . x_hat_i))`` and its
      face-anchored twin, over the batch.

    Identity re-weighting (Algorithm 1), with ``reweight=True``:

    1. warm-up: ``warmup_epochs`` epochs of the unweighted loss;
    2. hardness ``H`` = each identity's implicit loss (eq. (6), moving average
       ``hardness_beta``); weights ``s`` start at 1 for the easiest
       ``init_fraction`` of identities; every ``update_every`` batches the
       ``k`` easiest identities still at 0 come in at 1 and all other weights
       shrink by ``alpha`` (eq. (7)); training continues with the s-weighted loss
       (eq. (8)-(11)) until a share ``keep`` of identities has weight > 0. The
       rest, the hardest, are the "personalized" identities: weight 0;
    3. the net is re-initialised and trained ``epochs`` epochs with those weights.

    Parameters
    ----------
    implicit, explicit, reweight : switch each part on or off (the paper's
        ablations "-I", "-E", "-W"); re-weighting needs the implicit loss (it
        measures the hardness) and at least one loss must be on
    m : margin of eq. (4), > 0 (paper: 3.4)
    warmup_epochs : stage 1 (paper: T_warm = 500 iterations)
    hardness_beta, alpha : eq. (6) and eq. (7) (paper: 0.9, 0.99)
    k : identities brought in per update; ``None``: ``max(1, round(0.024 M))``,
        the paper's 22 of 924 identities
    init_fraction, keep : the starting share (paper: 0.3) and R_keep (paper: 0.9)
    update_every : T_update, in batches (paper: 100 iterations)

    Fitted: ``identity_weights_`` (M,) the final s, ``personalized_`` (the
    identities left out), ``reweight_updates_``.
    """

    reference = "seed 003 eq. (1)-(4), (6)-(11), Algorithm 1"

    def __init__(self, *, implicit: bool = True, explicit: bool = True, reweight: bool = True, m: float = 3.4,
                 warmup_epochs: int = 30, hardness_beta: float = 0.9, alpha: float = 0.99, k: int | None = None,
                 init_fraction: float = 0.3, keep: float = 0.9, update_every: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.implicit = implicit
        self.explicit = explicit
        self.reweight = reweight
        self.m = m
        self.warmup_epochs = warmup_epochs
        self.hardness_beta = hardness_beta
        self.alpha = alpha
        self.k = k
        self.init_fraction = init_fraction
        self.keep = keep
        self.update_every = update_every

    def _check_params(self) -> None:
        super()._check_params()
        if not (self.implicit or self.explicit):
            raise ValueError(f"{self.name}: implicit and explicit are both off; nothing would be trained")
        if self.reweight and not self.implicit:
            raise ValueError(f"{self.name}: reweight=True needs implicit=True (Algorithm 1 measures each identity's "
                             "hardness with the implicit loss)")
        if not self.m > 0:
            raise ValueError(f"{self.name}: m must be > 0, got {self.m}")
        if int(self.update_every) < 1 or int(self.warmup_epochs) < 0:
            raise ValueError(f"{self.name}: update_every must be >= 1 and warmup_epochs >= 0")

    def _n_classes(self, data: TrainingData) -> int:
        return data.n_identities if self.implicit else 0

    def _per_sample(self, net, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Each sample's loss (implicit + explicit terms) and its implicit part alone (None when off), (B,) each."""
        v, x = net.voice(batch.xv), net.face(batch.xf)
        implicit = None
        total = torch.zeros(len(batch), device=v.device)
        if self.implicit:  # eq. (1)-(3): CE of x W and of v W, one shared W
            implicit = implicit_alignment_loss(net.classify(x), net.classify(v), batch.y, reduction="none")
            total = total + implicit
        if self.explicit:  # eq. (4): the N-pair terms, voice- and face-anchored
            total = total + explicit_alignment_loss(v, x, batch.y, m=float(self.m), reduction="none")
        return total, implicit

    @staticmethod
    def _reduce(per_sample: torch.Tensor, y: torch.Tensor, identity_weights) -> torch.Tensor:
        """The batch mean, or with identity weights s the s_hat-weighted sum of eq. (8)-(10)."""
        w = batch_weights(identity_weights, y)
        return per_sample.mean() if w is None else (per_sample * w).sum()

    def batch_loss(self, net, batch: Batch, data: TrainingData, identity_weights=None) -> torch.Tensor:
        """Eq. (11), ``L_face + L_voice + L_explicit`` (the parts switched on)."""
        return self._reduce(self._per_sample(net, batch)[0], batch.y, identity_weights)

    @torch.no_grad()
    def identity_hardness(self, net, data: TrainingData) -> np.ndarray:
        """H^0 of Algorithm 1: each identity's mean face CE plus mean voice CE, (M,)."""
        net.eval()
        xv, xf = current_features(net, data)  # the stored features, or the fine-tuned encoders' now
        ce_v = F.cross_entropy(net.classify(net.voice(xv)), data.yv, reduction="none")
        ce_f = F.cross_entropy(net.classify(net.face(xf)), data.yf, reduction="none")
        M = data.n_identities
        mean_v = torch.zeros(M, device=ce_v.device).index_add_(0, data.yv, ce_v) / torch.bincount(data.yv, minlength=M)
        mean_f = torch.zeros(M, device=ce_f.device).index_add_(0, data.yf, ce_f) / torch.bincount(data.yf, minlength=M)
        train_mode(net)  # the encoders' batch norms stay as pre-trained
        return (mean_v + mean_f).cpu().numpy()

    def _reweighting_stage(self, net, data: TrainingData, gen: torch.Generator) -> IdentityReweighting:
        """Stage 2 of Algorithm 1 on the warmed-up ``net``; returns the final weights' state."""
        M = data.n_identities
        k = max(1, int(round(0.024 * M))) if self.k is None else int(self.k)
        rw = IdentityReweighting(self.identity_hardness(net, data), beta=float(self.hardness_beta),
                                 alpha=float(self.alpha), k=k, init_fraction=float(self.init_fraction),
                                 keep=float(self.keep))
        opt = self._optimizer(net)
        train_mode(net)  # the encoders' batch norms stay as pre-trained
        step, losses = 0, []
        while not rw.done:
            for batch in epoch_batches(data, int(self.batch_size), gen):
                if rw.done:
                    break
                batch = finetune_batch(net, batch, data)  # fine-tuning: features through the encoders
                per, implicit = self._per_sample(net, batch)
                rw.observe(batch.y.cpu().numpy(), implicit.detach().cpu().numpy())  # eq. (6)
                step += 1
                if step % int(self.update_every) == 0:
                    rw.update()  # eq. (7)
                s = torch.as_tensor(rw.weights, dtype=torch.float32, device=data.device)
                loss = self._reduce(per, batch.y, s)  # eq. (8)-(11) with s^t
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
        self.history_.append({"stage": "reweight", "batches": step, "loss": float(np.mean(losses)) if losses else math.nan})
        return rw

    def _fit_net(self, data: TrainingData, gen: torch.Generator):
        if not self.reweight:
            self.identity_weights_ = np.ones(data.n_identities)
            self.personalized_ = np.asarray([], dtype=str)
            self.reweight_updates_ = 0
            return super()._fit_net(data, gen)
        net = self._new_net(data)
        self._train_epochs(net, data, gen, int(self.warmup_epochs), stage="warmup")  # stage 1
        rw = self._reweighting_stage(net, data, gen)  # stage 2
        self.identity_weights_ = rw.weights.copy()
        self.personalized_ = np.asarray(data.classes)[rw.left_out()]
        self.reweight_updates_ = rw.n_updates
        net = self._new_net(data)  # stage 3: re-initialise, train with the fixed weights
        s = torch.as_tensor(self.identity_weights_, dtype=torch.float32, device=data.device)
        self._train_epochs(net, data, gen, int(self.epochs), stage="train", identity_weights=s)
        return net

    def _fitted_extra(self) -> dict:
        return {"identity_weights_": self.identity_weights_.tolist(), "personalized_": list(self.personalized_),
                "reweight_updates_": int(self.reweight_updates_)}

    def _restore_extra(self, extra: dict) -> None:
        self.identity_weights_ = np.asarray(extra["identity_weights_"], dtype=np.float64)
        self.personalized_ = np.asarray(extra["personalized_"], dtype=str)
        self.reweight_updates_ = int(extra["reweight_updates_"])
