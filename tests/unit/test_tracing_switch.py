"""Tracing switches: off by default (no provider, no exporter, no interceptor, no-op stage spans), on by
the ``tracing`` setting or ``OTEL_TRACES_EXPORTER``, configured by the standard ``OTEL_*`` variables."""

from __future__ import annotations

import grpc
import pytest
from opentelemetry import trace

from designsearch import tracing
from designsearch.settings import ServiceSettings
from designsearch.telemetry import StageTimer


@pytest.fixture(autouse=True)
def tracing_off(monkeypatch):
    """No OTEL_* / DESIGNSEARCH_TRACING variables and no provider, before and after each test."""
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "DESIGNSEARCH_TRACING"):
        monkeypatch.delenv(name, raising=False)
    tracing.install(None)
    yield
    tracing.install(None)


@pytest.fixture
def no_exporter(monkeypatch):
    """Fail the test if an OTLP or console exporter is ever built."""
    from opentelemetry.exporter.otlp.proto.grpc import trace_exporter
    from opentelemetry.sdk.trace import export

    def refuse(*args, **kwargs):
        raise AssertionError("an exporter was created with tracing off")

    monkeypatch.setattr(trace_exporter.OTLPSpanExporter, "__init__", refuse)
    monkeypatch.setattr(export.ConsoleSpanExporter, "__init__", refuse)


def test_off_by_default_no_exporter_no_interceptor(no_exporter):
    assert ServiceSettings().tracing is False
    assert not tracing.requested(False)
    assert tracing.configure("segmenter", ServiceSettings().tracing) is False
    assert not tracing.active()
    assert tracing.server_interceptors() == [] and tracing.client_interceptors() == []
    timer = StageTimer()
    with timer.stage("segment") as span:
        assert span is trace.INVALID_SPAN and not span.is_recording()
        span.set_attributes({"designsearch.crops": 2})  # a no-op
    assert "segment" in timer.ms
    tracing.shutdown()  # nothing to flush, no error


async def test_a_server_with_tracing_off_gets_only_its_own_interceptor(monkeypatch, no_exporter):
    from designsearch.server import ServiceInterceptor, build_server

    seen = {}
    original = grpc.aio.server

    def recording_server(*args, **kwargs):
        seen["interceptors"] = kwargs.get("interceptors")
        return original(*args, **kwargs)

    monkeypatch.setattr(grpc.aio, "server", recording_server)
    service = await build_server(ServiceSettings(port=0), lambda server: [], service_name="segmenter")
    try:
        assert [type(i) for i in seen["interceptors"]] == [ServiceInterceptor]
        assert seen["interceptors"][0].traced is False
        assert not tracing.active()
    finally:
        await service.stop(0)


@pytest.mark.parametrize("env, expected", [({}, False), ({"OTEL_TRACES_EXPORTER": "none"}, False),
                                           ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
                                           ({"OTEL_TRACES_EXPORTER": "console,otlp"}, True)])
def test_otel_traces_exporter_switches_tracing_on(env, expected):
    assert tracing.requested(False, env) is expected
    assert tracing.requested(True, env) is True


def test_the_setting_reads_the_shared_and_the_service_prefix(monkeypatch):
    from designsearch.services.segmenter.config import SegmenterSettings

    monkeypatch.setenv("DESIGNSEARCH_TRACING", "true")
    assert SegmenterSettings().tracing is True
    monkeypatch.setenv("DESIGNSEARCH_SEGMENTER_TRACING", "false")
    assert SegmenterSettings().tracing is False


def test_provider_from_env_names_the_service_and_builds_the_exporters(monkeypatch):
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp,console")
    provider = tracing.provider_from_env("designsearch-embedder")
    try:
        assert provider.resource.attributes["service.name"] == "designsearch-embedder"
        processors = provider._active_span_processor._span_processors
        assert len(processors) == 2 and all(isinstance(p, BatchSpanProcessor) for p in processors)
        assert {type(p._batch_processor._exporter).__name__ for p in processors} == {"OTLPSpanExporter",
                                                                                      "ConsoleSpanExporter"}
    finally:
        provider.shutdown()
    monkeypatch.setenv("OTEL_SERVICE_NAME", "wheels-embedder")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    provider = tracing.provider_from_env("designsearch-embedder")
    assert provider.resource.attributes["service.name"] == "wheels-embedder"
    assert provider._active_span_processor._span_processors == ()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(ValueError, match="zipkin"):
        tracing.provider_from_env("designsearch-embedder")


def test_with_a_provider_installed_stages_make_spans():
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    assert tracing.configure("gateway", True) is True and tracing.active()
    assert len(tracing.server_interceptors()) == 1 and len(tracing.client_interceptors()) == 4
    timer = StageTimer()
    with tracing.span("outer"):
        with timer.stage("embed", {"designsearch.regions": 3}) as span:
            span.set_attribute("designsearch.embedder.version", "v1")
    outer, embed = sorted(exporter.get_finished_spans(), key=lambda s: s.name)
    assert embed.name == "stage.embed" and embed.parent.span_id == outer.context.span_id
    assert dict(embed.attributes) == {"designsearch.stage": "embed", "designsearch.regions": 3,
                                      "designsearch.embedder.version": "v1"}
