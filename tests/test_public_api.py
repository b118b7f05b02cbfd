"""Curated exports: fundarb.core re-exports what its modules declare, and the core stays pure."""

from __future__ import annotations

import ast
import importlib
import re
import sys
from pathlib import Path

import pytest

import fundarb.core

#: the modules whose public names fundarb.core must re-export
REEXPORTED = ("fundarb.core.model", "fundarb.core.errors", "fundarb.core.venue_events")
CORE_DIR = Path(fundarb.core.__file__).resolve().parent


def test_every_name_in_all_exists_once() -> None:
    names = fundarb.core.__all__
    assert len(names) == len(set(names)), "duplicate names in fundarb.core.__all__"
    missing = [n for n in names if not hasattr(fundarb.core, n)]
    assert not missing, f"fundarb.core.__all__ lists names it does not define: {missing}"


@pytest.mark.parametrize("module_name", REEXPORTED)
def test_module_public_names_are_reexported_as_the_same_objects(module_name: str) -> None:
    module = importlib.import_module(module_name)
    for name in module.__all__:
        assert name in fundarb.core.__all__, f"{module_name}.{name} is not exported by fundarb.core"
        assert getattr(fundarb.core, name) is getattr(module, name)


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from fundarb.core import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(fundarb.core.__all__)


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", sorted(CORE_DIR.glob("*.py")), ids=lambda p: p.name)
def test_core_imports_only_stdlib_and_attrs(path: Path) -> None:
    allowed = set(sys.stdlib_module_names) | {"attrs", "fundarb", "__future__"}
    forbidden = {"trio", "logging", "asyncio", "time", "socket", "threading"}
    roots = _imported_roots(path)
    assert roots <= allowed, f"{path.name} imports outside stdlib + attrs: {sorted(roots - allowed)}"
    assert not roots & forbidden, f"{path.name} imports I/O or clock modules: {sorted(roots & forbidden)}"
    fundarb_imports = {
        node.module
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fundarb")
    }
    outside = {m for m in fundarb_imports if not m.startswith("fundarb.core")}
    assert not outside, f"{path.name} imports from the shell: {sorted(outside)}"


OPS = Path(__file__).resolve().parent.parent / "ops"


def _exposed_series_names() -> set[str]:
    metrics = pytest.importorskip("fundarb.metrics", reason="fundarb.metrics has not landed yet")
    names: set[str] = set()
    for family in metrics.create_metrics().registry.collect():
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_count", "_sum", "_created"),
            "summary": ("_count", "_sum", "_created"),
        }.get(family.type, ("",))
        names |= {family.name + s for s in suffixes}
    return names


def test_alert_rules_use_only_metrics_fundarb_exposes() -> None:
    """Operators' alerts are part of the public surface: a renamed metric must not silence them."""
    text = (OPS / "alerts.yml").read_text(encoding="utf-8")
    used = set(re.findall(r"\bfundarb_[a-z_]+", text))
    assert used, "no fundarb_ metric in ops/alerts.yml"
    unknown = used - _exposed_series_names()
    assert not unknown, f"ops/alerts.yml uses metrics that fundarb.metrics does not define: {sorted(unknown)}"


def test_alert_runbook_links_point_at_runbook_sections() -> None:
    runbook = (OPS / "RUNBOOK.md").read_text(encoding="utf-8")
    slugs = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in runbook.splitlines()
        if line.startswith("## ")
    }
    links = re.findall(r"RUNBOOK\.md#([a-z0-9-]+)", (OPS / "alerts.yml").read_text(encoding="utf-8"))
    assert links
    assert set(links) <= slugs, f"dangling runbook anchors: {sorted(set(links) - slugs)}"
