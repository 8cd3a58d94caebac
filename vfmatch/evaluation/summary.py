"""Every protocol at once, and the same per subgroup: what a report or a paper table needs.

* :func:`evaluate_similarity` -- one scorer, all the protocols of the field
  (1:2 identification U and G in both directions, verification AUC / EER and
  binary accuracy at the EER, retrieval mAP, percentile recall, the 1:N
  curve), each with its chance level and a bootstrap interval over
  identities; a JSON-ready dict.
* :func:`subgroup_report` -- the main metrics per subgroup of probe identities
  (gender x ethnicity x skin tone by default): who is the matcher serving well?

Tie rules default to the honest ones everywhere: a tie counts 1/2 in the 1:2
and 1:N lists (``ties="half"``, :mod:`~vfmatch.evaluation.identification`) and
in the percentile rank (``rank_ties="half"``, :mod:`~vfmatch.evaluation.percentile`),
so a scorer that ties a lot gets its expected value, never a free win.

The protocols follow paper 001 (sec. 2.3: 1:2 identification, binary
accuracy at the EER, percentile recall) and seed 003 (sec. 4.2: the U and G
1:2 protocols, AUC, mAP). Shapes: ``similarity`` is (n_voices, n_faces) or any
scorer of :mod:`~vfmatch.evaluation.scorers`; speakers and genders one per
voice / face.

Book chapter: ``book/08_evaluation.ipynb``; the job's report (``vfmatch run``)
calls both.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..data.lists import speaker_codes
from ..utils import to_jsonable
from .bootstrap import bootstrap_auc_ci, bootstrap_ci
from .identification import gender_per_code, identification_accuracy, one_to_n_accuracy, retrieval_map, verification_metrics
from .metrics import chance_average_precision
from .percentile import percentile_recall
from .scorers import SubsetScorer, as_scorer

__all__ = ["evaluate_similarity", "subgroup_report"]


def evaluate_similarity(
    similarity,
    voice_speakers,
    face_speakers,
    *,
    voice_gender=None,
    face_gender=None,
    n_triplets: int = 4000,
    n_pairs: int = 4000,
    n_lists: int = 2000,
    n_ways: Iterable[int] = range(2, 11),
    ties: str = "half",
    rank_ties: str = "half",
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
    device=None,
) -> dict:
    """All protocols of the field on one scorer, with chance levels and bootstrap CIs.

    Parameters
    ----------
    similarity : (n_voices, n_faces) matrix, function ``score(voice_idx, face_idx)``, or a
        :class:`~vfmatch.evaluation.scorers.Scorer`
        Higher = more similar.
    voice_speakers, face_speakers : speaker id of every voice / face
    voice_gender, face_gender : optional gender of every voice / face (either is
        enough); enables the gender-restricted ("G") protocols.
    n_triplets, n_pairs, n_lists : sizes of the seeded 1:2, verification and 1:N lists
    ties : tie rule of the 1:2 and 1:N lists (``"half"``, ``"order"``, ``"wrong"``)
    rank_ties : tie rule of the percentile rank (``"half"``, ``"strict"``,
        ``"pessimistic"``); both count a tie 1/2 by default
    n_boot, level : bootstrap over identities (``n_boot=0``: no intervals)

    Returns
    -------
    dict (JSON-serialisable): ``identification_1to2_vf``, ``identification_1to2_fv``
    (and ``..._gender_restricted`` with genders), ``auc``, ``eer``,
    ``eer_threshold``, ``binary_accuracy_at_eer``, ``auc_fv`` (and
    ``auc_gender_restricted``), ``map_vf``, ``map_fv``, ``percentile_recall``
    (summary of the full-gallery ranks), ``one_to_n`` {N: accuracy} (int keys N;
    ``json.dumps`` writes them as strings), ``chance`` (the same keys), ``ci``
    ({key: [low, high]}), ``n`` (counts) and the settings. Values are plain
    Python numbers (:func:`vfmatch.utils.to_jsonable`; NaN would be None).
    """
    vs, fs = np.asarray(voice_speakers).astype(str), np.asarray(face_speakers).astype(str)
    sc = as_scorer(similarity, vs.size, fs.size)
    has_gender = voice_gender is not None or face_gender is not None
    if has_gender:
        (vc, fc), names = speaker_codes(vs, fs)
        gender_per_code(names.size, [(vc, voice_gender), (fc, face_gender)])  # validate early
    vf = dict(probe_gender=voice_gender, candidate_gender=face_gender)
    fv = dict(probe_gender=face_gender, candidate_gender=voice_gender)
    out: dict = {}
    chance: dict = {}
    ci: dict = {}
    boot = dict(n_boot=n_boot, level=level, seed=seed)

    def ident(key, scorer, probes, cands, kw, same_gender, s):
        r = identification_accuracy(scorer, probes, cands, n_lists=n_triplets, same_gender=same_gender, ties=ties, seed=s, **kw)
        out[key], chance[key] = r.accuracy, r.chance
        if n_boot:
            ci[key] = list(bootstrap_ci(r.correct, r.probe_code, **boot))

    ident("identification_1to2_vf", sc, vs, fs, vf, False, seed)
    ident("identification_1to2_fv", sc.T, fs, vs, fv, False, seed + 1)
    if has_gender:
        ident("identification_1to2_vf_gender_restricted", sc, vs, fs, vf, True, seed + 2)
        ident("identification_1to2_fv_gender_restricted", sc.T, fs, vs, fv, True, seed + 3)

    ver = verification_metrics(sc, vs, fs, n_pairs=n_pairs, seed=seed + 4, **vf)
    for key in ("auc", "eer", "eer_threshold", "binary_accuracy_at_eer"):
        out[key] = ver[key]
    chance.update({"auc": 0.5, "eer": 0.5, "binary_accuracy_at_eer": 0.5})
    if n_boot:
        ci["auc"] = list(bootstrap_auc_ci(ver["labels"], ver["scores"], ver["probe_code"], **boot))
    out["auc_fv"] = verification_metrics(sc.T, fs, vs, n_pairs=n_pairs, seed=seed + 5, **fv)["auc"]
    chance["auc_fv"] = 0.5
    if has_gender:
        g = verification_metrics(sc, vs, fs, n_pairs=n_pairs, same_gender=True, seed=seed + 6, **vf)
        out["auc_gender_restricted"], out["eer_gender_restricted"] = g["auc"], g["eer"]
        chance.update({"auc_gender_restricted": 0.5, "eer_gender_restricted": 0.5})

    (vc, fc), _ = speaker_codes(vs, fs)
    ap_vf = retrieval_map(sc, vs, fs, reduction="none", device=device)
    ap_fv = retrieval_map(sc.T, fs, vs, reduction="none", device=device)
    out["map_vf"], out["map_fv"] = float(ap_vf.mean()), float(ap_fv.mean())
    chance["map_vf"] = float(chance_average_precision(np.bincount(fc, minlength=vc.max() + 1)[vc], fs.size).mean())
    chance["map_fv"] = float(chance_average_precision(np.bincount(vc, minlength=fc.max() + 1)[fc], vs.size).mean())

    pr = percentile_recall(sc, vs, fs, ties=rank_ties, seed=seed, device=device)
    out["percentile_recall"], chance["percentile_recall"] = pr.summary(), pr.chance()
    if n_boot:
        ci["percentile_mean_rank"] = list(bootstrap_ci(pr.ranks[0], vc[pr.query_index[0]], **boot))

    out["one_to_n"] = one_to_n_accuracy(sc, vs, fs, n_ways=n_ways, n_lists=n_lists, ties=ties, seed=seed + 10, **vf)
    chance["one_to_n"] = {n: 1.0 / n for n in out["one_to_n"]}
    out["chance"], out["ci"] = chance, ci
    out["n"] = {"voices": int(vs.size), "faces": int(fs.size), "identities": int(len(set(vs) | set(fs))),
                "triplets": int(n_triplets), "pairs": int(n_pairs), "lists_per_n": int(n_lists)}
    out["settings"] = {"ties": ties, "rank_ties": rank_ties, "n_boot": int(n_boot), "level": level, "seed": int(seed)}
    out = to_jsonable(out)  # numpy numbers -> Python numbers; it writes every key as a string
    out["one_to_n"] = {int(n): acc for n, acc in out["one_to_n"].items()}
    out["chance"]["one_to_n"] = {int(n): c for n, c in out["chance"]["one_to_n"].items()}
    return out


def subgroup_report(
    similarity,
    voice_speakers,
    face_speakers,
    identities: pd.DataFrame,
    *,
    by: Sequence[str] = ("gender", "ethnicity", "skin_tone"),
    homogeneous: bool = False,
    n_triplets: int = 1000,
    n_boot: int = 200,
    level: float = 0.95,
    min_identities: int = 2,
    ties: str = "half",
    rank_ties: str = "half",
    seed: int = 0,
) -> pd.DataFrame:
    """Metrics per subgroup of probe identities (gender x ethnicity x skin tone by default).

    ``homogeneous=False``: voices of the subgroup are matched against everyone's
    faces (how well is this group served?). ``homogeneous=True``: voices *and*
    faces come from the subgroup only, as in paper 001's homogeneous populations
    (harder: the metaproperties in ``by`` no longer separate anyone).

    Returns one row per subgroup with ``n_identities``, ``n_voices``, the 1:2
    V->F accuracy with its bootstrap interval, the AUC, the full-gallery mean
    percentile rank with its interval and P(R <= 0.1), and chance levels.
    Subgroups with fewer than ``min_identities`` people get NaN metrics.
    ``ties`` and ``rank_ties`` are the tie rules of the 1:2 lists and of the
    percentile rank, as in :func:`evaluate_similarity` (both 1/2 by default)."""
    missing = [c for c in list(by) + ["speaker_id"] if c not in identities]
    if missing:
        raise KeyError(f"identities table has no column(s) {missing}")
    vs, fs = np.asarray(voice_speakers).astype(str), np.asarray(face_speakers).astype(str)
    sc = as_scorer(similarity, vs.size, fs.size)
    ids = identities.assign(speaker_id=identities["speaker_id"].astype(str))
    rows = []
    for key, grp in ids.groupby(list(by), dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        members = set(grp["speaker_id"])
        v_idx = np.flatnonzero(np.isin(vs, list(members)))
        f_idx = np.flatnonzero(np.isin(fs, list(members))) if homogeneous else np.arange(fs.size)
        row = dict(zip(by, key), n_identities=len(members), n_voices=int(v_idx.size))
        metrics = dict.fromkeys(["identification_1to2", "identification_1to2_low", "identification_1to2_high", "auc",
                                 "mean_rank", "mean_rank_low", "mean_rank_high", "recall_at_10pct", "mean_rank_chance"], np.nan)
        n_with_faces = len(members & set(fs[f_idx])) if homogeneous else len(set(fs))
        if len(members) >= min_identities and v_idx.size and n_with_faces >= 2:
            sub = SubsetScorer(sc, v_idx, f_idx)
            sv, sf = vs[v_idx], fs[f_idx]
            keep = np.isin(sv, sf)
            if keep.any() and not keep.all():
                sub, sv = SubsetScorer(sc, v_idx[keep], f_idx), sv[keep]
            r = identification_accuracy(sub, sv, sf, n_lists=n_triplets, ties=ties, seed=seed)
            metrics["identification_1to2"] = r.accuracy
            if n_boot:
                metrics["identification_1to2_low"], metrics["identification_1to2_high"] = bootstrap_ci(
                    r.correct, r.probe_code, n_boot=n_boot, level=level, seed=seed)
            metrics["auc"] = verification_metrics(sub, sv, sf, n_pairs=n_triplets, seed=seed + 1)["auc"]
            pr = percentile_recall(sub, sv, sf, ties=rank_ties, seed=seed)
            metrics["mean_rank"], metrics["mean_rank_chance"] = pr.mean_rank, pr.chance_mean_rank
            metrics["recall_at_10pct"] = float(pr.cdf(0.1)[0])
            if n_boot:
                (codes,), _n = speaker_codes(sv)
                metrics["mean_rank_low"], metrics["mean_rank_high"] = bootstrap_ci(
                    pr.ranks[0], codes[pr.query_index[0]], n_boot=n_boot, level=level, seed=seed)
        row.update(metrics)
        row["identification_1to2_chance"] = 0.5
        rows.append(row)
    return pd.DataFrame(rows)
