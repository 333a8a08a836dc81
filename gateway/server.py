"""Gateway server: ``create_server(settings) -> Service`` and ``serve()``."""

from __future__ import annotations

import asyncio

from designsearch.errors import BackendUnavailable
from designsearch.logs import configure_logging, get_logger
from designsearch.server import Service, build_server, serve_forever
from designsearch.v1 import gateway_pb2, gateway_pb2_grpc
from gateway.backends import Backends
from gateway.cache import QueryCache
from gateway.catalogue import Catalogue
from gateway.config import GatewaySettings
from gateway.core import GatewayCore
from gateway.servicer import GatewayServicer

log = get_logger("gateway")


async def create_server(settings: GatewaySettings | None = None, ready_timeout_s: float = 60.0) -> Service:
    """Connect to the backends, Redis and the catalogue; SERVING once all of them answer.

    Raises:
        BackendUnavailable: a dependency did not answer within ``ready_timeout_s``.
    """
    settings = settings or GatewaySettings()
    backends = Backends(settings.segmenter_address, [settings.embedder_address, *settings.upgrade_embedder_addresses],
                        settings.search_address,
                        {"segment": settings.segment_timeout_s, "embed": settings.embed_timeout_s,
                         "search": settings.search_timeout_s})
    cache = QueryCache(settings.redis_url, settings.cache_ttl_s)
    catalogue = await asyncio.to_thread(Catalogue, settings.catalogue_url)
    core = GatewayCore(backends, cache, catalogue, collection_prefix=settings.collection_prefix,
                       default_k=settings.default_k, max_k=settings.max_k, max_crops=settings.max_crops,
                       fusion_bonus=settings.fusion_bonus, fusion_depth=settings.fusion_depth,
                       ingest_concurrency=settings.ingest_concurrency, thumbnail_px=settings.thumbnail_px,
                       alias_refresh_s=settings.alias_refresh_s)
    servicer = GatewayServicer(core)

    def register(server) -> list[str]:
        gateway_pb2_grpc.add_GatewayServiceServicer_to_server(servicer, server)
        return [gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name]

    service = await build_server(settings, register, api_keys=settings.api_keys)
    service.core = core
    service.on_stop.extend([backends.close, cache.close, lambda: asyncio.to_thread(catalogue.close)])
    deadline = asyncio.get_running_loop().time() + ready_timeout_s
    while True:
        try:
            await core.start()
            if not await cache.ping():
                raise BackendUnavailable(f"redis at {settings.redis_url} does not answer")
            break
        except BackendUnavailable as exc:
            if asyncio.get_running_loop().time() > deadline:
                await service.stop(0)
                raise
            log.info("waiting_for_backends", error=exc.message)
            await asyncio.sleep(0.5)
    await service.set_serving(True)
    return service


async def serve() -> None:
    """Run the gateway until SIGTERM."""
    settings = GatewaySettings()
    configure_logging(settings.log_level, settings.log_json)
    service = await create_server(settings)
    await serve_forever(service, settings.grace_s, "gateway")
