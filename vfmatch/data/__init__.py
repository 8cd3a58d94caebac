"""Stage 1 -- people and their media: the Population model, labelled pairs, reading and
writing folders and lists, preprocessing.

Modules: ``population`` (the data model, ``SAMPLE_RATE``), ``lists`` (the one
sampler of 1:2 / 1:N / triplet lists), ``pairs`` (labelled training pairs
and list wrappers), ``preprocess`` (resampling, segments, face quality and
alignment), ``audio_checks`` (the one waveform check), ``layout`` (the folder
layout), ``export`` (files out), ``readers``, ``decode`` and ``load`` (files in),
``corpora`` (readers of Common Voice, FairFace, AVSpeech and MAV-Celeb),
``faces`` (face detection with landmarks and alignment for real photos),
``media`` (the front-end for real voice files and photos: mono, 16 kHz,
voice-activity trimming, loudness, faces on a common canvas).

Book chapter 01. Nothing here imports a later stage."""

import importlib

from .population import *  # noqa: F401,F403
from .lists import *  # noqa: F401,F403
from .pairs import *  # noqa: F401,F403
from .preprocess import *  # noqa: F401,F403
from .audio_checks import *  # noqa: F401,F403
from .layout import *  # noqa: F401,F403
from .export import *  # noqa: F401,F403
from .load import *  # noqa: F401,F403
from .corpora import *  # noqa: F401,F403
from .faces import *  # noqa: F401,F403
from .media import *  # noqa: F401,F403

_MODULES = ("population", "lists", "pairs", "preprocess", "audio_checks", "layout", "export", "load", "corpora", "faces", "media")
# every public name of the stage's modules, for `from vfmatch.data import ...`
__all__ = [n for m in _MODULES for n in importlib.import_module(f".{m}", __name__).__all__]
