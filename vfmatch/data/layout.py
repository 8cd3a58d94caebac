"""The folder layout vfmatch writes and reads, and how its metadata cells are read.

:func:`vfmatch.data.export.export_population` (and ``vfmatch population --out DIR``)
writes::

    DIR/
      README.md                      what is here, written with the files
      info.json                      provenance: generator, seed, parameters
      identities.csv                 one row per person (columns below)
      voices/metadata.csv            one row per clip
      voices/<speaker_id>/<clip_id>.wav    16 kHz, mono, 16-bit PCM
      faces/metadata.csv             one row per image
      faces/<speaker_id>/<face_id>.png     RGB, 8 bits per channel

* ``identities.csv``: ``speaker_id, gender, age, ethnicity, skin_tone, height,
  weight, bmi, mother_tongue, accent`` (years, Fitzpatrick type 1-6, cm, kg,
  kg/m^2; an empty cell is unknown), then any other columns (``split``,
  ``nationality``, the simulator's latent vectors as JSON lists).
* ``voices/metadata.csv``: ``file_name`` (relative to ``voices/``),
  ``speaker_id``, ``clip_id``, the identity columns repeated, then per-clip
  columns.
* ``faces/metadata.csv``: ``file_name`` (relative to ``faces/``),
  ``speaker_id``, ``face_id``, the identity columns repeated, the five
  landmarks as ``lm_x0, lm_y0, ..., lm_x4, lm_y4`` (:data:`LANDMARK_COLUMNS`,
  pixels; left eye, right eye, nose tip, left and right mouth corner),
  ``yaw, pitch, roll`` (degrees), ``eyes_closed, mouth_open`` (True/False),
  then other per-face columns.

``voices/`` is a Hugging Face *audiofolder* and ``faces/`` an *imagefolder*:
``datasets.load_dataset("imagefolder", data_dir="DIR/faces")`` reads them too.
:func:`vfmatch.data.load.load_population` reads this layout back, and others.

Book chapter: ``book/01_population.ipynb``.
"""

from __future__ import annotations

import numpy as np

from ..utils import to_jsonable
from .population import IDENTITY_COLUMNS

__all__ = ["LAYOUT", "LANDMARK_COLUMNS"]

LAYOUT = "vfmatch-population/1"  # written to info.json; bump when the layout changes
# lm_x0, lm_y0, ..., lm_x4, lm_y4: the five landmarks in pixels.
LANDMARK_COLUMNS = tuple(f"lm_{axis}{k}" for k in range(5) for axis in "xy")
FACE_QUALITY_COLUMNS = ("yaw", "pitch", "roll", "eyes_closed", "mouth_open")
# Per-person columns: these go to the identities table, the rest stay per clip/face.
IDENTITY_META = IDENTITY_COLUMNS[1:] + ("nationality", "split")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def missing_cell(v) -> bool:
    """True for an unknown metadata value: None, NaN or an empty string."""
    if v is None:
        return True
    if isinstance(v, float) and np.isnan(v):
        return True
    return isinstance(v, str) and v.strip() == ""


def cell_value(v):
    """A metadata cell as a plain Python value: numpy scalars become Python ones
    (:func:`vfmatch.utils.to_jsonable`), and the CSV booleans ``"True"``/``"False"``
    (``eyes_closed``, ``mouth_open``) become ``bool``."""
    if isinstance(v, np.generic):
        v = to_jsonable(v)
    if isinstance(v, str):
        low = v.strip().lower()
        if low in ("true", "false"):
            return low == "true"
    return v
