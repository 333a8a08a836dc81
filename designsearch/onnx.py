"""The one place an onnxruntime session is built (serving, training caches, evaluation, benchmarks)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import onnxruntime as ort

_cuda_libraries_loaded = False


def _load_cuda_libraries() -> None:
    """Load the CUDA and cuDNN libraries of the ``nvidia-*`` pip packages (the gpu image installs them beside
    ``onnxruntime-gpu``) before the first CUDA session: ``onnxruntime.preload_dlls(directory="")``, onnxruntime's
    documented way to use them without ``LD_LIBRARY_PATH`` (onnxruntime docs, CUDA execution provider, "Preload
    DLLs"). Once per process; a build without the function relies on the system's libraries."""
    global _cuda_libraries_loaded
    if not _cuda_libraries_loaded and hasattr(ort, "preload_dlls"):
        ort.preload_dlls(directory="")
    _cuda_libraries_loaded = True


def make_session(path: str | Path, threads: int = 2, providers: Sequence[str] | None = None,
                 spinning: bool = False) -> ort.InferenceSession:
    """An onnxruntime session with ``threads`` intra-op threads, one inter-op thread, every graph
    optimisation, and the first available of ``providers`` (CPU when none is available).

    Args:
        path: ONNX file.
        threads: intra-op threads (CPU).
        providers: execution providers in order of preference, e.g. ``["CUDAExecutionProvider",
            "CPUExecutionProvider"]``; default CPU only. Unavailable ones are skipped.
        spinning: let idle intra-op threads busy-wait for the next run (onnxruntime's default). Off
            by default: when the segmenter and the embedder share cores (one machine), one service's
            spinning threads take the CPU the other needs — on 2 cores, turning it off cut the cold
            FindSimilar p50 from 79.5 to 66.4 ms and raised ingestion from 15.0 to 16.9 images/s
            (benchmarks/query_bench.py, benchmarks/ingest_bench.py). Turn it on for a service that has
            its cores to itself.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        onnxruntime.capi.onnxruntime_pybind11_state.InvalidGraph (and other onnxruntime errors): not a valid model.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    available = set(ort.get_available_providers())
    chosen = [p for p in (providers or ["CPUExecutionProvider"]) if p in available] or ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in chosen:
        _load_cuda_libraries()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return ort.InferenceSession(str(path), opts, providers=chosen)
