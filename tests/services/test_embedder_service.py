"""The embedder service's Embed over gRPC with the served model on real pictures: flip averaging
(``mirror_average``) and its bad-input handling."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from designsearch.converters import vectors_from_proto
from designsearch.images import encode_png, read_image
from designsearch.internal.v1 import embedder_pb2, embedder_pb2_grpc, types_pb2
from designsearch.v1 import common_pb2


@pytest.fixture(scope="module")
def picture(small_catalogue) -> np.ndarray:
    catalogue, _ = small_catalogue
    return read_image(str(catalogue[0].path))  # a whole car, wider than tall


async def _embed(stack, images: list[bytes], mirror: list[bool] = (), copies: list[int] = (),
                 views=(types_pb2.VIEW_PHOTO, types_pb2.VIEW_LINES)) -> list[dict[str, np.ndarray]]:
    """Embed over gRPC (the internal token as the gateway sends it): view name → vector per answered image."""
    from tests.conftest import INTERNAL_TOKEN

    request = embedder_pb2.EmbedRequest(images=[common_pb2.Image(content=b) for b in images], views=list(views),
                                        mirror_average=list(mirror), rotated_copies=list(copies))
    async with grpc.aio.insecure_channel(stack["embedder"].address) as channel:
        r = await embedder_pb2_grpc.EmbedderServiceStub(channel).Embed(
            request, timeout=60, metadata=[("x-internal-token", INTERNAL_TOKEN)])
    return [vectors_from_proto(e.vectors) for e in r.embeddings]


async def test_mirror_average_gives_a_picture_and_its_mirror_image_one_vector(stack, picture):
    """Flagged images get the normalised mean of their own and their mirror image's vector: a picture
    and its mirror image (lossless PNGs) then get the same photo vector, and line-drawing vectors equal
    up to Canny's tie-breaks; unflagged images in the same request keep their own plain vectors."""
    original, mirrored = encode_png(picture), encode_png(np.ascontiguousarray(picture[:, ::-1]))
    got = await _embed(stack, [original, mirrored, original, mirrored], [True, True, False, False])
    a, b, plain_a, plain_b = got
    for v in (a, b, plain_a, plain_b):
        for vec in v.values():
            assert abs(float(np.linalg.norm(vec)) - 1) < 1e-5
    assert float(a["photo"] @ b["photo"]) > 0.9999
    assert float(a["lines"] @ b["lines"]) > 0.995
    assert float(plain_a["photo"] @ plain_b["photo"]) < 0.99  # the two orientations differ without it
    assert float(plain_a["photo"] @ a["photo"]) < 0.999  # the flag changed the vector
    # the mean of the two plain vectors, normalised, is what a flagged picture gets
    mean = plain_a["photo"] + plain_b["photo"]
    np.testing.assert_allclose(a["photo"], mean / np.linalg.norm(mean), atol=2e-3)
    alone = await _embed(stack, [original], [])  # the flags of other images leave a plain one unchanged
    np.testing.assert_allclose(alone[0]["photo"], plain_a["photo"], atol=2e-3)


async def test_mirror_flags_not_one_per_image_are_invalid_argument(stack, picture):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _embed(stack, [encode_png(picture)] * 2, [True])
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "mirror_average" in info.value.details()


async def test_rotated_copies_are_the_pictures_turned_by_quarter_turns(stack, picture):
    """``rotated_copies``: the copies' vectors follow the images', image by image, then by angle; the copy
    turned by k quarter turns is the vector of the picture turned so (lossless PNGs, a non-square picture; up to
    the resize's rounding, ±1 grey level on a tenth of the pixels, which the INT8 network turns into cosine
    ~0.995)."""
    turned = [encode_png(np.ascontiguousarray(np.rot90(picture, k))) for k in range(4)]
    got = await _embed(stack, [turned[0], turned[1]], copies=[3, 1], views=[types_pb2.VIEW_PHOTO])
    assert len(got) == 2 + 3 + 1
    plain = await _embed(stack, turned, views=[types_pb2.VIEW_PHOTO])
    for copy, k in zip(got[2:5], (1, 2, 3)):  # the first image's three copies
        assert float(copy["photo"] @ plain[k]["photo"]) > 0.99, k
    assert float(got[5]["photo"] @ plain[2]["photo"]) > 0.99  # the second image (turned once) turned once more
    assert float(got[0]["photo"] @ got[2]["photo"]) < 0.95  # a turned picture is another vector


async def test_rotated_copy_counts_out_of_range_or_not_one_per_image_are_invalid_argument(stack, picture):
    tiny = encode_png(picture[:16, :16])
    # 40 images x 3 copies = 160 model inputs: over the service's 2 x 64 (memory), refused before any decoding
    for images, copies in (([encode_png(picture)], [4]), ([encode_png(picture)] * 2, [1]), ([encode_png(picture)], [-1]),
                           ([tiny] * 40, [3] * 40)):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _embed(stack, images, copies=copies, views=[types_pb2.VIEW_PHOTO])
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "rotated_copies" in info.value.details()
