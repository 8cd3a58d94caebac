"""Stage 7 — rebuilding a speaker's face from the best-matching faces (patent claims 6 and 12):
selection, the aligned average and morphing (reconstruct), evaluation as Speech2Face did (evaluate),
the `vfmatch fuse` command (command). Book: ``book/12_rebuilding_faces.ipynb``."""

import importlib

from .reconstruct import *  # noqa: F401,F403
from .evaluate import *  # noqa: F401,F403

# command.py (the `vfmatch fuse` command) is imported by the CLI only: its
# add_arguments / main are not part of the stage's API.

# every public name of the stage's modules, for `from vfmatch.fusion import ...`
__all__ = [n for m in ('reconstruct', 'evaluate') for n in importlib.import_module(f".{m}", __name__).__all__]
