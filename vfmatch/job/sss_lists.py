"""The SSS lists without the trials whose photo has no face the detector finds (``vfmatch sss``).

:func:`vfmatch.evaluation.evaluate_sss` scores every trial of a list, and a
photo the face detector finds no face in has no features
(:func:`vfmatch.job.sss_features.face_item`). Feeding it unaligned would
compare it with faces that were aligned; so the recipe scores lists *without*
the trials that need such a photo, and says how many it dropped:

* a 1:2 triplet or a verification pair is dropped when any of its photos is one;
* a retrieval gallery loses those photos (the queries are voices and stay).

:func:`drop_trials` writes those lists, in the published formats and under the
published names, to a folder that ``evaluate_sss(lists_dir=...)`` reads.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..evaluation.protocols import SSS_LISTS, load_sss_list, write_pairs, write_triplets

__all__ = ["drop_trials"]


def drop_trials(lists: Sequence[str], lists_dir, identities: pd.DataFrame, skipped_faces, folder) -> dict[str, dict]:
    """Write ``lists`` without the trials that need a photo of ``skipped_faces`` to ``folder``.

    Parameters
    ----------
    lists : names of :data:`SSS_LISTS`
    lists_dir : where the lists are read from (None: the shipped ones)
    identities : the SSS identity table
    skipped_faces : face paths (as the lists spell them) that have no features
    folder : where the new list files go (created; files of the same names are replaced)

    Returns ``{list name: {"dropped": n, "kept": m}}``: trials (for a retrieval list:
    gallery photos) dropped and kept.
    """
    skip = set(map(str, skipped_faces))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dropped = {}
    for name in lists:
        fname, kind, _split, _restricted, direction = SSS_LISTS[name]
        data = load_sss_list(name, identities, lists_dir=lists_dir)
        path = folder / fname
        if kind == "triplets":
            keep = ~(data["positive"].isin(skip) | data["negative"].isin(skip))
            kept = data[keep]
            write_triplets(path, kept["probe"], kept["positive"], kept["negative"], overwrite=True)
        elif kind == "pairs":
            keep = ~data["face"].isin(skip)
            kept = data[keep]
            write_pairs(path, kept["voice"], kept["face"], first="face" if direction == "fv" else "voice", overwrite=True)
        else:
            queries, gallery = data
            keep = ~gallery["path"].isin(skip)
            with gzip.open(path, "wt", encoding="utf-8") as fh:  # the released format: queries, then gallery
                fh.write(" ".join(queries["path"]) + "\n" + " ".join(gallery["path"][keep]) + "\n")
        dropped[name] = {"dropped": int((~keep).sum()), "kept": int(keep.sum())}
    return dropped
