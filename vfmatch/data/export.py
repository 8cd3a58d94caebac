"""Files out: write a population as WAV/PNG files with ``metadata.csv`` tables.

:func:`export_population` writes the folder layout described in
:mod:`vfmatch.data.layout` (``vfmatch population --out DIR`` calls it). The same
population gives byte-identical files: WAV and PNG carry no timestamps, floats
are written in their shortest form, and rows come in the population's order.
Nothing outside an exported population is ever deleted.

Book chapter: ``book/01_population.ipynb``.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import soundfile as sf
from PIL import Image

from ..utils import progress as progress_bar, to_jsonable
from .audio_checks import validate_waveform
from .layout import FACE_QUALITY_COLUMNS, IDENTITY_META, LANDMARK_COLUMNS, LAYOUT
from .population import IDENTITY_COLUMNS, SAMPLE_RATE, Population

__all__ = ["export_population"]

# Keys of Population.info that change from run to run (timings): not exported.
_VOLATILE_INFO = ("seconds_to_simulate",)


def export_population(population: Population, out_dir: str | Path, *, overwrite: bool = False, progress: bool = False) -> Path:
    """Write ``population`` as WAV/PNG files with ``metadata.csv`` tables
    (the layout of :mod:`vfmatch.data.layout`).

    Parameters
    ----------
    population : Population
        Clips must be mono float samples in [-1, 1] at
        :data:`~vfmatch.data.population.SAMPLE_RATE` (16 kHz); faces RGB.
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
    for r in progress_bar(voices, progress, "voices", total=voices.num_rows):
        sid, cid = str(r["speaker_id"]), str(r["clip_id"])
        sr = int(r.get("sampling_rate", SAMPLE_RATE))
        where = f"clip {cid!r} of speaker {sid!r}"
        if sr != SAMPLE_RATE:
            raise ValueError(f"{where}: sample rate {sr} Hz; a population holds {SAMPLE_RATE} Hz audio")
        # Any mono, finite, non-empty clip can be written, short or silent.
        audio = validate_waveform(r["audio"], name=where, sample_rate=sr, min_samples=1, silence_threshold=0.0).numpy()
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
    for r in progress_bar(faces, progress, "faces", total=faces.num_rows):
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
            ids[col] = ids[col].map(_json_text)
    return ids


def _json_text(v) -> str | None:
    """A list-valued cell (e.g. a latent vector) as JSON text; None or NaN stays empty.

    Each element goes through :func:`vfmatch.utils.to_jsonable` as a numpy
    scalar, so float32 keeps its shortest form (``0.1``, not ``0.10000000149011612``)
    and reads back to the same float32."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    return json.dumps(to_jsonable(_scalars(v)))


def _scalars(value):
    """Nested lists of numpy scalars with the shape of ``np.asarray(value)``."""
    arr = np.asarray(value)
    return [_scalars(a) for a in arr] if arr.ndim else arr[()]


def _join(per_person: pd.DataFrame, sid: str) -> dict:
    return per_person.loc[sid].to_dict() if len(per_person.columns) else {}


def _item_meta(row: Mapping, skip: set) -> dict:
    out = {}
    for k, v in row.items():
        if k in skip:
            continue
        if isinstance(v, np.ndarray) and v.ndim == 0:
            v = v[()]
        out[k] = _json_text(v) if isinstance(v, (list, tuple, np.ndarray)) else to_jsonable(v)
    return out


def _landmark_columns(lm) -> dict:
    if lm is None:
        return {}
    arr = np.asarray([np.asarray(p, dtype=np.float32) for p in lm], dtype=np.float32)
    if arr.shape != (5, 2):
        raise ValueError(f"landmarks must have shape (5, 2), got {arr.shape}")
    return {c: to_jsonable(arr[k // 2, k % 2]) for k, c in enumerate(LANDMARK_COLUMNS)}


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
