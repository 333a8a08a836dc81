"""Crops per second through the embedder *service* (gRPC, adaptive batching), 2 CPU threads.

Starts the embedder in-process on a free port, then sends ``--requests`` Embed calls of one
256 px wheel crop each from ``--concurrency`` concurrent clients; the batcher groups them into
model calls of up to ``max_batch_size``. Writes benchmarks/results/embedder_service.json.

    python benchmarks/embedder_service_bench.py [--requests 600] [--concurrency 1 8 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import grpc
from prometheus_client import REGISTRY

from designsearch.catalogue_data import read_labels
from designsearch.settings import REPO_ROOT, default_data_dir
from designsearch.internal.v1 import embedder_pb2, embedder_pb2_grpc
from designsearch.v1 import common_pb2
from designsearch.services.embedder.config import EmbedderSettings
from designsearch.services.embedder.server import create_server
from designsearch.services.segmenter.core import Segmenter, load_detector
from designsearch.services.segmenter.config import SegmenterSettings


async def run(requests: int, concurrency_levels: list[int]) -> dict:
    seg_settings = SegmenterSettings()
    segmenter = Segmenter(load_detector(seg_settings.detector, seg_settings.model_path), seg_settings.crop_margin,
                          seg_settings.crop_size)
    crops = []
    for img in read_labels(default_data_dir() / "stanford-cars" / "labels.csv")[:40]:
        crops += [c.crop_jpeg for c in segmenter.segment(img.path.read_bytes(), max_crops=2).crops]
    settings = EmbedderSettings(port=0, threads=2)
    service = await create_server(settings)
    out = {"model_version": service.embed_service.version, "max_batch_size": settings.max_batch_size,
           "max_batch_time_ms": settings.max_batch_time_ms, "threads": settings.threads, "results": {}}
    async with grpc.aio.insecure_channel(service.address) as channel:
        stub = embedder_pb2_grpc.EmbedderServiceStub(channel)
        reqs = [embedder_pb2.EmbedRequest(images=[common_pb2.Image(content=c)]) for c in crops]
        await stub.Embed(reqs[0], timeout=30)  # warm-up
        for conc in concurrency_levels:
            counter = iter(range(requests))
            batches_before = REGISTRY.get_sample_value("designsearch_embedder_batch_size_count") or 0

            async def worker():
                for i in counter:
                    await stub.Embed(reqs[i % len(reqs)], timeout=60)

            t = time.perf_counter()
            await asyncio.gather(*[worker() for _ in range(conc)])
            dt = time.perf_counter() - t
            calls = (REGISTRY.get_sample_value("designsearch_embedder_batch_size_count") or 0) - batches_before
            out["results"][str(conc)] = {"crops_per_s": round(requests / dt, 1), "mean_batch": round(requests / calls, 1)}
            print(f"concurrency {conc:3d}: {requests / dt:6.1f} crops/s, mean batch {requests / calls:.1f}")
    await service.stop(0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "embedder_service.json")
    args = parser.parse_args()
    result = asyncio.run(run(args.requests, args.concurrency))
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
