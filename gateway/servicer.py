"""Thin gRPC servicer of the gateway: protobuf ⇄ domain types."""

from __future__ import annotations

import asyncio

from designsearch.errors import BackendUnavailable
from designsearch.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from gateway.core import DOMAIN_AUTO, DOMAIN_PHOTO, DOMAIN_SKETCH, GatewayCore, IndexItem
from services.search.servicer import filter_from_proto

_DOMAIN_IN = {common_pb2.DOMAIN_UNSPECIFIED: DOMAIN_AUTO, common_pb2.DOMAIN_PHOTO: DOMAIN_PHOTO,
              common_pb2.DOMAIN_SKETCH: DOMAIN_SKETCH}
_DOMAIN_OUT = {DOMAIN_PHOTO: common_pb2.DOMAIN_PHOTO, DOMAIN_SKETCH: common_pb2.DOMAIN_SKETCH}
_STATUS = {"added": gateway_pb2.IndexItemResult.STATUS_ADDED, "duplicate": gateway_pb2.IndexItemResult.STATUS_DUPLICATE,
           "failed": gateway_pb2.IndexItemResult.STATUS_FAILED}


def _box(b) -> common_pb2.BoundingBox:
    return common_pb2.BoundingBox(x1=b[0], y1=b[1], x2=b[2], y2=b[3])


class GatewayServicer(gateway_pb2_grpc.GatewayServiceServicer):
    """``designsearch.v1.GatewayService``."""

    def __init__(self, core: GatewayCore) -> None:
        self.core = core

    async def FindSimilar(self, request: gateway_pb2.FindSimilarRequest, context) -> gateway_pb2.FindSimilarResponse:  # noqa: N802
        result = await self.core.find_similar(request.image.content, request.k, filter_from_proto(request.filters),
                                              _DOMAIN_IN.get(request.domain, DOMAIN_AUTO), use_cache=not request.no_cache)
        return gateway_pb2.FindSimilarResponse(
            matches=[
                gateway_pb2.Match(
                    design=common_pb2.DesignRecord(design_id=m.design_id, brand=m.brand, model=m.model, year=m.year),
                    score=m.score, query_box=_box(m.query_box), image_id=m.image_id, catalogue_box=_box(m.catalogue_box),
                    thumbnail=m.thumbnail, source=m.source)
                for m in result.matches
            ],
            query_crops=[common_pb2.Crop(box=_box(c.box), score=c.score, kind=c.kind) for c in result.crops],
            domain=_DOMAIN_OUT[result.domain], cache_hit=result.cache_hit, embedder_version=result.embedder_version,
            timings_ms=result.timings_ms, query_id=result.query_id,
        )

    async def IndexDesigns(self, request_iterator, context) -> gateway_pb2.IndexDesignsResponse:  # noqa: N802
        semaphore = asyncio.Semaphore(self.core.ingest_concurrency)
        tasks: list[asyncio.Task] = []

        async def one(index: int, req: gateway_pb2.IndexDesignsRequest) -> gateway_pb2.IndexItemResult:
            async with semaphore:
                d = req.design
                outcome = await self.core.index_item(IndexItem(d.design_id, d.brand, d.model, d.year, req.image.content,
                                                               req.image.source, dict(d.attributes)))
            return gateway_pb2.IndexItemResult(index=index, design_id=outcome.design_id, image_id=outcome.image_id,
                                               status=_STATUS[outcome.status], crops_indexed=outcome.crops,
                                               error=outcome.error)

        try:
            index = 0
            async for req in request_iterator:
                tasks.append(asyncio.create_task(one(index, req)))
                index += 1
                # keep memory bounded: do not read far ahead of the workers
                while sum(not t.done() for t in tasks) > 4 * self.core.ingest_concurrency:
                    await asyncio.wait([t for t in tasks if not t.done()], return_when=asyncio.FIRST_COMPLETED)
            results = await asyncio.gather(*tasks)
        except BackendUnavailable:
            for t in tasks:
                t.cancel()
            raise
        return gateway_pb2.IndexDesignsResponse(
            results=results,
            added=sum(r.status == gateway_pb2.IndexItemResult.STATUS_ADDED for r in results),
            duplicates=sum(r.status == gateway_pb2.IndexItemResult.STATUS_DUPLICATE for r in results),
            failed=sum(r.status == gateway_pb2.IndexItemResult.STATUS_FAILED for r in results),
        )

    async def Dislike(self, request, context):  # noqa: N802
        await self.core.dislike(request.query_id, request.design_id)
        return gateway_pb2.DislikeResponse()

    async def GetStats(self, request, context):  # noqa: N802
        s = await self.core.stats()
        return gateway_pb2.GetStatsResponse(designs=s["designs"], images=s["images"], points=s["points"],
                                            embedder_version=self.core.embedder_version, collection=self.core.collection)
