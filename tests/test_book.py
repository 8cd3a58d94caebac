"""Execute every chapter of the book under the quick setting (VFMATCH_QUICK=1).

Notebooks are committed without outputs; this is where they run. Each one
executes in a fresh kernel in a temporary copy, so nothing in book/ changes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_runs(path, tmp_path, _isolated_cache):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(path, as_version=4)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{path.name} is committed with outputs"
    work = tmp_path / "book"
    shutil.copytree(BOOK, work, ignore=shutil.ignore_patterns("_build"))
    env_backup = dict(os.environ)
    os.environ.update({"VFMATCH_QUICK": "1", "VFMATCH_CACHE": str(_isolated_cache), "MPLBACKEND": "Agg"})
    try:
        client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(work)}})
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(env_backup)
