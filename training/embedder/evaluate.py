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
* ``wheel_partner`` (issue 9): same-photo partner retrieval. Queries: the wheel crops whose photo
  has >= 2 crops; gallery: all *other* validation wheel crops (the partner included). ``R@1``: the
  top-1 is a crop of the same photo *or* of the same class; ``R@1_photo``: strictly a crop of the
  same photo (the two wheels of one car are nearly always one design seen from two positions).
* ``wheel_partner_rot``: the same with every query rotated about its centre by a seeded random
  angle in [0, 360) degrees (border replicated), gallery unrotated: rotation robustness. A
  rotation-invariant embedder scores the same on both rows.

Metrics: Recall@1/2/4/5/8 and mAP@R (Musgrave et al., "A Metric
Learning Reality Check", ECCV 2020), from :mod:`designsearch.training.metrics`. Embeddings are computed
with onnxruntime from the ONNX files, i.e. exactly what the service serves.

Embeddings are cached per (model file hash, item list, rotation seed) under
``runs/embedder/evalcache`` so that comparing a new model with the ImageNet and previous models
recomputes only the new one.

Usage::

    flock /tmp/designsearch-cpu.lock .venv/bin/python -m designsearch.training.embedder.evaluate \
        --data ../shared/data --compare previous=models/embedder/wheelembed-lite0-512.onnx \
        --model models/embedder/wheelembed-lite0-512-v2.onnx --name new
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from designsearch.images import edge_map, to_model_input
from designsearch.settings import EMBEDDER_MODEL, repo_relative
from designsearch.training.metrics import map_at_r, recall_at_k
from designsearch.onnx import make_session

from . import data as D
from .augment import rotate_about_centre

DEFAULT_MODEL = EMBEDDER_MODEL
DEFAULT_RESULTS = D.REPO_ROOT / "benchmarks" / "results" / "embedder_eval.json"
KS = (1, 2, 4, 5, 8)
EDGE_KS = (1, 2, 4, 5, 8)
#: Seed of the random query rotations of ``wheel_partner_rot``.
ROTATION_SEED = 0
DEFAULT_EVAL_CACHE = D.DEFAULT_RUNS / "evalcache"


def baseline_onnx(variant: str = "lite0", runs: str | Path = D.DEFAULT_RUNS) -> Path:
    """Export (once) the untrained ImageNet model ``EmbeddingNet(variant, dim=None)`` under ``runs``."""
    path = Path(runs) / f"baseline-{variant}-imagenet.onnx"
    if not path.is_file():
        import torch

        from designsearch.training.embedder.model import EmbeddingNet, export_onnx

        torch.manual_seed(0)
        export_onnx(EmbeddingNet(variant, dim=None).eval(), path, _size_for(variant))
    return path


def _size_for(variant: str) -> int:
    return {"lite0": 224, "lite1": 240, "lite2": 260}[variant]


def _session(path: Path, threads: int) -> ort.InferenceSession:
    return make_session(path, threads)


def rotation_angles(n: int, seed: int = ROTATION_SEED) -> np.ndarray:
    """The query rotation of ``wheel_partner_rot``: ``n`` angles, degrees, uniform in [0, 360), seeded."""
    return np.random.default_rng(seed).uniform(0.0, 360.0, size=n)


def embed_items(
    sessions: dict[str, ort.InferenceSession], items: list[D.Item], batch: int = 32,
    angles: np.ndarray | None = None, mirror_average: bool = False,
) -> dict[str, dict[str, np.ndarray]]:
    """Photo and edge-map (and optionally rotated-photo) embeddings of ``items`` for each model.

    Args:
        sessions: name → onnxruntime session (input ``pixels``; side read from the model).
        items: images to embed.
        batch: images per run.
        angles: optional ``(N,)`` degrees; adds a ``"rotated"`` view: item ``i`` rotated by
            ``angles[i]`` about its centre (:func:`.augment.rotate_about_centre`, border
            replicated).
        mirror_average: embed every picture also as its mirror image and return the normalised mean
            of the two vectors (flip test-time averaging), as the embedder service does for a
            ``mirror_average`` image: the model input (photo or line drawing) flipped left-right, so a
            picture and its mirror image get the same vector (exactly for photos; for line drawings up
            to Canny's tie-breaks, ~0.2 % of the edge pixels).

    Returns:
        ``{model: {"photo": float32 (N, D), "edge": float32 (N, D)[, "rotated": float32 (N, D)]}}``.
    """
    views = ("photo", "edge") + (("rotated",) if angles is not None else ())
    out: dict[str, dict[str, list]] = {name: {v: [] for v in views} for name in sessions}
    sizes = {name: s.get_inputs()[0].shape[2] for name, s in sessions.items()}
    for start in range(0, len(items), batch):
        rgbs = [D.load_rgb(it) for it in items[start : start + batch]]
        imgs = {"photo": rgbs, "edge": [edge_map(rgb) for rgb in rgbs]}
        if angles is not None:
            imgs["rotated"] = [rotate_about_centre(rgb, float(a)) for rgb, a in zip(rgbs, angles[start : start + batch])]
        for name, sess in sessions.items():
            size = int(sizes[name])
            for v in views:
                inputs = to_model_input(imgs[v], size)
                emb = sess.run(None, {"pixels": inputs})[0]
                if mirror_average:  # the service's flip: the model input mirrored along its width
                    emb = emb + sess.run(None, {"pixels": np.ascontiguousarray(inputs[..., ::-1])})[0]
                    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
                out[name][v].append(emb)
    return {name: {k: np.concatenate(v) for k, v in vs.items()} for name, vs in out.items()}


def embed_cached(
    paths: dict[str, Path], items: list[D.Item], threads: int, angles: np.ndarray | None = None,
    cache_dir: str | Path | None = DEFAULT_EVAL_CACHE, mirror_average: bool = False,
) -> dict[str, dict[str, np.ndarray]]:
    """:func:`embed_items` for each model file, cached on disk by (file hash, items, angles, mirror averaging).

    Args:
        paths: name → ONNX file.
        items: images to embed.
        threads: onnxruntime intra-op threads.
        angles: as in :func:`embed_items`.
        cache_dir: folder of the ``.npz`` caches; ``None`` disables caching.
        mirror_average: as in :func:`embed_items`.

    Returns:
        As :func:`embed_items`.
    """
    key = hashlib.sha256(json.dumps(
        [[it.path, it.class_id, it.image_id] for it in items]
        + [None if angles is None else np.round(angles, 6).tolist()]
        + (["mirror_average:input-flip"] if mirror_average else [])
    ).encode()).hexdigest()[:16]
    out = {}
    for name, path in paths.items():
        file_sha = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
        cache = Path(cache_dir) / f"{file_sha}-{key}.npz" if cache_dir is not None else None
        if cache is not None and cache.is_file():
            with np.load(cache) as z:
                out[name] = {k: z[k] for k in z.files}
            continue
        out[name] = embed_items({name: _session(Path(path), threads)}, items, angles=angles,
                                mirror_average=mirror_average)[name]
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, **out[name])
    return out


def partner_recall(
    query: np.ndarray, gallery: np.ndarray, labels: np.ndarray, groups: np.ndarray
) -> dict[str, float]:
    """Same-photo partner retrieval R@1 (issue 9).

    Queries are the items whose group (source photo) holds >= 2 items; for query ``i`` the
    gallery is every item ``j != i`` (cosine similarity). ``query[i]`` may differ from
    ``gallery[i]`` (e.g. a rotated view of item ``i``); item ``i`` itself is always excluded.

    Args:
        query: float ``(N, D)`` query embeddings, row ``i`` a view of item ``i``; or ``(T, N, D)``: ``T``
            views of each query (e.g. quarter turns), a gallery item scored by its best cosine over them.
        gallery: float ``(N, D)`` gallery embeddings of the same items.
        labels: ``(N,)`` class of each item.
        groups: ``(N,)`` source photo of each item.

    Returns:
        ``{"R@1": top-1 is from the same photo or the same class, "R@1_photo": top-1 is from the
        same photo, "queries": number of queries}``; rates in [0, 1] (0.0 with no query).

    Raises:
        ValueError: shapes disagree.
    """
    query = np.asarray(query, dtype=np.float64)
    gallery = np.asarray(gallery, dtype=np.float64)
    labels, groups = np.asarray(labels), np.asarray(groups)
    n = len(gallery)
    if query.ndim == 2:
        query = query[None]
    if query.shape[1:] != gallery.shape or len(labels) != n or len(groups) != n:
        raise ValueError(f"shapes disagree: query {query.shape}, gallery {gallery.shape}, labels {labels.shape}, groups {groups.shape}")
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    q_idx = np.flatnonzero(counts[inverse] >= 2)
    if len(q_idx) == 0:
        return {"R@1": 0.0, "R@1_photo": 0.0, "queries": 0}
    q = query[:, q_idx] / np.linalg.norm(query[:, q_idx], axis=2, keepdims=True)
    g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    sims = np.max(q @ g.T, axis=0)
    sims[np.arange(len(q_idx)), q_idx] = -np.inf
    top = sims.argmax(axis=1)
    same_photo = groups[top] == groups[q_idx]
    same_class = labels[top] == labels[q_idx]
    return {"R@1": round(float(np.mean(same_photo | same_class)), 4),
            "R@1_photo": round(float(np.mean(same_photo)), 4), "queries": int(len(q_idx))}


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
    compare: dict[str, str | Path] | None = None,
    name: str = "trained",
    baseline: bool = True,
    cache_dir: str | Path | None = DEFAULT_EVAL_CACHE,
    mirror_average: bool = False,
    mirror_catalogue: bool = False,
) -> dict:
    """Evaluate the ImageNet baseline, optional other models and the trained model on the validation classes.

    Args:
        data: folder holding ``stanford-cars/``.
        model_path: trained ONNX model.
        crop_dir: wheel-crop cache (``manifest.csv``); default: the segmenter crops under
            ``runs/embedder/crops/segmenter`` if present, else the ``quarters`` stand-in.
        threads: onnxruntime intra-op threads.
        train_max_class: classes above it are evaluated.
        limit: first ``limit`` validation images only (smoke tests); 0 = all.
        variant: backbone of the ImageNet baseline.
        compare: extra models, column name → ONNX file (e.g. ``{"previous": ...}``), shown
            between the baseline and the trained model.
        name: column name of ``model_path``.
        baseline: include the untrained ImageNet model (column ``imagenet``).
        cache_dir: embedding cache (see :func:`embed_cached`); ``None`` disables it.
        mirror_average: every picture (query and gallery, every row) embedded as the normalised mean
            of its own and its mirror image's vector (see :func:`embed_items`).
        mirror_catalogue: the protocol as served (the gateway's ``ingest_mirror_whole_picture``):
            the whole-car *gallery* vectors of the ``car`` and ``car_edge`` rows flip-averaged, the
            queries as they are; wheel-crop rows unchanged (catalogue crops are not mirrored).

    Returns:
        JSON-able dict: ``models`` (path, version, dim), ``protocol``, ``counts`` and ``results``
        (``{model: {task: {metric: value}}}``).

    Raises:
        FileNotFoundError: missing model, data or crop cache.
    """
    from designsearch.training.embedder.model import model_version

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

    paths: dict[str, Path] = {"imagenet": baseline_onnx(variant)} if baseline else {}
    for other, p in (compare or {}).items():
        if not Path(p).is_file():
            raise FileNotFoundError(f"model {p} not found")
        paths[other] = Path(p)
    paths[name] = model_path
    emb_car = embed_cached(paths, cars, threads, cache_dir=cache_dir, mirror_average=mirror_average)
    gallery_car = embed_cached(paths, cars, threads, cache_dir=cache_dir, mirror_average=True) \
        if mirror_catalogue and not mirror_average else emb_car
    emb_wheel = embed_cached(paths, wheels, threads, angles=rotation_angles(len(wheels)), cache_dir=cache_dir,
                             mirror_average=mirror_average)

    results = {}
    for col in paths:
        res = {}
        for task, items, emb, gallery in (("wheel", wheels, emb_wheel[col], emb_wheel[col]["photo"]),
                                          ("car", cars, emb_car[col], gallery_car[col]["photo"])):
            labels = np.array([it.class_id for it in items])
            groups = np.array([it.image_id for it in items])
            res[task] = _metrics(emb["photo"], labels, groups, gallery=None if gallery is emb["photo"] else gallery)
            res[f"{task}_edge"] = _metrics(emb["edge"], labels, groups, gallery=gallery, ks=EDGE_KS)
            if task == "wheel":
                res["wheel_incl_same_photo"] = _metrics(emb["photo"], labels, None)
                res["wheel_partner"] = partner_recall(emb["photo"], emb["photo"], labels, groups)
                res["wheel_partner_rot"] = partner_recall(emb["rotated"], emb["photo"], labels, groups)
        results[col] = res
    crop_meta = D.crop_meta(crop_dir) if (crop_dir / "meta.json").is_file() else {}
    return {
        "models": {
            col: {"path": repo_relative(p), "version": model_version(p), "dim": int(emb_car[col]["photo"].shape[1])}
            for col, p in paths.items()
        },
        "protocol": {
            "data": "Stanford Cars (CARS196) train split, classes 1-98; Krause et al. 2013",
            "val_classes": f"{train_max_class + 1}-98",
            "similarity": "cosine, leave-one-out",
            "mirror_average": mirror_average,
            "mirror_catalogue": mirror_catalogue and not mirror_average,
            "wheel": "wheel crops vs wheel crops, crops of the same photo excluded",
            "car": "whole cars vs whole cars",
            "edge": "query = designsearch.images.edge_map(image), gallery = photo embeddings of the other photos",
            "wheel_partner": "queries = wheel crops whose photo has >= 2 crops, gallery = all other wheel crops; "
                             "R@1 = top-1 from the same photo or class, R@1_photo = from the same photo",
            "wheel_partner_rot": f"as wheel_partner, query rotated about its centre by uniform [0, 360) degrees "
                                 f"(seed {ROTATION_SEED}, border replicated), gallery unrotated",
            "crop_source": crop_meta.get("params", {}).get("source", str(crop_dir)),
            "crop_params": crop_meta.get("params"),
            "limit": limit,
        },
        "counts": {"car": len(cars), "wheel": len(wheels), "classes": len({r["class_id"] for r in val_rows})},
        "results": results,
        "seconds": round(time.time() - t0, 1),
    }


def format_table(results: dict) -> str:
    """Plain-text table: one row per (task, metric), one column per model."""
    models = list(results["results"])
    tasks = list(results["results"][models[0]])
    lines = [f"{'task':<24}{'metric':<11}" + "".join(f"{m:>12}" for m in models)]
    for task in tasks:
        for metric in results["results"][models[0]][task]:
            if metric == "queries":
                continue
            vals = "".join(f"{results['results'][m][task][metric]:>12.4f}" for m in models)
            lines.append(f"{task:<24}{metric:<11}{vals}")
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
    p.add_argument("--name", default="trained", help="column name of --model")
    p.add_argument("--compare", action="append", default=[], metavar="NAME=PATH",
                   help="extra ONNX model to show as a column (repeatable), e.g. previous=models/embedder/wheelembed-lite0-512.onnx")
    p.add_argument("--no-baseline", action="store_true", help="leave out the untrained ImageNet column")
    p.add_argument("--no-cache", action="store_true", help="recompute every embedding (no runs/embedder/evalcache)")
    p.add_argument("--mirror-average", action="store_true",
                   help="embed every picture as the mean of its own and its mirror image's vector (flip averaging)")
    p.add_argument("--mirror-catalogue", action="store_true",
                   help="as served: whole-car gallery vectors flip-averaged (the gateway's ingest_mirror_whole_picture), "
                        "queries and wheel crops as they are")
    p.add_argument("--wheel-rows", choices=["on", "off", "only"], default="on",
                   help="wheel-DESIGN rows of issue 31 (engine validation/real designs, wheel-vision, car-parts-50; "
                        ":mod:`.wheel_rows`) for --model and every --compare model; 'only' skips the Stanford Cars rows")
    p.add_argument("--engine-set", default="var/wheelgen/set-v1", help="rendered engine set of the wheel-design rows")
    args = p.parse_args(argv)
    compare = {}
    for spec in args.compare:
        key, sep, path = spec.partition("=")
        if not sep:
            p.error(f"--compare expects NAME=PATH, got {spec!r}")
        compare[key] = path
    if args.wheel_rows == "only":
        results = {"wheel_rows": _wheel_rows(args, compare)}
        if args.output == str(DEFAULT_RESULTS):  # the full evaluation's file is not replaced by a part of it
            args.output = str(DEFAULT_RESULTS.with_name("embedder_wheel_rows.json"))
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
        print(f"written {args.output}")
        return results
    results = evaluate(args.data, args.model, args.crop_dir, args.threads, limit=args.limit, compare=compare,
                       name=args.name, baseline=not args.no_baseline, cache_dir=None if args.no_cache else DEFAULT_EVAL_CACHE,
                       mirror_average=args.mirror_average, mirror_catalogue=args.mirror_catalogue)
    if args.wheel_rows == "on":
        results["wheel_rows"] = _wheel_rows(args, compare)
    write_results(results, args.output)
    return results


def _wheel_rows(args, compare: dict) -> list[dict]:
    """The wheel-design rows (:func:`.wheel_rows.wheel_rows`) of every compared model and ``--model``, printed."""
    from designsearch.settings import SEGMENTER_MODEL_INT8

    from .wheel_rows import format_rows, wheel_rows

    engine = args.engine_set if args.engine_set and (Path(args.engine_set) / "manifest.csv").is_file() else None
    if engine is None:
        print(f"no engine set at {args.engine_set} (make it with `designsearch render-wheels`); engine rows left out")
    rows = []
    for path in [*compare.values(), args.model]:
        rows += wheel_rows(path, engine, SEGMENTER_MODEL_INT8, args.data, args.threads)
    print(format_rows(rows))
    return rows


if __name__ == "__main__":
    main()
