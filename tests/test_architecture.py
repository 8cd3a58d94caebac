"""The layout rules of ARCHITECTURE.md, checked on the source (no imports run).

* no import cycle between vfmatch modules;
* imports point down the data flow: a module imports only from its own stage
  or from a lower one (``STAGE_RANK``);
* no private name (``_x``) is imported from another stage;
* vfmatch modules import each other at the top of a module, never inside a
  function (a deferred import is for a heavy optional third-party library only);
* no module is longer than about 700 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "vfmatch"

# The data flow, bottom to top. ``evaluation.metrics`` is a leaf (labels and scores
# in, numbers out; it imports nothing from a stage) so the matcher may calibrate its
# threshold with the same EER code that the evaluation reports.
STAGE_RANK = {
    "config": 0, "metaproperties": 0, "utils": 0, "fingerprints": 0, "evaluation.metrics": 0,
    "data": 1, "simulator": 2, "features": 3, "extractors": 4,
    "matching": 5, "embeddings": 6, "fusion": 7, "evaluation": 8,
    "job": 9, "widgets": 10, "cli": 11,
}
MAX_LINES = 700


def module_name(path: Path) -> str:
    parts = ["vfmatch", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_package(name: str) -> bool:
    return (ROOT.joinpath(*name.split(".")[1:]) / "__init__.py").exists()


def stage(name: str) -> str:
    parts = name.split(".")[1:]
    if not parts:
        return ""
    if ".".join(parts[:2]) in STAGE_RANK:
        return ".".join(parts[:2])
    return parts[0]


def resolve(importer: str, node: ast.ImportFrom | ast.Import) -> list[tuple[str, list[str]]]:
    """``[(imported module, [names])]`` for the vfmatch targets of one import statement."""
    if isinstance(node, ast.Import):
        return [(a.name, []) for a in node.names if a.name.split(".")[0] == "vfmatch"]
    if node.level:
        base = importer.split(".") if is_package(importer) else importer.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target.split(".")[0] != "vfmatch":
        return []
    names = [a.name for a in node.names]
    out = []
    plain = []
    for n in names:  # `from . import report` imports a module
        if is_package(target) and ROOT.joinpath(*target.split(".")[1:], f"{n}.py").exists():
            out.append((f"{target}.{n}", []))
        else:
            plain.append(n)
    if plain or not out:
        out.append((target, plain))
    return out


def collect():
    """``{module: [(target, names, lineno, inside_function)]}`` and ``{module: n_lines}``."""
    edges, lengths = {}, {}
    for path in sorted(ROOT.rglob("*.py")):
        name = module_name(path)
        text = path.read_text()
        lengths[name] = text.count("\n")
        tree = ast.parse(text)
        found = []

        def visit(node, in_function):
            for child in ast.iter_child_nodes(node):
                inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    if isinstance(child, ast.ImportFrom) and child.module == "__future__":
                        continue
                    for target, names in resolve(name, child):
                        found.append((target, names, child.lineno, in_function))
                visit(child, inner)

        visit(tree, False)
        edges[name] = found
    return edges, lengths


EDGES, LENGTHS = collect()


def test_the_scan_sees_the_package():
    assert len(EDGES) > 20 and "vfmatch.matching.matcher" in EDGES
    assert any(t == "vfmatch.metaproperties" for t, *_ in EDGES["vfmatch.matching.distances"])


def test_no_import_cycle():
    graph = {m: {t for t, *_ in es if t in EDGES and t != m} for m, es in EDGES.items()}
    # Importing a submodule first runs its packages' __init__ (except the lazy top level).
    for m, es in EDGES.items():
        for t, *_ in es:
            parts = t.split(".")
            for k in range(2, len(parts)):
                pkg = ".".join(parts[:k])
                if pkg in EDGES and not m.startswith(pkg + ".") and m != pkg:
                    graph[m].add(pkg)
    graph.pop("vfmatch", None)
    for g in graph.values():
        g.discard("vfmatch")
    state, stack = {}, []

    def dfs(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == "open":
                cycle = stack[stack.index(t):] + [t]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if t not in state:
                dfs(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            dfs(m)


def test_imports_point_down_the_flow():
    bad = []
    for m, es in EDGES.items():
        src = stage(m)
        if m == "vfmatch" or src not in STAGE_RANK:
            continue
        for t, _, line, _ in es:
            dst = stage(t)
            if t == "vfmatch" or dst == src or dst not in STAGE_RANK:
                continue
            if STAGE_RANK[dst] > STAGE_RANK[src]:
                bad.append(f"{m}:{line} imports {t} ({dst} is above {src})")
    assert not bad, "\n".join(bad)


def test_every_stage_has_a_rank():
    stages = {stage(m) for m in EDGES if m != "vfmatch"}
    assert stages <= set(STAGE_RANK), f"give these stages a rank: {sorted(stages - set(STAGE_RANK))}"


def test_no_private_name_crosses_a_stage():
    bad = [f"{m}:{line} imports {n} from {t}"
           for m, es in EDGES.items() for t, names, line, _ in es
           for n in names if n.startswith("_") and not n.startswith("__") and stage(t) != stage(m)]
    assert not bad, "\n".join(bad)


def test_vfmatch_imports_sit_at_the_top_of_modules():
    bad = [f"{m}:{line} imports {t} inside a function" for m, es in EDGES.items() for t, _, line, inside in es if inside]
    assert not bad, "\n".join(bad)


def test_modules_stay_readable_in_length():
    long = {m: n for m, n in LENGTHS.items() if n > MAX_LINES}
    assert not long, f"split these by job: {long}"
