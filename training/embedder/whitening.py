"""Learned whitening of the embeddings, fitted on the training classes and folded into the ONNX model.

Method: "learned whitening" (Lw) of Radenović, Tolias & Chum, "Fine-tuning CNN Image Retrieval
with No Human Annotation", TPAMI 2018, §3.3 (after Mikolajczyk & Matas, ICCV 2007): with ``X`` the
unit-norm embeddings of the training pictures and ``y`` their classes,

    1. ``mu`` = mean of ``X``;
    2. ``Cw`` = within-class covariance, ``(1/N) sum_i (x_i - m_{y_i})(x_i - m_{y_i})^T`` (``m_c``
       the mean of class ``c``); ``P1 = (Cw + s * tr(Cw)/D * I)^(-1/2)`` (``s``: shrinkage, a ridge
       on the eigenvalues proportional to their mean, so the directions that hardly vary within a
       class are not blown up by noise);
    3. ``Cb`` = covariance of ``(x - mu) P1``; ``V`` = its eigenvectors by decreasing eigenvalue,
       the first ``dims`` kept;
    4. ``whiten(x) = normalise((x - mu) P1 V)`` (L2).

It shrinks the directions along which pictures of one class vary (lighting, viewpoint, photo vs
line drawing, which wheel of the car) relative to those that separate classes. The transform is
appended to the embedder's ONNX graph (nodes named ``/whitening/...``), so every served vector —
catalogue and query, photo and line view, wheel and whole car — goes through it and the service
contract is unchanged: ``pixels`` in, unit-norm ``embedding (N, dims)`` out. It adds one
``512 x 512`` float matrix product per picture (~0.16 ms at batch 1 in an onnxruntime node profile).

Fit data: Stanford Cars classes 1-78 only (the embedder's training classes; the validation
classes 79-98 are never seen): whole cars and the segmenter's wheel crops of those photos
(``runs/embedder/crops/segmenter``, as the embedder's training), each as photo and as line drawing
(:func:`designsearch.images.edge_map`), the views the catalogue indexes. Classes are (car model,
domain): a wheel crop of class ``c`` and a whole car of class ``c`` are different classes; a
photo and its line drawing share their class. Deterministic (no random step).

CLI::

    python -m designsearch.training.embedder.whitening --model runs/embedder/ce-b12/model.onnx \\
        --out models/embedder/wheelembed-lite0-512.onnx [--shrink 0.5] [--dims 512]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from designsearch.onnx import make_session
from designsearch.settings import repo_relative
from designsearch.versioning import file_version

from . import data as D

#: Shrinkage ``s`` of the within-class covariance (see the module docstring).
DEFAULT_SHRINK = 0.5
#: Metadata key marking a whitened model (a model is never whitened twice).
METADATA_KEY = "designsearch.whitening"


def fit_learned_whitening(x: np.ndarray, labels: np.ndarray, shrink: float = DEFAULT_SHRINK,
                          dims: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fit learned whitening (Radenović et al., TPAMI 2018) on labelled embeddings.

    Args:
        x: float ``(N, D)`` embeddings (unit norm, as the model outputs them).
        labels: ``(N,)`` class of each row; at least two classes, and more rows than classes.
        shrink: ridge ``s >= 0`` added to the within-class eigenvalues, as a multiple of their mean.
        dims: output dimensions ``<= D`` (``None``: ``D``).

    Returns:
        ``(mean, projection)``: float32 ``(D,)`` and float32 ``(D, dims)``; whitened embedding =
        ``normalise((x - mean) @ projection)``.

    Raises:
        ValueError: shapes disagree, fewer than two classes, ``shrink < 0`` or ``dims`` out of range.
    """
    x = np.asarray(x, dtype=np.float64)
    labels = np.asarray(labels)
    if x.ndim != 2 or len(labels) != len(x):
        raise ValueError(f"x must be (N, D) with one label per row; got {x.shape} and {labels.shape}")
    classes, inverse = np.unique(labels, return_inverse=True)
    if len(classes) < 2 or len(x) <= len(classes):
        raise ValueError(f"need >= 2 classes and more rows than classes; got {len(classes)} classes, {len(x)} rows")
    if shrink < 0:
        raise ValueError(f"shrink must be >= 0; got {shrink}")
    d = x.shape[1]
    dims = d if dims is None else int(dims)
    if not 1 <= dims <= d:
        raise ValueError(f"dims must be in [1, {d}]; got {dims}")
    mean = x.mean(axis=0)
    sums = np.zeros((len(classes), d))
    np.add.at(sums, inverse, x)
    class_means = sums / np.bincount(inverse)[:, None]
    within = x - class_means[inverse]
    cw = within.T @ within / len(x)
    w, v = np.linalg.eigh(cw)
    w = np.maximum(w, 0.0)
    p1 = (v / np.sqrt(w + shrink * w.mean())) @ v.T
    y = (x - mean) @ p1
    w2, v2 = np.linalg.eigh(np.cov(y.T))
    order = np.argsort(w2)[::-1][:dims]
    return mean.astype(np.float32), (p1 @ v2[:, order]).astype(np.float32)


def apply_whitening(x: np.ndarray, mean: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """``normalise((x - mean) @ projection)``: float32 ``(N, dims)``, unit L2 norm (rows of zeros stay zero)."""
    y = (np.asarray(x, dtype=np.float32) - mean) @ projection
    return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)


def append_to_embedding(src: str | Path, dst: str | Path, metadata_key: str, info: dict, internal: str,
                        initializers: dict[str, np.ndarray], nodes: list, dims: int, already: str = "") -> str:
    """Write ``src`` with ``nodes`` appended after its ``embedding`` output, to ``dst``: the graph surgery
    shared by :func:`append_whitening` and :func:`.design_adapter.append_adapter`.

    The old output is renamed ``internal`` (the nodes read it; the last one writes ``embedding``, float32
    ``(N, dims)``), ``initializers`` are added, ``info`` is stored as JSON under ``metadata_key``; ``already``:
    the error text when ``src`` carries ``metadata_key`` already.

    Returns:
        The model version id of ``dst`` (``sha256:`` + 16 hex digits).

    Raises:
        ValueError: ``src`` already carries ``metadata_key`` or has no ``embedding`` output.
    """
    model = onnx.load(str(src))
    g = model.graph
    if any(p.key == metadata_key for p in model.metadata_props):
        raise ValueError(f"{src} {already or 'already carries ' + metadata_key}")
    outs = [o for o in g.output if o.name == "embedding"]
    if len(outs) != 1:
        raise ValueError(f"{src} has no 'embedding' output")
    for node in g.node:
        node.output[:] = [internal if o == "embedding" else o for o in node.output]
    g.output.remove(outs[0])
    g.initializer.extend(numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in initializers.items())
    g.node.extend(nodes)
    g.output.append(helper.make_tensor_value_info("embedding", onnx.TensorProto.FLOAT, ["batch", dims]))
    model.metadata_props.append(onnx.StringStringEntryProto(key=metadata_key, value=json.dumps(info or {}, sort_keys=True)))
    onnx.checker.check_model(model)
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    return file_version(dst)


def append_whitening(src: str | Path, dst: str | Path, mean: np.ndarray, projection: np.ndarray,
                     info: dict | None = None) -> str:
    """Write ``src`` with the whitening appended to its ``embedding`` output, to ``dst``.

    The old output is renamed ``embedding_raw`` (internal); new nodes ``/whitening/Sub``,
    ``/whitening/MatMul``, ``/whitening/ReduceL2``, ``/whitening/Clip``, ``/whitening/Div`` compute
    ``normalise((e - mean) @ projection)`` (eps 1e-12, as the network's own normalisation), output
    ``embedding`` float32 ``(N, dims)``. ``info`` is stored as JSON in the model metadata under
    :data:`METADATA_KEY`.

    Returns:
        The model version id of ``dst`` (``sha256:`` + 16 hex digits).

    Raises:
        ValueError: ``src`` has no ``embedding`` output, is already whitened, or shapes disagree.
    """
    mean = np.asarray(mean, dtype=np.float32)
    projection = np.asarray(projection, dtype=np.float32)
    if projection.ndim != 2 or mean.shape != (projection.shape[0],):
        raise ValueError(f"mean {mean.shape} and projection {projection.shape} disagree")
    nodes = [
        helper.make_node("Sub", ["embedding_raw", "/whitening/mean"], ["/whitening/centred"], name="/whitening/Sub"),
        helper.make_node("MatMul", ["/whitening/centred", "/whitening/projection"], ["/whitening/projected"],
                         name="/whitening/MatMul"),
        helper.make_node("ReduceL2", ["/whitening/projected"], ["/whitening/norm"],
                         name="/whitening/ReduceL2", axes=[1], keepdims=1),
        helper.make_node("Clip", ["/whitening/norm", "/whitening/eps"], ["/whitening/norm_clipped"],
                         name="/whitening/Clip"),
        helper.make_node("Div", ["/whitening/projected", "/whitening/norm_clipped"], ["embedding"],
                         name="/whitening/Div"),
    ]
    inits = {"/whitening/mean": mean, "/whitening/projection": projection, "/whitening/eps": np.array(1e-12, np.float32)}
    return append_to_embedding(src, dst, METADATA_KEY, info or {}, "embedding_raw", inits, nodes, projection.shape[1],
                               already="is already whitened; whiten the model training wrote")


def training_embeddings(model: str | Path, data: str | Path = D.DEFAULT_DATA,
                        crop_dir: str | Path | None = None, threads: int = 2,
                        train_max_class: int = D.TRAIN_MAX_CLASS) -> tuple[np.ndarray, np.ndarray, dict]:
    """Embeddings of the fit data (see the module docstring) with ``model``.

    Returns:
        ``(x, labels, counts)``: float32 ``(N, D)``; int ``(N,)`` labels (car class for wheels,
        ``1000 + class`` for whole cars); counts per domain.

    Raises:
        FileNotFoundError: no wheel-crop cache (run the embedder training first).
    """
    from .evaluate import embed_items

    crop_dir = Path(crop_dir) if crop_dir is not None else D.DEFAULT_RUNS / "crops" / "segmenter"
    if not (crop_dir / "manifest.csv").is_file():
        raise FileNotFoundError(f"no wheel-crop cache at {crop_dir}; run the embedder training first")
    train_rows, _ = D.split_rows(D.load_rows(data), train_max_class)
    keep = {r["image_id"] for r in train_rows}
    wheels = [w for w in D.wheel_items(crop_dir) if w.image_id in keep]
    cars = D.car_items(train_rows)
    sess = {"m": make_session(Path(model), threads)}
    xs, ys = [], []
    for items, offset in ((wheels, 0), (cars, 1000)):
        emb = embed_items(sess, items)["m"]
        labels = np.array([it.class_id for it in items]) + offset
        for view in ("photo", "edge"):
            xs.append(emb[view])
            ys.append(labels)
    return np.concatenate(xs), np.concatenate(ys), {"wheel_crops": len(wheels), "cars": len(cars), "views": 2}


def main(argv: list[str] | None = None) -> dict:
    """CLI: embed the fit data with ``--model``, fit learned whitening, write ``--out``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="float32 embedder ONNX (as training wrote it)")
    p.add_argument("--out", required=True, help="whitened ONNX to write")
    p.add_argument("--data", default=str(D.DEFAULT_DATA))
    p.add_argument("--crop-dir", default=None, help="wheel-crop cache (default runs/embedder/crops/segmenter)")
    p.add_argument("--shrink", type=float, default=DEFAULT_SHRINK)
    p.add_argument("--dims", type=int, default=0, help="output dimensions (0 = same as the input)")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    t0 = time.time()
    x, labels, counts = training_embeddings(a.model, a.data, a.crop_dir, a.threads)
    mean, projection = fit_learned_whitening(x, labels, a.shrink, a.dims or None)
    info = {"method": "learned whitening (Radenovic, Tolias & Chum, TPAMI 2018)", "shrink": a.shrink,
            "dims": int(projection.shape[1]), "fit": f"Stanford Cars classes 1-{D.TRAIN_MAX_CLASS}, photo + line views",
            "fit_counts": counts, "source_model": file_version(a.model)}
    version = append_whitening(a.model, a.out, mean, projection, info)
    out = {"out": repo_relative(a.out), "version": version, "rows": int(len(x)), **info, "seconds": round(time.time() - t0, 1)}
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
