"""Rebuilding a speaker's face from the best-matching faces (patent claims 6 and 12)."""

import importlib

from .reconstruct import *  # noqa: F401,F403

# every public name of the stage's modules, for `from vfmatch.fusion import ...`
__all__ = [n for m in ('reconstruct',) for n in importlib.import_module(f".{m}", __name__).__all__]
