"""Recover trainable ``EmbeddingNet`` weights from an exported embedder ONNX file (issue 9).

Every session starts on a fresh machine without ``runs/``: the PyTorch weights of the served network (the
teacher and starting point of every later experiment) are gone, and re-training them costs an hour of CPU.
The committed float32 ONNX file holds the same network with each BatchNorm folded into the convolution
before it (``W' = W·γ/√(σ²+ε)``, ``b' = β − μ·γ/√(σ²+ε)``; the exporter's Conv+BN fusion in eval mode),
followed by the projection and, in the served file, GeM pooling and the learned whitening. The fusion
cannot be undone (γ and W are only known as a product), so the import keeps the fused form: each
convolution gets ``W'`` and its BatchNorm becomes the identity plus the fused bias (γ = 1, β = ``b'``,
μ = 0, σ² = 1 − ε). In eval mode — the only mode the trainers use, BatchNorm statistics frozen — the
network computes exactly what the ONNX file computes before its whitening; only the parametrisation a
later optimiser sees differs (γ starts at 1 instead of its trained value).

    python -m designsearch.training.embedder.import_onnx --model models/embedder/wheelembed-lite0-512.onnx \\
        --out runs/embedder/served/weights.pt

checks the imported network against the file on real validation pictures and prints the largest
difference of the normalised pre-whitening embeddings.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def _stored_tensors(model) -> dict[str, np.ndarray]:
    """Every tensor stored in an ONNX graph (initializers and ``Constant`` node outputs), by name."""
    from onnx import numpy_helper

    out = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    out.update({n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in model.graph.node
                if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"})
    return out


def _conv_params(model, tensors: dict[str, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """(weight, bias) of every Conv node of an ONNX graph, in graph order, from its stored ``tensors``.

    Raises:
        ValueError: a Conv weight or bias is not a stored tensor (e.g. DequantizeLinear output of an INT8 file).
    """

    def value(name: str) -> np.ndarray:
        if name not in tensors:
            raise ValueError(f"Conv input {name!r} is computed, not stored (a quantised file?)")
        return tensors[name]

    return [(value(n.input[1]), value(n.input[2]) if len(n.input) > 2 else None)
            for n in model.graph.node if n.op_type == "Conv"]


def import_state_dict(onnx_path: str | Path, variant: str = "lite0", dim: int = 512) -> dict:
    """Build an ``EmbeddingNet`` state dict from an exported float32 embedder ONNX file.

    Args:
        onnx_path: ONNX file written by :func:`designsearch.training.embedder.model.export_onnx` from an
            ``EmbeddingNet(variant, dim)`` (pooling and whitening after it are ignored).
        variant: EfficientNet-Lite variant of the file.
        dim: projection size of the file.

    Returns:
        A state dict for ``EmbeddingNet(variant, dim=dim, pretrained=False)``: fused convolution weights,
        BatchNorm layers set to identity + fused bias, the projection copied.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file's convolutions or projection do not fit ``variant`` / ``dim`` (e.g. an INT8
            file, whose weights are quantised).
    """
    import onnx
    import torch
    from torch import nn

    from .model import EmbeddingNet

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"model {onnx_path} not found")
    model = onnx.load(str(onnx_path))
    tensors = _stored_tensors(model)
    convs = _conv_params(model, tensors)
    net = EmbeddingNet(variant, dim=dim, pretrained=False)
    modules = [m for m in net.backbone.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    pairs = list(zip(modules[0::2], modules[1::2]))
    if len(pairs) != len(convs) or not all(isinstance(c, nn.Conv2d) and isinstance(b, nn.BatchNorm2d)
                                           for c, b in pairs):
        raise ValueError(f"{onnx_path}: {len(convs)} Conv nodes, the {variant} network has {len(pairs)} conv+BN pairs")
    with torch.no_grad():
        for (conv, bn), (weight, bias) in zip(pairs, convs):
            if tuple(conv.weight.shape) != weight.shape or weight.dtype != np.float32 or bias is None:
                raise ValueError(f"{onnx_path}: Conv weight {weight.shape} {weight.dtype} does not fit {tuple(conv.weight.shape)}")
            conv.weight.copy_(torch.from_numpy(weight.copy()))
            bn.weight.fill_(1.0)
            bn.bias.copy_(torch.from_numpy(bias.copy()))
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
        for name in ("weight", "bias"):
            key = f"projection.{name}"
            if key not in tensors or tuple(getattr(net.projection, name).shape) != tensors[key].shape:
                raise ValueError(f"{onnx_path}: no {key} of shape {tuple(getattr(net.projection, name).shape)}")
            getattr(net.projection, name).copy_(torch.from_numpy(tensors[key].copy()))
    return net.state_dict()


def pre_whitening_output(onnx_path: str | Path, pixels: np.ndarray) -> np.ndarray:
    """Run an embedder ONNX file up to its projection and L2-normalise: float32 ``(N, dim)``.

    Args:
        onnx_path: the embedder file (its last ``Gemm`` node is the projection).
        pixels: float32 ``(N, 3, S, S)`` RGB in [0, 255].

    Raises:
        ValueError: the graph has no ``Gemm`` node.
    """
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(onnx_path))
    gemms = [n for n in model.graph.node if n.op_type == "Gemm"]
    if not gemms:
        raise ValueError(f"{onnx_path}: no Gemm (projection) node")
    name = gemms[-1].output[0]
    model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out = sess.run([name], {sess.get_inputs()[0].name: pixels})[0]
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def main(argv: list[str] | None = None) -> dict:
    """CLI: import, check on real validation cars, save the state dict. Returns the check's figures.

    Raises:
        RuntimeError: the imported network differs from the file by more than 1e-4 (e.g. a wrong ``--gem-p``);
            nothing is saved then.
    """
    import torch

    from designsearch.images import to_model_input

    from . import data as D
    from .model import INPUT_SIZE, EmbeddingNet

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/embedder/wheelembed-lite0-512.onnx"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--gem-p", type=float, default=2.0, help="GeM exponent of --model (2 as served)")
    parser.add_argument("--variant", default="lite0")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--data", default=str(D.DEFAULT_DATA))
    args = parser.parse_args(argv)
    state = import_state_dict(args.model, args.variant, args.dim)
    net = EmbeddingNet(args.variant, dim=args.dim, pretrained=False, pooling_p=args.gem_p)
    net.load_state_dict(state)
    size = INPUT_SIZE[args.variant]
    items = D.car_items(D.split_rows(D.load_rows(args.data))[1])[::50][:16]  # validation cars, classes 79-98
    pixels = to_model_input([D.load_rgb(it) for it in items], size)
    with torch.no_grad():
        ours = net.eval()(torch.from_numpy(pixels)).numpy()
    ref = pre_whitening_output(args.model, pixels)
    err = float(np.abs(ours - ref).max())
    if err > 1e-4:
        raise RuntimeError(f"imported network differs from {args.model} by {err:.2e} (is --gem-p {args.gem_p} right?)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, args.out)
    result = {"model": str(args.model), "out": str(args.out), "pictures": len(items), "max_abs_diff": err}
    print(result)
    return result


if __name__ == "__main__":
    main()
