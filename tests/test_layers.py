"""The layers of the package: the import graph, the boundaries of ``groove_sc.ot``, file sizes.

The solvers of ``groove_sc.ot`` are tested in ``tests/ot/test_solvers.py``.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from groove_sc import tl

PKG = Path(importlib.util.find_spec("groove_sc").submodule_search_locations[0])
SRC = PKG.parent
FORBIDDEN = ("anndata", "mudata")


# --------------------------------------------------------------------------------------------
# the import graph
# --------------------------------------------------------------------------------------------
def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _imports(tree: ast.Module, *, module_level: bool) -> list[ast.Import | ast.ImportFrom]:
    """Import statements: executed at import time (``module_level``) or anywhere."""
    if not module_level:
        return [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    out, stack = [], list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        elif isinstance(node, (ast.If, ast.Try)):
            stack += node.body + node.orelse + getattr(node, "finalbody", [])
            stack += [s for h in getattr(node, "handlers", []) for s in h.body]
    return out


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Absolute names of the modules an import statement imports (relative ones resolved)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    return [prefix] + [f"{prefix}.{a.name}" for a in node.names]


def _graph(*, module_level: bool) -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        found = set()
        for node in _imports(tree, module_level=module_level):
            found |= set(_targets(name, path.name == "__init__.py", node))
        graph[name] = {t for t in found if t in MODULES and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    state: dict[str, int] = {}
    found: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                found.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, path)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("module_level", [True, False], ids=["module_level", "with_local"])
def test_no_import_cycle_in_the_package(module_level):
    """No cycle among ``groove_sc`` modules; not even through function-local imports."""
    assert len(MODULES) > 40
    graph = _graph(module_level=module_level)
    assert "groove_sc.ot._solvers" in graph["groove_sc.ot"]
    assert _cycles(graph) == []


def test_every_module_imports_in_a_fresh_interpreter():
    code = (
        "import importlib, pkgutil, groove_sc\n"
        "names = [m.name for m in pkgutil.walk_packages(groove_sc.__path__, 'groove_sc.')\n"
        "         if not m.name.endswith('__main__')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "print(len(names))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert int(out.stdout.split()[-1]) >= len(MODULES) - 2


# --------------------------------------------------------------------------------------------
# the boundary of the ot layer
# --------------------------------------------------------------------------------------------
def _forbidden_imports(source: str, module: str, is_package: bool = False) -> list[str]:
    """What a module of ``groove_sc.ot`` must not import: AnnData, MuData, the rest of us."""
    tree = ast.parse(source)
    bad = []
    for node in _imports(tree, module_level=False):
        targets = _targets(module, is_package, node)
        for target in targets if isinstance(node, ast.Import) else targets[:1]:
            top = target.split(".")[0]
            outside = top == "groove_sc" and not (target + ".").startswith("groove_sc.ot.")
            if top in FORBIDDEN or outside:
                bad.append(target)
    return bad


def test_the_boundary_check_can_fail():
    src = "import numpy\nimport anndata as ad\nfrom ..tl import align\nfrom ._blocks import pack\n"
    assert _forbidden_imports(src, "groove_sc.ot._x") == ["anndata", "groove_sc.tl"]


def test_ot_modules_import_neither_anndata_nor_mudata_nor_tl():
    files = sorted((PKG / "ot").glob("*.py"))
    assert {p.stem for p in files} >= {"_blocks", "_costs", "_sinkhorn", "_solvers", "_dask"}
    for path in files:
        bad = _forbidden_imports(path.read_text(), _module_name(path), path.stem == "__init__")
        assert not bad, f"{path.name} imports {bad}"


def test_ot_loads_without_anndata_in_a_fresh_interpreter():
    """With the parent package stubbed (its ``__init__`` imports everything)."""
    code = (
        "import importlib, pkgutil, sys, types\n"
        f"pkg = types.ModuleType('groove_sc'); pkg.__path__ = [{str(PKG)!r}]\n"
        "sys.modules['groove_sc'] = pkg\n"
        "import groove_sc.ot\n"
        "for info in pkgutil.iter_modules(groove_sc.ot.__path__):\n"
        "    importlib.import_module('groove_sc.ot.' + info.name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('anndata', 'mudata')\n"
        "             or (m.startswith('groove_sc.') and not m.startswith('groove_sc.ot')))\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[]"


def test_no_tl_file_above_600_lines():
    sizes = {p.name: len(p.read_text().splitlines()) for p in (PKG / "tl").glob("*.py")}
    assert sizes and max(sizes.values()) <= 600, sizes


def test_get_coupling_is_public():
    assert "get_coupling" in tl.__all__
    assert tl.get_coupling is tl._coupling.get_coupling
