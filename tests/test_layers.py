"""The import layers of docs/ARCHITECTURE.md, kept: a module imports only from its own
layer or the layers below it (every import counts, the lazy ones inside functions
too), no module imports another's private ``_name``, and the check registry loads check
modules only. The layer table here is the one the architecture page shows."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "dataqa"

# top to bottom; a module belongs to the first layer with a prefix it starts with
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("entry points", ("dataqa.cli", "dataqa.project")),
    ("pipeline steps", ("dataqa.steps",)),
    ("reports", ("dataqa.report",)),
    ("tuning", ("dataqa.tune",)),
    ("preparation", ("dataqa.prepare",)),
    ("review", ("dataqa.review",)),
    ("gate and metrics", ("dataqa.gate", "dataqa.headline", "dataqa.evidence")),
    ("checks", ("dataqa.checks",)),
    ("training engine", ("dataqa.engine",)),
    ("augmentation", ("dataqa.augmentation",)),
    ("dataset", ("dataqa.dataset",)),
    ("foundations", ("dataqa.params", "dataqa.errors", "dataqa.io", "dataqa.text",
                     "dataqa.database", "dataqa.workers", "dataqa.labels",
                     "dataqa.model_strength", "dataqa.cluster", "dataqa")),
]


def layer_of(module: str) -> int:
    for i, (_, prefixes) in enumerate(LAYERS):
        # "dataqa" (the package's __init__) names itself only, not what lies below it
        if any(module == p or (p != "dataqa" and module.startswith(p + ".")) for p in prefixes):
            return i
    raise AssertionError(f"{module}: in no layer of tests/test_layers.py (add it there "
                         f"and to docs/ARCHITECTURE.md's layer table)")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, names) of every dataqa import in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and (node.module == "dataqa" or node.module.startswith("dataqa.")):
            out.append((node.lineno, node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names
                    if a.name == "dataqa" or a.name.startswith("dataqa.")]
    return out


def upward_imports(files: list[Path], *, here: str | None = None) -> list[str]:
    """One line per import of a layer above the importing module's (``here``: the
    module name of every file, default: from its path)."""
    bad = []
    for path in files:
        mine = here or module_name(path)
        for line, target, names in imports(path):
            # `from dataqa.x import y` may name a module y: judge the module imported
            full = [f"{target}.{n}" for n in names
                    if (PKG.parent / f"{target}.{n}".replace(".", "/")).with_suffix(".py").is_file()
                    or (PKG.parent / f"{target}.{n}".replace(".", "/")).is_dir()]
            for mod in full or [target]:
                if layer_of(mod) < layer_of(mine):
                    bad.append(f"{path.name}:{line}: {mine} "
                               f"({LAYERS[layer_of(mine)][0]}) imports {mod} "
                               f"({LAYERS[layer_of(mod)][0]}), a layer above")
    return bad


SOURCES = sorted(PKG.rglob("*.py"))


def test_imports_point_down() -> None:
    assert upward_imports(SOURCES) == []


def test_an_upward_import_is_caught(tmp_path: Path) -> None:
    # what the learning curve once did: the engine importing from the checks
    fake = tmp_path / "learning_curve.py"
    fake.write_text("def f():\n    from dataqa.checks.base import Check\n", encoding="utf-8")
    found = upward_imports([fake], here="dataqa.engine.learning_curve")
    assert len(found) == 1 and "training engine" in found[0] and "checks" in found[0]


def test_no_private_name_is_imported_across_modules() -> None:
    bad = [f"{p.relative_to(REPO)}:{line}: from {target} import {n}"
           for p in SOURCES for line, target, names in imports(p)
           for n in names if n.startswith("_") and not n.startswith("__")]
    assert bad == []


def test_the_layer_table_is_the_architecture_page() -> None:
    page = (REPO / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| ([a-z][a-z ]+) \|", page, flags=re.M)
    assert [r for r in rows if r != "layer"] == [name for name, _ in LAYERS]


def test_the_registry_imports_check_modules_only() -> None:
    from dataqa.checks import BUILTIN

    registering = sorted(p.stem for p in (PKG / "checks").glob("*.py")
                         if "@register" in p.read_text(encoding="utf-8"))
    assert sorted(BUILTIN) == registering


@pytest.mark.parametrize("layer", [name for name, _ in LAYERS])
def test_every_layer_holds_code(layer: str) -> None:
    prefixes = dict(LAYERS)[layer]
    assert any(module_name(p) == pre or module_name(p).startswith(pre + ".")
               for p in SOURCES for pre in prefixes), f"layer {layer}: no module"
