"""Crops per second through the embedder *service* (gRPC, adaptive batching) against the bare model,
on the same 2 onnxruntime threads, in one run.

1. Bare model: ``OnnxEmbedder.embed_inputs`` on preprocessed batches of ``max_batch_size`` (32) crops
   (the network alone, its best batch size; nothing else running).
2. Service: the embedder started as its own process (``python -m designsearch.services.embedder``, as
   in production), then ``--requests`` Embed calls from ``--concurrency`` concurrent clients in this
   process. Two request shapes: ``1x1`` (one wheel crop, photo view: the worst case per call) and
   ``3x2`` (three crops, photo + lines views: what ingestion sends per image). Mean batch size from
   the service's Prometheus histogram, and the CPU ms per crop of the service process (/proc) and of
   the clients (this process) beside the bare model's. Note: on 2 cores the clients share the CPU
   with the service, so the CPU cost per crop is the comparison that does not depend on the load
   generator.

    python benchmarks/embedder_service_bench.py [--requests 600] [--concurrency 8 32]

Writes benchmarks/results/embedder_service.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc

from designsearch.catalogue_data import read_labels
from designsearch.internal.v1 import embedder_pb2, embedder_pb2_grpc, types_pb2
from designsearch.procs import cpu_seconds, free_port, wait_serving
from designsearch.services.embedder.config import EmbedderSettings
from designsearch.services.embedder.core import OnnxEmbedder
from designsearch.services.segmenter.config import SegmenterSettings
from designsearch.services.segmenter.core import Segmenter, load_detector
from designsearch.settings import REPO_ROOT, default_data_dir
from designsearch.v1 import common_pb2

THREADS = 2


def wheel_crops(n_images: int = 40) -> list[bytes]:
    """JPEG wheel crops cut by the segmenter from the first ``n_images`` Stanford Cars photos."""
    s = SegmenterSettings()
    segmenter = Segmenter(load_detector(s.detector, s.model_path), s.crop_margin, s.crop_size)
    crops: list[bytes] = []
    for img in read_labels(default_data_dir() / "stanford-cars" / "labels.csv")[:n_images]:
        crops += [c.crop_jpeg for c in segmenter.segment(img.path.read_bytes(), max_crops=2).crops]
    return crops


def bare_model(model_path: str, crops: list[bytes], batch: int, seconds: float = 8.0) -> tuple[float, float]:
    """Crops/s of the network alone on preprocessed ``batch``-sized inputs, and its CPU ms per crop."""
    from designsearch.images import decode_image

    embedder = OnnxEmbedder(model_path, threads=THREADS)
    inputs = embedder.preprocess([decode_image(c) for c in (crops * 2)[:batch]])
    embedder.embed_inputs(inputs)  # warm-up
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        embedder.embed_inputs(inputs)
        n += batch
    return n / (time.perf_counter() - t0), (time.process_time() - c0) * 1000 / n


def batch_count(metrics_url: str) -> tuple[float, float]:
    """(sum, count) of the service's batch-size histogram."""
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith("designsearch_embedder_batch_size_sum") or line.startswith("designsearch_embedder_batch_size_count"):
            name, value = line.split()[:2]
            values[name.rsplit("_", 1)[1]] = float(value)
    return values.get("sum", 0.0), values.get("count", 0.0)


async def service_run(address: str, metrics_url: str, crops: list[bytes], shape: str, requests: int, conc: int,
                      pid: int) -> dict:
    per_request, views = (1, [types_pb2.VIEW_PHOTO]) if shape == "1x1" else (3, [types_pb2.VIEW_PHOTO, types_pb2.VIEW_LINES])
    reqs = [embedder_pb2.EmbedRequest(images=[common_pb2.Image(content=crops[(i + j) % len(crops)]) for j in range(per_request)],
                                      views=views) for i in range(len(crops))]
    async with grpc.aio.insecure_channel(address) as channel:
        stub = embedder_pb2_grpc.EmbedderServiceStub(channel)
        await stub.Embed(reqs[0], timeout=60)
        counter = iter(range(requests))
        s0, c0 = batch_count(metrics_url)
        cpu0, client0 = cpu_seconds(pid), time.process_time()

        async def worker():
            for i in counter:
                await stub.Embed(reqs[i % len(reqs)], timeout=120)

        t = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(conc)])
        dt = time.perf_counter() - t
        service_cpu, client_cpu = cpu_seconds(pid) - cpu0, time.process_time() - client0
    s1, c1 = batch_count(metrics_url)
    embeddings = requests * per_request * len(views)
    return {"shape": shape, "concurrency": conc, "requests": requests, "embeddings": embeddings,
            "crops_per_s": round(embeddings / dt, 1), "mean_batch": round((s1 - s0) / max(c1 - c0, 1), 1),
            "service_cpu_ms_per_crop": round(service_cpu * 1000 / embeddings, 2),
            "client_cpu_ms_per_crop": round(client_cpu * 1000 / embeddings, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "embedder_service.json")
    args = parser.parse_args()

    settings = EmbedderSettings()
    crops = wheel_crops()
    bare, bare_cpu = bare_model(settings.model_path, crops, settings.max_batch_size)
    print(f"bare model, batch {settings.max_batch_size}, {THREADS} threads: {bare:.1f} crops/s, {bare_cpu:.2f} CPU ms per crop")

    port, metrics_port = free_port(), free_port()
    env = {**os.environ, "DESIGNSEARCH_EMBEDDER_PORT": str(port), "DESIGNSEARCH_EMBEDDER_THREADS": str(THREADS),
           "DESIGNSEARCH_EMBEDDER_METRICS_PORT": str(metrics_port)}
    proc = subprocess.Popen([sys.executable, "-m", "designsearch.services.embedder"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = []
    try:
        wait_serving(f"127.0.0.1:{port}", timeout_s=120)
        for shape in ("1x1", "3x2"):
            for conc in args.concurrency:
                r = asyncio.run(service_run(f"127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics", crops, shape,
                                            args.requests if shape == "1x1" else args.requests // 6, conc, proc.pid))
                r["ratio_to_bare"] = round(r["crops_per_s"] / bare, 3)
                r["cpu_ratio_to_bare"] = round(r["service_cpu_ms_per_crop"] / bare_cpu, 3)
                runs.append(r)
                print(f"service {shape} concurrency {conc:3d}: {r['crops_per_s']:6.1f} crops/s "
                      f"({r['ratio_to_bare']:.0%} of the bare model), mean batch {r['mean_batch']}; CPU ms per crop: "
                      f"service {r['service_cpu_ms_per_crop']} ({r['cpu_ratio_to_bare']:.2f}x the bare model's), "
                      f"clients {r['client_cpu_ms_per_crop']}")
    finally:
        proc.terminate()
        proc.wait(30)
    out = {"model_version": OnnxEmbedder(settings.model_path, threads=1).version, "threads": THREADS,
           "max_batch_size": settings.max_batch_size, "max_batch_time_ms": settings.max_batch_time_ms,
           "cpus": os.cpu_count(), "bare_model_crops_per_s": round(bare, 1),
           "bare_model_cpu_ms_per_crop": round(bare_cpu, 2), "service": runs}
    args.out.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
