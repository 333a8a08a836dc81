"""Segmenter server: ``create_server(settings) -> Service`` and ``serve()``."""

from __future__ import annotations

import asyncio

from designsearch.server import Service, build_server, run_service
from designsearch.internal.v1 import segmenter_pb2, segmenter_pb2_grpc
from designsearch.services.segmenter.config import SegmenterSettings
from designsearch.services.segmenter.core import Segmenter, load_detector
from designsearch.services.segmenter.servicer import SegmenterServicer


async def create_server(settings: SegmenterSettings | None = None, segmenter: Segmenter | None = None) -> Service:
    """Start the segmenter on ``settings.host:settings.port`` (0 = free port); SERVING once the detector is loaded."""
    settings = settings or SegmenterSettings()
    if segmenter is None:
        detector = await asyncio.to_thread(load_detector, settings.detector, settings.model_path, settings.threads,
                                           settings.ort_spinning, settings.providers)
        segmenter = Segmenter(detector, settings.crop_margin, settings.crop_size)
    servicer = SegmenterServicer(segmenter, settings.max_crops)

    def register(server) -> list[str]:
        segmenter_pb2_grpc.add_SegmenterServiceServicer_to_server(servicer, server)
        return [segmenter_pb2.DESCRIPTOR.services_by_name["SegmenterService"].full_name]

    service = await build_server(settings, register, internal_token=settings.internal_token,
                                 service_name="segmenter")
    await service.set_serving(True)
    return service


async def serve() -> None:
    """Run the segmenter until SIGTERM."""
    await run_service(SegmenterSettings(), create_server, "segmenter")
