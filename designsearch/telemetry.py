"""Serving telemetry: Prometheus metrics per RPC and per pipeline stage, request-id metadata, and a trace
span per pipeline stage (:mod:`designsearch.tracing`; a no-op with tracing off).

No grpc import: the server bootstrap (:mod:`designsearch.server`), outgoing calls
(:mod:`designsearch.rpc`) and transport-free cores all record here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry.trace import Span
from prometheus_client import Counter, Histogram

from designsearch import tracing

#: gRPC metadata key carrying the request id across services.
REQUEST_ID_KEY = "x-request-id"

RPC_TOTAL = Counter("designsearch_rpc_total", "RPCs handled, by service method and status code", ["method", "code"])
RPC_SECONDS = Histogram(
    "designsearch_rpc_seconds",
    "RPC handling time in seconds, by service method",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
STAGE_SECONDS = Histogram(
    "designsearch_stage_seconds",
    "Pipeline stage time in seconds, by stage",
    ["stage"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

CACHE_BREAKER_OPENINGS = Counter(
    "designsearch_cache_breaker_openings_total",
    "Times the gateway's Redis circuit breaker opened (Redis frozen, down or too slow; the cache is then skipped)")


def observe_stage(stage: str, seconds: float) -> None:
    """Record the duration of one pipeline stage in the stage histogram."""
    STAGE_SECONDS.labels(stage).observe(seconds)


#: Prefix of the span name of a pipeline stage (``stage.segment``); the stage is also its attribute
#: :data:`STAGE_ATTRIBUTE`.
STAGE_SPAN_PREFIX = "stage."
STAGE_ATTRIBUTE = "designsearch.stage"


class StageTimer:
    """Per-request stage timings: ``with timer.stage("embed") as span: ...`` adds to ``timer.ms["embed"]``
    (milliseconds), to the Prometheus stage histogram and, with tracing on, makes the span
    ``stage.embed`` (child of the current span) on which the block may set attributes."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, attributes: dict[str, Any] | None = None) -> Iterator[Span]:
        """Time the ``with`` block as stage ``name`` (times of repeated stages add up); yields its span
        (the no-op span with tracing off), started with ``attributes``."""
        t = time.perf_counter()
        try:
            with tracing.span(STAGE_SPAN_PREFIX + name, {STAGE_ATTRIBUTE: name, **(attributes or {})}) as span:
                yield span
        finally:
            dt = time.perf_counter() - t
            self.ms[name] = self.ms.get(name, 0.0) + dt * 1000
            observe_stage(name, dt)
