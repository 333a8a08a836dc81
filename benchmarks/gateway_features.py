"""Identify, novelty and typicality measured on the demo catalogue (issue 11 figures).

Starts the local stack on the demo's folder (run ``designsearch demo`` first: it indexes Stanford
Cars classes 79-98 and holds out 2 images per class), then over gRPC:

* Identify top-1 / top-5 accuracy (brand, model, year) on the 40 held-out images;
* novelty of three kinds of picture: catalogue images themselves (copies: novelty ≈ 0), held-out
  photos of catalogued designs, and photos of designs that are NOT in the catalogue (classes 1-20,
  the first image of each);
* typicality of the held-out photos within their own brand vs within every other brand present.

Usage: ``python benchmarks/gateway_features.py [--var-dir var/demo]``; writes
``benchmarks/results/gateway_features.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> dict:
    from designsearch.catalogue_data import demo_split, read_labels
    from designsearch.client import DesignSearchClient
    from designsearch.procs import Stack
    from designsearch.settings import default_data_dir

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--var-dir", type=Path, default=ROOT / "var" / "demo")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gateway_features.json")
    args = ap.parse_args()
    images = read_labels(default_data_dir() / "stanford-cars" / "labels.csv")
    catalogue, queries = demo_split(images, range(79, 99), 2)
    unseen = [next(i for i in images if i.class_id == c) for c in range(1, 21)]
    copies = catalogue[::41][:20]
    stack = Stack(args.var_dir)
    stack.start()
    try:
        with DesignSearchClient(stack.gateway_address) as client:
            stats = client.stats()
            if stats.images == 0:
                sys.exit("the demo catalogue is empty: run `designsearch demo` first")
            top1 = top5 = 0
            for q in queries:
                labels = [(c.brand, c.model, c.year) for c in client.identify(q.path.read_bytes()).candidates]
                top1 += labels[:1] == [(q.brand, q.model, q.year)]
                top5 += (q.brand, q.model, q.year) in labels
            novelty = {name: [client.novelty(i.path.read_bytes()).novelty for i in group]
                       for name, group in (("catalogue image itself", copies), ("held-out photo, catalogued design", queries),
                                           ("design not in the catalogue", unseen))}
            brands = sorted({i.brand for i in catalogue})
            own, other = [], []
            for q in queries:
                own.append(client.typicality(q.path.read_bytes(), brands=[q.brand]).z_score)
                others = [b for b in brands if b != q.brand]
                other.append(client.typicality(q.path.read_bytes(), brands=others).z_score)
    finally:
        stack.stop()
    summary = lambda xs: {"mean": round(statistics.mean(xs), 3), "min": round(min(xs), 3),  # noqa: E731
                          "max": round(max(xs), 3), "n": len(xs)}
    result = {
        "catalogue": {"images": stats.images, "designs": stats.designs, "embedder_version": stats.embedder_version},
        "identify": {"top1": round(top1 / len(queries), 3), "top5": round(top5 / len(queries), 3), "queries": len(queries)},
        "novelty": {k: summary(v) for k, v in novelty.items()},
        "typicality_z": {"own brand": summary(own), "all other brands": summary(other)},
        "command": "python benchmarks/gateway_features.py",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
