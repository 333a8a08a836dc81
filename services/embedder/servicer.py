"""Thin gRPC servicer of the embedder."""

from __future__ import annotations

from designsearch.converters import pixels_from_proto, vector_to_proto, view_from_proto
from designsearch.errors import InvalidArgument
from designsearch.internal.v1 import embedder_pb2, embedder_pb2_grpc
from designsearch.services.embedder.core import EmbedService


class EmbedderServicer(embedder_pb2_grpc.EmbedderServiceServicer):
    """``designsearch.internal.v1.EmbedderService``."""

    def __init__(self, service: EmbedService) -> None:
        self.service = service

    async def Embed(self, request: embedder_pb2.EmbedRequest, context) -> embedder_pb2.EmbedResponse:  # noqa: N802
        views = [view_from_proto(v, "views") for v in request.views]
        if request.images and request.inputs:
            raise InvalidArgument("send the images in `images` or in `inputs`, not in both", field="inputs")
        images = [img.content for img in request.images] or [
            pixels_from_proto(x.pixels, f"inputs[{i}].pixels") if x.HasField("pixels") else x.encoded
            for i, x in enumerate(request.inputs)]
        results = await self.service.embed(images, views, list(request.mirror_average), list(request.rotated_copies))
        embedder = self.service.batcher.embedder
        return embedder_pb2.EmbedResponse(
            embeddings=[
                embedder_pb2.Embedding(vectors={k: vector_to_proto(v) for k, v in r.items()})
                for r in results
            ],
            model_version=embedder.version,
            dim=embedder.dim,
        )

    async def GetModelInfo(self, request, context) -> embedder_pb2.GetModelInfoResponse:  # noqa: N802
        embedder = self.service.batcher.embedder
        return embedder_pb2.GetModelInfoResponse(
            model_version=embedder.version, dim=embedder.dim, input_size=embedder.input_size,
            execution_providers=list(embedder.providers),
        )
