"""Outgoing gRPC calls between services: channels, request-id and trace-context propagation, deadlines,
error mapping."""

from __future__ import annotations

import json

import grpc

from designsearch import errors, tracing
from designsearch.logs import get_logger, request_id
from designsearch.telemetry import REQUEST_ID_KEY


log = get_logger("rpc")

#: Metadata key of the internal service token.
INTERNAL_TOKEN_KEY = "x-internal-token"


class _RequestIdInterceptor(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.StreamUnaryClientInterceptor):
    """Adds the current request id (contextvar) and the internal service token, if any, to every
    outgoing call's metadata."""

    def __init__(self, token: str = "") -> None:
        self.token = token

    def _details(self, details):
        metadata = list(details.metadata or [])
        rid = request_id.get()
        if rid != "-" and not any(k == REQUEST_ID_KEY for k, _ in metadata):
            metadata.append((REQUEST_ID_KEY, rid))
        if self.token:
            metadata.append((INTERNAL_TOKEN_KEY, self.token))
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )

    async def intercept_unary_unary(self, continuation, client_call_details, request):  # noqa: D102
        return await continuation(self._details(client_call_details), request)

    async def intercept_stream_unary(self, continuation, client_call_details, request_iterator):  # noqa: D102
        return await continuation(self._details(client_call_details), request_iterator)


#: gRPC service config of every internal channel: round-robin over the addresses a target resolves to (the
#: pods behind a headless Service, or ``ipv4:127.0.0.1:P1,127.0.0.1:P2``), and a call that fails UNAVAILABLE
#: (a replica killed or restarting, a refused connection) retried up to twice on the next replica, after
#: 50-200 ms (gRPC retry design, gRFC A6). Every internal RPC is safe to repeat: segment, embed and search
#: compute, upserts and deletes are by point id.
SERVICE_CONFIG = json.dumps({
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [{
        "name": [{}],
        "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.05s", "maxBackoff": "0.2s", "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"]},
    }],
})


#: Request bytes kept per call so that it can be retried on another replica (an embed call of 4 crops as pixels
#: is ~0.6 MB, a query image a few MB).
RETRY_BUFFER_BYTES = 48 * 1024 * 1024

#: Channel options of every client of a replicated service (internal channels, ``DesignSearchClient``, the web
#: page): round-robin over the target's addresses and the retry policy of :data:`SERVICE_CONFIG`, the request
#: buffered for it.
BALANCED_RETRY_OPTIONS = [
    ("grpc.lb_policy_name", "round_robin"),
    ("grpc.service_config", SERVICE_CONFIG),
    ("grpc.enable_retries", 1),
    # a call stays retryable while its request is buffered: images and crop pixels exceed the 256 KiB default
    ("grpc.per_rpc_retry_buffer_size", RETRY_BUFFER_BYTES),
]


def make_channel(address: str, max_message_mb: int = 64, token: str = "", tls_ca: bytes | None = None,
                 traced: bool = False) -> grpc.aio.Channel:
    """A ``grpc.aio`` channel (TLS when ``tls_ca`` is given) with client-side round-robin load balancing.

    In Kubernetes, give ``dns:///<headless-service>:<port>`` so every pod behind the headless
    Service gets calls (a ClusterIP would pin the HTTP/2 connection to one pod).

    Args:
        address: ``host:port`` or a gRPC target URI.
        max_message_mb: largest message in MiB.
        token: internal service token sent with every call (``x-internal-token``); empty = none.
        tls_ca: PEM CA bundle to verify the server with; None = a plaintext channel.
        traced: one CLIENT span per call, its W3C trace context (``traceparent``) sent in the metadata
            (:func:`designsearch.tracing.client_interceptors`; nothing when tracing is off in this process).
    """
    options = [
        *BALANCED_RETRY_OPTIONS,
        ("grpc.max_receive_message_length", max_message_mb * 1024 * 1024),
        ("grpc.max_send_message_length", max_message_mb * 1024 * 1024),
        # recover within ~1 s once a backend is back (the default back-off grows to 120 s)
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1000),
        # notice a dead peer on an idle connection
        ("grpc.keepalive_time_ms", 20_000),
        ("grpc.keepalive_timeout_ms", 5_000),
    ]
    interceptors = [*(tracing.client_interceptors() if traced else []), _RequestIdInterceptor(token)]
    if tls_ca is not None:
        return grpc.aio.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=tls_ca),
                                       options=options, interceptors=interceptors)
    return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)


_CODE_TO_ERROR = {
    grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidArgument,
    grpc.StatusCode.NOT_FOUND: errors.NotFound,
    grpc.StatusCode.UNAVAILABLE: errors.BackendUnavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: errors.BackendUnavailable,
    grpc.StatusCode.RESOURCE_EXHAUSTED: errors.BackendUnavailable,
}


#: What a client is told when a backend fails; the backend, its address and gRPC's text go to the log.
BACKEND_UNAVAILABLE = "a backend is unavailable"
BACKEND_FAILED = "a backend failed"


async def call(method, request, *, timeout: float, backend: str, quiet: bool = False):
    """Call a unary (or stream-unary) stub method with a deadline; map failures to domain errors.

    The error a client may see names no service, address or gRPC internals (``connections to all
    backends failing; ... ipv4:127.0.0.1:50052: Failed to connect``): those go to the log
    (``backend_call_failed``, with the request id), the client gets :data:`BACKEND_UNAVAILABLE` (or
    :data:`BACKEND_FAILED`) and the request id to quote. A backend's refusal of the request itself
    (INVALID_ARGUMENT, NOT_FOUND) is about what the client sent and passes through.

    Args:
        method: a bound stub method, e.g. ``stub.Segment``.
        request: the request message (or an async iterator of them).
        timeout: deadline in seconds.
        backend: name of the called service, for the log.
        quiet: log failures at debug level (readiness probes, which the watcher reports itself).

    Returns:
        The response message.

    Raises:
        InvalidArgument, NotFound: the backend refused the request (its message passed through).
        BackendUnavailable: the backend is down, overloaded or too slow (retryable, ``RetryInfo``).
        DesignSearchError: any other failure (``INTERNAL``).
    """
    try:
        return await method(request, timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        code, details = exc.code(), exc.details() or exc.code().name
        cls = _CODE_TO_ERROR.get(code, errors.DesignSearchError)
        rid = request_id.get()
        (log.debug if quiet else log.warning)("backend_call_failed", backend=backend, code=code.name, error=details,
                                              request_id=rid)
        if cls in (errors.InvalidArgument, errors.NotFound):
            raise cls(details) from exc
        public = f"{BACKEND_UNAVAILABLE}; retry later" if cls is errors.BackendUnavailable else BACKEND_FAILED
        raise cls(f"{public} (request id {rid})" if rid != "-" else public) from exc
