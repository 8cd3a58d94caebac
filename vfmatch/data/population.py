"""The data model: a population of people, each with voice clips and face images.

A :class:`Population` is three tables:

* ``identities`` -- a :class:`pandas.DataFrame`, one row per person: ``speaker_id``
  and the ground-truth metaproperties where known (gender, age in years,
  ethnicity, skin_tone 1-6, height in cm, weight in kg, bmi, mother_tongue,
  accent), and optionally ``split``;
* ``voices`` -- a Hugging Face :class:`datasets.Dataset`, one row per clip:
  ``speaker_id``, ``clip_id``, ``audio`` (float32 samples, 16 kHz mono, in
  [-1, 1]) and ``sampling_rate``;
* ``faces`` -- a :class:`datasets.Dataset`, one row per image: ``speaker_id``,
  ``face_id``, ``image`` (RGB, :class:`datasets.Image`) and, where known,
  ``landmarks`` (5 x 2 pixel coordinates: left eye, right eye, nose tip, left
  and right mouth corner), ``yaw``/``pitch``/``roll`` in degrees,
  ``eyes_closed`` and ``mouth_open``.

Arrow storage means a VoxCeleb-sized population is memory-mapped from disk
rather than held in RAM; the same code serves the simulator's default
population (:data:`vfmatch.simulator.DEFAULT_N_IDENTITIES` people).

Book chapter: ``book/01_population.ipynb``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

import datasets
import numpy as np
import pandas as pd

from ..metaproperties import get_metaproperty

__all__ = ["Population", "SAMPLE_RATE", "IDENTITY_COLUMNS", "parse_subset", "PopulationSplits"]

# The sample rate of every clip in a Population, in Hz; defined here once for all of vfmatch.
SAMPLE_RATE = 16_000
# Ground-truth columns of the identities table, in the order files list them.
IDENTITY_COLUMNS = (
    "speaker_id",
    "gender",
    "age",
    "ethnicity",
    "skin_tone",
    "height",
    "weight",
    "bmi",
    "mother_tongue",
    "accent",
)


@dataclass
class PopulationSplits:
    """Identity-disjoint train / validation / test populations."""

    train: "Population"
    validation: "Population"
    test: "Population"

    def __iter__(self) -> Iterator["Population"]:
        return iter((self.train, self.validation, self.test))

    def items(self):
        return (("train", self.train), ("validation", self.validation), ("test", self.test))


@dataclass
class Population:
    """People with voices and faces; see the module docstring for the columns.

    Parameters
    ----------
    identities : pandas.DataFrame
        One row per identity, with a unique ``speaker_id`` column.
    voices, faces : datasets.Dataset
        Clips and images; their ``speaker_id`` values must appear in ``identities``.
    info : dict
        Free-form provenance (generator, seed, source folder, ...), saved with it.
    """

    identities: pd.DataFrame
    voices: datasets.Dataset
    faces: datasets.Dataset
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        self.identities = self.identities.reset_index(drop=True)
        self.identities["speaker_id"] = self.identities["speaker_id"].astype(str)
        if self.identities["speaker_id"].duplicated().any():
            dup = self.identities.loc[self.identities["speaker_id"].duplicated(), "speaker_id"].iloc[0]
            raise ValueError(f"identities table: speaker_id {dup!r} appears more than once")

    # ------------------------------------------------------------ inspection
    def __len__(self) -> int:
        return len(self.identities)

    @property
    def speaker_ids(self) -> list[str]:
        return self.identities["speaker_id"].tolist()

    @property
    def voice_speakers(self) -> np.ndarray:
        """``speaker_id`` of every clip, shape (n_clips,)."""
        return np.asarray(self.voices["speaker_id"][:], dtype=object)  # [:]: one column read, not a row-by-row loop

    @property
    def face_speakers(self) -> np.ndarray:
        """``speaker_id`` of every face image, shape (n_faces,)."""
        return np.asarray(self.faces["speaker_id"][:], dtype=object)

    def __repr__(self) -> str:
        return (
            f"Population({len(self)} identities, {self.voices.num_rows} voice clips, "
            f"{self.faces.num_rows} face images, info={ {k: v for k, v in self.info.items() if k != 'params'} })"
        )

    def summary(self) -> pd.DataFrame:
        """Counts per metaproperty value: a quick look at who is in the population."""
        rows = []
        for col in ("gender", "ethnicity", "skin_tone", "mother_tongue", "accent"):
            if col in self.identities:
                for value, count in self.identities[col].value_counts(dropna=False).items():
                    rows.append({"metaproperty": col, "value": value, "identities": int(count)})
        return pd.DataFrame(rows)

    # ---------------------------------------------------------------- access
    def audio(self, index: int) -> np.ndarray:
        """Samples of clip ``index``, float32, shape (n_samples,), 16 kHz."""
        return np.asarray(self.voices[int(index)]["audio"], dtype=np.float32)

    def image(self, index: int) -> np.ndarray:
        """Face image ``index`` as uint8 RGB, shape (H, W, 3)."""
        img = self.faces[int(index)]["image"]
        return np.asarray(img.convert("RGB") if hasattr(img, "convert") else img, dtype=np.uint8)

    def audios(self, indices=None) -> list[np.ndarray]:
        """Several clips as a list of float32 arrays (lengths differ)."""
        ds = self.voices if indices is None else self.voices.select(np.asarray(indices, dtype=np.int64))
        col = ds.with_format("numpy")["audio"]
        return [np.asarray(a, dtype=np.float32) for a in col]

    def images(self, indices=None) -> np.ndarray:
        """Several faces stacked as uint8, shape (n, H, W, 3); all must share a size."""
        ds = self.faces if indices is None else self.faces.select(np.asarray(indices, dtype=np.int64))
        arrs = [np.asarray(im.convert("RGB"), dtype=np.uint8) for im in ds["image"][:]]
        if not arrs:
            return np.zeros((0, 0, 0, 3), dtype=np.uint8)
        shapes = {a.shape for a in arrs}
        if len(shapes) > 1:
            raise ValueError(f"face images have different sizes {sorted(shapes)}; align them first (vfmatch.data.preprocess)")
        return np.stack(arrs)

    def identity_row(self, speaker_id: str) -> pd.Series:
        hit = self.identities.loc[self.identities["speaker_id"] == str(speaker_id)]
        if hit.empty:
            raise KeyError(f"no identity {speaker_id!r} in this population")
        return hit.iloc[0]

    def labels(self, metaproperty: str, modality: str = "identity") -> np.ndarray:
        """Ground-truth indices of a metaproperty (``-1`` where unknown).

        ``modality`` is ``"identity"`` (one per person, shape (n_identities,)),
        ``"voice"`` (one per clip) or ``"face"`` (one per image)."""
        mp = get_metaproperty(metaproperty)
        col = mp.source_column
        if col not in self.identities:
            raise KeyError(f"the identities table has no column {col!r} for metaproperty {mp.name!r}")
        per_identity = mp.encode(self.identities[col].to_numpy(dtype=object))
        if modality == "identity":
            return per_identity
        lookup = dict(zip(self.identities["speaker_id"], per_identity))
        speakers = {"voice": self.voice_speakers, "face": self.face_speakers}[modality]
        return np.array([lookup[s] for s in speakers], dtype=np.int64)

    def has_metaproperty(self, metaproperty: str) -> bool:
        mp = get_metaproperty(metaproperty)
        return mp.source_column in self.identities and bool((self.labels(mp.name) >= 0).any())

    # ------------------------------------------------------------- selection
    def select(self, speaker_ids) -> "Population":
        """The sub-population of the given identities (and only their clips and faces)."""
        keep = {str(s) for s in speaker_ids}
        ids = self.identities[self.identities["speaker_id"].isin(keep)]
        v_idx = np.flatnonzero(np.isin(self.voice_speakers, list(keep)))
        f_idx = np.flatnonzero(np.isin(self.face_speakers, list(keep)))
        return Population(ids.copy(), self.voices.select(v_idx), self.faces.select(f_idx), dict(self.info))

    def subset(self, criteria: str | Mapping[str, object] | None = None, **kwargs) -> "Population":
        """A homogeneous subset, e.g. ``subset(gender="female", ethnicity="Asian")``
        or ``subset("gender=female,ethnicity=Asian")`` (paper 001's populations).

        Values are compared after the metaproperty's own encoding, so ``"f"``
        matches ``"female"``; a value may be a list to keep several. Columns
        that are not registered metaproperties are compared as strings."""
        crit = dict(parse_subset(criteria) if isinstance(criteria, str) else (criteria or {}))
        crit.update(kwargs)
        mask = np.ones(len(self.identities), dtype=bool)
        for col, wanted in crit.items():
            wanted_list = list(wanted) if isinstance(wanted, (list, tuple, set)) else [wanted]
            if col not in self.identities:
                raise KeyError(f"cannot select on {col!r}: the identities table has columns {list(self.identities.columns)}")
            try:
                mp = get_metaproperty(col)
                have = mp.encode(self.identities[col].to_numpy(dtype=object))
                want = mp.encode(np.asarray(wanted_list, dtype=object))
            except KeyError:
                have = self.identities[col].astype(str).to_numpy()
                want = np.asarray([str(w) for w in wanted_list])
            mask &= np.isin(have, want)
        sub = self.select(self.identities.loc[mask, "speaker_id"])
        sub.info = {**self.info, "subset": {k: (list(v) if isinstance(v, (list, tuple, set)) else v) for k, v in crit.items()}}
        if len(sub) == 0:
            raise ValueError(f"no identity satisfies {crit}")
        return sub

    def split(self, fractions=(0.6, 0.2, 0.2), *, seed: int = 0, stratify: str | None = "gender") -> PopulationSplits:
        """Identity-disjoint train / validation / test populations.

        If the identities table has a ``split`` column (``train``/``validation``
        or ``val``/``test``, as in the VoxCeleb lists) it is used as is; otherwise
        identities are shuffled with ``seed`` (within each ``stratify`` value, so
        every split has both genders) and cut by ``fractions``."""
        ids = self.identities
        if "split" in ids and ids["split"].notna().all():
            norm = ids["split"].astype(str).str.lower().replace({"val": "validation", "dev": "validation", "valid": "validation"})
            parts = {name: ids.loc[norm == name, "speaker_id"] for name in ("train", "validation", "test")}
        else:
            fr = np.asarray(fractions, dtype=float)
            if fr.shape != (3,) or np.any(fr < 0) or not np.isclose(fr.sum(), 1.0):
                raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
            rng = np.random.default_rng(seed)
            groups = ids.groupby(ids[stratify].astype(str)) if stratify and stratify in ids else [(None, ids)]
            parts = {"train": [], "validation": [], "test": []}
            for _, g in groups:
                order = rng.permutation(g["speaker_id"].to_numpy())
                n = len(order)
                n_tr = int(round(fr[0] * n))
                n_va = int(round(fr[1] * n))
                parts["train"] += list(order[:n_tr])
                parts["validation"] += list(order[n_tr : n_tr + n_va])
                parts["test"] += list(order[n_tr + n_va :])
        out = {}
        for name, sids in parts.items():
            p = self.select(sids)
            p.info = {**self.info, "split": name}
            out[name] = p
        return PopulationSplits(out["train"], out["validation"], out["test"])

    # ---------------------------------------------------------------- saving
    def save_to_disk(self, path: str | Path) -> Path:
        """Save as Arrow (``voices/``, ``faces/``), ``identities.parquet`` and ``info.json``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.voices.save_to_disk(str(path / "voices"))
        self.faces.save_to_disk(str(path / "faces"))
        self.identities.to_parquet(path / "identities.parquet", index=False)
        (path / "info.json").write_text(json.dumps(self.info, indent=2, default=str))
        return path

    @classmethod
    def load_from_disk(cls, path: str | Path) -> "Population":
        """Inverse of :meth:`save_to_disk` (memory-maps the Arrow files)."""
        path = Path(path)
        for part in ("voices", "faces", "identities.parquet"):
            if not (path / part).exists():
                raise FileNotFoundError(f"{path / part}: missing; not a population saved with Population.save_to_disk")
        info = json.loads((path / "info.json").read_text()) if (path / "info.json").exists() else {}
        return cls(
            pd.read_parquet(path / "identities.parquet"),
            datasets.load_from_disk(str(path / "voices")),
            datasets.load_from_disk(str(path / "faces")),
            info,
        )


def parse_subset(text: str | None) -> dict[str, list[str]]:
    """Parse ``"gender=female,ethnicity=Asian|White"`` into ``{"gender": ["female"], ...}``.

    ``|`` separates alternatives for one column."""
    out: dict[str, list[str]] = {}
    if not text:
        return out
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise ValueError(f"subset {text!r}: expected column=value pairs separated by commas, got {part!r}")
        key, value = (s.strip() for s in part.split("=", 1))
        out.setdefault(key, []).extend(v.strip() for v in value.split("|"))
    return out
