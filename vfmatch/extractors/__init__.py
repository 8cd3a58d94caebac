"""Stage 3 — metaproperty extractors: calculators, the ViT, the extractor and the set, presets, quality.

Book chapter 04."""

import importlib

from .extractor import *  # noqa: F401,F403
from .quality import *  # noqa: F401,F403

# every public name of the stage's modules, for `from vfmatch.extractors import ...`
__all__ = [n for m in ('extractor', 'quality') for n in importlib.import_module(f".{m}", __name__).__all__]
