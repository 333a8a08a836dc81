"""The layering rules of the README's Architecture section, checked on the source (issue 10)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ("designsearch/v1/", "designsearch/internal/v1/")


def _sources(*folders: str) -> list[Path]:
    return [p for f in folders for p in sorted((ROOT / f).rglob("*.py"))
            if not str(p.relative_to(ROOT)).startswith(GENERATED)]


def _imports(path: Path) -> set[str]:
    """Top-level package names of every import in ``path`` (module level and inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_shared_package_imports_nothing_above_it():
    composition_root = {"cli.py", "procs.py"}
    for path in _sources("designsearch"):
        if path.name in composition_root:
            continue
        above = {n for n in _imports(path) if n.split(".")[0] in ("services", "gateway", "training")}
        assert not above, f"{path.relative_to(ROOT)} imports {sorted(above)}"


def test_serving_code_imports_no_torch():
    for path in _sources("designsearch", "services", "gateway"):
        torch = {n for n in _imports(path) if n.split(".")[0] in ("torch", "efficientnet_lite_pytorch", "albumentations")}
        assert not torch, f"{path.relative_to(ROOT)} imports {sorted(torch)}"


def test_the_gateway_core_imports_no_grpc_and_no_service():
    transport = {"servicer.py", "server.py", "backends.py", "__main__.py"}
    for path in _sources("gateway"):
        if path.name in transport:
            continue
        bad = {n for n in _imports(path) if n.split(".")[0] in ("grpc", "services") or n.startswith("designsearch.v1")
               or n.startswith("designsearch.internal") or n in ("designsearch.server", "designsearch.rpc")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_no_source_file_over_500_lines():
    for path in _sources("designsearch", "services", "gateway", "training", "benchmarks", "scripts", "tests"):
        n = len(path.read_text().splitlines())
        assert n <= 500, f"{path.relative_to(ROOT)} has {n} lines"
