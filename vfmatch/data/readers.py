"""Planning what to read: which files (or dataset rows) hold whose clips and faces.

Each source :func:`vfmatch.load_population` understands has a planner that reads
only the metadata -- nothing is decoded here -- and returns a ``_Plan``: the
identities table, one ``_Item`` per clip and per face (where it is, its
per-item metadata, its landmarks) and a key that changes when the files do.

* ``folder`` -- the vfmatch layout (:mod:`vfmatch.data.layout`), or any folder
  with ``voices/`` and ``faces/`` sub-folders, each an audiofolder/imagefolder
  with a ``metadata.csv`` (or ``metadata.jsonl``);
* ``pair`` -- an (audiofolder, imagefolder) pair, either of which may be a Hub dataset;
* ``hub`` -- a Hugging Face dataset with a ``speaker_id`` column and Audio/Image columns;
* ``voxceleb`` -- a VoxCeleb1 + VGGFace root: a meta CSV, ``wav/`` and ``images/``.

Book chapter: ``book/01_population.ipynb``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import datasets
import numpy as np
import pandas as pd

from .decode import _Bad, _Item, _Options, _problem
from .layout import IDENTITY_META, IMAGE_SUFFIXES, LANDMARK_COLUMNS, cell_value, missing_cell
from .population import IDENTITY_COLUMNS

__all__: list[str] = []  # used through vfmatch.data.load.load_population


@dataclass
class _Plan:
    """What to read: the identities and one item per clip and per face."""

    identities: pd.DataFrame
    voices: list[_Item]
    faces: list[_Item]
    where: str
    info: dict
    key: str  # identifies the source's content, for the cache


def _resolve_kind(source, kind: str) -> str:
    """``kind`` itself, or for ``"auto"`` a guess from what is on disk (folder, voxceleb, arrow or hub)."""
    if kind != "auto":
        return kind
    if isinstance(source, (tuple, list)):
        if len(source) != 2:
            raise ValueError(f"a (voices, faces) pair needs two entries, got {len(source)}")
        return "pair"
    text = str(source)
    path = Path(text).expanduser()
    if path.is_file():
        return "voxceleb"  # a meta CSV
    if path.is_dir():
        if (path / "identities.parquet").exists() and (path / "voices" / "dataset_info.json").exists():
            return "arrow"
        if (path / "voices").is_dir() and (path / "faces").is_dir():
            return "folder"
        if _find_vox_meta(path):
            return "voxceleb"
        if any(path.glob("*.parquet")) or any(path.glob("*/*.parquet")) or any(path.glob("*/*/*.parquet")):
            return "hub"
        raise ValueError(
            f"{path}: cannot tell what this folder holds; expected voices/ and faces/ folders, a VoxCeleb meta CSV, "
            "a saved Population or Parquet files (or pass kind=...)"
        )
    if text.startswith((".", "/", "~")) or "\\" in text or Path(text).suffix:
        raise FileNotFoundError(f"{text}: no such file or folder")
    return "hub"


# ---------------------------------------------------------------- planners
def _plan_folder(root: Path, columns, problems: Counter, opts: _Options) -> _Plan:
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    voices, v_rows, v_csv = _read_item_folder(root / "voices", "voice", columns, problems, opts)
    faces, f_rows, f_csv = _read_item_folder(root / "faces", "face", columns, problems, opts)
    ids_csv = root / "identities.csv"
    if ids_csv.exists():
        identities = _read_identities_csv(ids_csv, columns)
        # Items of people the identities table does not list are bad input too.
        known = set(identities["speaker_id"])
        voices = _drop_unknown(voices, known, v_csv, ids_csv, problems, opts)
        faces = _drop_unknown(faces, known, f_csv, ids_csv, problems, opts)
    else:
        identities = _identities_from_rows([(v_rows, v_csv), (f_rows, f_csv)])
    info = _read_info(root)
    info["source"] = {"kind": "folder", "path": str(root)}
    return _Plan(identities, voices, faces, str(root), info, key=_stat_key(voices + faces, [ids_csv, v_csv, f_csv]))


def _plan_pair(source, columns, split, load_kwargs, problems: Counter, opts: _Options) -> _Plan:
    parts = []
    for modality, src in zip(("voice", "face"), source):
        p = Path(str(src)).expanduser()
        if p.is_dir() and (_metadata_files(p) or not any(p.rglob("*.parquet"))):
            items, rows, csv = _read_item_folder(p, modality, columns, problems, opts)
            parts.append((items, rows, str(csv), _stat_key(items, [csv])))
        else:
            ds, name = _load_hub(str(src), split, load_kwargs)
            sub = _plan_hub_dataset(ds, name, columns, problems, opts, only=modality)
            parts.append((sub.voices if modality == "voice" else sub.faces, sub.info.pop("_rows"), name, sub.key))
    (voices, v_rows, v_where, v_key), (faces, f_rows, f_where, f_key) = parts
    identities = _identities_from_rows([(v_rows, v_where), (f_rows, f_where)])
    where = f"({v_where}, {f_where})"
    info = {"source": {"kind": "pair", "voices": str(source[0]), "faces": str(source[1])}}
    return _Plan(identities, voices, faces, where, info, key=_hash([v_key, f_key]))


def _plan_hub(source, split, columns, load_kwargs, problems: Counter, opts: _Options) -> _Plan:
    ds, name = _load_hub(str(source), split, load_kwargs)
    plan = _plan_hub_dataset(ds, name, columns, problems, opts, only=None)
    plan.info.pop("_rows")
    return plan


def _load_hub(source: str, split, load_kwargs):
    try:
        obj = datasets.load_dataset(source, split=split, **dict(load_kwargs or {}))
    except Exception as exc:  # noqa: BLE001 - any failure here means "could not load that dataset"
        raise ValueError(
            f"{source}: not a local folder vfmatch reads, and loading it with datasets.load_dataset failed "
            f"({type(exc).__name__}: {exc}). Offline (HF_HUB_OFFLINE=1) only datasets already in the cache load."
        ) from exc
    if isinstance(obj, datasets.DatasetDict):
        names = list(obj)
        # Keep each row's split; it becomes the identity's split where unambiguous.
        parts = [obj[n].add_column("_hub_split", [n] * obj[n].num_rows) for n in names]
        ds = datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    else:
        ds = obj.add_column("_hub_split", [str(split)] * obj.num_rows) if split else obj
    return ds, source


def _plan_hub_dataset(ds, name: str, columns, problems: Counter, opts: _Options, only: str | None) -> _Plan:
    if columns:
        ds = ds.rename_columns({k: v for k, v in columns.items() if k in ds.column_names})
    if "speaker_id" not in ds.column_names:
        raise ValueError(f"{name}: missing column(s) ['speaker_id']; found {ds.column_names} (rename one with columns={{...: 'speaker_id'}})")
    audio_cols = [c for c, f in ds.features.items() if isinstance(f, datasets.Audio)]
    image_cols = [c for c, f in ds.features.items() if isinstance(f, datasets.Image)]
    if only == "voice" and not audio_cols:
        raise ValueError(f"{name}: no Audio column; found {ds.column_names}")
    if only == "face" and not image_cols:
        raise ValueError(f"{name}: no Image column; found {ds.column_names}")
    if only is None and not (audio_cols and image_cols):
        raise ValueError(f"{name}: needs an Audio and an Image column (or pass a (voices, faces) pair); found {ds.column_names}")
    raw = ds
    for c in audio_cols:
        raw = raw.cast_column(c, datasets.Audio(decode=False))  # decoded with soundfile below
    for c in image_cols:
        raw = raw.cast_column(c, datasets.Image(decode=False))
    table = ds.remove_columns(audio_cols + image_cols).to_pandas()
    table["speaker_id"] = table["speaker_id"].astype(str)
    lm_all = _landmarks_from_table(table, name)
    voices, faces = [], []
    item_cols = [c for c in table.columns if c not in IDENTITY_META and c not in ("speaker_id", "_hub_split", *LANDMARK_COLUMNS, "landmarks")]

    def fetcher(i: int, col: str):
        return lambda: raw[i][col]

    for i, rec in enumerate(table.to_dict("records")):
        sid = str(rec["speaker_id"])
        meta = {c: cell_value(rec[c]) for c in item_cols if c not in ("clip_id", "face_id")}
        for modality, cols, out in (("voice", audio_cols, voices), ("face", image_cols, faces)):
            if only not in (None, modality) or not cols:
                continue
            id_col = "clip_id" if modality == "voice" else "face_id"
            item_id = str(rec[id_col]) if id_col in rec and not missing_cell(rec[id_col]) else f"{rec.get('_hub_split') or 'row'}/{i}"
            out.append(_Item(sid, item_id, f"{name} row {i}", fetcher(i, cols[0]), meta=dict(meta), landmarks=lm_all[i] if modality == "face" else None, listed_in=name))
    rows = table.rename(columns={"_hub_split": "split"}) if "_hub_split" in table else table
    if "_hub_split" in table:
        per = table.groupby("speaker_id")["_hub_split"].nunique()
        if (per > 1).any():  # speakers span splits: the split is per row, not per person
            rows = table.drop(columns=["_hub_split"])
    identities = _identities_from_rows([(rows, name)]) if only is None else None
    info = {"source": {"kind": "hub", "dataset": name}, "_rows": rows}
    key = _hash([name, getattr(ds, "_fingerprint", ""), ds.num_rows])
    return _Plan(identities, voices, faces, name, info, key=key)


def _plan_voxceleb(source, meta, wav_dir: str, image_dir: str, problems: Counter, opts: _Options) -> _Plan:
    src = Path(str(source)).expanduser()
    root = src.parent if src.is_file() else src
    if meta is None:
        metas = [src] if src.is_file() else _find_vox_meta(root)
        if not metas:
            raise FileNotFoundError(
                f"{root}: no VoxCeleb meta CSV (a file whose header has VoxCeleb1 ID, VGGFace1 ID, Gender, Nationality, Set); pass meta=..."
            )
    else:
        metas = [Path(m) for m in ([meta] if isinstance(meta, (str, Path)) else meta)]
    frames = []
    for m in metas:
        df = _read_vox_meta(m)
        sp = _split_from_name(m)
        if sp is not None:
            df["split"] = sp
        frames.append(df)
    ids = pd.concat(frames, ignore_index=True)
    dup = ids["speaker_id"][ids["speaker_id"].duplicated()]
    if len(dup):
        raise ValueError(f"{[str(m) for m in metas]}: VoxCeleb1 ID {dup.iloc[0]!r} is listed more than once")
    wav_root, img_root = root / wav_dir, root / image_dir
    for folder, what in ((wav_root, "wav_dir"), (img_root, "image_dir")):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder (pass {what}=... for the VoxCeleb/VGGFace layout)")
    voices, faces = [], []
    for sid, face_name in zip(ids["speaker_id"], ids["vggface1_id"]):
        for f in sorted((wav_root / sid).rglob("*.wav")) if (wav_root / sid).is_dir() else []:
            rel = f.relative_to(wav_root).with_suffix("").as_posix()
            voices.append(_Item(sid, rel, str(f), f))
        d = img_root / str(face_name)
        for f in sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if d.is_dir() else []:
            faces.append(_Item(sid, f.relative_to(img_root).with_suffix("").as_posix(), str(f), f))
    info = {"source": {"kind": "voxceleb", "root": str(root), "meta": [str(m) for m in metas]}}
    return _Plan(ids, voices, faces, str(root), info, key=_stat_key(voices + faces, metas))


# ------------------------------------------------------- metadata reading
def _metadata_files(folder: Path) -> list[tuple[Path, str | None]]:
    for name in ("metadata.csv", "metadata.jsonl"):
        if (folder / name).is_file():
            return [(folder / name, None)]
    # HF audiofolder/imagefolder with split sub-folders (train/metadata.csv, ...).
    out = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
        for name in ("metadata.csv", "metadata.jsonl"):
            if (sub / name).is_file():
                out.append((sub / name, sub.name))
                break
    return out


def _read_table(path: Path, columns) -> pd.DataFrame:
    id_cols = ("speaker_id", "file_name", "clip_id", "face_id")
    try:
        if path.suffix == ".jsonl":
            df = pd.read_json(path, lines=True, dtype=False)
        else:
            header = pd.read_csv(path, nrows=0).columns
            rename = dict(columns or {})
            dtypes = {c: str for c in header if rename.get(c, c) in id_cols}
            # Only empty cells are missing: a speaker called "NA" stays "NA".
            df = pd.read_csv(path, dtype=dtypes, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: empty file (expected a CSV header with file_name and speaker_id)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read the table ({exc})") from None
    if columns:
        df = df.rename(columns=dict(columns))
    return df


def _require(df: pd.DataFrame, required: Iterable[str], path) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")


def _read_item_folder(folder: Path, modality: str, columns, problems: Counter, opts: _Options):
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    metas = _metadata_files(folder)
    if not metas:
        raise FileNotFoundError(f"{folder}: no metadata.csv (an audiofolder/imagefolder needs one, with file_name and speaker_id columns)")
    items, frames = [], []
    id_col = "clip_id" if modality == "voice" else "face_id"
    for csv, split_name in metas:
        df = _read_table(csv, columns)
        _require(df, ["file_name", "speaker_id"], csv)
        if split_name is not None and "split" not in df:
            df["split"] = split_name
        lms = _landmarks_from_table(df, csv) if modality == "face" else [None] * len(df)
        item_cols = [c for c in df.columns if c not in IDENTITY_META and c not in ("file_name", "speaker_id", id_col, *LANDMARK_COLUMNS, "landmarks")]
        keep = np.ones(len(df), dtype=bool)
        for i, rec in enumerate(df.to_dict("records")):
            line = i + 2  # header is line 1
            try:
                for c in ("speaker_id", "file_name"):
                    if missing_cell(rec[c]):
                        raise _Bad("metadata row without " + c, f"{csv}: line {line} has no {c}")
            except _Bad as bad:
                _problem(bad, problems, opts)
                keep[i] = False
                continue
            sid, fname = str(rec["speaker_id"]).strip(), str(rec["file_name"]).strip()
            item_id = str(rec[id_col]) if id_col in rec and not missing_cell(rec[id_col]) else Path(fname).with_suffix("").as_posix()
            meta = {c: cell_value(rec[c]) for c in item_cols}
            items.append(_Item(sid, item_id, str(csv.parent / fname), csv.parent / fname, meta=meta, landmarks=lms[i], listed_in=str(csv)))
        df = df[keep].copy()
        df["speaker_id"] = df["speaker_id"].astype(str).str.strip()
        frames.append(df)
    seen = {}
    for it in items:
        key = (it.speaker_id, it.item_id)
        if key in seen:
            raise ValueError(f"{it.listed_in}: {id_col} {it.item_id!r} of speaker {it.speaker_id!r} appears more than once")
        seen[key] = True
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["speaker_id"])
    return items, rows, metas[0][0]


def _landmarks_from_table(df: pd.DataFrame, where) -> list:
    """Per-row landmarks of shape (5, 2) (or None) from lm_x0..lm_y4 or a JSON ``landmarks`` column."""
    n = len(df)
    if all(c in df for c in LANDMARK_COLUMNS):
        arr = df[list(LANDMARK_COLUMNS)].to_numpy(dtype=float).reshape(n, 5, 2)
        return [None if np.isnan(a).any() else a for a in arr]
    partial = [c for c in LANDMARK_COLUMNS if c in df]
    if partial:
        raise ValueError(f"{where}: missing column(s) {[c for c in LANDMARK_COLUMNS if c not in df]}; landmarks need all ten of lm_x0..lm_y4")
    if "landmarks" in df:
        out = []
        for v in df["landmarks"]:
            if v is None or (isinstance(v, float) and np.isnan(v)):
                out.append(None)
                continue
            a = np.asarray(json.loads(v) if isinstance(v, str) else [np.asarray(p, dtype=float) for p in v], dtype=float)
            if a.shape != (5, 2):
                raise ValueError(f"{where}: a landmarks value has shape {a.shape}; expected 5 (x, y) points")
            out.append(a)
        return out
    return [None] * n


def _read_identities_csv(path: Path, columns) -> pd.DataFrame:
    df = _read_table(path, columns)
    _require(df, ["speaker_id"], path)
    if df["speaker_id"].isna().any():
        raise ValueError(f"{path}: line {int(np.flatnonzero(df['speaker_id'].isna().to_numpy())[0]) + 2} has no speaker_id")
    df["speaker_id"] = df["speaker_id"].astype(str).str.strip()
    dup = df["speaker_id"][df["speaker_id"].duplicated()]
    if len(dup):
        raise ValueError(f"{path}: speaker_id {dup.iloc[0]!r} appears more than once")
    for col in df.columns:
        # JSON lists (the simulator's latent vectors) come back as float32 arrays.
        if pd.api.types.is_string_dtype(df[col]) or df[col].dtype == object:
            vals = df[col].dropna()
            if len(vals) and vals.map(lambda v: isinstance(v, str) and v.startswith("[")).all():
                try:
                    parsed = {i: np.asarray(json.loads(v), dtype=np.float32) for i, v in vals.items()}
                except (ValueError, TypeError):
                    continue
                df[col] = pd.Series([parsed.get(i) for i in df.index], index=df.index, dtype=object)
    return _normalise_identities(df)


def _identities_from_rows(parts: list[tuple[pd.DataFrame, str]]) -> pd.DataFrame:
    """One row per speaker from per-item metadata; conflicting values are an error."""
    records: dict[str, dict] = {}
    for df, where in parts:
        if df is None:
            continue
        cols = [c for c in IDENTITY_META if c in df.columns]
        for rec in df[["speaker_id", *cols]].to_dict("records"):
            sid = str(rec["speaker_id"])
            have = records.setdefault(sid, {"speaker_id": sid})
            for c in cols:
                v = cell_value(rec[c])
                if missing_cell(v):
                    continue
                if c in have and not _same(have[c], v):
                    raise ValueError(f"{where}: speaker {sid!r} has conflicting {c} values {have[c]!r} and {v!r}")
                have[c] = v
    return _normalise_identities(pd.DataFrame(list(records.values()), columns=None if records else ["speaker_id"]))


def _normalise_identities(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["speaker_id"] = df["speaker_id"].astype(str)
    if "gender" in df:
        # m/f and other spellings -> male/female; anything else is left as written.
        g = {"m": "male", "male": "male", "man": "male", "f": "female", "female": "female", "woman": "female"}
        df["gender"] = df["gender"].map(lambda v: g.get(v.strip().lower(), v) if isinstance(v, str) else v)
    for col in IDENTITY_COLUMNS:
        if col not in df:
            df[col] = np.nan  # unknown
    order = list(IDENTITY_COLUMNS) + [c for c in df.columns if c not in IDENTITY_COLUMNS]
    return df[order].reset_index(drop=True)


def _drop_unknown(items: list[_Item], known: set, csv, ids_csv, problems: Counter, opts: _Options) -> list[_Item]:
    out = []
    for it in items:
        if it.speaker_id in known:
            out.append(it)
            continue
        _problem(_Bad("item of a speaker not in identities.csv", f"{csv}: speaker_id {it.speaker_id!r} ({it.where}) is not in {ids_csv}"), problems, opts)
    return out


def _find_vox_meta(root: Path) -> list[Path]:
    out = []
    for p in sorted(root.iterdir()) if root.is_dir() else []:
        if p.is_file() and (p.name.endswith((".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz"))):
            try:
                head = _open_text(p).readline()
            except (OSError, UnicodeDecodeError):
                continue
            if "voxceleb1" in head.lower().replace(" ", "").replace("_", ""):
                out.append(p)
    return out


def _open_text(path: Path):
    return io.TextIOWrapper(gzip.open(path), encoding="utf-8") if path.name.endswith(".gz") else open(path, encoding="utf-8")


def _read_vox_meta(path: Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with _open_text(path) as fh:
        head = fh.readline()
        if not head.strip():
            raise ValueError(f"{path}: empty file (expected a VoxCeleb meta CSV header)")
        fh.seek(0)
        df = pd.read_csv(fh, sep="\t" if "\t" in head else ",", dtype=str, skipinitialspace=True)
    df.columns = [c.strip().lower().replace(" ", "_") for c in df.columns]
    _require(df, ["voxceleb1_id", "vggface1_id", "gender"], path)
    df = df.apply(lambda s: s.str.strip() if pd.api.types.is_string_dtype(s) else s)
    for c in ("voxceleb1_id", "vggface1_id"):
        if df[c].isna().any():
            raise ValueError(f"{path}: line {int(np.flatnonzero(df[c].isna().to_numpy())[0]) + 2} has no {c}")
    out = pd.DataFrame({"speaker_id": df["voxceleb1_id"], "gender": df["gender"]})
    if "nationality" in df:
        out["nationality"] = df["nationality"]  # metadata only: nationality is not ethnicity
    out["vggface1_id"] = df["vggface1_id"]
    if "set" in df:
        out["vox1_set"] = df["set"]  # VoxCeleb1's own dev/test (speaker verification) split
    return _normalise_identities(out)


def _split_from_name(path: Path) -> str | None:
    m = re.search(r"[_\-.](train|val|valid|validation|test)$", Path(path).name.split(".")[0])
    if not m:
        return None
    return {"val": "validation", "valid": "validation"}.get(m.group(1), m.group(1))


def _keep_split(plan: _Plan, split: str) -> _Plan:
    ids = plan.identities
    if "split" not in ids or ids["split"].isna().all():
        raise ValueError(f"{plan.where}: split={split!r} asked for, but the identities have no split column")
    norm = ids["split"].astype(str).str.lower().replace({"val": "validation", "valid": "validation"})
    want = {"val": "validation", "valid": "validation"}.get(split.lower(), split.lower())
    keep = set(ids.loc[norm == want, "speaker_id"])
    if not keep:
        raise ValueError(f"{plan.where}: no identity has split {split!r}; splits present: {sorted(norm.dropna().unique())}")
    plan.identities = ids[ids["speaker_id"].isin(keep)].reset_index(drop=True)
    plan.voices = [it for it in plan.voices if it.speaker_id in keep]
    plan.faces = [it for it in plan.faces if it.speaker_id in keep]
    return plan


def _read_info(root: Path) -> dict:
    p = root / "info.json"
    if not p.exists():
        return {}
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p}: not valid JSON ({exc})") from None


# ------------------------------------------------------------------ helpers
def _same(a, b) -> bool:
    """Two metadata values agree (numbers up to rounding, anything else as text)."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return bool(np.isclose(a, b))
    return str(a) == str(b)


def _hash(parts) -> str:
    """A short SHA-1 of the parts' text, for cache keys."""
    h = hashlib.sha1()
    for p in parts:
        h.update(str(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def _stat_key(items: list[_Item], files: Iterable[Path]) -> str:
    """A fingerprint of the inputs' names, sizes and modification times (not their bytes: fast)."""
    h = hashlib.sha1()
    for f in files:
        f = Path(f)
        st = f.stat() if f.exists() else None
        h.update(f"{f}|{st.st_size if st else -1}|{st.st_mtime_ns if st else -1}\n".encode())
    for it in items:
        st = it.source.stat() if isinstance(it.source, Path) and it.source.exists() else None
        h.update(f"{it.speaker_id}|{it.item_id}|{it.where}|{st.st_size if st else -1}|{st.st_mtime_ns if st else -1}|".encode())
        h.update(json.dumps(it.meta, sort_keys=True, default=str).encode())
        h.update(b"-" if it.landmarks is None else np.asarray(it.landmarks, dtype=np.float64).tobytes())
    return h.hexdigest()[:20]

