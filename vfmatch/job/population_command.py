"""The ``vfmatch population`` command: simulate a population and write it as files.

``vfmatch population --identities 40 --seed 7 --out my_population`` runs
:func:`vfmatch.simulator.make_population` and then
:func:`vfmatch.data.export_population`; the folder layout is described in
:mod:`vfmatch.data.layout`. The same arguments give byte-identical files.

It lives in ``job/`` because it joins two stages: the simulator (stage 2)
and the exporter of stage 1, which must not import the simulator.

Book chapter: ``book/01_population.ipynb``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..data.export import export_population
from ..simulator import DEFAULT_N_IDENTITIES, make_population

# Reached through vfmatch.cli (SUBCOMMANDS), not re-exported: vfmatch.job.run has its own main.
__all__: list[str] = []


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``vfmatch population``."""
    parser.add_argument("--identities", type=int, default=DEFAULT_N_IDENTITIES, help="number of people (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives identical files (default %(default)s)")
    parser.add_argument("--out", required=True, help="output folder (must be empty unless --overwrite)")
    parser.add_argument("--clips", type=int, default=4, help="voice clips per person (default %(default)s)")
    parser.add_argument("--faces", type=int, default=4, help="face images per person (default %(default)s)")
    parser.add_argument("--concordance", type=float, default=0.3, help="identity signal shared by voice and face beyond the metaproperties, 0-1 (default %(default)s)")
    parser.add_argument("--image-size", type=int, default=112, help="face image side in pixels (default %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace a population exported to --out before")


def main(args: argparse.Namespace) -> int:
    """Simulate a population and export it (``vfmatch population``)."""
    out = Path(args.out)
    if out.exists() and out.is_dir() and any(out.iterdir()) and not args.overwrite:
        # Check before simulating, which can take a while.
        raise ValueError(f"{out}: folder is not empty; choose an empty folder or pass --overwrite")
    population = make_population(
        args.identities,
        seed=args.seed,
        clips_per_identity=args.clips,
        faces_per_identity=args.faces,
        concordance=args.concordance,
        image_size=args.image_size,
        progress=True,
    )
    export_population(population, out, overwrite=args.overwrite, progress=True)
    print(f"wrote {len(population)} identities, {population.voices.num_rows} clips and {population.faces.num_rows} faces to {out}")
    return 0
