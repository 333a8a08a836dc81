"""The layering rules of the README's Architecture section, checked on the source (issue 10)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ("designsearch/v1/", "designsearch/internal/v1/")
#: The installed names of the layers above the shared package (their source is at the top of the checkout).
ABOVE = ("designsearch.services", "designsearch.gateway", "designsearch.training", "designsearch.web")


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
        above = {n for n in _imports(path) if n.split(".")[0] in ("services", "gateway", "training", "web")
                 or n.startswith(ABOVE)}
        assert not above, f"{path.relative_to(ROOT)} imports {sorted(above)}"


def test_serving_code_imports_no_torch():
    for path in _sources("designsearch", "services", "gateway", "web"):
        torch = {n for n in _imports(path) if n.split(".")[0] in ("torch", "efficientnet_lite_pytorch", "albumentations")}
        assert not torch, f"{path.relative_to(ROOT)} imports {sorted(torch)}"


def test_the_gateway_core_imports_no_grpc_and_no_service():
    transport = {"servicer.py", "server.py", "backends.py", "__main__.py"}
    for path in _sources("gateway"):
        if path.name in transport:
            continue
        bad = {n for n in _imports(path) if n.split(".")[0] in ("grpc", "services") or n.startswith("designsearch.services")
               or n.startswith("designsearch.v1")
               or n.startswith("designsearch.internal") or n in ("designsearch.server", "designsearch.rpc")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_web_page_uses_only_the_public_api():
    """No second data path: the page server reaches designs only through the gateway's public gRPC API."""
    for path in _sources("web"):
        bad = {n for n in _imports(path) if n.split(".")[0] in ("services", "gateway", "training", "redis", "sqlalchemy",
                                                                   "qdrant_client", "qdrant_edge", "onnxruntime")
               or n.startswith(("designsearch.services", "designsearch.gateway", "designsearch.internal"))}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_no_source_file_over_500_lines():
    for path in _sources("designsearch", "services", "gateway", "training", "web", "benchmarks", "scripts", "tests"):
        n = len(path.read_text().splitlines())
        assert n <= 500, f"{path.relative_to(ROOT)} has {n} lines"


def test_one_installed_package_lists_every_package_folder():
    """pyproject.toml maps services/, gateway/ and training/ under ``designsearch``; every folder with an
    ``__init__.py`` must be listed, or an installed (non-editable) copy would miss it."""
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed, dirs = set(cfg["packages"]), cfg["package-dir"]
    found = set()
    for top in ("designsearch", "services", "gateway", "training", "web"):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT).as_posix()
            for name, folder in dirs.items():
                if rel == folder or rel.startswith(folder + "/"):
                    rel = name.replace(".", "/") + rel[len(folder):]
            found.add(rel.replace("/", "."))
    assert found == listed
    assert not any(name.split(".")[0] in ("services", "gateway", "training", "web") for name in listed)
