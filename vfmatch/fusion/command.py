"""The ``vfmatch fuse`` command: rebuild a face from a voice file and a folder of faces.

::

    vfmatch fuse --models vfmatch_report/models --voice someone.wav --faces photos/ --out fused.png --top-n 5

1. loads the extractors and the matcher that ``vfmatch run`` saved under
   ``REPORT/models`` (``extractors/`` and ``matcher/``);
2. reads the voice (any format soundfile reads; mixed down to mono and
   resampled to 16 kHz by the front-end of :mod:`vfmatch.data.media`);
3. reads every image under ``--faces`` (sub-folders included). When the folder
   has a ``metadata.csv`` with the landmark columns that ``vfmatch population``
   exports (``file_name``, ``lm_x0`` ... ``lm_y4``), its landmarks are used;
   otherwise each photo's face is found and its 68 landmarks read
   (:func:`vfmatch.data.faces.align_photo`; the largest face of a photo with
   several);
4. scores the voice against every face (the matcher's level of match),
   selects faces by ``--top-n``, ``--top-percent`` or ``--threshold`` (the
   patent's three rules) and fuses them (:func:`vfmatch.fusion.reconstruct_face`);
5. writes the fused face to ``--out`` and, beside it, ``<out>.json``: the
   settings, and every face with its level of match, rank and weight in the
   fusion (0 if not selected).

Nothing in the ``--faces`` folder or the models folder is changed; ``--out``
may not lie inside the ``--faces`` folder, and an existing ``--out`` is only
replaced with ``--overwrite``.

Book: chapter 12, ``book/12_rebuilding_faces.ipynb``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.media import landmarks_table, load_face, load_voice
from ..data.population import SAMPLE_RATE
from ..extractors import ExtractorSet
from ..matching.matcher import MetapropertyMatcher
from .reconstruct import FUSION_METHODS, reconstruct_face

__all__ = ["add_arguments", "main", "read_voice", "read_face_folder", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
# The faces are put on one canvas before extraction and fusion: wide enough (zoom 0.6)
# that the extractors' own crops (zoom 0.8 and 1) and the fusion's lie inside it.
CANVAS_SIZE, CANVAS_ZOOM = 224, 0.6
FUSED_ZOOM = 0.8  # the fused face shows a little hair and jaw around the ArcFace crop


def read_voice(path: str | Path) -> np.ndarray:
    """A voice file as 16 kHz mono float32 samples, through the one front-end
    (:func:`vfmatch.data.media.load_voice`); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--voice {path}: no such file")
    try:
        return load_voice(path).wave
    except ValueError as err:
        raise ValueError(f"--voice {err}") from None


def read_face_folder(folder: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Every face image under ``folder`` on a common canvas (:func:`vfmatch.data.media.load_face`).

    Returns images uint8 (n, CANVAS_SIZE, CANVAS_SIZE, 3), landmarks (n, K, 2)
    on that canvas (K = 5 from ``metadata.csv``, else 70: the five and dlib's
    65 other points, for morphing) and the file names relative to ``folder``.
    Raises naming the folder when it holds no image, or the file that fails."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"--faces {folder}: no such folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"--faces {folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) in it or its sub-folders")
    known = landmarks_table(folder)
    names = [p.relative_to(folder).as_posix() for p in files]
    # Listed landmarks for all, or the detector for all: one kind of landmarks (5 or 70 points) per stack.
    use_known = bool(known) and all(n in known for n in names)
    faces = [load_face(path, landmarks=known[name] if use_known else None, detect=not use_known,
                       size=CANVAS_SIZE, zoom=CANVAS_ZOOM) for path, name in zip(files, names)]
    return np.stack([f.image for f in faces]), np.stack([f.points for f in faces]), names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``vfmatch fuse`` options."""
    parser.add_argument("--models", required=True, help="the models folder that `vfmatch run` wrote (REPORT/models)")
    parser.add_argument("--voice", required=True, help="the voice: an audio file (WAV, FLAC, OGG, ...)")
    parser.add_argument("--faces", required=True, help="a folder of face images (photos, or a `vfmatch population` faces/ folder)")
    parser.add_argument("--out", required=True, help="the fused face to write (.png or .jpg); <out>.json lists the faces used")
    rule = parser.add_mutually_exclusive_group()
    rule.add_argument("--top-n", dest="top_n", type=int, default=None, help="fuse the N best-matching faces (default 5)")
    rule.add_argument("--top-percent", dest="top_percent", type=float, default=None, help="fuse the best P percent of the faces")
    rule.add_argument("--threshold", nargs="?", type=float, const=float("nan"), default=None,
                      help="fuse every face whose level of match is above T (no value: the matcher's own decision threshold)")
    parser.add_argument("--weighted", action="store_true", help="weight faces by their level of match (default: uniform)")
    parser.add_argument("--method", default="morph", choices=list(FUSION_METHODS),
                        help="morph (warp onto the mean shape, then average; default) or align (similarity-aligned average)")
    parser.add_argument("--size", type=int, default=224, help="side of the fused face in pixels (default 224)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def _check_paths(args) -> tuple[Path, Path, Path]:
    models, faces, out = Path(args.models), Path(args.faces), Path(args.out)
    for sub in ("extractors", "matcher"):
        if not (models / sub).is_dir():
            raise FileNotFoundError(f"--models {models}: no {sub}/ folder; pass the models/ folder that `vfmatch run` wrote")
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise ValueError(f"--out {out}: must end in .png or .jpg")
    if faces.is_dir() and out.resolve().is_relative_to(faces.resolve()):
        raise ValueError(f"--out {out}: lies inside the --faces folder {faces}, which is never written to; choose another place")
    for path in (out, out.with_suffix(".json")):
        if path.exists() and not args.overwrite:
            raise ValueError(f"--out: {path} exists; pass --overwrite to replace it")
    if args.size < 32:
        raise ValueError(f"--size must be at least 32 pixels, got {args.size}")
    return models, faces, out


def main(args: argparse.Namespace) -> int:
    models, faces, out = _check_paths(args)
    wave = read_voice(args.voice)
    images, landmarks, names = read_face_folder(faces)
    rule = {"top_n": min(5, len(names))}
    if args.top_percent is not None:
        rule = {"top_percent": float(args.top_percent)}
    elif args.threshold is not None:
        rule = {"threshold": None if np.isnan(args.threshold) else float(args.threshold)}
    elif args.top_n is not None:
        if not 1 <= args.top_n <= len(names):
            raise ValueError(f"--top-n {args.top_n}: the --faces folder {faces} has {len(names)} faces; choose 1 to {len(names)}")
        rule = {"top_n": int(args.top_n)}
    if "top_percent" in rule and not 0 < rule["top_percent"] <= 100:
        raise ValueError(f"--top-percent must be in (0, 100], got {rule['top_percent']}")

    extractors = ExtractorSet.load(models / "extractors", progress=False)
    matcher = MetapropertyMatcher.load(models / "matcher")
    if rule.get("threshold", 0.0) is None:
        rule["threshold"] = float(matcher.threshold_)
    voice_table = extractors.predict_voices([wave], sample_rate=SAMPLE_RATE)
    face_table = extractors.predict_faces(images, landmarks=landmarks[:, :5].astype(np.float32))
    level = matcher.similarity_matrix(voice_table, face_table)[0]
    try:
        fused = reconstruct_face(level, images, landmarks, **rule, weighted=args.weighted, method=args.method,
                                 size=args.size, zoom=FUSED_ZOOM)
    except ValueError as err:
        if "threshold" in rule:
            raise ValueError(f"--threshold {rule['threshold']:g}: {err} (best level of match {level.max():.3f})") from None
        raise

    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(fused.image).save(out)
    weight = np.zeros(len(names))
    weight[fused.selected] = fused.weights
    order = np.argsort(-level, kind="stable")
    rank = np.empty(len(names), dtype=int)
    rank[order] = np.arange(1, len(names) + 1)
    doc = {
        "voice": str(args.voice), "faces_folder": str(faces), "models": str(models), "fused_face": str(out),
        "rule": rule, "weighted": bool(args.weighted), "method": args.method, "size": int(args.size), "zoom": FUSED_ZOOM,
        "level_of_match": "the matcher's weighted sum of standardised metaproperty distances; higher = more alike",
        "faces": [{"file": names[i], "level_of_match": float(level[i]), "rank": int(rank[i]), "weight": float(weight[i]),
                   "used": bool(weight[i] > 0)} for i in order],
    }
    out.with_suffix(".json").write_text(json.dumps(doc, indent=2))
    print(f"vfmatch fuse: fused {len(fused.selected)} of {len(names)} faces ({args.method}) into {out}; list in {out.with_suffix('.json')}")
    return 0
