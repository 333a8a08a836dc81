"""OpenTelemetry tracing shared by the four services (gateway, segmenter, embedder, search).

Off by default: no tracer provider, no exporter, no interceptor, and :func:`span` hands out the API's
no-op span. It is switched on for a process by

* the ``tracing`` setting of a service (``DESIGNSEARCH_TRACING=true`` for every service, or
  ``DESIGNSEARCH_<SERVICE>_TRACING=true`` for one), or
* ``OTEL_TRACES_EXPORTER`` set to anything but ``none`` (the standard OpenTelemetry variable).

Once on, spans go where the standard ``OTEL_*`` variables say: ``OTEL_TRACES_EXPORTER`` (``otlp``, the
default, and/or ``console``), ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
(OTLP over gRPC, default ``http://localhost:4317``), ``OTEL_EXPORTER_OTLP_HEADERS``,
``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` (default service name ``designsearch-<service>``),
``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` and ``OTEL_BSP_*`` (batching); ``OTEL_PROPAGATORS``
picks the propagation format (W3C ``traceparent`` by default).

What is traced: every RPC on the server side (:func:`server_interceptors`, the official
``opentelemetry-instrumentation-grpc`` aio interceptor, plus the attribute :data:`SERVICE_ATTRIBUTE`
set by :class:`designsearch.server.ServiceInterceptor`) and on the client side (:func:`client_interceptors`,
which also inject the W3C trace context into the call's metadata), and every pipeline stage timed
with :class:`designsearch.telemetry.StageTimer` (:func:`span`). Health and reflection calls are not traced.

The SDK and the exporter are imported only when tracing is switched on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace

#: Attribute naming the designsearch service that handled an RPC (``gateway``, ``segmenter``, ``embedder``,
#: ``search``) on every server span. In production each process also has its own ``service.name``
#: resource; in-process test stacks share one provider and tell the services apart by this attribute.
SERVICE_ATTRIBUTE = "designsearch.service"
#: Attribute carrying the request id (``x-request-id``, also in every log line) on every server span.
REQUEST_ID_ATTRIBUTE = "designsearch.request_id"
#: Instrumentation scope of the spans made here.
TRACER_NAME = "designsearch"
#: gRPC methods never traced: health checks and reflection.
UNTRACED_PREFIX = "/grpc."

_provider: Any = None  # the SDK TracerProvider this process traces with; None = tracing off
_tracer: trace.Tracer | None = None


def requested(enabled: bool = False, environ: Mapping[str, str] | None = None) -> bool:
    """Whether tracing is asked for: ``enabled`` (a service's ``tracing`` setting, which reads
    ``DESIGNSEARCH_TRACING`` / ``DESIGNSEARCH_<SERVICE>_TRACING``), or ``OTEL_TRACES_EXPORTER`` set to
    something other than ``none``.

    Args:
        enabled: the service's ``tracing`` setting.
        environ: the environment to read (default ``os.environ``).
    """
    env = os.environ if environ is None else environ
    if enabled:
        return True
    exporters = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    return bool(exporters) and exporters != "none"


def active() -> bool:
    """Whether this process has a tracer provider (:func:`configure` or :func:`install` ran)."""
    return _provider is not None


def install(provider: Any) -> None:
    """Trace this process with ``provider`` (an SDK ``TracerProvider``), or switch tracing off with None.

    Tests install a provider with an in-memory exporter before they start services with ``tracing=True``,
    and None afterwards. The global OpenTelemetry provider is not touched (it can be set only once).
    """
    global _provider, _tracer
    _provider = provider
    _tracer = provider.get_tracer(TRACER_NAME) if provider is not None else None


def configure(service: str, enabled: bool = False) -> bool:
    """Switch tracing on for ``service`` when :func:`requested`; returns whether its RPCs are traced.

    The first call that switches tracing on in a process builds the provider from the ``OTEL_*``
    variables (:func:`provider_from_env`) unless one is installed already (:func:`install`, or an SDK
    provider set globally, e.g. by ``opentelemetry-instrument``); later calls reuse it. Without a
    request nothing is built or imported and False is returned.

    Args:
        service: the designsearch service (``gateway``, ``segmenter``, ``embedder``, ``search``); the default
            ``service.name`` is ``designsearch-<service>``.
        enabled: the service's ``tracing`` setting.

    Raises:
        ValueError: ``OTEL_TRACES_EXPORTER`` names an exporter other than ``otlp``, ``console`` or ``none``.
    """
    if not requested(enabled):
        return False
    if _provider is None:
        from opentelemetry.sdk.trace import TracerProvider

        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            install(current)
        else:
            provider = provider_from_env(f"designsearch-{service}")
            trace.set_tracer_provider(provider)
            install(provider)
    return True


def provider_from_env(default_service_name: str, environ: Mapping[str, str] | None = None) -> Any:
    """An SDK ``TracerProvider`` with the exporters ``OTEL_TRACES_EXPORTER`` names, each behind a
    ``BatchSpanProcessor``; resource, sampler, exporter endpoint and batching from the ``OTEL_*`` variables.

    Args:
        default_service_name: ``service.name`` when neither ``OTEL_SERVICE_NAME`` nor
            ``OTEL_RESOURCE_ATTRIBUTES`` gives one.
        environ: the environment to read (default ``os.environ``; the SDK parts read ``os.environ``).

    Raises:
        ValueError: an unknown exporter name.
    """
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    env = os.environ if environ is None else environ
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: default_service_name}))
    provider = TracerProvider(resource=resource)
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n.strip()] or ["otlp"]
    for name in names:
        if name == "none":
            continue
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporter = ConsoleSpanExporter()
        else:
            raise ValueError(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} (otlp, console or none)")
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def shutdown() -> None:
    """Flush and close the exporters of a provider :func:`configure` built (no-op when tracing is off)."""
    if _provider is not None and hasattr(_provider, "shutdown"):
        _provider.shutdown()


def _traced_method(details: Any) -> bool:
    method = getattr(details, "method", "") or ""
    if isinstance(method, bytes):
        method = method.decode()
    return not method.startswith(UNTRACED_PREFIX)


def server_interceptors() -> list:
    """``grpc.aio`` server interceptors making one SERVER span per RPC (W3C context read from the call's
    metadata; attributes ``rpc.system``, ``rpc.service``, ``rpc.method``, ``rpc.grpc.status_code``, peer);
    ``[]`` when tracing is off. Health and reflection calls are not traced."""
    if _provider is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor(tracer_provider=_provider, filter_=_traced_method)]


def client_interceptors() -> list:
    """``grpc.aio`` client interceptors making one CLIENT span per outgoing call and injecting its W3C
    trace context (``traceparent``) into the call's metadata; ``[]`` when tracing is off."""
    if _provider is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return aio_client_interceptors(tracer_provider=_provider, filter_=_traced_method)


@contextmanager
def span(name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[trace.Span]:
    """A span named ``name``, current for the ``with`` block, child of the current span; with tracing off
    the API's no-op span (``trace.INVALID_SPAN``) and nothing else.

    An exception leaving the block is recorded on the span (status ERROR) and re-raised.

    Args:
        name: span name (``stage.segment``).
        attributes: initial attributes (str, bool, int, float or sequences of them).
    """
    if _tracer is None:
        yield trace.INVALID_SPAN
        return
    with _tracer.start_as_current_span(name, attributes=attributes) as s:
        yield s


def current_span() -> trace.Span:
    """The span current in this context (a no-op span with tracing off); set attributes on it freely."""
    return trace.get_current_span()


def tag(span: Any, **attributes: Any) -> None:
    """Set ``designsearch.<name>`` attributes on ``span`` (``__`` in a keyword becomes ``.``, e.g.
    ``cache__hit=True`` → ``designsearch.cache.hit``); a no-op span ignores them."""
    span.set_attributes({"designsearch." + k.replace("__", "."): v for k, v in attributes.items()})
