"""Stage 2 -- the embedded default population: traits, voice synthesis, face rendering.

Modules: ``traits`` (the trait tables and :func:`draw_identities`), ``voices``
(source-filter speech synthesis), ``faces`` (procedural face rendering) and
``population`` (:func:`make_population`: all three, packed and cached).

Book chapter 01. Builds on :mod:`vfmatch.data` (the Population model) only."""

import importlib

from .traits import *  # noqa: F401,F403
from .voices import *  # noqa: F401,F403
from .faces import *  # noqa: F401,F403
from .population import *  # noqa: F401,F403
from .bayes import *  # noqa: F401,F403

_MODULES = ("traits", "voices", "faces", "population", "bayes")
# every public name of the stage's modules, for `from vfmatch.simulator import ...`
__all__ = [n for m in _MODULES for n in importlib.import_module(f".{m}", __name__).__all__]
