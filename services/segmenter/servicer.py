"""Thin gRPC servicer of the segmenter: protobuf ⇄ domain types, heavy work off the event loop."""

from __future__ import annotations

import asyncio

from designsearch.converters import box_to_proto, kind_to_proto, pixels_to_proto
from designsearch.errors import InvalidArgument
from designsearch.internal.v1 import segmenter_pb2, segmenter_pb2_grpc
from designsearch.v1 import common_pb2
from designsearch.services.segmenter.core import Segmenter


#: Largest ``SegmentRequest.crop_size``, px (a crop as pixels is then 3 MiB).
MAX_CROP_SIZE = 1024


class SegmenterServicer(segmenter_pb2_grpc.SegmenterServiceServicer):
    """``designsearch.internal.v1.SegmenterService``."""

    def __init__(self, segmenter: Segmenter, default_max_crops: int) -> None:
        self.segmenter = segmenter
        self.default_max_crops = default_max_crops

    async def Segment(self, request: segmenter_pb2.SegmentRequest, context) -> segmenter_pb2.SegmentResponse:  # noqa: N802
        max_crops = request.max_crops if request.max_crops > 0 else self.default_max_crops
        if request.crop_size and not 8 <= request.crop_size <= MAX_CROP_SIZE:
            raise InvalidArgument(f"crop_size must be 0 (the service default) or 8-{MAX_CROP_SIZE} px; got "
                                  f"{request.crop_size}", field="crop_size")
        result = await asyncio.to_thread(
            self.segmenter.segment, request.image.content, max_crops=max_crops, crop_size=request.crop_size or None,
            pixels=request.crop_pixels,
        )
        crops = [
            common_pb2.Crop(
                box=box_to_proto(c.detection.box),
                score=c.detection.score,
                kind=kind_to_proto(c.detection.kind),
                image=c.crop_jpeg,
                mask=c.mask_png,
            )
            for c in result.crops
        ]
        return segmenter_pb2.SegmentResponse(
            crops=crops, image_width=result.width, image_height=result.height,
            model_version=self.segmenter.model_version, reason=result.reason,
            crop_pixels=[pixels_to_proto(c.crop_rgb) for c in result.crops if c.crop_rgb is not None],
        )

    async def GetSegmenterInfo(self, request, context) -> segmenter_pb2.GetSegmenterInfoResponse:  # noqa: N802
        return segmenter_pb2.GetSegmenterInfoResponse(model_version=self.segmenter.model_version,
                                                           detector=self.segmenter.detector.name)
