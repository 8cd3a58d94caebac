"""Stage 2 — front-ends and encoders: audio and image features, the encoder registry, Hub/timm loading.

Book chapters 02 and 03."""

import importlib

from .audio import *  # noqa: F401,F403
from .encoders import *  # noqa: F401,F403
from .cache import *  # noqa: F401,F403

# every public name of the stage's modules, for `from vfmatch.features import ...`
__all__ = [n for m in ('audio', 'encoders', 'cache') for n in importlib.import_module(f".{m}", __name__).__all__]
