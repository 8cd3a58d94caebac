"""Labelled pairs, 1:2 triplets and 1:N lists built from speaker ids.

These are the training and test items of the field:

* **pairs** (patent FIG. 1, "labelled pairs 120"): (voice, face, label) with
  label 1 when both come from the same speaker, balanced between matching and
  unmatching;
* **triplets** (1:2 identification, paper 001 eq. 1-2 and seed 003): (voice,
  true face, other face), optionally with the other face of the same gender
  (the "G" protocol);
* **1:N lists**: one voice, its true face and N-1 faces of other people.

Every builder works on row indices into ``population.voices`` and
``population.faces`` and is seeded. Book chapter: ``book/01_population.ipynb``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .population import Population

__all__ = ["make_pairs", "make_triplets", "make_one_to_n", "index_by_speaker"]


def index_by_speaker(speakers: np.ndarray) -> dict[str, np.ndarray]:
    """Map each speaker id to the row indices that belong to it."""
    speakers = np.asarray(speakers, dtype=object)
    order = np.argsort(speakers, kind="stable")
    uniq, starts = np.unique(speakers[order], return_index=True)
    bounds = list(starts[1:]) + [len(order)]
    return {str(u): order[s:e] for u, s, e in zip(uniq, starts, bounds)}


def _usable_speakers(population: Population) -> tuple[dict, dict, list[str]]:
    v = index_by_speaker(population.voice_speakers)
    f = index_by_speaker(population.face_speakers)
    both = sorted(set(v) & set(f))
    if len(both) < 2:
        raise ValueError(f"need at least two identities with both a voice clip and a face image, found {len(both)}")
    return v, f, both


def make_pairs(population: Population, n_pairs: int | None = None, *, seed: int = 0) -> pd.DataFrame:
    """Balanced matching / unmatching (voice, face) pairs.

    Parameters
    ----------
    n_pairs : int, optional
        Total number of pairs (half matching, half not). Defaults to two per clip.

    Returns
    -------
    pandas.DataFrame with columns ``voice_index``, ``face_index``, ``label``
    (1 = same speaker), ``voice_speaker``, ``face_speaker``.
    """
    rng = np.random.default_rng(seed)
    v_of, f_of, speakers = _usable_speakers(population)
    clips = np.concatenate([v_of[s] for s in speakers])
    n_pairs = int(n_pairs) if n_pairs is not None else 2 * len(clips)
    n_pos = n_pairs // 2
    n_neg = n_pairs - n_pos
    spk_index = {s: i for i, s in enumerate(speakers)}

    pos_clips = clips[rng.integers(0, len(clips), n_pos)]
    pos_spk = population.voice_speakers[pos_clips]
    pos_faces = np.array([rng.choice(f_of[s]) for s in pos_spk], dtype=np.int64)

    neg_clips = clips[rng.integers(0, len(clips), n_neg)]
    neg_spk = population.voice_speakers[neg_clips]
    # A random other speaker: draw an offset in 1..n-1 so it is never the same one.
    offset = rng.integers(1, len(speakers), n_neg)
    other = [speakers[(spk_index[s] + o) % len(speakers)] for s, o in zip(neg_spk, offset)]
    neg_faces = np.array([rng.choice(f_of[s]) for s in other], dtype=np.int64)

    df = pd.DataFrame(
        {
            "voice_index": np.concatenate([pos_clips, neg_clips]).astype(np.int64),
            "face_index": np.concatenate([pos_faces, neg_faces]).astype(np.int64),
            "label": np.concatenate([np.ones(n_pos, np.int64), np.zeros(n_neg, np.int64)]),
        }
    )
    df = df.iloc[rng.permutation(len(df))].reset_index(drop=True)
    df["voice_speaker"] = population.voice_speakers[df["voice_index"]]
    df["face_speaker"] = population.face_speakers[df["face_index"]]
    return df


def _negative_speaker(rng, speaker, speakers, same_group_of, group):
    pool = same_group_of[group[speaker]] if same_group_of is not None else speakers
    if len(pool) < 2:
        raise ValueError(f"speaker {speaker!r}: no other identity of the same gender to draw a negative from")
    while True:
        cand = pool[rng.integers(0, len(pool))]
        if cand != speaker:
            return cand


def make_triplets(
    population: Population, n_triplets: int | None = None, *, same_gender: bool = False, seed: int = 0
) -> pd.DataFrame:
    """1:2 triplets (voice, true face, other face).

    With ``same_gender=True`` the other face is of the voice's gender (the
    gender-restricted "G" protocol). Returns a DataFrame with ``voice_index``,
    ``positive_index``, ``negative_index``, ``voice_speaker``, ``negative_speaker``.
    """
    rng = np.random.default_rng(seed)
    v_of, f_of, speakers = _usable_speakers(population)
    clips = np.concatenate([v_of[s] for s in speakers])
    n = int(n_triplets) if n_triplets is not None else len(clips)
    group = same_group_of = None
    if same_gender:
        g = dict(zip(population.identities["speaker_id"], population.labels("gender")))
        group = {s: g[s] for s in speakers}
        if any(v < 0 for v in group.values()):
            raise ValueError("same_gender triplets need the gender of every identity")
        same_group_of = {k: [s for s in speakers if group[s] == k] for k in set(group.values())}
    chosen = clips[rng.integers(0, len(clips), n)]
    rows = []
    for c in chosen:
        s = population.voice_speakers[c]
        neg = _negative_speaker(rng, s, speakers, same_group_of, group)
        rows.append((c, rng.choice(f_of[s]), rng.choice(f_of[neg]), s, neg))
    return pd.DataFrame(rows, columns=["voice_index", "positive_index", "negative_index", "voice_speaker", "negative_speaker"])


def make_one_to_n(
    population: Population, n_way: int, n_lists: int | None = None, *, same_gender: bool = False, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """1:N lists: each voice with N faces of N different people, one of them its own.

    Returns
    -------
    voice_index : np.ndarray, shape (n_lists,)
    face_index : np.ndarray, shape (n_lists, n_way); column 0 is the true face
        (scorers must not rely on that: shuffle before showing to a person).
    """
    rng = np.random.default_rng(seed)
    v_of, f_of, speakers = _usable_speakers(population)
    if n_way < 2 or n_way > len(speakers):
        raise ValueError(f"n_way must be between 2 and the number of identities ({len(speakers)}), got {n_way}")
    clips = np.concatenate([v_of[s] for s in speakers])
    n_lists = int(n_lists) if n_lists is not None else len(clips)
    pool_of = {None: speakers}
    if same_gender:
        g = dict(zip(population.identities["speaker_id"], population.labels("gender")))
        pool_of = {k: [s for s in speakers if g[s] == k] for k in set(g[s] for s in speakers)}
    voices = clips[rng.integers(0, len(clips), n_lists)]
    faces = np.empty((n_lists, n_way), dtype=np.int64)
    for i, c in enumerate(voices):
        s = population.voice_speakers[c]
        pool = [p for p in pool_of[g[s] if same_gender else None] if p != s]
        if len(pool) < n_way - 1:
            raise ValueError(f"speaker {s!r}: only {len(pool)} other identities available for a 1:{n_way} list")
        others = rng.choice(len(pool), n_way - 1, replace=False)
        faces[i, 0] = rng.choice(f_of[s])
        faces[i, 1:] = [rng.choice(f_of[pool[j]]) for j in others]
    return voices.astype(np.int64), faces
