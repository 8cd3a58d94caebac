"""Features of real media files, extracted in shards: resumable, and past one machine.

The VoxCeleb1 + VGGFace recipe (``vfmatch sss``, :mod:`vfmatch.job.sss_command`)
embeds tens of thousands of clips and photos. This module does it over a
Hugging Face :class:`datasets.Dataset` of file paths:

1. :func:`media_dataset` -- one row per item: ``path`` (the key the lists use,
   ``id10117/59-3D0HIDAc/00001.wav``) and ``file`` (where it is on disk);
2. :func:`extract_features` -- the dataset is cut with
   ``Dataset.shard(num_shards, index, contiguous=True)``; each shard is encoded
   with a batched ``Dataset.map`` (``num_proc`` worker processes on a CPU, one
   process feeding the GPU otherwise) and written **atomically** to
   ``FOLDER/shard-IIIII-of-KKKKK.npz``. A shard already on disk is skipped, so an
   interrupted run resumes where it stopped, and a cluster runs one shard per
   worker (``shard_indices=[I]``);
3. :func:`merge_shards` -- the shards, in order, as one matrix and its paths
   (also written to ``FOLDER/features.npz``: ``features``, ``paths``).

``contiguous=True`` keeps each shard a run of consecutive rows, so the merged
rows are the dataset's rows in order: the same features as one un-sharded pass.

Files are read by the package's one front-end, :mod:`vfmatch.data.media`
(whose notes -- down-mixing, resampling, EXIF rotation, mode conversion -- go
to the ``vfmatch.data.media`` logger):

* a clip (:func:`voice_item`): :func:`~vfmatch.data.media.read_audio`, then
  :func:`~vfmatch.data.media.conform_voice` (mono, 16 kHz), cut to ``max_seconds``;
* a photo (:func:`face_item`): :func:`~vfmatch.data.media.read_image`; with
  ``align=True`` (the recipe's default) the dlib detector finds the face and
  :func:`~vfmatch.data.faces.align_photo` puts it on the common canvas
  (``vfmatch.data.media.CANVAS_ZOOM``, as :func:`~vfmatch.data.media.load_face`
  does) at ``image_size`` pixels; with ``align=False`` the whole photo is
  resized to an ``image_size`` square (VGGFace photos are loose crops).

A photo in which the detector finds **no face** is not encoded: its row is kept
in the shard with ``found=False``, :func:`merge_shards` leaves it out, and
:func:`skipped_items` lists it (the recipe counts these and drops the list
trials that need them). A file that cannot be read at all stays an error
naming the file.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from pathlib import Path
from typing import Sequence

import datasets
import numpy as np
from PIL import Image

from ..data.faces import NoFaceError, align_photo
from ..data.media import CANVAS_ZOOM, conform_voice, read_audio, read_image
from ..data.population import SAMPLE_RATE
from ..utils import progress as progress_bar

__all__ = [
    "media_dataset",
    "feature_folder",
    "shard_file",
    "missing_shards",
    "extract_features",
    "merge_shards",
    "skipped_items",
    "voice_item",
    "face_item",
    "default_num_shards",
]

log = logging.getLogger(__name__)

_MAP_FEATURES = datasets.Features({"path": datasets.Value("string"),
                                   "features": datasets.Sequence(datasets.Value("float32")),
                                   "found": datasets.Value("bool")})


def voice_item(file, *, max_seconds: float | None = 10.0) -> np.ndarray:
    """A clip as 16 kHz mono float32 (n_samples,), at most ``max_seconds`` long.

    Read and conformed by :mod:`vfmatch.data.media` (any rate and channel count;
    each conversion is a logged note). ValueError / FileNotFoundError name the file."""
    data, sr = read_audio(file)
    wave = conform_voice(data, sr, name=str(file))
    if max_seconds is not None:
        wave = wave[: int(max_seconds * SAMPLE_RATE)]
    return np.ascontiguousarray(wave, dtype=np.float32)


def face_item(file, *, image_size: int = 128, align: bool = True) -> np.ndarray | None:
    """A photo as uint8 RGB (image_size, image_size, 3), or None when ``align`` and no face is found.

    ``align=True``: the largest face the dlib detector finds, aligned on the common
    canvas (:func:`vfmatch.data.faces.align_photo`, zoom ``CANVAS_ZOOM``: hair and jaw
    in view). ``align=False``: the whole photo resized. An unreadable file raises
    ValueError naming it (:func:`vfmatch.data.media.read_image`)."""
    img = read_image(file)  # reading errors are errors, never "no face"
    if not align:
        return np.asarray(Image.fromarray(img).resize((image_size, image_size), Image.BILINEAR), dtype=np.uint8)
    try:
        return align_photo(img, path=str(file), size=image_size, zoom=CANVAS_ZOOM).image
    except NoFaceError:  # any other failure (an unreadable file, bad geometry) stays an error
        log.info("%s: no face found by the detector; left out", file)
        return None


def media_dataset(root, paths: Sequence[str]) -> datasets.Dataset:
    """A dataset of item paths and their files: columns ``path`` and ``file`` (``root/path``).

    Every file must exist: a FileNotFoundError names how many are missing and the first few."""
    root = Path(root)
    paths = [str(p) for p in paths]
    files = [str(root / p) for p in paths]
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise FileNotFoundError(f"{root}: {len(missing)} of {len(files)} files the lists need are missing, "
                                f"e.g. {missing[:3]}")
    return datasets.Dataset.from_dict({"path": paths, "file": files})


def feature_folder(cache_root, encoder, modality: str, dataset: datasets.Dataset, load_options: dict) -> Path:
    """``cache_root/<modality>-<key>``: the key hashes the encoder's fingerprint, how
    files are read and the item paths, so changing any of them starts a new folder."""
    h = hashlib.sha1(f"{encoder.fingerprint()}|{modality}|{sorted(load_options.items())}".encode())
    for p in dataset["path"]:
        h.update(p.encode() + b"\n")
    return Path(cache_root) / f"{modality}-{h.hexdigest()[:16]}"


def shard_file(folder, index: int, num_shards: int) -> Path:
    """``folder/shard-IIIII-of-KKKKK.npz``: the features of shard ``index`` of ``num_shards``."""
    return Path(folder) / f"shard-{index:05d}-of-{num_shards:05d}.npz"


def missing_shards(folder, num_shards: int) -> list[int]:
    """Indices of the shards not yet on disk."""
    return [i for i in range(num_shards) if not shard_file(folder, i, num_shards).exists()]


def _encode_batch(batch: dict, encoder, modality: str, load_options: dict) -> dict:
    """``Dataset.map`` function: read a batch of files and encode them.

    Returns ``features`` (float32 rows; an empty row for a photo without a face)
    and ``found`` (False for those)."""
    if modality == "voice":
        items = [voice_item(f, **load_options) for f in batch["file"]]
        found = [True] * len(items)
    else:
        read = [face_item(f, **load_options) for f in batch["file"]]
        found = [im is not None for im in read]
        items = np.stack([im for im in read if im is not None]) if any(found) else None
    feats = [] if items is None else np.asarray(encoder.encode(items, batch_size=len(items)), dtype=np.float32)
    rows, k = [], 0
    for ok in found:
        rows.append(feats[k] if ok else np.zeros(0, np.float32))
        k += ok
    return {"features": rows, "found": found}


def _write_atomic(path: Path, **arrays) -> None:
    """Write an .npz under a temporary name, then rename: a shard file is whole or absent."""
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, path)


def extract_features(
    dataset: datasets.Dataset,
    encoder,
    folder,
    *,
    modality: str,
    num_shards: int = 1,
    shard_indices: Sequence[int] | None = None,
    batch_size: int = 32,
    num_proc: int | None = None,
    load_options: dict | None = None,
    progress: bool = False,
) -> list[Path]:
    """Encode the shards of ``dataset`` not yet in ``folder`` (module docstring, step 2).

    Parameters
    ----------
    dataset : from :func:`media_dataset`
    encoder : a fitted vector :class:`vfmatch.features.Encoder` of ``modality``
        (it picks the GPU itself when one is present, :func:`vfmatch.config.default_device`)
    num_shards : K, how many pieces the dataset is cut into (the same K for every
        worker and for :func:`merge_shards`)
    shard_indices : which shards this process does (default: all); a cluster
        worker passes its own index
    batch_size : items per ``map`` batch (one encoder call)
    num_proc : worker processes for ``map`` (CPU); ``None`` or 1: this process
    load_options : ``max_seconds`` (voices, :func:`voice_item`) or ``image_size``
        and ``align`` (faces, :func:`face_item`)

    Returns the shard files this call wrote (those already there are skipped)."""
    if num_shards < 1:
        raise ValueError(f"num_shards must be at least 1, got {num_shards}")
    if num_shards > max(1, dataset.num_rows):
        raise ValueError(f"num_shards={num_shards} is more than the {dataset.num_rows} items to extract")
    indices = list(range(num_shards)) if shard_indices is None else [int(i) for i in shard_indices]
    bad = [i for i in indices if not 0 <= i < num_shards]
    if bad:
        raise ValueError(f"shard index {bad[0]} is outside 0..{num_shards - 1}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    todo = [i for i in indices if not shard_file(folder, i, num_shards).exists()]
    written = []
    bars_were_on = not datasets.utils.are_progress_bars_disabled()
    if not progress:
        datasets.disable_progress_bars()  # map's own bar; restored below
    try:
        for i in progress_bar(todo, progress and len(todo) > 1, f"{modality} shards", len(todo)):
            shard = dataset.shard(num_shards, i, contiguous=True)
            out = shard.map(
                _encode_batch, batched=True, batch_size=batch_size,
                num_proc=num_proc if num_proc and num_proc > 1 and shard.num_rows > 1 else None,
                fn_kwargs={"encoder": encoder, "modality": modality, "load_options": dict(load_options or {})},
                remove_columns=["file"],
                # Declared, so a first batch of faceless photos (empty rows) cannot fix another type.
                features=_MAP_FEATURES,
                # The fingerprint is our own key: datasets would otherwise hash the encoder's weights.
                new_fingerprint=f"{folder.name}-{i}-of-{num_shards}",
                load_from_cache_file=False, keep_in_memory=True,
                desc=f"{modality} shard {i + 1}/{num_shards}" if progress else None,
            )
            found = np.asarray(out["found"], dtype=bool)
            kept = out.select(np.flatnonzero(found))
            feats = np.asarray(kept.with_format("numpy")["features"], dtype=np.float32) if kept.num_rows else np.zeros((0, 0), np.float32)
            path = shard_file(folder, i, num_shards)
            # features: the found rows only; paths and found: every row of the shard, in order.
            _write_atomic(path, features=feats, paths=np.asarray(out["path"], dtype=str), found=found)
            written.append(path)
    finally:
        if bars_were_on:
            datasets.enable_progress_bars()
    return written


def _read_shard(folder, index: int, num_shards: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One shard: ``(features of the found rows, every path, found mask)``."""
    with np.load(shard_file(folder, index, num_shards), allow_pickle=False) as z:
        paths = z["paths"]
        found = z["found"] if "found" in z.files else np.ones(len(paths), bool)
        return z["features"], paths, found


def merge_shards(folder, num_shards: int) -> tuple[np.ndarray, np.ndarray]:
    """All ``num_shards`` shards of ``folder`` in order: ``(features (n, dim) float32, paths (n,) str)``.

    Items skipped at extraction (photos without a face, :func:`skipped_items`) are
    not among the ``n``. Also writes them to ``folder/features.npz``. A
    FileNotFoundError lists the shards still missing."""
    folder = Path(folder)
    missing = missing_shards(folder, num_shards)
    if missing:
        raise FileNotFoundError(f"{folder}: shard(s) {missing[:10]} of {num_shards} are not extracted yet; run them "
                                f"(--num-shards {num_shards} --shard-index I --extract-only) before --merge")
    feats, paths = [], []
    for i in range(num_shards):
        X, P, found = _read_shard(folder, i, num_shards)
        if found.any():  # a shard of faceless photos only has no feature width
            feats.append(X)
            paths.append(P[found])
    X = np.concatenate(feats) if feats else np.zeros((0, 0), np.float32)
    P = np.concatenate(paths) if paths else np.zeros(0, dtype=str)
    _write_atomic(folder / "features.npz", features=X, paths=P)
    return X, P


def skipped_items(folder, num_shards: int) -> list[str]:
    """Paths of the items extraction left out (photos with no face found), in dataset order."""
    out = []
    for i in range(num_shards):
        _X, P, found = _read_shard(folder, i, num_shards)
        out += P[~found].tolist()
    return out


def default_num_shards(n_items: int, shard_size: int = 2000) -> int:
    """Shards of about ``shard_size`` items: small enough that an interruption loses little."""
    return max(1, math.ceil(n_items / shard_size))
