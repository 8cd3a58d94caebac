"""Every chapter follows the book's course conventions (issue 15).

* **The top block**: the markdown before the first code cell has the three labels
  ``**Learning objectives**`` (followed by a bullet list), ``**Prerequisites**``
  and ``**Time**`` (which gives the quick setting's time and the full size's).
* **Exercises**: at least three markdown cells whose source begins with
  ``### Exercise ``, each followed directly by ONE code cell tagged ``solution``
  and ``hide-cell`` (a toggle in the built book) whose first line is
  ``# Solution``. The solutions run with the rest of the chapter in
  ``tests/test_book.py``, so one that stops working fails there.

Reads the committed notebooks only (no kernel): fast. One test per chapter and
rule, so a report names the chapter that breaks a convention. The
own-metaproperty chapter (14) must use public names only: no import of, and no
attribute access to, a name with a leading underscore.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))
MIN_EXERCISES, MAX_EXERCISES = 3, 5
PUBLIC_ONLY = ["14_your_own_metaproperty"]


def _cells(path: Path) -> list[dict]:
    nbformat = pytest.importorskip("nbformat")
    return nbformat.read(path, as_version=4).cells


def _top_markdown(cells) -> str:
    """The markdown cells before the first code cell, joined."""
    top = []
    for cell in cells:
        if cell.cell_type == "code":
            break
        if cell.cell_type == "markdown":
            top.append(cell.source)
    return "\n\n".join(top)


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_starts_with_objectives_prerequisites_and_time(path):
    top = _top_markdown(_cells(path))
    missing = [label for label in ("**Learning objectives**", "**Prerequisites**", "**Time**") if label not in top]
    assert not missing, f"{path.name}: the markdown before the first code cell lacks {missing}"
    after = top.split("**Learning objectives**", 1)[1]
    assert re.search(r"^\s*[-*] \S", after, flags=re.M), f"{path.name}: **Learning objectives** is not followed by a bullet list"
    time_line = top.split("**Time**", 1)[1][:400].lower()  # the Time entry, as a line or a short list
    assert "quick" in time_line and "full" in time_line, (
        f"{path.name}: **Time** should give the quick setting's time and the full size's, got {time_line.strip()!r}")


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_has_exercises_with_hidden_solutions(path):
    cells = _cells(path)
    exercises = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith("### Exercise ")]
    assert MIN_EXERCISES <= len(exercises) <= MAX_EXERCISES, (
        f"{path.name}: {len(exercises)} '### Exercise ' cells, {MIN_EXERCISES}-{MAX_EXERCISES} wanted")
    for i in exercises:
        title = cells[i].source.splitlines()[0]
        assert i + 1 < len(cells) and cells[i + 1].cell_type == "code", f"{path.name}: {title!r} is not followed by a code cell"
        solution = cells[i + 1]
        tags = set(solution.metadata.get("tags", []))
        assert {"solution", "hide-cell"} <= tags, f"{path.name}: the solution of {title!r} is tagged {sorted(tags)}, not solution + hide-cell"
        assert solution.source.startswith("# Solution"), f"{path.name}: the solution of {title!r} does not start with '# Solution'"
        after = cells[i + 2] if i + 2 < len(cells) else None
        assert after is None or after.cell_type == "markdown", f"{path.name}: {title!r} has more than one solution cell"
    tagged = [i for i, c in enumerate(cells) if "solution" in c.metadata.get("tags", [])]
    assert tagged == [i + 1 for i in exercises], f"{path.name}: a solution cell without an exercise above it"


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
    nbformat = pytest.importorskip("nbformat")
    code = [c.source for c in nbformat.read(BOOK / f"{stem}.ipynb", as_version=4).cells if c.cell_type == "code"]
    assert code
    for source in code:
        assert _private_names(source) == [], f"{stem} uses private names: {_private_names(source)}"
