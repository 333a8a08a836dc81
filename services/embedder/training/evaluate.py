"""Evaluate embedders on the validation classes: untrained ImageNet model vs the trained one.

Protocols (classes 79-98 of Stanford Cars, never seen in training; leave-one-out, cosine):

* ``wheel``: wheel crops (cut by the same segmenter as the training crops) retrieving wheel
  crops; crops of the *same car photo* are excluded from each other's gallery (otherwise the
  other wheel of the same car would make the task trivial). ``wheel_incl_same_photo`` keeps
  them, for reference only.
* ``car``: whole-car images (the CARS196 retrieval protocol, on the validation classes).
* ``wheel_edge`` / ``car_edge``: sketch-like queries: the query is
  :func:`designsearch.images.edge_map` of an image, the gallery is the photo embeddings of the
  *other* photos (same-photo items excluded).

Metrics: Recall@1/2/4/8 (plus R@5 for the edge queries) and mAP@R (Musgrave et al., "A Metric
Learning Reality Check", ECCV 2020), from :mod:`designsearch.metrics`. Embeddings are computed
with onnxruntime from the ONNX files, i.e. exactly what the service serves.

Usage::

    flock /tmp/designsearch-cpu.lock .venv/bin/python -m services.embedder.training.evaluate \
        --data ../shared/data --model models/embedder/wheelembed-lite0-512.onnx
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from designsearch.images import edge_map, to_model_input
from designsearch.metrics import map_at_r, recall_at_k

from . import data as D

DEFAULT_MODEL = D.REPO_ROOT / "models" / "embedder" / "wheelembed-lite0-512.onnx"
DEFAULT_RESULTS = D.REPO_ROOT / "benchmarks" / "results" / "embedder_eval.json"
KS = (1, 2, 4, 8)
EDGE_KS = (1, 2, 4, 5, 8)


def baseline_onnx(variant: str = "lite0", runs: str | Path = D.DEFAULT_RUNS) -> Path:
    """Export (once) the untrained ImageNet model ``EmbeddingNet(variant, dim=None)`` under ``runs``."""
    path = Path(runs) / f"baseline-{variant}-imagenet.onnx"
    if not path.is_file():
        import torch

        from services.embedder.model import EmbeddingNet, export_onnx

        torch.manual_seed(0)
        export_onnx(EmbeddingNet(variant, dim=None).eval(), path, _size_for(variant))
    return path


def _size_for(variant: str) -> int:
    return {"lite0": 224, "lite1": 240, "lite2": 260}[variant]


def _session(path: Path, threads: int) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def embed_items(
    sessions: dict[str, ort.InferenceSession], items: list[D.Item], batch: int = 32
) -> dict[str, dict[str, np.ndarray]]:
    """Photo and edge-map embeddings of ``items`` for each model.

    Args:
        sessions: name → onnxruntime session (input ``pixels``; side read from the model).
        items: images to embed.
        batch: images per run.

    Returns:
        ``{model: {"photo": float32 (N, D), "edge": float32 (N, D)}}``.
    """
    out: dict[str, dict[str, list]] = {name: {"photo": [], "edge": []} for name in sessions}
    sizes = {name: s.get_inputs()[0].shape[2] for name, s in sessions.items()}
    for start in range(0, len(items), batch):
        rgbs = [D.load_rgb(it) for it in items[start : start + batch]]
        edges = [edge_map(rgb) for rgb in rgbs]
        for name, sess in sessions.items():
            size = int(sizes[name])
            out[name]["photo"].append(sess.run(None, {"pixels": to_model_input(rgbs, size)})[0])
            out[name]["edge"].append(sess.run(None, {"pixels": to_model_input(edges, size)})[0])
    return {name: {k: np.concatenate(v) for k, v in views.items()} for name, views in out.items()}


def _metrics(query, labels, groups, gallery=None, ks=KS) -> dict[str, float]:
    kw = {"groups": groups}
    if gallery is not None:
        kw.update(gallery=gallery, gallery_labels=labels, gallery_groups=groups)
    rec = recall_at_k(query, labels, ks, **kw)
    out = {f"R@{k}": round(v, 4) for k, v in rec.items()}
    out["mAP@R"] = round(map_at_r(query, labels, **kw), 4)
    return out


def evaluate(
    data: str | Path = D.DEFAULT_DATA,
    model_path: str | Path = DEFAULT_MODEL,
    crop_dir: str | Path | None = None,
    threads: int = 2,
    train_max_class: int = D.TRAIN_MAX_CLASS,
    limit: int = 0,
    variant: str = "lite0",
) -> dict:
    """Evaluate the ImageNet baseline and the trained model on the validation classes.

    Args:
        data: folder holding ``stanford-cars/``.
        model_path: trained ONNX model.
        crop_dir: wheel-crop cache (``manifest.csv``); default: the segmenter crops under
            ``runs/embedder/crops/segmenter`` if present, else the ``quarters`` stand-in.
        threads: onnxruntime intra-op threads.
        train_max_class: classes above it are evaluated.
        limit: first ``limit`` validation images only (smoke tests); 0 = all.
        variant: backbone of the ImageNet baseline.

    Returns:
        JSON-able dict: ``models`` (path, version, dim), ``protocol``, ``counts`` and ``results``
        (``{model: {task: {metric: value}}}``).

    Raises:
        FileNotFoundError: missing model, data or crop cache.
    """
    from services.embedder.model import model_version

    t0 = time.time()
    model_path = Path(model_path)
    if not model_path.is_file():
        raise FileNotFoundError(f"model {model_path} not found")
    if crop_dir is None:
        seg = D.DEFAULT_RUNS / "crops" / "segmenter"
        crop_dir = seg if (seg / "manifest.csv").is_file() else D.DEFAULT_RUNS / "crops" / "quarters"
    crop_dir = Path(crop_dir)
    if not (crop_dir / "manifest.csv").is_file():
        raise FileNotFoundError(f"no wheel-crop cache at {crop_dir}; run training (or data.extract_wheel_crops) first")
    _, val_rows = D.split_rows(D.load_rows(data), train_max_class)
    if limit:
        val_rows = val_rows[:limit]
    keep = {r["image_id"] for r in val_rows}
    cars = D.car_items(val_rows)
    wheels = [w for w in D.wheel_items(crop_dir) if w.image_id in keep]

    paths = {"imagenet": baseline_onnx(variant), "trained": model_path}
    sessions = {name: _session(p, threads) for name, p in paths.items()}
    emb_car = embed_items(sessions, cars)
    emb_wheel = embed_items(sessions, wheels)

    results = {}
    for name in sessions:
        res = {}
        for task, items, emb in (("wheel", wheels, emb_wheel[name]), ("car", cars, emb_car[name])):
            labels = np.array([it.class_id for it in items])
            groups = np.array([it.image_id for it in items])
            res[task] = _metrics(emb["photo"], labels, groups)
            res[f"{task}_edge"] = _metrics(emb["edge"], labels, groups, gallery=emb["photo"], ks=EDGE_KS)
            if task == "wheel":
                res["wheel_incl_same_photo"] = _metrics(emb["photo"], labels, None)
        results[name] = res
    crop_meta = D.crop_meta(crop_dir) if (crop_dir / "meta.json").is_file() else {}
    return {
        "models": {
            name: {"path": _rel(p), "version": model_version(p), "dim": int(sessions[name].get_outputs()[0].shape[1] or 0)}
            for name, p in paths.items()
        },
        "protocol": {
            "data": "Stanford Cars (CARS196) train split, classes 1-98; Krause et al. 2013",
            "val_classes": f"{train_max_class + 1}-98",
            "similarity": "cosine, leave-one-out",
            "wheel": "wheel crops vs wheel crops, crops of the same photo excluded",
            "car": "whole cars vs whole cars",
            "edge": "query = designsearch.images.edge_map(image), gallery = photo embeddings of the other photos",
            "crop_source": crop_meta.get("params", {}).get("source", str(crop_dir)),
            "crop_params": crop_meta.get("params"),
            "limit": limit,
        },
        "counts": {"car": len(cars), "wheel": len(wheels), "classes": len({r["class_id"] for r in val_rows})},
        "results": results,
        "seconds": round(time.time() - t0, 1),
    }


def _rel(p: Path) -> str:
    p = Path(p).resolve()
    return str(p.relative_to(D.REPO_ROOT)) if p.is_relative_to(D.REPO_ROOT) else str(p)


def format_table(results: dict) -> str:
    """Plain-text table: one row per (task, metric), one column per model."""
    models = list(results["results"])
    tasks = list(results["results"][models[0]])
    lines = [f"{'task':<24}{'metric':<8}" + "".join(f"{m:>10}" for m in models)]
    for task in tasks:
        for metric in results["results"][models[0]][task]:
            vals = "".join(f"{results['results'][m][task][metric]:>10.4f}" for m in models)
            lines.append(f"{task:<24}{metric:<8}{vals}")
    return "\n".join(lines)


def write_results(results: dict, path: str | Path = DEFAULT_RESULTS) -> Path:
    """Write ``results`` as JSON (parent folders created) and print the table."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(format_table(results))
    print(f"written {path}")
    return path


def main(argv: list[str] | None = None) -> dict:
    """CLI entry point (flags mirror :func:`evaluate`)."""
    p = argparse.ArgumentParser(description="Evaluate the ImageNet baseline and the trained embedder")
    p.add_argument("--data", default=str(D.DEFAULT_DATA))
    p.add_argument("--model", default=str(DEFAULT_MODEL))
    p.add_argument("--crop-dir", default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--output", default=str(DEFAULT_RESULTS))
    args = p.parse_args(argv)
    results = evaluate(args.data, args.model, args.crop_dir, args.threads, limit=args.limit)
    write_results(results, args.output)
    return results


if __name__ == "__main__":
    main()
