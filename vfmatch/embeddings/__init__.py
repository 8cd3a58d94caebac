"""Learned voice-face embeddings, beside the metaproperty extractors and matcher (stages 3-4; issue 11).

Two projection heads (one per modality) on encoders of the registry (frozen
by default, the trainable ones fine-tunable end to end), trained into one
shared space with the losses of the seeds:

* ``triplet`` and ``weighted_triplet`` (seed 001, eq. (4)),
* ``sss``: implicit + explicit alignment and identity re-weighting (seed 003,
  eq. (1)-(4), Algorithm 1),
* ``contrastive``: symmetric InfoNCE.

Modules, by job: :mod:`.tables` (features in, from a population or files),
:mod:`.losses`, :mod:`.reweight` (Algorithm 1's weights), :mod:`.heads` (the
two-branch net), :mod:`.finetune` (the encoders trained end to end),
:mod:`.train` (batches), :mod:`.base` (the estimator), :mod:`.methods` (the
four methods), :mod:`.registry`, :mod:`.io` (safetensors + JSON),
:mod:`.population` (:func:`fit_population`).
"""

import importlib

from .tables import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .reweight import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .finetune import *  # noqa: F401,F403
from .train import *  # noqa: F401,F403
from .registry import *  # noqa: F401,F403
from .io import *  # noqa: F401,F403
from .base import *  # noqa: F401,F403
from .methods import *  # noqa: F401,F403
from .population import *  # noqa: F401,F403

_MODULES = ("tables", "losses", "reweight", "heads", "finetune", "train", "registry", "io", "base", "methods",
            "population")

# every public name of the stage's modules, for `from vfmatch.embeddings import ...`
__all__ = [n for m in _MODULES for n in importlib.import_module(f".{m}", __name__).__all__]
