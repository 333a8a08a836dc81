"""Ingestion throughput (images/s) at 1, 2 and 4 concurrent IndexDesigns streams, with CPU seconds per
image of every process.

For each stream count: a fresh local stack (Redis + the four services as processes, as `designsearch up`
runs them), models warmed by one query, then the demo catalogue (Stanford Cars classes 79-98 minus 2
held-out images per class) split round-robin over N client streams, each in its own thread with its
own channel. Wall time runs from the first request to the last response; CPU time is read from
/proc/<pid>/stat (user + system) of each service process before and after.

    python benchmarks/ingest_bench.py [--streams 1 2 4] [--limit 0] [--model-threads N] [--no-mirror] [--out FILE]

Writes benchmarks/results/ingest.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import threading
import time
from pathlib import Path

from designsearch.catalogue_data import demo_split, read_labels
from designsearch.client import DesignSearchClient
from designsearch.procs import Stack, cpu_seconds
from designsearch.settings import REPO_ROOT, default_data_dir


def run_once(catalogue, queries, streams: int, var: Path, engine: str, model_threads: int | None = None,
             mirror: bool = True, cutouts: bool = True, lines: bool = False, provider: str = "cpu") -> dict:
    """Ingest ``catalogue`` over ``streams`` concurrent streams into a fresh stack; returns the figures.
    ``model_threads`` sets the segmenter's and the embedder's onnxruntime threads (default: their settings);
    ``mirror`` the gateway's ``ingest_mirror_whole_picture`` (catalogue-side flip augmentation), ``cutouts`` its
    ``ingest_cutouts`` (a cut-out vector per crop), ``lines`` its ``ingest_lines_view`` (a lines vector per point);
    ``provider`` ``cuda`` asks the segmenter and the embedder for onnxruntime's CUDA provider first (the gpu image
    or ``pip install onnxruntime-gpu``), ``cpu`` for the CPU provider only; the embedder's answer
    (``GetModelInfo.execution_providers``) is recorded, so a run that fell back to CPU says so."""
    if var.exists():
        shutil.rmtree(var)
    env = {"DESIGNSEARCH_SEARCH_ENGINE": engine,
           "DESIGNSEARCH_GATEWAY_INGEST_MIRROR_WHOLE_PICTURE": str(mirror).lower(),
           "DESIGNSEARCH_GATEWAY_INGEST_CUTOUTS": str(cutouts).lower(),
           "DESIGNSEARCH_GATEWAY_INGEST_LINES_VIEW": str(lines).lower()}
    chosen = ["CUDAExecutionProvider", "CPUExecutionProvider"] if provider == "cuda" else ["CPUExecutionProvider"]
    env |= {"DESIGNSEARCH_SEGMENTER_PROVIDERS": json.dumps(chosen), "DESIGNSEARCH_EMBEDDER_PROVIDERS": json.dumps(chosen)}
    if model_threads:
        env |= {"DESIGNSEARCH_SEGMENTER_THREADS": str(model_threads), "DESIGNSEARCH_EMBEDDER_THREADS": str(model_threads)}
    stack = Stack(var, env=env)
    stack.start()
    try:
        with DesignSearchClient(stack.gateway_address) as client:
            client.find_similar(queries[0].path.read_bytes(), no_cache=True)  # load and warm every model
        used = embedder_providers(f"127.0.0.1:{stack.ports['embedder']}", stack.internal_token)
        parts = [catalogue[i::streams] for i in range(streams)]
        results: list = [None] * streams
        cpu0 = {name: cpu_seconds(p.pid) for name, p in stack.procs.items()}

        def worker(i: int) -> None:
            with DesignSearchClient(stack.gateway_address, timeout_s=3600) as c:
                results[i] = c.index(parts[i])

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(streams)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        cpu = {name: cpu_seconds(p.pid) - cpu0[name] for name, p in stack.procs.items()}
        added = sum(r.added for r in results)
        failed = sum(r.failed for r in results)
        with DesignSearchClient(stack.gateway_address) as client:
            stats = client.stats()
    finally:
        stack.stop()
    n = len(catalogue)
    return {"streams": streams, "images": n, "added": added, "failed": failed, "points": stats.points,
            "seconds": round(wall, 2), "images_per_s": round(n / wall, 1),
            "cpu_ms_per_image": {k: round(v * 1000 / n, 1) for k, v in cpu.items()},
            "cpu_ms_per_image_total": round(sum(cpu.values()) * 1000 / n, 1), "embedder_providers": used}


def embedder_providers(address: str, token: str) -> list[str]:
    """The execution providers the running embedder chose (its GetModelInfo), with the internal token."""
    import grpc

    from designsearch.internal.v1 import embedder_pb2, embedder_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        info = embedder_pb2_grpc.EmbedderServiceStub(channel).GetModelInfo(
            embedder_pb2.GetModelInfoRequest(), metadata=[("x-internal-token", token)] if token else None, timeout=10)
    return list(info.execution_providers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--limit", type=int, default=0, help="first N catalogue images only (0 = all)")
    parser.add_argument("--engine", default="edge")
    parser.add_argument("--model-threads", type=int, default=0,
                        help="onnxruntime threads of the segmenter and the embedder (0 = their default, 2)")
    parser.add_argument("--no-mirror", action="store_true",
                        help="whole pictures indexed without flip averaging (ingest_mirror_whole_picture=false)")
    parser.add_argument("--no-cutouts", action="store_true",
                        help="crops indexed without a cut-out vector (ingest_cutouts=false)")
    parser.add_argument("--lines-view", action="store_true",
                        help="every point also indexed with a lines vector (ingest_lines_view=true)")
    parser.add_argument("--provider", choices=["cpu", "cuda"], default="cpu",
                        help="onnxruntime provider of the segmenter and the embedder (cuda: needs onnxruntime-gpu and a GPU)")
    parser.add_argument("--var", type=Path, default=REPO_ROOT / "var" / "bench-ingest")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "ingest.json")
    args = parser.parse_args()

    images = read_labels(default_data_dir() / "stanford-cars" / "labels.csv")
    catalogue, queries = demo_split(images, range(79, 99), 2)
    if args.limit:
        catalogue = catalogue[: args.limit]
    runs = []
    for n in args.streams:
        r = run_once(catalogue, queries, n, args.var / f"streams-{n}", args.engine, args.model_threads or None,
                     mirror=not args.no_mirror, cutouts=not args.no_cutouts, lines=args.lines_view,
                     provider=args.provider)
        runs.append(r)
        print(f"{n} stream(s): {r['images_per_s']:6.1f} images/s ({r['images']} images, {r['points']} points, "
              f"{r['seconds']} s, failed {r['failed']}); CPU ms/image {r['cpu_ms_per_image']} "
              f"= {r['cpu_ms_per_image_total']}")
    out = {"machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
           "engine": args.engine, "model_threads": args.model_threads or "default",
           "mirror_whole_picture": not args.no_mirror, "cutouts": not args.no_cutouts,
           "lines_view": args.lines_view, "provider": args.provider, "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
