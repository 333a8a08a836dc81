"""``designsearch ship-model`` (training/ship.py): the only step that writes a models folder. Shipping the
committed float32 embedder from a run folder into a temporary models folder reproduces the committed INT8 file
and logs one card row; what must not be shipped is refused; the repository's models are left alone."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from designsearch.settings import EMBEDDER_MODEL, EMBEDDER_MODEL_INT8, SEGMENTER_MODEL
from designsearch.training.ship import LOG_HEADER, check_model, ship
from designsearch.versioning import file_version


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_shipping_a_run_copies_quantises_and_logs(tmp_path):
    committed = {p: _sha(p) for p in (EMBEDDER_MODEL, EMBEDDER_MODEL_INT8)}
    run = tmp_path / "runs" / "embedder" / "x"
    run.mkdir(parents=True)
    shutil.copyfile(EMBEDDER_MODEL, run / "model.onnx")
    models = tmp_path / "models"
    record = ship(run / "model.onnx", "embedder", calibrate=False, model_dir=models)
    served = models / "embedder" / "wheelembed-lite0-512.onnx"
    assert _sha(served) == committed[EMBEDDER_MODEL] and record["version"] == file_version(EMBEDDER_MODEL)
    # the INT8 copy is made exactly as the committed one was
    assert record["int8_version"] == file_version(EMBEDDER_MODEL_INT8)
    card = (models / "embedder" / "MODEL_CARD.md").read_text()
    assert LOG_HEADER in card and card.count(record["sha256"]) == 1 and "| no |" in card
    ship(run / "model.onnx", "embedder", calibrate=False, model_dir=models)  # a second row, one header
    card = (models / "embedder" / "MODEL_CARD.md").read_text()
    assert card.count(LOG_HEADER) == 1 and card.count(record["sha256"]) == 2
    assert {p: _sha(p) for p in committed} == committed  # the repository's models untouched


def test_what_must_not_be_shipped_is_refused(tmp_path):
    models = tmp_path / "models"
    (models / "embedder").mkdir(parents=True)
    inside = models / "embedder" / "candidate.onnx"
    shutil.copyfile(EMBEDDER_MODEL, inside)
    with pytest.raises(ValueError, match="under"):
        check_model(inside, "embedder", models)
    with pytest.raises(ValueError, match="quantised"):
        check_model(EMBEDDER_MODEL_INT8, "embedder", models)
    with pytest.raises(ValueError, match="'embedding'"):  # a segmenter is not an embedder
        check_model(SEGMENTER_MODEL, "embedder", models)
    with pytest.raises(ValueError, match="'prob'"):
        check_model(EMBEDDER_MODEL, "segmenter", models)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not an ONNX model"):
        check_model(junk, "embedder", models)
    with pytest.raises(FileNotFoundError):
        check_model(tmp_path / "missing.onnx", "embedder", models)
    assert not (models / "embedder" / "MODEL_CARD.md").exists()
