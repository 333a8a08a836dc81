"""gRPC clients of the gateway's backends, returning domain types (the core never sees protobuf).

Every call has a deadline and maps failures to domain errors (:func:`designsearch.rpc.call`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np

from designsearch.converters import (box_from_proto, filter_to_proto, hit_from_proto, kind_from_proto, pixels_from_proto,
                                     pixels_to_proto, point_from_proto, point_to_proto, vector_from_proto, vector_to_proto,
                                     vectors_from_proto, view_to_proto)
from designsearch.domain import Hit, Point, SearchFilter
from designsearch.errors import BackendUnavailable
from designsearch.rpc import call, make_channel
from designsearch.internal.v1 import embedder_pb2, embedder_pb2_grpc, search_pb2, search_pb2_grpc
from designsearch.v1 import common_pb2
from designsearch.internal.v1 import segmenter_pb2, segmenter_pb2_grpc
from designsearch.gateway.ports import Region, Segmentation
from designsearch.gateway.regions import CROP_SIZE



def _grouped_search(collection: str, vector: np.ndarray, using: str, limit: int,
                    flt: SearchFilter, per_design: int = 1) -> search_pb2.SearchPointsRequest:
    """A SearchPoints request for the best ``per_design`` hits of each of the ``limit`` designs nearest ``vector``."""
    return search_pb2.SearchPointsRequest(collection=collection, vector=vector_to_proto(vector), using=view_to_proto(using),
                                          limit=limit, filters=filter_to_proto(flt), group_by_design=True,
                                          group_size=per_design)

class GrpcBackends:
    """:class:`designsearch.gateway.ports.Backends` over gRPC: channels and stubs to the segmenter, embedder and search services.

    Several embedders may be configured during a model upgrade (old and new model side by side);
    :meth:`model_infos` learns their versions and :meth:`embed` picks one by version.

    Args:
        segmenter, search: gRPC targets.
        embedders: gRPC targets of the embedders (usually one).
        timeouts: deadlines in seconds for ``segment``, ``embed`` and ``search`` calls.
        internal_token: the internal services' token, sent with every call.
        tls_ca: PEM CA bundle of the backends' TLS certificates; None = plaintext.
        crop_size: side of the square crops asked from the segmenter, as pixels (no JPEG between the
            services), px: :data:`designsearch.gateway.regions.CROP_SIZE`.
        traced: trace every call (CLIENT spans, W3C trace context sent; :mod:`designsearch.tracing`).
    """

    def __init__(self, segmenter: str, embedders: Sequence[str], search: str, timeouts: dict[str, float],
                 internal_token: str = "", tls_ca: bytes | None = None, crop_size: int = CROP_SIZE,
                 traced: bool = False) -> None:
        self.channels = [make_channel(a, token=internal_token, tls_ca=tls_ca, traced=traced)
                         for a in (segmenter, search, *embedders)]
        self.segmenter = segmenter_pb2_grpc.SegmenterServiceStub(self.channels[0])
        self.search = search_pb2_grpc.SearchServiceStub(self.channels[1])
        self.embedders = [embedder_pb2_grpc.EmbedderServiceStub(ch) for ch in self.channels[2:]]
        self.by_version: dict[str, embedder_pb2_grpc.EmbedderServiceStub] = {}
        self.timeouts = timeouts
        self.crop_size = crop_size

    async def segment(self, image: bytes, max_crops: int) -> Segmentation:
        """Crops of ``image`` (see ``SegmenterService.Segment``), as ``crop_size`` px pixels."""
        r = await call(self.segmenter.Segment,
                       segmenter_pb2.SegmentRequest(image=common_pb2.Image(content=image), max_crops=max_crops,
                                                    crop_pixels=True, crop_size=self.crop_size),
                       timeout=self.timeouts["segment"], backend="segmenter")
        pictures = [pixels_from_proto(p, "crop_pixels") for p in r.crop_pixels] if r.crop_pixels else [c.image for c in r.crops]
        if len(pictures) != len(r.crops):
            raise BackendUnavailable(f"the segmenter sent {len(r.crops)} crops and {len(pictures)} crop pictures")
        crops = [Region(box_from_proto(c.box), kind_from_proto(c.kind), c.score, pic, c.mask)
                 for c, pic in zip(r.crops, pictures)]
        return Segmentation(crops, r.model_version, r.reason, r.image_width, r.image_height)

    async def segmenter_version(self) -> str:
        """The segmenter's model version (``SegmenterService.GetSegmenterInfo``)."""
        r = await call(self.segmenter.GetSegmenterInfo, segmenter_pb2.GetSegmenterInfoRequest(),
                       timeout=self.timeouts["segment"], backend="segmenter")
        return r.model_version

    async def embed(self, images: Sequence[bytes | np.ndarray], views: Sequence[str], version: str,
                    mirror_average: Sequence[bool] = (),
                    rotated_copies: Sequence[int] = ()) -> tuple[list[dict[str, np.ndarray]], str]:
        """Unit vectors per image and view from the embedder serving ``version``, and the version it answered with
        (``mirror_average``, ``rotated_copies``: see :meth:`designsearch.gateway.ports.Backends.embed`).

        Raises:
            BackendUnavailable: no configured embedder serves ``version``.
        """
        stub = self.by_version.get(version)
        if stub is None:
            raise BackendUnavailable(f"no embedder serves model {version}; configured: {sorted(self.by_version)}")
        r = await call(stub.Embed,
                       embedder_pb2.EmbedRequest(inputs=[embedder_pb2.EmbedInput(pixels=pixels_to_proto(b))
                                                         if isinstance(b, np.ndarray) else embedder_pb2.EmbedInput(encoded=b)
                                                         for b in images],
                                                 views=[view_to_proto(v) for v in views],
                                                 mirror_average=list(mirror_average),
                                                 rotated_copies=list(rotated_copies)),
                       timeout=self.timeouts["embed"], backend="embedder")
        vectors = [vectors_from_proto(e.vectors) for e in r.embeddings]
        return vectors, r.model_version

    async def model_infos(self) -> list[tuple[str, int]]:
        """``(version, dimension)`` of each configured embedder, in configuration order."""
        infos = []
        for stub in self.embedders:
            r = await call(stub.GetModelInfo, embedder_pb2.GetModelInfoRequest(),
                           timeout=self.timeouts["embed"], backend="embedder")
            self.by_version[r.model_version] = stub
            infos.append((r.model_version, r.dim))
        return infos

    async def resolve_alias(self, alias: str) -> str | None:
        """The collection ``alias`` names, or None."""
        r = await call(self.search.ListCollections, search_pb2.ListCollectionsRequest(aliases=[alias]),
                       timeout=self.timeouts["search"], backend="search")
        return r.aliases.get(alias)

    async def delete_collection(self, name: str) -> None:
        """Drop a collection."""
        await call(self.search.DeleteCollection, search_pb2.DeleteCollectionRequest(collection=name),
                   timeout=self.timeouts["search"] * 10, backend="search")

    async def create_collection(self, name: str, vectors: dict[str, int]) -> bool:
        """Create a collection if missing."""
        r = await call(self.search.CreateCollection, search_pb2.CreateCollectionRequest(collection=name, vectors=vectors),
                       timeout=self.timeouts["search"] * 10, backend="search")
        return r.created

    async def collection_vectors(self, collection: str) -> dict[str, int]:
        """Named vectors of a collection or alias (``SearchService.GetCollectionInfo``)."""
        r = await call(self.search.GetCollectionInfo, search_pb2.GetCollectionInfoRequest(collection=collection),
                       timeout=self.timeouts["search"], backend="search")
        return dict(r.vectors)

    async def set_alias(self, alias: str, collection: str) -> None:
        """Point ``alias`` at ``collection``."""
        await call(self.search.SetAlias, search_pb2.SetAliasRequest(alias=alias, collection=collection),
                   timeout=self.timeouts["search"] * 10, backend="search")

    async def upsert(self, collection: str, points: Sequence[Point]) -> None:
        """Store points."""
        req = search_pb2.UpsertPointsRequest(collection=collection, points=[point_to_proto(p) for p in points])
        await call(self.search.UpsertPoints, req, timeout=self.timeouts["search"] * 10, backend="search")

    async def search_designs_many(self, collection: str, queries: Sequence[tuple[np.ndarray, str, int, SearchFilter]],
                                  per_design: int = 1) -> list[list[Hit]]:
        """Several grouped searches in one SearchPointsBatch call (the best ``per_design`` hits of each
        design), results in order."""
        if not queries:
            return []
        r = await call(
            self.search.SearchPointsBatch,
            search_pb2.SearchPointsBatchRequest(searches=[_grouped_search(collection, *q, per_design) for q in queries]),
            timeout=self.timeouts["search"], backend="search",
        )
        return [[hit_from_proto(h) for h in res.hits] for res in r.results]

    async def delete_points(self, collection: str, ids: Sequence[str]) -> None:
        """Delete points by id (unknown ids ignored)."""
        await call(self.search.DeletePoints, search_pb2.DeletePointsRequest(collection=collection, ids=list(ids)),
                   timeout=self.timeouts["search"] * 10, backend="search")

    async def get_points(self, collection: str, ids: Sequence[str]) -> list[Point]:
        """Points by id with their vectors (unknown ids skipped)."""
        r = await call(self.search.GetPoints, search_pb2.GetPointsRequest(collection=collection, ids=list(ids)),
                       timeout=self.timeouts["search"], backend="search")
        return [point_from_proto(p) for p in r.points]

    async def group_centroid(self, collection: str, using: str, flt: SearchFilter) -> tuple[np.ndarray, int, float, float]:
        """Mean unit embedding of the points matching ``flt``, their count, and their cosines' mean and std."""
        r = await call(self.search.GetGroupCentroid,
                       search_pb2.GetGroupCentroidRequest(collection=collection, using=view_to_proto(using),
                                                          filters=filter_to_proto(flt)),
                       timeout=self.timeouts["search"] * 10, backend="search")
        return vector_from_proto(r.centroid), r.count, r.member_cosine_mean, r.member_cosine_std

    async def count(self, collection: str) -> int:
        """Points in a collection."""
        r = await call(self.search.CountPoints, search_pb2.CountPointsRequest(collection=collection),
                       timeout=self.timeouts["search"], backend="search")
        return r.count

    async def check(self, timeout_s: float = 1.0) -> list[str]:
        """Names of the backends that do not answer a cheap call within ``timeout_s`` (readiness)."""
        async def probe(name, method, request):
            try:
                await call(method, request, timeout=timeout_s, backend=name, quiet=True)
                return None
            except BackendUnavailable:
                return name

        results = await asyncio.gather(
            probe("segmenter", self.segmenter.GetSegmenterInfo, segmenter_pb2.GetSegmenterInfoRequest()),
            probe("search", self.search.ListCollections, search_pb2.ListCollectionsRequest()),
            *[probe("embedder", stub.GetModelInfo, embedder_pb2.GetModelInfoRequest()) for stub in self.embedders])
        return sorted({r for r in results if r})

    async def close(self) -> None:
        """Close the channels."""
        for ch in self.channels:
            await ch.close()
