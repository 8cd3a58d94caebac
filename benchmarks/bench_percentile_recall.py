"""Percentile recall, 10,000 voice queries against a 10,000-face gallery: vectorised vs a loop.

Run: python benchmarks/bench_percentile_recall.py [--queries 10000] [--faces 10000]

Both compute paper 001's rank (sec. 2.3.2) of every voice from the same
embeddings: for each positive face, the number of negative faces whose cosine
similarity is strictly higher, over the gallery size, averaged over the
voice's positives. The loop is the straightforward transcription, one query at
a time (numpy inside); the vectorised path is :func:`vfmatch.evaluation.percentile.percentile_recall`
with an :class:`~vfmatch.evaluation.scorers.EmbeddingScorer` (torch, chunked, GPU when present).

Three settings are timed in this one run:

1. the full gallery (every face of other speakers is a negative), from embeddings;
2. the same from a precomputed 10,000 x 10,000 similarity matrix (the metric alone);
3. the Monte Carlo of the paper with n~ = 1,000 negatives per query, where the
   loop also draws each query's gallery speaker by speaker, as the paper describes.

Every figure printed is measured here, in this run; the loops run in full
unless --loop-queries is given, in which case the script says so and
extrapolates.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from vfmatch.evaluation.percentile import percentile_recall
from vfmatch.evaluation.scorers import EmbeddingScorer


def make_data(n_queries: int, n_faces: int, per_speaker: int, dim: int, seed: int):
    """Embeddings with an identity signal: per_speaker faces and voices per speaker."""
    rng = np.random.default_rng(seed)
    n_spk = max(2, n_faces // per_speaker)
    centre = rng.normal(size=(n_spk, dim)).astype(np.float32)
    face_spk = np.arange(n_faces) % n_spk
    voice_spk = np.arange(n_queries) % n_spk
    faces = centre[face_spk] + 1.5 * rng.normal(size=(n_faces, dim)).astype(np.float32)
    voices = centre[voice_spk] + 1.5 * rng.normal(size=(n_queries, dim)).astype(np.float32)
    return voices, faces, voice_spk, face_spk


def loop_full(voices, faces, voice_spk, face_spk, n_loop):
    """One query at a time: cosine similarities, then the paper's rank."""
    v = voices / np.linalg.norm(voices, axis=1, keepdims=True)
    f = faces / np.linalg.norm(faces, axis=1, keepdims=True)
    ranks = np.empty(n_loop)
    for i in range(n_loop):
        sim = f @ v[i]
        pos = face_spk == voice_spk[i]
        neg = sim[~pos]
        ranks[i] = np.mean([(neg > s).sum() / sim.size for s in sim[pos]])
    return ranks


def loop_matrix(sim, voice_spk, face_spk, n_loop):
    """One row of a precomputed similarity matrix at a time."""
    ranks = np.empty(n_loop)
    for i in range(n_loop):
        row = sim[i]
        pos = face_spk == voice_spk[i]
        neg = row[~pos]
        ranks[i] = np.mean([(neg > s).sum() / row.size for s in row[pos]])
    return ranks


def loop_monte_carlo(voices, faces, voice_spk, face_spk, n_loop, n_tilde, seed):
    """The paper's Monte Carlo, one query at a time: draw negative speakers until
    n~ faces are in the list, then rank the positives."""
    rng = np.random.default_rng(seed)
    v = voices / np.linalg.norm(voices, axis=1, keepdims=True)
    f = faces / np.linalg.norm(faces, axis=1, keepdims=True)
    faces_of = {s: np.flatnonzero(face_spk == s) for s in np.unique(face_spk)}
    speakers = np.array(sorted(faces_of))
    ranks = np.empty(n_loop)
    for i in range(n_loop):
        own = voice_spk[i]
        pos = faces_of[own]
        negatives = []
        for s in rng.permutation(speakers):
            if s == own:
                continue
            idx = faces_of[s]
            if idx.size > n_tilde:
                idx = rng.choice(idx, n_tilde, replace=False)
            negatives.extend(idx.tolist())
            if len(negatives) >= n_tilde:
                break
        neg_sim = f[negatives] @ v[i]
        pos_sim = f[pos] @ v[i]
        g = len(negatives) + pos.size
        ranks[i] = np.mean([(neg_sim > s).sum() / g for s in pos_sim])
    return ranks


def timed(fn):
    """Wall-clock and CPU seconds (all threads of this process) of fn()."""
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--faces", type=int, default=10_000)
    parser.add_argument("--per-speaker", type=int, default=5, help="faces (and voices) per speaker")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--n-tilde", type=int, default=1_000)
    parser.add_argument("--loop-queries", type=int, default=None, help="run the loops on this many queries and extrapolate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    voices, faces, voice_spk, face_spk = make_data(args.queries, args.faces, args.per_speaker, args.dim, args.seed)
    scorer = EmbeddingScorer(voices, faces)
    n_loop = min(args.loop_queries or args.queries, args.queries)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"{args.queries:,} queries x {args.faces:,} faces ({args.per_speaker} per speaker, {args.dim}-d embeddings); "
          f"device {device}; {os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}")

    percentile_recall(EmbeddingScorer(voices[:64], faces), voice_spk[:64], face_spk)  # warm-up (allocations, threads)
    if os.getloadavg()[0] > (os.cpu_count() or 1):
        print(f"note: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: other work shares the CPU, "
              "so wall-clock times are inflated; CPU times are printed too")

    sim = scorer.block(np.arange(args.queries)).numpy()  # for setting 2 (not timed)
    for label, vec_fn, loop_fn in (
        ("full gallery, from embeddings", lambda: percentile_recall(scorer, voice_spk, face_spk),
         lambda: loop_full(voices, faces, voice_spk, face_spk, n_loop)),
        ("full gallery, from a similarity matrix", lambda: percentile_recall(sim, voice_spk, face_spk),
         lambda: loop_matrix(sim, voice_spk, face_spk, n_loop)),
        (f"Monte Carlo, n~ = {args.n_tilde}", lambda: percentile_recall(scorer, voice_spk, face_spk, n_tilde=args.n_tilde, seed=args.seed),
         lambda: loop_monte_carlo(voices, faces, voice_spk, face_spk, n_loop, args.n_tilde, args.seed)),
    ):
        res, t_vec, c_vec = timed(vec_fn)
        loop_ranks, t_loop, c_loop = timed(loop_fn)
        scale = args.queries / n_loop
        print(f"\n[{label}]")
        print(f"  vectorised (torch): {t_vec:8.2f} s wall, {c_vec:8.2f} s CPU   mean rank {res.mean_rank:.4f}, "
              f"P(R <= 0.1) = {res.cdf(0.1)[0]:.4f}")
        if n_loop < args.queries:
            print(f"  loop:               {t_loop:8.2f} s wall, {c_loop:8.2f} s CPU on {n_loop:,} queries -> "
                  f"{t_loop * scale:.2f} s wall for {args.queries:,} (EXTRAPOLATED x{scale:.1f})")
        else:
            print(f"  loop:               {t_loop:8.2f} s wall, {c_loop:8.2f} s CPU   mean rank {loop_ranks.mean():.4f}")
        if label.startswith("full gallery"):
            diff = np.abs(res.ranks[0][:n_loop] - loop_ranks).max()
            why = " (float32 cosines summed in another order flip near-ties)" if diff > 0 else ""
            print(f"  largest per-query difference between the two: {diff:.1e}{why}")
        print(f"  ratio loop / vectorised: {t_loop * scale / t_vec:.1f}x wall-clock, {c_loop * scale / c_vec:.1f}x CPU time")


if __name__ == "__main__":
    main()
