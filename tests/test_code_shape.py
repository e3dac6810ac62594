"""Rules of the code's shape, checked on the source: short functions, and one place that
knows the list of methods."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from deepclust.methods import registered_methods

PACKAGE = Path(__file__).resolve().parents[1] / "deepclust"
MAX_FUNCTION_LINES = 80


def _python_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function, its docstring not counted."""
    lines = node.end_lineno - node.lineno + 1
    first = node.body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        lines -= first.end_lineno - first.lineno + 1
    return lines


def long_functions(max_lines: int = MAX_FUNCTION_LINES) -> list[str]:
    """``path:function (lines)`` for every function of the package over ``max_lines``."""
    found = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = _body_lines(node)
                if lines > max_lines:
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{node.name} ({lines})")
    return found


def test_no_function_is_over_80_lines():
    assert long_functions() == []


def test_the_length_rule_sees_a_long_function(tmp_path):
    source = "def f():\n    '''Doc.'''\n" + "    x = 1\n" * 80
    node = ast.parse(source).body[0]
    assert _body_lines(node) == 81  # the def line and 80 statements


@pytest.mark.parametrize("path", _python_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_methods_package_names_several_methods(path):
    """Outside ``deepclust/methods/``, no module names two or more method classes: the
    command line, model files, tests helpers and benchmarks read the registry."""
    if PACKAGE / "methods" in path.parents:
        return
    names = {cls.__name__ for cls in registered_methods().values()}
    used = {
        node.id
        if isinstance(node, ast.Name)
        else node.attr
        if isinstance(node, ast.Attribute)
        else node.name
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, (ast.Name, ast.Attribute, ast.alias))
    }
    used |= {
        alias.name
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert len(names & used) <= 1, sorted(names & used)
