"""Dependencies point one way: the pure core at the bottom, engines and in-process adapters
above it, the CLI commands and the services on top. Every import in a module counts, also
the ones inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "optscale"

# layer of each optscale module (by dotted-name prefix); anything unlisted is core
ADAPTERS = ("optscale.engines", "optscale.inprocess")
TOP = ("optscale.cli", "optscale.commands", "optscale.__main__", "optscale.protogen")
FORBIDDEN = {
    "core": ("services", *ADAPTERS, *TOP),
    "adapter": ("services", *TOP),
}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(name: str) -> str:
    def under(prefixes: tuple[str, ...]) -> bool:
        return any(name == p or name.startswith(p + ".") for p in prefixes)

    if under(TOP):
        return "top"
    if under(ADAPTERS):
        return "adapter"
    return "core"


def imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def violations(path: Path, module: str | None = None) -> list[str]:
    layer = _layer(module or _module(path))
    bad = FORBIDDEN.get(layer, ())
    return sorted(i for i in imports(path) if any(i == b or i.startswith(b + ".") for b in bad))


MODULES = sorted(p for p in PKG.rglob("*.py") if "v1" not in p.relative_to(PKG).parts)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_a_layer_above_its_own(path: Path) -> None:
    assert violations(path) == [], f"{_module(path)} ({_layer(_module(path))}) imports upward"


def test_the_check_catches_an_upward_import_even_inside_a_function(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("import json\n\ndef f():\n    from services.controller import worker\n")
    assert violations(src, "optscale.loop") == [
        "services.controller",
        "services.controller.worker",
    ]
    assert violations(src, "optscale.engines.generation.sim") != []
    assert violations(src, "optscale.commands.submit") == []
    src.write_text("from optscale.engines.scoring import sim\n")
    assert violations(src, "optscale.policies") != []
    assert violations(src, "optscale.inprocess") == []
