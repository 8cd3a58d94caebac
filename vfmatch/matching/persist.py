"""A fitted matcher as one JSON file, ``matcher.json``: no pickles.

What is saved: the parameters, the metaproperties and their distances, the
training distances' means and standard deviations, the weights, the threshold
and its calibration, and for a linear classifier its coefficients and
intercept -- everything a logistic matcher needs to score, decide and explain.
A tree ensemble's trees are **not** saved (they would need a pickle): a tree
matcher loaded back keeps its weights (permutation importances), threshold and
calibration for reading, and raises a clear error when asked to score.

Book chapter: ``book/05_distances_and_weights.ipynb``; ``vfmatch run`` writes
``models/matcher/matcher.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import numpy as np

__all__ = ["matcher_to_dict", "save_matcher", "load_matcher"]

FORMAT = "vfmatch.MetapropertyMatcher"
FORMAT_VERSION = 1


def matcher_to_dict(m) -> dict:
    """A fitted :class:`~vfmatch.matching.matcher.MetapropertyMatcher` as JSON-ready values."""
    d = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "params": {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in m.get_params().items()},
        "metaproperties": m.metaproperties_,
        "distances": m.distances_,
        "weight_method": m.weight_method_,
        "weights": m.weights_.tolist(),
        "distance_mean": m.mean_.tolist(),
        "distance_std": m.std_.tolist(),
        "threshold": m.threshold_,
        "calibration": m.calibration_,
        "n_train_pairs": m.n_train_pairs_,
    }
    if hasattr(m, "coef_"):
        d["coefficients"] = m.coef_.tolist()
        d["intercept"] = m.intercept_
    if hasattr(m, "importances_"):
        d["permutation_importances"] = m.importances_.tolist()
    return d


def save_matcher(m, folder: str | Path) -> Path:
    """Write ``folder/matcher.json`` (the folder is created if needed); returns its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "matcher.json"
    path.write_text(json.dumps(matcher_to_dict(m), indent=2))
    return path


def load_matcher(cls, folder: str | Path):
    """An instance of ``cls`` (the matcher class) rebuilt from ``folder/matcher.json`` (or that file)."""
    path = Path(folder)
    path = path / "matcher.json" if path.is_dir() else path
    if not path.exists():
        raise FileNotFoundError(f"{path}: no saved matcher here (expected matcher.json written by MetapropertyMatcher.save)")
    d = json.loads(path.read_text())
    if d.get("format") != FORMAT:
        raise ValueError(f"{path}: not a saved vfmatch matcher")
    m = cls(**d["params"])
    m.metaproperties_ = list(d["metaproperties"])
    m.distances_ = dict(d["distances"])
    m.weight_method_ = d["weight_method"]
    m.weights_ = np.asarray(d["weights"], dtype=np.float64)
    m.mean_ = np.asarray(d["distance_mean"], dtype=np.float64)
    m.std_ = np.asarray(d["distance_std"], dtype=np.float64)
    m.threshold_ = float(d["threshold"])
    m.calibration_ = d.get("calibration", {})
    m.n_train_pairs_ = int(d.get("n_train_pairs", 0))
    if "coefficients" in d:
        m.coef_ = np.asarray(d["coefficients"], dtype=np.float64)
        m.intercept_ = float(d["intercept"])
    if "permutation_importances" in d:
        m.importances_ = np.asarray(d["permutation_importances"], dtype=np.float64)
    return m
