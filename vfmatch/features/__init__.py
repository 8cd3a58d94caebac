"""Stage 2 — front-ends and encoders: from a clip or a face image to a representation.

* ``audio`` and ``images``: the front-ends (checked inputs, log-Mel spectrograms,
  pitch and formants; aligned faces, CIELAB colour, skin patches);
* ``encoders``: the :class:`Encoder` base class and the registry
  (``register_encoder``, ``create_encoder``, ``list_encoders``), concatenation;
  which code an encoder's features depend on is :mod:`vfmatch.fingerprints`;
* ``voice``, ``face``: the encoders of each modality, ``training`` the one trainer
  of their identity CNNs; ``hub``: pretrained transformers and timm backbones;
* ``cache``: every encoder's features of a population, computed once.

Book chapters 02 (voice encoders) and 03 (face encoders).
"""

import importlib

from .audio import *  # noqa: F401,F403
from .images import *  # noqa: F401,F403
from .encoders import *  # noqa: F401,F403
from .training import *  # noqa: F401,F403
from .voice import *  # noqa: F401,F403
from .face import *  # noqa: F401,F403
from .hub import *  # noqa: F401,F403
from .cache import *  # noqa: F401,F403

_MODULES = ("audio", "images", "encoders", "training", "voice", "face", "hub", "cache")

# every public name of the stage's modules, for `from vfmatch.features import ...`
__all__ = [n for m in _MODULES for n in importlib.import_module(f".{m}", __name__).__all__]
