"""What ``vfmatch match``, ``rank`` and ``compare`` share: a saved models folder
applied to voice files and face photos.

The three commands (patent claims 1 and 7; FIG. 4 and 5) are thin: each reads
its files through the one front-end (:mod:`vfmatch.data.media`), turns them into
probability tables with the saved extractors and asks the saved matcher
(:class:`vfmatch.matching.matcher.MetapropertyMatcher`) for a level of match,
a ranking or a comparison. This module holds the common part:

* :func:`load_models` -- ``REPORT/models/{extractors, matcher}`` as ``vfmatch run``
  wrote them, with a clear error when the folder is not one;
* :func:`read_voices`, :func:`read_faces`, :func:`folder_files` -- files in, every
  conversion noted, every bad file named in its error, nothing written;
* :func:`voice_table`, :func:`face_table` -- the extractors' probability tables;
* :func:`warn_if_real` -- the one warning when models trained on simulated
  people meet input that is not a simulated export;
* :func:`show_notes` -- the front-end's notes on the terminal.

Book chapter: ``book/13_your_own_files.ipynb``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from ..data.media import FaceInput, VoiceInput, is_media_file, load_face, load_voice, simulated_export
from ..data.population import SAMPLE_RATE
from ..extractors import ExtractorSet
from ..matching.matcher import MetapropertyMatcher

__all__ = [
    "SimulatorModelWarning",
    "SavedModels",
    "load_models",
    "folder_files",
    "read_voices",
    "read_faces",
    "voice_table",
    "face_table",
    "warn_if_real",
    "show_notes",
    "add_common_arguments",
    "write_csv",
]


class SimulatorModelWarning(UserWarning):
    """Models trained on simulated people were given files that are not a simulated export."""


@dataclass
class SavedModels:
    """A loaded models folder: the extractors, the matcher, where they came from,
    and whether they were trained on the simulator (None: not recorded)."""

    extractors: ExtractorSet
    matcher: MetapropertyMatcher
    folder: Path
    trained_on_simulator: bool | None


def load_models(folder: str | Path) -> SavedModels:
    """The extractors and matcher saved under ``folder`` (``REPORT/models``).

    Whether they were trained on the simulator is read from the extractors'
    own record (``extractor_set.json``: the training population's generator),
    else from the report beside the folder (``metrics.json``: ``config.data``
    is empty when ``vfmatch run`` simulated its population)."""
    folder = Path(folder)
    for sub in ("extractors", "matcher"):
        if not (folder / sub).is_dir():
            raise FileNotFoundError(f"--models {folder}: no {sub}/ folder; pass the models/ folder that `vfmatch run` wrote")
    extractors = ExtractorSet.load(folder / "extractors", progress=False)
    matcher = MetapropertyMatcher.load(folder / "matcher")
    simulated = extractors.trained_on_simulator
    report = folder.parent / "metrics.json"
    if simulated is None and report.is_file():
        with contextlib.suppress(json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            simulated = json.loads(report.read_text()).get("config", {}).get("data") is None
    return SavedModels(extractors, matcher, folder, simulated)


def folder_files(folder: str | Path, kind: str, option: str) -> list[Path]:
    """The audio (``kind="audio"``) or image (``"image"``) files under ``folder``,
    sub-folders included, sorted; errors name ``option`` and the folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{option} {folder}: no such folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and is_media_file(p, kind))
    if not files:
        raise ValueError(f"{option} {folder}: no {kind} files in it or its sub-folders")
    return files


def read_voices(paths: Sequence[str | Path], *, trim: bool = False, loudness: float | None = None) -> list[VoiceInput]:
    """Each voice file through :func:`vfmatch.data.media.load_voice` (16 kHz mono; optional VAD trim and loudness)."""
    return [load_voice(p, trim=trim, loudness=loudness) for p in paths]


def read_faces(paths: Sequence[str | Path]) -> list[FaceInput]:
    """Each photo through :func:`vfmatch.data.media.load_face`. A face whose
    landmarks an export lists is kept as it is (what the extractors were trained
    on); any other photo's face is found, aligned and cut out."""
    return [load_face(p, canvas=False) for p in paths]


def voice_table(models: SavedModels, voices: Sequence[VoiceInput]) -> dict[str, np.ndarray]:
    """``{metaproperty: (n_voices, n_values)}`` from the saved voice extractors."""
    return models.extractors.predict_voices([v.wave for v in voices], sample_rate=SAMPLE_RATE)


def face_table(models: SavedModels, faces: Sequence[FaceInput]) -> dict[str, np.ndarray]:
    """``{metaproperty: (n_faces, n_values)}`` from the saved face extractors.

    Faces of one image size go through the extractors together (an export's
    faces, or detected faces on the common canvas); the rows keep the order of ``faces``."""
    groups: dict[tuple, list[int]] = {}
    for i, f in enumerate(faces):
        groups.setdefault(f.image.shape, []).append(i)
    out: dict[str, np.ndarray] = {}
    for rows in groups.values():
        part = models.extractors.predict_faces(np.stack([faces[i].image for i in rows]),
                                               landmarks=np.stack([faces[i].landmarks for i in rows]).astype(np.float32))
        for name, p in part.items():
            out.setdefault(name, np.zeros((len(faces), p.shape[1])))[rows] = p
    return out


def warn_if_real(models: SavedModels, paths: Sequence[str | Path]) -> bool:
    """Warn once (:class:`SimulatorModelWarning`) if simulator-trained models get any
    file that is not part of a simulated ``vfmatch population`` export.

    Returns whether it warned."""
    if not models.trained_on_simulator:
        return False
    outside = [str(p) for p in paths if simulated_export(p) is None]
    if not outside:
        return False
    more = f" and {len(outside) - 1} other file(s)" if len(outside) > 1 else ""
    warnings.warn(
        f"the models in {models.folder} were trained on simulated people, and {outside[0]}{more} "
        "is not a simulated export: what they say about a real person's age, gender, ethnicity or any other "
        "property means nothing, and the level of match is no evidence of identity",
        SimulatorModelWarning,
        stacklevel=3,  # points at the caller of match_files / rank_files / compare_files
    )
    return True


@contextlib.contextmanager
def show_notes(command: str, quiet: bool = False) -> Iterator[list[str]]:
    """Print the front-end's notes (``vfmatch.data.media`` at INFO) on stderr while
    a command runs, as ``vfmatch <command>: note: ...``, and collect them in the
    yielded list; the :class:`SimulatorModelWarning` is printed as one plain
    ``warning:`` line at the end (the command's output stays on stdout)."""
    collected: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record):
            collected.append(record.getMessage())
            if not quiet:
                print(f"vfmatch {command}: note: {record.getMessage()}", file=sys.stderr)

    log = logging.getLogger("vfmatch.data.media")
    handler, old_level = _Collect(logging.INFO), log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SimulatorModelWarning)
            yield collected
    finally:
        log.removeHandler(handler)
        log.setLevel(old_level)
    for w in caught:  # the simulator warning as a plain line; any other warning as Python shows it
        if issubclass(w.category, SimulatorModelWarning):
            print(f"vfmatch {command}: warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """``--models`` and the voice front-end options every command on files takes."""
    parser.add_argument("--models", required=True, help="the models folder that `vfmatch run` wrote (REPORT/models)")
    parser.add_argument("--trim-silence", dest="trim", action="store_true",
                        help="cut each recording to its speech with the voice-activity detector (Silero VAD)")
    parser.add_argument("--loudness", type=float, default=None, metavar="LUFS",
                        help="normalise each recording to this integrated loudness, e.g. -23 (default: as recorded)")
    parser.add_argument("--quiet", action="store_true", help="do not print the notes on conversions")


def write_csv(frame: pd.DataFrame, path: str | Path, inputs: Sequence[str | Path], overwrite: bool) -> Path:
    """Write ``frame`` to ``path``, refusing to replace an input or (without
    ``overwrite``) an existing file."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        raise ValueError(f"--csv {path}: must end in .csv")
    resolved = path.resolve()
    for p in inputs:
        q = Path(p).resolve()
        if resolved == q or (q.is_dir() and resolved.is_relative_to(q)):
            raise ValueError(f"--csv {path}: would write into the input {p}, which is never modified; choose another place")
    if path.exists() and not overwrite:
        raise ValueError(f"--csv {path}: exists; pass --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path
