"""Learned whitening of the embeddings (issue 9): the fit, the ONNX graph it appends, the served model.

Real data: whole-car photos of six validation classes (79-84) and their line drawings, embedded
with the exported ImageNet EfficientNet-Lite0 (1280-d, the model `make install` exports), so the
test needs no training run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

pytest.importorskip("onnxruntime")

from designsearch.images import edge_map, read_image  # noqa: E402
from designsearch.services.embedder.core import OnnxEmbedder  # noqa: E402
from designsearch.settings import EMBEDDER_MODEL, EMBEDDER_MODEL_INT8  # noqa: E402
from designsearch.training.embedder import data as D  # noqa: E402
from designsearch.training.embedder.whitening import (  # noqa: E402
    DEFAULT_SHRINK,
    METADATA_KEY,
    append_whitening,
    apply_whitening,
    fit_learned_whitening,
)


@pytest.fixture(scope="module")
def imagenet_model() -> Path:
    from designsearch.services.embedder.config import IMAGENET_MODEL
    from designsearch.training.embedder.export import export_imagenet

    if not IMAGENET_MODEL.is_file():
        export_imagenet(IMAGENET_MODEL)
    return IMAGENET_MODEL


@pytest.fixture(scope="module")
def pictures(data_dir) -> tuple[list[np.ndarray], np.ndarray]:
    """Six whole-car photos of each of classes 79-84 and their line drawings; labels (class id)."""
    _, val_rows = D.split_rows(D.load_rows(data_dir))
    items = []
    for cls in range(79, 85):
        items += [it for it in D.car_items(val_rows) if it.class_id == cls][:6]
    rgbs = [read_image(it.path) for it in items]
    labels = np.array([it.class_id for it in items])
    return rgbs + [edge_map(x) for x in rgbs], np.concatenate([labels, labels])


@pytest.fixture(scope="module")
def raw_embeddings(imagenet_model, pictures) -> np.ndarray:
    return OnnxEmbedder(imagenet_model, threads=2).embed(pictures[0])


def _spread_ratio(y: np.ndarray, labels: np.ndarray) -> float:
    """trace(within-class scatter) / trace(between-class scatter)."""
    mu = y.mean(axis=0)
    within = between = 0.0
    for c in np.unique(labels):
        yc = y[labels == c]
        within += ((yc - yc.mean(axis=0)) ** 2).sum()
        between += len(yc) * ((yc.mean(axis=0) - mu) ** 2).sum()
    return within / between


def test_fit_shrinks_within_class_spread(raw_embeddings, pictures):
    labels = pictures[1]
    mean, projection = fit_learned_whitening(raw_embeddings, labels, shrink=DEFAULT_SHRINK, dims=64)
    assert mean.shape == (1280,) and projection.shape == (1280, 64) and projection.dtype == np.float32
    before = _spread_ratio(raw_embeddings, labels)
    after = _spread_ratio((raw_embeddings - mean) @ projection, labels)
    # photos and line drawings of one car model end up closer, relative to the gaps between models
    assert after < 0.5 * before, (before, after)
    out = apply_whitening(raw_embeddings, mean, projection)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_fit_rejects_bad_arguments(raw_embeddings, pictures):
    x, labels = raw_embeddings, pictures[1]
    with pytest.raises(ValueError, match="classes"):
        fit_learned_whitening(x, np.zeros(len(x)))
    with pytest.raises(ValueError, match="one label per row"):
        fit_learned_whitening(x, labels[:-1])
    with pytest.raises(ValueError, match="shrink"):
        fit_learned_whitening(x, labels, shrink=-1.0)
    with pytest.raises(ValueError, match="dims"):
        fit_learned_whitening(x, labels, dims=2000)


def test_appended_graph_computes_the_whitening(tmp_path, imagenet_model, raw_embeddings, pictures):
    mean, projection = fit_learned_whitening(raw_embeddings, pictures[1], dims=64)
    src = tmp_path / "raw.onnx"
    shutil.copyfile(imagenet_model, src)
    dst = tmp_path / "whitened.onnx"
    version = append_whitening(src, dst, mean, projection, {"shrink": DEFAULT_SHRINK})
    assert version.startswith("sha256:")
    got = OnnxEmbedder(dst, threads=2).embed(pictures[0][:8])
    assert got.shape == (8, 64) and got.dtype == np.float32
    np.testing.assert_allclose(got, apply_whitening(raw_embeddings[:8], mean, projection), atol=1e-4)
    # a model is whitened once only
    with pytest.raises(ValueError, match="already whitened"):
        append_whitening(dst, tmp_path / "twice.onnx", mean, projection)


def test_served_embedder_is_whitened_and_its_int8_keeps_the_whitening_float():
    meta = {p.key: p.value for p in onnx.load(str(EMBEDDER_MODEL), load_external_data=False).metadata_props}
    info = json.loads(meta[METADATA_KEY])
    # fitted here (shrink, dims), or the fitted whitening of the model it was fine-tuned from, kept fixed
    assert "learned whitening" in info["method"] and info["source_model"].startswith("sha256:")
    assert info.get("shrink", DEFAULT_SHRINK) == DEFAULT_SHRINK and info.get("dims", 512) == 512
    served = onnx.load(str(EMBEDDER_MODEL))
    (projection,) = [i for i in served.graph.initializer if i.name == "/whitening/projection"]
    assert list(projection.dims) == [512, 512]
    int8 = onnx.load(str(EMBEDDER_MODEL_INT8))
    nodes = {n.name: n for n in int8.graph.node}
    matmul = nodes["/whitening/MatMul"]
    assert matmul.op_type == "MatMul"
    floats = {i.name for i in int8.graph.initializer if i.data_type == onnx.TensorProto.FLOAT}
    assert "/whitening/projection" in floats and matmul.input[1] == "/whitening/projection"


def test_served_embedder_uses_gem_pooling_in_float():
    """The served network pools with GeM p = 2 (``/Pow`` nodes), kept float32 in the INT8 file."""
    for path in (EMBEDDER_MODEL, EMBEDDER_MODEL_INT8):
        nodes = {n.name: n for n in onnx.load(str(path)).graph.node}
        assert nodes["/Pow"].op_type == "Pow" and nodes["/Pow_1"].op_type == "Pow"
        assert not any(n.op_type == "DequantizeLinear" and n.output[0] in nodes["/Pow"].input for n in nodes.values())
