"""Gateway server: ``create_server(settings) -> Service`` and ``serve()``."""

from __future__ import annotations

import asyncio

from designsearch.errors import BackendUnavailable
from designsearch.logs import get_logger
from designsearch.ratelimit import RedisRateLimiter
from designsearch.server import Service, build_server, run_service
from designsearch.v1 import gateway_pb2, gateway_pb2_grpc
from designsearch.gateway.config import GatewaySettings
from designsearch.gateway.core import build_core
from designsearch.gateway.servicer import GatewayServicer

log = get_logger("gateway")


async def create_server(settings: GatewaySettings | None = None, ready_timeout_s: float = 60.0) -> Service:
    """Connect to the backends, Redis and the catalogue; SERVING once all of them answer.

    Raises:
        BackendUnavailable: a dependency did not answer within ``ready_timeout_s``.
    """
    settings = settings or GatewaySettings()
    core = build_core(settings)  # in the event loop: gRPC aio channels bind to it
    servicer = GatewayServicer(core, settings.max_stream_items)

    def register(server) -> list[str]:
        gateway_pb2_grpc.add_GatewayServiceServicer_to_server(servicer, server)
        return [gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name]

    limiter = None
    if settings.rate_limit_per_s > 0 and settings.rate_limit_shared:  # one limit for all replicas
        limiter = RedisRateLimiter(settings.redis_url, settings.rate_limit_per_s, settings.rate_burst,
                                   timeout_s=settings.cache_timeout_s, retry_s=settings.cache_breaker_open_s)
    service = await build_server(settings, register, api_keys=settings.api_keys,
                                 rate_limit_per_s=settings.rate_limit_per_s, rate_burst=settings.rate_burst,
                                 max_message_mb=settings.max_message_mb, service_name="gateway", limiter=limiter)
    service.core = core
    service.on_stop.append(core.close)
    if limiter is not None:
        service.on_stop.append(limiter.close)
    deadline = asyncio.get_running_loop().time() + ready_timeout_s
    while True:
        try:
            await core.start()
            if not await core.cache.ping():
                if settings.require_cache:
                    raise BackendUnavailable(f"redis at {settings.redis_url} does not answer")
                log.warning("serving_without_cache", redis=settings.redis_url)
            break
        except BackendUnavailable as exc:
            if asyncio.get_running_loop().time() > deadline:
                await service.stop(0)
                raise
            log.info("waiting_for_backends", error=exc.message)
            await asyncio.sleep(0.5)
    await service.set_serving(True)
    watcher = asyncio.create_task(_watch_backends(service, core, settings.health_interval_s))

    async def stop_watching() -> None:
        watcher.cancel()

    service.on_stop.insert(0, stop_watching)
    return service


async def _watch_backends(service: Service, core, interval_s: float) -> None:
    """Readiness that tells the truth: NOT_SERVING while a backend does not answer, SERVING again
    as soon as all do (checked every ``interval_s``)."""
    serving = True
    while True:
        await asyncio.sleep(interval_s)
        try:
            down = await core.backends.check(timeout_s=min(1.0, interval_s))
        except Exception as exc:  # noqa: BLE001 - the watcher never dies
            log.warning("backend_check_failed", error_type=type(exc).__name__)
            continue
        if bool(down) == serving:
            serving = not down
            await service.set_serving(serving)
            log.warning("readiness", serving=serving, down=down)


async def serve() -> None:
    """Run the gateway until SIGTERM."""
    await run_service(GatewaySettings(), create_server, "gateway")
