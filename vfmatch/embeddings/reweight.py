"""Adaptive identity re-weighting: the second stage of seed 003's Algorithm 1.

Identities differ in how learnable their voice-face link is (seed 003 Fig. 1).
Algorithm 1 ("Training with identity weights") measures each identity's
*hardness* ``H_i``, its implicit-alignment loss averaged over time (eq. (6)),
and brings identities into training from the easiest up, giving the hard ones
more weight as they enter and leaving the hardest, "personalized", ones out
with weight 0::

    1  warm-up: train F, G on all data for T_warm iterations
    2  s_i^0 = 1 for the 30 % of identities with the lowest H^0, else 0
       repeat, one mini-batch at a time:
           H_i <- beta * H_i + (1 - beta) * L_implicit(i)          eq. (6)
           every T_update iterations:                               eq. (7)
               s_i <- 1          for the k lowest H_i among those with s_i = 0
               s_i <- alpha s_i  for all others
           update the network with the s-weighted loss              eq. (8)-(11)
       until at least R_keep * M identities have s_i > 0
    3  re-initialise F, G and train T_max iterations with the final s

:class:`IdentityReweighting` holds ``H`` and ``s`` and does lines 2 (eq. (6)
and (7) and the stopping test); the training loop in
:mod:`vfmatch.embeddings.methods` calls it. Kept separate, so a test can check
the weights on a hand-made hardness vector.

Book chapter: ``book/10_learned_embeddings.ipynb``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["IdentityReweighting"]


class IdentityReweighting:
    """Hardness ``H`` and weights ``s`` of Algorithm 1's second stage (seed 003).

    Parameters
    ----------
    hardness : (M,) initial hardness ``H^0`` of the M training identities (their
        implicit loss after the warm-up)
    beta : moving-average factor of eq. (6), in (0, 1) (paper: 0.9)
    alpha : decay of eq. (7), in (0, 1] (paper: 0.99)
    k : identities brought in per update, eq. (7) (paper: 22 of 924)
    init_fraction : share of identities with ``s^0 = 1`` (paper: 0.3); at least one
    keep : ``R_keep``, the share of identities kept in the end (paper: 0.9)

    Attributes
    ----------
    hardness : (M,) float64, the current ``H``
    weights : (M,) float64, the current ``s`` (0 = left out)
    n_updates : how many times eq. (7) was applied
    """

    def __init__(self, hardness, *, beta: float = 0.9, alpha: float = 0.99, k: int = 1,
                 init_fraction: float = 0.3, keep: float = 0.9):
        H = np.asarray(hardness, dtype=np.float64).reshape(-1)
        if H.size == 0 or not np.isfinite(H).all():
            raise ValueError("hardness must be a non-empty vector of finite numbers")
        if not 0 < beta < 1:
            raise ValueError(f"beta must be in (0, 1), got {beta}")
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        if int(k) < 1:
            raise ValueError(f"k must be a positive integer, got {k}")
        if not 0 < init_fraction <= 1 or not 0 < keep <= 1:
            raise ValueError(f"init_fraction and keep must be in (0, 1], got {init_fraction} and {keep}")
        self.beta, self.alpha, self.k, self.keep = float(beta), float(alpha), int(k), float(keep)
        self.hardness = H.copy()
        self.weights = np.zeros_like(H)
        n_init = max(1, int(round(init_fraction * H.size)))
        self.weights[np.argsort(H, kind="stable")[:n_init]] = 1.0
        self.n_updates = 0

    @property
    def n_identities(self) -> int:
        return self.hardness.size

    @property
    def n_kept(self) -> int:
        """Identities with a non-zero weight."""
        return int((self.weights > 0).sum())

    @property
    def done(self) -> bool:
        """The stopping test of Algorithm 1 line 4: ``#{s_i > 0} >= R_keep * M``."""
        return self.n_kept >= self.keep * self.n_identities

    def observe(self, identities, losses) -> None:
        """Eq. (6) for the identities of one mini-batch: ``H_i <- beta H_i + (1 - beta) L_i``.

        ``identities`` (B,) codes in ``[0, M)``, ``losses`` (B,) their samples'
        implicit loss; an identity with several samples uses their mean."""
        ids = np.asarray(identities, dtype=np.int64).reshape(-1)
        loss = np.asarray(losses, dtype=np.float64).reshape(-1)
        if ids.shape != loss.shape:
            raise ValueError(f"{ids.size} identities but {loss.size} losses")
        if ids.size and (ids.min() < 0 or ids.max() >= self.n_identities):
            raise ValueError(f"identity codes must be in [0, {self.n_identities})")
        uniq, inv = np.unique(ids, return_inverse=True)
        mean_loss = np.bincount(inv, weights=loss) / np.bincount(inv)
        self.hardness[uniq] = self.beta * self.hardness[uniq] + (1.0 - self.beta) * mean_loss

    def update(self) -> None:
        """Eq. (7): the k easiest identities still at weight 0 get weight 1, every other weight is multiplied by alpha."""
        out = np.flatnonzero(self.weights == 0)
        newcomers = out[np.argsort(self.hardness[out], kind="stable")[: self.k]]
        self.weights *= self.alpha
        self.weights[newcomers] = 1.0
        self.n_updates += 1

    def left_out(self) -> np.ndarray:
        """Codes of the identities at weight 0 (the "personalized" ones once :attr:`done`)."""
        return np.flatnonzero(self.weights == 0)
