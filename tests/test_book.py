"""Execute every chapter of the book under the quick setting (VFMATCH_QUICK=1),
and build the book's HTML with warnings treated as errors.

Notebooks are committed without outputs; this is where they run. Each one
executes in a fresh kernel in a temporary copy, so nothing in book/ changes.
The executed copies are kept for the session, and the build test renders them:
so the ``-W`` build checks the chapters' outputs too without running them twice
(the book's own ``jupyter-book build`` executes them; here that would double the
notebooks' share of CI time).

The quick tests at the top check the table of contents and the citations without
building anything.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))
PAGES = sorted(BOOK.glob("*.md"))
CITE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]+)`")


def _toc_files() -> list[str]:
    """Every ``file:`` of book/_toc.yml (commented-out lines are not entries)."""
    yaml = pytest.importorskip("yaml")
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return files


def test_toc_lists_every_page_and_only_pages_that_exist():
    files = _toc_files()
    assert len(files) == len(set(files)), "a page is listed twice in book/_toc.yml"
    stems = {p.stem for p in [*CHAPTERS, *PAGES]}
    assert sorted(stems - set(files)) == [], "pages in book/ missing from book/_toc.yml"
    assert sorted(set(files) - stems) == [], "book/_toc.yml lists pages that are not in book/"


def test_every_citation_is_in_the_bibliography():
    """Each {cite}`key` of a page or chapter names an entry of book/references.bib."""
    pybtex = pytest.importorskip("pybtex.database")
    keys = set(pybtex.parse_file(str(BOOK / "references.bib")).entries)
    cited = {}
    for path in [*PAGES, *CHAPTERS]:
        for group in CITE.findall(path.read_text()):
            for key in group.split(","):
                cited.setdefault(key.strip(), path.name)
    assert cited, "no page cites anything"
    missing = {k: page for k, page in cited.items() if k not in keys}
    assert not missing, f"cited but not in book/references.bib: {missing}"


@pytest.fixture(scope="session")
def executed_chapters(tmp_path_factory):
    """A folder where test_chapter_runs leaves each executed notebook, for the build test."""
    return tmp_path_factory.mktemp("executed-chapters")


@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_runs(path, tmp_path, _isolated_cache, executed_chapters):
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
    nbformat.write(nb, executed_chapters / path.name)


def _jupyter_book(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(script)] if script.exists() else [sys.executable, "-c", "from jupyter_book.cli.main import main; main()"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout)


def _build(book: Path, *, execute: bool) -> Path:
    """``jupyter-book build -W --keep-going book`` (every warning an error); the HTML folder."""
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((book / "_config.yml").read_text())
    if not execute:
        config["execute"]["execute_notebooks"] = "off"
    (book / "_config.yml").write_text(yaml.safe_dump(config))
    done = _jupyter_book("build", "-W", "--keep-going", str(book))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    return book / "_build" / "html"


@pytest.mark.slow
def test_book_builds_offline_with_warnings_as_errors(tmp_path, executed_chapters):
    """``jupyter-book build -W`` turns every page of the table of contents into HTML.

    Execution is switched off in a copy of the configuration; the chapters that
    test_chapter_runs executed in this session are built with their outputs, the
    others (when this test runs alone) as committed. That checks the
    configuration, the table of contents, the citations and the Sphinx build,
    offline, in about a minute."""
    pytest.importorskip("jupyter_book")
    work = tmp_path / "book"
    shutil.copytree(BOOK, work, ignore=shutil.ignore_patterns("_build"))
    for executed in executed_chapters.glob("*.ipynb"):
        shutil.copy(executed, work / executed.name)
    html = _build(work, execute=False)
    for page in _toc_files():
        assert (html / f"{page}.html").is_file(), f"{page} was not built"
    bibliography = (html / "bibliography.html").read_text().lower()   # the style may lower-case titles
    assert "seeking the shape of sound" in bibliography and "metaproperties" in bibliography


@pytest.mark.slow
def test_hidden_solution_is_a_collapsed_toggle(tmp_path):
    """A code cell tagged ``solution`` + ``hide-cell`` (the exercises' convention,
    issue 15) is built, executed, into a collapsed toggle: myst-nb wraps it in a
    closed ``<details>`` whose summary offers to show it, styled by the
    sphinx-togglebutton assets that Jupyter Book loads."""
    pytest.importorskip("jupyter_book")
    nbformat = pytest.importorskip("nbformat")
    book = tmp_path / "tiny"
    book.mkdir()
    solution = nbformat.v4.new_code_cell("# Solution\nanswer = 6 * 7\nassert answer == 42\nanswer")
    solution.metadata["tags"] = ["solution", "hide-cell"]
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# A tiny chapter\n\n## Exercises\n\n### Exercise 1: predict, then run\n\nWhat is 6 x 7?"),
        solution,
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, book / "tiny.ipynb")
    (book / "_config.yml").write_text("title: tiny\nexecute:\n  execute_notebooks: force\n")
    (book / "_toc.yml").write_text("format: jb-book\nroot: tiny\n")
    page = (_build(book, execute=True) / "tiny.html").read_text()

    bs4 = pytest.importorskip("bs4")
    soup = bs4.BeautifulSoup(page, "html.parser")
    cell = soup.select_one("div.cell.tag_solution.tag_hide-cell")
    assert cell is not None, "the solution cell is missing from the page"
    toggle = cell.find("details")
    assert toggle is not None and not toggle.has_attr("open"), "the solution is not inside a collapsed <details>"
    assert "Show code cell" in toggle.summary.get_text(), toggle.summary
    assert "answer = 6 * 7" in toggle.get_text() and "42" in toggle.get_text(), "the solution or its output is missing"
    assert soup.select('script[src*="togglebutton"]'), "sphinx-togglebutton's script is not loaded"
