"""The shape the code keeps (issue 12): small modules and classes, and no circle of imports, so that each module
can be read, and imported, on its own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCES = sorted((Path(__file__).resolve().parents[2] / "packages").glob("*/src/*/*.py"))
MODULE_LINES = 400
CLASS_LINES = 200


def module_name(path: Path) -> str:
    return f"{path.parent.name}.{path.stem}" if path.stem != "__init__" else path.parent.name


def imports_at_import_time(path: Path) -> set[str]:
    """The modules that ``path`` imports when it is imported: not inside functions, not under ``if TYPE_CHECKING:``.
    Importing another package's module imports that package first; a module's own package is already being
    imported (Python hands out the partly made package), so a relative import depends on the module it names."""
    package = path.parent.name
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.ImportFrom) and node.level:
            target = f"{package}.{node.module}" if node.module else package
            found |= ({target} if node.module else set()) | {f"{target}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            for name in names:
                parts = name.split(".")
                found |= {".".join(parts[: i + 1]) for i in range(len(parts))}
            if isinstance(node, ast.ImportFrom):
                found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_sources_found() -> None:
    assert len(SOURCES) > 20


@pytest.mark.parametrize("path", SOURCES, ids=module_name)
def test_modules_and_classes_are_small(path: Path) -> None:
    text = path.read_text()
    assert text.count("\n") <= MODULE_LINES, f"{module_name(path)}: split it by concern"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef):
            assert node.end_lineno is not None
            assert node.end_lineno - node.lineno + 1 <= CLASS_LINES, f"{module_name(path)}.{node.name}"


def circle_of_imports(sources: list[Path]) -> list[str] | None:
    """A circle in the import-time graph of ``sources`` (its modules in order), or None."""
    modules = {module_name(path): path for path in sources}
    graph = {name: imports_at_import_time(path) & set(modules) - {name} for name, path in modules.items()}
    done: set[str] = set()
    trail: list[str] = []

    def visit(name: str) -> list[str] | None:
        trail.append(name)
        for target in sorted(graph[name]):
            if target in trail:
                return [*trail[trail.index(target) :], target]
            if target not in done and (circle := visit(target)):
                return circle
        trail.pop()
        done.add(name)
        return None

    return next((circle for name in sorted(graph) if name not in done and (circle := visit(name))), None)


def test_no_circle_of_imports() -> None:
    assert circle_of_imports(SOURCES) is None


def test_a_circle_is_found(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from ._a import A\n")
    (package / "_a.py").write_text(
        "from typing import TYPE_CHECKING\nfrom ._b import B\nif TYPE_CHECKING:\n    from ._c import C\n"
    )
    (package / "_b.py").write_text("def late():\n    from ._a import A\n")
    (package / "_c.py").write_text("from . import _a\n")
    sources = sorted(package.glob("*.py"))
    assert circle_of_imports(sources) is None  # (only inside a function, or for type checkers)
    (package / "_b.py").write_text("import os\nfrom ._a import A\n")
    assert circle_of_imports(sources) == ["pkg._a", "pkg._b", "pkg._a"]
