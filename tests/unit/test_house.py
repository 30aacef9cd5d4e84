"""No module over 400 lines and no function over 80 in yadtq_app/, agents/ and tables/."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("yadtq_app", "agents", "tables")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int, int]]:
    """Return (qualified name, first line, length) of each function longer than ``limit`` lines.

    A function's length runs from its ``def`` line to its last line, nested functions and
    classes included; methods and nested functions are measured on their own as well.
    """
    found: list[tuple[str, int, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    length = (child.end_lineno or child.lineno) - child.lineno + 1
                    if length > limit:
                        found.append((name, child.lineno, length))
                visit(child, f"{name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return found


def module_lines(source: str) -> int:
    """Return the number of lines in ``source``."""
    return len(source.splitlines())


def _modules() -> list[Path]:
    found = sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))
    assert len(found) > 20, found  # the walk did find the code
    return found


def test_no_module_is_over_the_limit() -> None:
    offenders = []
    for path in _modules():
        lines = module_lines(path.read_text(encoding="utf-8"))
        if lines > MAX_MODULE_LINES:
            offenders.append(f"{path.relative_to(ROOT)}: {lines} lines")
    assert not offenders, f"modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(offenders)


def test_no_function_is_over_the_limit() -> None:
    offenders = []
    for path in _modules():
        for name, line, length in long_functions(path.read_text(encoding="utf-8")):
            offenders.append(f"{path.relative_to(ROOT)}:{line} {name}: {length} lines")
    assert not offenders, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(offenders)


def _function(name: str, body_lines: int, indent: str = "") -> str:
    return f"{indent}def {name}():\n" + f"{indent}    x = 1\n" * body_lines


def test_the_probes_can_fail() -> None:
    """Control: the probes flag what is over a limit and pass what is at it."""
    assert long_functions(_function("at_limit", MAX_FUNCTION_LINES - 1)) == []
    assert long_functions(_function("over", MAX_FUNCTION_LINES)) == [("over", 1, MAX_FUNCTION_LINES + 1)]
    method = "class C:\n" + _function("m", MAX_FUNCTION_LINES, indent="    ")
    assert long_functions(method) == [("C.m", 2, MAX_FUNCTION_LINES + 1)]
    nested = "async def outer():\n" + _function("inner", MAX_FUNCTION_LINES, indent="    ")
    assert [name for name, _, _ in long_functions(nested)] == ["outer", "outer.inner"]
    assert module_lines("x = 1\n" * MAX_MODULE_LINES) == MAX_MODULE_LINES
    assert module_lines("x = 1\n" * (MAX_MODULE_LINES + 1)) > MAX_MODULE_LINES
