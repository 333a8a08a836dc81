"""Crops as decoded pixels between the services (issue 14: no needless re-encoding): the segmenter's
``SegmentRequest.crop_pixels`` and the embedder's ``EmbedRequest.inputs``, over gRPC with the served
models on real pictures, and their bad-input handling."""

from __future__ import annotations

import cv2
import grpc
import numpy as np
import pytest

from designsearch.converters import pixels_from_proto, pixels_to_proto, vectors_from_proto
from designsearch.images import decode_image, encode_png, read_image
from designsearch.internal.v1 import embedder_pb2, embedder_pb2_grpc, segmenter_pb2, segmenter_pb2_grpc, types_pb2
from designsearch.v1 import common_pb2


def _metadata():
    from tests.conftest import INTERNAL_TOKEN

    return [("x-internal-token", INTERNAL_TOKEN)]


@pytest.fixture(scope="module")
def photo(small_catalogue) -> bytes:
    catalogue, _ = small_catalogue
    return catalogue[0].path.read_bytes()  # a whole car: the segmenter finds its wheels


async def _segment(stack, request: segmenter_pb2.SegmentRequest) -> segmenter_pb2.SegmentResponse:
    async with grpc.aio.insecure_channel(stack["segmenter"].address) as channel:
        return await segmenter_pb2_grpc.SegmenterServiceStub(channel).Segment(request, timeout=60, metadata=_metadata())


async def _embed(stack, request: embedder_pb2.EmbedRequest) -> list[dict[str, np.ndarray]]:
    async with grpc.aio.insecure_channel(stack["embedder"].address) as channel:
        r = await embedder_pb2_grpc.EmbedderServiceStub(channel).Embed(request, timeout=60, metadata=_metadata())
    return [vectors_from_proto(e.vectors) for e in r.embeddings]


async def test_segmenter_sends_its_crops_as_pixels_of_the_asked_size(stack, photo):
    """``crop_pixels``: the same crops (boxes, kinds, scores, masks) as the JPEG answer, ``Crop.image`` empty,
    one ``crop_pixels`` entry per crop at ``crop_size``; their pixels are the JPEG crop's up to the JPEG and
    the second resize (mean absolute difference under 3 grey levels)."""
    image = common_pb2.Image(content=photo)
    as_jpeg = await _segment(stack, segmenter_pb2.SegmentRequest(image=image, max_crops=4))
    as_pixels = await _segment(stack, segmenter_pb2.SegmentRequest(image=image, max_crops=4, crop_pixels=True,
                                                                   crop_size=224))
    assert len(as_jpeg.crops) >= 1 and not as_jpeg.crop_pixels
    assert [(c.box, c.kind, c.mask) for c in as_pixels.crops] == [(c.box, c.kind, c.mask) for c in as_jpeg.crops]
    assert len(as_pixels.crop_pixels) == len(as_pixels.crops)
    for crop, pixels, jpeg_crop in zip(as_pixels.crops, as_pixels.crop_pixels, as_jpeg.crops):
        assert crop.image == b""
        rgb = pixels_from_proto(pixels)
        assert rgb.shape == (224, 224, 3)
        reference = cv2.resize(decode_image(jpeg_crop.image), (224, 224), interpolation=cv2.INTER_AREA)
        assert float(np.abs(rgb.astype(np.int16) - reference).mean()) < 3.0


@pytest.mark.parametrize("crop_size", [4, 5000])
async def test_segmenter_crop_size_out_of_range_is_invalid_argument(stack, photo, crop_size):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _segment(stack, segmenter_pb2.SegmentRequest(image=common_pb2.Image(content=photo), crop_pixels=True,
                                                           crop_size=crop_size))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "crop_size" in info.value.details()


async def test_pixels_are_embedded_like_the_same_image_encoded(stack, small_catalogue):
    """``inputs``: pixels of any size, and at the model's input size (224 px, which skips decoding and
    resizing), give the vectors of the same pixels sent as a lossless PNG, in both views; encoded and pixel
    inputs mix in one request, in order."""
    catalogue, _ = small_catalogue
    picture = read_image(str(catalogue[1].path))
    square = cv2.resize(picture, (224, 224), interpolation=cv2.INTER_AREA)
    views = [types_pb2.VIEW_PHOTO, types_pb2.VIEW_LINES]
    got = await _embed(stack, embedder_pb2.EmbedRequest(views=views, inputs=[
        embedder_pb2.EmbedInput(pixels=pixels_to_proto(picture)),
        embedder_pb2.EmbedInput(encoded=encode_png(square)),
        embedder_pb2.EmbedInput(pixels=pixels_to_proto(square))]))
    reference = await _embed(stack, embedder_pb2.EmbedRequest(views=views, images=[
        common_pb2.Image(content=encode_png(picture)), common_pb2.Image(content=encode_png(square))]))
    assert len(got) == 3
    for g, r in ((got[0], reference[0]), (got[1], reference[1]), (got[2], reference[1])):
        for view in ("photo", "lines"):
            assert float(g[view] @ r[view]) > 0.9999, view
    assert float(got[0]["photo"] @ got[2]["photo"]) < 0.9999  # different pictures: not one constant vector


@pytest.mark.parametrize("pixels, message", [
    (types_pb2.Pixels(width=10, height=10, rgb=b"\0" * 299), "need 300 bytes"),
    (types_pb2.Pixels(width=4, height=40, rgb=b"\0" * 480), "each side must be 8-"),
    (types_pb2.Pixels(width=100_000, height=10, rgb=b""), "each side must be 8-"),
])
async def test_malformed_pixels_are_invalid_argument(stack, pixels, message):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _embed(stack, embedder_pb2.EmbedRequest(inputs=[embedder_pb2.EmbedInput(pixels=pixels)]))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in info.value.details()


async def test_images_and_inputs_in_one_request_are_invalid_argument(stack, small_catalogue):
    catalogue, _ = small_catalogue
    data = catalogue[0].path.read_bytes()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _embed(stack, embedder_pb2.EmbedRequest(images=[common_pb2.Image(content=data)],
                                                      inputs=[embedder_pb2.EmbedInput(encoded=data)]))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not in both" in info.value.details()
