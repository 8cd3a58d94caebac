"""Stage 1 — people and their media: the Population model, labelled pairs, reading and writing folders and lists, preprocessing, faces in real photos.

Book chapter 01. Nothing here imports a later stage."""

import importlib

from .population import *  # noqa: F401,F403
from .pairs import *  # noqa: F401,F403
from .preprocess import *  # noqa: F401,F403
from .io import *  # noqa: F401,F403
from .faces import *  # noqa: F401,F403

# every public name of the stage's modules, for `from vfmatch.data import ...`
__all__ = [n for m in ('population', 'pairs', 'preprocess', 'io', 'faces') for n in importlib.import_module(f".{m}", __name__).__all__]
