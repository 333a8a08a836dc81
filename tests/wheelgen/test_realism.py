"""FID / KID of the wheel-design engine's realism check (training/wheelgen/realism.py), on REAL pictures:
car-parts-50 rims against other rims must come out closer than rims against other car parts."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from designsearch.settings import IMAGENET_EMBEDDER_MODEL, default_data_dir
from designsearch.training.wheelgen import realism

DATA = default_data_dir()
PARTS = DATA / "wheel-pictures" / "car-parts-50" / "labels.csv"
needs_real = pytest.mark.skipif(not PARTS.is_file() or not IMAGENET_EMBEDDER_MODEL.is_file(),
                                reason=f"car-parts-50 under {DATA} or {IMAGENET_EMBEDDER_MODEL} missing")


def test_frechet_distance_of_identical_and_shifted_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 8))
    assert realism.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    shift = np.array([1.0, -2.0, 0.5, 0.0, 0.0, 3.0, 0.0, 1.0])  # ||shift||^2 = 15.25
    # The same samples shifted: equal covariances, so the distance is ||shift||^2 exactly.
    assert realism.frechet_distance(a, a + shift) == pytest.approx(15.25, rel=1e-9)
    # Independent identity-covariance samples: ||shift||^2 up to sampling noise (the mean term's
    # 2 shift.e, e ~ N(0, 2/n I), has std 2 ||shift|| sqrt(2 / n) = 0.08 at n = 20000).
    a, b = rng.normal(size=(20000, 8)), rng.normal(size=(20000, 8)) + shift
    assert realism.frechet_distance(a, b) == pytest.approx(15.25, abs=0.3)
    assert realism.frechet_distance(a, b) == pytest.approx(realism.frechet_distance(b, a), rel=1e-9)


def test_frechet_distance_with_fewer_rows_than_dimensions_matches_the_full_formula():
    """The n x n shortcut gives the trace of the d x d sqrtm (checked where the d x d product is regular)."""
    import scipy.linalg

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(50, 20)), rng.normal(size=(30, 20)) * 1.5 + 0.3
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    full = (np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(s_a) + np.trace(s_b)
            - 2 * np.trace(scipy.linalg.sqrtm(s_a @ s_b).real))
    assert realism.frechet_distance(a, b) == pytest.approx(full, rel=1e-9)
    assert realism.frechet_distance(a[:10], b[:12]) == pytest.approx(realism.frechet_distance(b[:12], a[:10]))


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="at least 2 rows"):
        realism.frechet_distance(np.zeros((1, 4)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="dimensions differ"):
        realism.kernel_inception_distance(np.zeros((5, 4)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="real_rims"):
        realism.reference_features("nope")


def test_kid_is_unbiased_near_zero_for_one_distribution():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(300, 16)), rng.normal(size=(300, 16))
    same, _ = realism.kernel_inception_distance(a, b, subsets=20, subset_size=100)
    shifted, _ = realism.kernel_inception_distance(a, b + 1.0, subsets=20, subset_size=100)
    assert abs(same) < 0.05 * shifted


def test_read_picture_composites_rgba_on_white(tmp_path: Path):
    bgra = np.zeros((4, 4, 4), np.uint8)
    bgra[..., 0] = 200  # blue in BGR order
    bgra[:2, :, 3] = 255  # top half opaque, bottom half transparent
    cv2.imwrite(str(tmp_path / "x.png"), bgra)
    rgb = realism.read_picture(tmp_path / "x.png")
    assert rgb.shape == (4, 4, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [0, 0, 200] and rgb[3, 3].tolist() == [255, 255, 255]


@pytest.fixture(scope="module")
def parts_features() -> dict[str, np.ndarray]:
    """Lite0 features of 60 + 60 car-parts-50 rims and of 60 `not_wheel` parts (every 40th, all classes)."""
    with open(PARTS, newline="") as f:
        rows = list(csv.DictReader(f))
    root = PARTS.parents[1]
    rims = sorted(root / r["file"] for r in rows if r["wheel"] == "rim")
    others = sorted(root / r["file"] for r in rows if r["wheel"] == "not_wheel")[::40][:60]
    assert len(rims) >= 120 and len(others) == 60
    return {"rims_a": realism.features_of_files(rims[0:120:2]),  # interleaved halves of the first 120
            "rims_b": realism.features_of_files(rims[1:120:2]), "others": realism.features_of_files(others)}


@needs_real
def test_real_rims_are_closer_to_real_rims_than_to_other_car_parts(parts_features):
    f = parts_features
    assert f["rims_a"].shape == (60, 1280) and f["rims_a"].dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(f["rims_a"], axis=1), 1.0, atol=1e-4)
    fid_same = realism.frechet_distance(f["rims_a"], f["rims_b"])
    fid_other = realism.frechet_distance(f["rims_a"], f["others"])
    kid_same, _ = realism.kernel_inception_distance(f["rims_a"], f["rims_b"], subsets=50, subset_size=60)
    kid_other, kid_other_std = realism.kernel_inception_distance(f["rims_a"], f["others"], subsets=50,
                                                                 subset_size=60)
    print(f"\nFID rims/rims {fid_same:.4f}  rims/not_wheel {fid_other:.4f}; "
          f"KID rims/rims {kid_same:.3e}  rims/not_wheel {kid_other:.3e} (std {kid_other_std:.1e})")
    assert fid_same < fid_other
    assert kid_same < kid_other
    assert abs(kid_same) < 0.25 * kid_other  # real vs real: near 0 (unbiased), well below the other pair


@needs_real
def test_cli_on_picture_folders_writes_json_and_markdown(tmp_path: Path):
    """--dirs against the (16-picture) wheel-vision cut-outs, with the real-vs-real floor row."""
    if not (DATA / "wheel-pictures" / "wheel-vision" / "labels.csv").is_file():
        pytest.skip("wheel-vision not in the data folder")
    rims = str(PARTS.parent / "rim" / "*.jpg")
    out = tmp_path / "realism.json"
    rows = realism.main(["--dirs", f"rims={rims}", "--reference", "real_cutouts", "--limit", "12",
                         "--bootstrap", "3", "--cache-dir", str(tmp_path / "cache"), "--out", str(out)])
    doc = json.loads(out.read_text())
    assert doc["reference"] == "real_cutouts" and doc["model"].startswith("sha256:")
    assert [r["set"] for r in rows] == ["rims", "real_cutouts half A (real floor)"]
    assert rows[0]["n"] == 12 and rows[0]["n_ref"] == 16 and rows[1]["n"] == 8
    for r in rows:
        assert r["fid_lo"] <= r["fid_hi"] and r["fid"] >= 0 and np.isfinite(r["kid"])
    assert list((tmp_path / "cache").glob("real_cutouts-*.npy"))
    assert out.with_suffix(".md").read_text().startswith("| set |")
