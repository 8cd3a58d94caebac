"""What the book and `vfmatch run` share: preparing a population's tables, the run, the report."""

import importlib

from .report import *  # noqa: F401,F403
from .run import *  # noqa: F401,F403

# every public name of the stage's modules, for `from vfmatch.job import ...`
__all__ = [n for m in ('report', 'run') for n in importlib.import_module(f".{m}", __name__).__all__]
