"""Stage 4 — matching: distances per metaproperty, the weighted matcher, its
threshold and explanations, easy/medium/hard difficulty.

Modules, in the order data flows through them:

* ``tables``      metaproperty tables and labelled pairs (oracle and noisy tables)
* ``distances``   one distance per metaproperty (registry: ``register_distance``)
* ``classifiers`` the matcher's binary classifiers (registry: ``register_classifier``)
* ``threshold``   the decision threshold at the evaluation's EER (or a target FMR)
* ``explain``     per-metaproperty explanations of a decision
* ``persist``     a fitted matcher as ``matcher.json``
* ``matcher``     :class:`MetapropertyMatcher`, the patent's method
* ``difficulty``  easy / medium / uncertain / hard pairs and retraining

Book chapters 05 (distances, weights), 06 (difficulty) and 07 (matching and retrieval).
"""

import importlib

from .tables import *  # noqa: F401,F403
from .distances import *  # noqa: F401,F403
from .classifiers import *  # noqa: F401,F403
from .threshold import *  # noqa: F401,F403
from .explain import *  # noqa: F401,F403
from .persist import *  # noqa: F401,F403
from .matcher import *  # noqa: F401,F403
from .difficulty import *  # noqa: F401,F403
from .calibration import *  # noqa: F401,F403

_MODULES = ("tables", "distances", "classifiers", "threshold", "explain", "persist", "matcher", "difficulty", "calibration")
# every public name of the stage's modules, for `from vfmatch.matching import ...`
__all__ = [n for m in _MODULES for n in importlib.import_module(f".{m}", __name__).__all__]
