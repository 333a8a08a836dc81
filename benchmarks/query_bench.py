"""FindSimilar latency per stage (cache, decode, segment, embed, search, merge, total), cold and cached.

Starts Redis and the four services as processes (the same way `designsearch up` does) on an empty
``--var`` folder, ingests the demo catalogue (Stanford Cars classes 79-98 minus 2 held-out images per
class), then sends every
held-out image (a) with ``no_cache`` (cold: segment + embed + search) for ``--rounds`` rounds and
(b) again from the cache. Client-side wall time is reported too.

    python benchmarks/query_bench.py [--rounds 3] [--engine edge]

Writes benchmarks/results/query.json and query.md and prints the table.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

import numpy as np

from designsearch.catalogue_data import demo_split, read_labels
from designsearch.client import DesignSearchClient
from designsearch.procs import Stack
from designsearch.settings import REPO_ROOT, default_data_dir

STAGES = ["cache", "decode", "segment", "embed", "search", "merge", "total", "client"]


def percentiles(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """p50/p95 (ms) per stage."""
    return {k: {"p50": float(np.percentile(v, 50)), "p95": float(np.percentile(v, 95)), "n": len(v)}
            for k, v in samples.items() if v}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--engine", default="edge", help="search engine: edge | local")
    parser.add_argument("--var", type=Path, default=REPO_ROOT / "var" / "bench")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "query")
    args = parser.parse_args()

    images = read_labels(default_data_dir() / "stanford-cars" / "labels.csv")
    catalogue, queries = demo_split(images, range(79, 99), 2)
    var = args.var / args.engine
    if var.exists():  # a fresh stack: a catalogue left by an older model would name an embedder no longer served
        shutil.rmtree(var)
    stack = Stack(var, env={"DESIGNSEARCH_SEARCH_ENGINE": args.engine})
    stack.start()
    try:
        with DesignSearchClient(stack.gateway_address) as client:
            r = client.index(catalogue)
            stats = client.stats()
            print(f"catalogue: {stats.images} images, {stats.points} points, {stats.designs} designs "
                  f"(added now {r.added}); embedder {stats.embedder_version}")
            payloads = [q.path.read_bytes() for q in queries]
            client.find_similar(payloads[0])  # warm-up
            results = {}
            for mode in ("cold", "cached"):
                samples: dict[str, list[float]] = {s: [] for s in STAGES}
                rounds = args.rounds if mode == "cold" else args.rounds
                for _ in range(rounds):
                    for data in payloads:
                        t = time.perf_counter()
                        resp = client.find_similar(data, 6, no_cache=(mode == "cold"))
                        samples["client"].append((time.perf_counter() - t) * 1000)
                        assert resp.cache_hit == (mode == "cached")
                        for stage, ms in resp.timings_ms.items():
                            samples.setdefault(stage, []).append(ms)
                results[mode] = percentiles(samples)
    finally:
        stack.stop()
    report = {"engine": args.engine, "catalogue_images": stats.images, "points": stats.points,
              "queries": len(queries), "rounds": args.rounds, "machine": f"{platform.machine()}, {platform.processor() or ''}".strip(", "),
              "cpu_count": __import__("os").cpu_count(), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    lines = [f"FindSimilar latency, ms ({stats.images} catalogue images, {stats.points} points, engine {args.engine}, "
             f"{len(queries)} queries x {args.rounds} rounds, {report['cpu_count']} CPUs)", "",
             "| stage | cold p50 | cold p95 | cached p50 | cached p95 |", "|---|---|---|---|---|"]
    for stage in STAGES:
        c, h = results["cold"].get(stage), results["cached"].get(stage)
        fmt = lambda d, k: f"{d[k]:.1f}" if d else "—"  # noqa: E731
        lines.append(f"| {stage} | {fmt(c, 'p50')} | {fmt(c, 'p95')} | {fmt(h, 'p50')} | {fmt(h, 'p95')} |")
    text = "\n".join(lines)
    args.out.with_suffix(".md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
