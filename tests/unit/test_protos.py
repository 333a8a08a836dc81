"""The committed stubs are exactly what protoc generates from protos/; the API follows the house rules."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_stubs_match_protos(tmp_path):
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    generated = module.generate(tmp_path)
    for pkg in module.PACKAGES:
        committed = ROOT / pkg
        mine = sorted(p.name for p in generated if p.parent == tmp_path / pkg)
        assert mine == sorted(p.name for p in committed.iterdir() if p.is_file() and p.suffix in (".py", ".pyi")), pkg
        for path in (p for p in generated if p.parent == tmp_path / pkg):
            assert path.read_bytes() == (committed / path.name).read_bytes(), f"{pkg}/{path.name} differs: run `make protos`"


def test_every_rpc_has_its_own_request_and_response_in_its_package():
    from designsearch.internal.v1 import embedder_pb2, search_pb2, segmenter_pb2
    from designsearch.v1 import gateway_pb2

    packages = {gateway_pb2: "designsearch.v1.", embedder_pb2: "designsearch.internal.v1.",
                search_pb2: "designsearch.internal.v1.", segmenter_pb2: "designsearch.internal.v1."}
    for module, package in packages.items():
        for service in module.DESCRIPTOR.services_by_name.values():
            assert service.full_name.startswith(package)
            for method in service.methods:
                assert method.input_type.name == f"{method.name}Request", method.full_name
                assert method.output_type.name == f"{method.name}Response", method.full_name


def test_the_public_api_does_not_depend_on_the_internal_one():
    for proto in (ROOT / "protos" / "designsearch" / "v1").glob("*.proto"):
        assert "designsearch/internal" not in proto.read_text(), proto.name


def test_closed_sets_are_enums():
    from designsearch.internal.v1 import embedder_pb2, search_pb2
    from designsearch.v1 import common_pb2

    assert common_pb2.Crop.DESCRIPTOR.fields_by_name["kind"].enum_type.name == "CropKind"
    assert common_pb2.Filters.DESCRIPTOR.fields_by_name["kinds"].enum_type.name == "CropKind"
    assert embedder_pb2.EmbedRequest.DESCRIPTOR.fields_by_name["views"].enum_type.name == "View"
    assert search_pb2.SearchPointsRequest.DESCRIPTOR.fields_by_name["using"].enum_type.name == "View"
