"""Stage 5 — metrics (the only ROC / EER / AP code), identification and percentile recall, protocols and list files, robustness.

Book chapters 08 and 09."""

import importlib

from .metrics import *  # noqa: F401,F403
from .protocols import *  # noqa: F401,F403
from .robustness import *  # noqa: F401,F403

# every public name of the stage's modules, for `from vfmatch.evaluation import ...`
__all__ = [n for m in ('metrics', 'protocols', 'robustness') for n in importlib.import_module(f".{m}", __name__).__all__]
