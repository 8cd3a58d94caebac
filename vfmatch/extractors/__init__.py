"""Stage 4 — metaproperty extractors: calculators, the ViT, the extractor and the set, presets, quality.

=================  ==============================================================
module             job
=================  ==============================================================
``calculators``    representation -> distribution: the calculator base class, its
                   registry (``register_calculator`` / ``create_calculator`` /
                   ``list_calculators``), logistic, SVM, kNN, MLP, label map
``vit``            the vision transformer on Mel spectrograms or face images
``extractor``      :class:`MetapropertyExtractor`: encoder + calculator, one
                   metaproperty, one modality
``presets``        which extractor for which metaproperty (``"default"``,
                   ``"fast"``), ``register_extractor_preset`` / ``list_extractor_presets``
``pretrained``     ready-made Hub models (speech age/gender, language ID, face age,
                   gender, ethnicity), their classes mapped onto the metaproperties;
                   the ``"pretrained"`` presets
``extractor_set``  :class:`ExtractorSet` (a voice and a face extractor per
                   metaproperty, shared encoders) and ``create_extractors``
``quality``        balanced accuracy, bootstrap intervals, calibration, figures
=================  ==============================================================

Book chapter 04."""

import importlib

from .calculators import *  # noqa: F401,F403
from .vit import *  # noqa: F401,F403
from .extractor import *  # noqa: F401,F403
from .presets import *  # noqa: F401,F403
from .pretrained import *  # noqa: F401,F403
from .quality import *  # noqa: F401,F403
from .extractor_set import *  # noqa: F401,F403

_MODULES = ("calculators", "vit", "extractor", "presets", "pretrained", "quality", "extractor_set")
# every public name of the stage's modules, for `from vfmatch.extractors import ...`
__all__ = [n for m in _MODULES for n in importlib.import_module(f".{m}", __name__).__all__]
