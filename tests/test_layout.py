"""The rooms of the house import only downward: no module imports (at the top or lazily inside a
function) a package that sits above its own in LAYERS."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "collapseguard"
# bottom to top; rooms on one line may not import each other
LAYERS = [("errors",), ("io",), ("detectors",), ("scan",), ("provenance",), ("curate", "hooks"), ("simulate",),
          ("cli",), ("__main__",)]
RANK = {room: i for i, rooms in enumerate(LAYERS) for room in rooms}


def room(module: str) -> str:
    return module.split(".")[1].removesuffix(".py")


def imported_modules(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("collapseguard."):
            yield node.lineno, node.module
        elif isinstance(node, ast.ImportFrom) and node.module == "collapseguard":
            for alias in node.names:  # a room, or the package's own attributes (__version__: the ground floor)
                if (ROOT / alias.name).is_dir() or (ROOT / f"{alias.name}.py").is_file():
                    yield node.lineno, f"collapseguard.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("collapseguard."):
                    yield node.lineno, alias.name


def test_every_module_sits_in_a_room():
    rooms = {p.relative_to(ROOT).parts[0].removesuffix(".py") for p in ROOT.rglob("*.py")} - {"__init__"}
    assert rooms <= set(RANK), sorted(rooms - set(RANK))


def test_imports_run_downward():
    upward = []
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).parts
        if len(parts) == 1 and parts[0] == "__init__.py":
            continue
        own = parts[0].removesuffix(".py")
        for line, module in imported_modules(path):
            other = room(module)
            if other != own and RANK[other] >= RANK[own]:
                upward.append(f"{path.relative_to(ROOT.parent)}:{line} imports {module} ({own} -> {other})")
    assert not upward, "\n".join(upward)
