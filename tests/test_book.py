"""Execute every chapter of the book under the quick setting (VFMATCH_QUICK=1),
and build the book's HTML.

Notebooks are committed without outputs; this is where they run. Each one
executes in a fresh kernel in a temporary copy, so nothing in book/ changes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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


@pytest.mark.slow
def test_book_builds_offline(tmp_path):
    """``jupyter-book build book/`` turns every chapter in the table of contents into HTML.

    The chapters were executed above, so here execution is switched off in a copy
    of the configuration: this checks the configuration, the table of contents
    and the Sphinx build, offline, in seconds."""
    pytest.importorskip("jupyter_book")
    yaml = pytest.importorskip("yaml")
    work = tmp_path / "book"
    shutil.copytree(BOOK, work, ignore=shutil.ignore_patterns("_build"))
    config = yaml.safe_load((work / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    (work / "_config.yml").write_text(yaml.safe_dump(config))
    script = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(script)] if script.exists() else [sys.executable, "-c", "from jupyter_book.cli.main import main; main()"]
    done = subprocess.run([*cmd, "build", str(work)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    html = work / "_build" / "html"
    for page in [*CHAPTERS, BOOK / "intro.md", BOOK / "ethics.md"]:
        assert (html / f"{page.stem}.html").is_file(), f"{page.name} was not built"
