"""Ship a trained model: the one step that writes ``models/`` (training commands write under ``runs/`` only).

    designsearch ship-model runs/embedder/design-b4/model.onnx --kind embedder
    designsearch ship-model runs/segmenter/train/wheelseg-lite0.onnx --kind segmenter

What it does, in order: checks that the file is a float32 ONNX model of that kind (embedder: input ``pixels``
``(N, 3, S, S)``, output ``embedding``; segmenter: output ``prob``) and is not a file under ``models/``
already; copies it to the served path (:data:`designsearch.settings.EMBEDDER_MODEL` /
:data:`~designsearch.settings.SEGMENTER_MODEL`, under ``$DESIGNSEARCH_MODEL_DIR``); quantises it to INT8
beside it exactly as :mod:`designsearch.training.quantize` does; for an embedder, re-calibrates Verify's
thresholds on the new INT8 file (:mod:`designsearch.training.verify_calibration`, ~3 min; ``--no-calibrate``
skips it, and the gateway then refuses Verify for the new version until it is run); appends one row to the
"Ship log" table at the end of the model card (date, source, sha256 and model version ids). The card's
hand-written sections and the figures stay the author's job; re-index the catalogue through the alias flow
(``designsearch reindex``) so that every vector carries the new version.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import shutil
from pathlib import Path

import onnx

from designsearch.settings import MODEL_DIR, repo_relative
from designsearch.versioning import file_version

#: Served float32 file name per kind, under ``MODEL_DIR / kind``.
SERVED_NAME = {"embedder": "wheelembed-lite0-512.onnx", "segmenter": "wheelseg-lite0.onnx"}
#: Output a model of each kind must have.
REQUIRED_OUTPUT = {"embedder": "embedding", "segmenter": "prob"}
LOG_HEADER = "## Ship log"
LOG_COLUMNS = "| date (UTC) | from | float32 sha256 | version | INT8 version | Verify calibrated |\n|---|---|---|---|---|---|\n"


def check_model(src: Path, kind: str, model_dir: Path) -> None:
    """Refuse what must not be shipped.

    Raises:
        FileNotFoundError: ``src`` does not exist.
        ValueError: ``src`` lies under ``model_dir`` (ship from ``runs/``), is not an ONNX model, has no
            ``pixels`` input of shape ``(N, 3, S, S)``, lacks the kind's output, or is already quantised.
    """
    if not src.is_file():
        raise FileNotFoundError(f"no model file at {src}")
    if src.resolve().is_relative_to(model_dir.resolve()):
        raise ValueError(f"{src} is under {model_dir} already: ship a trained file from runs/")
    try:
        graph = onnx.load(str(src), load_external_data=False).graph
    except Exception as e:  # noqa: BLE001 - onnx raises DecodeError and others for a file that is not a model
        raise ValueError(f"{src} is not an ONNX model: {type(e).__name__}: {e}") from None
    inputs = {i.name: i for i in graph.input}
    if "pixels" not in inputs or len(inputs["pixels"].type.tensor_type.shape.dim) != 4:
        raise ValueError(f"{src}: the {kind} takes input 'pixels' (N, 3, S, S); the file has {sorted(inputs)}")
    outputs = [o.name for o in graph.output]
    if REQUIRED_OUTPUT[kind] not in outputs:
        raise ValueError(f"{src}: a {kind} has output {REQUIRED_OUTPUT[kind]!r}; the file has {outputs}")
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in graph.node):
        raise ValueError(f"{src} is quantised already: ship the float32 file (its INT8 copy is made here)")


def append_log(card: Path, row: str) -> None:
    """Append ``row`` (one markdown table row) to the card's ship-log table, creating the section if needed."""
    text = card.read_text() if card.is_file() else "# Model card\n"
    if LOG_HEADER not in text:
        text = text.rstrip("\n") + f"\n\n{LOG_HEADER}\n\nWritten by `designsearch ship-model` (one row per shipped file).\n\n" \
               + LOG_COLUMNS
    card.write_text(text.rstrip("\n") + "\n" + row + "\n")


def ship(src: str | Path, kind: str, calibrate: bool = True, model_dir: Path | None = None) -> dict:
    """Copy, quantise, (calibrate) and log one model; returns what was written.

    Args:
        src: float32 ONNX file of a training run.
        kind: ``embedder`` or ``segmenter``.
        calibrate: re-run Verify's calibration for a new embedder.
        model_dir: the models folder (default :data:`designsearch.settings.MODEL_DIR`).

    Raises:
        FileNotFoundError, ValueError: see :func:`check_model`.
    """
    from designsearch.training.quantize import int8_path, quantize, segmenter_calibration, segmenter_float_nodes
    from designsearch.training.quantize import quantize_embedder

    src, model_dir = Path(src), Path(model_dir or MODEL_DIR)
    check_model(src, kind, model_dir)
    dst = model_dir / kind / SERVED_NAME[kind]
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    int8 = int8_path(dst)
    if kind == "embedder":
        quantize_embedder(dst, int8)
    else:
        graph = onnx.load(str(dst))
        size = int(graph.graph.input[0].type.tensor_type.shape.dim[2].dim_value)
        quantize(dst, int8, segmenter_calibration(size), float_nodes=segmenter_float_nodes(graph))
    calibrated = False
    if kind == "embedder" and calibrate:
        from designsearch.training.verify_calibration import main as calibrate_verify

        calibrate_verify(["--embedder", str(int8), "--out", str(model_dir / "embedder" / "verify-calibration.json")])
        calibrated = True
    sha = hashlib.sha256(dst.read_bytes()).hexdigest()
    record = {"kind": kind, "from": repo_relative(src), "model": str(dst), "sha256": sha, "version": file_version(dst),
              "int8": str(int8), "int8_version": file_version(int8), "verify_calibrated": calibrated}
    append_log(model_dir / kind / "MODEL_CARD.md",
               f"| {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} | `{record['from']}` | `{sha}` | `{record['version']}` "
               f"| `{record['int8_version']}` | {'yes' if calibrated else 'no'} |")
    return record


def main(argv: list[str] | None = None) -> dict:
    """CLI entry point; see the module docstring."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", type=Path, help="float32 ONNX file of a training run (under runs/)")
    p.add_argument("--kind", choices=sorted(SERVED_NAME), required=True)
    p.add_argument("--no-calibrate", action="store_true", help="skip Verify's re-calibration (embedder)")
    a = p.parse_args(argv)
    record = ship(a.model, a.kind, calibrate=not a.no_calibrate)
    for key, value in record.items():
        print(f"{key}: {value}")
    print("next: re-index the catalogue (designsearch reindex) and update the model card's figures")
    return record


if __name__ == "__main__":
    main()
