"""Thin gRPC servicer of the search service: protobuf ⇄ domain types, index calls in threads."""

from __future__ import annotations

import asyncio
from pathlib import Path

from designsearch.converters import (filter_from_proto, hit_to_proto, point_from_proto, point_to_proto,
                                     vector_from_proto, vector_to_proto, view_from_proto)
from designsearch.errors import InvalidArgument
from designsearch.internal.v1 import search_pb2, search_pb2_grpc
from designsearch.services.search.core import SearchCore

#: Threads one SearchPointsBatch call runs its searches on (about the cores a search pod has).
BATCH_THREADS = 2
#: Most searches in one SearchPointsBatch call.
MAX_BATCH = 64


class SearchServicer(search_pb2_grpc.SearchServiceServicer):
    """``designsearch.internal.v1.SearchService``; snapshots live in ``snapshot_dir`` and are named, never pathed."""

    def __init__(self, core: SearchCore, snapshot_dir: str) -> None:
        self.core = core
        self.snapshot_dir = snapshot_dir

    async def CreateCollection(self, request, context):  # noqa: N802
        created = await asyncio.to_thread(self.core.create_collection, request.collection, dict(request.vectors))
        return search_pb2.CreateCollectionResponse(created=created)

    async def DeleteCollection(self, request, context):  # noqa: N802
        await asyncio.to_thread(self.core.delete_collection, request.collection)
        return search_pb2.DeleteCollectionResponse()

    async def ListCollections(self, request, context):  # noqa: N802
        names, aliases = await asyncio.to_thread(self.core.list_collections, list(request.aliases))
        return search_pb2.ListCollectionsResponse(collections=names, aliases=aliases)

    async def GetCollectionInfo(self, request, context):  # noqa: N802
        dims = await asyncio.to_thread(self.core.vector_dims, request.collection)
        return search_pb2.GetCollectionInfoResponse(vectors=dims)

    async def SetAlias(self, request, context):  # noqa: N802
        await asyncio.to_thread(self.core.set_alias, request.alias, request.collection)
        return search_pb2.SetAliasResponse()

    async def UpsertPoints(self, request, context):  # noqa: N802
        points = [point_from_proto(p) for p in request.points]
        n = await asyncio.to_thread(self.core.upsert, request.collection, points)
        return search_pb2.UpsertPointsResponse(upserted=n)

    async def DeletePoints(self, request, context):  # noqa: N802
        await asyncio.to_thread(self.core.delete, request.collection, list(request.ids))
        return search_pb2.DeletePointsResponse()

    async def CountPoints(self, request, context):  # noqa: N802
        n = await asyncio.to_thread(self.core.count, request.collection, filter_from_proto(request.filters))
        return search_pb2.CountPointsResponse(count=n)

    @staticmethod
    def _search_args(r: search_pb2.SearchPointsRequest) -> tuple:
        """The :meth:`SearchCore.search` arguments of one request."""
        return (r.collection, vector_from_proto(r.vector), view_from_proto(r.using, "using"), r.limit,
                filter_from_proto(r.filters), r.group_by_design, r.group_size or 1)

    async def SearchPoints(self, request, context):  # noqa: N802
        hits = await asyncio.to_thread(self.core.search, *self._search_args(request))
        return search_pb2.SearchPointsResponse(hits=[hit_to_proto(h) for h in hits])

    async def SearchPointsBatch(self, request, context):  # noqa: N802
        if not 1 <= len(request.searches) <= MAX_BATCH:
            raise InvalidArgument(f"{len(request.searches)} searches in one call; send 1..{MAX_BATCH}", field="searches")
        queries = [self._search_args(s) for s in request.searches]
        # in BATCH_THREADS chunks run side by side on the default thread pool, each chunk's searches one after another
        # in one thread hop (the engines are thread-safe: the edge engine takes its read lock per search, qdrant-client
        # local mode is serialised by its own lock, a Qdrant server runs them in parallel); one thread per search
        # cost 3-7 ms per query in hops on 2 cores. One refused search fails the call, as before.
        chunks = [queries[i::BATCH_THREADS] for i in range(min(BATCH_THREADS, len(queries)))]
        done = await asyncio.gather(*(asyncio.to_thread(lambda c=c: [self.core.search(*q) for q in c]) for c in chunks))
        results = [None] * len(queries)
        for i, chunk_results in enumerate(done):
            results[i::BATCH_THREADS] = chunk_results
        return search_pb2.SearchPointsBatchResponse(
            results=[search_pb2.SearchPointsResponse(hits=[hit_to_proto(h) for h in hits]) for hits in results])

    async def GetPoints(self, request, context):  # noqa: N802
        points = await asyncio.to_thread(self.core.get_points, request.collection, list(request.ids))
        return search_pb2.GetPointsResponse(points=[point_to_proto(p) for p in points])

    async def GetGroupCentroid(self, request, context):  # noqa: N802
        c, n, mean, std = await asyncio.to_thread(self.core.group_centroid, request.collection,
                                                  view_from_proto(request.using, "using"), filter_from_proto(request.filters))
        return search_pb2.GetGroupCentroidResponse(centroid=vector_to_proto(c), count=n, member_cosine_mean=mean,
                                                   member_cosine_std=std)

    async def CreateSnapshot(self, request, context):  # noqa: N802
        path = await asyncio.to_thread(self.core.create_snapshot, request.collection, self.snapshot_dir)
        return search_pb2.CreateSnapshotResponse(snapshot=Path(path).name)

    async def RestoreSnapshot(self, request, context):  # noqa: N802
        await asyncio.to_thread(self.core.restore_snapshot, self.snapshot_dir, request.snapshot, request.collection)
        return search_pb2.RestoreSnapshotResponse()
