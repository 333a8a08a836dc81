"""Crops per second through the embedder *service* (gRPC, adaptive batching) against the bare model,
on the same 2 onnxruntime threads, in one run.

1. Bare model: ``OnnxEmbedder.embed_inputs`` on preprocessed batches of 8, 16 and 32 crops, by one
   session with 2 threads and by two sessions with 1 thread each side by side (the network alone;
   nothing else running). The reference is the best of the six.
2. Service: the embedder started as its own process (``python -m designsearch.services.embedder``, as
   in production; ``--instances`` model instances sharing the 2 threads), then ``--requests`` Embed calls from ``--concurrency`` concurrent clients in this
   process. Request shapes ``<crops>x<views>-<format>``: ``1x1`` (one wheel crop, photo view: the worst case
   per call), ``3x1`` (three crops, photo view: what the gateway sends for one picture's crops) and ``3x2``
   (three crops, photo + lines views: ingestion before the sixth session); ``jpeg`` = the segmenter's
   256 px JPEG crops (decoded and resized by the service), ``pixels`` = the same crops as the gateway sends
   them since the eighth session, decoded pixels at the model's 224 px input (``EmbedRequest.inputs``:
   neither decoded nor resized). Mean batch size from
   the service's Prometheus histogram, and the CPU ms per crop of the service process (/proc) and of
   the clients (this process) beside the bare model's. Note: on 2 cores the clients share the CPU
   with the service, so the CPU cost per crop is the comparison that does not depend on the load
   generator.

    python benchmarks/embedder_service_bench.py [--requests 600] [--concurrency 8 32] [--instances 1|2]
        [--shapes 1x1-jpeg ...]

Writes benchmarks/results/embedder_service.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import grpc

from designsearch.catalogue_data import read_labels
from designsearch.converters import pixels_to_proto
from designsearch.internal.v1 import embedder_pb2, embedder_pb2_grpc, types_pb2
from designsearch.procs import cpu_seconds, free_port, wait_serving
from designsearch.services.embedder.config import EmbedderSettings
from designsearch.services.embedder.core import OnnxEmbedder
from designsearch.services.segmenter.config import SegmenterSettings
from designsearch.services.segmenter.core import Segmenter, load_detector
from designsearch.settings import REPO_ROOT, default_data_dir
from designsearch.v1 import common_pb2

THREADS = 2
SHAPES = ("1x1-jpeg", "1x1-pixels", "3x1-jpeg", "3x1-pixels", "3x2-jpeg")


def wheel_crops(n_images: int = 40, pixels: bool = False) -> list:
    """Wheel crops cut by the segmenter from the first ``n_images`` Stanford Cars photos: JPEG bytes at the
    segmenter's default size, or (``pixels``) ``uint8`` RGB arrays at the gateway's crop size."""
    from designsearch.gateway.regions import CROP_SIZE

    s = SegmenterSettings()
    segmenter = Segmenter(load_detector(s.detector, s.model_path), s.crop_margin, s.crop_size)
    crops: list = []
    for img in read_labels(default_data_dir() / "stanford-cars" / "labels.csv")[:n_images]:
        result = segmenter.segment(img.path.read_bytes(), max_crops=2, crop_size=CROP_SIZE if pixels else None,
                                   pixels=pixels)
        crops += [c.crop_rgb if pixels else c.crop_jpeg for c in result.crops]
    return crops


def bare_model(model_path: str, crops: list, batch: int, instances: int = 1, seconds: float = 6.0) -> tuple[float, float]:
    """Crops/s of the network alone on preprocessed ``batch``-sized inputs (``uint8`` RGB crops), run by
    ``instances`` sessions side by side (one Python thread each) sharing the ``THREADS`` onnxruntime threads,
    and its CPU ms per crop."""
    embedders = [OnnxEmbedder(model_path, threads=THREADS // instances) for _ in range(instances)]
    inputs = embedders[0].preprocess((crops * 4)[:batch])
    for embedder in embedders:
        embedder.embed_inputs(inputs)  # warm-up
    counts = [0] * instances
    t0, c0 = time.perf_counter(), time.process_time()

    def work(k: int) -> None:
        while time.perf_counter() - t0 < seconds:
            embedders[k].embed_inputs(inputs)
            counts[k] += batch

    threads = [threading.Thread(target=work, args=(k,)) for k in range(instances)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    n = sum(counts)
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


def make_requests(crops: list, shape: str) -> tuple[list[embedder_pb2.EmbedRequest], int]:
    """Embed requests of ``shape`` (``<crops>x<views>-<jpeg|pixels>``) over ``crops`` (JPEG bytes or pixel
    arrays, as the format says), and the embeddings each asks for."""
    size, fmt = shape.split("-")
    per_request, n_views = (int(x) for x in size.split("x"))
    views = [types_pb2.VIEW_PHOTO, types_pb2.VIEW_LINES][:n_views]
    reqs = []
    for i in range(len(crops)):
        picked = [crops[(i + j) % len(crops)] for j in range(per_request)]
        if fmt == "pixels":
            reqs.append(embedder_pb2.EmbedRequest(
                inputs=[embedder_pb2.EmbedInput(pixels=pixels_to_proto(c)) for c in picked], views=views))
        else:
            reqs.append(embedder_pb2.EmbedRequest(images=[common_pb2.Image(content=c) for c in picked], views=views))
    return reqs, per_request * n_views


async def service_run(address: str, metrics_url: str, crops: list, shape: str, requests: int, conc: int,
                      pid: int) -> dict:
    reqs, per_request = make_requests(crops, shape)
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
    embeddings = requests * per_request
    return {"shape": shape, "concurrency": conc, "requests": requests, "embeddings": embeddings,
            "crops_per_s": round(embeddings / dt, 1), "mean_batch": round((s1 - s0) / max(c1 - c0, 1), 1),
            "service_cpu_ms_per_crop": round(service_cpu * 1000 / embeddings, 2),
            "client_cpu_ms_per_crop": round(client_cpu * 1000 / embeddings, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--instances", type=int, default=1,
                        help="model instances of the service, each with 2 / instances onnxruntime threads")
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=SHAPES)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "embedder_service.json")
    args = parser.parse_args()

    settings = EmbedderSettings()
    crops = {"jpeg": wheel_crops(), "pixels": wheel_crops(pixels=True)}
    bare_runs = []
    for instances in (1, 2):
        for batch in (8, 16, 32):
            rate, cpu = bare_model(settings.model_path, crops["pixels"], batch, instances)
            bare_runs.append({"instances": instances, "threads_each": THREADS // instances, "batch": batch,
                              "crops_per_s": round(rate, 1), "cpu_ms_per_crop": round(cpu, 2)})
            print(f"bare model, {instances} instance(s) x {THREADS // instances} thread(s), batch {batch}: {rate:.1f} "
                  f"crops/s, {cpu:.2f} CPU ms per crop")
    best = max(bare_runs, key=lambda r: r["crops_per_s"])  # the reference: the network's best on these threads
    bare, bare_cpu = best["crops_per_s"], best["cpu_ms_per_crop"]

    port, metrics_port = free_port(), free_port()
    env = {**os.environ, "DESIGNSEARCH_EMBEDDER_PORT": str(port), "DESIGNSEARCH_EMBEDDER_THREADS": str(THREADS // args.instances),
           "DESIGNSEARCH_EMBEDDER_INSTANCES": str(args.instances),
           "DESIGNSEARCH_EMBEDDER_METRICS_PORT": str(metrics_port)}
    proc = subprocess.Popen([sys.executable, "-m", "designsearch.services.embedder"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = []
    try:
        wait_serving(f"127.0.0.1:{port}", timeout_s=120)
        for shape in args.shapes:
            for conc in args.concurrency:
                n_embeddings = make_requests(crops[shape.split("-")[1]][:1], shape)[1]
                r = asyncio.run(service_run(f"127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics",
                                            crops[shape.split("-")[1]], shape, max(1, args.requests // n_embeddings),
                                            conc, proc.pid))
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
    out = {"model_version": OnnxEmbedder(settings.model_path, threads=1).version, "threads": THREADS, "instances": args.instances,
           "max_batch_size": settings.max_batch_size, "max_batch_time_ms": settings.max_batch_time_ms,
           "cpus": os.cpu_count(), "bare_model_crops_per_s": round(bare, 1), "bare_model_runs": bare_runs,
           "bare_model_cpu_ms_per_crop": round(bare_cpu, 2), "service": runs}
    args.out.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
