"""The public API's rules of issue 34, over real gRPC: thin images, what non-image bytes are called,
signed page tokens, control characters (SQLite and PostgreSQL catalogues), one answer for "nothing to
compare", no backend topology in errors, empty design ids, long streams and API keys checked before
the body. Gateways of their own (own collection, own catalogue) on the session's segmenter, embedder
and search services."""

from __future__ import annotations

import asyncio
import io
import time

import grpc
import pytest
import pytest_asyncio
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from PIL import Image

from designsearch.client import index_requests
from designsearch.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc


def _details(err: grpc.aio.AioRpcError) -> dict:
    """``{"reason": ErrorInfo.reason, "fields": [BadRequest field names], "retry_ms": RetryInfo delay or None}``."""
    out: dict = {"reason": None, "fields": [], "retry_ms": None}
    for d in rpc_status.from_call(err).details:
        info, bad, retry = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest(), error_details_pb2.RetryInfo()
        if d.Unpack(info):
            out["reason"] = info.reason
        elif d.Unpack(bad):
            out["fields"] += [v.field for v in bad.field_violations]
        elif d.Unpack(retry):
            out["retry_ms"] = retry.retry_delay.ToMilliseconds()
    return out


async def _refused(call, request, code: grpc.StatusCode, timeout: float = 30) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(request, timeout=timeout)
    assert info.value.code() == code, info.value.details()
    return info.value


def _item(design_id: str, brand: str = "Brand", model: str = "Model", content: bytes = b"x",
          year: int = 2000) -> gateway_pb2.IndexDesignsRequest:
    return gateway_pb2.IndexDesignsRequest(design=common_pb2.DesignRecord(design_id=design_id, brand=brand, model=model,
                                                                          year=year),
                                           image=common_pb2.Image(content=content))


async def _stream(*items):
    for item in items:
        yield item


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 160)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def designs(small_catalogue):
    """Three catalogue images of three designs."""
    catalogue, _ = small_catalogue
    return [next(i for i in catalogue if i.design_id == d) for d in dict.fromkeys(i.design_id for i in catalogue)][:3]


@pytest_asyncio.fixture(scope="module")
async def own(stack, tmp_path_factory, make_gateway_settings, designs):
    """``(service, stub)``: a gateway with its own collection and SQLite catalogue, at most 50 items per
    stream, the three designs ingested."""
    from designsearch.gateway.server import create_server

    var = tmp_path_factory.mktemp("rules")
    gateway = await create_server(make_gateway_settings(stack, var, collection_prefix="rules", max_stream_items=50))
    channel = grpc.aio.insecure_channel(gateway.address)
    stub = gateway_pb2_grpc.GatewayServiceStub(channel)
    r = await stub.IndexDesigns(index_requests(designs), timeout=120)
    assert r.added == 3
    yield gateway, stub
    await channel.close()
    await gateway.stop(0)


@pytest.mark.parametrize("size", [(8, 4000), (16, 4000), (4000, 8)])
async def test_thin_images_are_searched_and_ingested(own, size):
    """An image of at least 8 px per side (the public rule) is searched and indexed: the internal
    shrink of the whole picture keeps 8 px per side (it made 8 x 4000 into 2 x 1024, refused inside)."""
    _, stub = own
    image = _png(*size)
    r = await stub.FindSimilar(gateway_pb2.FindSimilarRequest(image=common_pb2.Image(content=image), k=3), timeout=60)
    assert len(r.matches) >= 1 and r.query_crops[-1].kind == common_pb2.CROP_KIND_WHOLE_IMAGE
    ingested = await stub.IndexDesigns(_stream(_item(f"thin-{size[0]}x{size[1]}", content=image)), timeout=60)
    assert ingested.results[0].status == gateway_pb2.IndexItemResult.STATUS_ADDED, ingested.results[0].error
    gone = await stub.DeleteDesign(gateway_pb2.DeleteDesignRequest(design_id=f"thin-{size[0]}x{size[1]}"), timeout=30)
    assert gone.images_deleted == 1


NOT_IMAGES = {
    "text": (b"hello, this is not an image\n" * 20, "text"),
    "html": (b"<!DOCTYPE html>\n<html><head><title>x</title></head><body>not an image</body></html>", "an HTML page"),
    "pdf": (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n" * 5, "a PDF document"),
    "svg": ((b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
             b'<circle cx="32" cy="32" r="30"/></svg>'), "an SVG drawing"),
}


async def test_non_image_bytes_are_named_not_dumped(own):
    """Text, HTML, PDF and SVG uploads: INVALID_ARGUMENT saying what the bytes look like and which
    formats are accepted, with no exception text of the server (``<_io.BytesIO object at 0x...>``),
    in FindSimilar and in an ingestion stream alike."""
    _, stub = own
    for content, what in NOT_IMAGES.values():
        err = await _refused(stub.FindSimilar, gateway_pb2.FindSimilarRequest(image=common_pb2.Image(content=content)),
                             grpc.StatusCode.INVALID_ARGUMENT)
        assert f"look like {what}" in err.details() and "JPEG, PNG" in err.details(), err.details()
        assert "0x" not in err.details() and "BytesIO" not in err.details() and "cannot identify" not in err.details()
    r = await stub.IndexDesigns(_stream(*[_item(f"not-{k}", content=c) for k, (c, _) in NOT_IMAGES.items()]), timeout=60)
    assert r.failed == len(NOT_IMAGES)
    for result, (_, what) in zip(r.results, NOT_IMAGES.values()):
        assert f"look like {what}" in result.error and "JPEG, PNG" in result.error and "0x" not in result.error
        assert result.failure.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]


async def test_page_tokens_are_signed(own, stack, tmp_path, make_gateway_settings):
    """Only tokens the API issued are read: forged ones (any base64, a 100,000-character one, an issued
    token with its id edited) are INVALID_ARGUMENT; an issued token pages on, on a replica too (the
    key follows from the shared internal token)."""
    import base64

    from designsearch.gateway.server import create_server

    service, stub = own
    first = await stub.ListDesigns(gateway_pb2.ListDesignsRequest(page_size=1), timeout=10)
    assert first.next_page_token
    second = await stub.ListDesigns(gateway_pb2.ListDesignsRequest(page_size=1, page_token=first.next_page_token),
                                    timeout=10)
    assert second.designs[0].design.design_id > first.designs[0].design.design_id
    body, mac = first.next_page_token.split(".")
    edited = base64.urlsafe_b64encode(b"zzz").decode().rstrip("=") + "." + mac
    for forged in ["ZXZpbCcgT1IgMT0xOy0t", "A" * 100_000, base64.urlsafe_b64encode(b"a").decode(), edited,
                   first.next_page_token[:-2], body]:
        err = await _refused(stub.ListDesigns, gateway_pb2.ListDesignsRequest(page_token=forged),
                             grpc.StatusCode.INVALID_ARGUMENT, timeout=10)
        assert "page_token" in err.details() and _details(err)["fields"] == ["page_token"]
    url = service.core.catalogue.engine.url.render_as_string(hide_password=False)
    replica = await create_server(make_gateway_settings(stack, tmp_path, collection_prefix="rules", catalogue_url=url))
    try:
        async with grpc.aio.insecure_channel(replica.address) as channel:
            again = await gateway_pb2_grpc.GatewayServiceStub(channel).ListDesigns(
                gateway_pb2.ListDesignsRequest(page_size=1, page_token=first.next_page_token), timeout=10)
            assert again.designs == second.designs
    finally:
        await replica.stop(0)


async def test_control_characters_are_refused_on_both_catalogues(stack, tmp_path, make_gateway_settings, catalogue_url,
                                                                 designs):
    """NUL and other control characters in design_id, brand or model (and source, attributes, filters,
    UpdateDesign labels): INVALID_ARGUMENT naming the field, nothing stored, on SQLite and on
    PostgreSQL (which cannot store NUL at all) alike."""
    from designsearch.gateway.server import create_server

    prefix = f"ctl{catalogue_url.split(':')[0][:3]}"
    gateway = await create_server(make_gateway_settings(stack, tmp_path, collection_prefix=prefix,
                                                        catalogue_url=catalogue_url))
    good = designs[0].path.read_bytes()
    try:
        async with grpc.aio.insecure_channel(gateway.address) as channel:
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            bad = {"design.design_id": _item("evil\x00id", content=good), "design.brand": _item("d1", brand="Br\x00and",
                                                                                            content=good),
                   "design.model": _item("d2", model="Mo\x1bdel", content=good)}
            with_source = _item("d3", content=good)
            with_source.image.source = "file\x00.jpg"
            bad["image.source"] = with_source
            with_attr = _item("d4", content=good)
            with_attr.design.attributes["colour\x07"] = "red"
            bad["design.attributes"] = with_attr
            r = await stub.IndexDesigns(_stream(*bad.values(), _item("fine", content=good)), timeout=120)
            for (field, _), result in zip(bad.items(), r.results):
                assert result.status == gateway_pb2.IndexItemResult.STATUS_FAILED, field
                assert result.failure.code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and field in result.error
                violation = error_details_pb2.BadRequest()
                assert any(d.Unpack(violation) for d in result.failure.details)
                assert violation.field_violations[0].field == field
            assert r.results[-1].status == gateway_pb2.IndexItemResult.STATUS_ADDED, r.results[-1].error
            stats = await stub.GetStats(gateway_pb2.GetStatsRequest(), timeout=10)
            assert (stats.designs, stats.images) == (1, 1)
            for call, request, field in [
                (stub.UpdateDesign, gateway_pb2.UpdateDesignRequest(
                    design=common_pb2.DesignRecord(design_id="fine", brand="New\x00Brand"),
                    update_mask=field_mask_pb2.FieldMask(paths=["brand"])), "design.brand"),
                (stub.GetDesign, gateway_pb2.GetDesignRequest(design_id="fi\x00ne"), "design_id"),
                (stub.ListDesigns, gateway_pb2.ListDesignsRequest(filters=common_pb2.Filters(brands=["B\x00"])),
                 "filters.brands"),
                (stub.Dislike, gateway_pb2.DislikeRequest(query_id="a" * 64, design_id="fi\x00ne"), "design_id"),
            ]:
                err = await _refused(call, request, grpc.StatusCode.INVALID_ARGUMENT)
                assert _details(err)["fields"] == [field] and "control character" in err.details()
            got = await stub.GetDesign(gateway_pb2.GetDesignRequest(design_id="fine"), timeout=10)
            assert got.design.design.brand == "Brand"
    finally:
        await gateway.stop(0)


async def test_nothing_to_compare_is_one_answer(own, designs):
    """Identify, GetNovelty and GetTypicality with no catalogue design matching the filter: all three
    FAILED_PRECONDITION "the catalogue has no design matching the filter" (reason NO_MATCHING_DESIGN);
    with a matching filter all three answer."""
    _, stub = own
    image = common_pb2.Image(content=designs[0].path.read_bytes())
    none = common_pb2.Filters(brands=["No Such Brand"])
    for call, request in [
        (stub.Identify, gateway_pb2.IdentifyRequest(image=image, filters=none)),
        (stub.GetNovelty, gateway_pb2.GetNoveltyRequest(image=image, filters=none)),
        (stub.GetTypicality, gateway_pb2.GetTypicalityRequest(image=image, group=none)),
        (stub.GetNovelty, gateway_pb2.GetNoveltyRequest(image=image, filters=common_pb2.Filters(year_min=2099))),
    ]:
        err = await _refused(call, request, grpc.StatusCode.FAILED_PRECONDITION, timeout=60)
        assert err.details() == "the catalogue has no design matching the filter"
        assert _details(err)["reason"] == "NO_MATCHING_DESIGN"
    brand = common_pb2.Filters(brands=[designs[0].brand])
    assert (await stub.Identify(gateway_pb2.IdentifyRequest(image=image, filters=brand), timeout=60)).candidates
    assert (await stub.GetNovelty(gateway_pb2.GetNoveltyRequest(image=image, filters=brand), timeout=60)).nearest
    assert (await stub.GetTypicality(gateway_pb2.GetTypicalityRequest(image=image, group=brand), timeout=60)).group_size


async def test_empty_design_ids_are_invalid_argument(own):
    """DeleteDesign, GetDesign and UpdateDesign with an empty id: INVALID_ARGUMENT naming the field (an
    id that names nothing is NOT_FOUND)."""
    _, stub = own
    for call, request, field in [
        (stub.DeleteDesign, gateway_pb2.DeleteDesignRequest(design_id=""), "design_id"),
        (stub.GetDesign, gateway_pb2.GetDesignRequest(design_id=""), "design_id"),
        (stub.UpdateDesign, gateway_pb2.UpdateDesignRequest(design=common_pb2.DesignRecord(design_id="", brand="B"),
                                                            update_mask=field_mask_pb2.FieldMask(paths=["brand"])),
         "design.design_id"),
    ]:
        err = await _refused(call, request, grpc.StatusCode.INVALID_ARGUMENT, timeout=10)
        assert _details(err)["fields"] == [field], err.details()
    await _refused(stub.DeleteDesign, gateway_pb2.DeleteDesignRequest(design_id="no-such-design"),
                   grpc.StatusCode.NOT_FOUND, timeout=10)


async def test_an_over_long_stream_is_refused_as_the_limit_is_crossed(own):
    """A stream that never ends (limit 50 items) is refused INVALID_ARGUMENT as soon as item 51 arrives,
    while the client is still sending, not at the end of the stream."""
    _, stub = own
    sent = 0

    async def endless():
        nonlocal sent
        while True:
            sent += 1
            yield _item(f"s{sent}", content=b"")

    t0 = time.monotonic()
    err = await _refused(stub.IndexDesigns, endless(), grpc.StatusCode.INVALID_ARGUMENT, timeout=30)
    assert "more than 50 items" in err.details() and time.monotonic() - t0 < 10
    assert sent > 50


async def test_backend_topology_stays_in_the_log(stack, tmp_path, embedder_model, make_gateway_settings, designs):
    """The embedder down: the client gets UNAVAILABLE "a backend is unavailable" with RetryInfo and its
    request id, nothing about services, addresses or gRPC's connection state; the log line with that
    request id has the detail."""
    import structlog

    from designsearch.gateway.server import create_server
    from designsearch.procs import free_port
    from designsearch.services.embedder.config import EmbedderSettings
    from designsearch.services.embedder.server import create_server as create_embedder

    port = free_port()
    embedder = await create_embedder(EmbedderSettings(port=port, model_path=embedder_model))
    gateway = await create_server(make_gateway_settings(stack, tmp_path, embedder_address=f"127.0.0.1:{port}",
                                                        collection_prefix="rules"))
    try:
        await embedder.stop(0)
        await asyncio.sleep(0.2)
        async with grpc.aio.insecure_channel(gateway.address) as channel:
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            request = gateway_pb2.FindSimilarRequest(image=common_pb2.Image(content=designs[1].path.read_bytes()),
                                                     no_cache=True)
            with structlog.testing.capture_logs() as logs, pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.FindSimilar(request, timeout=30, metadata=[("x-request-id", "rid-issue-34")])
        err = info.value
        assert err.code() == grpc.StatusCode.UNAVAILABLE, err.details()
        assert err.details().startswith("a backend is unavailable") and "rid-issue-34" in err.details()
        for leak in ("embedder", "ipv4", "127.0.0.1", str(port), "connect", "backends failing"):
            assert leak not in err.details().lower(), err.details()
        assert _details(err)["retry_ms"] and _details(err)["reason"] == "BACKEND_UNAVAILABLE"
        logged = [e for e in logs if e.get("event") == "backend_call_failed" and e.get("request_id") == "rid-issue-34"]
        assert logged and logged[0]["backend"] == "embedder" and logged[0]["code"] == "UNAVAILABLE", logs
        assert str(port) in logged[0]["error"] or "connect" in logged[0]["error"].lower(), logged[0]
    finally:
        await gateway.stop(0)


async def test_a_large_message_with_a_wrong_key_is_refused_before_it_is_read(stack, tmp_path, make_gateway_settings):
    """30 MB with a wrong or missing key: UNAUTHENTICATED, counted as refused; the right key is served.
    (That the body is not even parsed: tests/unit/test_interceptor_auth.py; no wall-clock bound here, it
    flaked on a loaded machine.)"""
    from prometheus_client import REGISTRY

    from designsearch.gateway.server import create_server

    gateway = await create_server(make_gateway_settings(stack, tmp_path, api_keys=["s3cret"], collection_prefix="rules"))
    big = gateway_pb2.FindSimilarRequest(image=common_pb2.Image(content=b"\xff" * (30 * 1024 * 1024)))
    method = "/designsearch.v1.GatewayService/FindSimilar"

    def refused() -> float:
        return REGISTRY.get_sample_value("designsearch_rpc_total", {"method": method, "code": "UNAUTHENTICATED"}) or 0.0

    try:
        async with grpc.aio.insecure_channel(gateway.address,
                                             options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]) as channel:
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            before = refused()
            for key in ([("x-api-key", "wrong")], []):
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await stub.FindSimilar(big, timeout=30, metadata=key)
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, info.value.details()
            assert refused() == before + 2
            ok = await stub.GetStats(gateway_pb2.GetStatsRequest(), timeout=10, metadata=[("x-api-key", "s3cret")])
            assert ok.collection
    finally:
        await gateway.stop(0)
