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
    "Population": "data.population",
    "PopulationSplits": "data.population",
    "make_population": "simulator.population",
    "draw_identities": "simulator.traits",
    "load_population": "data.load",
    "export_population": "data.export",
    "make_pairs": "data.pairs",
    "make_triplets": "data.pairs",
    "make_one_to_n": "data.pairs",
    "Metaproperty": "metaproperties",
    "register_metaproperty": "metaproperties",
    "get_metaproperty": "metaproperties",
    "list_metaproperties": "metaproperties",
    "MetapropertyExtractor": "extractors.extractor",
    "ExtractorSet": "extractors.extractor_set",
    "create_extractors": "extractors.extractor_set",
    "list_extractor_presets": "extractors.presets",
    "create_calculator": "extractors.calculators",
    "list_calculators": "extractors.calculators",
    "create_voice_encoder": "features.encoders",
    "create_face_encoder": "features.encoders",
    "MetapropertyMatcher": "matching.matcher",
    "oracle_metaproperties": "matching.tables",
    "EmbeddingMethod": "embeddings.base",
    "register_embedding_method": "embeddings.registry",
    "create_embedding_method": "embeddings.registry",
    "list_embedding_methods": "embeddings.registry",
    "fit_population": "embeddings.population",
    "FeatureTable": "embeddings.tables",
    "load_feature_table": "embeddings.tables",
    "bayes_metaproperties": "simulator.bayes",
    "CalibratedMatcher": "matching.calibration",
    "ScoreCalibrator": "matching.calibration",
    "expected_calibration_error": "matching.calibration",
    "ablation_table": "evaluation.ablation",
    "reconstruct_face": "fusion.reconstruct",
    "fuse_faces": "fusion.reconstruct",
    "select_best_matches": "fusion.reconstruct",
    "evaluate_fusion": "fusion.evaluate",
    "load_voice": "data.media",
    "load_face": "data.media",
    "match_files": "job.match_command",
    "rank_files": "job.rank_command",
    "compare_files": "job.compare_command",
    "evaluate_similarity": "evaluation.summary",
    "percentile_recall": "evaluation.percentile",
    "degrade": "evaluation.robustness",
    "robustness_sweep": "evaluation.robustness",
    "available_codecs": "evaluation.codecs",
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
