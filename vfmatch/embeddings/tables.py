"""Per-item features in, with identity labels: what every embedding method trains on.

A :class:`FeatureTable` is one modality's items: a float32 matrix
``features`` (n_items, dim), the ``labels`` (identity of every item) and,
optionally, the ``paths`` (item keys such as ``id10003/E_6MjfYr0sQ/00019.wav``)
that path-level lists (the published SSS lists, FAME lists) name.

Where tables come from:

* :func:`population_table`: an encoder of the registry run on a
  :class:`~vfmatch.data.population.Population` (cached by
  :func:`vfmatch.features.population_features`, computed once);
* :func:`load_feature_table`: precomputed features on disk, in the formats
  real corpora ship them in:

  ===============================  ==============================================
  format                            layout
  ===============================  ==============================================
  folder of ``.npy``                ``ROOT/<identity>/.../<item>.npy``, one vector
                                    per file; the identity is the first folder,
                                    the path key the relative path (no suffix)
  one ``.npz``                      arrays ``features`` (n, d), ``labels`` (n,),
                                    optionally ``paths`` (n,)
  one ``.npy``                      a (n, d) matrix; pass ``labels=``
  Parquet / CSV (``.csv.gz`` too)   one row per item: an identity column, an
                                    optional path column, feature columns. A CSV
                                    without a header (as FOP ships
                                    ``faceTrain.csv``) has its label in the last
                                    column
  ===============================  ==============================================

Every table is checked when made (:func:`check_features`): a NaN or infinite
feature, an item without an identity label or an empty table is a
``ValueError`` naming the source, the row and the problem. Training also needs
every identity in both modalities (:func:`check_paired`).

Book chapter: ``book/10_learned_embeddings.ipynb``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..features import population_features

__all__ = [
    "FeatureTable",
    "check_features",
    "check_paired",
    "keep_paired",
    "load_feature_table",
    "population_table",
    "path_key",
]

# Column names recognised, in this order, when the label / path column is not named.
LABEL_COLUMNS = ("speaker_id", "identity", "label", "speaker", "id")
PATH_COLUMNS = ("path", "file", "filename", "item")


def path_key(path: str) -> str:
    """The key under which an item is looked up: forward slashes, no leading
    ``/`` or ``./``, no file suffix (``id1/a/00001.wav`` and ``id1/a/00001.npy``
    both give ``id1/a/00001``)."""
    p = str(path).replace("\\", "/").lstrip("/")
    while p.startswith("./"):
        p = p[2:]
    pp = PurePosixPath(p)
    return str(pp.with_suffix("")) if pp.suffix else p


def _missing_label(values: np.ndarray) -> np.ndarray:
    """True where a label is absent: None, NaN or an empty / blank string."""
    s = pd.Series(values, dtype=object)
    return (s.isna() | s.astype(str).str.strip().isin(["", "nan", "None"])).to_numpy()


def check_features(features, labels, *, what: str = "features") -> tuple[np.ndarray, np.ndarray]:
    """Validate one modality's features and labels; return ``(float32 (n, d), str (n,))``.

    Raises ``ValueError`` (naming ``what``) for: not a 2-D matrix, no item, no
    feature column, a NaN or infinite value (with the first bad row and its
    label), a label count that differs from the row count, or an item without a
    label."""
    try:
        X = np.asarray(features, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what}: features must be numbers ({err})") from None
    if not X.flags.writeable:  # e.g. a view of a Parquet column; torch wants writable memory
        X = X.copy()
    if X.ndim == 1:
        raise ValueError(f"{what}: features must be a 2-D (n_items, dim) matrix, got a 1-D array of {X.size}; "
                         "reshape one item as (1, dim)")
    if X.ndim != 2:
        raise ValueError(f"{what}: features must be a 2-D (n_items, dim) matrix, got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{what}: no items")
    if X.shape[1] == 0:
        raise ValueError(f"{what}: features have 0 columns")
    y = np.asarray(labels, dtype=object).reshape(-1)
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"{what}: {X.shape[0]} feature rows but {y.shape[0]} labels")
    missing = _missing_label(y)
    if missing.any():
        rows = np.flatnonzero(missing)
        raise ValueError(f"{what}: {rows.size} item(s) have no identity label (rows {rows[:5].tolist()}); "
                         "label every item or drop it")
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        col = int(np.flatnonzero(~np.isfinite(X[r]))[0])
        raise ValueError(f"{what}: {int(bad.sum())} row(s) contain NaN or infinite values, first at row {r} "
                         f"(label {y[r]!r}, column {col}); impute or drop them before training")
    return X, y.astype(str)


@dataclass
class FeatureTable:
    """One modality's precomputed features with identity labels (module docstring).

    Attributes
    ----------
    features : float32 (n_items, dim)
    labels : str (n_items,), the identity of every item
    paths : str (n_items,) or None, item keys for path-level lists
    modality : ``"voice"`` or ``"face"`` (used in messages)
    source : where the table came from (used in messages)
    """

    features: np.ndarray
    labels: np.ndarray
    paths: np.ndarray | None = None
    modality: str = "voice"
    source: str = ""

    def __post_init__(self):
        if self.modality not in ("voice", "face"):
            raise ValueError(f"modality must be 'voice' or 'face', not {self.modality!r}")
        self.features, self.labels = check_features(self.features, self.labels, what=self._what)
        if self.paths is not None:
            self.paths = np.asarray(self.paths, dtype=object).astype(str).reshape(-1)
            if self.paths.shape[0] != self.features.shape[0]:
                raise ValueError(f"{self._what}: {self.features.shape[0]} rows but {self.paths.shape[0]} paths")
        self._index: tuple[pd.Index, pd.Index] | None = None  # (paths, path keys), built on first lookup

    @property
    def _what(self) -> str:
        return f"{self.modality} features" + (f" ({self.source})" if self.source else "")

    def __len__(self) -> int:
        return self.features.shape[0]

    @property
    def dim(self) -> int:
        return self.features.shape[1]

    def identities(self) -> np.ndarray:
        """Sorted unique identity labels."""
        return np.unique(self.labels)

    def select(self, rows) -> "FeatureTable":
        """The table restricted to ``rows`` (indices or a boolean mask)."""
        rows = np.asarray(rows)
        rows = np.flatnonzero(rows) if rows.dtype == bool else rows.astype(np.int64)
        return FeatureTable(self.features[rows], self.labels[rows], None if self.paths is None else self.paths[rows],
                            self.modality, self.source)

    def select_identities(self, identities) -> "FeatureTable":
        """The items of the given identities."""
        return self.select(np.isin(self.labels, np.asarray(list(identities), dtype=str)))

    def rows_of(self, paths) -> np.ndarray:
        """Row index of each path (compared by :func:`path_key`); KeyError names the first unknown one."""
        if self.paths is None:
            raise ValueError(f"{self._what}: this table has no paths, so path-level lists cannot be scored with it")
        if self._index is None:
            keys = pd.Index([path_key(p) for p in self.paths])
            if keys.has_duplicates:
                raise ValueError(f"{self._what}: path {keys[keys.duplicated()][0]!r} appears more than once")
            self._index = (pd.Index(self.paths), keys)
        raw, keys = self._index
        asked = np.asarray(paths, dtype=object).astype(str)
        rows = raw.get_indexer(asked) if raw.is_unique else np.full(len(asked), -1)
        miss = np.flatnonzero(rows < 0)
        if miss.size:  # not spelled as in the table: compare the keys (no suffix, forward slashes)
            rows[miss] = keys.get_indexer([path_key(p) for p in asked[miss]])
        if (rows < 0).any():
            bad = str(asked[np.flatnonzero(rows < 0)[0]])
            raise KeyError(f"{self._what}: no features for item {bad!r}; the table must cover every item of the list")
        return rows.astype(np.int64)


def check_paired(voice: FeatureTable, face: FeatureTable) -> np.ndarray:
    """Sorted identities of a training set; ``ValueError`` if one has a single modality.

    Every training identity needs a voice and a face: the losses pull each
    voice towards a face of its own identity."""
    v, f = set(voice.identities().tolist()), set(face.identities().tolist())
    only_v, only_f = sorted(v - f), sorted(f - v)
    for only, has, lacks in ((only_v, "voice", "face"), (only_f, "face", "voice")):
        if only:
            raise ValueError(f"identity {only[0]!r} ({len(only)} in all) has {has} features but no {lacks} features; "
                             "every training identity needs both (keep_paired(voice, face) drops the others)")
    ids = np.asarray(sorted(v), dtype=str)
    if ids.size < 2:
        raise ValueError(f"training needs at least two identities with voices and faces, got {ids.size}")
    return ids


def keep_paired(voice: FeatureTable, face: FeatureTable) -> tuple[FeatureTable, FeatureTable]:
    """Both tables restricted to the identities that have voices *and* faces."""
    both = np.intersect1d(voice.identities(), face.identities())
    return voice.select_identities(both), face.select_identities(both)


# ---------------------------------------------------------------------------
# From a population (the encoder registry) and from files
# ---------------------------------------------------------------------------


def population_table(encoder, population, modality: str, *, fill=None, batch_size: int = 32, progress: bool = False,
                     cache: bool = True) -> FeatureTable:
    """An encoder's features of every clip (``modality="voice"``) or face of a population.

    ``encoder`` is an :class:`vfmatch.features.Encoder` (fitted if trainable);
    features come from :func:`vfmatch.features.population_features` (computed
    once, cached). Paths are the ``clip_id`` / ``face_id`` columns.

    ``fill`` (dim,): the value of each column put where the encoder could not
    measure (NaN, e.g. ``f0-formants`` on an unvoiced clip); without it such a
    feature is an error. :func:`~vfmatch.embeddings.fit_population` passes the
    training means, as the extractors' calculators impute."""
    if modality not in ("voice", "face"):
        raise ValueError(f"modality must be 'voice' or 'face', not {modality!r}")
    if encoder.modality != modality:
        raise ValueError(f"{encoder.name!r} is a {encoder.modality} encoder, not a {modality} one")
    if encoder.output != "vector":
        raise ValueError(f"{encoder.name!r} gives a {encoder.output} per item; the projection heads need a vector "
                         "encoder (e.g. logmel-stats, speaker-cnn, thumbnail, face-cnn)")
    feats = np.asarray(population_features(encoder, population, batch_size=batch_size, progress=progress, cache=cache),
                       dtype=np.float32)
    if fill is not None:
        feats = np.where(np.isfinite(feats), feats, np.asarray(fill, dtype=np.float32)[None, :])
    ds = population.voices if modality == "voice" else population.faces
    speakers = population.voice_speakers if modality == "voice" else population.face_speakers
    id_col = "clip_id" if modality == "voice" else "face_id"
    paths = np.asarray(ds[id_col][:], dtype=object) if id_col in ds.column_names else None
    return FeatureTable(feats, speakers, paths, modality, f"{encoder.name} on the population")


def _read_frame(path: Path) -> tuple[pd.DataFrame, bool]:
    """Read a CSV or Parquet table; returns ``(frame, has_header)``."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        return pd.read_parquet(path), True
    df = pd.read_csv(path)
    # A header-less CSV (FOP's feature files: numbers, then the label) reads its
    # first row as column names. If every name but the last is a number, and
    # they are not the column positions 0, 1, 2, ... that pandas writes as a
    # header, read the file again without a header.
    names = [str(c) for c in df.columns[:-1]]
    try:
        [float(c) for c in names]
    except ValueError:
        return df, True
    if not names or names == [str(i) for i in range(len(names))]:
        return df, True
    return pd.read_csv(path, header=None), False


def _pick(columns, wanted, candidates, what: str, source: Path):
    if wanted is not None:
        if isinstance(wanted, (int, np.integer)) and wanted not in columns:
            return list(columns)[int(wanted)]
        if wanted not in columns:
            raise KeyError(f"{source}: no {what} column {wanted!r}; columns are {list(columns)[:12]}")
        return wanted
    for c in candidates:
        if c in columns:
            return c
    return None


def _table_from_frame(df: pd.DataFrame, has_header: bool, source: Path, modality, label_column, path_column,
                      feature_columns) -> FeatureTable:
    label_col = _pick(df.columns, label_column, LABEL_COLUMNS, "label", source)
    if label_col is None:
        if has_header:
            raise KeyError(f"{source}: no identity column found (looked for {list(LABEL_COLUMNS)}); "
                           "name it with label_column=")
        label_col = df.columns[-1]  # FOP: the label is the last column
    path_col = _pick(df.columns, path_column, PATH_COLUMNS, "path", source)
    if feature_columns is None:
        rest = df.drop(columns=[c for c in (label_col, path_col) if c is not None])
        numeric = rest.select_dtypes(include="number")
        if numeric.shape[1] != rest.shape[1]:
            other = [c for c in rest.columns if c not in numeric.columns]
            raise ValueError(f"{source}: columns {other[:5]} are neither numbers nor the label/path column; "
                             "name the feature columns with feature_columns=")
        X = numeric.to_numpy(dtype=np.float32)
    else:
        missing = [c for c in feature_columns if c not in df.columns]
        if missing:
            raise KeyError(f"{source}: no feature columns {missing[:5]}")
        X = df[list(feature_columns)].to_numpy(dtype=np.float32)
    labels = df[label_col].to_numpy(dtype=object)
    paths = None if path_col is None else df[path_col].to_numpy(dtype=object)
    return FeatureTable(X, labels, paths, modality, str(source))


def _table_from_folder(root: Path, modality: str) -> FeatureTable:
    files = sorted(root.rglob("*.npy"))
    if not files:
        raise FileNotFoundError(f"{root}: no .npy files under this folder")
    rows, labels, paths = [], [], []
    for f in files:
        rel = f.relative_to(root)
        if len(rel.parts) < 2:
            raise ValueError(f"{f}: a feature file must sit in a folder named after its identity "
                             "(ROOT/<identity>/.../<item>.npy)")
        v = np.load(f, allow_pickle=False)
        if v.ndim == 2 and v.shape[0] == 1:
            v = v[0]
        if v.ndim != 1:
            raise ValueError(f"{f}: expected one feature vector, got an array of shape {v.shape}")
        if rows and v.shape != rows[0].shape:
            raise ValueError(f"{f}: {v.shape[0]} features where {files[0].name} has {rows[0].shape[0]}")
        rows.append(v.astype(np.float32))
        labels.append(rel.parts[0])
        paths.append(rel.as_posix())
    return FeatureTable(np.stack(rows), np.asarray(labels, dtype=object), np.asarray(paths, dtype=object), modality,
                        str(root))


def load_feature_table(
    path,
    modality: str,
    *,
    labels: Sequence[str] | None = None,
    label_column: str | int | None = None,
    path_column: str | None = None,
    feature_columns: Sequence[str] | None = None,
    identity_map: Mapping[str, str] | None = None,
) -> FeatureTable:
    """Read precomputed per-item features (formats in the module docstring).

    Parameters
    ----------
    path : a folder of ``.npy`` files, an ``.npz``, an ``.npy``, a ``.parquet`` or a ``.csv`` / ``.csv.gz``
    modality : ``"voice"`` or ``"face"``
    labels : identity per row, for a bare ``.npy`` matrix
    label_column, path_column : the identity and item-path columns of a table
        (default: the first of :data:`LABEL_COLUMNS` / :data:`PATH_COLUMNS`
        present; a header-less CSV has its label last); an int is a position
    feature_columns : the feature columns (default: every other numeric column)
    identity_map : maps labels to identities, e.g. VGGFace names to VoxCeleb
        ids (``dict(zip(ids.face_name, ids.speaker_id))`` from
        :func:`vfmatch.evaluation.load_sss_identities`), so both modalities
        share one identity label; a label it lacks is an error.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder")
    name = p.name.lower()
    if p.is_dir():
        table = _table_from_folder(p, modality)
    elif name.endswith(".npz"):
        with np.load(p, allow_pickle=False) as z:
            if "features" not in z or "labels" not in z:
                raise KeyError(f"{p}: an .npz of features needs arrays 'features' and 'labels', found {list(z.keys())}")
            arrays = {}
            for key in ("features", "labels", "paths"):
                try:
                    arrays[key] = z[key] if key in z else None
                except ValueError:  # numpy refuses object arrays without pickle, and so do we
                    raise ValueError(f"{p}: array {key!r} holds Python objects, which are not read (no pickle); "
                                     "save strings as a str array, e.g. np.asarray(labels, dtype=str)") from None
            table = FeatureTable(arrays["features"], arrays["labels"], arrays["paths"], modality, str(p))
    elif name.endswith(".npy"):
        if labels is None:
            raise ValueError(f"{p}: a bare .npy matrix has no labels; pass labels= (one identity per row)")
        table = FeatureTable(np.load(p, allow_pickle=False), labels, None, modality, str(p))
    elif name.endswith((".parquet", ".csv", ".csv.gz", ".tsv")):
        df, has_header = _read_frame(p)
        table = _table_from_frame(df, has_header, p, modality, label_column, path_column, feature_columns)
    else:
        raise ValueError(f"{p}: unknown feature format; use a folder of .npy, .npz, .npy, .parquet or .csv")
    if identity_map is not None:
        mapped = pd.Series(table.labels).map(dict(identity_map))
        if mapped.isna().any():
            bad = pd.Series(table.labels)[mapped.isna()].unique()[:3].tolist()
            raise KeyError(f"{p}: identity_map has no entry for labels {bad}")
        table = FeatureTable(table.features, mapped.to_numpy(dtype=object), table.paths, modality, table.source)
    return table
