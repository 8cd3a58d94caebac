"""The ``vfmatch`` command line.

Subcommands (each lives beside the code it runs; this file only wires them)::

    vfmatch population --identities N --seed S --out DIR   # simulate and export
    vfmatch run [--identities N] [--subset gender=female] ...  # the main job
    vfmatch sss --voxceleb DIR --vggface DIR --out REPORT   # VoxCeleb1 + VGGFace on the SSS lists
    vfmatch fuse --models REPORT/models --voice V.wav --faces DIR --out F.png  # rebuild a face
    vfmatch match --models REPORT/models V.wav F.png            # one voice, one face
    vfmatch rank --models REPORT/models --voice V.wav --faces DIR  # (or --face F.png --voices DIR)
    vfmatch compare --models REPORT/models V.wav A.png B.png    # P(A rather than B)
    vfmatch robustness --models REPORT/models --out DIR   # the trained models under noise and codecs

``vfmatch <subcommand> --help`` lists every option.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__

# subcommand -> (module, one-line help). Each module defines
# ``add_arguments(parser)`` and ``main(args) -> int``.
SUBCOMMANDS = {
    "population": ("vfmatch.job.population_command", "simulate a population and write it as WAV/PNG files with metadata.csv"),
    "run": ("vfmatch.job.run", "the main job: train extractors and the matcher, evaluate, write a report"),
    "sss": ("vfmatch.job.sss_command", "the VoxCeleb1 + VGGFace recipe: extract features (sharded), train, score on the published SSS lists"),
    "fuse": ("vfmatch.fusion.command", "rebuild a speaker's face: fuse the faces of a folder that best match a voice"),
    "match": ("vfmatch.job.match_command", "does this voice file belong to this face photo? level, decision, probability, why"),
    "rank": ("vfmatch.job.rank_command", "sort a folder of faces by a voice file, or a folder of voices by a face photo"),
    "compare": ("vfmatch.job.compare_command", "is this voice more likely face A's or face B's? P(A rather than B)"),
    "robustness": ("vfmatch.job.robustness_command",
                   "score a run's trained models on its test voices under noise and telephone codecs"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vfmatch", description="Voice-face matching through metaproperties.")
    parser.add_argument("--version", action="version", version=f"vfmatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(importlib.import_module(args._module).main(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        # Bad input: a clear message, no traceback.
        print(f"vfmatch {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
