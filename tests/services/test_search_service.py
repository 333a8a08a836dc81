"""The search service over gRPC on the embedded engine: restart survival, snapshots, errors."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from designsearch.internal.v1 import search_pb2, search_pb2_grpc, types_pb2

from designsearch.v1 import common_pb2
from designsearch.services.search.config import SearchSettings
from designsearch.services.search.server import create_server

DIM = 64


def _points(n: int, seed: int = 0) -> list[search_pb2.Point]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, DIM))
    vectors = centres[rng.integers(0, 20, n)] + 0.3 * rng.normal(size=(n, DIM))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    brands = ["Audi", "BMW", "Dodge", "Eagle"]
    return [
        search_pb2.Point(
            id=f"00000000-0000-4000-8000-{i:012d}",
            vectors={"photo": common_pb2.Vector(values=v.tolist()), "lines": common_pb2.Vector(values=v[::-1].tolist())},
            payload=search_pb2.Payload(design_id=f"design-{i % 50}", brand=brands[i % 4], model="M", year=1995 + i % 18,
                                       kind=common_pb2.CROP_KIND_WHEEL, model_version="sha256:test", image_id=f"img{i}"),
        )
        for i, v in enumerate(vectors)
    ]


async def _start(path, snapshot_dir):
    return await create_server(SearchSettings(port=0, engine="edge", path=str(path), snapshot_dir=str(snapshot_dir)))


async def _collection_c(stub, points: list[search_pb2.Point]) -> None:
    """Collection ``c`` (photo and lines views of DIM) holding ``points``."""
    await stub.CreateCollection(search_pb2.CreateCollectionRequest(collection="c", vectors={"photo": DIM, "lines": DIM}), timeout=30)
    await stub.UpsertPoints(search_pb2.UpsertPointsRequest(collection="c", points=points), timeout=30)


async def _query(stub, collection: str, vector: list[float], **kw) -> list[tuple[str, float]]:
    r = await stub.SearchPoints(search_pb2.SearchPointsRequest(collection=collection, vector=common_pb2.Vector(values=vector),
                                                   using=types_pb2.VIEW_PHOTO, limit=10, **kw), timeout=10)
    return [(h.id, round(h.score, 5)) for h in r.hits]


async def test_data_survives_restart_and_snapshot_restores_elsewhere(tmp_path):
    points = _points(600)
    query = list(points[5].vectors["photo"].values)
    flt = common_pb2.Filters(brands=["Audi", "BMW"], year_min=2000, year_max=2008)

    service = await _start(tmp_path / "a", tmp_path / "snaps")
    async with grpc.aio.insecure_channel(service.address) as ch:
        stub = search_pb2_grpc.SearchServiceStub(ch)
        await stub.CreateCollection(search_pb2.CreateCollectionRequest(collection="c1", vectors={"photo": DIM, "lines": DIM}), timeout=30)
        for i in range(0, len(points), 200):
            await stub.UpsertPoints(search_pb2.UpsertPointsRequest(collection="c1", points=points[i:i + 200]), timeout=30)
        count = (await stub.CountPoints(search_pb2.CountPointsRequest(collection="c1"), timeout=10)).count
        before = await _query(stub, "c1", query)
        before_filtered = await _query(stub, "c1", query, filters=flt)
        snapshot = (await stub.CreateSnapshot(search_pb2.CreateSnapshotRequest(collection="c1"), timeout=60)).snapshot
    await service.stop(0)
    assert count == 600 and before[0][0] == points[5].id and before_filtered

    service = await _start(tmp_path / "a", tmp_path / "snaps")  # restart on the same storage
    async with grpc.aio.insecure_channel(service.address) as ch:
        stub = search_pb2_grpc.SearchServiceStub(ch)
        assert (await stub.CountPoints(search_pb2.CountPointsRequest(collection="c1"), timeout=10)).count == count
        assert await _query(stub, "c1", query) == before
        assert await _query(stub, "c1", query, filters=flt) == before_filtered
    await service.stop(0)

    other = await _start(tmp_path / "b", tmp_path / "snaps")  # another machine: restore the snapshot
    async with grpc.aio.insecure_channel(other.address) as ch:
        stub = search_pb2_grpc.SearchServiceStub(ch)
        await stub.RestoreSnapshot(search_pb2.RestoreSnapshotRequest(snapshot=snapshot, collection="restored"), timeout=60)
        assert (await stub.CountPoints(search_pb2.CountPointsRequest(collection="restored"), timeout=10)).count == count
        assert await _query(stub, "restored", query) == before
        assert await _query(stub, "restored", query, filters=flt) == before_filtered
    await other.stop(0)


async def test_bad_search_requests_get_clear_errors(tmp_path):
    service = await _start(tmp_path / "c", tmp_path / "snaps")
    try:
        async with grpc.aio.insecure_channel(service.address) as ch:
            stub = search_pb2_grpc.SearchServiceStub(ch)
            await _collection_c(stub, _points(10))
            cases = [
                (search_pb2.SearchPointsRequest(collection="c", vector=common_pb2.Vector(values=[0.1] * DIM), using=types_pb2.VIEW_PHOTO, limit=0),
                 grpc.StatusCode.INVALID_ARGUMENT, "limit"),
                (search_pb2.SearchPointsRequest(collection="c", vector=common_pb2.Vector(values=[0.1] * 3), using=types_pb2.VIEW_PHOTO, limit=5),
                 grpc.StatusCode.INVALID_ARGUMENT, "shape (64,)"),
                (search_pb2.SearchPointsRequest(collection="nope", vector=common_pb2.Vector(values=[0.1] * DIM), using=types_pb2.VIEW_PHOTO, limit=5),
                 grpc.StatusCode.NOT_FOUND, "nope"),
                (search_pb2.SearchPointsRequest(collection="c", vector=common_pb2.Vector(values=[0.1] * DIM), using=types_pb2.VIEW_PHOTO, limit=5,
                                          filters=common_pb2.Filters(year_min=2010, year_max=2000)),
                 grpc.StatusCode.INVALID_ARGUMENT, "reversed"),
            ]
            for request, code, fragment in cases:
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await stub.SearchPoints(request, timeout=10)
                assert info.value.code() == code and fragment in info.value.details().lower(), info.value.details()
            # snapshots are named inside the server's own folder: no caller path, no probing of paths
            for name, code in [("../../etc/passwd", grpc.StatusCode.INVALID_ARGUMENT), ("/etc/hostname", grpc.StatusCode.INVALID_ARGUMENT),
                               (".hidden", grpc.StatusCode.INVALID_ARGUMENT), ("missing.edge.tar", grpc.StatusCode.NOT_FOUND)]:
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await stub.RestoreSnapshot(search_pb2.RestoreSnapshotRequest(snapshot=name, collection="r"), timeout=10)
                assert info.value.code() == code, (name, info.value.details())
            assert "r" not in (await stub.ListCollections(search_pb2.ListCollectionsRequest(), timeout=10)).collections
            assert (await stub.CountPoints(search_pb2.CountPointsRequest(collection="c"), timeout=10)).count == 10
            # a collection's named vectors, by name or alias; an unknown one is NOT_FOUND
            await stub.SetAlias(search_pb2.SetAliasRequest(alias="live", collection="c"), timeout=10)
            for name in ("c", "live"):
                info_c = await stub.GetCollectionInfo(search_pb2.GetCollectionInfoRequest(collection=name), timeout=10)
                assert dict(info_c.vectors) == {"photo": DIM, "lines": DIM}
            for name, code in [("nope", grpc.StatusCode.NOT_FOUND), ("bad name!", grpc.StatusCode.INVALID_ARGUMENT)]:
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await stub.GetCollectionInfo(search_pb2.GetCollectionInfoRequest(collection=name), timeout=10)
                assert info.value.code() == code, (name, info.value.details())
    finally:
        await service.stop(0)


async def test_search_batch_answers_each_search_as_alone_and_refuses_bad_batches(tmp_path):
    service = await _start(tmp_path / "c", tmp_path / "snaps")
    try:
        async with grpc.aio.insecure_channel(service.address) as ch:
            stub = search_pb2_grpc.SearchServiceStub(ch)
            points = _points(300)
            await _collection_c(stub, points)
            searches = [search_pb2.SearchPointsRequest(collection="c", vector=points[i].vectors["photo"], using=view, limit=limit,
                                                       filters=common_pb2.Filters(brands=brands), group_by_design=True)
                        for i, view, limit, brands in [(3, types_pb2.VIEW_PHOTO, 6, []), (40, types_pb2.VIEW_LINES, 60, []),
                                                        (77, types_pb2.VIEW_PHOTO, 5, ["Audi"])]]
            batch = await stub.SearchPointsBatch(search_pb2.SearchPointsBatchRequest(searches=searches), timeout=10)
            assert len(batch.results) == 3
            for request, result in zip(searches, batch.results):
                alone = await stub.SearchPoints(request, timeout=10)
                assert [(h.id, round(h.score, 5)) for h in result.hits] == [(h.id, round(h.score, 5)) for h in alone.hits]
            assert len(batch.results[1].hits) == 50  # more designs asked than exist: every design once
            assert {h.payload.brand for h in batch.results[2].hits} == {"Audi"}
            # group_size: each design's best hits together, designs ranked by their best hit, the same first hits
            grouped = search_pb2.SearchPointsRequest()
            grouped.CopyFrom(searches[0])
            grouped.group_size = 3
            many = (await stub.SearchPoints(grouped, timeout=10)).hits
            designs = list(dict.fromkeys(h.payload.design_id for h in many))
            assert designs == [h.payload.design_id for h in batch.results[0].hits]
            for d in designs:
                scores = [h.score for h in many if h.payload.design_id == d]
                assert len(scores) == 3 and scores == sorted(scores, reverse=True)  # 6 points per design here
            assert [h.id for h in many][::3] == [h.id for h in batch.results[0].hits]
            too_many = search_pb2.SearchPointsRequest()
            too_many.CopyFrom(grouped)
            too_many.group_size = 101
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.SearchPoints(too_many, timeout=10)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "group_size" in info.value.details()
            bad = search_pb2.SearchPointsRequest(collection="c", vector=common_pb2.Vector(values=[0.1] * DIM), limit=0)
            for request, fragment in [(search_pb2.SearchPointsBatchRequest(), "0 searches"),
                                      (search_pb2.SearchPointsBatchRequest(searches=[searches[0]] * 65), "65 searches"),
                                      (search_pb2.SearchPointsBatchRequest(searches=[searches[0], bad]), "limit")]:
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await stub.SearchPointsBatch(request, timeout=10)
                assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and fragment in info.value.details(), info.value.details()
    finally:
        await service.stop(0)
