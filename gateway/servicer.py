"""Thin gRPC servicer of the gateway: protobuf ⇄ domain types."""

from __future__ import annotations

from designsearch.converters import box_to_proto as _box
from designsearch.converters import filter_from_proto, kind_to_proto
from designsearch.errors import InvalidArgument
from designsearch.server import status_for
from designsearch.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from designsearch.gateway.core import DOMAIN_AUTO, DOMAIN_PHOTO, DOMAIN_SKETCH, GatewayCore, IndexItem

_DOMAIN_IN = {common_pb2.DOMAIN_UNSPECIFIED: DOMAIN_AUTO, common_pb2.DOMAIN_PHOTO: DOMAIN_PHOTO,
              common_pb2.DOMAIN_SKETCH: DOMAIN_SKETCH}
_DOMAIN_OUT = {DOMAIN_PHOTO: common_pb2.DOMAIN_PHOTO, DOMAIN_SKETCH: common_pb2.DOMAIN_SKETCH}
_STATUS = {"added": gateway_pb2.IndexItemResult.STATUS_ADDED, "duplicate": gateway_pb2.IndexItemResult.STATUS_DUPLICATE,
           "failed": gateway_pb2.IndexItemResult.STATUS_FAILED, "moved": gateway_pb2.IndexItemResult.STATUS_MOVED}


def _item(req: gateway_pb2.IndexDesignsRequest) -> IndexItem:
    d = req.design
    return IndexItem(d.design_id, d.brand, d.model, d.year, req.image.content, req.image.source, dict(d.attributes),
                     move=req.move)


def _summary(d: dict) -> gateway_pb2.DesignSummary:
    return gateway_pb2.DesignSummary(
        design=common_pb2.DesignRecord(design_id=d["design_id"], brand=d["brand"], model=d["model"], year=d["year"],
                                       attributes={str(k): str(v) for k, v in d["attributes"].items()}),
        images=d["images"])


def _match(m) -> gateway_pb2.Match:
    return gateway_pb2.Match(
        design=common_pb2.DesignRecord(design_id=m.design_id, brand=m.brand, model=m.model, year=m.year),
        score=m.score, query_box=_box(m.query_box), image_id=m.image_id, catalogue_box=_box(m.catalogue_box),
        thumbnail=m.thumbnail, source=m.source)


class GatewayServicer(gateway_pb2_grpc.GatewayServiceServicer):
    """``designsearch.v1.GatewayService``."""

    def __init__(self, core: GatewayCore, max_stream_items: int = 100_000) -> None:
        self.core = core
        self.max_stream_items = max_stream_items

    async def FindSimilar(self, request: gateway_pb2.FindSimilarRequest, context) -> gateway_pb2.FindSimilarResponse:  # noqa: N802
        result = await self.core.find_similar(request.image.content, request.k, filter_from_proto(request.filters),
                                              _DOMAIN_IN.get(request.domain, DOMAIN_AUTO), use_cache=not request.no_cache)
        return gateway_pb2.FindSimilarResponse(
            matches=[_match(m) for m in result.matches],
            query_crops=[common_pb2.Crop(box=_box(c.box), score=c.score, kind=kind_to_proto(c.kind)) for c in result.crops],
            domain=_DOMAIN_OUT[result.domain], cache_hit=result.cache_hit, embedder_version=result.embedder_version,
            timings_ms=result.timings_ms, query_id=result.query_id,
        )

    async def IndexDesigns(self, request_iterator, context) -> gateway_pb2.IndexDesignsResponse:  # noqa: N802
        limit = self.max_stream_items

        async def items():
            n = 0
            async for req in request_iterator:
                n += 1
                if n > limit:  # checked as the items arrive, before the extra ones cost any work
                    raise InvalidArgument(f"more than {limit} items in one IndexDesigns stream; split it",
                                          field="stream")
                yield _item(req)

        outcomes = await self.core.index_stream(items())
        results = [gateway_pb2.IndexItemResult(index=i, design_id=o.design_id, image_id=o.image_id, status=_STATUS[o.status],
                                               crops_indexed=o.crops, error=o.error,
                                               failure=status_for(o.failure) if o.failure else None)
                   for i, o in enumerate(outcomes)]
        return gateway_pb2.IndexDesignsResponse(
            results=results,
            added=sum(r.status == gateway_pb2.IndexItemResult.STATUS_ADDED for r in results),
            duplicates=sum(r.status == gateway_pb2.IndexItemResult.STATUS_DUPLICATE for r in results),
            failed=sum(r.status == gateway_pb2.IndexItemResult.STATUS_FAILED for r in results),
            moved=sum(r.status == gateway_pb2.IndexItemResult.STATUS_MOVED for r in results),
        )

    async def Dislike(self, request, context):  # noqa: N802
        await self.core.dislike(request.query_id, request.design_id)
        return gateway_pb2.DislikeResponse()

    async def GetStats(self, request, context):  # noqa: N802
        s = await self.core.stats()
        return gateway_pb2.GetStatsResponse(designs=s["designs"], images=s["images"], points=s["points"],
                                            embedder_version=self.core.embedder_version, collection=self.core.collection)

    async def Verify(self, request: gateway_pb2.VerifyRequest, context) -> gateway_pb2.VerifyResponse:  # noqa: N802
        r = await self.core.verify(request.first.content, request.second.content,
                                   _DOMAIN_IN.get(request.domain, DOMAIN_AUTO))
        return gateway_pb2.VerifyResponse(
            similarity=r.similarity, same_design=r.same_design, threshold=r.threshold, domain=_DOMAIN_OUT[r.domain],
            embedder_version=r.embedder_version, false_accept_rate=r.false_accept_rate,
            false_reject_rate=r.false_reject_rate, equal_error_rate=r.equal_error_rate)

    async def Identify(self, request: gateway_pb2.IdentifyRequest, context) -> gateway_pb2.IdentifyResponse:  # noqa: N802
        r = await self.core.identify(request.image.content, filter_from_proto(request.filters),
                                     _DOMAIN_IN.get(request.domain, DOMAIN_AUTO), request.neighbours)
        return gateway_pb2.IdentifyResponse(
            candidates=[gateway_pb2.Candidate(brand=c.brand, model=c.model, year=c.year, vote_share=c.vote_share,
                                              best_score=c.best_score, design_ids=c.design_ids) for c in r.candidates],
            embedder_version=r.embedder_version, query_id=r.query_id)

    async def GetNovelty(self, request: gateway_pb2.GetNoveltyRequest, context) -> gateway_pb2.GetNoveltyResponse:  # noqa: N802
        r = await self.core.novelty(request.image.content, request.k, filter_from_proto(request.filters),
                                    _DOMAIN_IN.get(request.domain, DOMAIN_AUTO))
        return gateway_pb2.GetNoveltyResponse(novelty=r.novelty, nearest=[_match(m) for m in r.nearest],
                                              embedder_version=r.embedder_version, query_id=r.query_id)

    async def GetTypicality(self, request: gateway_pb2.GetTypicalityRequest, context) -> gateway_pb2.GetTypicalityResponse:  # noqa: N802
        r = await self.core.typicality(request.image.content, filter_from_proto(request.group),
                                       _DOMAIN_IN.get(request.domain, DOMAIN_AUTO))
        return gateway_pb2.GetTypicalityResponse(
            typicality=r.typicality, group_size=r.group_size, group_mean=r.group_mean, group_std=r.group_std,
            z_score=r.z_score, compared=r.compared, embedder_version=r.embedder_version, query_id=r.query_id)

    async def ListDesigns(self, request: gateway_pb2.ListDesignsRequest, context) -> gateway_pb2.ListDesignsResponse:  # noqa: N802
        f = filter_from_proto(request.filters)
        rows, token = await self.core.designs.list(f.brands, f.year_min, f.year_max, request.page_size,
                                                   request.page_token)
        return gateway_pb2.ListDesignsResponse(designs=[_summary(d) for d in rows], next_page_token=token)

    async def GetDesign(self, request: gateway_pb2.GetDesignRequest, context) -> gateway_pb2.GetDesignResponse:  # noqa: N802
        return gateway_pb2.GetDesignResponse(design=_summary(await self.core.designs.get(request.design_id)))

    async def UpdateDesign(self, request: gateway_pb2.UpdateDesignRequest, context) -> gateway_pb2.UpdateDesignResponse:  # noqa: N802
        d = request.design
        paths = list(request.update_mask.paths) or ["brand", "model", "year", "attributes"]
        values = {"brand": d.brand, "model": d.model, "year": d.year, "attributes": dict(d.attributes)}
        changes = {p: values.get(p) for p in paths}
        row, updated = await self.core.designs.update(d.design_id, changes)
        return gateway_pb2.UpdateDesignResponse(design=_summary(row), points_updated=updated)

    async def DeleteDesign(self, request: gateway_pb2.DeleteDesignRequest, context) -> gateway_pb2.DeleteDesignResponse:  # noqa: N802
        images, points = await self.core.designs.delete(request.design_id)
        return gateway_pb2.DeleteDesignResponse(images_deleted=images, points_deleted=points)
