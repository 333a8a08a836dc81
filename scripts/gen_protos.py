"""Generate the Python stubs of the public and the internal API from protos/.

``protos/designsearch/v1/*.proto`` (public: gateway + common) → ``designsearch/v1/``;
``protos/designsearch/internal/v1/*.proto`` (segmenter, embedder, search) → ``designsearch/internal/v1/``.

Usage: python scripts/gen_protos.py [--out DIR]   (DIR defaults to the repo root)
The generated files are committed; tests/unit/test_protos.py regenerates them and fails on any difference.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import google.rpc
import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
#: Proto package folders (relative to protos/) and the docstring of their generated package.
PACKAGES = {
    "designsearch/v1": "Generated protobuf and gRPC stubs of the public API (package designsearch.v1). Do not edit.",
    "designsearch/internal/v1": "Generated stubs of the internal API between the services "
                                "(package designsearch.internal.v1). Do not edit.",
}


def generate(out: Path) -> list[Path]:
    """Run protoc (grpcio-tools) on every proto; returns the generated files (sorted)."""
    protos = sorted(p for pkg in PACKAGES for p in (ROOT / "protos" / pkg).glob("*.proto"))
    include = Path(grpc_tools.__file__).parent / "_proto"
    googleapis = Path(google.rpc.__path__[0]).parents[1]  # google/rpc/status.proto ships with googleapis-common-protos
    for pkg in PACKAGES:
        (out / pkg).mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{ROOT / 'protos'}",
        f"-I{include}",
        f"-I{googleapis}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *[str(p) for p in protos],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    (out / "designsearch" / "internal").mkdir(exist_ok=True)
    (out / "designsearch" / "internal" / "__init__.py").write_text('"""The internal API (generated stubs in v1/)."""\n')
    files = []
    for pkg, doc in PACKAGES.items():
        (out / pkg / "__init__.py").write_text(f'"""{doc}"""\n')
        files += sorted((out / pkg).glob("*"))
    return files


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT)
    generate(parser.parse_args().out)
    sys.exit(0)
