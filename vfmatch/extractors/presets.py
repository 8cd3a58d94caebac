"""Extractor presets: which encoder and calculator extract which metaproperty.

A preset is a function ``(metaproperties, quick) -> list of unfitted
MetapropertyExtractor`` (one voice and one face extractor per metaproperty),
registered by name the timm way: ``@register_extractor_preset("name")``;
:func:`vfmatch.extractors.create_extractors` wraps one in an
:class:`~vfmatch.extractors.ExtractorSet`, :func:`list_extractor_presets` lists
them (``vfmatch run --extractors`` offers these names).

``"default"`` (:data:`DEFAULT_EXTRACTORS`, a spec per metaproperty and modality):

* skin tone: vision transformers, as the patent (US 12,217,549) suggests, the
  voice's on a log-Mel spectrogram of 20 ms frames whose tokens are
  whole-spectrum slices of 80 ms, the face's on the aligned 64 x 64 image in
  8 x 8 patches; both small (2 blocks of width 32, tokens averaged), which
  trained best on a few hundred people. A voice shows skin tone only through
  what goes with it (accent and mother tongue go with ethnicity), so the voice
  ViT also learns ethnicity, accent and mother tongue as auxiliary targets
  (weighted 2:1 against skin tone) and three such networks (seeds 0, 1, 2) are
  averaged. Each sees windows of 128 frames (2.6 s) for 40 epochs. Measured on
  held-out people of simulated populations: one ViT trained on skin tone alone
  scored 0.19-0.25 balanced accuracy (chance 1/6) and moved by +-0.04 with its
  seed; an ensemble of three on 256-frame windows for 60 epochs scored
  0.23-0.32 on three populations. With
  ``benchmarks/tune_voice_vit.py`` on the populations of seeds 10 and 11, the
  ensemble on 128-frame windows for 40 epochs scored 0.249 and 0.282 against
  0.248 and 0.276 on 256-frame windows for 60 epochs; in a cold ``vfmatch run``
  (seed 0, two CPU cores) the ensemble's fit took 60 s instead of 135 s.
* everything else: logistic regression, which on held-out people scored as well
  as or better than the MLP (the patent's suggestion for age) and the SVM, and
  is fast. Voice age and weight read the 19 pitch/formant/voice-quality
  statistics alone (with the 128 Mel-band statistics added the regression fitted
  noise); voice BMI, whose cues are a darker, breathier spectrum, keeps the
  Mel-band statistics, reduced to 32 principal components. Face ethnicity,
  mother tongue and accent read colours (skin, hair, eyes): adding the thumbnail
  did not score better on held-out people.

Metaproperties the table does not list (a new one, such as the book's height)
get the vector spec of gender's modality, :data:`FALLBACK_EXTRACTORS`.

``"fast"``: ``"default"`` with every vision transformer swapped for a logistic
regression on the gender extractor's vector features of that modality: minutes
less training on a CPU (``benchmarks/bench_main_job.py`` measures both).

``quick=True`` (notebooks and tests under ``VFMATCH_QUICK=1``) applies
:data:`QUICK_OVERRIDES`: few epochs and one ViT instead of three.

Book chapter: ``book/04_metaproperties.ipynb``.
"""

from __future__ import annotations

from typing import Callable, Sequence

from ..metaproperties import DEFAULT_METAPROPERTIES, get_metaproperty
from .extractor import MetapropertyExtractor

__all__ = [
    "DEFAULT_EXTRACTORS",
    "FALLBACK_EXTRACTORS",
    "QUICK_OVERRIDES",
    "register_extractor_preset",
    "list_extractor_presets",
    "preset_extractors",
]

# A preset: (metaproperty names, quick) -> unfitted extractors.
Preset = Callable[[Sequence[str], bool], list[MetapropertyExtractor]]
_PRESETS: dict[str, Preset] = {}


def register_extractor_preset(name: str) -> Callable[[Preset], Preset]:
    """Function decorator: register ``fn(metaproperties, quick) -> list[MetapropertyExtractor]`` as preset ``name``.

    Registering a name again replaces the preset (re-running a notebook cell)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a preset name must be a non-empty string, got {name!r}")

    def wrap(fn: Preset) -> Preset:
        if not callable(fn):
            raise TypeError(f"register_extractor_preset({name!r}) expects a function, got {fn!r}")
        _PRESETS[name] = fn
        return fn

    return wrap


def list_extractor_presets() -> list[str]:
    """Names of the registered extractor presets, in registration order."""
    return list(_PRESETS)


def preset_extractors(preset: str = "default", metaproperties: Sequence[str] | None = None, *, quick: bool = False) -> list[MetapropertyExtractor]:
    """The unfitted extractors of ``preset`` for ``metaproperties`` (default: ``DEFAULT_METAPROPERTIES``)."""
    if preset not in _PRESETS:
        raise ValueError(f"unknown extractor preset {preset!r}; choose from {list_extractor_presets()}")
    names = [get_metaproperty(n).name for n in (metaproperties or DEFAULT_METAPROPERTIES)]
    return list(_PRESETS[preset](names, bool(quick)))


# ---------------------------------------------------------------------------
# Specs: keyword arguments of MetapropertyExtractor per metaproperty and modality
# ---------------------------------------------------------------------------


def _spec(encoder, encoder_kwargs, calculator, calculator_kwargs, auxiliary=None) -> dict:
    return dict(encoder=encoder, encoder_kwargs=encoder_kwargs, calculator=calculator, calculator_kwargs=calculator_kwargs, auxiliary=auxiliary)


_VOICE_VEC = _spec("f0-formants+logmel-stats", {}, "logistic", {"C": 0.1})
_VOICE_STATS = _spec("f0-formants", {}, "logistic", {"C": 0.1})
_VOICE_SPECTRUM = _spec("f0-formants+logmel-stats", {}, "logistic", {"C": 0.1, "pca": 32})
_FACE_VEC = _spec("thumbnail+ita+colours", {}, "logistic", {"C": 0.05})
_FACE_COLOURS = _spec("ita+colours", {}, "logistic", {"C": 0.1})
_SMALL_VIT = {"embed_dim": 32, "num_heads": 2, "depth": 2, "pool": "avg", "lr": 3e-3}
_VOICE_VIT = _spec("logmel", {"hop_length": 320, "n_fft": 640}, "vit", {**_SMALL_VIT, "patch_size": (64, 4), "window": 128, "epochs": 40, "n_models": 3, "aux_weight": 2.0},
                   auxiliary=("ethnicity", "accent", "mother_tongue"))
_FACE_VIT = _spec("pixels", {"size": 64}, "vit", {**_SMALL_VIT, "patch_size": 8, "epochs": 25})

DEFAULT_EXTRACTORS: dict[str, dict[str, dict]] = {
    "gender": {"voice": _VOICE_VEC, "face": _FACE_VEC},
    "age": {"voice": _VOICE_STATS, "face": _FACE_VEC},
    "skin_tone": {"voice": _VOICE_VIT, "face": _FACE_VIT},
    "ethnicity": {"voice": _VOICE_VEC, "face": _FACE_COLOURS},
    "weight": {"voice": _VOICE_STATS, "face": _FACE_VEC},
    "bmi": {"voice": _VOICE_SPECTRUM, "face": _FACE_VEC},
    "mother_tongue": {"voice": _VOICE_VEC, "face": _FACE_COLOURS},
    "accent": {"voice": _VOICE_VEC, "face": _FACE_COLOURS},
}
FALLBACK_EXTRACTORS: dict[str, dict] = {"voice": _VOICE_VEC, "face": _FACE_VEC}
# Calculator keyword arguments under quick=True: fewer epochs, one ViT.
QUICK_OVERRIDES: dict[str, dict] = {"vit": {"epochs": 5, "n_models": 1}, "mlp": {"epochs": 100}}


def _from_spec(metaproperty: str, modality: str, spec: dict, quick: bool) -> MetapropertyExtractor:
    """A new extractor from a spec (copied, so editing the extractor leaves the spec alone)."""
    quick_kw = QUICK_OVERRIDES.get(spec["calculator"], {}) if quick else {}
    spec = {**spec, "encoder_kwargs": dict(spec["encoder_kwargs"]), "calculator_kwargs": {**spec["calculator_kwargs"], **quick_kw}}
    return MetapropertyExtractor(metaproperty, modality, **spec)


# ---------------------------------------------------------------------------
# The presets
# ---------------------------------------------------------------------------


@register_extractor_preset("default")
def default_preset(metaproperties: Sequence[str], quick: bool = False) -> list[MetapropertyExtractor]:
    """:data:`DEFAULT_EXTRACTORS` (with :data:`FALLBACK_EXTRACTORS` for unlisted metaproperties)."""
    return [_from_spec(name, modality, DEFAULT_EXTRACTORS.get(name, FALLBACK_EXTRACTORS)[modality], quick)
            for name in metaproperties for modality in ("voice", "face")]


@register_extractor_preset("fast")
def fast_preset(metaproperties: Sequence[str], quick: bool = False) -> list[MetapropertyExtractor]:
    """``"default"``, with each ViT replaced by a logistic regression (C = 0.1) on the
    vector features of that modality's gender extractor (else of its first vector
    extractor; else :data:`FALLBACK_EXTRACTORS`)."""
    chosen = default_preset(metaproperties, quick)
    vector = {}
    for ex in sorted((ex for ex in chosen if ex.calculator != "vit"), key=lambda ex: ex.metaproperty != "gender"):
        vector.setdefault(ex.modality, (ex.encoder, ex.encoder_kwargs))
    for modality, spec in FALLBACK_EXTRACTORS.items():
        vector.setdefault(modality, (spec["encoder"], spec["encoder_kwargs"]))
    return [
        MetapropertyExtractor(ex.metaproperty, ex.modality, encoder=vector[ex.modality][0], encoder_kwargs=dict(vector[ex.modality][1]),
                              calculator="logistic", calculator_kwargs={"C": 0.1})
        if ex.calculator == "vit" else ex
        for ex in chosen
    ]
