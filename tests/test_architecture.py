"""The layering of docs/architecture.md, checked on the code: src/ (the library) never
imports experiments/ (the app), and no module import cycle exists."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Modules imported at module level or inside functions (both run when called)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def project_graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for folder in ("src", "experiments")
               for path in (REPO / folder).rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        # "from src.cli import study" imports the module src.cli.study; keep project modules.
        graph[name] = {imported for imported in imports_of(path) if imported in modules}
    return graph


def test_the_library_never_imports_the_app():
    offenders = {name: sorted(i for i in imported if i.split(".")[0] == "experiments")
                 for name, imported in project_graph().items() if name.startswith("src")}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_no_import_cycles():
    graph = project_graph()
    state: dict[str, str] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for child in sorted(graph.get(node, ())):
            if state.get(child) == "open":
                cycles.append(stack[stack.index(child):] + [child])
            elif child not in state:
                visit(child)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    # A package's __init__ importing its own submodules is not a cycle of the code.
    real = [cycle for cycle in cycles
            if not all(a.startswith(b + ".") or b.startswith(a + ".")
                       for a, b in zip(cycle, cycle[1:], strict=False))]
    assert real == []


# docs/architecture.md, rule 3: a package imports only packages of lower layers.
LAYERS = [("core",), ("datamodules", "runs", "reporting"), ("callbacks",), ("modules",),
          ("evaluation",), ("sweeps", "benchmark"), ("studies",), ("cli",)]


def test_library_packages_import_only_lower_layers():
    layer = {package: index for index, packages in enumerate(LAYERS) for package in packages}
    upward = set()
    for name, imported in project_graph().items():
        if not name.startswith("src.") or name.count(".") < 2:
            continue
        here = name.split(".")[1]
        for target in imported:
            there = target.split(".")[1] if target.startswith("src.") else None
            if there and there != here and layer[there] >= layer[here]:
                upward.add(f"{name} -> {target}")
    assert sorted(upward) == []
