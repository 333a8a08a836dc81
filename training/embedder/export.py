"""Export embedders to ONNX (needs torch): the ImageNet baseline, or trained weights with a chosen pooling.

``python -m designsearch.training.embedder.export [--out PATH]`` (or ``designsearch export-embedder``)
writes the ImageNet EfficientNet-Lite0 baseline (setup step).

``python -m designsearch.training.embedder.export --weights W.pt --gem-p 2 --out M.onnx`` re-exports
the weights a training run saved (``runs/embedder/wheelembed-lite0-512.pt``; 512-d projection) with
GeM pooling of exponent ``p`` instead of the average pooling it was trained with (see
:class:`designsearch.training.embedder.model.EmbeddingNet`); ``--gem-p 1`` reproduces the training
run's own ONNX file byte for byte.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from designsearch.services.embedder.config import IMAGENET_MODEL


def export_imagenet(out: Path = IMAGENET_MODEL, variant: str = "lite0") -> str:
    """Write the ImageNet-pretrained pooled-feature model (1280-d, unit norm) to ``out``.

    Returns:
        The model version id (``sha256:`` + 16 hex digits of the file).
    """
    from designsearch.training.embedder.model import INPUT_SIZE, EmbeddingNet, export_onnx

    return export_onnx(EmbeddingNet(variant, dim=None), out, INPUT_SIZE[variant])


def export_trained(weights: str | Path, out: str | Path, pooling_p: float = 1.0, variant: str = "lite0",
                   dim: int = 512) -> str:
    """Export trained ``EmbeddingNet`` weights (a ``state_dict`` file) with GeM exponent ``pooling_p``.

    Args:
        weights: ``.pt`` state dict saved by :mod:`designsearch.training.embedder.train`.
        out: ONNX file to write (input ``pixels`` float32 (N, 3, S, S), output ``embedding`` (N, dim)).
        pooling_p: GeM exponent (1 = average pooling, as trained).
        variant: EfficientNet-Lite variant of the weights.
        dim: projection size of the weights.

    Returns:
        The model version id of ``out``.

    Raises:
        FileNotFoundError: no ``weights`` file.
        RuntimeError: the weights do not fit ``variant`` / ``dim`` (from ``load_state_dict``).
        ValueError: ``pooling_p < 1``.
    """
    import torch

    from designsearch.training.embedder.model import INPUT_SIZE, EmbeddingNet, export_onnx

    weights = Path(weights)
    if not weights.is_file():
        raise FileNotFoundError(f"weights {weights} not found")
    net = EmbeddingNet(variant, dim=dim, pretrained=False, pooling_p=pooling_p)
    net.load_state_dict(torch.load(weights, map_location="cpu"))
    return export_onnx(net.eval(), out, INPUT_SIZE[variant])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=IMAGENET_MODEL)
    parser.add_argument("--weights", type=Path, default=None, help="trained state dict (default: the ImageNet baseline)")
    parser.add_argument("--gem-p", type=float, default=1.0, help="GeM pooling exponent for --weights (1 = average)")
    parser.add_argument("--variant", default="lite0")
    parser.add_argument("--dim", type=int, default=512)
    args = parser.parse_args()
    if args.weights is None:
        print(args.out, export_imagenet(args.out, args.variant))
    else:
        print(args.out, export_trained(args.weights, args.out, args.gem_p, args.variant, args.dim))
