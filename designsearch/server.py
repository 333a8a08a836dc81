"""gRPC server bootstrap shared by every service: interceptors, health, reflection, shutdown.

Every service's ``server.py`` calls :func:`build_server` from its ``create_server`` and
:func:`serve_forever` from its ``serve``. The interceptor here is the one place where

* a request id is read from (or created for) each call and set in a contextvar for logs and
  outgoing calls;
* domain exceptions (:mod:`designsearch.errors`) become gRPC status codes with ``google.rpc``
  details (``BadRequest``, ``ErrorInfo``, ``RetryInfo``), and any other exception becomes
  ``INTERNAL`` without taking the server down;
* Prometheus metrics per RPC are recorded (count by code, latency histogram);
* an API key is checked, when the service has one configured (the gateway);
* with tracing on (:mod:`designsearch.tracing`), the RPC's server span gets the service name and the
  request id (the span itself comes from the OpenTelemetry interceptor placed before this one).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from designsearch import errors, tracing
from designsearch.logs import caller, configure_logging, get_logger, request_id
from designsearch.ratelimit import RateLimiter
from designsearch.rpc import INTERNAL_TOKEN_KEY
from designsearch.telemetry import REQUEST_ID_KEY, RPC_SECONDS, RPC_TOTAL

log = get_logger("server")

API_KEY_KEY = "x-api-key"


def key_hash(key: str) -> str:
    """sha256 hex of an API key; its first 12 digits are the key's id in logs and feedback."""
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    """Accepted API keys, kept as sha256 hashes only and compared in constant time.

    Args:
        keys: plain keys or ``sha256:<64 hex>`` hashes (so deployments can store no plain key).
    """

    def __init__(self, keys: Iterable[str]) -> None:
        self.hashes = [k.removeprefix("sha256:").lower() if k.startswith("sha256:") else key_hash(k) for k in keys if k]

    def __bool__(self) -> bool:
        return bool(self.hashes)

    def check(self, key: str | None) -> str | None:
        """The key id (``key:<12 hex>``) when ``key`` is accepted, else None; every stored hash is
        compared (``hmac.compare_digest``), so the time taken does not tell which one came close."""
        if not key:
            return None
        h = key_hash(key)
        ok = False
        for stored in self.hashes:
            ok |= hmac.compare_digest(h, stored)
        return f"key:{h[:12]}" if ok else None


def status_for(exc: errors.DesignSearchError) -> status_pb2.Status:
    """The ``google.rpc.Status`` (code, message, details) for a domain exception."""
    code = getattr(code_pb2, exc.code_name)
    st = status_pb2.Status(code=code, message=exc.message)
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=exc.reason, domain="designsearch"))
    st.details.append(info)
    if exc.field and isinstance(exc, errors.InvalidArgument):
        bad = any_pb2.Any()
        bad.Pack(
            error_details_pb2.BadRequest(
                field_violations=[error_details_pb2.BadRequest.FieldViolation(field=exc.field, description=exc.message)]
            )
        )
        st.details.append(bad)
    if isinstance(exc, (errors.BackendUnavailable, errors.ResourceExhausted)):
        retry = any_pb2.Any()
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(int(exc.retry_after_s * 1000))
        retry.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        st.details.append(retry)
    return st


async def _abort(context: grpc.aio.ServicerContext, st: status_pb2.Status) -> None:
    await context.abort(
        grpc.StatusCode[code_pb2.Code.Name(st.code)],
        st.message,
        trailing_metadata=(("grpc-status-details-bin", st.SerializeToString()),),
    )


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """Request id, API key, error mapping and metrics for every unary and client-streaming RPC.

    Args:
        api_keys: accepted values of the ``x-api-key`` metadata; empty = no authentication.
        open_methods: method-name prefixes that need no key (health, reflection).
        rate_limit_per_s, rate_burst: token bucket per caller in this process; 0 = no limit.
        limiter: the rate limiter to use instead (e.g. :class:`designsearch.ratelimit.RedisRateLimiter`,
            shared by the replicas); anything with ``async acquire(caller) -> seconds to wait``.
        internal_token: service token every call must carry; empty = none.
        service: this service's name (``gateway``, ``segmenter``, ...), set as
            :data:`designsearch.tracing.SERVICE_ATTRIBUTE` on the RPC's span when ``traced``.
        traced: the server traces its RPCs (:func:`designsearch.tracing.configure` said so).
    """

    def __init__(self, api_keys: Iterable[str] = (), open_methods: tuple[str, ...] = ("/grpc.",),
                 rate_limit_per_s: float = 0.0, rate_burst: float = 20.0, internal_token: str = "",
                 service: str = "", traced: bool = False, limiter=None) -> None:
        self.service = service
        self.traced = traced
        self.api_keys = ApiKeys(api_keys)
        self.internal_token = key_hash(internal_token) if internal_token else ""
        self.open_methods = open_methods
        self.limiter = limiter or RateLimiter(rate_limit_per_s, rate_burst)

    async def intercept_service(self, continuation, handler_call_details):  # noqa: D102
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if method.startswith("/grpc."):
            return handler
        metadata = dict(handler_call_details.invocation_metadata or ())
        rid = metadata.get(REQUEST_ID_KEY) or uuid.uuid4().hex[:16]
        key_id = self.api_keys.check(metadata.get(API_KEY_KEY)) if self.api_keys else None
        key_ok = not self.api_keys or key_id is not None or method.startswith(self.open_methods)
        if self.internal_token and not method.startswith(self.open_methods):
            token = metadata.get(INTERNAL_TOKEN_KEY) or ""
            key_ok = key_ok and hmac.compare_digest(key_hash(token), self.internal_token)
        who = key_id or "anonymous"

        def wrap(behavior):
            async def wrapped(request_or_iterator, context):
                token = request_id.set(rid)
                caller_token = caller.set(who)
                if self.traced:  # the OpenTelemetry server span of this RPC is current here
                    tracing.current_span().set_attributes({tracing.SERVICE_ATTRIBUTE: self.service,
                                                           tracing.REQUEST_ID_ATTRIBUTE: rid})
                start = time.perf_counter()
                code = "OK"
                try:
                    # callers without a valid key share one bucket per peer address (the port dropped), so
                    # guessing keys is throttled too
                    wait = await self.limiter.acquire(key_id or f"peer:{(context.peer() or '').rsplit(':', 1)[0]}")
                    if wait > 0:
                        raise errors.ResourceExhausted(f"rate limit of {self.limiter.rate:g} requests/s exceeded",
                                                       retry_after_s=wait)
                    if not key_ok:
                        raise errors.Unauthenticated("missing or wrong credentials (metadata 'x-api-key' or, on internal "
                                                     "services, 'x-internal-token')")
                    return await behavior(request_or_iterator, context)
                except errors.DesignSearchError as exc:
                    code = exc.code_name
                    log.info("rpc_error", method=method, code=code, reason=exc.reason, error=exc.message)
                    await _abort(context, status_for(exc))
                except asyncio.CancelledError:
                    code = "CANCELLED"
                    raise
                except grpc.aio.AbortError:
                    code = "ABORTED_BY_HANDLER"
                    raise
                except Exception as exc:  # a request never takes a server down
                    code = "INTERNAL"
                    log.exception("rpc_internal_error", method=method)
                    await _abort(
                        context,
                        # the type only: an exception's text may carry SQL, parameters or paths (the log has it)
                        status_for(errors.DesignSearchError(f"internal error ({type(exc).__name__}); request id {rid}")),
                    )
                finally:
                    RPC_TOTAL.labels(method, code).inc()
                    RPC_SECONDS.labels(method).observe(time.perf_counter() - start)
                    request_id.reset(token)
                    caller.reset(caller_token)

            return wrapped

        if not key_ok and (handler.unary_unary or handler.stream_unary):
            # Refused before the body is read: a client-streaming handler that never takes a message, so a
            # large request from a caller without valid credentials is neither buffered whole nor parsed
            # (the metadata arrives first; a unary handler would get the whole message before it runs).
            return grpc.stream_unary_rpc_method_handler(wrap(_unreachable), None, handler.response_serializer)
        deserialize = _lenient(handler.request_deserializer)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                wrap(_checked_unary(handler.unary_unary)), deserialize, handler.response_serializer
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                wrap(_checked_stream(handler.stream_unary)), deserialize, handler.response_serializer
            )
        return handler


async def _unreachable(request_iterator, context):  # pragma: no cover - wrap() refuses first
    raise AssertionError("a call without valid credentials reached a handler")


class _Malformed:
    """Stands for a request message that did not parse (so the handler can answer INVALID_ARGUMENT)."""

    def __init__(self, error: str) -> None:
        self.error = error


def _lenient(deserializer):
    if deserializer is None:
        return None

    def parse(data: bytes):
        try:
            return deserializer(data)
        except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and friends
            return _Malformed(f"{type(exc).__name__}: {exc}")

    return parse


def _malformed(request: _Malformed) -> errors.InvalidArgument:
    return errors.InvalidArgument(f"malformed request message ({request.error[:200]})", field="request")


def _checked_unary(behavior):
    async def checked(request, context):
        if isinstance(request, _Malformed):
            raise _malformed(request)
        return await behavior(request, context)

    return checked


def _checked_stream(behavior):
    async def checked(request_iterator, context):
        async def messages():
            async for request in request_iterator:
                if isinstance(request, _Malformed):
                    raise _malformed(request)
                yield request

        return await behavior(messages(), context)

    return checked


class Service:
    """A started gRPC server with its health servicer.

    Attributes:
        server: the ``grpc.aio.Server``.
        port: bound TCP port.
        health: the standard ``grpc.health.v1`` servicer; starts NOT_SERVING.
        names: fully-qualified service names served (for health and reflection).
        on_stop: coroutine functions called after the server stopped (close models, clients).
    """

    def __init__(self, server: grpc.aio.Server, port: int, health_servicer: health.aio.HealthServicer, names: list[str]):
        self.server = server
        self.port = port
        self.health = health_servicer
        self.names = names
        self.on_stop: list[Callable[[], object]] = []

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``, for in-process clients."""
        return f"127.0.0.1:{self.port}"

    async def set_serving(self, serving: bool) -> None:
        """Report SERVING (or NOT_SERVING) for the overall server and every service name."""
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ["", *self.names]:
            await self.health.set(name, status)

    async def stop(self, grace: float | None = 1.0) -> None:
        """NOT_SERVING, then stop accepting calls, let in-flight ones finish for ``grace`` s, close deps."""
        await self.set_serving(False)
        await self.server.stop(grace)
        for fn in self.on_stop:
            result = fn()
            if asyncio.iscoroutine(result):
                await result


async def build_server(
    settings,
    register: Callable[[grpc.aio.Server], list[str]],
    *,
    api_keys: Iterable[str] = (),
    rate_limit_per_s: float = 0.0,
    rate_burst: float = 20.0,
    internal_token: str = "",
    max_message_mb: int = 64,
    service_name: str = "",
    limiter=None,
) -> Service:
    """Create and start a ``grpc.aio`` server with interceptors, health (NOT_SERVING) and reflection.

    Args:
        settings: a :class:`designsearch.settings.ServiceSettings` (host, port, metrics_port).
        register: adds the service's servicers to the server; returns their full names.
        api_keys: accepted API keys (plain or ``sha256:<hex>``); empty = no authentication.
        rate_limit_per_s, rate_burst: token bucket per caller (API-key id, or peer address without a
            valid key); 0 = no limit. Over it: ``RESOURCE_EXHAUSTED`` with ``RetryInfo``.
        limiter: a limiter replacing that per-process bucket (:class:`ServiceInterceptor`), e.g. the gateway's
            :class:`designsearch.ratelimit.RedisRateLimiter` shared by its replicas.
        internal_token: service token every call must carry (``x-internal-token``; health and
            reflection excepted); empty = none. Compared as hashes in constant time.
        max_message_mb: largest request/response message in MiB (images travel in messages).
        service_name: ``gateway``, ``segmenter``, ``embedder`` or ``search``: the name on its trace spans.
            With ``settings.tracing`` (or ``OTEL_TRACES_EXPORTER``) every RPC but health and reflection
            gets a server span, W3C trace context read from the call's metadata (:mod:`designsearch.tracing`).

    Returns:
        The started :class:`Service`; call ``set_serving(True)`` once its dependencies are ready.

    Raises:
        RuntimeError: the port could not be bound.
    """
    options = [
        ("grpc.max_receive_message_length", max_message_mb * 1024 * 1024),
        ("grpc.max_send_message_length", max_message_mb * 1024 * 1024),
        ("grpc.so_reuseport", 0),
        # Send GOAWAY on connections older than max_connection_age_s: clients then reconnect and
        # re-resolve DNS, so pods added by an autoscaler behind a headless Service get calls. RPCs
        # already running (a long IndexDesigns stream) may finish within the grace period.
        ("grpc.max_connection_age_ms", int(settings.max_connection_age_s * 1000)),
        ("grpc.max_connection_age_grace_ms", int(settings.max_connection_age_grace_s * 1000)),
    ]
    traced = tracing.configure(service_name or "service", getattr(settings, "tracing", False))
    # the OpenTelemetry interceptor first: its span encloses the ServiceInterceptor's work (auth, errors)
    interceptors = [*(tracing.server_interceptors() if traced else []),
                    ServiceInterceptor(api_keys, rate_limit_per_s=rate_limit_per_s, rate_burst=rate_burst,
                                       internal_token=internal_token, service=service_name, traced=traced,
                                       limiter=limiter)]
    server = grpc.aio.server(interceptors=interceptors, options=options)
    names = register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection([*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME], server)
    address = f"{settings.host}:{settings.port}"
    if getattr(settings, "tls_cert_file", "") and getattr(settings, "tls_key_file", ""):

        creds = grpc.ssl_server_credentials([(Path(settings.tls_key_file).read_bytes(),
                                              Path(settings.tls_cert_file).read_bytes())])
        port = server.add_secure_port(address, creds)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"could not bind {settings.host}:{settings.port}")
    await server.start()
    service = Service(server, port, health_servicer, names)
    await service.set_serving(False)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.host)
    return service


async def serve_forever(service: Service, grace_s: float, name: str) -> None:
    """Serve until SIGTERM/SIGINT, then NOT_SERVING, ``stop(grace_s)`` and clean up."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("serving", service=name, port=service.port)
    print(f"{name} listening on port {service.port}", flush=True)
    await stop.wait()
    log.info("stopping", service=name, grace_s=grace_s)
    await service.stop(grace_s)
    tracing.shutdown()  # flush the spans still batched (no-op with tracing off)
    log.info("stopped", service=name)


def raise_niceness(step: int) -> None:
    """Add ``step`` (≥ 0) to the niceness of every thread of this process (Linux keeps one per thread;
    threads that exist already, such as the BLAS pool numpy starts on import, are raised one by one from
    ``/proc/self/task``, later ones inherit it); elsewhere ``os.nice``. Capped at 19.

    Raises:
        OSError: the system refused (raising niceness needs no privilege on Linux).
    """
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        os.nice(step)
        return
    for tid in (int(t.name) for t in tasks.iterdir()):
        try:
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + step))
        except ProcessLookupError:  # a thread that ended meanwhile
            pass


async def run_service(settings, create_server: Callable, name: str) -> None:
    """A service process's life: logging as ``settings`` say, its niceness raised by ``settings.cpu_nice``
    (before any thread of the server exists, so all of them inherit it), ``await create_server(settings)``,
    then :func:`serve_forever`.

    Args:
        settings: a :class:`designsearch.settings.ServiceSettings`.
        create_server: coroutine function ``settings -> Service``.
        name: service name for the logs.
    """
    configure_logging(settings.log_level, settings.log_json)
    if settings.cpu_nice:
        raise_niceness(settings.cpu_nice)
        log.info("cpu_nice", service=name, niceness=os.getpriority(os.PRIO_PROCESS, 0))
    service = await create_server(settings)
    await serve_forever(service, settings.grace_s, name)
