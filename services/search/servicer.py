"""Thin gRPC servicer of the search service: protobuf ⇄ domain types, index calls in threads."""

from __future__ import annotations

import asyncio

from designsearch.converters import filter_from_proto, hit_to_proto, point_from_proto, vector_from_proto
from designsearch.domain import VIEW_PHOTO
from designsearch.v1 import search_pb2, search_pb2_grpc
from services.search.core import SearchCore


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
        points = [point_from_proto(p) for p in request.points]
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
            vector_from_proto(request.vector),
            request.using or VIEW_PHOTO,
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
