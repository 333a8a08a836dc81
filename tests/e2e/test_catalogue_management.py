"""Catalogue management over real gRPC: ListDesigns (paginated, filtered), GetDesign, UpdateDesign
(index payloads follow), DeleteDesign (points, rows, feedback) and their bad input. A gateway of its
own (own catalogue, own collection) on the session's segmenter, embedder and search services."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import field_mask_pb2

from designsearch.client import index_requests
from designsearch.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc


async def test_list_get_update_delete_designs(stack, tmp_path, small_catalogue, make_gateway_settings, catalogue_url):
    from designsearch.gateway.server import create_server

    catalogue, _ = small_catalogue
    items = [next(i for i in catalogue if i.design_id == d) for d in dict.fromkeys(i.design_id for i in catalogue)][:4]
    prefix = f"mgmt{catalogue_url.split(':')[0][:3]}"  # a collection per catalogue backend
    gateway = await create_server(make_gateway_settings(stack, tmp_path, collection_prefix=prefix, catalogue_url=catalogue_url))
    try:
        async with grpc.aio.insecure_channel(gateway.address) as channel:
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            r = await stub.IndexDesigns(index_requests(items), timeout=120)
            assert r.added == 4
            points = {x.design_id: x.crops_indexed for x in r.results}  # crops + whole picture per image
            stats = await stub.GetStats(gateway_pb2.GetStatsRequest(), timeout=10)

            # pagination: 4 designs in pages of 3, ordered by id, every design once
            first = await stub.ListDesigns(gateway_pb2.ListDesignsRequest(page_size=3), timeout=10)
            second = await stub.ListDesigns(gateway_pb2.ListDesignsRequest(page_size=3, page_token=first.next_page_token),
                                            timeout=10)
            ids = [d.design.design_id for d in [*first.designs, *second.designs]]
            assert ids == sorted(i.design_id for i in items) and second.next_page_token == ""
            assert all(d.images == 1 for d in first.designs)
            only = await stub.ListDesigns(gateway_pb2.ListDesignsRequest(
                filters=common_pb2.Filters(brands=[items[0].brand])), timeout=10)
            assert {d.design.brand for d in only.designs} == {items[0].brand}

            # update: the catalogue and the index payloads follow (a brand filter finds it under the new name)
            target = items[1]
            up = await stub.UpdateDesign(gateway_pb2.UpdateDesignRequest(
                design=common_pb2.DesignRecord(design_id=target.design_id, brand="Renamed Motors", year=1999),
                update_mask=field_mask_pb2.FieldMask(paths=["brand", "year"])), timeout=30)
            assert up.points_updated == points[target.design_id] and up.design.design.model == target.model
            got = await stub.GetDesign(gateway_pb2.GetDesignRequest(design_id=target.design_id), timeout=10)
            assert (got.design.design.brand, got.design.design.year) == ("Renamed Motors", 1999)
            found = await stub.FindSimilar(gateway_pb2.FindSimilarRequest(
                image=common_pb2.Image(content=target.path.read_bytes()), k=2,
                filters=common_pb2.Filters(brands=["Renamed Motors"])), timeout=30)
            assert [m.design.design_id for m in found.matches] == [target.design_id]
            assert found.matches[0].design.brand == "Renamed Motors"

            # delete: points and rows go, nothing else does
            gone = items[2]
            d = await stub.DeleteDesign(gateway_pb2.DeleteDesignRequest(design_id=gone.design_id), timeout=30)
            assert (d.images_deleted, d.points_deleted) == (1, points[gone.design_id])
            after = await stub.GetStats(gateway_pb2.GetStatsRequest(), timeout=10)
            assert (after.designs, after.images, after.points) == (stats.designs - 1, stats.images - 1,
                                                                   stats.points - points[gone.design_id])
            res = await stub.FindSimilar(gateway_pb2.FindSimilarRequest(
                image=common_pb2.Image(content=gone.path.read_bytes()), k=4), timeout=30)
            assert gone.design_id not in [m.design.design_id for m in res.matches]

            # bad input: clear status, nothing changed
            bad = [
                (stub.GetDesign, gateway_pb2.GetDesignRequest(design_id="no-such-design"), grpc.StatusCode.NOT_FOUND),
                (stub.DeleteDesign, gateway_pb2.DeleteDesignRequest(design_id=gone.design_id), grpc.StatusCode.NOT_FOUND),
                (stub.ListDesigns, gateway_pb2.ListDesignsRequest(page_size=10_000), grpc.StatusCode.INVALID_ARGUMENT),
                (stub.ListDesigns, gateway_pb2.ListDesignsRequest(page_token="@@not-a-token@@"),
                 grpc.StatusCode.INVALID_ARGUMENT),
                (stub.UpdateDesign, gateway_pb2.UpdateDesignRequest(
                    design=common_pb2.DesignRecord(design_id=target.design_id, year=3000),
                    update_mask=field_mask_pb2.FieldMask(paths=["year"])), grpc.StatusCode.INVALID_ARGUMENT),
                (stub.UpdateDesign, gateway_pb2.UpdateDesignRequest(
                    design=common_pb2.DesignRecord(design_id=target.design_id, brand="x" * 300),
                    update_mask=field_mask_pb2.FieldMask(paths=["brand"])), grpc.StatusCode.INVALID_ARGUMENT),
                (stub.UpdateDesign, gateway_pb2.UpdateDesignRequest(
                    design=common_pb2.DesignRecord(design_id=target.design_id),
                    update_mask=field_mask_pb2.FieldMask(paths=["design_id"])), grpc.StatusCode.INVALID_ARGUMENT),
            ]
            for method, request, code in bad:
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await method(request, timeout=10)
                assert info.value.code() == code, (request, info.value.details())
                assert "SELECT" not in info.value.details() and "UPDATE " not in info.value.details()
            final = await stub.GetStats(gateway_pb2.GetStatsRequest(), timeout=10)
            assert (final.designs, final.images, final.points) == (after.designs, after.images, after.points)
    finally:
        await gateway.stop(0)
