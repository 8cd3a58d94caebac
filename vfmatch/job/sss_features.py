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

Audio is read with soundfile, down-mixed to mono and resampled to 16 kHz
(:func:`vfmatch.data.preprocess.resample`), and cut to ``max_seconds``;
images are converted to RGB and resized to ``image_size`` squares (VGGFace
photos are loose crops around one face; no detection is run here).
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

from ..data.population import SAMPLE_RATE
from ..data.preprocess import resample
from ..utils import progress as progress_bar

__all__ = [
    "media_dataset",
    "feature_folder",
    "shard_file",
    "missing_shards",
    "extract_features",
    "merge_shards",
    "load_audio_file",
    "load_image_file",
    "default_num_shards",
]

log = logging.getLogger(__name__)


def load_audio_file(file, *, max_seconds: float | None = 10.0) -> np.ndarray:
    """A clip as 16 kHz mono float32 (n_samples,), at most ``max_seconds`` long.

    Any rate and channel count soundfile reads: channels are averaged, the rate
    converted (both are logged once per file at DEBUG level; VoxCeleb1 is
    16 kHz mono already). Raises ValueError naming the file if it cannot be read."""
    import soundfile as sf  # deferred: only the recipe reads audio files

    try:
        wave, sr = sf.read(str(file), dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001 - every decoding failure is "bad file"
        raise ValueError(f"{file}: cannot read this audio file ({type(exc).__name__}: {exc})") from None
    if wave.shape[0] == 0:
        raise ValueError(f"{file}: the audio file holds no samples")
    if wave.shape[1] > 1:
        log.debug("%s: %d channels averaged to mono", file, wave.shape[1])
    wave = wave.mean(axis=1)
    if sr != SAMPLE_RATE:
        log.debug("%s: resampled from %d Hz to %d Hz", file, sr, SAMPLE_RATE)
        wave = resample(wave, sr, SAMPLE_RATE)
    if max_seconds is not None:
        wave = wave[: int(max_seconds * SAMPLE_RATE)]
    return np.ascontiguousarray(wave, dtype=np.float32)


def load_image_file(file, *, image_size: int = 128) -> np.ndarray:
    """A photo as uint8 RGB (image_size, image_size, 3); ValueError naming an unreadable file."""
    from PIL import Image  # deferred: only the recipe reads image files

    try:
        with Image.open(file) as im:
            rgb = im.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
    except Exception as exc:  # noqa: BLE001 - every decoding failure is "bad file"
        raise ValueError(f"{file}: cannot read this image ({type(exc).__name__}: {exc})") from None
    return np.asarray(rgb, dtype=np.uint8)


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
    """``Dataset.map`` function: read a batch of files and encode them (float32 rows)."""
    if modality == "voice":
        items = [load_audio_file(f, **load_options) for f in batch["file"]]
    else:
        items = np.stack([load_image_file(f, **load_options) for f in batch["file"]])
    feats = np.asarray(encoder.encode(items, batch_size=len(batch["file"])), dtype=np.float32)
    return {"features": list(feats)}


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
    load_options : ``max_seconds`` (voices) or ``image_size`` (faces)

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
                # The fingerprint is our own key: datasets would otherwise hash the encoder's weights.
                new_fingerprint=f"{folder.name}-{i}-of-{num_shards}",
                load_from_cache_file=False, keep_in_memory=True,
                desc=f"{modality} shard {i + 1}/{num_shards}" if progress else None,
            )
            feats = np.asarray(out.with_format("numpy")["features"], dtype=np.float32)
            path = shard_file(folder, i, num_shards)
            _write_atomic(path, features=feats, paths=np.asarray(out["path"], dtype=str))
            written.append(path)
    finally:
        if bars_were_on:
            datasets.enable_progress_bars()
    return written


def merge_shards(folder, num_shards: int) -> tuple[np.ndarray, np.ndarray]:
    """All ``num_shards`` shards of ``folder`` in order: ``(features (n, dim) float32, paths (n,) str)``.

    Also writes them to ``folder/features.npz``. A FileNotFoundError lists the
    shards still missing."""
    folder = Path(folder)
    missing = missing_shards(folder, num_shards)
    if missing:
        raise FileNotFoundError(f"{folder}: shard(s) {missing[:10]} of {num_shards} are not extracted yet; run them "
                                f"(--num-shards {num_shards} --shard-index I --extract-only) before --merge")
    feats, paths = [], []
    for i in range(num_shards):
        with np.load(shard_file(folder, i, num_shards), allow_pickle=False) as z:
            feats.append(z["features"])
            paths.append(z["paths"])
    X, P = np.concatenate(feats), np.concatenate(paths)
    _write_atomic(folder / "features.npz", features=X, paths=P)
    return X, P


def default_num_shards(n_items: int, shard_size: int = 2000) -> int:
    """Shards of about ``shard_size`` items: small enough that an interruption loses little."""
    return max(1, math.ceil(n_items / shard_size))
