"""Evaluation protocols: the public list formats and the published SSS lists.

Two things live here, both about *which* voice is compared with *which* face
(the metrics of :mod:`vfmatch.evaluation` score them):

1. **Readers and writers** for the list formats users meet:

   ======================================  ==========================================
   format                                   functions
   ======================================  ==========================================
   1:2 lists, ``probe positive negative``   :func:`read_triplets`, :func:`write_triplets`
   verification, ``voice face`` (or         :func:`read_pairs`, :func:`write_pairs`
   ``label voice face``)
   retrieval, line 1 queries, line 2        :func:`read_retrieval_list`
   the gallery (Seeking the Shape of Sound)
   Learnable-PINs CSV ``id,voice-speaker-   :func:`read_labelled_pairs`,
   id,face-speaker-id,label,voice-path,     :func:`write_labelled_pairs`
   face-path``
   FAME lists ``id voice face`` and score   :func:`read_fame_list`, :func:`read_score_file`,
   files ``id score``                       :func:`write_score_file`
   ======================================  ==========================================

   Files may be gzip-compressed (``.gz``). Blank lines and ``#`` comments are
   skipped; a malformed line raises ``ValueError`` naming the file and line.
   Writers refuse to overwrite an existing file unless ``overwrite=True``.
2. **The Seeking-the-Shape-of-Sound lists** (seed 003; MIT licence) shipped in
   ``vfmatch/data/sss``: :func:`load_sss_identities`, :func:`load_sss_list`,
   :func:`evaluate_sss` (score any model on them), and
   :func:`attribute_agreement_scorer`, the "knows only the true
   metaproperties" baseline of ``book/08_evaluation.ipynb``.

Seeded lists drawn from a population (1:N lists, 1:2 triplets with paper
001's involution sigma, balanced verification pairs, the U and G protocols of
seed 003) come from the one list sampler, :mod:`vfmatch.data.lists`; its names
are re-exported here (``protocols.sample_lists`` and so on) for older code.

Book chapter: ``book/08_evaluation.ipynb``.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import io
from importlib import resources
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

# The list sampler lives below evaluation in the data flow; re-exported for older code.
from ..data.lists import ListSample, sample_lists, sample_triplets, sample_verification_pairs, speaker_codes
from .identification import list_credit, retrieval_map
from .metrics import chance_average_precision, equal_error_rate, mean_average_precision, roc_auc
from .scorers import FunctionScorer

__all__ = [
    "speaker_codes",
    "sample_lists",
    "sample_triplets",
    "sample_verification_pairs",
    "ListSample",
    "read_triplets",
    "write_triplets",
    "read_pairs",
    "write_pairs",
    "read_retrieval_list",
    "read_labelled_pairs",
    "write_labelled_pairs",
    "read_fame_list",
    "read_score_file",
    "write_score_file",
    "identity_of",
    "SSS_LISTS",
    "sss_file",
    "load_sss_identities",
    "load_sss_list",
    "attribute_agreement_scorer",
    "evaluate_sss",
]


# ---------------------------------------------------------------------------
# 1. Readers and writers
# ---------------------------------------------------------------------------


def _open_text(path) -> io.TextIOBase:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    if p.is_dir():
        raise IsADirectoryError(f"{p}: is a folder, expected a list file")
    with open(p, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(p, "rb"), encoding="utf-8")
    return open(p, "r", encoding="utf-8")


def _rows(path, n_fields: Sequence[int] | int, sep: str | None = None) -> list[list[str]]:
    """Non-blank, non-comment lines split into fields; checks the field count."""
    allowed = (n_fields,) if isinstance(n_fields, int) else tuple(n_fields)
    rows = []
    with _open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            fields = [f.strip() for f in text.split(sep)] if sep else text.split()
            if len(fields) not in allowed:
                raise ValueError(f"{path}:{lineno}: expected {' or '.join(map(str, allowed))} fields, got {len(fields)}: {text[:80]!r}")
            rows.append(fields)
    if not rows:
        raise ValueError(f"{path}: the file has no entries")
    return rows


def _check_writable(path, overwrite: bool) -> Path:
    p = Path(path)
    if p.exists() and not overwrite:
        raise FileExistsError(f"{p}: exists; pass overwrite=True to replace it")
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def _write_lines(path, lines: Iterable[str], overwrite: bool) -> Path:
    p = _check_writable(path, overwrite)
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "wt", encoding="utf-8") as fh:
        for line in lines:
            fh.write(line + "\n")
    return p


def _no_space(values, what: str) -> list[str]:
    out = [str(v) for v in values]
    for v in out:
        if not v or any(c.isspace() for c in v):
            raise ValueError(f"{what}: {v!r} is empty or contains white space, which the list format cannot hold")
    return out


def identity_of(path: str) -> str:
    """The identity of an item path: its first component
    (``id10117/59-3D0HIDAc/00001.wav`` -> ``id10117``)."""
    return str(path).replace("\\", "/").lstrip("/").split("/", 1)[0]


def read_triplets(path) -> pd.DataFrame:
    """1:2 list of ``probe positive negative`` lines -> DataFrame with those columns."""
    return pd.DataFrame(_rows(path, 3), columns=["probe", "positive", "negative"])


def write_triplets(path, probe, positive, negative, *, overwrite: bool = False) -> Path:
    """Write ``probe positive negative`` lines (gzip if ``path`` ends in ``.gz``)."""
    cols = [_no_space(c, name) for c, name in ((probe, "probe"), (positive, "positive"), (negative, "negative"))]
    if len({len(c) for c in cols}) != 1:
        raise ValueError("probe, positive and negative must have the same length")
    return _write_lines(path, (" ".join(t) for t in zip(*cols)), overwrite)


def read_pairs(path, *, first: str = "voice") -> pd.DataFrame:
    """Verification list: ``voice face`` lines, or ``face voice`` with ``first="face"``
    (the SSS ``verify_f2v`` list), optionally with a leading 0/1 label column
    (``label voice face``, the VoxCeleb convention).

    Returns a DataFrame with columns ``voice``, ``face`` (and ``label`` if present)."""
    if first not in ("voice", "face"):
        raise ValueError(f"first must be 'voice' or 'face', got {first!r}")
    rows = _rows(path, (2, 3))
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        raise ValueError(f"{path}: lines mix 2 and 3 fields")
    if widths == {3}:
        labels = [r[0] for r in rows]
        bad = sorted(set(labels) - {"0", "1"})
        if bad:
            raise ValueError(f"{path}: 3-field lines must start with a 0/1 label, found {bad[:3]}")
        rows = [r[1:] for r in rows]
    a, b = zip(*rows)
    df = pd.DataFrame({"voice": a, "face": b} if first == "voice" else {"voice": b, "face": a})
    if widths == {3}:
        df["label"] = np.asarray(labels, dtype=np.int64)
    return df


def write_pairs(path, voice, face, label=None, *, first: str = "voice", overwrite: bool = False) -> Path:
    """Write a verification list (``[label ]voice face`` or ``[label ]face voice``)."""
    v, f = _no_space(voice, "voice"), _no_space(face, "face")
    if len(v) != len(f):
        raise ValueError("voice and face must have the same length")
    pair = zip(v, f) if first == "voice" else zip(f, v)
    if label is None:
        return _write_lines(path, (f"{a} {b}" for a, b in pair), overwrite)
    lab = np.asarray(label)
    if lab.shape != (len(v),) or not np.isin(lab, (0, 1)).all():
        raise ValueError("label must be 0/1, one per pair")
    return _write_lines(path, (f"{int(y)} {a} {b}" for y, (a, b) in zip(lab, pair)), overwrite)


def read_retrieval_list(path) -> tuple[list[str], list[str]]:
    """Retrieval list as released with Seeking the Shape of Sound: line 1 holds every
    query (space-separated), line 2 the whole gallery. Returns ``(queries, gallery)``."""
    lines = []
    with _open_text(path) as fh:
        lines = [ln.split() for ln in fh if ln.strip()]
    if len(lines) != 2:
        raise ValueError(f"{path}: a retrieval list has exactly 2 non-empty lines (queries, gallery), found {len(lines)}")
    return lines[0], lines[1]


LEARNABLE_PINS_HEADER = ("id", "voice-speaker-id", "face-speaker-id", "label", "voice-path", "face-path")


def read_labelled_pairs(path) -> pd.DataFrame:
    """Learnable-PINs verification CSV (``id,voice-speaker-id,face-speaker-id,label,
    voice-path,face-path``, header line optional).

    Returns columns ``id``, ``voice_speaker``, ``face_speaker``, ``label`` (0/1),
    ``voice``, ``face``."""
    rows = _rows(path, 6, sep=",")
    if tuple(f.lower() for f in rows[0]) == LEARNABLE_PINS_HEADER:
        rows = rows[1:]
    if not rows:
        raise ValueError(f"{path}: only a header, no pairs")
    df = pd.DataFrame(rows, columns=["id", "voice_speaker", "face_speaker", "label", "voice", "face"])
    bad = sorted(set(df["label"]) - {"0", "1"})
    if bad:
        raise ValueError(f"{path}: the label column must hold 0 or 1, found {bad[:3]}")
    df["label"] = df["label"].astype(np.int64)
    return df


def write_labelled_pairs(path, voice, face, label, *, voice_speaker=None, face_speaker=None, overwrite: bool = False) -> Path:
    """Write a Learnable-PINs CSV with a header; speakers default to :func:`identity_of`."""
    v, f = [str(x) for x in voice], [str(x) for x in face]
    lab = np.asarray(label)
    if not (len(v) == len(f) == lab.size) or not np.isin(lab, (0, 1)).all():
        raise ValueError("voice, face and label (0/1) must have one entry per pair")
    vs = [str(s) for s in (voice_speaker if voice_speaker is not None else map(identity_of, v))]
    fs = [str(s) for s in (face_speaker if face_speaker is not None else map(identity_of, f))]
    for col in (v, f, vs, fs):
        if any("," in x for x in col):
            raise ValueError("a path or speaker id contains a comma, which this CSV format cannot hold")
    lines = [",".join(LEARNABLE_PINS_HEADER)]
    lines += [f"{i + 1},{a},{b},{int(y)},{c},{d}" for i, (a, b, y, c, d) in enumerate(zip(vs, fs, lab, v, f))]
    return _write_lines(path, lines, overwrite)


def read_fame_list(path) -> pd.DataFrame:
    """FAME challenge test list: ``id voice face`` lines -> columns ``id``, ``voice``, ``face``."""
    return pd.DataFrame(_rows(path, 3), columns=["id", "voice", "face"])


def read_score_file(path) -> pd.DataFrame:
    """FAME-style score file, one ``id score`` line per pair -> columns ``id``, ``score`` (float).

    FAME submissions hold L2 *distances* (lower = same person): negate them before
    :func:`vfmatch.evaluation.roc_auc`, which expects higher = more similar."""
    df = pd.DataFrame(_rows(path, 2), columns=["id", "score"])
    try:
        df["score"] = df["score"].astype(np.float64)
    except ValueError as exc:
        raise ValueError(f"{path}: a score is not a number ({exc})") from None
    if not np.isfinite(df["score"]).all():
        raise ValueError(f"{path}: scores must be finite numbers")
    if df["id"].duplicated().any():
        raise ValueError(f"{path}: id {df.loc[df['id'].duplicated(), 'id'].iloc[0]!r} appears twice")
    return df


def write_score_file(path, ids, scores, *, overwrite: bool = False) -> Path:
    """Write ``id score`` lines (``%s %f``, as the FAME baseline does)."""
    i = _no_space(ids, "id")
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (len(i),) or not np.isfinite(s).all():
        raise ValueError("scores must be finite, one per id")
    return _write_lines(path, (f"{a} {b:.6f}" for a, b in zip(i, s)), overwrite)


# ---------------------------------------------------------------------------
# 2. The Seeking-the-Shape-of-Sound lists (shipped in vfmatch/data/sss)
# ---------------------------------------------------------------------------

# name -> (file, kind, split, gender-restricted, direction)
SSS_LISTS = {
    "match_v2f_val": ("match_v2f_2_val.txt.gz", "triplets", "validation", False, "vf"),
    "match_g_v2f_val": ("match_g_v2f_2_val.txt.gz", "triplets", "validation", True, "vf"),
    "verify_v2f_test": ("verify_v2f_test.txt.gz", "pairs", "test", False, "vf"),
    "verify_g_v2f_test": ("verify_g_v2f_test.txt.gz", "pairs", "test", True, "vf"),
    "verify_f2v_test": ("verify_f2v_test.txt.gz", "pairs", "test", False, "fv"),
    "retrieval_v2f_test": ("reterival_v2f_test.txt.gz", "retrieval", "test", False, "vf"),
}
_SSS_IDENTITY_FILES = {"train": "vox1_train.csv.gz", "validation": "vox1_val.csv.gz", "test": "vox1_test.csv.gz"}


def sss_file(name: str):
    """Path (a context manager from :func:`importlib.resources.as_file`) of a shipped SSS file."""
    ref = resources.files("vfmatch").joinpath("data", "sss", name)
    if not ref.is_file():
        raise FileNotFoundError(f"vfmatch/data/sss/{name}: not shipped with this installation of vfmatch")
    return resources.as_file(ref)


def load_sss_identities() -> pd.DataFrame:
    """The 1,251 VoxCeleb1 / VGGFace1 identities of the SSS split.

    Columns: ``speaker_id`` (VoxCeleb1 id, ``id10117``), ``face_name`` (VGGFace1
    folder, ``CCH_Pounder``), ``gender`` (``male``/``female``), ``nationality``
    (as given, e.g. ``USA``), ``voxceleb_set`` (``dev``/``test``/``none`` in
    VoxCeleb1) and ``split`` (``train``/``validation``/``test`` of the SSS lists).
    These are metadata columns of a public research dataset; they say nothing
    about anyone beyond what the dataset records."""
    parts = []
    for split, fname in _SSS_IDENTITY_FILES.items():
        with sss_file(fname) as p:
            df = pd.read_csv(p, dtype=str)
        expected = ["VoxCeleb1_ID", "VGGFace1_ID", "Gender", "Nationality", "Set"]
        if list(df.columns) != expected:
            raise ValueError(f"{fname}: expected columns {expected}, found {list(df.columns)}")
        parts.append(df.assign(split=split))
    ids = pd.concat(parts, ignore_index=True)
    ids = ids.rename(columns={"VoxCeleb1_ID": "speaker_id", "VGGFace1_ID": "face_name", "Gender": "gender",
                              "Nationality": "nationality", "Set": "voxceleb_set"})
    ids["gender"] = ids["gender"].str.strip().str.lower().map({"m": "male", "f": "female"})
    if ids["gender"].isna().any():
        raise ValueError("SSS identity files: a gender is neither 'm' nor 'f'")
    return ids


def load_sss_list(name: str, identities: pd.DataFrame | None = None, *, lists_dir=None):
    """One published SSS list with identities resolved.

    ``name`` is a key of :data:`SSS_LISTS`. Every item is mapped to its identity
    (the VoxCeleb1 id; faces through the identity table). ``lists_dir``: read the
    list file (same name, same format) from this folder instead of the shipped one,
    e.g. lists restricted to the files a test fixture has.

    Returns
    -------
    * triplets: DataFrame ``probe, positive, negative`` + ``*_speaker`` columns;
    * pairs: DataFrame ``voice, face, voice_speaker, face_speaker, label``
      (label 1 when both are one identity, as the README of the lists says);
    * retrieval: ``(queries, gallery)``, two DataFrames with ``path`` and ``speaker``.
    """
    if name not in SSS_LISTS:
        raise KeyError(f"unknown SSS list {name!r}; available: {sorted(SSS_LISTS)}")
    if lists_dir is not None:
        return _load_sss_list(name, load_sss_identities() if identities is None else identities, lists_dir)
    if identities is None:
        # The shipped files never change: parse each once per session.
        cached = _load_sss_list_shipped(name)
        return tuple(d.copy() for d in cached) if isinstance(cached, tuple) else cached.copy()
    return _load_sss_list(name, identities)


@functools.lru_cache(maxsize=None)
def _load_sss_list_shipped(name: str):
    return _load_sss_list(name, load_sss_identities())


def _load_sss_list(name: str, ids: pd.DataFrame, lists_dir=None):
    fname, kind, _split, _g, direction = SSS_LISTS[name]
    face_to_speaker = dict(zip(ids["face_name"], ids["speaker_id"]))
    known_voice = set(ids["speaker_id"])

    def first_component(paths) -> pd.Series:
        return pd.Series(np.asarray(paths, dtype=object)).str.replace("\\", "/").str.lstrip("/").str.split("/", n=1).str[0]

    def voice_spk(paths):
        out = first_component(paths)
        unknown = sorted(set(out.unique()) - known_voice)
        if unknown:
            raise ValueError(f"{fname}: voice identities {unknown[:3]} are not in the SSS identity files")
        return out.to_numpy(dtype=object)

    def face_spk(paths):
        out = first_component(paths).map(face_to_speaker)
        if out.isna().any():
            bad = first_component(paths)[out.isna()].unique()[:3].tolist()
            raise ValueError(f"{fname}: face identities {bad} are not in the SSS identity files")
        return out.to_numpy(dtype=object)

    source = sss_file(fname) if lists_dir is None else contextlib.nullcontext(Path(lists_dir) / fname)
    with source as path:
        if kind == "triplets":
            df = read_triplets(path)
            df["probe_speaker"] = voice_spk(df["probe"])
            df["positive_speaker"] = face_spk(df["positive"])
            df["negative_speaker"] = face_spk(df["negative"])
            return df
        if kind == "pairs":
            df = read_pairs(path, first="face" if direction == "fv" else "voice")
            df["voice_speaker"] = voice_spk(df["voice"])
            df["face_speaker"] = face_spk(df["face"])
            df["label"] = (df["voice_speaker"] == df["face_speaker"]).astype(np.int64)
            return df
        queries, gallery = read_retrieval_list(path)
        return (pd.DataFrame({"path": queries, "speaker": voice_spk(queries)}),
                pd.DataFrame({"path": gallery, "speaker": face_spk(gallery)}))


def attribute_agreement_scorer(identities: pd.DataFrame, attributes: Sequence[str]) -> Callable:
    """The metaproperty-only baseline: score = number of attributes on which the voice's
    identity and the face's identity agree.

    It knows the *true* attribute values (an oracle for the metaproperties) and
    nothing else, so scores take only ``len(attributes) + 1`` values and tie a
    lot: the metrics' tie rules decide what such a matcher is worth.

    Returns ``score(voice_speaker, face_speaker) -> float64 array``, both arguments
    arrays of ``speaker_id`` values of ``identities``."""
    attrs = list(attributes)
    if not attrs:
        raise ValueError("attributes must name at least one column")
    missing = [a for a in attrs if a not in identities]
    if missing:
        raise KeyError(f"identities table has no column {missing}; it has {list(identities.columns)}")
    index = pd.Index(identities["speaker_id"].astype(str))
    if index.has_duplicates:
        raise ValueError("identities: speaker_id values must be unique")
    codes = np.stack([pd.factorize(identities[a].astype(str))[0] for a in attrs], axis=1)

    def lookup(speakers) -> np.ndarray:
        idx = index.get_indexer(np.asarray(speakers).astype(str))
        if (idx < 0).any():
            raise KeyError(f"speaker {np.asarray(speakers)[idx < 0][0]!r} is not in the identities table")
        return idx

    def score(voice_speaker, face_speaker) -> np.ndarray:
        return (codes[lookup(voice_speaker)] == codes[lookup(face_speaker)]).sum(axis=1).astype(np.float64)

    score.attributes = tuple(attrs)
    return score


def evaluate_sss(
    score_fn: Callable,
    *,
    lists: Sequence[str] = tuple(SSS_LISTS),
    identity_level: bool = False,
    ties: str = "half",
    identities: pd.DataFrame | None = None,
    lists_dir=None,
) -> pd.DataFrame:
    """Score a model on the published SSS lists: 1:2 accuracy, verification AUC / EER, retrieval mAP.

    Parameters
    ----------
    score_fn : ``score_fn(voices, faces) -> scores`` (higher = same person), on
        equal-length arrays. With ``identity_level=False`` it receives item paths
        (``id10117/.../00001.wav``, ``CCH_Pounder/00000657.jpg``): a model that
        embeds the real audio and images. With ``identity_level=True`` it
        receives VoxCeleb1 ids for both (the face's identity resolved through
        the metadata), e.g. :func:`attribute_agreement_scorer`; its scores then
        depend on identities only, and retrieval is computed once per query
        identity (exactly the same result, far faster).
    lists : which of :data:`SSS_LISTS`
    ties : ``"half"`` or ``"wrong"`` for the 1:2 lists (the files always list
        the true face first, so the order rule does not apply)
    lists_dir : a folder holding list files of the same names and formats to
        score instead of the shipped ones (:func:`load_sss_list`)

    Returns
    -------
    DataFrame, one row per list: ``list``, ``task``, ``direction`` (V-F/F-V),
    ``queries`` (U/G), ``split``, ``metric``, ``value``, ``chance``, ``n``, and
    ``eer`` for verification lists.
    """
    if ties not in ("half", "wrong"):
        raise ValueError("ties must be 'half' or 'wrong' for published 1:2 lists")
    ids = load_sss_identities() if identities is None else identities
    rows = []
    for name in lists:
        if name not in SSS_LISTS:
            raise KeyError(f"unknown SSS list {name!r}; available: {sorted(SSS_LISTS)}")
        _f, kind, split, restricted, direction = SSS_LISTS[name]
        base = {"list": name, "direction": "V-F" if direction == "vf" else "F-V", "queries": "G" if restricted else "U", "split": split}
        data = load_sss_list(name, identities, lists_dir=lists_dir)

        def call(v, f):
            return np.asarray(score_fn(np.asarray(v), np.asarray(f)), dtype=np.float64)

        if kind == "triplets":
            key = ("probe_speaker", "positive_speaker", "negative_speaker") if identity_level else ("probe", "positive", "negative")
            s_pos, s_neg = call(data[key[0]], data[key[1]]), call(data[key[0]], data[key[2]])
            credit = list_credit(np.stack([s_pos, s_neg], 1), np.zeros((len(data), 2), np.int64), ties)
            rows.append({**base, "task": "1:2 matching", "metric": "accuracy", "value": float(credit.mean()), "chance": 0.5, "n": len(data)})
        elif kind == "pairs":
            key = ("voice_speaker", "face_speaker") if identity_level else ("voice", "face")
            s = call(data[key[0]], data[key[1]])
            rows.append({**base, "task": "verification", "metric": "AUC", "value": roc_auc(data["label"], s), "chance": 0.5,
                         "n": len(data), "eer": equal_error_rate(data["label"], s)})
        else:
            queries, gallery = data
            rel_speaker = gallery["speaker"].to_numpy()
            if identity_level:
                q_spk, q_count = np.unique(queries["speaker"], return_counts=True)
                scores = np.stack([call(np.repeat(spk, len(gallery)), rel_speaker) for spk in q_spk])
                ap = mean_average_precision(scores, rel_speaker[None, :] == q_spk[:, None], reduction="none")
                value = float(np.average(ap, weights=q_count))
            else:
                qp, gp = queries["path"].to_numpy(), gallery["path"].to_numpy()
                fn = FunctionScorer(lambda i, j: call(qp[i], gp[j]), len(qp), len(gp))
                value = retrieval_map(fn, queries["speaker"], gallery["speaker"])
            n_rel = (rel_speaker[None, :] == np.unique(queries["speaker"])[:, None]).sum(1)
            q_spk, q_count = np.unique(queries["speaker"], return_counts=True)
            chance = float(np.average(chance_average_precision(n_rel, len(gallery)), weights=q_count))
            rows.append({**base, "task": "retrieval", "metric": "mAP", "value": value, "chance": chance, "n": len(queries)})
    cols = ["list", "task", "direction", "queries", "split", "metric", "value", "chance", "n", "eer"]
    return pd.DataFrame(rows).reindex(columns=cols)
