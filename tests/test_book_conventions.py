"""The book's course conventions (issue 15), checked on the committed notebooks without running them:

* each chapter opens with its learning objectives, prerequisites and time;
* it has 3-5 exercises, each a markdown cell starting ``### Exercise `` followed by ONE
  solution code cell tagged ``solution`` and ``hide-cell`` (a toggle in the built book)
  whose first line is ``# Solution``; tests/test_book.py executes them;
* the own-metaproperty chapter (14) uses public names only: no import of, and no
  attribute access to, a name with a leading underscore.

Fast: the notebooks are parsed, not executed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

BOOK = Path(__file__).resolve().parents[1] / "book"
# The chapters that follow the conventions so far; a chapter joins the list when it gets its exercises.
CHAPTERS = ["02_voice_encoders", "03_face_encoders", "04_metaproperties", "06_difficulty_and_curriculum",
            "07_matching_and_retrieval", "14_your_own_metaproperty"]
PUBLIC_ONLY = ["14_your_own_metaproperty"]


def _read(stem):
    return nbformat.read(BOOK / f"{stem}.ipynb", as_version=4)


@pytest.mark.parametrize("stem", CHAPTERS)
def test_chapter_opens_with_objectives_prerequisites_and_time(stem):
    first = _read(stem).cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    for label in ("**Learning objectives**", "**Prerequisites**", "**Time**"):
        assert label in first.source, f"{stem}: the first cell lacks {label}"
    time_block = first.source.split("**Time**", 1)[1]
    assert "quick" in time_block.lower() and "full" in time_block.lower(), f"{stem}: Time gives the quick and the full setting"


@pytest.mark.parametrize("stem", CHAPTERS)
def test_exercises_have_one_hidden_solution_each(stem):
    cells = _read(stem).cells
    starts = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith("### Exercise ")]
    assert 3 <= len(starts) <= 5, f"{stem}: {len(starts)} exercises, expected 3-5"
    for i in starts:
        assert i + 1 < len(cells), f"{stem}: exercise at cell {i} has no solution"
        sol = cells[i + 1]
        assert sol.cell_type == "code", f"{stem}: cell after exercise {i} is not code"
        assert {"solution", "hide-cell"} <= set(sol.metadata.get("tags", [])), f"{stem}: solution {i + 1} is not tagged"
        assert sol.source.splitlines()[0].strip() == "# Solution", f"{stem}: solution {i + 1} must start with '# Solution'"
        # ONE solution cell: the next cell is another exercise, prose, or the end.
        after = cells[i + 2] if i + 2 < len(cells) else None
        assert after is None or after.cell_type == "markdown", f"{stem}: exercise {i} has more than one solution cell"
    tagged = [i for i, c in enumerate(cells) if "solution" in c.metadata.get("tags", [])]
    assert tagged == [i + 1 for i in starts], f"{stem}: a solution cell without an exercise above it"


def _private_names(source: str) -> list[str]:
    """Names with one leading underscore that the code imports or reads as attributes."""
    tree = ast.parse(source)
    found = []

    def private(name: str) -> bool:
        return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            parts = (node.module or "").split(".")
            found += [p for p in parts if private(p)]
            found += [a.name for a in node.names if private(a.name)]
        elif isinstance(node, ast.Import):
            found += [p for a in node.names for p in a.name.split(".") if private(p)]
        elif isinstance(node, ast.Attribute) and private(node.attr):
            found.append(node.attr)
    return found


def test_private_name_check_catches_what_it_should():
    assert _private_names("from vfmatch.matching.explain import _SHAPLEY_CHUNK_ROWS") == ["_SHAPLEY_CHUNK_ROWS"]
    assert _private_names("import vfmatch._x") == ["_x"]
    assert _private_names("ex._fit(pop)\nm.weights_\nm.__class__") == ["_fit"]


@pytest.mark.parametrize("stem", PUBLIC_ONLY)
def test_chapter_uses_public_names_only(stem):
    code = [c.source for c in _read(stem).cells if c.cell_type == "code"]
    assert code
    for source in code:
        assert _private_names(source) == [], f"{stem} uses private names: {_private_names(source)}"
