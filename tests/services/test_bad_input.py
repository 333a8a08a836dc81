"""Bad input gets INVALID_ARGUMENT with a clear message; servers keep serving; nothing stored is lost."""

from __future__ import annotations

import io

import grpc
import numpy as np
import pytest
from grpc_status import rpc_status
from google.rpc import error_details_pb2
from PIL import Image

from designsearch.v1 import common_pb2, gateway_pb2


def _huge_png() -> bytes:
    """A valid 20000x20000 PNG (1-bit, compressed to a few KB)."""
    buf = io.BytesIO()
    Image.new("1", (20000, 20000), 0).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


@pytest.fixture(scope="module")
def good_bytes(small_catalogue) -> bytes:
    return small_catalogue[0][0].path.read_bytes()


def _cases(good: bytes):
    return {
        "empty bytes": (gateway_pb2.FindSimilarRequest(image=common_pb2.Image(content=b"")), "empty"),
        "truncated jpeg": (gateway_pb2.FindSimilarRequest(image=common_pb2.Image(content=good[: len(good) // 2])), "truncated"),
        "text file": (gateway_pb2.FindSimilarRequest(image=common_pb2.Image(content=b"hello, this is not an image\n" * 20)), "not a decodable image"),
        "20000x20000 image": (gateway_pb2.FindSimilarRequest(image=common_pb2.Image(content=_huge_png())), "20000x20000"),
        "k = 0 is the default, k = 10000 is refused": (gateway_pb2.FindSimilarRequest(image=common_pb2.Image(content=good), k=10_000), "k 10000"),
        "negative k": (gateway_pb2.FindSimilarRequest(image=common_pb2.Image(content=good), k=-1), "k -1"),
        "year range reversed": (gateway_pb2.FindSimilarRequest(image=common_pb2.Image(content=good),
                                                               filters=common_pb2.Filters(year_min=2012, year_max=2001)), "reversed"),
    }


@pytest.mark.parametrize("case", list(_cases(b"x" * 100).keys()))
async def test_bad_query_is_invalid_argument_and_nothing_is_lost(case, indexed, gateway_stub, good_bytes):
    before = await gateway_stub.GetStats(gateway_pb2.GetStatsRequest(), timeout=10)
    request, fragment = _cases(good_bytes)[case]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gateway_stub.FindSimilar(request, timeout=30)
    err = info.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    assert fragment in err.details(), err.details()
    status = rpc_status.from_call(err)
    reasons = []
    for d in status.details:
        ei = error_details_pb2.ErrorInfo()
        if d.Unpack(ei):
            reasons.append(ei.reason)
    assert reasons, "no google.rpc.ErrorInfo detail"
    # still serving, nothing lost
    ok = await gateway_stub.FindSimilar(gateway_pb2.FindSimilarRequest(image=common_pb2.Image(content=good_bytes), k=0), timeout=30)
    assert len(ok.matches) >= 1
    after = await gateway_stub.GetStats(gateway_pb2.GetStatsRequest(), timeout=10)
    assert (after.images, after.points) == (before.images, before.points)


async def test_bad_items_in_an_ingestion_stream_fail_alone(indexed, gateway_stub, small_catalogue):
    _, queries = small_catalogue
    good = queries[0]
    before = await gateway_stub.GetStats(gateway_pb2.GetStatsRequest(), timeout=10)

    async def stream():
        yield gateway_pb2.IndexDesignsRequest(design=common_pb2.DesignRecord(design_id="x", brand="B", model="M", year=2000),
                                              image=common_pb2.Image(content=b"not an image"))
        yield gateway_pb2.IndexDesignsRequest(design=common_pb2.DesignRecord(design_id="", brand="B", model="M", year=2000),
                                              image=common_pb2.Image(content=good.path.read_bytes()))
        yield gateway_pb2.IndexDesignsRequest(design=common_pb2.DesignRecord(design_id="y", brand="B", model="M", year=99999),
                                              image=common_pb2.Image(content=good.path.read_bytes()))

    r = await gateway_stub.IndexDesigns(stream(), timeout=60)
    assert [x.status for x in r.results] == [gateway_pb2.IndexItemResult.STATUS_FAILED] * 3
    assert "not a decodable image" in r.results[0].error
    assert "design_id" in r.results[1].error and "year" in r.results[2].error
    # each failed item carries the google.rpc.Status it would have had as a unary call
    from google.rpc import code_pb2, error_details_pb2

    for result, field in zip(r.results[1:], ["design.design_id", "design.year"]):
        assert result.failure.code == code_pb2.INVALID_ARGUMENT and result.failure.message == result.error
        bad = error_details_pb2.BadRequest()
        assert any(d.Unpack(bad) for d in result.failure.details)
        assert bad.field_violations[0].field == field
    after = await gateway_stub.GetStats(gateway_pb2.GetStatsRequest(), timeout=10)
    assert (after.images, after.points) == (before.images, before.points)


def test_decoder_refuses_pixel_bombs_before_decoding():
    from designsearch.errors import InvalidImage
    from designsearch.images import decode_image

    with pytest.raises(InvalidImage, match="20000x20000"):
        decode_image(_huge_png())
    rgb = decode_image(_png(np.full((20, 30, 3), 200, np.uint8)))
    assert rgb.shape == (20, 30, 3) and rgb.dtype == np.uint8


def _rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def test_one_bit_bombs_are_refused_before_decoding_and_memory_stays_flat(gateway_stub):
    """An 8000x5000 one-bit PNG (5 KB, 120 MB as RGB), 8 at once through FindSimilar: each is refused
    with INVALID_ARGUMENT naming the decoding budget, and this process (which runs the gateway and the
    segmenter) does not grow by anything like 8 x 120 MB."""
    import asyncio

    buf = io.BytesIO()
    Image.new("1", (8000, 5000)).save(buf, format="PNG")
    bomb = buf.getvalue()
    assert len(bomb) < 10_000
    before = _rss_mb()

    async def one():
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await gateway_stub.FindSimilar(gateway_pb2.FindSimilarRequest(image=common_pb2.Image(content=bomb)),
                                           timeout=30)
        return info.value

    errors = await asyncio.gather(*[one() for _ in range(8)])
    assert all(e.code() == grpc.StatusCode.INVALID_ARGUMENT and "decompression bomb" in e.details() for e in errors)
    assert _rss_mb() - before < 60


def test_sixteen_bit_png_decodes_to_its_grey_levels_not_white():
    from designsearch.images import decode_image

    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (64, 1))
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, format="PNG")
    assert Image.open(io.BytesIO(buf.getvalue())).mode.startswith("I;16")
    rgb = decode_image(buf.getvalue())
    assert rgb.shape == (64, 256, 3) and rgb[0, 0, 0] == 0 and rgb[0, -1, 0] == 255
    assert abs(float(rgb.mean()) - 127.5) < 2  # a ramp, not a near-white image


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


async def test_catalogued_bytes_under_another_design_are_already_exists_not_a_silent_drop(indexed, gateway_stub):
    from google.rpc import code_pb2

    catalogue, _, _ = indexed
    img = catalogue[0]
    before = await gateway_stub.GetStats(gateway_pb2.GetStatsRequest(), timeout=10)

    async def stream():
        yield gateway_pb2.IndexDesignsRequest(
            design=common_pb2.DesignRecord(design_id="someone-else", brand="B", model="M", year=2000),
            image=common_pb2.Image(content=img.path.read_bytes()))
        yield gateway_pb2.IndexDesignsRequest(  # the same bytes under their own design: a duplicate
            design=common_pb2.DesignRecord(design_id=img.design_id, brand=img.brand, model=img.model, year=img.year),
            image=common_pb2.Image(content=img.path.read_bytes()))

    r = await gateway_stub.IndexDesigns(stream(), timeout=60)
    assert [x.status for x in r.results] == [gateway_pb2.IndexItemResult.STATUS_FAILED,
                                             gateway_pb2.IndexItemResult.STATUS_DUPLICATE]
    assert (r.added, r.duplicates, r.moved, r.failed) == (0, 1, 0, 1)
    assert r.results[0].failure.code == code_pb2.ALREADY_EXISTS and img.design_id in r.results[0].error
    after = await gateway_stub.GetStats(gateway_pb2.GetStatsRequest(), timeout=10)
    assert (after.designs, after.images, after.points) == (before.designs, before.images, before.points)


async def test_malformed_messages_and_huge_echoes_get_bounded_invalid_argument(indexed, stack, gateway_stub):
    """A request that is not a protobuf message is INVALID_ARGUMENT (not UNKNOWN/INTERNAL); an error
    that echoes a 100,000-character value stays short."""
    async with grpc.aio.insecure_channel(stack["gateway"].address) as channel:
        raw = channel.unary_unary("/designsearch.v1.GatewayService/FindSimilar")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await raw(b"\xff\xff\xff\xff not protobuf", timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "malformed" in info.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gateway_stub.Dislike(gateway_pb2.DislikeRequest(query_id="a" * 64, design_id="x" * 100_000), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and len(info.value.details()) <= 1000


async def test_stream_length_and_message_size_limits(indexed, stack, tmp_path, make_gateway_settings):
    """An IndexDesigns stream longer than max_stream_items is refused as it arrives; a request larger
    than max_message_mb never reaches a handler."""
    from designsearch.gateway.server import create_server
    from designsearch.v1 import gateway_pb2_grpc

    url = stack["gateway"].core.catalogue.engine.url.render_as_string(hide_password=False)
    gateway = await create_server(make_gateway_settings(stack, tmp_path, catalogue_url=url, max_stream_items=2,
                                                        max_message_mb=1))
    try:
        async with grpc.aio.insecure_channel(gateway.address) as channel:
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)

            async def stream():
                for i in range(5):
                    yield gateway_pb2.IndexDesignsRequest(
                        design=common_pb2.DesignRecord(design_id=f"d{i}", brand="", model="M", year=2000),
                        image=common_pb2.Image(content=b"x"))

            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.IndexDesigns(stream(), timeout=30)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "more than 2 items" in info.value.details()
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.FindSimilar(gateway_pb2.FindSimilarRequest(image=common_pb2.Image(content=b"\0" * 2_000_000)),
                                       timeout=30)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        await gateway.stop(0)
