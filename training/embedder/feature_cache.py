"""The frozen-prefix feature cache of the embedder trainers, and the trainable head.

The backbone is cut at MBConv block ``cache_block``: :class:`Prefix` (pixel scaling, stem, blocks
``[0, cache_block)``) is exported to ONNX and run once over every augmented training view with
onnxruntime (about 8x faster than torch on CPU), its feature maps cached as float16 under ``runs/``
(:func:`cache_views`); :class:`Head` (the remaining blocks, head convolution, pooling, projection)
is what trains, on cached maps. :class:`CosineClassifier` is the normalised-softmax classifier
(Zhai & Wu, BMVC 2019).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn
from torch.nn import functional as F

from designsearch.training.embedder.model import EmbeddingNet
from designsearch.onnx import make_session

from . import data as D
from .augment import make_view, photo_augment



class Prefix(nn.Module):
    """Frozen part: pixel scaling + stem + MBConv blocks ``[0, stop)``. ``(N,3,S,S)`` → feature map."""

    def __init__(self, net: EmbeddingNet, stop: int) -> None:
        super().__init__()
        self.normalize = net.normalize
        bb = net.backbone
        self.stem = nn.Sequential(bb._conv_stem, bb._bn0)
        self.act = bb._swish
        self.blocks = nn.ModuleList(bb._blocks[:stop])

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = self.act(self.stem(self.normalize(pixels)))
        for block in self.blocks:
            x = block(x)
        return x


class Head(nn.Module):
    """Trainable part: MBConv blocks ``[start, 16)`` + head conv + pooling (the net's) + projection + L2 norm.

    Shares its modules with the :class:`EmbeddingNet` it was cut from, so training it trains the
    network that is exported.
    """

    def __init__(self, net: EmbeddingNet, start: int) -> None:
        super().__init__()
        bb = net.backbone
        self.blocks = nn.ModuleList(bb._blocks[start:])
        self.conv_head, self.bn1, self.act = bb._conv_head, bb._bn1, bb._swish
        self.projection = net.projection
        self.pool = net.pool

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = fmap
        for block in self.blocks:
            x = block(x)
        x = self.pool(self.act(self.bn1(self.conv_head(x))))
        return F.normalize(self.projection(x), dim=1)


class CosineClassifier(nn.Module):
    """``logits = (1/T) · cos(w_c, z)``: normalised softmax (Zhai & Wu, BMVC 2019)."""

    def __init__(self, dim: int, num_classes: int, temperature: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_classes, dim) / math.sqrt(dim))
        self.scale = 1.0 / temperature

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.scale * (z @ F.normalize(self.weight, dim=1).T)


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    """Learning-rate multiplier at ``step`` (0-based): linear warm-up over ``warmup`` steps
    (Goyal et al., "Accurate, Large Minibatch SGD", 2017), then cosine decay to 0 at ``total``
    (Loshchilov & Hutter, "SGDR", ICLR 2017). Shared by the embedder trainers.

    Returns:
        ``(step + 1) / warmup`` while ``step < warmup``, else ``0.5 (1 + cos(pi (step - warmup) / (total - warmup)))``.
    """
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _ort_session(path: Path, threads: int) -> ort.InferenceSession:
    return make_session(path, threads)


def _export_prefix(net: EmbeddingNet, stop: int, path: Path, size: int) -> None:
    prefix = Prefix(net, stop).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            prefix,
            (torch.full((2, 3, size, size), 128.0),),
            str(path),
            input_names=["pixels"],
            output_names=["fmap"],
            dynamic_axes={"pixels": {0: "batch"}, "fmap": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )


class PrefixCacheWriter:
    """Runs model-input views through the frozen prefix in batches and writes their feature maps, float16,
    row by row into ``out`` (``.npy``; written as ``<out>.tmp.npy`` and renamed on :meth:`close`).

    Args:
        session: onnxruntime session of the prefix (input ``pixels`` float32 (N, 3, S, S)).
        out: the cache file.
        n_views: rows the file will hold.
        batch: views per prefix run (a run starts once at least ``batch`` views are pending).
    """

    def __init__(self, session: ort.InferenceSession, out: Path, n_views: int, batch: int = 64) -> None:
        self.session, self.out, self.n_views, self.batch = session, out, n_views, batch
        self.tmp = out.with_suffix(".tmp.npy")
        self.result, self.pending, self.done = None, [], 0

    def add(self, views: list[np.ndarray]) -> None:
        """Queue ``views`` (float32 (3, S, S) each, as :func:`make_view` returns); run the prefix when a batch is full."""
        self.pending.extend(views)
        if len(self.pending) >= self.batch:
            self._flush()

    def _flush(self) -> None:
        fmap = self.session.run(None, {"pixels": np.stack(self.pending)})[0].astype(np.float16)
        if self.result is None:
            self.result = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=np.float16,
                                                    shape=(self.n_views, *fmap.shape[1:]))
        self.result[self.done : self.done + len(self.pending)] = fmap
        self.done += len(self.pending)
        self.pending = []

    def close(self) -> np.ndarray:
        """Run what is pending, rename the file into place and return it memory-mapped (read-only)."""
        if self.pending:
            self._flush()
        self.result.flush()
        self.result = None
        os.replace(self.tmp, self.out)
        return np.load(self.out, mmap_mode="r")


def cache_views(
    items: list[D.Item],
    kinds_per_item: list[str],
    augmented: bool,
    session: ort.InferenceSession,
    size: int,
    seed: int,
    out: Path,
    batch: int = 64,
    wheel_rotation: float = 45.0,
    log: str = "",
) -> np.ndarray:
    """Frozen-prefix feature maps of views of ``items``, cached as float16 ``.npy``.

    Views are made item by item, in order: for each item, one view per entry of
    ``kinds_per_item`` (``"photo"``/``"lines"``), augmented with a per-domain pipeline seeded
    from ``seed`` when ``augmented`` (wheel views rotated up to ±``wheel_rotation`` degrees). Row
    ``i * len(kinds_per_item) + j`` holds view ``j`` of item ``i``.

    Returns:
        float16 memory-mapped array ``(len(items) * len(kinds_per_item), C, s, s)``.
    """
    if out.is_file():
        arr = np.load(out, mmap_mode="r")
        if arr.shape[0] == len(items) * len(kinds_per_item):
            return arr
    augs = {d: photo_augment(d, seed + k, wheel_rotation) for k, d in enumerate((D.DOMAIN_CAR, D.DOMAIN_WHEEL))}
    start = time.time()
    n_views = len(items) * len(kinds_per_item)
    writer = PrefixCacheWriter(session, out, n_views, batch)
    for i, item in enumerate(items):
        rgb = D.load_rgb(item)
        writer.add([make_view(rgb, kind, size, augs[item.domain] if augmented else None) for kind in kinds_per_item])
        if (i + 1) % 1000 == 0:
            print(f"{log}: {i + 1}/{len(items)} items, {time.time() - start:.0f} s", flush=True)
    arr = writer.close()
    print(f"{log}: {n_views} views in {time.time() - start:.0f} s", flush=True)
    return arr
