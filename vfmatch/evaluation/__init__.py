"""Stage 5 — evaluation: how good is a matcher, by the protocols of the field? Book chapters 08 and 09.

==================  ==========================================================================
module               job
==================  ==========================================================================
``metrics``          the only ROC / AUC / EER / AP code: pure functions of labels and scores
``scorers``          what the metrics read scores from: a matrix, a function, embeddings
``identification``   1:2 and 1:N identification (U and G protocols), verification pairs, mAP
``percentile``       paper 001's percentile recall, its CDF and the "Recall at N'" table
``bootstrap``        confidence intervals that resample identities
``summary``          every protocol at once (:func:`evaluate_similarity`), per subgroup
``protocols``        list file formats and the published SSS lists (seed 003)
``codecs``           telephone and VoIP codecs, one round trip each (paper 001, app. A.2)
``robustness``       noise, paper 001's conditions, a trained matcher under each, the sweep
``augment``          degraded training clips (paper 001's remedy)
==================  ==========================================================================

The lists themselves (which voice meets which face) are drawn by
:mod:`vfmatch.data.lists`. Every public name of these modules is importable
from ``vfmatch.evaluation``.
"""

import importlib

from .metrics import *  # noqa: F401,F403
from .scorers import *  # noqa: F401,F403
from .identification import *  # noqa: F401,F403
from .percentile import *  # noqa: F401,F403
from .bootstrap import *  # noqa: F401,F403
from .summary import *  # noqa: F401,F403
from .protocols import *  # noqa: F401,F403
from .codecs import *  # noqa: F401,F403
from .robustness import *  # noqa: F401,F403
from .augment import *  # noqa: F401,F403
from .ablation import *  # noqa: F401,F403

_MODULES = ('metrics', 'scorers', 'identification', 'percentile', 'bootstrap', 'summary', 'protocols', 'codecs', 'robustness', 'augment', 'ablation')

# every public name of the stage's modules, for `from vfmatch.evaluation import ...`
__all__ = [n for m in _MODULES for n in importlib.import_module(f".{m}", __name__).__all__]
