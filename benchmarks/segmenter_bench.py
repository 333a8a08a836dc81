"""Latency benchmark of the wheel segmenter: p50/p95 per 512 px photo on CPU.

Times ``detect()`` (resize, ONNX inference, post-processing) of the learned detector, and of the
classical detector when ``services/segmenter/classical.py`` is importable, over real 512 x 512
photos of Car-Parts-Segmentation decoded in memory, with ``--threads`` onnxruntime / OpenCV threads
(default 2). Writes ``benchmarks/results/segmenter.json`` and prints it.

Usage::

    python benchmarks/segmenter_bench.py [--data ../shared/data] \
        [--model models/segmenter/wheelseg-lite0.onnx ...] [--images 80] [--repeats 3]

Default models: the float32 model and its INT8 quantisation (served), side by side.

Run heavy jobs one at a time on shared machines, e.g. ``flock /tmp/designsearch-cpu.lock ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from designsearch.services.segmenter.learned import LearnedWheelDetector  # noqa: E402
from designsearch.settings import SEGMENTER_MODEL, SEGMENTER_MODEL_INT8, repo_relative  # noqa: E402
from designsearch.training.segmenter.dataset import load_samples, split_samples  # noqa: E402


def bench(detector, images: list[np.ndarray], repeats: int = 3, warmup: int = 5) -> dict:
    """Time ``detector.detect`` over ``images`` ``repeats`` times after ``warmup`` calls.

    Returns:
        ``{"name", "n_calls", "p50_ms", "p95_ms", "mean_ms", "min_ms"}`` (milliseconds per image).
    """
    for i in range(warmup):
        detector.detect(images[i % len(images)])
    times = []
    for _ in range(repeats):
        for rgb in images:
            t0 = time.perf_counter()
            detector.detect(rgb)
            times.append((time.perf_counter() - t0) * 1000.0)
    t = np.asarray(times)
    return {
        "name": detector.name,
        "model_version": getattr(detector, "model_version", None),
        "n_calls": int(t.size),
        "p50_ms": float(np.percentile(t, 50)),
        "p95_ms": float(np.percentile(t, 95)),
        "mean_ms": float(t.mean()),
        "min_ms": float(t.min()),
    }


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; see the module docstring."""
    p = argparse.ArgumentParser(description="Segmenter latency benchmark")
    p.add_argument("--data", default=os.environ.get("DESIGNSEARCH_DATA", str(ROOT.parent / "shared" / "data")))
    p.add_argument("--model", action="append", default=None,
                   help="learned segmenter ONNX (repeatable; default: the float32 and the INT8 model)")
    p.add_argument("--images", type=int, default=80, help="validation photos to time")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-classical", action="store_true")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "segmenter.json"))
    a = p.parse_args(argv)

    cv2.setNumThreads(a.threads)
    _, val = split_samples(load_samples(a.data), 0.2, 0)
    images = [s.read_rgb() for s in val[: a.images]]
    models = a.model or [str(m) for m in (SEGMENTER_MODEL, SEGMENTER_MODEL_INT8) if m.exists()]
    detectors = [LearnedWheelDetector(m, threads=a.threads) for m in models]
    if not a.no_classical:
        try:
            from designsearch.services.segmenter.classical import ClassicalWheelDetector
        except ImportError:
            pass
        else:
            detectors.append(ClassicalWheelDetector())
    results = [bench(d, images, a.repeats) for d in detectors]
    for r, d in zip(results, detectors):
        if hasattr(d, "model_path"):
            r["model"] = repo_relative(d.model_path)
    report = {
        "benchmark": "segmenter detect() latency per image",
        "image_size": list(images[0].shape[:2]) if images else None,
        "n_images": len(images),
        "repeats": a.repeats,
        "threads": a.threads,
        "input_size": detectors[0].input_size,
        "hardware": {"machine": platform.machine(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
                     "load_average_1min_at_start": os.getloadavg()[0]},
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": results,
    }
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
