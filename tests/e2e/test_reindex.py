"""Model upgrade without downtime: reindex into a new collection under a stream of queries, then switch."""

from __future__ import annotations

import asyncio
from pathlib import Path

import onnx

from designsearch.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from designsearch.gateway.core import IndexItem


def _second_model(src: str, dst: Path) -> str:
    """The same network saved with another doc string: a different file, so a different model version."""
    model = onnx.load(src)
    model.doc_string = "designsearch test: upgraded model"
    onnx.save(model, str(dst))
    return str(dst)


async def test_reindex_under_queries_never_errors_and_switches(stack, tmp_path, small_catalogue, embedder_model, make_gateway_settings):
    import grpc

    from designsearch.gateway.server import create_server as create_gateway
    from designsearch.services.embedder.config import EmbedderSettings
    from designsearch.services.embedder.server import create_server as create_embedder

    catalogue, queries = small_catalogue
    new_embedder = await create_embedder(EmbedderSettings(port=0, model_path=_second_model(embedder_model, tmp_path / "v2.onnx")))
    gateway = await create_gateway(make_gateway_settings(
        stack, tmp_path, upgrade_embedder_addresses=[new_embedder.address], collection_prefix="upgrade",
        alias_refresh_s=0.2))
    core = gateway.core
    old_version = core.embedder_version
    new_version = new_embedder.embed_service.version
    assert old_version != new_version
    items = [IndexItem(i.design_id, i.brand, i.model, i.year, i.path.read_bytes(), i.path.name) for i in catalogue]
    try:
        for item in items:
            assert (await core.index_item(item)).status == "added"
        old_collection = core.collection
        channel = grpc.aio.insecure_channel(gateway.address)
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        seen_versions, errors, empties = set(), [], 0
        stop = asyncio.Event()

        async def query_stream():
            nonlocal empties
            payloads = [q.path.read_bytes() for q in queries]
            i = 0
            while not stop.is_set():
                try:
                    r = await stub.FindSimilar(gateway_pb2.FindSimilarRequest(
                        image=common_pb2.Image(content=payloads[i % len(payloads)]), k=3, no_cache=True), timeout=30)
                    seen_versions.add(r.embedder_version)
                    empties += not r.matches
                except grpc.aio.AioRpcError as exc:
                    errors.append(exc)
                i += 1

        streamer = asyncio.create_task(query_stream())
        summary = await core.reindex(items, new_version, drop_old=True, drain_s=0.5)
        await asyncio.sleep(0.6)  # queries keep going across the switch and the drop
        stop.set()
        await streamer
        await channel.close()
        assert not errors, errors[:3]
        assert empties == 0
        assert summary["added"] == len(items) and summary["previous"] == old_collection
        assert seen_versions == {old_version, new_version}
        assert core.embedder_version == new_version and core.collection == summary["collection"]
        assert await core.backends.resolve_alias("upgrade") == summary["collection"]
        from designsearch.internal.v1 import search_pb2

        listed = await core.backends.search.ListCollections(search_pb2.ListCollectionsRequest(), timeout=10)
        assert old_collection not in listed.collections and summary["collection"] in listed.collections
        # the old collection is gone; a second reindex run adds nothing (resume/idempotent)
        again = await core.reindex(items, new_version)
        assert again["duplicates"] == len(items) and again["added"] == 0
    finally:
        await gateway.stop(0)
        await new_embedder.stop(0)
