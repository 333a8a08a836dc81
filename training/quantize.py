"""Post-training INT8 quantisation of the served ONNX models (segmenter and embedder).

Static quantisation in onnxruntime's QDQ format (Jacob et al., "Quantization and Training of
Neural Networks for Efficient Integer-Arithmetic-Only Inference", CVPR 2018): weights int8 per
output channel (symmetric), activations uint8 per tensor (asymmetric), their ranges calibrated on
real pictures of the kinds each model serves. onnxruntime then runs the convolutions as int8
kernels (VNNI on recent x86 CPUs). EfficientNet-Lite was designed for this (ReLU6 instead of
swish, no squeeze-excitation; Tan & Le, ICML 2019 / the TensorFlow "EfficientNet-Lite" release).

Calibration data, from TRAINING splits only (no validation picture is seen), seeded:

* segmenter (input ``S x S``, read from the model): Car-Parts-Segmentation training-split photos
  (split seed 0, as the segmenter's training), and for each one with a wheel a close-up around
  that wheel, the close-up as a studio shot on a light background and as a line drawing
  (:mod:`designsearch.training.segmenter.dataset`), plus flat grey / white pictures. The
  segmenter's prediction head, upsampling and sigmoid stay float32 (:func:`segmenter_float_nodes`);
* embedder (at its input side, 224 px for Lite0): Stanford Cars classes 1-78: whole cars, their
  wheel crops cut as the segmenter service cuts them, and the line drawings
  (:func:`designsearch.images.edge_map`) of both, the views the catalogue indexes. The stem and
  the embedding head stay float32 (:func:`embedder_float_nodes`).

Pre-processing is the served one (:func:`designsearch.images.to_model_input` for the embedder,
:func:`designsearch.services.segmenter.learned.network_input` for the segmenter), so the calibrated
ranges are those seen in service.

CLI::

    python -m designsearch.training.quantize segmenter [--src models/segmenter/wheelseg-lite0.onnx]
    python -m designsearch.training.quantize embedder  [--src models/embedder/wheelembed-lite0-512.onnx]

writes ``<src stem>-int8.onnx`` beside the source (or ``--dst``) and prints its size and sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import onnx

from designsearch.images import decode_image, edge_map, read_image, to_model_input
from designsearch.services.segmenter.learned import network_input
from designsearch.settings import EMBEDDER_MODEL, SEGMENTER_MODEL, default_data_dir

#: Calibration method (onnxruntime ``CalibrationMethod`` name) used by default.
DEFAULT_METHOD = "MinMax"


def segmenter_calibration(size: int, data: str | Path | None = None, photos: int = 48, seed: int = 0) -> Iterator[np.ndarray]:
    """Calibration inputs of the segmenter: ``float32 (1, 3, size, size)`` raw RGB 0..255.

    ``photos`` training-split Car-Parts photos (seeded choice), and for each with a wheel: a
    close-up of one wheel, that close-up as a studio shot on a light background and as a line
    drawing; then a flat white and a flat grey picture.

    Raises:
        FileNotFoundError: the Car-Parts data is missing.
    """
    from designsearch.training.segmenter.dataset import closeup_crop, load_samples, product_shot, sketch, split_samples

    train, _ = split_samples(load_samples(data), 0.2, 0)
    rng = np.random.default_rng(seed)
    chosen = random.Random(seed).sample(train, min(photos, len(train)))
    for s in chosen:
        rgb = s.read_rgb()
        yield network_input(rgb, size)
        boxes = s.instances()
        if boxes:
            box = boxes[int(rng.integers(len(boxes)))]
            crop, mask = closeup_crop(rgb, s.mask(), box, rng)
            yield network_input(crop, size)
            yield network_input(product_shot(crop, mask, rng), size)
            yield network_input(sketch(crop), size)
    for level in (255, 128):
        yield np.full((1, 3, size, size), level, np.float32)


#: The segmenter whose crops calibrate the embedder: the one served when the committed INT8 embedder was made
#: (issue 30 replaced it; the embedder's quantisation must not change with the segmenter). ``(commit, path)``.
EMBEDDER_CALIBRATION_SEGMENTER = ("9b1154d", "models/segmenter/wheelseg-lite0.onnx")


def calibration_segmenter(cache: str | Path = "var/models/wheelseg-embedder-calibration.onnx") -> Path:
    """The float32 segmenter of :data:`EMBEDDER_CALIBRATION_SEGMENTER`, taken from git into ``cache`` once.

    Raises:
        subprocess.CalledProcessError: not a git checkout holding that commit.
    """
    import subprocess

    from designsearch.settings import REPO_ROOT

    cache = Path(cache) if Path(cache).is_absolute() else REPO_ROOT / cache
    if not cache.is_file():
        commit, path = EMBEDDER_CALIBRATION_SEGMENTER
        blob = subprocess.run(["git", "-C", str(Path(__file__).resolve().parent), "show", f"{commit}:{path}"],
                              check=True, capture_output=True).stdout
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(blob)
    return cache


def embedder_calibration(data: str | Path | None = None, n: int = 96, seed: int = 0, size: int = 224,
                         segmenter_model: str | Path | None = None) -> Iterator[np.ndarray]:
    """Calibration inputs of the embedder: ``float32 (1, 3, size, size)`` raw RGB 0..255.

    ``n`` Stanford Cars training-class (1-78) pictures (seeded choice), each as the regions the
    gateway embeds: its best wheel crop cut by the float32 segmenter as the segmenter service cuts
    it (:class:`designsearch.services.segmenter.core.Segmenter`; default :func:`calibration_segmenter`) and the
    whole picture, each as a
    photo and as its line drawing (the catalogue's ``lines`` view).

    Raises:
        FileNotFoundError: the data or the segmenter model is missing.
    """
    from designsearch.services.segmenter.core import Segmenter
    from designsearch.services.segmenter.learned import LearnedWheelDetector
    from designsearch.training.embedder import data as D

    data = Path(data) if data is not None else default_data_dir()
    train_rows, _ = D.split_rows(D.load_rows(data))
    cars = D.car_items(train_rows)
    segmenter = Segmenter(LearnedWheelDetector(segmenter_model or calibration_segmenter(), threads=2))
    for it in random.Random(seed).sample(cars, min(n, len(cars))):
        raw = Path(it.path).read_bytes()
        rgbs = [read_image(it.path)]
        crops = segmenter.segment(raw, max_crops=1).crops
        if crops:
            rgbs.append(decode_image(crops[0].crop_jpeg))
        for rgb in rgbs:
            yield to_model_input([rgb], size)
            yield to_model_input([edge_map(rgb)], size)


def segmenter_float_nodes(model) -> list[str]:
    """Nodes of the segmenter graph kept in float32: the prediction head (``/head`` convolutions),
    the upsampling ``Resize`` nodes and the final ``Sigmoid``, the last steps of the probability map,
    where 8-bit steps move the mask edge, and the image-level head (``/scene`` linear layer, its average
    pool and softmax) and the region verifier (``/verify/...``, :mod:`designsearch.training.segmenter.verifier`) when
    the model has them. Quantising the mask steps too cost 0.8 points of set (a) recall and
    1.7 points of wheel-free crops left empty (see the segmenter model card); keeping them costs ~0.5 ms.

    Args:
        model: ``onnx.ModelProto`` of the float segmenter.
    """
    return [n.name for n in model.graph.node if n.name.startswith(("/head", "/scene", "/verify/"))
            or n.op_type in ("Resize", "Sigmoid", "Softmax", "ReduceMean")]


def embedder_float_nodes(model) -> list[str]:
    """Nodes of the embedder graph kept in float32: the first convolution (the stem, which sees raw
    pixels) and the embedding head (the 1x1 head convolution, the global average pool and the
    1280 → 512 projection) — the first and last layers, the ones usually left in higher precision.
    Quantising them too cost ~1 point of sketch R@5 (0.657 → 0.644 on the validation classes, under
    the issue-9 bar of 0.65); keeping them costs ~5 % of throughput (see the embedder model card).
    The GeM pooling's clamp and powers (``/Clip``, ``/Pow``, ``/Pow_1`` at the top of the graph,
    :class:`designsearch.training.embedder.model.EmbeddingNet`) and the learned whitening appended
    after the network (``/whitening/...`` nodes, :mod:`designsearch.training.embedder.whitening`)
    and the residual design adapter after it (``/adapter/...``, :mod:`designsearch.training.embedder.design_adapter`)
    stay float32 too.

    Args:
        model: ``onnx.ModelProto`` of the float embedder.
    """
    keep = {"/_conv_stem/Conv", "/_conv_head/Conv", "/ReduceMean", "/projection/Gemm", "/Clip", "/Pow", "/Pow_1"}
    return [n.name for n in model.graph.node if n.name in keep or n.name.startswith(("/whitening/", "/adapter/"))]


def quantize(src: str | Path, dst: str | Path, inputs: Iterator[np.ndarray], method: str = DEFAULT_METHOD,
             float_nodes: list[str] | None = None) -> str:
    """Static QDQ INT8 quantisation of ``src`` into ``dst``; returns ``dst``'s sha256 hex.

    Args:
        src: float32 ONNX model with one input.
        dst: output path.
        inputs: calibration batches for that input.
        method: ``MinMax``, ``Entropy`` or ``Percentile`` (onnxruntime ``CalibrationMethod``).
        float_nodes: names of nodes left in float32 (``nodes_to_exclude``).

    Raises:
        ValueError: unknown method.
    """
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in CalibrationMethod.__members__:
        raise ValueError(f"unknown calibration method {method!r}; expected one of {list(CalibrationMethod.__members__)}")
    name = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).get_inputs()[0].name

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(inputs)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {name: x}

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre))  # shape inference + graph optimisation, as onnxruntime advises
        quantize_static(str(pre), str(dst), _Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        calibrate_method=CalibrationMethod[method], nodes_to_exclude=list(float_nodes or []))
    return hashlib.sha256(Path(dst).read_bytes()).hexdigest()


def quantize_embedder(src: str | Path, dst: str | Path | None = None, seed: int = 0) -> Path:
    """INT8 of a float32 embedder file as served (:func:`embedder_calibration` at the file's input side,
    :func:`embedder_float_nodes` kept float32) to ``dst`` (default :func:`int8_path`); returns ``dst``.

    Raises:
        FileNotFoundError: ``src`` or the calibration data is missing.
    """
    dst = Path(dst) if dst else int8_path(src)
    graph = onnx.load(str(src))
    size = int(graph.graph.input[0].type.tensor_type.shape.dim[2].dim_value)
    quantize(src, dst, embedder_calibration(None, seed=seed, size=size), DEFAULT_METHOD, embedder_float_nodes(graph))
    return dst


def int8_path(src: str | Path) -> Path:
    """``<dir>/<stem>-int8.onnx`` of a float model path."""
    src = Path(src)
    return src.with_name(f"{src.stem}-int8.onnx")


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; see the module docstring."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", choices=["segmenter", "embedder"])
    p.add_argument("--src", default=None, help="float32 ONNX model (default: the served one)")
    p.add_argument("--dst", default=None, help="output (default: <src stem>-int8.onnx beside it)")
    p.add_argument("--data", default=None, help="shared data folder (default <repo>/../shared/data)")
    p.add_argument("--method", default=DEFAULT_METHOD, help="calibration: MinMax, Entropy or Percentile")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    src = Path(a.src or (SEGMENTER_MODEL if a.model == "segmenter" else EMBEDDER_MODEL))
    dst = Path(a.dst) if a.dst else int8_path(src)
    graph = onnx.load(str(src))
    size = int(graph.graph.input[0].type.tensor_type.shape.dim[2].dim_value)  # the model's input side
    if a.model == "segmenter":
        inputs = segmenter_calibration(size, a.data, seed=a.seed)
        float_nodes = segmenter_float_nodes(graph)
    else:
        inputs = embedder_calibration(a.data, seed=a.seed, size=size)
        float_nodes = embedder_float_nodes(graph)
    sha = quantize(src, dst, inputs, a.method, float_nodes)
    print(f"{dst}: {dst.stat().st_size / 1e6:.1f} MB, sha256:{sha[:16]} ({sha})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
