"""The import graph of the project's packages: no cycles, and dependencies that point one way,
down to ``bench.core`` (module-level and deferred imports inside functions alike)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bench", "attacks", "baselines", "methods")


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def _imports() -> list[tuple[str, str, int]]:
    """``(importer, imported module, line)`` for every import of a project module."""
    modules = _modules()
    found = []
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}"
                           in modules else node.module for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and target not in PACKAGES:
                    found.append((name, target, node.lineno))
    return found


def _import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in _modules()}
    for importer, target, _ in _imports():
        graph[importer].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycles():
    graph = _import_graph()
    assert "bench.run.runner" in graph and "bench.core.api" in graph["bench.run.runner"]
    assert _cycles(graph) == []


def _third_party_imports() -> set[str]:
    import sys

    found: set[str] = set()
    for path in _modules().values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m not in PACKAGES}


def test_every_imported_distribution_is_declared():
    import re
    from importlib.metadata import packages_distributions

    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra

    def normal(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    declared = {normal(re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0]) for r in requirements}
    providers = packages_distributions()
    missing = {}
    for module in sorted(_third_party_imports()):
        names = {normal(d) for d in providers.get(module, [module])}
        if not names & declared:
            missing[module] = sorted(names)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


# ----------------------------------------------------------------------------- layering

#: the layers each layer may import, besides itself. A layer is a subpackage of bench/, "app"
#: for bench's top-level modules (__main__, gate, compare: the commands) or a plugin package.
#: Nothing imports "app"; bench.core imports no other layer.
ALLOWED = {
    "core": set(),
    "sources": {"core"},
    "metrics": {"core"},
    # the run builds chained attacks from --attacks specs (attacks.chain)
    "run": {"core", "sources", "metrics", "attacks"},
    # metric columns and directions (bench.metrics); results are read through bench.core
    "report": {"core", "metrics"},
    # training clips and logos (sources), validation PSNR (metrics), the H.264 proxy (attacks)
    "train": {"core", "sources", "metrics", "attacks"},
    "app": {"core", "sources", "metrics", "run", "report", "train"},
    # the learned H.264 proxy is fitted on generated clips and scored with PSNR
    "attacks": {"core", "sources", "metrics"},
    "baselines": {"core"},
    # Safe-Sora shares building blocks with the baselines (baselines._common)
    "methods": {"core", "baselines"},
}


def _layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "bench":
        return parts[0]
    if len(parts) > 1 and (ROOT / "bench" / parts[1] / "__init__.py").is_file():
        return parts[1]
    return "app"


def _layer_violations(imports: list[tuple[str, str, int]], layer=_layer) -> list[str]:
    found = []
    for importer, target, line in imports:
        own, other = layer(importer), layer(target)
        if own == other:
            continue
        allowed = ALLOWED.get(own)
        if allowed is None:
            found.append(f"{importer}: layer {own!r} is not in ALLOWED")
        elif other not in allowed:
            may = ", ".join(sorted(allowed)) or "nothing outside itself"
            found.append(f"{importer} (line {line}) imports {target}: {own!r} may import "
                         f"{may}, not {other!r}")
    return found


def test_the_layering_check_names_a_planted_upward_import():
    planted = [("bench.core.results", "bench.report.build", 3),
               ("bench.report.build", "bench.gate", 7),
               ("bench.run.runner", "bench.metrics.fvd", 9)]
    assert _layer_violations(planted) == [
        "bench.core.results (line 3) imports bench.report.build: 'core' may import nothing "
        "outside itself, not 'report'",
        "bench.report.build (line 7) imports bench.gate: 'report' may import core, metrics, "
        "not 'app'"]


def test_every_layer_is_in_the_table():
    subpackages = {p.parent.name for p in (ROOT / "bench").glob("*/__init__.py")}
    layers = {_layer(name) for name in _modules()}
    assert subpackages <= set(ALLOWED), sorted(subpackages - set(ALLOWED))
    assert layers <= set(ALLOWED), sorted(layers - set(ALLOWED))
    assert {"core", "sources", "metrics", "run", "report", "train"} <= subpackages


def test_dependencies_point_down_to_core():
    violations = _layer_violations(_imports())
    assert not violations, "imports against the layering:\n" + "\n".join(violations)

