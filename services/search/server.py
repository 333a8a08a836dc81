"""Search server: ``create_server(settings) -> Service`` and ``serve()``."""

from __future__ import annotations

import asyncio

from designsearch.server import Service, build_server, run_service
from designsearch.internal.v1 import search_pb2, search_pb2_grpc
from designsearch.services.search.config import SearchSettings
from designsearch.services.search.core import SearchCore
from designsearch.services.search.index import VectorIndex
from designsearch.services.search.servicer import SearchServicer


def open_configured_index(settings: SearchSettings) -> VectorIndex:
    """The engine named by settings (a URL selects the Qdrant server)."""
    from designsearch.services.search.engines import open_index

    engine = "qdrant" if settings.url else settings.engine
    return open_index(url=settings.url, path=settings.path, engine=engine, hnsw=settings.hnsw(), api_key=settings.api_key,
                      timeout=settings.timeout_s)


async def create_server(settings: SearchSettings | None = None, index: VectorIndex | None = None) -> Service:
    """Open the index, start the server; SERVING once the index answered a call."""
    settings = settings or SearchSettings()
    if index is None:
        index = await asyncio.to_thread(open_configured_index, settings)
    await asyncio.to_thread(index.list_collections)  # readiness: the engine answers
    core = SearchCore(index, settings.hnsw(), settings.max_limit)
    servicer = SearchServicer(core, settings.snapshot_dir)

    def register(server) -> list[str]:
        search_pb2_grpc.add_SearchServiceServicer_to_server(servicer, server)
        return [search_pb2.DESCRIPTOR.services_by_name["SearchService"].full_name]

    service = await build_server(settings, register, internal_token=settings.internal_token,
                                 service_name="search")
    service.on_stop.append(lambda: asyncio.to_thread(index.close))
    await service.set_serving(True)
    return service


async def serve() -> None:
    """Run the search service until SIGTERM."""
    await run_service(SearchSettings(), create_server, "search")
