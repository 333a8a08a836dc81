"""Embedder throughput: crops per second through onnxruntime on CPU, by batch size.

Two numbers per batch size:

* ``model``: ``session.run`` on ready ``(N, 3, S, S)`` float32 batches (the network alone).
* ``with_preprocess``: :func:`designsearch.images.to_model_input` from real wheel crops (uint8,
  their own sizes) + ``session.run``: what the embedder service does per request batch.

Default models: the float32 embedder and its INT8 quantisation (served), one entry each in ``runs``.

Usage (2 intra-op threads, batches 1/8/32, writes ``benchmarks/results/embedder_bench.json``)::

    flock /tmp/designsearch-cpu.lock .venv/bin/python benchmarks/embedder_bench.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from designsearch.images import read_image, to_model_input  # noqa: E402
from designsearch.onnx import make_session  # noqa: E402
from designsearch.settings import EMBEDDER_MODEL, EMBEDDER_MODEL_INT8, repo_relative  # noqa: E402


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _crops(crop_dir: Path, n: int, size: int) -> list[np.ndarray]:
    files = sorted(crop_dir.glob("*.jpg"))[:n] if crop_dir.is_dir() else []
    if files:
        return [read_image(str(f)) for f in files]
    rng = np.random.default_rng(0)  # no crop cache: random crops of typical wheel sizes
    return [rng.integers(0, 256, size=(s, s, 3), dtype=np.uint8) for s in rng.integers(60, 200, size=n)]


def bench(model: Path, batches=(1, 8, 32), threads: int = 2, seconds: float = 5.0, crop_dir: Path | None = None) -> dict:
    """Measure crops/s for each batch size.

    Args:
        model: ONNX embedder (input ``pixels`` (N, 3, S, S)).
        batches: batch sizes.
        threads: onnxruntime intra-op threads (inter-op 1, sequential execution).
        seconds: measuring time per batch size and mode (after one warm-up run).
        crop_dir: folder of wheel-crop JPEGs for the ``with_preprocess`` mode.

    Returns:
        JSON-able dict with ``results[batch] = {"model": crops/s, "with_preprocess": crops/s,
        "latency_ms": ms per batch (model only)}`` and the environment.
    """
    sess = make_session(model, threads)
    size = int(sess.get_inputs()[0].shape[2])
    crops = _crops(crop_dir or Path(), max(batches) * 4, size)
    results = {}
    for b in batches:
        x = to_model_input(crops[:b], size)
        sess.run(None, {"pixels": x})
        n, runs, t0 = 0, 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            sess.run(None, {"pixels": x})
            n, runs = n + b, runs + 1
        model_dt = time.perf_counter() - t0
        n2, t0, i = 0, time.perf_counter(), 0
        while time.perf_counter() - t0 < seconds:
            start = (i * b) % (len(crops) - b + 1)
            sess.run(None, {"pixels": to_model_input(crops[start : start + b], size)})
            n2, i = n2 + b, i + 1
        pre_dt = time.perf_counter() - t0
        results[str(b)] = {
            "model": round(n / model_dt, 1),
            "with_preprocess": round(n2 / pre_dt, 1),
            "latency_ms": round(1000 * model_dt / runs, 2),
        }
        print(f"batch {b:>3}: {results[str(b)]}", flush=True)
    return {
        "model": repo_relative(model),
        "input_size": size,
        "threads": threads,
        "unit": "crops/s",
        "results": results,
        "environment": {"cpu": _cpu_name(), "cores": os.cpu_count(), "onnxruntime": ort.__version__,
                        "python": platform.python_version()},
    }


def main(argv: list[str] | None = None) -> dict:
    """CLI: run :func:`bench` and write the JSON results."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, action="append", default=None,
                   help="ONNX embedder (repeatable; default: the float32 and the INT8 model)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--crop-dir", type=Path, default=REPO / "runs" / "embedder" / "crops" / "segmenter")
    p.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "embedder_bench.json")
    args = p.parse_args(argv)
    models = args.model or [m for m in (EMBEDDER_MODEL, EMBEDDER_MODEL_INT8) if m.exists()]
    res = {"runs": []}
    for m in models:
        print(m, flush=True)
        res["runs"].append(bench(m, tuple(args.batches), args.threads, args.seconds, args.crop_dir))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(res, indent=2) + "\n")
    print(f"written {args.output}")
    return res


if __name__ == "__main__":
    main()
