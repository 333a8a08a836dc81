"""The wheel-design engine end to end: ``render-wheels --designs 3 --views 4 --seed 0`` and its labels."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from designsearch.settings import default_data_dir

pytest.importorskip("designsearch.training.wheelgen.render")  # Mitsuba (render extra)
pytest.importorskip("designsearch.training.wheelgen.raster")  # pyrender on OSMesa

from designsearch.training.wheelgen.camera import View  # noqa: E402
from designsearch.training.wheelgen.design import WheelDesign, design_distance, sample_designs  # noqa: E402
from designsearch.training.wheelgen.geometry import build_wheel  # noqa: E402
from designsearch.training.wheelgen.raster import RasterRenderer  # noqa: E402
from designsearch.training.wheelgen.render import PathTracer  # noqa: E402

DATA = Path(default_data_dir())


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DESIGNSEARCH_DATA": str(DATA)}
    return subprocess.run([sys.executable, "-m", "designsearch.cli", "render-wheels", *args], capture_output=True,
                          text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheels") / "set"
    r = _cli("--designs", "3", "--views", "4", "--seed", "0", "--out", str(out), "--workers", "2", "--quiet")
    assert r.returncode == 0, r.stderr
    return out


def _rows(out: Path) -> list[dict]:
    with open(out / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_small_set_writes_pictures_drawings_masks_and_manifest(small_set: Path) -> None:
    rows = _rows(small_set)
    renders = [r for r in rows if r["kind"] == "render"]
    drawings = [r for r in rows if r["kind"] == "drawing"]
    assert len(renders) == 12 and len(drawings) == 12
    assert len({r["design_id"] for r in rows}) == 3
    for r in renders + drawings:
        img = cv2.imread(str(small_set / r["file"]))
        mask = cv2.imread(str(small_set / r["mask_file"]), cv2.IMREAD_GRAYSCALE)
        assert img.shape[:2] == mask.shape == (224, 224)
        assert set(np.unique(mask)) <= {0, 128, 255} and (mask == 255).sum() > 500
        ys, xs = np.nonzero(mask)
        assert (int(r["x1"]), int(r["y1"]), int(r["x2"]), int(r["y2"])) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert r["split"] in ("train", "val") and r["design_id"].startswith("pw-")
        WheelDesign.from_json(r["params"])  # the parameters read back
    for r in drawings:
        if r["drawing_style"] in ("cad", "pen", "marker"):  # pencil adds construction lines outside the wheel
            ink = cv2.imread(str(small_set / r["file"]), cv2.IMREAD_GRAYSCALE) < 100
            mask = cv2.imread(str(small_set / r["mask_file"]), cv2.IMREAD_GRAYSCALE) > 0
            grown = cv2.dilate(mask.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
            assert ink.sum() > 300 and (ink & ~grown).sum() <= 0.02 * ink.sum()
    card = json.loads((small_set / "data_card.json").read_text())
    assert card["by_kind"]["render"] == 12 and card["config"]["seed"] == 0


def test_masks_match_the_path_traced_renders() -> None:
    """Mask pixels where the rendered wheel is and none elsewhere: the raster mask against Mitsuba's alpha."""
    rr, pt = RasterRenderer(160), PathTracer(160, spp=4, max_depth=3)
    rng = np.random.default_rng(1)
    try:
        for (d, _), tyre in zip(sample_designs(3, 5), (True, False, True)):
            w = build_wheel(d, tyre=tyre)
            pt.load(w, d.design_id)
            views = [View(0, 0, 30), View(40, 15, 200, fov_deg=35, fill=0.85)]
            for v, img in zip(views, pt.render_views(views, "silver", rng)):
                mask = rr.labels(w, v)[0] > 0
                alpha = img[..., 3] > 0.5
                iou = (mask & alpha).sum() / (mask | alpha).sum()
                assert iou > 0.97, (d.style, v, iou)
                assert alpha[~cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)].sum() < 20
    finally:
        rr.close()
        pt.close()


def test_same_seed_same_designs_and_different_ids_differ() -> None:
    a, b = sample_designs(40, 0), sample_designs(40, 0)
    assert [(d.design_id, d.to_json(), p) for d, p in a] == [(d.design_id, d.to_json(), p) for d, p in b]
    assert [d.design_id for d, _ in sample_designs(40, 1)] != [d.design_id for d, _ in a]
    ids = [d.design_id for d, _ in a]
    assert len(set(ids)) == len(ids)
    for i, (d, _) in enumerate(a):
        for e, _ in a[i + 1:]:
            assert d.to_json() != e.to_json() and design_distance(d, e) >= 1.0
    # two different ids look different: their front-view masks differ
    rr = RasterRenderer(128)
    try:
        m = [rr.labels(build_wheel(d, tyre=False), View(0, 0, 0))[0] > 0 for d, _ in a[:2]]
        assert (m[0] ^ m[1]).sum() > 0.05 * (m[0] | m[1]).sum()
    finally:
        rr.close()


def test_related_variants_change_one_parameter() -> None:
    pairs = [(d, p) for d, p in sample_designs(200, 3) if p]
    assert pairs
    by_id = {d.design_id: d for d, _ in sample_designs(200, 3)}
    for d, p in pairs:
        diff = [k for k, v in json.loads(d.to_json()).items() if json.loads(by_id[p].to_json())[k] != v]
        assert len(diff) == 1, diff


def test_resume_and_refusals(small_set: Path, tmp_path: Path) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in (small_set / "parts").iterdir()}
    manifest = (small_set / "manifest.csv").read_text()
    # a killed run: one design's part file (its "done" mark) is missing, its pictures half written
    victim = sorted(before)[0]
    (small_set / "parts" / victim).unlink()
    r = _cli("--designs", "3", "--views", "4", "--seed", "0", "--out", str(small_set), "--workers", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    after = {p.name: p.stat().st_mtime_ns for p in (small_set / "parts").iterdir()}
    assert set(after) == set(before)
    assert all(after[k] == before[k] for k in before if k != victim)  # finished designs not redone

    def stable(text: str) -> list[list[str]]:  # everything but the timing column
        rows = list(csv.reader(text.splitlines()))
        i = rows[0].index("seconds")
        return [row[:i] + row[i + 1:] for row in rows]

    assert stable((small_set / "manifest.csv").read_text()) == stable(manifest)
    # another seed into the same folder: refused, nothing touched
    r = _cli("--designs", "3", "--views", "4", "--seed", "1", "--out", str(small_set), "--quiet")
    assert r.returncode == 2 and "another picture set" in r.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (small_set / "parts").iterdir()} == after
    for bad, msg in ((["--designs", "0"], "at least 1"), (["--styles", "straight,wobbly"], "unknown style")):
        r = _cli(*bad, "--views", "2", "--out", str(tmp_path / "x"))
        assert r.returncode == 2 and msg in r.stderr, r.stderr
        assert not (tmp_path / "x").exists()
