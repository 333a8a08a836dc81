"""Thin gRPC servicer of the search service: protobuf ⇄ domain types, index calls in threads."""

from __future__ import annotations

import asyncio

import numpy as np

from designsearch.v1 import common_pb2, search_pb2, search_pb2_grpc
from services.search.core import SearchCore, check_filter
from services.search.index import Hit, Point, SearchFilter

PAYLOAD_KEYS = ("design_id", "brand", "model", "year", "kind", "model_version", "image_id")


def filter_from_proto(f: common_pb2.Filters) -> SearchFilter:
    """Protobuf ``Filters`` → :class:`SearchFilter` (unset years stay open)."""
    return check_filter(
        SearchFilter(
            brands=tuple(f.brands),
            year_min=f.year_min if f.HasField("year_min") else None,
            year_max=f.year_max if f.HasField("year_max") else None,
            kinds=tuple(f.kinds),
            exclude_design_ids=tuple(f.exclude_design_ids),
        )
    )


def payload_to_dict(p: search_pb2.Payload) -> dict:
    """Protobuf payload → index payload dict (box as ``[x1, y1, x2, y2]``)."""
    d = {k: getattr(p, k) for k in PAYLOAD_KEYS}
    d["box"] = [p.box.x1, p.box.y1, p.box.x2, p.box.y2]
    return d


def payload_from_dict(d: dict) -> search_pb2.Payload:
    """Index payload dict → protobuf payload."""
    box = d.get("box") or [0, 0, 0, 0]
    return search_pb2.Payload(
        **{k: d[k] for k in PAYLOAD_KEYS if k in d and d[k] is not None},
        box=common_pb2.BoundingBox(x1=box[0], y1=box[1], x2=box[2], y2=box[3]),
    )


def hit_to_proto(h: Hit) -> search_pb2.ScoredPoint:
    """Domain hit → protobuf."""
    return search_pb2.ScoredPoint(id=h.id, score=h.score, payload=payload_from_dict(h.payload))


class SearchServicer(search_pb2_grpc.SearchServiceServicer):
    """``designsearch.v1.SearchService``."""

    def __init__(self, core: SearchCore, snapshot_dir: str) -> None:
        self.core = core
        self.snapshot_dir = snapshot_dir

    async def CreateCollection(self, request, context):  # noqa: N802
        created = await asyncio.to_thread(self.core.create_collection, request.collection, dict(request.vectors))
        return search_pb2.CreateCollectionResponse(created=created)

    async def DeleteCollection(self, request, context):  # noqa: N802
        await asyncio.to_thread(self.core.index.delete_collection, request.collection)
        return search_pb2.DeleteCollectionResponse()

    async def ListCollections(self, request, context):  # noqa: N802
        def run():
            names = self.core.index.list_collections()
            aliases = {}
            for alias in request.aliases:
                target = self.core.index.resolve_alias(alias)
                if target:
                    aliases[alias] = target
            return names, aliases

        names, aliases = await asyncio.to_thread(run)
        return search_pb2.ListCollectionsResponse(collections=names, aliases=aliases)

    async def SetAlias(self, request, context):  # noqa: N802
        await asyncio.to_thread(self.core.index.set_alias, request.alias, request.collection)
        return search_pb2.SetAliasResponse()

    async def Upsert(self, request, context):  # noqa: N802
        points = [
            Point(
                id=p.id,
                vectors={name: np.asarray(v.values, dtype=np.float32) for name, v in p.vectors.items()},
                payload=payload_to_dict(p.payload),
            )
            for p in request.points
        ]
        n = await asyncio.to_thread(self.core.upsert, request.collection, points)
        return search_pb2.UpsertResponse(upserted=n)

    async def Delete(self, request, context):  # noqa: N802
        await asyncio.to_thread(self.core.index.delete, request.collection, list(request.ids))
        return search_pb2.DeleteResponse()

    async def Count(self, request, context):  # noqa: N802
        flt = filter_from_proto(request.filters)
        n = await asyncio.to_thread(self.core.index.count, request.collection, None if flt.is_empty() else flt)
        return search_pb2.CountResponse(count=n)

    async def Search(self, request, context):  # noqa: N802
        hits = await asyncio.to_thread(
            self.core.search,
            request.collection,
            np.asarray(request.vector.values, dtype=np.float32),
            request.using or "photo",
            request.limit,
            filter_from_proto(request.filters),
            request.group_by_design,
        )
        return search_pb2.SearchResponse(hits=[hit_to_proto(h) for h in hits])

    async def CreateSnapshot(self, request, context):  # noqa: N802
        path = await asyncio.to_thread(
            self.core.index.create_snapshot, request.collection, request.target_dir or self.snapshot_dir
        )
        return search_pb2.CreateSnapshotResponse(path=path)

    async def RestoreSnapshot(self, request, context):  # noqa: N802
        await asyncio.to_thread(self.core.index.restore_snapshot, request.path, request.collection)
        return search_pb2.RestoreSnapshotResponse()
