"""The package shows its pipeline: import order is stage order, and no module
reaches into another's private names (style habit 13)."""

from __future__ import annotations

import ast
from pathlib import Path

import harness

PACKAGE = Path(harness.__file__).parent

# The stages in order; a module may import its own stage or an earlier one only.
STAGES = ["", "repo", "sandbox", "agents", "gateway", "run", "integrate", "gate", "bench", "cli", "__main__"]


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _imports(name: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(absolute module, imported names, line) for every harness import, lazy ones too."""
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod == "harness" or mod.startswith("harness."):
                out.append((mod, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("harness.")]
    return out


def _stage(module: str) -> int:
    parts = module.split(".")
    sub = parts[1] if len(parts) > 1 else ""
    if sub in STAGES:
        return STAGES.index(sub)
    assert not (PACKAGE / sub).is_dir(), f"harness/{sub}/ has no place in STAGES: say where it stands"
    return 0  # a top-level module (records, config, ...): below every stage


def test_no_module_imports_a_later_stage():
    wrong = []
    for name, path in _modules().items():
        for mod, names, line in _imports(name, path):
            targets = [mod] + ([f"{mod}.{n}" for n in names] if mod == "harness" else [])
            for target in targets:
                if _stage(target) > _stage(name):
                    wrong.append(f"{name}:{line} imports {target}")
    assert wrong == []


def test_no_module_imports_a_private_name_of_another():
    wrong = [f"{name}:{line} imports {n} from {mod}"
             for name, path in _modules().items()
             for mod, names, line in _imports(name, path)
             for n in names if n.startswith("_") and not n.endswith("__") and mod != name]  # dunders are public
    assert wrong == []
