"""Ablations: which metaproperties does the matcher's accuracy rest on?

For every metaproperty ``m`` of a matcher, refit the same matcher (same
classifier, distances and settings, same training pairs)

* **drop-one**: on every metaproperty but ``m`` -- how much is lost without it?
* **only-one**: on ``m`` alone -- how much does it carry by itself?

and score each variant on the *same* test lists as the full matcher: 1:2
voice->face identification (the same seeded lists, ties credited 1/2) and the
AUC (the same seeded verification pairs). Each row reports the variant's score
and its **delta** from the full matcher, with a paired identity-bootstrap
interval: every bootstrap sample draws the test identities with replacement
once and scores *both* matchers on the lists (pairs) of the drawn identities,
so the interval is that of the difference itself, not of two noisy scores
side by side. A drop-one interval that covers 0 says this test set cannot
tell whether the metaproperty helps, given the others (often because another
metaproperty carries the same information: weight and BMI, ethnicity and
skin tone). The interval covers the resampling of the *test* identities
only, not the refit on other training pairs: a metaproperty that is pure noise
can show a tiny delta whose tight AUC interval just misses 0. Read the size of
a delta as well as its sign.

The threshold plays no part in 1:2 accuracy or AUC, so variants are fitted on
the training pairs only. With the job's seeds and list sizes
(``n_lists=4000``, AUC pairs seeded ``seed + 4``) the full row reproduces
``metrics.json["evaluation"]["test"]``.

The same paired resampling serves any metric of labelled scores
(:func:`paired_delta_ci`), e.g. the change of the expected calibration error
when the matcher's probabilities are calibrated (:mod:`vfmatch.matching.calibration`).

Book chapters: ``book/05_distances_and_weights.ipynb`` (which metaproperties matter)
and ``book/08_evaluation.ipynb`` (paired bootstraps).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.base import clone

from .bootstrap import bootstrap_ci, identity_resamples
from .identification import identification_accuracy, verification_metrics
from .metrics import weighted_roc_auc

__all__ = ["ablation_table", "ablation_variants", "paired_auc_delta_ci", "paired_delta_ci", "ablation_figure",
           "ABLATION_KINDS"]

ABLATION_KINDS = ("drop_one", "only_one")


def ablation_variants(metaproperties: Sequence[str], kinds: Sequence[str] = ABLATION_KINDS) -> list[tuple[str, str | None, list[str]]]:
    """The variants to fit: ``(kind, metaproperty, metaproperties used)``, the full set first.

    Drop-one is skipped when there is a single metaproperty (nothing would be left),
    only-one when it would repeat the full set."""
    names = list(metaproperties)
    if not names:
        raise ValueError("ablation needs at least one metaproperty")
    unknown = [k for k in kinds if k not in ABLATION_KINDS]
    if unknown:
        raise ValueError(f"kinds must be among {ABLATION_KINDS}, got {unknown}")
    out = [("full", None, names)]
    if "drop_one" in kinds and len(names) > 1:
        out += [("drop_one", m, [n for n in names if n != m]) for m in names]
    if "only_one" in kinds and len(names) > 1:
        out += [("only_one", m, [m]) for m in names]
    return out


def _paired_inputs(labels, scores_a, scores_b, groups, level: float):
    """The checks both paired intervals make: ``(labels, scores_a, scores_b)`` as arrays."""
    y = np.asarray(labels)
    a, b = np.asarray(scores_a, np.float64), np.asarray(scores_b, np.float64)
    if not (y.shape == a.shape == b.shape == np.shape(groups)) or y.ndim != 1 or y.size == 0:
        raise ValueError("labels, both score sets and groups must be non-empty 1-D arrays of equal length")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return y, a, b


def paired_auc_delta_ci(labels, scores_a, scores_b, groups, *, n_boot: int = 1000, level: float = 0.95,
                        seed: int = 0) -> tuple[float, float]:
    """Identity-bootstrap interval of ``AUC(b) - AUC(a)`` on the same pairs.

    ``labels``, ``scores_a``, ``scores_b``, ``groups`` (the probe identity of each
    pair): shape (n,). Each bootstrap sample weights every pair by how often its
    identity was drawn, and computes both AUCs under that one weighting."""
    y, a, b = _paired_inputs(labels, scores_a, scores_b, groups, level)
    y = y.astype(bool)
    g, k = identity_resamples(groups, n_boot, seed)
    w = k[:, g]
    delta = weighted_roc_auc(y, b, w) - weighted_roc_auc(y, a, w)
    delta = delta[np.isfinite(delta)]
    if delta.size == 0:
        raise ValueError("no bootstrap sample has both classes")
    lo, hi = np.quantile(delta, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def paired_delta_ci(metric, labels, scores_a, scores_b, groups, *, n_boot: int = 1000, level: float = 0.95,
                    seed: int = 0) -> tuple[float, float]:
    """Identity-bootstrap interval of ``metric(b) - metric(a)`` on the same pairs, for any
    ``metric(labels, scores, sample_weight=...) -> float`` (one call per bootstrap sample).

    For example the change of the expected calibration error when the matcher's
    probabilities are calibrated: ``paired_delta_ci(expected_calibration_error,
    labels, p_before, p_after, probe_identity)`` (:mod:`vfmatch.matching.calibration`).
    Same resampling as :func:`paired_auc_delta_ci`."""
    y, a, b = _paired_inputs(labels, scores_a, scores_b, groups, level)
    g, k = identity_resamples(groups, n_boot, seed)
    delta = [metric(y, b, sample_weight=w) - metric(y, a, sample_weight=w) for w in k[:, g]]
    lo, hi = np.quantile(delta, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def ablation_table(
    matcher,
    train_tables: tuple[Mapping, Mapping],
    train_pairs,
    test_tables: tuple[Mapping, Mapping],
    voice_speakers,
    face_speakers,
    *,
    metaproperties: Sequence[str] | None = None,
    kinds: Sequence[str] = ABLATION_KINDS,
    n_lists: int = 4000,
    n_pairs: int = 4000,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Drop-one and only-one ablations of a matcher, with paired bootstrap intervals.

    Parameters
    ----------
    matcher : MetapropertyMatcher (fitted or not): the template; each variant is
        ``clone(matcher).set_params(metaproperties=...)`` fitted on ``train_pairs``
    train_tables : (voice_table, face_table) the training pairs index into
    train_pairs : labelled pairs (the frame of :func:`vfmatch.make_pairs`)
    test_tables : (voice_table, face_table) of the test people
    voice_speakers, face_speakers : speaker id of every test table row, shapes (n_voices,), (n_faces,)
    metaproperties : the full set (default: the matcher's, else the training tables' keys)
    kinds : which ablations, among ``("drop_one", "only_one")``
    n_lists : 1:2 voice->face lists; n_pairs : verification pairs for the AUC
    n_boot, level, seed : the bootstrap (identities resampled) and the seed of the lists

    Returns
    -------
    DataFrame, one row per variant (the full matcher first): ``kind``
    (full / drop_one / only_one), ``metaproperty`` (dropped or kept; None for
    full), ``metaproperties`` (comma-separated), ``identification_1to2_vf`` with
    ``delta_identification_1to2_vf`` and its ``_low`` / ``_high`` interval, and
    ``auc`` with ``delta_auc``, ``delta_auc_low``, ``delta_auc_high``. Deltas are
    variant - full (negative: the variant is worse); the full row has delta 0 and
    no interval. ``attrs`` holds the settings.
    """
    voice_train, face_train = train_tables
    voice_test, face_test = test_tables
    names = list(metaproperties or getattr(matcher, "metaproperties", None) or list(voice_train))
    vs, fs = np.asarray(voice_speakers).astype(str), np.asarray(face_speakers).astype(str)
    rows, ref = [], None
    for kind, name, used in ablation_variants(names, kinds):
        m = clone(matcher).set_params(metaproperties=list(used)).fit_pairs(voice_train, face_train, train_pairs)
        S = m.similarity_matrix(voice_test, face_test)
        ident = identification_accuracy(S, vs, fs, n_way=2, n_lists=n_lists, ties="half", seed=seed)
        ver = verification_metrics(S, vs, fs, n_pairs=n_pairs, seed=seed + 4)
        row = {"kind": kind, "metaproperty": name, "metaproperties": ",".join(used),
               "identification_1to2_vf": ident.accuracy, "auc": ver["auc"]}
        if ref is None:  # the full matcher: every variant is compared with it
            ref = (ident, ver)
            row.update(delta_identification_1to2_vf=0.0, delta_identification_1to2_vf_low=np.nan,
                       delta_identification_1to2_vf_high=np.nan, delta_auc=0.0, delta_auc_low=np.nan, delta_auc_high=np.nan)
        else:
            full_ident, full_ver = ref
            # Same speakers and seed, so the same lists and pairs: the deltas are paired.
            if not (np.array_equal(ident.probe_code, full_ident.probe_code)
                    and np.array_equal(ver["labels"], full_ver["labels"]) and np.array_equal(ver["probe_code"], full_ver["probe_code"])):
                raise RuntimeError("ablation: the variant was scored on different lists than the full matcher")
            diff = ident.correct - full_ident.correct
            lo, hi = bootstrap_ci(diff, ident.probe_code, n_boot=n_boot, level=level, seed=seed) if n_boot else (np.nan, np.nan)
            alo, ahi = (paired_auc_delta_ci(ver["labels"], full_ver["scores"], ver["scores"], ver["probe_code"],
                                            n_boot=n_boot, level=level, seed=seed) if n_boot else (np.nan, np.nan))
            row.update(delta_identification_1to2_vf=float(diff.mean()), delta_identification_1to2_vf_low=lo,
                       delta_identification_1to2_vf_high=hi, delta_auc=ver["auc"] - full_ver["auc"],
                       delta_auc_low=alo, delta_auc_high=ahi)
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs = {"n_lists": int(n_lists), "n_pairs": int(n_pairs), "n_boot": int(n_boot), "level": float(level),
                   "seed": int(seed), "bootstrap": "paired, identities resampled", "ties": "half",
                   "n_test_identities": int(len(set(vs) | set(fs)))}
    return table


def ablation_figure(table: pd.DataFrame, metric: str = "identification_1to2_vf",
                    title: str = "Ablations: change in 1:2 voice-to-face accuracy"):
    """Deltas with their intervals, one panel row per kind (drop-one, only-one), from :func:`ablation_table`."""
    import plotly.graph_objects as go  # plotly is needed for figures only

    fig = go.Figure()
    for kind, label in (("drop_one", "without it (drop-one)"), ("only_one", "it alone (only-one)")):
        t = table[table["kind"] == kind]
        if t.empty:
            continue
        d, lo, hi = t[f"delta_{metric}"], t[f"delta_{metric}_low"], t[f"delta_{metric}_high"]
        fig.add_trace(go.Bar(x=t["metaproperty"], y=d, name=label,
                             error_y=dict(type="data", symmetric=False, array=hi - d, arrayminus=d - lo)))
    fig.add_hline(y=0, line_color="grey")
    level = round(100 * table.attrs.get("level", 0.95))
    fig.update_layout(title=title, barmode="group", xaxis_title="metaproperty",
                      yaxis_title=f"{metric}: variant minus full matcher ({level}% CI)", template="plotly_white")
    return fig
