"""The estimator every embedding method is: scikit-learn conventions around a two-branch net.

::

    m = create_embedding_method("triplet", margin=0.2, seed=0)   # keyword params only; nothing built yet
    m.fit(voice_table, face_table)          # FeatureTables of the training identities
    v = m.transform_voices(X_voice)         # (n_voices, embed_dim), L2-normalised
    x = m.transform_faces(X_face)           # (n_faces, embed_dim)
    S = m.similarity(v, x)                  # (n_voices, n_faces) cosine similarity, higher = same person
    m.save("folder"); m2 = EmbeddingMethod.load("folder")   # safetensors + JSON, no pickle

A subclass (:mod:`vfmatch.embeddings.methods`) implements :meth:`EmbeddingMethod.batch_loss`,
the loss of one :class:`~vfmatch.embeddings.train.Batch`; it may override
:meth:`EmbeddingMethod._fit_net` (``sss`` trains in three stages) and
:meth:`EmbeddingMethod._prepare` (quantities measured on the training data before training).

Training: AdamW, the learning rate following a cosine from ``lr`` to 0 over
``epochs`` epochs of identity-balanced batches (:mod:`vfmatch.embeddings.train`);
``torch.manual_seed(seed)`` fixes the initial weights and dropout, a
``torch.Generator`` seeded with ``seed`` the batches (and a NumPy generator
seeded with ``seed`` the crops and flips when fine-tuning), so a fit is
reproducible on one device. It runs on ``default_device(device)`` (the GPU when there is
one) with :class:`vfmatch.utils.limit_threads`.

With ``finetune_encoders=True`` the trainable encoders (``speaker-cnn``,
``face-cnn``) learn too, in the same loop, with the same loss, at
``encoder_lr`` (:mod:`vfmatch.embeddings.finetune`); :meth:`EmbeddingMethod.fit`
then needs their raw training inputs (``media``), which
:func:`~vfmatch.embeddings.fit_population` prepares from a population.

Book chapter: ``book/10_learned_embeddings.ipynb``.
"""

from __future__ import annotations

import copy
import inspect
import time
from typing import ClassVar

import numpy as np
import torch

from ..config import default_device
from ..utils import batches, limit_threads, progress
from .finetune import finetune_batch, parameter_groups, train_mode
from .heads import TwoBranchNet
from .io import load_method, save_method
from .tables import FeatureTable, check_paired
from .train import Batch, TrainingData, epoch_batches

__all__ = ["EmbeddingMethod"]


def _as_table(data, modality: str) -> FeatureTable:
    if isinstance(data, FeatureTable):
        if data.modality != modality:
            raise ValueError(f"expected a {modality} table, got a {data.modality} one")
        return data
    if isinstance(data, tuple) and len(data) == 2:
        return FeatureTable(data[0], data[1], None, modality)
    raise TypeError(f"{modality}: pass a FeatureTable or a (features, labels) tuple, got {type(data).__name__}")


class EmbeddingMethod:
    """Base class of the learned voice-face embeddings (module docstring).

    Parameters (every method has these)
    ----------
    embed_dim : size D of the shared space (default 128, as seed 003)
    hidden_dim, n_hidden : width and number of the hidden layers of each head
    dropout : dropout after each hidden layer (seed 001 uses 0.2; 0.5 here, 0.3 for
        the triplet losses: a few hundred identities overfit a 128-d space fast)
    epochs : passes over the training identities (one voice and one face each)
    batch_size : identities per batch
    lr, weight_decay : AdamW
    seed : initial weights, dropout and batches
    warm_start : when already fitted, :meth:`fit` starts the heads from the
        fitted ones (and keeps their standardisation) instead of new random
        weights: seed 001's pre-training on a heterogeneous population, then
        fine-tuning on a homogeneous one. A classifier (``sss``) is always new,
        since the identities change.
    finetune_encoders : False (default): the encoders are frozen, their features
        computed once. True: the trainable encoders (``speaker-cnn``, ``face-cnn``)
        are trained end to end with the heads, from their pre-trained weights
        (:mod:`vfmatch.embeddings.finetune`); needs raw media, so fit with
        :func:`~vfmatch.embeddings.fit_population`, not with feature tables
    encoder_lr : the encoders' AdamW learning rate when fine-tuning (default 2e-4,
        a tenth of ``lr``: small steps keep what identity training taught them)
    device : ``None``/``"auto"`` (the GPU when present), ``"cpu"``, ``"cuda"``
    progress : show a tqdm bar over epochs

    Fitted attributes
    -----------------
    net_ : the :class:`~vfmatch.embeddings.heads.TwoBranchNet` (with the fine-tuned
        encoders inside when ``finetune_encoders``; see :attr:`finetuned_encoders_`)
    classes_ : sorted identity labels of the training set
    voice_dim_, face_dim_ : input feature sizes
    history_ : list of ``{"stage", "epoch", "loss"}``, the mean training loss per epoch
        (``sss``'s re-weighting stage: one entry with ``"batches"`` instead of ``"epoch"``)
    train_seconds_ : wall time of :meth:`fit`
    """

    name: ClassVar[str] = ""
    #: the equation or algorithm the method implements, for reports
    reference: ClassVar[str] = ""

    def __init__(self, *, embed_dim: int = 128, hidden_dim: int = 256, n_hidden: int = 1, dropout: float = 0.5,
                 epochs: int = 100, batch_size: int = 64, lr: float = 2e-3, weight_decay: float = 1e-3, seed: int = 0,
                 warm_start: bool = False, finetune_encoders: bool = False, encoder_lr: float = 2e-4,
                 device: str | None = None, progress: bool = False):
        self.embed_dim = embed_dim
        self.hidden_dim = hidden_dim
        self.n_hidden = n_hidden
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.seed = seed
        self.warm_start = warm_start
        self.finetune_encoders = finetune_encoders
        self.encoder_lr = encoder_lr
        self.device = device
        self.progress = progress

    # ------------------------------------------------------------ parameters
    @classmethod
    def param_names(cls) -> list[str]:
        """Keyword parameters of this class and of the classes it inherits from."""
        names: list[str] = []
        for c in cls.__mro__:
            if "__init__" not in vars(c) or c is object:
                continue
            for p in inspect.signature(c.__init__).parameters.values():
                if p.kind is p.KEYWORD_ONLY and p.name not in names:
                    names.append(p.name)
        return names

    def get_params(self, deep: bool = True) -> dict:
        """``{name: value}`` of every parameter (scikit-learn's ``get_params``)."""
        return {n: getattr(self, n) for n in self.param_names()}

    def set_params(self, **params) -> "EmbeddingMethod":
        known = self.param_names()
        for k, v in params.items():
            if k not in known:
                raise ValueError(f"{self.name}: no parameter {k!r}; its parameters are {sorted(known)}")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        defaults = type(self)().get_params()
        changed = {k: v for k, v in self.get_params().items() if v != defaults.get(k)}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    def _check_params(self) -> None:
        for name in ("embed_dim", "hidden_dim", "n_hidden", "batch_size"):
            v = getattr(self, name)
            low = 0 if name == "n_hidden" else 1
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < low:
                what = " (the size of the shared space)" if name == "embed_dim" else ""
                raise ValueError(f"{self.name}: {name}{what} must be an integer >= {low}, got {v!r}")
        if not isinstance(self.epochs, (int, np.integer)) or self.epochs < 0:
            raise ValueError(f"{self.name}: epochs must be an integer >= 0, got {self.epochs!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"{self.name}: dropout must be in [0, 1), got {self.dropout}")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ValueError(f"{self.name}: lr must be > 0 and weight_decay >= 0, got {self.lr} and {self.weight_decay}")
        if not isinstance(self.finetune_encoders, (bool, np.bool_)):
            raise ValueError(f"{self.name}: finetune_encoders must be True or False, got {self.finetune_encoders!r}")
        if not self.encoder_lr > 0:
            raise ValueError(f"{self.name}: encoder_lr must be > 0, got {self.encoder_lr}")

    # -------------------------------------------------------------- training
    def fit(self, voice, face, *, face_reference=None, media: dict | None = None) -> "EmbeddingMethod":
        """Train on the training identities.

        Parameters
        ----------
        voice, face : :class:`~vfmatch.embeddings.FeatureTable` (or ``(features, labels)``):
            every item of the training identities; every identity needs both modalities
        face_reference : optional (n_faces, d_r) features of the same faces under
            another frozen face encoder F (only ``weighted_triplet`` uses it; by
            default F is the face encoder whose features ``face`` holds)
        media : ``finetune_encoders=True`` only: ``{modality: EncoderInputs}``
            (:func:`~vfmatch.embeddings.finetune_inputs`), the pre-trained encoder
            and the raw items of each modality to fine-tune, rows as in ``voice`` /
            ``face`` (whose features, the pre-trained encoder's, set the heads'
            standardisation). :func:`~vfmatch.embeddings.fit_population` passes it.
        """
        self._check_params()
        voice, face = _as_table(voice, "voice"), _as_table(face, "face")
        classes = check_paired(voice, face)
        media = self._check_media(media, voice, face)
        if face_reference is not None:
            face_reference = np.asarray(face_reference, dtype=np.float32)
            if face_reference.ndim != 2 or face_reference.shape[0] != len(face) or not np.isfinite(face_reference).all():
                raise ValueError(f"face_reference must be a finite ({len(face)}, d) matrix, one row per face, "
                                 f"got shape {face_reference.shape}")
        device = default_device(self.device)
        # The heads fitted before, when fine-tuning them (warm_start).
        self._pretrained = getattr(self, "net_", None) if self.warm_start else None
        t0 = time.perf_counter()
        try:
            with limit_threads():
                data = TrainingData.from_tables(voice, face, classes, device, face_reference, media,
                                                np.random.default_rng(int(self.seed)))
                gen = torch.Generator().manual_seed(int(self.seed))
                self.history_: list[dict] = []
                self._prepare(data, gen)
                net = self._fit_net(data, gen).cpu().eval()
        finally:
            self._pretrained = None
        # Fitted attributes change only once training succeeded.
        self.net_, self.classes_ = net, classes
        self.voice_dim_, self.face_dim_ = voice.dim, face.dim
        self.train_seconds_ = time.perf_counter() - t0
        return self

    def _check_media(self, media: dict | None, voice: FeatureTable, face: FeatureTable) -> dict:
        """``media`` checked against the option and the tables (one raw item per table row)."""
        if not self.finetune_encoders:
            if media:
                raise ValueError(f"{self.name}: media (raw inputs) were given but finetune_encoders=False; "
                                 "set finetune_encoders=True to fine-tune the encoders, or drop media")
            return {}
        if not media:
            raise ValueError(
                f"{self.name}: finetune_encoders=True trains the encoders on raw media (log-Mel crops, aligned face "
                "pixels), and precomputed features (a FeatureTable) hold none: their encoder is fixed and not here. "
                "Fit from a Population with fit_population(..., voice_encoder='speaker-cnn', "
                "face_encoder='face-cnn', finetune_encoders=True), or set finetune_encoders=False")
        for modality, table in (("voice", voice), ("face", face)):
            m = media.get(modality)
            if m is None:
                continue
            if len(m) != len(table):
                raise ValueError(f"{self.name}: {len(m)} raw {modality} items for {len(table)} table rows; "
                                 "media rows must follow the table's")
            if int(m.encoder.dim) != table.dim:
                raise ValueError(f"{self.name}: the {modality} table has {table.dim} features but encoder "
                                 f"{m.encoder.name!r} gives {m.encoder.dim}; the table must hold its features")
        return dict(media)

    def _prepare(self, data: TrainingData, gen: torch.Generator) -> None:
        """Measure what the loss needs on the training data (nothing by default)."""

    def _complete_data(self, data: TrainingData, net: TwoBranchNet) -> None:
        """Fill in what :meth:`loss` needs beyond the features (nothing by default)."""

    def _n_classes(self, data: TrainingData) -> int:
        """Width of the shared identity classifier (0: none)."""
        return 0

    def _new_net(self, data: TrainingData) -> TwoBranchNet:
        """A freshly initialised net (``torch.manual_seed(seed)`` first), heads standardised on the training items;
        with ``warm_start`` the heads are copies of the fitted ones."""
        torch.manual_seed(int(self.seed))
        # Fine-tuning: copies of the pre-trained encoders, so the caller's stay as they are
        # and every new net (sss re-initialises in stage 3) starts from the same weights.
        encoders = {m: copy.deepcopy(data.media[m].encoder) if m in data.media else None for m in ("voice", "face")}
        net = TwoBranchNet(data.xv.shape[1], data.xf.shape[1], embed_dim=int(self.embed_dim),
                           hidden_dim=int(self.hidden_dim), n_hidden=int(self.n_hidden), dropout=float(self.dropout),
                           n_classes=self._n_classes(data), voice_encoder=encoders["voice"],
                           face_encoder=encoders["face"]).to(data.device)
        if self.warm_start and self._pretrained is not None:
            old = self._pretrained
            if (old.voice.mean.numel(), old.face.mean.numel()) != (data.xv.shape[1], data.xf.shape[1]):
                raise ValueError(f"{self.name}: warm_start needs features of the sizes it was fitted on "
                                 f"({old.voice.mean.numel()}, {old.face.mean.numel()}), got "
                                 f"({data.xv.shape[1]}, {data.xf.shape[1]})")
            net.voice.load_state_dict(old.voice.state_dict())
            net.face.load_state_dict(old.face.state_dict())
            for m in ("voice", "face"):  # fine-tuned encoders continue from where they were
                if net.encoder(m) is not None and old.encoder(m) is not None:
                    net.encoder(m).load_state_dict(old.encoder(m).state_dict())
        else:
            net.voice.set_standardisation(data.xv)
            net.face.set_standardisation(data.xf)
        return net

    def _fit_net(self, data: TrainingData, gen: torch.Generator) -> TwoBranchNet:
        net = self._new_net(data)
        self._train_epochs(net, data, gen, int(self.epochs), stage="train")
        return net

    def _train_epochs(self, net: TwoBranchNet, data: TrainingData, gen: torch.Generator, epochs: int, *,
                      stage: str, identity_weights: torch.Tensor | None = None) -> None:
        """``epochs`` epochs of AdamW with a cosine learning rate; appends to ``history_``."""
        if epochs <= 0:
            return
        opt = self._optimizer(net)
        bs = int(self.batch_size)
        per_epoch = max(1, sum(min(bs, data.n_identities - a) >= 2 for a in range(0, data.n_identities, bs)))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * per_epoch)
        train_mode(net)  # the encoders' batch norms stay as pre-trained
        for epoch in progress(range(epochs), self.progress, f"{self.name} ({stage})", epochs):
            losses = []
            for batch in epoch_batches(data, int(self.batch_size), gen):
                batch = finetune_batch(net, batch, data)  # fine-tuning: features through the encoders
                loss = self.batch_loss(net, batch, data, identity_weights)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                losses.append(float(loss.detach()))
            self.history_.append({"stage": stage, "epoch": epoch + 1, "loss": float(np.mean(losses))})
        net.eval()

    def _optimizer(self, net: TwoBranchNet) -> torch.optim.Optimizer:
        """AdamW: the heads at ``lr``, fine-tuned encoders (if any) at ``encoder_lr``."""
        groups = parameter_groups(net, self.lr, self.encoder_lr)
        return torch.optim.AdamW(groups, weight_decay=float(self.weight_decay))

    def batch_loss(self, net: TwoBranchNet, batch: Batch, data: TrainingData,
                   identity_weights: torch.Tensor | None = None) -> torch.Tensor:
        """The method's loss on one batch (a scalar tensor)."""
        raise NotImplementedError

    @torch.no_grad()
    def loss(self, voice, face, *, seed: int = 0, face_reference=None) -> float:
        """Mean loss of the fitted net over one epoch of seeded batches of ``voice``/``face``, dropout off.

        Unweighted (``sss``: every identity weight 1). Compare it before and
        after training: ``epochs=0`` gives the initial net. After fine-tuning,
        the tables must hold the fine-tuned encoders' features
        (:attr:`finetuned_encoders_`); only the heads run here."""
        self._check_fitted()
        voice, face = _as_table(voice, "voice"), _as_table(face, "face")
        classes = check_paired(voice, face)
        device = default_device(self.device)
        with limit_threads():
            data = TrainingData.from_tables(voice, face, classes, device, face_reference)
            net = self.net_.to(device).eval()
            self._complete_data(data, net)
            if net.classifier is not None and len(classes) != net.classifier.out_features:
                raise ValueError(f"{self.name}: loss() needs the training identities ({net.classifier.out_features}), "
                                 f"got {len(classes)}")
            gen = torch.Generator().manual_seed(int(seed))
            values = [float(self.batch_loss(net, b, data)) for b in epoch_batches(data, int(self.batch_size), gen)]
            self.net_.cpu()
        return float(np.mean(values))

    # ------------------------------------------------------------- embedding
    @property
    def finetuned_encoders_(self) -> dict:
        """``{"voice": encoder or None, "face": encoder or None}``: the fine-tuned encoders inside
        :attr:`net_` (None for a frozen modality). Their ``encode(items)`` gives the features that
        :meth:`transform_voices` / :meth:`transform_faces` take."""
        self._check_fitted()
        return {m: self.net_.encoder(m) for m in ("voice", "face")}

    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise RuntimeError(f"{self.name}: not fitted yet; call fit(voice, face) or load(folder) first")

    @torch.no_grad()
    def _embed(self, X, modality: str, batch_size: int = 4096) -> np.ndarray:
        self._check_fitted()
        dim = self.voice_dim_ if modality == "voice" else self.face_dim_
        feats = X.features if isinstance(X, FeatureTable) else np.asarray(X, dtype=np.float32)
        if feats.ndim != 2 or feats.shape[1] != dim:
            raise ValueError(f"{self.name}: {modality} features must be (n, {dim}) as in training, got {feats.shape}")
        if not np.isfinite(feats).all():
            r = int(np.flatnonzero(~np.isfinite(feats).all(axis=1))[0])
            raise ValueError(f"{self.name}: {modality} features contain NaN or infinite values (first at row {r})")
        head = self.net_.voice if modality == "voice" else self.net_.face
        device = default_device(self.device)
        with limit_threads():
            head.to(device).eval()
            x = torch.as_tensor(feats)
            out = [head.embed(x[sl].to(device)).cpu() for sl in batches(len(x), batch_size)]
            head.cpu()
        return torch.cat(out).numpy() if out else np.zeros((0, int(self.embed_dim)), np.float32)

    def transform_voices(self, X) -> np.ndarray:
        """Voice features (n, voice_dim_) or a FeatureTable -> (n, embed_dim) float32, L2-normalised."""
        return self._embed(X, "voice")

    def transform_faces(self, X) -> np.ndarray:
        """Face features (n, face_dim_) or a FeatureTable -> (n, embed_dim) float32, L2-normalised."""
        return self._embed(X, "face")

    @staticmethod
    def similarity(voice_embeddings, face_embeddings) -> np.ndarray:
        """Cosine similarity of every voice with every face, (n_voices, n_faces); higher = more likely one person.

        The matrix is a scorer for :mod:`vfmatch.evaluation` (``evaluate_similarity``);
        for large sets pass the embeddings to ``vfmatch.evaluation.EmbeddingScorer``."""
        v = torch.nn.functional.normalize(torch.as_tensor(np.asarray(voice_embeddings, np.float32)), dim=1)
        f = torch.nn.functional.normalize(torch.as_tensor(np.asarray(face_embeddings, np.float32)), dim=1)
        return (v @ f.T).numpy()

    @staticmethod
    def score_pairs(voice_embeddings, face_embeddings) -> np.ndarray:
        """Cosine similarity of row i of the voices with row i of the faces, (n,)."""
        v = torch.nn.functional.normalize(torch.as_tensor(np.asarray(voice_embeddings, np.float32)), dim=1)
        f = torch.nn.functional.normalize(torch.as_tensor(np.asarray(face_embeddings, np.float32)), dim=1)
        return (v * f).sum(dim=1).double().numpy()

    def path_scorer(self, voice: FeatureTable, face: FeatureTable):
        """``score(voice_paths, face_paths) -> (n,) float64`` over item paths, for path-level lists.

        Both tables need ``paths``; every item is embedded once here. This is the
        ``score_fn`` of ``vfmatch.evaluation.evaluate_sss`` (the published SSS
        lists): ``evaluate_sss(m.path_scorer(voice_table, face_table))``."""
        ve, fe = self.transform_voices(voice), self.transform_faces(face)

        def score(voice_paths, face_paths) -> np.ndarray:
            return self.score_pairs(ve[voice.rows_of(voice_paths)], fe[face.rows_of(face_paths)])

        return score

    # ---------------------------------------------------------------- saving
    def _fitted_extra(self) -> dict:
        """Method-specific fitted values saved in the JSON (override with ``_restore_extra``)."""
        return {}

    def _restore_extra(self, extra: dict) -> None:
        pass

    def save(self, folder) -> "Path":  # noqa: F821
        """Write ``model.safetensors`` (weights) and ``config.json`` (method, params, fitted values) to ``folder``."""
        self._check_fitted()
        return save_method(self, folder)

    @classmethod
    def load(cls, folder, *, device: str | None = None) -> "EmbeddingMethod":
        """A fitted method from :meth:`save`'s folder (no pickle). ``device`` overrides the saved one."""
        m = load_method(folder, device=device)
        if not isinstance(m, cls):
            raise TypeError(f"{folder}: holds a {type(m).__name__}, not a {cls.__name__}")
        return m
