"""vfmatch: does this voice belong to this face?

A small, readable package for cross-modal biometrics, built around the
metaproperty method of patent US 12,217,549: extract the same metaproperties
(age, gender, skin tone, ethnicity, weight, BMI, mother tongue, accent) from a
voice and from a face as probability distributions, take a distance per
metaproperty, weight the distances with a classifier, and call a match when
the weighted sum passes a threshold.

The data flows one way, one module per stage::

    population / simulator  ->  encoders  ->  extractors  ->  distances
        ->  matcher  ->  evaluation / fusion

Names are imported lazily, so ``import vfmatch`` stays fast and a student can
open one module without importing torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "Population": "population",
    "PopulationSplits": "population",
    "make_population": "simulator",
    "draw_identities": "simulator",
    "load_population": "io",
    "export_population": "io",
    "make_pairs": "pairs",
    "make_triplets": "pairs",
    "make_one_to_n": "pairs",
    "Metaproperty": "metaproperties",
    "register_metaproperty": "metaproperties",
    "get_metaproperty": "metaproperties",
    "list_metaproperties": "metaproperties",
    "MetapropertyExtractor": "extractors",
    "ExtractorSet": "extractors",
    "create_voice_encoder": "encoders",
    "create_face_encoder": "encoders",
    "MetapropertyMatcher": "matcher",
    "oracle_metaproperties": "matcher",
    "reconstruct_face": "fusion",
    "evaluate_similarity": "evaluation",
    "percentile_recall": "evaluation",
    "degrade": "robustness",
    "robustness_sweep": "robustness",
    "available_codecs": "robustness",
    "quick_mode": "config",
    "default_device": "config",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'vfmatch' has no attribute {name!r}")


def __dir__():
    return __all__
