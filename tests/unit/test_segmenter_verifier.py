"""The region verifier head (issue 30): its ONNX form computes exactly the linear classifier on mask-pooled
encoder features that :mod:`designsearch.training.segmenter.verifier` fits, on a real picture."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from designsearch.services.segmenter.learned import LearnedWheelDetector
from designsearch.services.segmenter.regions import mask_weights, verifier_probability
from designsearch.settings import SEGMENTER_MODEL

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("DESIGNSEARCH_DATA", ROOT.parent / "shared" / "data"))
PARTS50 = DATA / "wheel-pictures" / "car-parts-50" / "labels.csv"

pytestmark = pytest.mark.skipif(not PARTS50.is_file(), reason=f"car-parts-50 not found under {DATA}")


def test_mask_weights_are_the_covered_share_of_each_cell():
    mask = np.zeros((64, 64), bool)
    mask[0:16, 0:8] = True  # half of cell (0, 0) of a 4 x 4 grid
    mask[16:32, 16:32] = True  # all of cell (1, 1)
    w = mask_weights(mask, 4)
    assert w.shape == (4, 4) and w.sum() == pytest.approx(1.0)
    assert w[0, 0] == pytest.approx(1 / 3) and w[1, 1] == pytest.approx(2 / 3) and w[2:, 2:].sum() == 0
    assert mask_weights(np.zeros((64, 64), bool), 4).sum() == 0


def test_onnx_head_equals_the_pooled_linear_classifier(tmp_path):
    """Random weights on the served float network: the ``verify`` map's mask-weighted mean (what the detector
    thresholds) equals ``w · pooled features + b`` for every instance found on a real product shot."""
    from designsearch.training.segmenter import verifier as V
    from designsearch.training.segmenter.real_sets import carparts50_items

    rng = np.random.default_rng(0)
    w16, w32 = rng.normal(0, 0.05, 112).astype(np.float32), rng.normal(0, 0.05, 320).astype(np.float32)
    model = Path(V.add_verify_head(SEGMENTER_MODEL, tmp_path / "seg.onnx", w16, w32, 0.3))
    det = LearnedWheelDetector(model, min_score=V.PROPOSAL_MIN_SCORE, use_verify=False)
    assert det.has_verify and "verify_threshold" in det.postprocessing
    reader = V.FeatureReader(model)
    rim = carparts50_items(DATA, "val", "rim")[0]
    import cv2

    rgb = cv2.resize(rim.rgb, (det.input_size, det.input_size))
    prob, scene, verify = det.outputs(rgb)
    assert scene is None and verify.shape == (det.input_size // 16,) * 2
    prob2, f16, f32 = reader(rgb)
    assert np.allclose(prob, prob2, atol=1e-5)
    regions = det.candidate_regions(prob)
    assert regions
    for region in regions:
        mask = region.full_mask(det.input_size)
        z = float(V.pooled_features(mask, f16, f32) @ np.concatenate([w16, w32]) + 0.3)
        assert verifier_probability(verify, mask) == pytest.approx(1 / (1 + np.exp(-z)), abs=1e-4)


def test_the_head_rejects_instances_below_its_threshold(tmp_path):
    """A head whose bias alone says "no wheel" (logit -20) leaves nothing; one that says "wheel" (+20) changes
    nothing of what the network alone finds."""
    from designsearch.training.segmenter import verifier as V
    from designsearch.training.segmenter.real_sets import carparts50_items

    rim = carparts50_items(DATA, "val", "rim")[0].rgb
    plain = LearnedWheelDetector(SEGMENTER_MODEL).detect(rim)
    assert plain
    for bias, expect in ((-20.0, []), (20.0, [d.box for d in plain])):
        model = V.add_verify_head(SEGMENTER_MODEL, tmp_path / f"seg{bias}.onnx", np.zeros(112), np.zeros(320), bias)
        assert [d.box for d in LearnedWheelDetector(model).detect(rim)] == expect
