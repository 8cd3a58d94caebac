"""Files in: :func:`load_population` reads a population from folders, lists and the Hub.

It reads

(a) the vfmatch layout (:mod:`vfmatch.data.layout`), or any folder with
    ``voices/`` and ``faces/`` sub-folders, or a pair ``(audiofolder,
    imagefolder)``: each needs a ``metadata.csv`` (or ``metadata.jsonl``) with
    ``file_name`` and ``speaker_id`` columns;
(b) a VoxCeleb1 + VGGFace root: a meta CSV (``VoxCeleb1 ID, VGGFace1 ID,
    Gender, Nationality, Set``; tab- or comma-separated, spaces or
    underscores in the names, as in ``vox1_meta.csv`` and the Seeking the
    Shape of Sound lists), ``wav/<id>/<video>/<n>.wav`` and
    ``images/<VGGFace1 ID>/<n>.jpg``;
(c) a Hugging Face dataset through :func:`datasets.load_dataset` (a Hub id or
    a local dataset folder) with a ``speaker_id`` column and an Audio and/or
    Image column;
(d) a folder written by :meth:`Population.save_to_disk`;
(e) a local copy of a published corpus in its own layout
    (:mod:`vfmatch.data.corpora`): Common Voice (voices only), FairFace
    (faces only), AVSpeech segments, MAV-Celeb.

It works in three steps: plan which items to read from the metadata
(:mod:`vfmatch.data.readers`), decode each item (:mod:`vfmatch.data.decode`),
and write the decoded rows to Arrow tables (here).

Bad input (unreadable, empty, silent or NaN audio; multi-channel audio;
grayscale, RGBA or tiny images; missing files or metadata columns;
identities with no clips or no faces) raises an error that names the file
and the problem; with ``skip_bad=True`` the item is skipped instead and one
:class:`SkippedInputWarning` counts what was skipped. Other sample rates are
resampled to 16 kHz (``resample=False`` makes them an error). The user's
files are only ever opened for reading. Decoded data is written to Arrow
files under the vfmatch cache (``VFMATCH_CACHE``), so a VoxCeleb-sized
population is memory-mapped rather than held in RAM, and loading the same
unchanged files with the same options and the same decoding code a second
time is fast.

Book chapter: ``book/01_population.ipynb``.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from pathlib import Path
from typing import Callable, Mapping, Sequence

import datasets
import numpy as np
import pandas as pd
from datasets.exceptions import DatasetGenerationError

from ..config import cache_dir
from ..utils import code_fingerprint
from .audio_checks import validate_waveform
from .corpora import CORPORA, guess_corpus, plan_corpus
from .media import conform_voice, normalize_loudness, trim_silence as trim_to_speech
from .decode import SkippedInputWarning, _Bad, _decode_audio, _decode_image, _Options, _problem
from .layout import FACE_QUALITY_COLUMNS, missing_cell
from .population import SAMPLE_RATE, Population
from .preprocess import align_face, face_quality, resample, segment_audio
from .readers import _hash, _keep_split, _plan_folder, _plan_hub, _plan_pair, _plan_voxceleb, _Plan, _resolve_kind

__all__ = ["load_population", "SkippedInputWarning"]


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
    trim_silence: bool = False,
    loudness: float | None = None,
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
    reader_options: Mapping | None = None,
) -> Population:
    """Read a population from files (the module docstring lists the sources).

    Parameters
    ----------
    source : str, Path or (voices, faces) pair
        A folder in the vfmatch layout (or any folder with ``voices/`` and
        ``faces/``), a pair of audiofolder/imagefolder paths (or Hub ids), a
        VoxCeleb1 root or meta CSV, a Hub dataset id, or a
        :meth:`Population.save_to_disk` folder.
    kind : {"auto", "folder", "pair", "voxceleb", "hub", "arrow", "common_voice", "fairface", "avspeech", "mav_celeb"}
        What ``source`` is; ``"auto"`` guesses from what is on disk. The
        corpora (:mod:`vfmatch.data.corpora`) that hold one modality give a
        Population whose other table is empty.
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
    trim_silence : bool
        Cut each clip to its speech with the voice-activity detector
        (:func:`vfmatch.data.media.trim_silence`); a clip without speech is
        bad input. Needs the ``media`` extra.
    loudness : float, optional
        Normalise each clip to this integrated loudness in LUFS (e.g. -23;
        :func:`vfmatch.data.media.normalize_loudness`). Needs the ``media`` extra.
    silence_threshold : float
        A clip whose peak amplitude is below this (full scale 1.0) is silent.
    convert_rgb : bool
        Convert grayscale images to RGB and drop the alpha channel of RGBA
        ones (default: both are an error).
    min_image_size : int
        Images with a side shorter than this many pixels are an error.
    filter_faces : bool
        Drop faces that fail :func:`vfmatch.data.preprocess.face_quality` (pose
        beyond ``max_pose`` degrees, closed eyes, open mouth; unknown passes),
        with a warning counting them.
    align_faces : bool
        Align faces to the ArcFace landmark template
        (:func:`vfmatch.data.preprocess.align_face`), at ``image_size`` (default
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
    reader_options : mapping, optional
        Corpora: the reader's own options (:mod:`vfmatch.data.corpora`), e.g.
        ``{"tsv": ["validated"]}`` for Common Voice.

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
        trim_silence=bool(trim_silence),
        loudness=None if loudness is None else float(loudness),
    )
    if opts.segment_seconds is not None and not (len(opts.segment_seconds) == 2 and 0 < opts.segment_seconds[0] <= opts.segment_seconds[1]):
        raise ValueError(f"segment_seconds must be (min_s, max_s) with 0 < min_s <= max_s, got {segment_seconds}")
    if opts.image_size is not None and opts.image_size < 8:
        raise ValueError(f"image_size must be at least 8 pixels, got {image_size}")
    if kind == "auto" and not isinstance(source, (tuple, list)):
        kind = guess_corpus(Path(str(source)).expanduser()) or kind
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
    elif kind in CORPORA:
        plan = plan_corpus(kind, source, problems, opts, reader_options)
    else:
        raise ValueError(f"kind must be one of auto, folder, pair, voxceleb, hub, arrow, {', '.join(CORPORA)}; got {kind!r}")
    if split is not None and kind not in ("hub", "pair"):
        plan = _keep_split(plan, split)
    return _build(plan, opts, problems)


def _decoding_fingerprint() -> str:
    """:func:`vfmatch.utils.code_fingerprint` of the code that turns files into rows
    (decoding, checks, resampling, segmenting, face filtering and alignment, and
    :func:`_build`), with :data:`vfmatch.utils.CODE_VERSION`: part of the cache key,
    so editing any of it decodes the files afresh."""
    return code_fingerprint(_build, _decode_audio, _decode_image, validate_waveform, resample, segment_audio, face_quality, align_face,
                            conform_voice, trim_to_speech, normalize_loudness)


def _build(plan: _Plan, opts: _Options, problems: Counter) -> Population:
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

    base = _hash([_decoding_fingerprint(), plan.key, opts.key(), json.dumps(sorted(known))])
    voices = _dataset(voice_rows, v_features, _hash([base, "voices"]), problems)
    faces_ds = _dataset(face_rows, f_features, _hash([base, "faces"]), problems)

    # Identities left without clips or faces.
    have_v, have_f = set(voices["speaker_id"][:]), set(faces_ds["speaker_id"][:])
    # A one-modality corpus (Common Voice, FairFace) says which table it fills.
    modalities = plan.info.get("modalities", ["voice", "face"])
    no_clips = [s for s in ids["speaker_id"] if s not in have_v] if "voice" in modalities else []
    no_faces = [s for s in ids["speaker_id"] if s not in have_f] if "face" in modalities else []
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
        voices = voices.select(np.flatnonzero(np.isin(np.asarray(voices["speaker_id"][:], dtype=object), keep)))
        faces_ds = faces_ds.select(np.flatnonzero(np.isin(np.asarray(faces_ds["speaker_id"][:], dtype=object), keep)))
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
    cols: dict[str, list] = {}
    for m in metas:
        for k, v in m.items():
            cols.setdefault(k, []).append(v)
    out = {}
    for k, vals in cols.items():
        present = [v for v in vals if not missing_cell(v)]
        if present and all(isinstance(v, (bool, np.bool_)) for v in present):
            out[k] = datasets.Value("bool")
        elif present and all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in present):
            out[k] = datasets.Value("int64")
        elif present and all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) for v in present):
            out[k] = datasets.Value("float32")
        else:
            out[k] = datasets.Value("string")
            for m in metas:
                if k in m and not missing_cell(m[k]):
                    m[k] = str(m[k])
    for m in metas:  # missing values become None (Arrow null)
        for k in out:
            if missing_cell(m.get(k)):
                m[k] = None
    return out

