"""Readers for published corpora: Common Voice, FairFace, AVSpeech segments, MAV-Celeb.

Each reads a local copy in the corpus's own layout (the user obtains it under
the corpus's terms; vfmatch downloads nothing) and plans what
:func:`vfmatch.load_population` decodes: ``load_population(ROOT, kind=...)``,
or ``kind="auto"``, which recognises each layout below. The corpora's labels
are mapped onto the metaproperties by the tables here; the label as written is
kept beside it (``age_group``, ``cv_gender``, ``race``, ...), so nothing is lost.

``common_voice`` (voices only) -- one language folder of a release::

    ROOT/clips/<file>.mp3
    ROOT/train.tsv, dev.tsv, test.tsv   (client_id, path, sentence, age, gender, accents, locale, ...)

  ``client_id`` is the speaker. ``age`` (a decade, :data:`COMMON_VOICE_AGES`)
  becomes the middle year of its decade, so a decade that straddles two of the
  patent's Table 1 bins counts in the bin of its middle year (approximate);
  ``gender`` by :data:`COMMON_VOICE_GENDERS`; ``accents`` of English locales by
  :data:`COMMON_VOICE_ACCENTS`; ``locale`` by :data:`COMMON_VOICE_LOCALES` as
  ``mother_tongue`` -- an assumption: Common Voice records the language read,
  not the speaker's first language. A speaker whose rows disagree gets the
  most frequent value. ``split`` from the file (``dev`` -> ``validation``).
  ``reader_options``: ``tsv`` (file stems, default train, dev, test).

``fairface`` (faces only)::

    ROOT/fairface_label_train.csv, fairface_label_val.csv   (file, age, gender, race, service_test)
    ROOT/train/<n>.jpg, ROOT/val/<n>.jpg

  Each image is its own identity (FairFace has no identity labels). ``age``
  groups become their middle year (:data:`FAIRFACE_AGES`, approximate as
  above), ``race`` becomes ``ethnicity`` by :data:`FAIRFACE_RACES`.

``avspeech`` -- the published segment lists and the media you cut from them::

    ROOT/avspeech_train.csv, avspeech_test.csv    (no header: youtube_id, start, end, face_x, face_y)
    ROOT/audio/<segment id>.wav                   (any format soundfile reads: .wav, .flac, .mp3)
    ROOT/faces/<segment id>.jpg  or  ROOT/faces/<segment id>/<n>.jpg

  A segment id is :func:`avspeech_segment_id` (``"<youtube_id>_<start>_<end>"``,
  seconds with three decimals). Segments with no media at all (videos
  disappear) are left out and counted in ``info["avspeech"]``. AVSpeech has no
  identities and no labels: each segment is one identity (``reader_options``
  ``identity="segment"``), or all segments of a video are (``"video"``: an
  assumption, not a property of the data), or a CSV ``identities=PATH`` with
  ``segment_id, speaker_id`` (and any labels, e.g. from clustering as paper
  001 did; segments it does not list are left out). ``face_x``, ``face_y`` (the face centre as fractions of the frame)
  are per-face columns.

``mav_celeb`` -- one version's raw data (v1 English-Urdu, v2 English-Hindi, v3 English-German)::

    ROOT/voices/<id>/<Language>/<video>/<n>.wav
    ROOT/faces/<id>/<Language>/<video>/<n>.jpg
    ROOT/<anything>meta<anything>.csv   (optional: ids, name, gender; the name is not kept)

  The language of each clip and face is a per-item ``language`` column
  (``reader_options``: ``languages=("English",)`` keeps only those). The
  FAME challenge's test lists (``<key> voices/<Language>/<n>.wav
  faces/<Language>/<n>.jpg``, anonymous media) are read by
  :func:`read_fame_list`; :func:`write_fame_scores` writes the ``<key>
  <score>`` file the challenge expects.

Book chapter: ``book/01_population.ipynb``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .decode import _Item, _Options
from .layout import IMAGE_SUFFIXES
from .readers import _hash, _normalise_identities, _Plan, _require, _stat_key

__all__ = [
    "COMMON_VOICE_AGES",
    "COMMON_VOICE_GENDERS",
    "COMMON_VOICE_ACCENTS",
    "COMMON_VOICE_LOCALES",
    "FAIRFACE_AGES",
    "FAIRFACE_RACES",
    "CORPORA",
    "avspeech_segment_id",
    "read_fame_list",
    "write_fame_scores",
]

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")
# The corpus kinds load_population(kind=...) reads with this module.
CORPORA = ("common_voice", "fairface", "avspeech", "mav_celeb")

# Common Voice's age decades -> the middle year (whole years lo..hi, middle (lo + hi + 1) / 2).
# The form's groups: "< 19", "19 - 29", "30 - 39", ..., "> 89"; "teens" is taken as 13-18
# and "nineties" as 90-99 (their open ends are not given).
COMMON_VOICE_AGES: dict[str, float] = {
    "teens": 16.0, "twenties": 24.5, "thirties": 35.0, "fourties": 45.0, "forties": 45.0, "fifties": 55.0,
    "sixties": 65.0, "seventies": 75.0, "eighties": 85.0, "nineties": 95.0,
}
# Older releases: male/female/other; newer: male_masculine, female_feminine, intersex,
# transgender, non-binary, do_not_wish_to_say. Anything not listed is unknown.
COMMON_VOICE_GENDERS: dict[str, str] = {"male": "male", "male_masculine": "male", "female": "female", "female_feminine": "female"}
# Accents of English (English locales only) -> ACCENTS. Older releases use these codes;
# newer ones free text, read by the first keyword it contains (lower case, in this order).
COMMON_VOICE_ACCENTS: dict[str, str] = {
    "us": "General American", "england": "British", "indian": "Indian",
    "latin america": "Latin American", "mexic": "Latin American", "nigeria": "Nigerian", "russia": "Russian",
    "arab": "Arabic", "chinese": "Chinese", "china": "Chinese", "india": "Indian", "united states": "General American",
    "england english": "British",
}
# Locale -> mother_tongue (the language read; see the module docstring). Cantonese (zh-HK)
# and every other locale are unknown.
COMMON_VOICE_LOCALES: dict[str, str] = {
    "en": "English", "es": "Spanish", "pt": "Portuguese", "ar": "Arabic", "hi": "Hindi",
    "zh-CN": "Mandarin", "zh-TW": "Mandarin", "yo": "Yoruba", "ru": "Russian",
}
# FairFace's age groups -> the middle year; "more than 70" -> 70 (its end is not given;
# any age from 65 on is the patent's ">64" bin).
FAIRFACE_AGES: dict[str, float] = {
    "0-2": 1.5, "3-9": 6.5, "10-19": 15.0, "20-29": 25.0, "30-39": 35.0, "40-49": 45.0,
    "50-59": 55.0, "60-69": 65.0, "more than 70": 70.0,
}
# FairFace's seven race groups -> the six ETHNICITIES (East and Southeast Asian both Asian).
FAIRFACE_RACES: dict[str, str] = {
    "White": "White", "Black": "Black", "Indian": "Indian", "East Asian": "Asian", "Southeast Asian": "Asian",
    "Middle Eastern": "Middle-Eastern", "Latino_Hispanic": "Latino-Hispanic",
}


def guess_corpus(path: Path) -> str | None:
    """Which corpus layout a folder holds (``CORPORA``), or None."""
    if not path.is_dir():
        return None
    if (path / "clips").is_dir() and any(_tsv_has(p, "client_id") for p in path.glob("*.tsv")):
        return "common_voice"
    if any(path.glob("fairface_label_*.csv")):
        return "fairface"
    if any(path.glob("avspeech_*.csv")):
        return "avspeech"
    voices = path / "voices"
    if voices.is_dir() and (path / "faces").is_dir() and not (voices / "metadata.csv").exists():
        ids = [p for p in voices.iterdir() if p.is_dir()]
        if ids and all(any(q.is_dir() for q in p.iterdir()) for p in ids[:5]):  # voices/<id>/<Language>/
            return "mav_celeb"
    return None


def _tsv_has(path: Path, column: str) -> bool:
    try:
        with open(path, encoding="utf-8") as fh:
            return column in fh.readline().rstrip("\n").split("\t")
    except (OSError, UnicodeDecodeError):
        return False


def _most_frequent(values) -> object:
    """The most frequent present value (ties: the first seen), or NaN."""
    present = [v for v in values if isinstance(v, str) and v.strip() or isinstance(v, (int, float)) and not pd.isna(v)]
    return Counter(present).most_common(1)[0][0] if present else np.nan


def _identities(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """One row per speaker_id: each column's most frequent value among the speaker's rows."""
    cols = [c for c in columns if c in df]
    return df.groupby("speaker_id", sort=True)[cols].agg(_most_frequent).reset_index() if cols else df[["speaker_id"]].drop_duplicates()


# ------------------------------------------------------------- Common Voice
def _cv_accent(text) -> object:
    if not isinstance(text, str) or not text.strip():
        return np.nan
    for part in text.split("|"):
        low = part.strip().lower()
        if low in COMMON_VOICE_ACCENTS:
            return COMMON_VOICE_ACCENTS[low]
        for key, accent in COMMON_VOICE_ACCENTS.items():
            if len(key) > 3 and key in low:
                return accent
    return np.nan


def plan_common_voice(root: Path, problems: Counter, opts: _Options, tsv: Sequence[str] = ("train", "dev", "test")) -> _Plan:
    root = Path(root)
    frames = []
    for stem in tsv:
        path = root / f"{stem}.tsv"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file (a Common Voice language folder has train.tsv, dev.tsv, test.tsv; pass reader_options={{'tsv': [...]}})")
        try:
            df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_values=[""], quoting=3)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: cannot read the table ({exc})") from None
        _require(df, ["client_id", "path"], path)
        df["split"] = {"dev": "validation"}.get(stem, stem)
        df["listed_in"] = str(path)
        frames.append(df)
    df = pd.concat(frames, ignore_index=True).rename(columns={"client_id": "speaker_id", "accent": "accents"})
    for c in ("age", "gender", "accents", "locale", "sentence"):
        if c not in df:
            df[c] = np.nan
    df["age_group"], df["cv_gender"] = df["age"], df["gender"]
    df["age"] = df["age_group"].map(COMMON_VOICE_AGES)
    df["gender"] = df["cv_gender"].map(COMMON_VOICE_GENDERS)
    df["mother_tongue"] = df["locale"].map(COMMON_VOICE_LOCALES)
    english = df["locale"].fillna("").str.startswith("en")
    df["accent"] = np.where(english, df["accents"].map(_cv_accent), np.nan)
    ids = _identities(df, ["age", "age_group", "gender", "cv_gender", "accent", "accents", "mother_tongue", "locale"])
    splits = df.groupby("speaker_id")["split"].agg(lambda s: s.iloc[0] if s.nunique() == 1 else np.nan)
    ids["split"] = ids["speaker_id"].map(splits)  # a speaker in several files has no one split
    voices = [
        _Item(str(r.speaker_id), Path(r.path).with_suffix("").as_posix(), str(root / "clips" / r.path), root / "clips" / r.path,
              meta={"sentence": r.sentence if isinstance(r.sentence, str) else None}, listed_in=r.listed_in)
        for r in df.itertuples()
    ]
    info = {"source": {"kind": "common_voice", "root": str(root), "tsv": list(tsv)}, "modalities": ["voice"]}
    return _Plan(_normalise_identities(ids), voices, [], str(root), info, key=_stat_key(voices, [root / f"{s}.tsv" for s in tsv]))


# ------------------------------------------------------------------ FairFace
def plan_fairface(root: Path, problems: Counter, opts: _Options) -> _Plan:
    root = Path(root)
    csvs = sorted(root.glob("fairface_label_*.csv"))
    if not csvs:
        raise FileNotFoundError(f"{root}: no fairface_label_*.csv (FairFace's label files)")
    frames = []
    for path in csvs:
        try:
            df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: cannot read the table ({exc})") from None
        _require(df, ["file", "age", "gender", "race"], path)
        stem = path.stem.removeprefix("fairface_label_")
        df["split"] = {"val": "validation"}.get(stem, stem)
        df["listed_in"] = str(path)
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    bad = sorted(set(df["age"].dropna()) - set(FAIRFACE_AGES)) + sorted(set(df["race"].dropna()) - set(FAIRFACE_RACES))
    if bad:
        raise ValueError(f"{csvs}: unknown FairFace age group or race {bad[:5]}; expected {list(FAIRFACE_AGES)} and {list(FAIRFACE_RACES)}")
    df["speaker_id"] = df["file"].map(lambda f: Path(f).with_suffix("").as_posix())  # each image its own identity
    ids = pd.DataFrame({
        "speaker_id": df["speaker_id"], "age": df["age"].map(FAIRFACE_AGES), "age_group": df["age"],
        "gender": df["gender"], "ethnicity": df["race"].map(FAIRFACE_RACES), "race": df["race"], "split": df["split"],
    })
    faces = [
        _Item(r.speaker_id, r.speaker_id, str(root / r.file), root / r.file,
              meta={"service_test": str(r.service_test).strip().lower() == "true"} if "service_test" in df else {}, listed_in=r.listed_in)
        for r in df.itertuples()
    ]
    info = {"source": {"kind": "fairface", "root": str(root)}, "modalities": ["face"]}
    return _Plan(_normalise_identities(ids), [], faces, str(root), info, key=_stat_key(faces, csvs))


# ------------------------------------------------------------------ AVSpeech
def avspeech_segment_id(youtube_id: str, start: float, end: float) -> str:
    """The name of a cut AVSpeech segment's files: ``"<youtube_id>_<start>_<end>"``, seconds to 3 decimals."""
    return f"{youtube_id}_{float(start):.3f}_{float(end):.3f}"


def _media(folder: Path, stem: str, suffixes) -> list[Path]:
    """``folder/<stem>.<suffix>`` files, or the files inside ``folder/<stem>/``."""
    direct = [folder / f"{stem}{s}" for s in suffixes if (folder / f"{stem}{s}").is_file()]
    sub = folder / stem
    inner = sorted(p for p in sub.iterdir() if p.suffix.lower() in suffixes) if sub.is_dir() else []
    return direct + inner


def plan_avspeech(root: Path, problems: Counter, opts: _Options, identity: str = "segment", identities: str | Path | None = None) -> _Plan:
    root = Path(root)
    csvs = sorted(root.glob("avspeech_*.csv"))
    if not csvs:
        raise FileNotFoundError(f"{root}: no avspeech_*.csv (AVSpeech's segment lists)")
    if identity not in ("segment", "video") and identities is None:
        raise ValueError(f"reader_options identity= must be 'segment' or 'video', not {identity!r} (or pass identities=CSV)")
    frames = []
    for path in csvs:
        df = pd.read_csv(path, header=None, dtype={0: str})
        if df.shape[1] != 5:
            raise ValueError(f"{path}: {df.shape[1]} columns; AVSpeech lists have 5 (youtube_id, start, end, face_x, face_y) and no header")
        df.columns = ["youtube_id", "start", "end", "face_x", "face_y"]
        try:
            df[["start", "end", "face_x", "face_y"]] = df[["start", "end", "face_x", "face_y"]].astype(float)
        except ValueError as exc:
            raise ValueError(f"{path}: start, end, face_x and face_y must be numbers ({exc})") from None
        stem = path.stem.removeprefix("avspeech_")
        df["split"] = {"val": "validation"}.get(stem, stem)
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    df["segment_id"] = [avspeech_segment_id(*t) for t in zip(df["youtube_id"], df["start"], df["end"])]
    if identities is not None:
        table = pd.read_csv(identities, dtype={"segment_id": str, "speaker_id": str})
        _require(table, ["segment_id", "speaker_id"], identities)
        df = df.merge(table, on="segment_id", how="inner")
    else:
        df["speaker_id"] = df["segment_id"] if identity == "segment" else df["youtube_id"]
    voices, faces, missing = [], [], 0
    for r in df.itertuples():
        clips = _media(root / "audio", r.segment_id, AUDIO_SUFFIXES)
        frames_ = _media(root / "faces", r.segment_id, IMAGE_SUFFIXES)
        if not clips and not frames_:
            missing += 1  # not downloaded (or no longer on YouTube): not an error
            continue
        meta = {"segment_id": r.segment_id, "start": r.start, "end": r.end}
        voices += [_Item(r.speaker_id, f.relative_to(root / "audio").with_suffix("").as_posix(), str(f), f, meta=dict(meta)) for f in clips]
        faces += [_Item(r.speaker_id, f.relative_to(root / "faces").with_suffix("").as_posix(), str(f), f, meta={**meta, "face_x": r.face_x, "face_y": r.face_y})
                  for f in frames_]
    listed = {it.speaker_id for it in voices + faces}
    extra = [c for c in df.columns if c not in ("youtube_id", "start", "end", "face_x", "face_y", "segment_id", "speaker_id")]
    ids = _identities(df[df["speaker_id"].isin(listed)], extra)
    info = {"source": {"kind": "avspeech", "root": str(root), "identity": "table" if identities is not None else identity},
            "avspeech": {"segments_listed": int(len(df)), "segments_without_media": missing}}
    return _Plan(_normalise_identities(ids), voices, faces, str(root), info, key=_stat_key(voices + faces, csvs))


# ----------------------------------------------------------------- MAV-Celeb
def plan_mav_celeb(root: Path, problems: Counter, opts: _Options, languages: Sequence[str] | None = None) -> _Plan:
    root = Path(root)
    for sub in ("voices", "faces"):
        if not (root / sub).is_dir():
            raise FileNotFoundError(f"{root / sub}: no such folder (MAV-Celeb unpacks to voices/<id>/<Language>/... and faces/<id>/<Language>/...)")
    keep = None if languages is None else {str(x).lower() for x in languages}
    items = {"voices": [], "faces": []}
    for sub, suffixes in (("voices", AUDIO_SUFFIXES), ("faces", IMAGE_SUFFIXES)):
        for f in sorted(p for p in (root / sub).rglob("*") if p.suffix.lower() in suffixes):
            parts = f.relative_to(root / sub).parts
            if len(parts) < 3:
                raise ValueError(f"{f}: expected {sub}/<id>/<Language>/[<video>/]<file>")
            if keep is not None and parts[1].lower() not in keep:
                continue
            meta = {"language": parts[1], "video": parts[2] if len(parts) > 3 else None}
            items[sub].append(_Item(parts[0], f.relative_to(root / sub).with_suffix("").as_posix(), str(f), f, meta=meta))
    speakers = sorted({it.speaker_id for it in items["voices"] + items["faces"]})
    ids = pd.DataFrame({"speaker_id": speakers})
    metas = sorted(p for p in root.glob("*.csv") if "meta" in p.name.lower())
    tables = []
    for path in metas:
        table = pd.read_csv(path, dtype=str, skipinitialspace=True)
        table.columns = [c.strip().lower() for c in table.columns]
        _require(table, ["ids", "gender"], path)
        # The name column is not kept: vfmatch has no use for who a person is.
        tables.append(table[["ids", "gender"]].rename(columns={"ids": "speaker_id"}))
    if tables:
        ids = ids.merge(pd.concat(tables).drop_duplicates("speaker_id"), on="speaker_id", how="left")
    info = {"source": {"kind": "mav_celeb", "root": str(root), "languages": None if languages is None else list(languages)}}
    return _Plan(_normalise_identities(ids), items["voices"], items["faces"], str(root), info,
                 key=_hash([_stat_key(items["voices"] + items["faces"], metas)]))


def read_fame_list(path: str | Path) -> pd.DataFrame:
    """A FAME challenge test list: one ``<key> <voice path> <face path>`` per line.

    Returns a DataFrame with ``key``, ``voice`` and ``face`` (paths as written,
    relative to the version's folder) and ``language`` (the folder after
    ``voices/``). Raises ValueError naming the file and line of a bad line."""
    path = Path(path)
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 3:
                raise ValueError(f"{path}: line {n} has {len(parts)} fields; a FAME list line is '<key> <voice path> <face path>'")
            voice_parts = Path(parts[1]).parts
            rows.append({"key": parts[0], "voice": parts[1], "face": parts[2], "language": voice_parts[1] if len(voice_parts) > 2 else None})
    if not rows:
        raise ValueError(f"{path}: empty FAME list")
    return pd.DataFrame(rows)


def write_fame_scores(keys: Sequence[str], scores, path: str | Path) -> Path:
    """Write ``<key> <score>`` lines (the FAME submission format; the baseline writes
    L2 distances, lower = more alike). Returns the path."""
    scores = np.asarray(scores, dtype=float)
    if len(keys) != len(scores) or not np.all(np.isfinite(scores)):
        raise ValueError(f"write_fame_scores: {len(keys)} keys and {len(scores)} scores (all finite) needed")
    path = Path(path)
    path.write_text("".join(f"{k} {s:.6f}\n" for k, s in zip(keys, scores)))
    return path


def plan_corpus(kind: str, root, problems: Counter, opts: _Options, reader_options: Mapping | None = None) -> _Plan:
    """The planner of corpus ``kind`` (:data:`CORPORA`) with its ``reader_options``."""
    planners = {"common_voice": plan_common_voice, "fairface": plan_fairface, "avspeech": plan_avspeech, "mav_celeb": plan_mav_celeb}
    root = Path(str(root)).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    try:
        return planners[kind](root, problems, opts, **dict(reader_options or {}))
    except TypeError as exc:
        if "unexpected keyword" in str(exc):
            raise TypeError(f"reader_options for kind={kind!r}: {exc}") from None
        raise

