"""Per-unit costs for capacity planning (issue 33): CPU per ingested image and per query of each service,
peak memory of each process, disk per point, Redis memory per cached query — the numbers
``docs/operations.md`` multiplies out for 1M and 10M catalogue images at 10 and 100 queries/s.

Starts the stack as processes (as `designsearch up` does, one process per service, embedded search engine)
on an empty ``--var`` folder, ingests the demo catalogue (Stanford Cars classes 79-98, 2 held-out images
per class), then sends ``--queries`` pictures no cache has seen (cold: segment + embed + search + merge)
one at a time, then the same pictures again (answered from the cache). CPU seconds come from /proc (user +
system) of each process, peak memory from its ``VmHWM``.

    python benchmarks/capacity.py [--queries 80]

Writes benchmarks/results/capacity.json and prints the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import redis

from designsearch.catalogue_data import demo_split, read_labels
from designsearch.client import DesignSearchClient
from designsearch.images import encode_jpeg, read_image
from designsearch.procs import Stack, cpu_seconds
from designsearch.settings import REPO_ROOT, default_data_dir


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of a process (``VmHWM`` of /proc/<pid>/status), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def folder_bytes(path: Path) -> int:
    """Bytes of every file under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def fresh_pictures(queries, n: int) -> list[bytes]:
    """``n`` JPEG query pictures no cache has seen: the held-out queries, one pixel changed per copy."""
    out = []
    for i in range(n):
        rgb = read_image(str(queries[i % len(queries)].path)).copy()
        rgb[0, 0] = (i % 251, (i // 251) % 251, 3)
        out.append(encode_jpeg(rgb, quality=92))
    return out


def cpu_of(stack: Stack) -> dict[str, float]:
    return {name: cpu_seconds(p.pid) for name, p in stack.procs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=80)
    parser.add_argument("--var", type=Path, default=REPO_ROOT / "var" / "bench-capacity")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "capacity.json")
    args = parser.parse_args()

    images = read_labels(default_data_dir() / "stanford-cars" / "labels.csv")
    catalogue, queries = demo_split(images, range(79, 99), 2)
    if args.var.exists():
        shutil.rmtree(args.var)
    stack = Stack(args.var, env={"DESIGNSEARCH_SEARCH_ENGINE": "edge"})
    stack.start()
    try:
        r = redis.Redis.from_url(stack.redis.url)
        with DesignSearchClient(stack.gateway_address, timeout_s=3600) as client:
            client.find_similar(queries[0].path.read_bytes(), no_cache=True)  # load and warm every model
            cpu0, t0 = cpu_of(stack), time.perf_counter()
            result = client.index(catalogue)
            ingest_s = time.perf_counter() - t0
            cpu1 = cpu_of(stack)
            stats = client.stats()
            n_img = result.added
            ingest = {name: (cpu1[name] - cpu0[name]) * 1000 / n_img for name in cpu0}
            pictures = fresh_pictures(queries, args.queries)
            redis0 = r.info("memory")["used_memory"]
            lat_cold, lat_cached = [], []
            cpu2 = cpu_of(stack)
            for p in pictures:
                t = time.perf_counter()
                assert client.find_similar(p, 6).matches
                lat_cold.append((time.perf_counter() - t) * 1000)
            cpu3 = cpu_of(stack)
            redis1 = r.info("memory")["used_memory"]
            for p in pictures:
                t = time.perf_counter()
                assert client.find_similar(p, 6).cache_hit
                lat_cached.append((time.perf_counter() - t) * 1000)
            cpu4 = cpu_of(stack)
        peaks = {name: peak_rss_mb(p.pid) for name, p in stack.procs.items()}
    finally:
        stack.stop()
    n_q = len(pictures)
    index_bytes = folder_bytes(args.var / "index")
    catalogue_bytes = sum(f.stat().st_size for f in args.var.glob("catalogue.db*"))  # SQLite, WAL included
    out = {
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "catalogue": {"images": n_img, "points": stats.points, "points_per_image": round(stats.points / n_img, 3),
                      "designs": stats.designs, "embedder_version": stats.embedder_version},
        "ingest": {"seconds": round(ingest_s, 1), "images_per_s": round(n_img / ingest_s, 1),
                   "cpu_ms_per_image": {k: round(v, 1) for k, v in ingest.items()},
                   "cpu_ms_per_image_total": round(sum(ingest.values()), 1)},
        "query_cold": {"n": n_q, "p50_ms": round(float(np.percentile(lat_cold, 50)), 1),
                       "p95_ms": round(float(np.percentile(lat_cold, 95)), 1),
                       "cpu_ms_per_query": {k: round((cpu3[k] - cpu2[k]) * 1000 / n_q, 1) for k in cpu2}},
        "query_cached": {"n": n_q, "p50_ms": round(float(np.percentile(lat_cached, 50)), 1),
                         "p95_ms": round(float(np.percentile(lat_cached, 95)), 1),
                         "cpu_ms_per_query": {k: round((cpu4[k] - cpu3[k]) * 1000 / n_q, 1) for k in cpu3}},
        "peak_rss_mb": {k: round(v, 1) for k, v in peaks.items()},
        "disk": {"index_bytes_per_point": round(index_bytes / stats.points), "index_bytes": index_bytes,
                 "catalogue_bytes_per_image": round(catalogue_bytes / n_img)},
        "redis_bytes_per_query": round((redis1 - redis0) / n_q),
        "command": "python benchmarks/capacity.py --queries " + str(args.queries),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
