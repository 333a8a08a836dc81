"""The embedded engine beside its peers on the same data (issue 14): faiss (HNSW flat, IVF-PQ),
hnswlib and Qdrant Edge, unfiltered recall@10 against exact search and single-query latency.

Data: the embedding-like clusters of ``search_bench.py`` (:mod:`search_data`, same generator and
seed), ``--n`` points × 512-d, 500 fresh queries. Each engine is built once and swept over its
search parameter (HNSW ``ef``, IVF ``nprobe``); queries run one at a time on one thread. The table
gives, per engine, the cheapest setting reaching ``--target`` recall@10 and its p50 / p99, and the
p50 ratio to the embedded engine (Qdrant Edge, int8 + rescoring, as served). Payload filters are left
out: faiss and hnswlib have no payload index (the filtered figures are in ``search_bench.py``).

Needs ``pip install faiss-cpu hnswlib`` (benchmark-only; not in requirements.lock).
Usage: ``python benchmarks/search_peers.py [--n 100000]``; writes
``benchmarks/results/search_peers_<n>.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from search_data import D, K, DataGen, exact_topk, latency_stats, recall  # noqa: E402


def sweep(search, Q: np.ndarray, truth: np.ndarray, settings: list, apply) -> list[dict]:
    """Recall@K and latency of ``search(q) -> ids`` for each setting (``apply(setting)`` first)."""
    rows = []
    for value in settings:
        apply(value)
        for q in Q[:20]:  # warm-up
            search(q)
        found, lat = [], []
        for q in Q:
            t0 = time.perf_counter()
            found.append([int(i) for i in search(q)])
            lat.append(time.perf_counter() - t0)
        rows.append({"setting": value, "recall": recall(found, truth), **latency_stats(lat)})
    return rows


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--nq", type=int, default=500)
    ap.add_argument("--target", type=float, default=0.98)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    import faiss
    import hnswlib

    faiss.omp_set_num_threads(1)
    gen = DataGen(0)
    X, _ = gen.sample(args.n, seed=1)
    Q, _ = gen.sample(args.nq, seed=2)
    truth, _ = exact_topk(X, Q, K)
    engines: dict[str, dict] = {}

    # Qdrant Edge (the embedded engine as served: HNSW m 16, ef_construct 128, int8 + rescoring)
    from designsearch.domain import Point
    from designsearch.services.search.engines.edge import EdgeIndex
    from designsearch.services.search.index import HnswConfig

    tmp = Path(tempfile.mkdtemp(prefix="peers-edge-"))
    t0 = time.perf_counter()
    edge = EdgeIndex(tmp, auto_index=False)
    edge.create_collection("c", {"photo": D}, HnswConfig(m=16, ef_construct=128, quantization="int8"))
    for s in range(0, args.n, 2000):
        edge.upsert("c", [Point(f"00000000-0000-4000-8000-{i:012d}", {"photo": X[i]}, {"design_id": str(i)})
                          for i in range(s, min(s + 2000, args.n))], batch_size=2000)
    edge.optimize("c")
    build = time.perf_counter() - t0
    engines["qdrant-edge (int8)"] = {"build_s": round(build, 1), "param": "ef", "sweep": sweep(
        lambda q: [int(h.id[-12:]) for h in edge.search("c", q, using="photo", limit=K)], Q, truth,
        [32, 64, 128, 256], lambda ef: edge.set_search_ef("c", ef))}
    edge.close()
    shutil.rmtree(tmp, ignore_errors=True)

    # faiss HNSW flat (inner product on unit vectors = cosine)
    t0 = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(D, 16, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 128
    hnsw.add(X)
    engines["faiss HNSW flat"] = {"build_s": round(time.perf_counter() - t0, 1), "param": "ef", "sweep": sweep(
        lambda q: hnsw.search(q[None], K)[1][0], Q, truth, [32, 64, 128, 256],
        lambda ef: setattr(hnsw.hnsw, "efSearch", ef))}

    # faiss IVF-PQ (64 sub-quantisers of 8 bits = 64 B per vector) with exact re-ranking of 16k candidates
    nlist = max(64, int(4 * np.sqrt(args.n)))
    t0 = time.perf_counter()
    quantizer = faiss.IndexFlatIP(D)
    ivfpq = faiss.IndexIVFPQ(quantizer, D, nlist, 64, 8, faiss.METRIC_INNER_PRODUCT)
    ivfpq.train(X[: min(args.n, 100_000)])
    refine = faiss.IndexRefineFlat(ivfpq)  # keeps the float vectors to re-rank the PQ candidates
    refine.k_factor = 16
    refine.add(X)
    engines["faiss IVF-PQ + refine"] = {"build_s": round(time.perf_counter() - t0, 1), "param": "nprobe",
                                        "sweep": sweep(lambda q: refine.search(q[None], K)[1][0], Q, truth,
                                                       [8, 16, 32, 64, 128, 256], lambda p: setattr(ivfpq, "nprobe", p))}

    # hnswlib
    t0 = time.perf_counter()
    hl = hnswlib.Index(space="ip", dim=D)
    hl.init_index(max_elements=args.n, M=16, ef_construction=128)
    hl.set_num_threads(2)
    hl.add_items(X, np.arange(args.n))
    hl.set_num_threads(1)
    engines["hnswlib"] = {"build_s": round(time.perf_counter() - t0, 1), "param": "ef", "sweep": sweep(
        lambda q: hl.knn_query(q, k=K)[0][0], Q, truth, [32, 64, 128, 256], hl.set_ef)}

    summary = {}
    for name, e in engines.items():
        ok = [r for r in e["sweep"] if r["recall"] >= args.target]
        best = ok[0] if ok else max(e["sweep"], key=lambda r: r["recall"])
        summary[name] = {"setting": f"{e['param']} {best['setting']}", "recall": best["recall"],
                         "p50_ms": best["p50_ms"], "p99_ms": best["p99_ms"], "build_s": e["build_s"],
                         "meets_target": bool(ok)}
    base = summary["qdrant-edge (int8)"]["p50_ms"]
    for s in summary.values():
        s["p50_vs_edge"] = round(s["p50_ms"] / base, 2)
    result = {"n": args.n, "nq": args.nq, "target_recall": args.target,
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, 1 query thread",
              "summary": summary, "engines": engines}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"search_peers_{args.n}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"| engine ({args.n:,} × {D}-d) | setting at recall@{K} ≥ {args.target} | recall | p50 ms | p99 ms | p50 / edge | build s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, s in summary.items():
        print(f"| {name} | {s['setting']} | {s['recall']} | {s['p50_ms']} | {s['p99_ms']} | {s['p50_vs_edge']} | {s['build_s']} |")
    return result


if __name__ == "__main__":
    main()
