"""On-car composites on Stanford Cars photos whose wheels the served segmenter finds (``--oncar-photos stanford``)."""

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

from designsearch.settings import REPO_ROOT, default_data_dir
from designsearch.training.wheelgen.oncar import OnCarPhotos, wheel_slots
from designsearch.training.wheelgen.stanford_slots import MAX_CLASS, find_stanford_wheels

DATA = Path(default_data_dir())
SEGMENTER = REPO_ROOT / "models" / "segmenter" / "wheelseg-lite0-int8.onnx"


def _labels() -> dict[str, int]:
    with open(DATA / "stanford-cars" / "labels.csv", newline="") as f:
        return {f"stanford-cars/{r['file']}": int(r["class_id"]) for r in csv.DictReader(f)}


def test_found_wheels_are_confident_in_bounds_and_cached(tmp_path: Path) -> None:
    found = find_stanford_wheels(DATA, SEGMENTER, tmp_path, limit=60)
    # about a third of Stanford photos show their wheels clearly enough (21 of the first 60 of classes 1-78)
    assert 10 <= len(found) <= 60
    labels = _labels()
    for p in found:
        assert labels[p.file_name] <= MAX_CLASS  # the held-out classes 79-98 never become training pictures
        assert 1 <= len(p.boxes) <= 4 and min(p.scores) >= 0.9
        full = p.mask()
        assert full.shape == (p.height, p.width) == p.read_rgb().shape[:2]
        for i, (x1, y1, x2, y2) in enumerate(p.boxes):
            assert 0 <= x1 < x2 <= p.width and 0 <= y1 < y2 <= p.height and min(x2 - x1, y2 - y1) >= 40
            m = p.box_mask(i)
            assert m.shape == (y2 - y1, x2 - x1) and m.mean() > 0.4  # a wheel fills most of its box
        assert full.sum() == sum(int(p.box_mask(i).sum()) for i in range(len(p.boxes)))  # disjoint wheels
    # the slots come out of the detections as out of annotations
    slots = wheel_slots(found[0])
    assert [s.box for s in slots] == found[0].boxes and all(0 <= s.yaw_deg <= 75 for s in slots)
    assert len(OnCarPhotos(found)) == len(found)
    # cached: the same call reads the pickle (a removed photo folder would not matter)
    cached = list(tmp_path.glob("stanford-wheels-*.pkl"))
    assert len(cached) == 1
    again = find_stanford_wheels(DATA, SEGMENTER, tmp_path, limit=60)
    assert [(p.file_name, p.boxes) for p in again] == [(p.file_name, p.boxes) for p in found]


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DESIGNSEARCH_DATA": str(DATA)}
    return subprocess.run([sys.executable, "-m", "designsearch.cli", "render-wheels", *args], capture_output=True,
                          text=True, env=env, timeout=600)


def test_render_wheels_composites_into_stanford_photos(tmp_path: Path) -> None:
    pytest.importorskip("designsearch.training.wheelgen.render")  # Mitsuba (render extra)
    pytest.importorskip("designsearch.training.wheelgen.raster")  # pyrender on OSMesa
    out = tmp_path / "set"
    r = _cli("--designs", "2", "--views", "1", "--seed", "0", "--oncar", "2", "--oncar-photos", "stanford",
             "--stanford-photos", "60", "--no-drawings", "--out", str(out), "--workers", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    with open(out / "manifest.csv", newline="") as f:
        rows = [row for row in csv.DictReader(f) if row["kind"] == "oncar"]
    assert len(rows) == 4
    found = {p.file_name: p for p in find_stanford_wheels(DATA, SEGMENTER, out, limit=60)}
    for row in rows:
        photo = found[row["background"]]  # a Stanford photo the segmenter found wheels in
        img = cv2.imread(str(out / row["file"]))
        mask = cv2.imread(str(out / row["mask_file"]), cv2.IMREAD_GRAYSCALE)
        assert img.shape[:2] == mask.shape == (photo.height, photo.width)
        boxes = json.loads(row["boxes"])
        assert 1 <= len(boxes) <= len(photo.boxes)
        for x1, y1, x2, y2 in boxes:  # every labelled wheel is pasted where the segmenter found one
            assert (mask[y1:y2, x1:x2] == 255).mean() > 0.3
            assert any(min(x2, b[2]) > max(x1, b[0]) and min(y2, b[3]) > max(y1, b[1]) for b in photo.boxes)
        assert not np.array_equal(img, cv2.imread(str(photo.path)))  # the original wheels are replaced
    card = json.loads((out / "data_card.json").read_text())
    assert card["oncar_by_photo_source"] == {"stanford": 4}
    # an unknown source is refused before anything is written
    r = _cli("--designs", "1", "--views", "1", "--oncar-photos", "stanford,flickr", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "--oncar-photos" in r.stderr and not (tmp_path / "x").exists()


def test_a_set_made_before_the_option_resumes_as_car_parts(tmp_path: Path) -> None:
    from dataclasses import asdict

    from designsearch.training.wheelgen.engine import SetMismatch, check_set
    from designsearch.training.wheelgen.jobs import SetConfig

    cfg = SetConfig(seed=0, designs=2, views=1, styles=["straight"])
    old = {k: v for k, v in asdict(cfg).items() if k not in ("oncar_photos", "stanford_photos")}
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "set.json").write_text(json.dumps(old))
    check_set(tmp_path, cfg)  # the fields it lacks read as their defaults
    with pytest.raises(SetMismatch, match="oncar_photos"):
        check_set(tmp_path, SetConfig(seed=0, designs=2, views=1, styles=["straight"], oncar_photos="stanford"))
