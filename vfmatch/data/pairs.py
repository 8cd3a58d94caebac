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
``population.faces`` and is seeded. :func:`make_pairs` draws its own balanced
pairs (the training items of the main job); the triplets and 1:N lists are
thin wrappers over the one list sampler, :mod:`vfmatch.data.lists`, which the
evaluation protocols use too. Book chapter: ``book/01_population.ipynb``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .lists import ListSample, sample_lists, speaker_codes
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


def _population_lists(population: Population, n_way: int, n_lists: int | None, same_gender: bool, seed: int) -> ListSample:
    """Voice -> face lists of a population, drawn by :func:`vfmatch.data.lists.sample_lists`."""
    (vc, fc), names = speaker_codes(population.voice_speakers, population.face_speakers)
    group = None
    if same_gender:
        # The gender of every speaker code, -1 where the identities table does not know it.
        known = dict(zip(population.identities["speaker_id"].astype(str), population.labels("gender")))
        group = np.array([known.get(n, -1) for n in names], dtype=np.int64)
    return sample_lists(vc, fc, n_way, n_lists, group_of_code=group, same_group=same_gender, seed=seed)


def make_triplets(
    population: Population, n_triplets: int | None = None, *, same_gender: bool = False, seed: int = 0
) -> pd.DataFrame:
    """1:2 triplets (voice, true face, other face), drawn by :func:`vfmatch.data.lists.sample_lists` with N = 2.

    Every voice whose speaker has a face image is a probe; the voices are cycled
    in a random order, so each is used about equally often (default
    ``n_triplets``: one triplet per such voice). The true face is a random face
    of the voice's speaker, the other face a random face of another speaker
    (of the voice's gender with ``same_gender=True``: the gender-restricted
    "G" protocol of seed 003).

    Returns
    -------
    pandas.DataFrame, one row per triplet, with columns ``voice_index``,
    ``positive_index``, ``negative_index`` (int64 rows of ``population.voices`` /
    ``population.faces``), ``voice_speaker`` and ``negative_speaker``.
    """
    lists = _population_lists(population, 2, n_triplets, same_gender, seed)
    return pd.DataFrame({
        "voice_index": lists.probe,
        "positive_index": lists.candidates[:, 0],
        "negative_index": lists.candidates[:, 1],
        "voice_speaker": population.voice_speakers[lists.probe],
        "negative_speaker": population.face_speakers[lists.candidates[:, 1]],
    })


def make_one_to_n(
    population: Population, n_way: int, n_lists: int | None = None, *, same_gender: bool = False, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """1:N lists: each voice with N faces of N different people, one of them its own
    (drawn by :func:`vfmatch.data.lists.sample_lists`; probes as in :func:`make_triplets`).

    Returns
    -------
    voice_index : np.ndarray, shape (n_lists,)
    face_index : np.ndarray, shape (n_lists, n_way); column 0 is the true face
        (scorers must not rely on that: shuffle before showing to a person).
    """
    n_ids = int(np.unique(np.asarray(population.face_speakers).astype(str)).size)
    if n_way < 2 or n_way > n_ids:
        raise ValueError(f"n_way must be between 2 and the number of identities with a face image ({n_ids}), got {n_way}")
    lists = _population_lists(population, n_way, n_lists, same_gender, seed)
    return lists.probe, lists.candidates
