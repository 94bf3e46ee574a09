"""The package's shape: imports point one way along the data flow, and modules stay small.

Layers, lowest first (a module may import its own layer and the layers below it, never one above):

 0. foundation: ``errors``, ``tables`` and the other top-level helpers, ``metrics`` (pure functions
    on arrays), ``fetch`` (downloads the open data, reads nothing of kgrec's)
 1. ``cohort``: EHR sources → visits, codes, splits, DDI
 2. ``graph``: sources → node/edge tables, the stores, Cypher; and ``cohort.synth``, the synthetic
    cohort generator, which plants the graph sources' drug–disease knowledge in its patients
 3. ``embed``: KGE and GNN vectors with their id maps
 4. ``models``: the :class:`~kgrec.models.base.Recommender` interface, the baselines and the name
    registry (names resolve to ``"module:Class"`` strings imported on lookup, so the registry
    imports no layer above it)
 5. ``evaluation`` (fit on a split, K-fold CV; models are given by name or instance) and
    ``workspace`` (a workspace's paths, cohort, graph tables, vectors and saved models)
 6. ``teacher``
 7. ``student``
 8. ``explain``
 9. ``stages`` (``train --stage all``), ``benchmark`` and ``transfer`` (they chain the stages above, or
    evaluate their models across sites)
10. ``api``: the façade, one function per stage
11. ``serve``, ``cli``, ``kgrec/__init__`` and ``__main__``: the entry points

The graph is read statically (``ast``: top-level and function-level imports, as
``../shared/tools/import_cycles.py`` does), so a lazy import inside a function counts as an edge.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "kgrec"
MAX_LINES = 400
STATED = re.compile(r"\d+\s*-?\s*lines?\b|\blines\b")  # "why this module is over 400 lines" / "the ~400-line guide"

LAYERS: dict[str, int] = {
    "kgrec.errors": 0, "kgrec.tables": 0, "kgrec.metrics": 0, "kgrec.fetch": 0,
    "kgrec.cohort": 1,
    "kgrec.graph": 2, "kgrec.cohort.synth": 2,
    "kgrec.embed": 3,
    "kgrec.models": 4,
    "kgrec.evaluation": 5, "kgrec.workspace": 5,
    "kgrec.teacher": 6,
    "kgrec.student": 7,
    "kgrec.explain": 8,
    "kgrec.stages": 9, "kgrec.benchmark": 9, "kgrec.transfer": 9,
    "kgrec.api": 10,
    "kgrec.serve": 11, "kgrec.cli": 11, "kgrec": 11, "kgrec.__main__": 11,
}
FOUNDATION = 0  # a new top-level helper module (kgrec/<name>.py not listed above) is foundation
# Long modules another change is splitting (or giving a stated reason) right now. Remove an entry when
# that lands; nothing else may join this list.
BEING_SPLIT = {
    "kgrec/benchmark/core.py": "not split yet (the benchmark runner: kgrec, PyHealth and saved models)",
    "kgrec/cohort/drugnames.py": "cohort",
}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PKG.parent).with_suffix("").parts).removesuffix(".__init__")


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def import_edges(mods: dict[str, Path]) -> dict[str, dict[str, int]]:
    """``{module: {imported module: line}}`` for every import of a kgrec module, at any depth."""
    edges: dict[str, dict[str, int]] = {m: {} for m in mods}
    for m, p in mods.items():
        pkg = m if p.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(p.read_text(), str(p))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for n in names:
                while n and n not in mods:
                    n = n.rsplit(".", 1)[0] if "." in n else ""
                if n and n != m and not m.startswith(n + "."):
                    edges[m].setdefault(n, node.lineno)
    return edges


def layer(module: str) -> int:
    """The layer of the longest listed prefix; the root package ``kgrec`` is only itself (a new
    subpackage must be placed in :data:`LAYERS`)."""
    parts = module.split(".")
    for k in range(len(parts), 1 if len(parts) > 1 else 0, -1):
        name = ".".join(parts[:k])
        if name in LAYERS:
            return LAYERS[name]
    raise AssertionError(f"{module} has no layer")


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, dict[str, int]]:
    return import_edges(modules())


def test_every_module_has_a_layer():
    for m in modules():
        if m.count(".") == 1 and m not in LAYERS and not (PKG / m.split(".")[1]).is_dir():
            LAYERS.setdefault(m, FOUNDATION)  # kgrec/<helper>.py
        layer(m)


def test_no_import_cycle(graph):
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(
        ", ".join(c) + "\n  " + "\n  ".join(f"{a} imports {b} (line {graph[a][b]})" for a in c for b in graph[a] if b in c) for c in found)


def test_imports_point_down_the_flow(graph):
    """No module imports a module of a later stage (e.g. teacher → api, models → student)."""
    test_every_module_has_a_layer()
    back = [f"{m} (layer {layer(m)}) imports {t} (layer {layer(t)}) at line {line}"
            for m, targets in graph.items() for t, line in targets.items() if layer(t) > layer(m)]
    assert not back, "imports running back up the flow:\n" + "\n".join(back)


def test_api_is_imported_only_by_the_entry_points(graph):
    users = sorted(m for m, targets in graph.items() if "kgrec.api" in targets)
    assert all(u == "kgrec" or u.startswith(("kgrec.cli", "kgrec.serve")) for u in users), users


def test_the_checker_sees_a_back_edge_and_a_cycle(tmp_path):
    """The walk above finds what it is for: a function-level import up the flow, and a cycle."""
    fake = {"kgrec.cohort.x": tmp_path / "x.py", "kgrec.teacher.y": tmp_path / "y.py"}
    fake["kgrec.cohort.x"].write_text("def f():\n    from kgrec.teacher.y import g\n")
    fake["kgrec.teacher.y"].write_text("from kgrec.cohort import x\n")
    edges = import_edges(fake)
    assert edges == {"kgrec.cohort.x": {"kgrec.teacher.y": 2}, "kgrec.teacher.y": {"kgrec.cohort.x": 1}}
    assert cycles(edges) == [["kgrec.cohort.x", "kgrec.teacher.y"]]
    assert layer("kgrec.teacher.y") > layer("kgrec.cohort.x")


def test_every_registered_model_resolves():
    """Each name of the model registry imports to a Recommender class whose ``name`` is that name."""
    from kgrec.models import MODELS, Recommender, get_model, register

    for name in MODELS:
        cls = get_model(name)
        assert issubclass(cls, Recommender) and cls.name == name, name
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        get_model("nope")
    with pytest.raises(ValueError, match="module:Class"):
        register("x", "kgrec.models.baselines.FrequencyRecommender")


def test_registry_and_workspace_import_no_model_code():
    """Looking names up lazily keeps torch out of ``import kgrec.models`` / ``kgrec.workspace``."""
    import subprocess
    import sys

    code = "import sys, kgrec.models, kgrec.workspace, kgrec.evaluation; print(sorted(m for m in ('torch', 'kgrec.teacher', 'kgrec.student') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_modules_stay_small():
    """Over ~400 lines only with a reason in the module docstring (a sentence saying why it is long,
    naming the line count or the ~400-line guide)."""
    long = []
    for m, p in modules().items():
        n = len(p.read_text().splitlines())
        rel = str(p.relative_to(PKG.parent))
        doc = ast.get_docstring(ast.parse(p.read_text())) or ""
        stated = bool(STATED.search(doc))
        if n > MAX_LINES and not stated and rel not in BEING_SPLIT:
            long.append(f"{rel}: {n} lines, no reason in its docstring")
    assert not long, "\n".join(long)
