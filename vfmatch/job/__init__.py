"""The job: what the book and ``vfmatch run`` share, the run, the report.

* ``prepare``  stages 1-3 (population, split by role, extracted tables and their
  cache) and the matcher as the job makes it: what chapters 05-07 and the
  widgets import
* ``methods``  every method (metaproperties, embeddings, hybrid) on the same people and lists
* ``report``   figures (HTML + PNG) and the report folder
* ``fusion_step``  the run's fusion stage: rebuild each test speaker's face and
  evaluate it (chapter 12)
* ``bounds``   the Bayes bound and the gap decomposition, calibrated match
  probabilities, ablations: the bounds stage of the run and chapter 05
* ``run``      the ``vfmatch run`` command: the whole job and its report
* ``files``    what the commands on files share: a saved models folder, voice
  files and photos in (through :mod:`vfmatch.data.media`), the warning for
  simulator-trained models on other input
* ``match_command``, ``rank_command``, ``compare_command``: ``vfmatch match``,
  ``rank`` and ``compare`` (``match_files``, ``rank_files``, ``compare_files``)
* ``population_command``: ``vfmatch population``
* ``sss_features``  features of media files in resumable shards (``Dataset.map`` / ``Dataset.shard``)
* ``sss_command``   the ``vfmatch sss`` command: VoxCeleb1 + VGGFace on the published SSS lists
* ``sss_metaproperty``  its metaproperty method: the metadata's labels, and pretrained models by Hub id
* ``sss_lists``     the SSS lists without the trials whose photo has no face found

Book chapters 05-07 start from :func:`vfmatch.job.prepare.prepare`.
"""

import importlib

from .methods import *  # noqa: F401,F403
from .prepare import *  # noqa: F401,F403
from .report import *  # noqa: F401,F403
from .fusion_step import *  # noqa: F401,F403
from .bounds import *  # noqa: F401,F403
from .run import *  # noqa: F401,F403
from .files import *  # noqa: F401,F403
from .sss_command import *  # noqa: F401,F403
from .sss_features import *  # noqa: F401,F403
from .sss_metaproperty import *  # noqa: F401,F403
from .sss_lists import *  # noqa: F401,F403

# every public name of the stage's modules, for `from vfmatch.job import ...`
__all__ = [n for m in ("methods", "prepare", "report", "bounds", "fusion_step", "run", "files", "sss_command", "sss_features", "sss_metaproperty", "sss_lists")
           for n in importlib.import_module(f".{m}", __name__).__all__]
