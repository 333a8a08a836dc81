"""Export the ImageNet EfficientNet-Lite0 baseline embedder to ONNX (setup step; needs torch).

``python -m designsearch.training.embedder.export [--out PATH]`` or ``designsearch export-embedder``.
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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=IMAGENET_MODEL)
    args = parser.parse_args()
    print(args.out, export_imagenet(args.out))
