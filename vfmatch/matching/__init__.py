"""Stage 4 — distances per metaproperty, the weighted matcher, easy/medium/hard difficulty.

Book chapters 05-07."""

import importlib

from .distances import *  # noqa: F401,F403
from .matcher import *  # noqa: F401,F403
from .difficulty import *  # noqa: F401,F403

# every public name of the stage's modules, for `from vfmatch.matching import ...`
__all__ = [n for m in ('distances', 'matcher', 'difficulty') for n in importlib.import_module(f".{m}", __name__).__all__]
