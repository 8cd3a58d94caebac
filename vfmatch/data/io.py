"""Files in, files out: write a population as plain files, read populations from folders, VoxCeleb-style lists and the Hub.

Folder layout
-------------
:func:`export_population` (and ``vfmatch population --out DIR``) writes::

    DIR/
      README.md                      what is here, written with the files
      info.json                      provenance: generator, seed, parameters
      identities.csv                 one row per person (columns below)
      voices/metadata.csv            one row per clip
      voices/<speaker_id>/<clip_id>.wav    16 kHz, mono, 16-bit PCM
      faces/metadata.csv             one row per image
      faces/<speaker_id>/<face_id>.png     RGB, 8 bits per channel

* ``identities.csv``: ``speaker_id, gender, age, ethnicity, skin_tone, height,
  weight, bmi, mother_tongue, accent`` (years, Fitzpatrick type 1-6, cm, kg,
  kg/m^2; an empty cell is unknown), then any other columns (``split``,
  ``nationality``, the simulator's latent vectors as JSON lists).
* ``voices/metadata.csv``: ``file_name`` (relative to ``voices/``),
  ``speaker_id``, ``clip_id``, the identity columns repeated, then per-clip
  columns.
* ``faces/metadata.csv``: ``file_name`` (relative to ``faces/``),
  ``speaker_id``, ``face_id``, the identity columns repeated, the five
  landmarks as ``lm_x0, lm_y0, ..., lm_x4, lm_y4`` (pixels; left eye, right
  eye, nose tip, left and right mouth corner), ``yaw, pitch, roll`` (degrees),
  ``eyes_closed, mouth_open`` (True/False), then other per-face columns.

``voices/`` is a Hugging Face *audiofolder* and ``faces/`` an *imagefolder*:
``datasets.load_dataset("imagefolder", data_dir="DIR/faces")`` reads them too.
The same seed gives byte-identical files (no timestamps in WAV or PNG).

Reading
-------
:func:`load_population` reads

(a) that layout, or any folder with ``voices/`` and ``faces/`` sub-folders, or
    a pair ``(audiofolder, imagefolder)``: each needs a ``metadata.csv`` (or
    ``metadata.jsonl``) with ``file_name`` and ``speaker_id`` columns;
(b) a VoxCeleb1 + VGGFace root: a meta CSV (``VoxCeleb1 ID, VGGFace1 ID,
    Gender, Nationality, Set``; tab- or comma-separated, spaces or
    underscores in the names, as in ``vox1_meta.csv`` and the Seeking the
    Shape of Sound lists), ``wav/<id>/<video>/<n>.wav`` and
    ``images/<VGGFace1 ID>/<n>.jpg``;
(c) a Hugging Face dataset through :func:`datasets.load_dataset` (a Hub id or
    a local dataset folder) with a ``speaker_id`` column and an Audio and/or
    Image column;
(d) a folder written by :meth:`Population.save_to_disk`.

Bad input (unreadable, empty, silent or NaN audio; multi-channel audio;
grayscale, RGBA or tiny images; missing files or metadata columns;
identities with no clips or no faces) raises an error that names the file
and the problem; with ``skip_bad=True`` the item is skipped instead and one
:class:`SkippedInputWarning` counts what was skipped. Other sample rates are
resampled to 16 kHz (``resample=False`` makes them an error). The user's
files are only ever opened for reading. Decoded data is written to Arrow
files under the vfmatch cache (``VFMATCH_CACHE``), so a VoxCeleb-sized
population is memory-mapped rather than held in RAM, and loading the same
unchanged files with the same options a second time is fast.

Book chapter: ``book/01_population.ipynb``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io as _io
import json
import re
import shutil
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .population import IDENTITY_COLUMNS, SAMPLE_RATE, Population

__all__ = [
    "export_population",
    "load_population",
    "SkippedInputWarning",
    "LANDMARK_COLUMNS",
    "LAYOUT",
    "add_arguments",
    "main",
]

LAYOUT = "vfmatch-population/1"
# lm_x0, lm_y0, ..., lm_x4, lm_y4: the five landmarks in pixels.
LANDMARK_COLUMNS = tuple(f"lm_{axis}{k}" for k in range(5) for axis in "xy")
FACE_QUALITY_COLUMNS = ("yaw", "pitch", "roll", "eyes_closed", "mouth_open")
# Per-person columns: these go to the identities table, the rest stay per clip/face.
IDENTITY_META = IDENTITY_COLUMNS[1:] + ("nationality", "split")
# Keys of Population.info that change from run to run (timings): not exported.
_VOLATILE_INFO = ("seconds_to_simulate",)
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
_ALPHA_MODES = ("RGBA", "RGBa", "PA", "La")
_CACHE_VERSION = "1"  # bump when the decoded form changes


class SkippedInputWarning(UserWarning):
    """Warned once per :func:`load_population` call with ``skip_bad=True``: what was skipped and why."""


# =============================================================== export
def export_population(population: Population, out_dir: str | Path, *, overwrite: bool = False, progress: bool = False) -> Path:
    """Write ``population`` as WAV/PNG files with ``metadata.csv`` tables (module docstring).

    Parameters
    ----------
    population : Population
        Clips must be 16 kHz mono float samples in [-1, 1]; faces RGB.
    out_dir : str or Path
        Created if missing; must be empty unless ``overwrite``.
    overwrite : bool
        Replace a population exported there before. Refused if the folder
        holds anything else, so no unrelated file is ever deleted.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    Path of the folder.
    """
    from PIL import Image
    from tqdm.auto import tqdm

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(f"{out}: folder is not empty; choose an empty folder or pass overwrite=True (--overwrite)")
        ours = {"voices", "faces", "identities.csv", "info.json", "README.md"}
        others = sorted(p.name for p in out.iterdir() if p.name not in ours)
        if others:
            raise ValueError(f"{out}: holds files that are not part of an exported population ({others[:5]}); refusing to overwrite")
        for name in ours:
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)

    known = set(population.identities["speaker_id"].astype(str))
    for name, speakers in (("voice clips", population.voice_speakers), ("faces", population.face_speakers)):
        unknown = sorted({str(x) for x in speakers} - known)
        if unknown:
            raise ValueError(f"{name} of speakers missing from the identities table: {unknown[:10]}")
    identities = _identities_for_csv(population.identities)
    id_cols = [c for c in identities.columns if c != "speaker_id" and c in IDENTITY_META]
    per_person = identities.set_index("speaker_id")[id_cols]
    speaker_dirs = _safe_names(identities["speaker_id"].tolist(), what="speaker_id")

    # ---- voices
    (out / "voices").mkdir()
    rows, used = [], set()
    voices = population.voices.with_format("numpy")
    skip = {"audio", "sampling_rate", "source_file"}
    for r in tqdm(voices, total=voices.num_rows, desc="voices", disable=not progress):
        sid, cid = str(r["speaker_id"]), str(r["clip_id"])
        sr = int(r.get("sampling_rate", SAMPLE_RATE))
        audio = np.asarray(r["audio"], dtype=np.float32)
        where = f"clip {cid!r} of speaker {sid!r}"
        if sr != SAMPLE_RATE:
            raise ValueError(f"{where}: sample rate {sr} Hz; a population holds {SAMPLE_RATE} Hz audio")
        if audio.ndim != 1 or audio.size == 0:
            raise ValueError(f"{where}: expected mono samples of shape (n,), got shape {audio.shape}")
        if not np.all(np.isfinite(audio)):
            raise ValueError(f"{where}: audio contains NaN or infinite samples")
        peak = float(np.max(np.abs(audio)))
        if peak > 1.0 + 1e-6:
            raise ValueError(f"{where}: peak amplitude {peak:.3f} exceeds 1.0 and would clip in 16-bit PCM; normalise it first")
        name = f"{speaker_dirs[sid]}/{_item_stem(cid, sid)}.wav"
        if name in used:
            raise ValueError(f"{where}: file name {name!r} is already taken by another clip; clip ids must be unique per speaker")
        used.add(name)
        (out / "voices" / speaker_dirs[sid]).mkdir(exist_ok=True)
        _write_wav(out / "voices" / name, audio)
        rows.append({"file_name": name, "speaker_id": sid, "clip_id": cid, **_join(per_person, sid), **_item_meta(r, skip | {"speaker_id", "clip_id"})})
    _write_csv(pd.DataFrame(rows, columns=_meta_columns(rows, ["file_name", "speaker_id", "clip_id", *id_cols])), out / "voices" / "metadata.csv")

    # ---- faces
    (out / "faces").mkdir()
    rows, used = [], set()
    faces = population.faces.with_format("numpy")
    skip = {"image", "landmarks", "source_file"}
    for r in tqdm(faces, total=faces.num_rows, desc="faces", disable=not progress):
        sid, fid = str(r["speaker_id"]), str(r["face_id"])
        img = r["image"]
        img = img if isinstance(img, Image.Image) else Image.fromarray(np.asarray(img, dtype=np.uint8))
        name = f"{speaker_dirs[sid]}/{_item_stem(fid, sid)}.png"
        if name in used:
            raise ValueError(f"face {fid!r} of speaker {sid!r}: file name {name!r} is already taken; face ids must be unique per speaker")
        used.add(name)
        (out / "faces" / speaker_dirs[sid]).mkdir(exist_ok=True)
        # PIL writes no timestamp or text chunk unless asked: the bytes depend on the pixels only.
        img.convert("RGB").save(out / "faces" / name, format="PNG", compress_level=6)
        lm = _landmark_columns(r.get("landmarks"))
        rows.append({"file_name": name, "speaker_id": sid, "face_id": fid, **_join(per_person, sid), **lm, **_item_meta(r, skip | {"speaker_id", "face_id"})})
    first = ["file_name", "speaker_id", "face_id", *id_cols, *LANDMARK_COLUMNS, *FACE_QUALITY_COLUMNS]
    _write_csv(pd.DataFrame(rows, columns=_meta_columns(rows, first)), out / "faces" / "metadata.csv")

    # ---- identities, provenance, README
    _write_csv(identities, out / "identities.csv")
    info = {k: v for k, v in population.info.items() if k not in _VOLATILE_INFO}
    info = {"layout": LAYOUT, "sample_rate": SAMPLE_RATE, **info}
    (out / "info.json").write_text(json.dumps(info, indent=2, sort_keys=True, default=str) + "\n")
    (out / "README.md").write_text(_readme(population, info))
    return out


def _write_wav(path: Path, audio: np.ndarray) -> None:
    import soundfile as sf

    # Quantise ourselves (scale 2^15, as soundfile reads PCM back) so that the
    # round trip is exact to one LSB and nothing depends on libsndfile's clipping mode.
    pcm = np.clip(np.round(audio.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)
    sf.write(str(path), pcm, SAMPLE_RATE, subtype="PCM_16", format="WAV")


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    df.to_csv(path, index=False, lineterminator="\n")


def _identities_for_csv(identities: pd.DataFrame) -> pd.DataFrame:
    ids = identities.copy()
    for col in IDENTITY_COLUMNS:
        if col not in ids:
            ids[col] = np.nan  # the columns are always present; empty = unknown
    order = list(IDENTITY_COLUMNS) + [c for c in ids.columns if c not in IDENTITY_COLUMNS]
    ids = ids[order]
    for col in ids.columns:
        if ids[col].map(lambda v: isinstance(v, (list, tuple, np.ndarray))).any():
            ids[col] = ids[col].map(_to_json)
    return ids


def _to_json(v):
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    arr = np.asarray(v)
    if arr.dtype == np.float32:  # shortest form that reads back to the same float32
        flat = [float(str(x)) for x in arr.ravel()]
        return json.dumps(np.asarray(flat, dtype=np.float64).reshape(arr.shape).tolist())
    return json.dumps(arr.tolist())


def _join(per_person: pd.DataFrame, sid: str) -> dict:
    return per_person.loc[sid].to_dict() if len(per_person.columns) else {}


def _item_meta(row: Mapping, skip: set) -> dict:
    out = {}
    for k, v in row.items():
        if k in skip:
            continue
        if isinstance(v, np.ndarray) and v.ndim == 0:
            v = v[()]
        if isinstance(v, (list, tuple, np.ndarray)):
            v = _to_json(v)
        else:
            v = _plain(v)
        out[k] = v
    return out


def _plain(v):
    """A numpy scalar as a Python value; float32 keeps its short form (1.2, not 1.2000000476837158)."""
    if isinstance(v, np.float32):
        return float(str(v))
    return v.item() if isinstance(v, np.generic) else v


def _landmark_columns(lm) -> dict:
    if lm is None:
        return {}
    arr = np.asarray([np.asarray(p, dtype=np.float32) for p in lm], dtype=np.float32)
    if arr.shape != (5, 2):
        raise ValueError(f"landmarks must have shape (5, 2), got {arr.shape}")
    return {c: _plain(arr[k // 2, k % 2]) for k, c in enumerate(LANDMARK_COLUMNS)}


def _meta_columns(rows: list[dict], first: Sequence[str]) -> list[str]:
    present = set().union(*(r.keys() for r in rows)) if rows else set()
    cols = [c for c in first if c in present or c in ("file_name", "speaker_id", "clip_id", "face_id") or c in IDENTITY_COLUMNS]
    for r in rows:
        cols += [k for k in r if k not in cols]
    return list(dict.fromkeys(cols))


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe(name: str) -> str:
    return _UNSAFE.sub("_", name.replace("/", "__").replace("\\", "__")).strip("._") or "_"


def _safe_names(names: list[str], what: str) -> dict[str, str]:
    out, seen = {}, {}
    for n in names:
        s = _safe(n)
        if s in seen and seen[s] != n:
            raise ValueError(f"{what} values {seen[s]!r} and {n!r} map to the same folder name {s!r}; rename one")
        seen[s] = n
        out[n] = s
    return out


def _item_stem(item_id: str, speaker_id: str) -> str:
    # VoxCeleb-style ids carry the speaker as a prefix ("id10001/1zcIwhmdeo4/00001"): drop it.
    if item_id.startswith(speaker_id + "/"):
        item_id = item_id[len(speaker_id) + 1 :]
    return _safe(item_id)


def _readme(population: Population, info: dict) -> str:
    params = info.get("params", {})
    made_by = info.get("generator", "unknown")
    seed = params.get("seed", info.get("seed", "unknown"))
    return f"""# A vfmatch population

{len(population)} identities, {population.voices.num_rows} voice clips, {population.faces.num_rows} face images.
Generator: {made_by}; seed: {seed}. Parameters and provenance are in `info.json`.
Layout version: `{LAYOUT}`.

## Files

| path | content |
|---|---|
| `identities.csv` | one row per person: speaker_id, gender, age (years), ethnicity, skin_tone (Fitzpatrick 1-6), height (cm), weight (kg), bmi (kg/m^2), mother_tongue, accent, then other columns; an empty cell means unknown |
| `voices/metadata.csv` | one row per clip: file_name (relative to voices/), speaker_id, clip_id, the identity columns repeated, per-clip columns |
| `voices/<speaker_id>/<clip_id>.wav` | 16 kHz mono 16-bit PCM WAV |
| `faces/metadata.csv` | one row per image: file_name (relative to faces/), speaker_id, face_id, the identity columns repeated, landmarks lm_x0, lm_y0, ..., lm_x4, lm_y4 (pixels: left eye, right eye, nose tip, left and right mouth corner), yaw, pitch, roll (degrees), eyes_closed, mouth_open, per-face columns |
| `faces/<speaker_id>/<face_id>.png` | RGB PNG |
| `info.json` | provenance |

`voices/` is a Hugging Face audiofolder and `faces/` an imagefolder. Read everything back with

```python
import vfmatch
population = vfmatch.load_population("path/to/this/folder")
```

If these files were made by the vfmatch simulator, the people in them are simulated: no file describes a real person.
"""


# =============================================================== loading
@dataclass
class _Item:
    """One clip or face to decode: where it comes from and its per-item metadata."""

    speaker_id: str
    item_id: str
    where: str  # the file (or dataset row) named in messages
    source: Path | Callable[[], object]  # a path, or a function returning {"bytes", "path"}
    meta: dict = field(default_factory=dict)
    landmarks: np.ndarray | None = None  # faces only, shape (5, 2)
    listed_in: str = ""


@dataclass
class _Plan:
    identities: pd.DataFrame
    voices: list[_Item]
    faces: list[_Item]
    where: str
    info: dict
    key: str  # identifies the source's content, for the cache


@dataclass
class _Options:
    skip_bad: bool
    mix_down: bool
    resample: bool
    segment_seconds: tuple[float, float] | None
    silence_threshold: float
    convert_rgb: bool
    min_image_size: int
    filter_faces: bool
    max_pose: float
    align_faces: bool
    image_size: int | None

    def key(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True, default=str)


class _Bad(Exception):
    """A problem with one input item: raised as ``error`` or counted under ``kind``."""

    def __init__(self, kind: str, message: str, error: type[Exception] = ValueError):
        super().__init__(message)
        self.kind, self.message, self.error = kind, message, error


def load_population(
    source,
    *,
    kind: str = "auto",
    skip_bad: bool = False,
    columns: Mapping[str, str] | None = None,
    split: str | None = None,
    mix_down: bool = False,
    resample: bool = True,
    segment_seconds: tuple[float, float] | None = None,
    silence_threshold: float = 1e-4,
    convert_rgb: bool = False,
    min_image_size: int = 32,
    filter_faces: bool = False,
    max_pose: float = 15.0,
    align_faces: bool = False,
    image_size: int | None = None,
    meta: str | Path | Sequence[str | Path] | None = None,
    wav_dir: str = "wav",
    image_dir: str = "images",
    load_kwargs: Mapping | None = None,
) -> Population:
    """Read a population from files (module docstring lists the sources).

    Parameters
    ----------
    source : str, Path or (voices, faces) pair
        A folder in the vfmatch layout (or any folder with ``voices/`` and
        ``faces/``), a pair of audiofolder/imagefolder paths (or Hub ids), a
        VoxCeleb1 root or meta CSV, a Hub dataset id, or a
        :meth:`Population.save_to_disk` folder.
    kind : {"auto", "folder", "pair", "voxceleb", "hub", "arrow"}
        What ``source`` is; ``"auto"`` guesses from what is on disk.
    skip_bad : bool
        Skip bad files and identities left without clips or faces, with one
        :class:`SkippedInputWarning` giving counts; by default the first
        problem raises ``ValueError`` (``FileNotFoundError`` for a missing
        file) naming the file. A broken metadata table (missing columns,
        empty file, conflicting values) is an error either way.
    columns : mapping, optional
        Rename metadata columns first, e.g. ``{"client_id": "speaker_id"}``.
    split : str, optional
        Hub: the split to load (default: all, with a ``split`` column where
        each speaker is in one). Others: keep only identities whose ``split``
        column has this value.
    mix_down : bool
        Average the channels of multi-channel audio (default: an error).
    resample : bool
        Resample audio at other rates to 16 kHz (default); ``False`` makes
        them an error.
    segment_seconds : (min_s, max_s), optional
        Cut clips into segments of ``min_s`` to ``max_s`` seconds (paper 001
        uses (3, 10)); clips shorter than ``min_s`` are bad input.
        Segments get clip ids ``<clip_id>_seg<k>``.
    silence_threshold : float
        A clip whose peak amplitude is below this (full scale 1.0) is silent.
    convert_rgb : bool
        Convert grayscale images to RGB and drop the alpha channel of RGBA
        ones (default: both are an error).
    min_image_size : int
        Images with a side shorter than this many pixels are an error.
    filter_faces : bool
        Drop faces that fail :func:`vfmatch.preprocess.face_quality` (pose
        beyond ``max_pose`` degrees, closed eyes, open mouth; unknown passes),
        with a warning counting them.
    align_faces : bool
        Align faces to the ArcFace landmark template
        (:func:`vfmatch.preprocess.align_face`), at ``image_size`` (default
        112) pixels; a face without landmarks is bad input.
    image_size : int, optional
        Output side in pixels; without ``align_faces`` images are
        centre-cropped to a square and resized (landmarks follow).
    meta, wav_dir, image_dir
        VoxCeleb: the meta CSV file(s) (default: every CSV/TSV in the root
        whose header names VoxCeleb1 ID), and the audio and image folders
        under the root.
    load_kwargs : mapping, optional
        Hub: extra arguments for :func:`datasets.load_dataset` (``name``,
        ``revision``, ``cache_dir``, ...).

    Returns
    -------
    Population
        ``info["source"]`` says where it came from and ``info["skipped"]``
        counts what was skipped.
    """
    opts = _Options(
        skip_bad=bool(skip_bad),
        mix_down=bool(mix_down),
        resample=bool(resample),
        segment_seconds=None if segment_seconds is None else tuple(float(s) for s in segment_seconds),
        silence_threshold=float(silence_threshold),
        convert_rgb=bool(convert_rgb),
        min_image_size=int(min_image_size),
        filter_faces=bool(filter_faces),
        max_pose=float(max_pose),
        align_faces=bool(align_faces),
        image_size=None if image_size is None else int(image_size),
    )
    if opts.segment_seconds is not None and not (len(opts.segment_seconds) == 2 and 0 < opts.segment_seconds[0] <= opts.segment_seconds[1]):
        raise ValueError(f"segment_seconds must be (min_s, max_s) with 0 < min_s <= max_s, got {segment_seconds}")
    if opts.image_size is not None and opts.image_size < 8:
        raise ValueError(f"image_size must be at least 8 pixels, got {image_size}")
    kind = _resolve_kind(source, kind)
    if kind == "arrow":
        defaults = _Options(False, False, True, None, 1e-4, False, 32, False, 15.0, False, None)
        if opts != defaults:
            raise ValueError(f"{source}: a saved Population is already decoded; load it without pre-processing options")
        return Population.load_from_disk(source)

    problems: Counter = Counter()
    if kind == "folder":
        plan = _plan_folder(Path(source), columns, problems, opts)
    elif kind == "pair":
        plan = _plan_pair(source, columns, split, load_kwargs, problems, opts)
    elif kind == "voxceleb":
        plan = _plan_voxceleb(source, meta, wav_dir, image_dir, problems, opts)
    elif kind == "hub":
        plan = _plan_hub(source, split, columns, load_kwargs, problems, opts)
    else:
        raise ValueError(f"kind must be one of auto, folder, pair, voxceleb, hub, arrow; got {kind!r}")
    if split is not None and kind not in ("hub", "pair"):
        plan = _keep_split(plan, split)
    return _build(plan, opts, problems)


def _resolve_kind(source, kind: str) -> str:
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
    import datasets

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
    import datasets

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
        meta = {c: _py(rec[c]) for c in item_cols if c not in ("clip_id", "face_id")}
        for modality, cols, out in (("voice", audio_cols, voices), ("face", image_cols, faces)):
            if only not in (None, modality) or not cols:
                continue
            id_col = "clip_id" if modality == "voice" else "face_id"
            item_id = str(rec[id_col]) if id_col in rec and not _missing(rec[id_col]) else f"{rec.get('_hub_split') or 'row'}/{i}"
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
        for f in sorted(p for p in d.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES) if d.is_dir() else []:
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
                    if _missing(rec[c]):
                        raise _Bad("metadata row without " + c, f"{csv}: line {line} has no {c}")
            except _Bad as bad:
                _problem(bad, problems, opts)
                keep[i] = False
                continue
            sid, fname = str(rec["speaker_id"]).strip(), str(rec["file_name"]).strip()
            item_id = str(rec[id_col]) if id_col in rec and not _missing(rec[id_col]) else Path(fname).with_suffix("").as_posix()
            meta = {c: _py(rec[c]) for c in item_cols}
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
                v = _py(rec[c])
                if _missing(v):
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
    return _io.TextIOWrapper(gzip.open(path), encoding="utf-8") if path.name.endswith(".gz") else open(path, encoding="utf-8")


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


# ----------------------------------------------------------------- decoding
def _problem(bad: _Bad, problems: Counter, opts: _Options) -> None:
    if not opts.skip_bad:
        raise bad.error(bad.message)
    problems[bad.kind] += 1


def _open_source(it: _Item):
    """Return something soundfile/PIL can open (path or BytesIO); missing files are bad input."""
    if isinstance(it.source, Path):
        if not it.source.is_file():
            listed = f" (listed in {it.listed_in})" if it.listed_in else ""
            raise _Bad("missing file", f"{it.where}: file not found{listed}", FileNotFoundError)
        return it.source
    value = it.source()
    if value is None:
        raise _Bad("missing file", f"{it.where}: no data", FileNotFoundError)
    if isinstance(value, dict):
        if value.get("bytes"):
            return _io.BytesIO(value["bytes"])
        if value.get("path"):
            p = Path(value["path"])
            if not p.is_file():
                raise _Bad("missing file", f"{it.where}: file not found ({p})", FileNotFoundError)
            return p
    raise _Bad("missing file", f"{it.where}: no data", FileNotFoundError)


def _decode_audio(it: _Item, opts: _Options) -> list[np.ndarray]:
    import soundfile as sf

    from .preprocess import resample, segment_audio

    src = _open_source(it)
    try:
        data, sr = sf.read(src, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as exc:
        raise _Bad("unreadable audio", f"{it.where}: cannot read audio ({exc})") from None
    if data.shape[0] == 0:
        raise _Bad("empty audio", f"{it.where}: empty audio (0 samples)")
    if not np.all(np.isfinite(data)):
        raise _Bad("NaN audio", f"{it.where}: audio contains NaN or infinite samples")
    if data.shape[1] > 1:
        if not opts.mix_down:
            raise _Bad("multi-channel audio", f"{it.where}: {data.shape[1]} channels; expected mono (pass mix_down=True to average the channels)")
        data = data.mean(axis=1, keepdims=True)
    wave = data[:, 0]
    peak = float(np.max(np.abs(wave)))
    if peak < opts.silence_threshold:
        raise _Bad("silent audio", f"{it.where}: silent audio (peak amplitude {peak:.2g} below {opts.silence_threshold:g})")
    if sr != SAMPLE_RATE:
        if not opts.resample:
            raise _Bad("wrong sample rate", f"{it.where}: sample rate {sr} Hz; expected {SAMPLE_RATE} Hz (pass resample=True to resample)")
        wave = resample(wave, sr, SAMPLE_RATE)
    if opts.segment_seconds is None:
        return [wave]
    lo, hi = opts.segment_seconds
    segments = segment_audio(wave, SAMPLE_RATE, lo, hi)
    if not segments:
        raise _Bad("audio too short", f"{it.where}: {wave.shape[0] / SAMPLE_RATE:.2f} s long, shorter than the {lo:g} s minimum segment")
    return segments


def _decode_image(it: _Item, opts: _Options):
    """Returns (image for datasets.Image, landmarks (5, 2) or None)."""
    from PIL import Image, UnidentifiedImageError

    from .preprocess import align_face

    src = _open_source(it)
    try:
        with Image.open(src) as im:
            im.load()
            mode, fmt = im.mode, im.format
            if mode == "P":
                mode = "PA" if "transparency" in im.info else "RGB"
            img = im.copy()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise _Bad("unreadable image", f"{it.where}: cannot read image ({exc})") from None
    w, h = img.size
    if min(w, h) < opts.min_image_size:
        raise _Bad("tiny image", f"{it.where}: image is {w}x{h} pixels, smaller than the {opts.min_image_size}-pixel minimum")
    if mode in _GRAY_MODES:
        if not opts.convert_rgb:
            raise _Bad("grayscale image", f"{it.where}: grayscale image (mode {mode!r}); expected RGB (pass convert_rgb=True to convert)")
    elif mode in _ALPHA_MODES:
        if not opts.convert_rgb:
            raise _Bad("RGBA image", f"{it.where}: image has an alpha channel (mode {mode!r}); expected RGB (pass convert_rgb=True to drop it)")
    lm = None if it.landmarks is None else np.asarray(it.landmarks, dtype=np.float64)
    if opts.align_faces:
        if lm is None:
            raise _Bad("face without landmarks", f"{it.where}: no landmarks, cannot align (add lm_x0..lm_y4 or pass align_faces=False)")
        arr, lm = align_face(img.convert("RGB"), lm, size=opts.image_size or 112, return_landmarks=True)
        return arr, lm
    if opts.image_size is not None:
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        s = opts.image_size / side
        img = img.convert("RGB").crop((left, top, left + side, top + side)).resize((opts.image_size, opts.image_size), Image.Resampling.BICUBIC)
        if lm is not None:
            # Pixel centres: x_out + 0.5 = (x_in + 0.5 - left) * s
            lm = (lm + 0.5 - [left, top]) * s - 0.5
        return np.asarray(img, dtype=np.uint8), lm
    if mode == "RGB" and img.mode == "RGB" and fmt in ("PNG", "JPEG") and isinstance(src, Path):
        return {"bytes": src.read_bytes(), "path": None}, lm  # keep the file's own bytes: no re-encoding
    return np.asarray(img.convert("RGB"), dtype=np.uint8), lm


def _build(plan: _Plan, opts: _Options, problems: Counter) -> Population:
    import datasets

    from .preprocess import face_quality

    ids = plan.identities
    known = set(ids["speaker_id"])
    extra = sorted({it.speaker_id for it in plan.voices + plan.faces} - known)
    if extra:  # can only happen for hand-made identity tables
        raise ValueError(f"{plan.where}: clips or faces of speakers missing from the identities table: {extra[:10]}")

    faces = plan.faces
    n_low_quality = 0
    if opts.filter_faces and faces:
        meta = pd.DataFrame([{c: it.meta.get(c) for c in FACE_QUALITY_COLUMNS} for it in faces])
        keep = face_quality(meta, max_angle=opts.max_pose)
        n_low_quality = int((~keep).sum())
        faces = [it for it, k in zip(faces, keep) if k]

    v_meta = _meta_features([it.meta for it in plan.voices])
    f_meta = _meta_features([it.meta for it in faces])
    v_features = datasets.Features(
        {"speaker_id": datasets.Value("string"), "clip_id": datasets.Value("string"), **v_meta,
         "audio": datasets.Sequence(datasets.Value("float32")), "sampling_rate": datasets.Value("int32")}
    )
    if opts.segment_seconds is not None:
        v_features["source_clip"] = datasets.Value("string")
        v_features["segment"] = datasets.Value("int32")
    f_features = datasets.Features(
        {"speaker_id": datasets.Value("string"), "face_id": datasets.Value("string"), **f_meta,
         "image": datasets.Image(), "landmarks": datasets.Sequence(datasets.Sequence(datasets.Value("float32")))}
    )

    def voice_rows():
        for it in plan.voices:
            try:
                segments = _decode_audio(it, opts)
            except _Bad as bad:
                _problem(bad, problems, opts)
                continue
            meta = {k: it.meta.get(k) for k in v_meta}
            for k, seg in enumerate(segments):
                row = {"speaker_id": it.speaker_id, "clip_id": it.item_id, **meta, "audio": seg, "sampling_rate": SAMPLE_RATE}
                if opts.segment_seconds is not None:
                    row.update(clip_id=f"{it.item_id}_seg{k}", source_clip=it.item_id, segment=k)
                yield row

    def face_rows():
        for it in faces:
            try:
                image, lm = _decode_image(it, opts)
            except _Bad as bad:
                _problem(bad, problems, opts)
                continue
            meta = {k: it.meta.get(k) for k in f_meta}
            yield {"speaker_id": it.speaker_id, "face_id": it.item_id, **meta, "image": image,
                   "landmarks": None if lm is None else np.asarray(lm, dtype=np.float32).tolist()}

    base = _hash([_CACHE_VERSION, plan.key, opts.key(), json.dumps(sorted(known))])
    voices = _dataset(voice_rows, v_features, _hash([base, "voices"]), problems)
    faces_ds = _dataset(face_rows, f_features, _hash([base, "faces"]), problems)

    # Identities left without clips or faces.
    have_v, have_f = set(voices["speaker_id"]), set(faces_ds["speaker_id"])
    no_clips = [s for s in ids["speaker_id"] if s not in have_v]
    no_faces = [s for s in ids["speaker_id"] if s not in have_f]
    for missing, what in ((no_clips, "voice clips"), (no_faces, "faces")):
        if missing and not opts.skip_bad:
            n = len(missing)
            raise ValueError(f"{plan.where}: {n} {'identity has' if n == 1 else 'identities have'} no {what}: {missing[:10]}{' ...' if n > 10 else ''}")
    dropped = set(no_clips) | set(no_faces)
    if dropped:
        for n, kind in ((len(no_clips), "identity with no voice clips"), (len(no_faces), "identity with no faces")):
            if n:
                problems[kind] += n
        keep = [s for s in ids["speaker_id"] if s not in dropped]
        if not keep:
            raise ValueError(f"{plan.where}: no identity has both voice clips and faces left")
        ids = ids[ids["speaker_id"].isin(keep)]
        voices = voices.select(np.flatnonzero(np.isin(np.asarray(voices["speaker_id"], dtype=object), keep)))
        faces_ds = faces_ds.select(np.flatnonzero(np.isin(np.asarray(faces_ds["speaker_id"], dtype=object), keep)))
    if len(ids) == 0:
        raise ValueError(f"{plan.where}: no identities found")

    info = dict(plan.info)
    info.pop("_rows", None)
    info["skipped"] = dict(sorted(problems.items()))
    if opts.filter_faces:
        info["low_quality_faces_dropped"] = n_low_quality
    if problems:
        detail = "; ".join(f"{k}: {n}" for k, n in sorted(problems.items()))
        warnings.warn(f"load_population({plan.where}): skipped {sum(problems.values())} (skip_bad=True) -- {detail}", SkippedInputWarning, stacklevel=3)
    if n_low_quality:
        warnings.warn(
            f"load_population({plan.where}): filter_faces dropped {n_low_quality} of {len(plan.faces)} faces "
            f"(|yaw|, |pitch| or |roll| above {opts.max_pose:g} degrees, closed eyes or open mouth)",
            UserWarning,
            stacklevel=3,
        )
    return Population(ids.reset_index(drop=True), voices, faces_ds, info)


def _dataset(rows: Callable, features, fingerprint: str, problems: Counter):
    """Arrow-backed dataset from a row generator, cached under the vfmatch cache by ``fingerprint``."""
    import datasets
    from datasets.exceptions import DatasetGenerationError

    from ..config import cache_dir

    folder = cache_dir("loaded")
    sidecar = folder / f"{fingerprint}.json"
    state = {"ran": False, "rows": 0}
    before = Counter(problems)

    def gen():
        state["ran"] = True
        for r in rows():
            state["rows"] += 1
            yield r

    try:
        ds = datasets.Dataset.from_generator(gen, features=features, cache_dir=str(folder), fingerprint=fingerprint)
    except DatasetGenerationError as exc:
        cause = exc.__cause__
        if isinstance(cause, (ValueError, FileNotFoundError)):
            raise cause from None
        raise
    except ValueError:
        if state["ran"] and state["rows"] == 0:  # every item was skipped: an empty table
            ds = datasets.Dataset.from_dict({k: [] for k in features}, features=features)
        else:
            raise
    if state["ran"]:
        sidecar.write_text(json.dumps(dict(problems - before)))
    elif sidecar.exists():  # cached: replay what was skipped when it was built
        problems.update(json.loads(sidecar.read_text()))
    return ds


def _meta_features(metas: list[dict]) -> dict:
    import datasets

    cols: dict[str, list] = {}
    for m in metas:
        for k, v in m.items():
            cols.setdefault(k, []).append(v)
    out = {}
    for k, vals in cols.items():
        present = [v for v in vals if not _missing(v)]
        if present and all(isinstance(v, (bool, np.bool_)) for v in present):
            out[k] = datasets.Value("bool")
        elif present and all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in present):
            out[k] = datasets.Value("int64")
        elif present and all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) for v in present):
            out[k] = datasets.Value("float32")
        else:
            out[k] = datasets.Value("string")
            for m in metas:
                if k in m and not _missing(m[k]):
                    m[k] = str(m[k])
    for m in metas:  # missing values become None (Arrow null)
        for k in out:
            if _missing(m.get(k)):
                m[k] = None
    return out


# ------------------------------------------------------------------ helpers
def _py(v):
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, str):
        low = v.strip().lower()
        if low in ("true", "false"):  # CSV booleans (eyes_closed, mouth_open)
            return low == "true"
    return v


def _missing(v) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and np.isnan(v):
        return True
    return isinstance(v, str) and v.strip() == ""


def _same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return bool(np.isclose(a, b))
    return str(a) == str(b)


def _hash(parts) -> str:
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


# ===================================================================== CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``vfmatch population``."""
    from ..simulator.traits import DEFAULT_N_IDENTITIES

    parser.add_argument("--identities", type=int, default=DEFAULT_N_IDENTITIES, help="number of people (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives identical files (default %(default)s)")
    parser.add_argument("--out", required=True, help="output folder (must be empty unless --overwrite)")
    parser.add_argument("--clips", type=int, default=4, help="voice clips per person (default %(default)s)")
    parser.add_argument("--faces", type=int, default=4, help="face images per person (default %(default)s)")
    parser.add_argument("--concordance", type=float, default=0.3, help="identity signal shared by voice and face beyond the metaproperties, 0-1 (default %(default)s)")
    parser.add_argument("--image-size", type=int, default=112, help="face image side in pixels (default %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace a population exported to --out before")


def main(args: argparse.Namespace) -> int:
    """Simulate a population and export it (``vfmatch population``)."""
    from ..simulator.traits import make_population

    out = Path(args.out)
    if out.exists() and out.is_dir() and any(out.iterdir()) and not args.overwrite:
        # Check before simulating, which can take a while.
        raise ValueError(f"{out}: folder is not empty; choose an empty folder or pass --overwrite")
    population = make_population(
        args.identities,
        seed=args.seed,
        clips_per_identity=args.clips,
        faces_per_identity=args.faces,
        concordance=args.concordance,
        image_size=args.image_size,
        progress=True,
    )
    export_population(population, out, overwrite=args.overwrite, progress=True)
    print(f"wrote {len(population)} identities, {population.voices.num_rows} clips and {population.faces.num_rows} faces to {out}")
    return 0
