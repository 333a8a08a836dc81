"""Tracing end to end: one FindSimilar is one trace, with spans from the gateway, segmenter, embedder and
search services and one span per pipeline stage (OpenTelemetry SDK, in-memory exporter).

The four services run in-process (as in ``tests/conftest.py``'s ``stack``, but their own, started with
``tracing=True``) and share one tracer provider; the services are told apart by the attribute
``designsearch.service`` of their server spans and by the RPC names.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from designsearch import tracing
from designsearch.v1 import common_pb2, gateway_pb2

SERVICES = {"gateway", "segmenter", "embedder", "search"}
FIND_SIMILAR = "/designsearch.v1.GatewayService/FindSimilar"


@pytest_asyncio.fixture(scope="module")
async def traced(tmp_path_factory, embedder_model, small_catalogue, make_gateway_settings):
    """The four services with tracing on, an in-memory exporter, and 5 catalogue images (one per design)
    indexed; yields ``(gateway stub, exporter, queries)``. Tracing is switched off again afterwards."""
    from designsearch.client import index_requests
    from designsearch.gateway.server import create_server as create_gateway
    from designsearch.procs import RedisProcess
    from designsearch.services.embedder.config import EmbedderSettings
    from designsearch.services.embedder.server import create_server as create_embedder
    from designsearch.services.search.config import SearchSettings
    from designsearch.services.search.server import create_server as create_search
    from designsearch.services.segmenter.config import SegmenterSettings
    from designsearch.services.segmenter.server import create_server as create_segmenter
    from designsearch.v1 import gateway_pb2_grpc
    from tests.conftest import INTERNAL_TOKEN

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    var = tmp_path_factory.mktemp("traced")
    redis = RedisProcess(var / "redis")  # its own, empty: the first query is a cache miss
    services = []
    try:
        segmenter = await create_segmenter(SegmenterSettings(port=0, internal_token=INTERNAL_TOKEN, tracing=True))
        services.append(segmenter)
        embedder = await create_embedder(EmbedderSettings(port=0, model_path=embedder_model,
                                                          internal_token=INTERNAL_TOKEN, tracing=True))
        services.append(embedder)
        search = await create_search(SearchSettings(port=0, engine="edge", path=str(var / "index"),
                                                    snapshot_dir=str(var / "snapshots"), internal_token=INTERNAL_TOKEN,
                                                    tracing=True))
        services.append(search)
        backends = {"segmenter": segmenter, "embedder": embedder, "search": search}
        # no readiness probes during the test: every span then belongs to the calls the test makes
        gateway = await create_gateway(make_gateway_settings(backends, var, redis_url=redis.url, tracing=True,
                                                             health_interval_s=3600.0))
        services.insert(0, gateway)
        catalogue, queries = small_catalogue
        one_per_design = list({img.class_id: img for img in catalogue}.values())
        async with grpc.aio.insecure_channel(gateway.address) as channel:
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            await stub.IndexDesigns(index_requests(one_per_design), timeout=300)
            yield stub, exporter, queries
    finally:
        for s in services:
            await s.stop(0)
        redis.stop()
        tracing.install(None)
        provider.shutdown()


async def _spans_of_call(exporter: InMemorySpanExporter, call):
    """Clear the exporter, await ``call()``, and return its answer and the finished spans once the
    gateway's FindSimilar server span has ended (it ends as the answer is sent)."""
    exporter.clear()
    answer = await call()
    for _ in range(100):
        spans = exporter.get_finished_spans()
        if any(s.name == FIND_SIMILAR and s.kind == SpanKind.SERVER for s in spans):
            return answer, list(spans)
        await asyncio.sleep(0.02)
    pytest.fail("the gateway's FindSimilar span never ended")


def _by_name(spans, name):
    found = [s for s in spans if s.name == name]
    assert found, f"no span {name!r} among {sorted({s.name for s in spans})}"
    return found


async def test_one_find_similar_is_one_trace_across_the_four_services(traced):
    stub, exporter, queries = traced
    request = gateway_pb2.FindSimilarRequest(image=common_pb2.Image(content=queries[0].path.read_bytes()), k=3)
    answer, spans = await _spans_of_call(exporter, lambda: stub.FindSimilar(request, timeout=60))
    assert answer.matches and not answer.cache_hit

    # one trace id for every span the query made, in every service
    assert len({s.context.trace_id for s in spans}) == 1, sorted((s.name, s.context.trace_id) for s in spans)
    servers = [s for s in spans if s.kind == SpanKind.SERVER]
    assert {s.attributes.get(tracing.SERVICE_ATTRIBUTE) for s in servers} == SERVICES
    root = _by_name(spans, FIND_SIMILAR)[0]
    assert root.parent is None and root.attributes[tracing.SERVICE_ATTRIBUTE] == "gateway"
    assert root.attributes["rpc.system"] == "grpc" and root.attributes["rpc.method"] == "FindSimilar"
    assert root.attributes["designsearch.k"] == 3 and root.attributes["designsearch.cache_hit"] is False
    assert root.attributes["designsearch.matches"] == len(answer.matches)
    assert root.attributes["designsearch.query_id"] == answer.query_id
    assert root.attributes[tracing.REQUEST_ID_ATTRIBUTE]

    # a span per pipeline stage, each a child of the FindSimilar span
    stages = {s.attributes["designsearch.stage"]: s for s in spans if s.name.startswith("stage.")}
    assert {"answer_cache", "cache", "decode", "segment", "embed", "search", "merge"} <= set(stages)
    for stage in stages.values():
        assert stage.parent.span_id == root.context.span_id, stage.name
    assert stages["answer_cache"].attributes["designsearch.cache.hit"] is False
    assert stages["cache"].attributes["designsearch.cache.hit"] is False
    assert stages["decode"].attributes["designsearch.image.width"] > 0
    segment = stages["segment"].attributes
    assert segment["designsearch.segmenter.version"] and segment["designsearch.crops"] >= 0
    assert stages["embed"].attributes["designsearch.embedder.version"] == answer.embedder_version
    assert stages["embed"].attributes["designsearch.regions"] == len(answer.query_crops)
    search = stages["search"].attributes
    assert search["designsearch.k"] == 3 and search["designsearch.searches"] >= 1
    assert stages["merge"].attributes["designsearch.matches"] == len(answer.matches)

    # the W3C context crossed each hop: stage span → gateway CLIENT span → backend SERVER span
    by_id = {s.context.span_id: s for s in spans}
    for stage, method in [("segment", "/designsearch.internal.v1.SegmenterService/Segment"),
                          ("embed", "/designsearch.internal.v1.EmbedderService/"),
                          ("search", "/designsearch.internal.v1.SearchService/")]:
        backend = [s for s in servers if s.name.startswith(method) and s.parent is not None
                   and by_id[s.parent.span_id].parent.span_id == stages[stage].context.span_id]
        assert backend, f"no {method} server span under stage.{stage}"
        client = by_id[backend[0].parent.span_id]
        assert client.kind == SpanKind.CLIENT and client.name == backend[0].name
        assert backend[0].parent.is_remote


async def test_a_repeated_query_shows_the_answer_cache_hit(traced):
    stub, exporter, queries = traced
    request = gateway_pb2.FindSimilarRequest(image=common_pb2.Image(content=queries[1].path.read_bytes()), k=2)
    await stub.FindSimilar(request, timeout=60)
    answer, spans = await _spans_of_call(exporter, lambda: stub.FindSimilar(request, timeout=60))
    assert answer.cache_hit
    names = {s.name for s in spans}
    assert "stage.answer_cache" in names and "stage.segment" not in names and "stage.embed" not in names
    assert _by_name(spans, "stage.answer_cache")[0].attributes["designsearch.cache.hit"] is True
    assert _by_name(spans, FIND_SIMILAR)[0].attributes["designsearch.answer_cache_hit"] is True
