"""Generate the Python stubs in designsearch/v1/ from protos/designsearch/v1/*.proto.

Usage: python scripts/gen_protos.py [--out DIR]   (DIR defaults to the repo root)
The generated files are committed; tests/unit/test_protos.py regenerates them and fails on any difference.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]


def generate(out: Path) -> list[Path]:
    """Run protoc (grpcio-tools) on every proto; returns the generated files."""
    protos = sorted((ROOT / "protos" / "designsearch" / "v1").glob("*.proto"))
    include = Path(grpc_tools.__file__).parent / "_proto"
    (out / "designsearch" / "v1").mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{ROOT / 'protos'}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *[str(p) for p in protos],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    init = out / "designsearch" / "v1" / "__init__.py"
    init.write_text('"""Generated protobuf and gRPC stubs (package designsearch.v1). Do not edit."""\n')
    return sorted((out / "designsearch" / "v1").glob("*"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT)
    generate(parser.parse_args().out)
    sys.exit(0)
