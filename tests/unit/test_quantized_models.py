"""The committed INT8 models (issue 14) against the float32 models they were made from, on real pictures.

The services serve the INT8 files by default (``designsearch.settings.served_model``); these tests
check that they are real integer models, that they agree with the float32 models on validation
pictures never used for calibration (Stanford Cars classes 79-98, Car-Parts validation photos), and
that ``python -m designsearch.training.quantize {embedder,segmenter}`` reproduces the committed files.
Data come from ``$DESIGNSEARCH_DATA`` (default ``<repo>/../shared/data``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from designsearch.images import edge_map, read_image  # noqa: E402
from designsearch.services.embedder.config import EmbedderSettings  # noqa: E402
from designsearch.services.embedder.core import OnnxEmbedder  # noqa: E402
from designsearch.services.segmenter.detection import box_iou  # noqa: E402
from designsearch.services.segmenter.learned import LearnedWheelDetector  # noqa: E402
from designsearch.settings import (EMBEDDER_MODEL, EMBEDDER_MODEL_INT8, SEGMENTER_MODEL, SEGMENTER_MODEL_INT8,  # noqa: E402
                                   default_data_dir)
from designsearch.training.segmenter.evaluate import detections_mask  # noqa: E402

DATA = default_data_dir()
needs_data = pytest.mark.skipif(not (DATA / "stanford-cars" / "labels.csv").is_file()
                                or not (DATA / "car-parts-seg" / "annotations.json").is_file(),
                                reason=f"shared data not found under {DATA}")


@pytest.mark.parametrize("path", [SEGMENTER_MODEL_INT8, EMBEDDER_MODEL_INT8], ids=["segmenter", "embedder"])
def test_int8_files_are_integer_models_and_small(path: Path):
    assert path.is_file(), f"{path} missing: python -m designsearch.training.quantize"
    assert path.stat().st_size <= 20 * 1024 * 1024
    model = onnx.load(str(path))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") >= 20 and "Conv" in ops
    int8_weights = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) >= 30  # conv weights stored as int8, not float
    # int8 weights: about half the float file or less, float-kept nodes included (the embedder's
    # 512 x 512 float32 whitening matrix, 1 MB, is in both files)
    fp32 = SEGMENTER_MODEL if path == SEGMENTER_MODEL_INT8 else EMBEDDER_MODEL
    assert path.stat().st_size < 0.55 * fp32.stat().st_size


def test_services_serve_the_int8_models():
    assert Path(EmbedderSettings().model_path) == EMBEDDER_MODEL_INT8


@needs_data
def test_embedder_int8_vectors_agree_with_float32():
    from designsearch.training.embedder import data as D

    _, val_rows = D.split_rows(D.load_rows(DATA))
    items = D.car_items(val_rows)[::36][:24]  # spread over the validation classes 79-98
    rgbs = [read_image(it.path) for it in items]
    rgbs += [edge_map(x) for x in rgbs]  # the catalogue's line-drawing view
    fp32 = OnnxEmbedder(EMBEDDER_MODEL, threads=2).embed(rgbs)
    int8 = OnnxEmbedder(EMBEDDER_MODEL_INT8, threads=2).embed(rgbs)
    assert int8.shape == fp32.shape == (48, 512) and int8.dtype == np.float32
    assert np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-4)
    cos = (fp32 * int8).sum(axis=1)
    assert cos.min() >= 0.95 and cos.mean() >= 0.98, (cos.min(), cos.mean())
    # retrieval among the photos: the nearest other picture is mostly the same for both models
    a, b = fp32[:24] @ fp32[:24].T, int8[:24] @ int8[:24].T
    np.fill_diagonal(a, -2)
    np.fill_diagonal(b, -2)
    assert (a.argmax(1) == b.argmax(1)).mean() >= 0.85


@needs_data
def test_segmenter_int8_finds_the_wheels_the_float_model_finds():
    from designsearch.training.segmenter.dataset import load_samples, split_samples

    _, val = split_samples(load_samples(DATA), 0.2, 0)
    photos = [s for s in val if s.polygons][:16]
    fp32, int8 = LearnedWheelDetector(SEGMENTER_MODEL), LearnedWheelDetector(SEGMENTER_MODEL_INT8)
    n_fp32 = matched = inter = union = 0
    for s in photos:
        rgb = s.read_rgb()
        a, b = fp32.detect(rgb), int8.detect(rgb)
        n_fp32 += len(a)
        matched += sum(any(box_iou(d.box, e.box) >= 0.8 for e in b) for d in a)
        ma, mb = detections_mask(a, *rgb.shape[:2]), detections_mask(b, *rgb.shape[:2])
        inter += int((ma & mb).sum())
        union += int((ma | mb).sum())
    assert n_fp32 >= 16
    assert matched >= 0.9 * n_fp32, f"{matched}/{n_fp32}"
    assert inter / union >= 0.9, inter / union


@needs_data
@pytest.mark.slow
@pytest.mark.parametrize("kind,committed", [("embedder", EMBEDDER_MODEL_INT8), ("segmenter", SEGMENTER_MODEL_INT8)])
def test_quantize_reproduces_the_committed_file(tmp_path, kind, committed):
    from designsearch.training.quantize import main

    out = tmp_path / f"{kind}-int8.onnx"
    assert main([kind, "--dst", str(out)]) == 0
    assert hashlib.sha256(out.read_bytes()).hexdigest() == hashlib.sha256(committed.read_bytes()).hexdigest()
