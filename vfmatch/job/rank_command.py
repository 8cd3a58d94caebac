"""The ``vfmatch rank`` command: sort a folder of faces by a voice, or of voices by a face
(the patent's database sorting, FIG. 4 and 5).

::

    vfmatch rank --models vfmatch_report/models --voice voice.wav --faces photos/ [--csv ranked.csv] [--top 10]
    vfmatch rank --models vfmatch_report/models --face face.png --voices recordings/

Every file under the folder (sub-folders included) is read through the
front-end (:mod:`vfmatch.job.files`) and scored against the one voice or face;
the ranked list -- rank, file (relative to the folder), level of match,
decision and the classifier's probability -- is printed as a table, or
written to ``--csv``. The input files are only read; ``--csv`` may not lie
inside the folder ranked.

Book chapter: ``book/13_your_own_files.ipynb``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from .files import (add_common_arguments, face_table, folder_files, load_models, read_faces, read_voices, show_notes,
                    voice_table, warn_if_real, write_csv)

__all__ = ["add_arguments", "main", "rank_files"]


def rank_files(models_folder, *, voice=None, faces=None, face=None, voices=None, top: int | None = None,
               trim: bool = False, loudness: float | None = None) -> pd.DataFrame:
    """Rank the files of a folder: ``voice`` + ``faces`` (a folder) sorts the
    faces by the voice; ``face`` + ``voices`` sorts the voices by the face.

    Returns a frame sorted by decreasing level of match: ``rank`` (1 = best),
    ``file`` (relative to the folder), ``level``, ``match`` (level >= the
    matcher's threshold) and ``probability`` (the classifier's P(same)).
    ``attrs["anchor"]`` is the voice or face file."""
    if (voice is None) == (face is None) or (voice is None) != (voices is not None) or (faces is None) != (voices is not None):
        raise ValueError("rank: give --voice VOICE --faces FOLDER, or --face FACE --voices FOLDER")
    models = load_models(models_folder)
    if voice is not None:
        folder, files = Path(faces), folder_files(faces, "image", "--faces")
        vt, ft = voice_table(models, read_voices([voice], trim=trim, loudness=loudness)), face_table(models, read_faces(files))
        warn_if_real(models, [voice, *files])
        df = models.matcher.rank_faces(vt, ft, 0, top_k=top).rename(columns={"face_index": "row"})
    else:
        folder, files = Path(voices), folder_files(voices, "audio", "--voices")
        vt, ft = voice_table(models, read_voices(files, trim=trim, loudness=loudness)), face_table(models, read_faces([face]))
        warn_if_real(models, [face, *files])
        df = models.matcher.rank_voices(vt, ft, 0, top_k=top).rename(columns={"voice_index": "row"})
    df.insert(1, "file", [files[i].relative_to(folder).as_posix() for i in df["row"]])
    df = df.drop(columns="row")
    df.attrs["anchor"] = str(voice if voice is not None else face)
    return df


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``vfmatch rank`` options."""
    add_common_arguments(parser)
    parser.add_argument("--voice", default=None, help="sort the faces of --faces by this voice file")
    parser.add_argument("--faces", default=None, help="a folder of face images")
    parser.add_argument("--face", default=None, help="sort the recordings of --voices by this face image")
    parser.add_argument("--voices", default=None, help="a folder of voice recordings")
    parser.add_argument("--top", type=int, default=None, help="list only the best N")
    parser.add_argument("--csv", default=None, metavar="FILE", help="write the ranked list to FILE (.csv) instead of printing it")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --csv file")


def main(args: argparse.Namespace) -> int:
    if args.top is not None and args.top < 1:
        raise ValueError(f"--top must be at least 1, got {args.top}")
    with show_notes("rank", quiet=args.quiet):
        df = rank_files(args.models, voice=args.voice, faces=args.faces, face=args.face, voices=args.voices,
                        top=args.top, trim=args.trim, loudness=args.loudness)
    if args.csv:
        inputs = [p for p in (args.voice, args.faces, args.face, args.voices, args.models) if p is not None]
        path = write_csv(df, args.csv, inputs, args.overwrite)
        print(f"vfmatch rank: {len(df)} ranked files written to {path}")
    else:
        print(f"ranked by {df.attrs['anchor']} (level of match: higher = more alike; match = at or above the threshold)")
        print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0
