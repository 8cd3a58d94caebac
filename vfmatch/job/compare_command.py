"""The ``vfmatch compare`` command: is this voice more likely A's or B's? (patent claim 7)

::

    vfmatch compare --models vfmatch_report/models voice.wav face_a.png face_b.png [--json]

Prints both levels of match and probabilities, the odds ratio and
P(A rather than B): the probability that the voice is A's given that it is
exactly one of the two (:meth:`vfmatch.matching.matcher.MetapropertyMatcher.compare`).
The files are only read.

Book chapter: ``book/13_your_own_files.ipynb``.
"""

from __future__ import annotations

import argparse
import json

from ..utils import to_jsonable
from .files import add_common_arguments, face_table, load_models, read_faces, read_voices, show_notes, voice_table, warn_if_real

__all__ = ["add_arguments", "main", "compare_files", "format_compare"]


def compare_files(models_folder, voice, face_a, face_b, *, trim: bool = False, loudness: float | None = None) -> dict:
    """Compare two faces for one voice; the result of ``MetapropertyMatcher.compare``
    with the file names, the notes and ``trained_on_simulator``."""
    models = load_models(models_folder)
    voices, faces = read_voices([voice], trim=trim, loudness=loudness), read_faces([face_a, face_b])
    warn_if_real(models, [voice, face_a, face_b])
    out = models.matcher.compare(voice_table(models, voices), face_table(models, faces), 0, 0, 1)
    out.update(voice=str(voice), face_a=str(face_a), face_b=str(face_b), notes=voices[0].notes + faces[0].notes + faces[1].notes,
               trained_on_simulator=models.trained_on_simulator)
    out.pop("voice_index")
    return to_jsonable(out)


def format_compare(r: dict) -> str:
    """The result of :func:`compare_files` as a few lines."""
    return "\n".join([
        f"voice {r['voice']}",
        f"  A {r['face_a']}: level of match {r['level_a']:+.3f}, classifier probability {r['probability_a']:.3f}",
        f"  B {r['face_b']}: level of match {r['level_b']:+.3f}, classifier probability {r['probability_b']:.3f}",
        f"odds ratio A:B {r['odds_ratio']:.3g}; P(A rather than B) = {r['p_a_rather_than_b']:.3f} "
        "(if the voice is one of the two)",
    ])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``vfmatch compare`` options."""
    add_common_arguments(parser)
    parser.add_argument("voice", help="the voice: an audio file (any format the audio backend reads)")
    parser.add_argument("face_a", help="candidate A: an image file")
    parser.add_argument("face_b", help="candidate B: an image file")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def main(args: argparse.Namespace) -> int:
    with show_notes("compare", quiet=args.quiet or args.json):
        result = compare_files(args.models, args.voice, args.face_a, args.face_b, trim=args.trim, loudness=args.loudness)
    print(json.dumps(result, indent=2) if args.json else format_compare(result))
    return 0
