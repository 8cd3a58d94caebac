"""The ``vfmatch match`` command: does this voice belong to this face? (patent claim 1)

::

    vfmatch match --models vfmatch_report/models voice.wav face.png [--json]

Reads one voice file and one face photo (:mod:`vfmatch.job.files`: any rate,
channel count and image mode, each conversion noted), and prints the level of
match, the decision at the matcher's threshold, the classifier's probability
of "same person" and, per metaproperty, what the voice and the face each
suggest, their distance, its weight and its contribution to the level
(:meth:`vfmatch.matching.matcher.MetapropertyMatcher.explain`). ``--json``
prints the same as one JSON object. The files are only read.

Book chapter: ``book/13_your_own_files.ipynb``.
"""

from __future__ import annotations

import argparse
import json

import pandas as pd

from ..utils import to_jsonable
from .files import add_common_arguments, face_table, load_models, read_faces, read_voices, show_notes, voice_table, warn_if_real

__all__ = ["add_arguments", "main", "match_files", "format_match"]

_COLUMNS = {"metaproperty": "metaproperty", "voice_top": "voice says", "face_top": "face says",
            "distance_function": "distance function", "distance": "distance", "weight": "weight", "contribution": "contribution"}


def match_files(models_folder, voice, face, *, trim: bool = False, loudness: float | None = None) -> dict:
    """Match one voice file against one face file; the result as a dict.

    Keys: ``voice``, ``face``, ``level_of_match``, ``threshold``, ``decision``
    (``"match"`` / ``"no match"``), ``probability`` (the classifier's P(same),
    balanced prior), ``explanation`` (one dict per metaproperty: the columns of
    :class:`vfmatch.matching.explain.MatchExplanation`'s table), ``notes``
    (conversions) and ``trained_on_simulator``."""
    models = load_models(models_folder)
    voices, faces = read_voices([voice], trim=trim, loudness=loudness), read_faces([face])
    warn_if_real(models, [voice, face])
    ex = models.matcher.explain(voice_table(models, voices), face_table(models, faces), 0, 0)
    table = ex.table.sort_values("contribution", key=abs, ascending=False)
    return to_jsonable({
        "voice": str(voice), "face": str(face),
        "level_of_match": ex.level, "threshold": ex.threshold,
        "decision": "match" if ex.decision else "no match", "probability": ex.probability,
        "contributions": "weighted sum" if ex.method == "weighted_sum" else "Shapley values of the ensemble",
        "explanation": table.to_dict(orient="records"),
        "notes": voices[0].notes + faces[0].notes,
        "trained_on_simulator": models.trained_on_simulator,
    })


def format_match(result: dict) -> str:
    """The result of :func:`match_files` as a few lines and a table."""
    lines = [f"voice {result['voice']}", f"face  {result['face']}",
             f"level of match {result['level_of_match']:+.3f} (threshold {result['threshold']:+.3f}) -> "
             f"{result['decision'].upper()}, classifier probability {result['probability']:.3f}", ""]
    table = pd.DataFrame(result["explanation"])[list(_COLUMNS)].rename(columns=_COLUMNS)
    lines.append(table.to_string(index=False, float_format=lambda v: f"{v:+.3f}"))
    lines.append(f"(contributions: {result['contributions']}; they add up to the level of match)")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``vfmatch match`` options."""
    add_common_arguments(parser)
    parser.add_argument("voice", help="the voice: an audio file (WAV, FLAC, MP3, OGG, ...; any rate, any channels)")
    parser.add_argument("face", help="the face: an image file (JPEG, PNG, ...; any mode)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


def main(args: argparse.Namespace) -> int:
    with show_notes("match", quiet=args.quiet or args.json):
        result = match_files(args.models, args.voice, args.face, trim=args.trim, loudness=args.loudness)
    print(json.dumps(result, indent=2) if args.json else format_match(result))
    return 0
