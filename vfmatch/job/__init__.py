"""The job: what the book and ``vfmatch run`` share, the run, the report.

* ``prepare``  stages 1-3 (population, split by role, extracted tables and their
  cache) and the matcher as the job makes it: what chapters 05-07 and the
  widgets import
* ``report``   figures (HTML + PNG) and the report folder
* ``bounds``   the Bayes bound and the gap decomposition, calibrated match
  probabilities, ablations: the bounds stage of the run and chapter 05
* ``run``      the ``vfmatch run`` command: the whole job and its report

Book chapters 05-07 start from :func:`vfmatch.job.prepare.prepare`.
"""

import importlib

from .prepare import *  # noqa: F401,F403
from .report import *  # noqa: F401,F403
from .bounds import *  # noqa: F401,F403
from .run import *  # noqa: F401,F403

# every public name of the stage's modules, for `from vfmatch.job import ...`
__all__ = [n for m in ("prepare", "report", "bounds", "run") for n in importlib.import_module(f".{m}", __name__).__all__]
