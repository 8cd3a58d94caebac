"""The embedded default population: traits, voice synthesis, face rendering.

Book chapter 01. Builds on :mod:`vfmatch.data` (the Population model) only."""

import importlib

from .traits import *  # noqa: F401,F403
from .voices import *  # noqa: F401,F403
from .faces import *  # noqa: F401,F403

# every public name of the stage's modules, for `from vfmatch.simulator import ...`
__all__ = [n for m in ('traits', 'voices', 'faces') for n in importlib.import_module(f".{m}", __name__).__all__]
