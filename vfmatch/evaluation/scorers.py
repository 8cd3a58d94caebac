"""Scorers: what every metric of :mod:`vfmatch.evaluation` reads its scores from.

A **scorer** gives the similarity of row items (voices) to column items
(faces); higher = more likely the same person. Any of these is accepted
wherever a metric asks for a ``scorer`` (:func:`as_scorer` wraps it):

* a similarity matrix, shape ``(n_voices, n_faces)``, numpy or torch
  (:class:`MatrixScorer`);
* a function ``score(voice_idx, face_idx) -> scores`` over int64 index arrays of
  equal length (:class:`FunctionScorer`);
* voice and face embeddings, ``(n_voices, d)`` and ``(n_faces, d)``, scored by
  cosine similarity block by block so the full matrix is never held in memory
  (:class:`EmbeddingScorer`).

``scorer.T`` swaps the roles (face -> voice queries); :class:`SubsetScorer`
restricts rows and columns (a subgroup's voices, say). Blocks are torch
tensors on the device the metric asks for (the GPU when one is present).

Book chapter: ``book/08_evaluation.ipynb``.
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import torch

from .metrics import check_finite_scores

__all__ = ["Scorer", "MatrixScorer", "FunctionScorer", "EmbeddingScorer", "SubsetScorer", "as_scorer"]


class Scorer:
    """Scores of row items (voices) against column items (faces); higher = more similar.

    Subclasses implement :meth:`block` and :meth:`pairs`; :attr:`T` swaps the
    roles (face -> voice queries)."""

    n_rows: int
    n_cols: int

    def block(self, rows: np.ndarray, cols: np.ndarray | None = None, device: str = "cpu") -> torch.Tensor:
        """Scores of every row against every column, shape (len(rows), len(cols))."""
        raise NotImplementedError

    def pairs(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Scores of the pairs (rows[i], cols[i]), float64, shape (n,)."""
        raise NotImplementedError

    @property
    def T(self) -> "Scorer":
        return _Transposed(self)


class MatrixScorer(Scorer):
    """A precomputed similarity matrix, shape (n_voices, n_faces)."""

    def __init__(self, matrix):
        if isinstance(matrix, torch.Tensor):
            m = matrix
        else:
            a = np.asarray(matrix)
            with warnings.catch_warnings():
                # Read-only arrays (memory maps, pandas values) are fine: scores are only read.
                warnings.simplefilter("ignore", UserWarning)
                m = torch.from_numpy(a)
        if m.ndim != 2:
            raise ValueError(f"similarity must be a 2-D (n_voices, n_faces) matrix, got shape {tuple(m.shape)}")
        if not (m.is_floating_point()):
            m = m.to(torch.float64)
        self.m = m.detach()
        self.n_rows, self.n_cols = m.shape

    def block(self, rows, cols=None, device="cpu"):
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and rows[-1] - rows[0] + 1 == rows.size and (rows.size == 1 or bool(np.all(np.diff(rows) == 1))):
            b = self.m[int(rows[0]) : int(rows[-1]) + 1]  # a contiguous range of rows: a view, no copy
        else:
            b = self.m.index_select(0, torch.as_tensor(rows, device=self.m.device))
        if cols is not None:
            b = b.index_select(1, torch.as_tensor(np.asarray(cols, dtype=np.int64), device=self.m.device))
        return check_finite_scores(b.to(device), "similarity matrix")

    def pairs(self, rows, cols):
        r = torch.as_tensor(np.asarray(rows, dtype=np.int64), device=self.m.device)
        c = torch.as_tensor(np.asarray(cols, dtype=np.int64), device=self.m.device)
        return check_finite_scores(self.m[r, c], "similarity matrix").cpu().numpy().astype(np.float64)

    @property
    def T(self):
        return MatrixScorer(self.m.T)


class FunctionScorer(Scorer):
    """A function ``score(voice_idx, face_idx) -> scores`` on int64 index arrays of equal length."""

    def __init__(self, fn: Callable, n_rows: int, n_cols: int):
        self.fn, self.n_rows, self.n_cols = fn, int(n_rows), int(n_cols)

    def pairs(self, rows, cols):
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        out = np.asarray(self.fn(rows, cols), dtype=np.float64).reshape(-1)
        if out.shape != rows.shape:
            raise ValueError(f"scorer returned {out.shape[0]} scores for {rows.shape[0]} pairs")
        if not np.isfinite(out).all():
            raise ValueError("scorer returned NaN or inf")
        return out

    def block(self, rows, cols=None, device="cpu"):
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.arange(self.n_cols) if cols is None else np.asarray(cols, dtype=np.int64)
        s = self.pairs(np.repeat(rows, cols.size), np.tile(cols, rows.size))
        return torch.from_numpy(s.reshape(rows.size, cols.size)).to(device)


class EmbeddingScorer(Scorer):
    """Cosine similarity (or dot product) of voice and face embeddings, block by block,
    so the full (n_voices, n_faces) matrix is never held in memory."""

    def __init__(self, voice_embeddings, face_embeddings, *, normalize: bool = True):
        v = torch.as_tensor(np.asarray(voice_embeddings) if not isinstance(voice_embeddings, torch.Tensor) else voice_embeddings)
        f = torch.as_tensor(np.asarray(face_embeddings) if not isinstance(face_embeddings, torch.Tensor) else face_embeddings)
        if v.ndim != 2 or f.ndim != 2 or v.shape[1] != f.shape[1]:
            raise ValueError(f"embeddings must be (n, d) and (m, d) with the same d, got {tuple(v.shape)} and {tuple(f.shape)}")
        v, f = v.float(), f.float()
        if normalize:
            v = torch.nn.functional.normalize(v, dim=1)
            f = torch.nn.functional.normalize(f, dim=1)
        self.v, self.f = check_finite_scores(v, "voice embeddings"), check_finite_scores(f, "face embeddings")
        self.n_rows, self.n_cols = v.shape[0], f.shape[0]

    def block(self, rows, cols=None, device="cpu"):
        v = self.v[torch.as_tensor(np.asarray(rows, dtype=np.int64))].to(device)
        f = self.f if cols is None else self.f[torch.as_tensor(np.asarray(cols, dtype=np.int64))]
        return v @ f.to(device).T

    def pairs(self, rows, cols):
        v = self.v[torch.as_tensor(np.asarray(rows, dtype=np.int64))]
        f = self.f[torch.as_tensor(np.asarray(cols, dtype=np.int64))]
        return (v * f).sum(1).double().numpy()

    @property
    def T(self):
        s = EmbeddingScorer.__new__(EmbeddingScorer)
        s.v, s.f, s.n_rows, s.n_cols = self.f, self.v, self.n_cols, self.n_rows
        return s


class _Transposed(Scorer):
    def __init__(self, base: Scorer):
        self.base, self.n_rows, self.n_cols = base, base.n_cols, base.n_rows

    def block(self, rows, cols=None, device="cpu"):
        rows_b = np.arange(self.base.n_rows) if cols is None else cols
        return self.base.block(rows_b, rows, device).T

    def pairs(self, rows, cols):
        return self.base.pairs(cols, rows)

    @property
    def T(self):
        return self.base


class SubsetScorer(Scorer):
    """The rows ``rows`` and columns ``cols`` (int arrays of global indices) of ``base``:
    local row i is ``base``'s row ``rows[i]``."""

    def __init__(self, base: Scorer, rows: np.ndarray, cols: np.ndarray):
        self.base, self.rmap, self.cmap = base, np.asarray(rows, np.int64), np.asarray(cols, np.int64)
        self.n_rows, self.n_cols = self.rmap.size, self.cmap.size

    def block(self, rows, cols=None, device="cpu"):
        c = self.cmap if cols is None else self.cmap[np.asarray(cols, np.int64)]
        return self.base.block(self.rmap[np.asarray(rows, np.int64)], c, device)

    def pairs(self, rows, cols):
        return self.base.pairs(self.rmap[np.asarray(rows, np.int64)], self.cmap[np.asarray(cols, np.int64)])


def as_scorer(scorer, n_voices: int | None = None, n_faces: int | None = None) -> Scorer:
    """Wrap a similarity matrix, a function or a :class:`Scorer`, checking its size."""
    if isinstance(scorer, Scorer):
        s = scorer
    elif callable(scorer) and not isinstance(scorer, (np.ndarray, torch.Tensor)):
        if n_voices is None or n_faces is None:
            raise ValueError("a scoring function needs the number of voices and faces (give the speaker arrays)")
        s = FunctionScorer(scorer, n_voices, n_faces)
    else:
        s = MatrixScorer(scorer)
    if n_voices is not None and s.n_rows != n_voices:
        raise ValueError(f"scorer has {s.n_rows} rows but there are {n_voices} voices (voice_speakers)")
    if n_faces is not None and s.n_cols != n_faces:
        raise ValueError(f"scorer has {s.n_cols} columns but there are {n_faces} faces (face_speakers)")
    return s
