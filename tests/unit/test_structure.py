"""The shape of the code, as CLAUDE.md writes it down: layers and what each may import, size limits, and lazy imports
that say why they are lazy. A change that breaks a rule fails here, with the module and line."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "sparkrun"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 50
MAX_COMMAND_LINES = 40

# Layer -> the sparkrun layers its modules may import at run time (imports under TYPE_CHECKING are free). The first
# part of a module's path under src/sparkrun names its layer. Read bottom-up: each layer builds on those it lists.
ALLOWED: dict[str, set[str]] = {
    "__init__": set(),
    "__main__": {"cli"},
    "errors": set(),
    "secrets": set(),
    "shell": set(),
    "config": {"errors"},
    "hosts": {"errors"},
    "clusters": {"errors", "config", "hosts"},
    "runtimes": {"errors"},
    "recipes": {"errors", "secrets", "config", "runtimes", "hosts", "plugins"},
    "plugins": {"errors", "runtimes"},
    "transport": {"errors", "config", "hosts", "shell"},
    "core": {"errors", "secrets", "hosts", "shell", "transport"},
    "models": {"errors", "config", "hosts", "shell", "transport", "core"},
    "jobs": {"errors", "config", "hosts", "clusters", "shell", "transport", "core"},
    "setup": {"errors", "config", "hosts", "clusters", "shell", "transport", "core"},
    "launch": {
        "errors",
        "secrets",
        "config",
        "hosts",
        "clusters",
        "shell",
        "transport",
        "core",
        "jobs",
        "recipes",
        "runtimes",
        "models",
        "__init__",
    },
    "distribution": {
        "errors",
        "config",
        "hosts",
        "clusters",
        "shell",
        "transport",
        "core",
        "jobs",
        "launch",
        "runtimes",
        "models",
    },
    "api": {
        "distribution",
        "errors",
        "config",
        "hosts",
        "clusters",
        "shell",
        "transport",
        "core",
        "jobs",
        "launch",
        "recipes",
        "runtimes",
        "plugins",
        "models",
        "setup",
    },
    # The CLI parses, calls the core API and renders; it never reaches the execution layers (transport, shell,
    # jobs, launch) itself. `core` only for rendering its events.
    "cli": {
        "cli",
        "secrets",
        "api",
        "errors",
        "config",
        "hosts",
        "clusters",
        "recipes",
        "plugins",
        "runtimes",
        "core",
        "__init__",
    },
}


# Modules another branch is reworking right now: checked again once it lands.
IN_FLIGHT: set[str] = set()


def in_flight(path: Path) -> None:
    if str(path.relative_to(SRC)) in IN_FLIGHT:
        pytest.xfail("being reworked on another branch")


def modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts)


def layer_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 else rel.stem


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _layer_name(name: str) -> str:
    return name if (SRC / name).is_dir() or (SRC / f"{name}.py").is_file() else "__init__"


def sparkrun_imports(tree: ast.Module) -> Iterator[tuple[int, str]]:
    skip = _type_checking_lines(tree)
    for node in ast.walk(tree):
        if node.lineno in skip if hasattr(node, "lineno") else False:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sparkrun":
            parts = node.module.split(".")
            if len(parts) == 1:  # `from sparkrun import x`: x is the layer (or a name of the package itself)
                yield from ((node.lineno, _layer_name(alias.name)) for alias in node.names)
            else:
                yield node.lineno, parts[1]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "sparkrun" and len(parts) > 1:
                    yield node.lineno, parts[1]


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_each_module_imports_only_the_layers_below_it(path: Path) -> None:
    layer = layer_of(path)
    assert layer in ALLOWED, f"{path}: layer {layer!r} is not in the layer table (tests/unit/test_structure.py)"
    tree = ast.parse(path.read_text())
    bad = [
        f"line {n}: imports sparkrun.{target}"
        for n, target in sparkrun_imports(tree)
        if target != layer and target not in ALLOWED[layer]
    ]
    assert not bad, f"{path.relative_to(SRC)} ({layer}) may import {sorted(ALLOWED[layer])}: " + "; ".join(bad)


def _is_click_command(node: ast.FunctionDef) -> bool:
    return any("command" in ast.unparse(d) or ".group" in ast.unparse(d) for d in node.decorator_list)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_modules_and_functions_stay_small(path: Path) -> None:
    in_flight(path)
    text = path.read_text()
    lines = text.count("\n")
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(SRC)}: {lines} lines (limit {MAX_MODULE_LINES})"
    assert "fmt: skip" not in text and "fmt: off" not in text, f"{path.relative_to(SRC)}: formatter switched off"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            limit = MAX_COMMAND_LINES if _is_click_command(node) else MAX_FUNCTION_LINES  # type: ignore[arg-type]
            assert size <= limit, f"{path.relative_to(SRC)}:{node.lineno} {node.name}: {size} lines (limit {limit})"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_every_lazy_import_says_why(path: Path) -> None:
    """An import inside a function is allowed only to keep start-up fast or break a real cycle, and says so."""
    in_flight(path)
    source = path.read_text().splitlines()
    tree = ast.parse("\n".join(source))
    missing = []
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.Import | ast.ImportFrom):
                here = source[node.lineno - 1]
                above = source[node.lineno - 2] if node.lineno > 1 else ""
                if "# deferred:" not in here and "# deferred:" not in above:
                    missing.append(f"line {node.lineno}: {here.strip()}")
    assert not missing, f"{path.relative_to(SRC)}: lazy imports without `# deferred: why`: " + "; ".join(missing)
