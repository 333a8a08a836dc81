"""Embedder server: ``create_server(settings) -> Service`` and ``serve()``."""

from __future__ import annotations

import asyncio

import numpy as np

from designsearch.server import Service, build_server, run_service
from designsearch.internal.v1 import embedder_pb2, embedder_pb2_grpc
from designsearch.services.embedder.config import EmbedderSettings
from designsearch.services.embedder.core import AdaptiveBatcher, EmbedService, OnnxEmbedder
from designsearch.services.embedder.servicer import EmbedderServicer


async def create_server(settings: EmbedderSettings | None = None) -> Service:
    """Load the ONNX model, start the server; SERVING once the model answered a warm-up batch."""
    settings = settings or EmbedderSettings()
    instances = [await asyncio.to_thread(OnnxEmbedder, settings.model_path, settings.providers, settings.threads,
                                         settings.ort_spinning) for _ in range(settings.instances)]
    batcher = AdaptiveBatcher(instances, settings.max_batch_size, settings.max_batch_time_ms / 1000)
    service_core = EmbedService(batcher, settings.max_images_per_request)
    servicer = EmbedderServicer(service_core)

    def register(server) -> list[str]:
        embedder_pb2_grpc.add_EmbedderServiceServicer_to_server(servicer, server)
        return [embedder_pb2.DESCRIPTOR.services_by_name["EmbedderService"].full_name]

    # Warm-up: the first run of an onnxruntime session allocates its arenas and picks kernels
    # (tens of ms); do it before SERVING so the first real request does not pay for it.
    size = instances[0].input_size
    for embedder in instances:
        await asyncio.to_thread(embedder.embed, [np.full((size, size, 3), 128, dtype=np.uint8)] * 2)
    service = await build_server(settings, register, internal_token=settings.internal_token,
                                 service_name="embedder")
    batcher.start()
    service.on_stop.append(batcher.stop)
    service.embed_service = service_core  # for in-process tests and benchmarks
    await service.set_serving(True)
    return service


async def serve() -> None:
    """Run the embedder until SIGTERM."""
    await run_service(EmbedderSettings(), create_server, "embedder")
