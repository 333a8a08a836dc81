"""The gateway's domain logic (no grpc), wired once from settings.

:class:`GatewayCore` holds the parts — :class:`designsearch.gateway.live.LiveIndex` (what is live),
:class:`designsearch.gateway.query.QueryService` (FindSimilar, Dislike), :class:`designsearch.gateway.ingest.Ingestor`
(IndexDesigns, reindex), :class:`designsearch.gateway.verify.Verifier` (Verify),
:class:`designsearch.gateway.designs.DesignService` (catalogue management), Identify, novelty and
typicality — over one set of backends (:class:`designsearch.gateway.ports.Backends`), one query
cache and one catalogue. :func:`build_core` is the only place they are built from settings, for the
gRPC server and the CLI alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from designsearch.domain import SearchFilter
from designsearch.gateway.cache import QueryCache
from designsearch.gateway.catalogue import Catalogue
from designsearch.gateway.config import GatewaySettings
from designsearch.gateway.designs import DesignService, page_token_key
from designsearch.gateway.identify import IdentifyResult, identify
from designsearch.gateway.ingest import IndexItem, IndexOutcome, Ingestor, check_item
from designsearch.gateway.live import LiveIndex
from designsearch.gateway.novelty import NoveltyResult, TypicalityResult, novelty, typicality
from designsearch.gateway.ports import Backends
from designsearch.gateway.query import (CROP_KINDS, DOMAIN_AUTO, DOMAIN_PHOTO, DOMAIN_SKETCH, MatchResult, QueryResult,
                                        QueryService, crop_filter)
from designsearch.gateway.plan import QueryPolicy
from designsearch.gateway.regions import WHOLE_PICTURE_MAX_SIDE, point_id, query_regions, whole_picture_bytes
from designsearch.gateway.verify import Verifier

__all__ = ["CROP_KINDS", "DOMAIN_AUTO", "DOMAIN_PHOTO", "DOMAIN_SKETCH", "WHOLE_PICTURE_MAX_SIDE", "GatewayCore",
           "IndexItem", "IndexOutcome", "MatchResult", "QueryResult", "build_core", "check_item", "crop_filter",
           "point_id", "query_regions", "whole_picture_bytes"]


class GatewayCore:
    """The gateway's parts over shared backends, cache and catalogue.

    Args:
        backends: segmenter, embedder(s) and search (:class:`designsearch.gateway.ports.Backends`).
        cache: query-vector cache.
        catalogue: design records.
        settings: the gateway settings (collection prefix, k limits, crops, fusion, ingestion,
            alias refresh period).
    """

    def __init__(self, backends: Backends, cache: QueryCache, catalogue: Catalogue, settings: GatewaySettings) -> None:
        self.backends = backends
        self.cache = cache
        self.catalogue = catalogue
        self.live = LiveIndex(backends, settings.collection_prefix, settings.alias_refresh_s,
                              lines_view=settings.ingest_lines_view)
        self.query = QueryService(backends, self.live, cache, catalogue, QueryPolicy.from_settings(settings))
        self.ingest = Ingestor(backends, self.live, catalogue, max_crops=settings.max_crops,
                               concurrency=settings.ingest_concurrency, thumbnail_px=settings.thumbnail_px,
                               mirror_whole_picture=settings.ingest_mirror_whole_picture,
                               cutouts=settings.ingest_cutouts,
                               on_change=cache.bump_catalogue_version)
        self.designs = DesignService(backends, self.live, catalogue, on_change=cache.bump_catalogue_version,
                                     page_key=page_token_key(settings.page_token_secret, settings.internal_token))
        self.verifier = Verifier(backends, self.live, settings.verify_calibration, max_crops=settings.max_crops)
        self.verify = self.verifier.verify
        self.find_similar = self.query.find_similar
        self.dislike = self.query.dislike
        self.index_item = self.ingest.index_item
        self.index_stream = self.ingest.index_stream
        self.reindex = self.ingest.reindex

    @property
    def embedder_version(self) -> str:
        """Embedder version of the live collection."""
        return self.live.embedder_version

    @property
    def collection(self) -> str:
        """The live collection."""
        return self.live.collection

    async def identify(self, image: bytes, flt: SearchFilter, domain: str = DOMAIN_AUTO,
                       neighbours: int = 0) -> IdentifyResult:
        """See :func:`designsearch.gateway.identify.identify`."""
        return await identify(self.query, image, flt, domain, neighbours)

    async def novelty(self, image: bytes, k: int, flt: SearchFilter, domain: str = DOMAIN_AUTO) -> NoveltyResult:
        """See :func:`designsearch.gateway.novelty.novelty`."""
        return await novelty(self.query, image, k, flt, domain)

    async def typicality(self, image: bytes, group: SearchFilter, domain: str = DOMAIN_AUTO) -> TypicalityResult:
        """See :func:`designsearch.gateway.novelty.typicality`."""
        return await typicality(self.query, self.backends, image, group, domain)

    async def start(self) -> None:
        """See :meth:`designsearch.gateway.live.LiveIndex.start`."""
        await self.live.start()

    async def stats(self) -> dict:
        """Catalogue and index counts: ``{"designs", "images", "points"}`` of the live collection."""
        designs, images = await asyncio.to_thread(self.catalogue.stats, self.live.embedder_version)
        points = await self.backends.count(self.live.collection)
        return {"designs": designs, "images": images, "points": points}

    async def close(self) -> None:
        """Close the backends' channels, the cache and the catalogue."""
        await self.backends.close()
        await self.cache.close()
        await asyncio.to_thread(self.catalogue.close)


def build_core(settings: GatewaySettings, embedder_addresses: Sequence[str] | None = None) -> GatewayCore:
    """The gateway core with gRPC backends, the Redis cache and the SQL catalogue, from settings.

    Args:
        settings: gateway settings (addresses, deadlines, Redis and catalogue URLs, options).
        embedder_addresses: embedders to use instead of ``embedder_address`` +
            ``upgrade_embedder_addresses`` (a reindex with a new model).

    Raises:
        sqlalchemy.exc.OperationalError: the catalogue database cannot be opened.
    """
    from designsearch import tracing
    from designsearch.gateway.backends import GrpcBackends

    embedders = list(embedder_addresses or [settings.embedder_address, *settings.upgrade_embedder_addresses])
    backends = GrpcBackends(settings.segmenter_address, embedders, settings.search_address,
                            {"segment": settings.segment_timeout_s, "embed": settings.embed_timeout_s,
                             "search": settings.search_timeout_s}, internal_token=settings.internal_token,
                            tls_ca=Path(settings.tls_ca_file).read_bytes() if settings.tls_ca_file else None,
                            traced=tracing.configure("gateway", settings.tracing))
    cache = QueryCache(settings.redis_url, settings.cache_ttl_s, timeout_s=settings.cache_timeout_s,
                       failures_to_open=settings.cache_breaker_failures, open_s=settings.cache_breaker_open_s,
                       threads=settings.cache_threads)
    return GatewayCore(backends, cache, Catalogue(settings.catalogue_url),
                       settings)
