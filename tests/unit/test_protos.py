"""The committed stubs in designsearch/v1 are exactly what protoc generates from protos/."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_stubs_match_protos(tmp_path):
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    generated = module.generate(tmp_path)
    committed = ROOT / "designsearch" / "v1"
    names = sorted(p.name for p in generated)
    assert names == sorted(p.name for p in committed.iterdir() if p.is_file() and p.suffix in (".py", ".pyi"))
    for path in generated:
        assert path.read_bytes() == (committed / path.name).read_bytes(), f"{path.name} differs: run `make protos`"


def test_every_rpc_has_its_own_request_and_response():
    from designsearch.v1 import embedder_pb2, gateway_pb2, search_pb2, segmenter_pb2

    for module in (embedder_pb2, gateway_pb2, search_pb2, segmenter_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            assert service.full_name.startswith("designsearch.v1.")
            for method in service.methods:
                assert method.input_type.name == f"{method.name}Request", method.full_name
                assert method.output_type.name == f"{method.name}Response", method.full_name
