"""Train the wheel embedder with normalised-softmax cross-entropy on car-model labels; export ONNX.

Method (Kang et al., IAAI 2023: a CNN trained with plain cross-entropy on the car-model label of
each wheel crop): the embedding ``z = normalize(W_p · GAP(backbone(x)))`` (512-d) feeds a cosine
classifier ``logits = s · cos(w_c, z)`` with L2-normalised class weights ``w_c`` and scale
``s = 1 / T`` (temperature ``T``), trained with (label-smoothed) cross-entropy. Normalised softmax
is the classification baseline that matches pairwise metric-learning losses for retrieval
(Zhai & Wu, "Classification is a Strong Baseline for Deep Metric Learning", BMVC 2019), and
cross-entropy bounds pairwise losses (Boudiaf et al., "A Unifying Mutual Information View of
Metric Learning: Cross-Entropy vs. Pairwise Losses", ECCV 2020). Wheel crops and whole cars get
their own class proxies (``78 + 78``); an edge-map view shares the proxy of its photo, which
pulls sketches onto photos of the same design (Kang et al. index Canny edge maps for sketches).
Class weights start from class means of the initial embeddings ("weight imprinting", Qi et al.,
"Low-Shot Learning with Imprinted Weights", CVPR 2018).

CPU budget: the backbone is frozen up to MBConv block ``cache_block`` (EfficientNet-Lite0 has 16
blocks); its output for ``views_photo + views_edge`` augmented views per training image is
computed once with onnxruntime (about 8x faster than torch on CPU) and cached as float16 under
``runs/``. Training then updates the last ``trainable_blocks`` MBConv blocks, the 1x1 head
convolution (+ its BN affine), the projection and the classifier; each epoch samples one cached
view per image. BatchNorm running statistics stay frozen (eval mode) so the exported network is
exactly the trained one.

Usage::

    flock /tmp/designsearch-cpu.lock .venv/bin/python -m designsearch.training.embedder.train \
        --data ../shared/data --crop-source segmenter --epochs 30 --seed 0
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn
from torch.nn import functional as F

from designsearch.settings import repo_relative
from designsearch.training.embedder.model import INPUT_SIZE, EmbeddingNet, export_onnx

from . import data as D
from .augment import VIEW_LINES, VIEW_PHOTO
from .feature_cache import CosineClassifier, Head, _export_prefix, _ort_session, cache_views, warmup_cosine

#: Default exported model: under ``runs/``, never the shipped file (``models/embedder/``), which only an
#: explicit ``--output`` replaces (issue 35: a README command used to overwrite it and its card).
DEFAULT_OUTPUT = D.DEFAULT_RUNS / "train" / "model.onnx"
NUM_BLOCKS = 16  # MBConv blocks in EfficientNet-Lite0


@dataclass
class TrainConfig:
    """Everything that determines a training run (recorded in the run summary and model card).

    Attributes:
        data: folder holding ``stanford-cars/``.
        crop_source: ``"segmenter"`` (learned wheel segmenter) or ``"quarters"`` (stand-in).
        variant: EfficientNet-Lite variant.
        dim: embedding size.
        seed: seed of every random generator (views, init, sampling).
        epochs: passes over the training images (one cached view per image per epoch).
        batch_size: images per step.
        lr: AdamW learning rate of the head (projection, classifier).
        backbone_lr: AdamW learning rate of the fine-tuned MBConv blocks and head convolution.
        weight_decay: AdamW weight decay.
        temperature: ``T`` of the cosine classifier (logit scale ``1 / T``).
        label_smoothing: cross-entropy label smoothing.
        cache_block: frozen prefix = stem + blocks ``[0, cache_block)``, whose output is cached;
            must be ``<= NUM_BLOCKS - trainable_blocks`` (blocks between the two run frozen at
            every step).
        trainable_blocks: last MBConv blocks fine-tuned (0 = head convolution + projection only).
        views_photo: augmented photo views cached per training image.
        views_edge: augmented edge-map views cached per training image.
        wheel_rotation: largest rotation of a wheel crop's photo/edge views, degrees (180 = any).
        pooling_p: global pooling of the network, trained and exported: 1 = average, > 1 = GeM
            with that exponent (:class:`designsearch.training.embedder.model.EmbeddingNet`).
        max_per_image: wheel crops kept per car photo.
        train_max_class: last training class id.
        limit: use only the first ``limit`` images per split (smoke tests); 0 = all.
        threads: torch / onnxruntime intra-op threads.
        output: exported ONNX path.
        runs: folder for caches, checkpoints and logs.
    """

    data: str = str(D.DEFAULT_DATA)
    crop_source: str = "segmenter"
    variant: str = "lite0"
    dim: int = 512
    seed: int = 0
    epochs: int = 30
    batch_size: int = 128
    lr: float = 3e-3
    backbone_lr: float = 3e-4
    weight_decay: float = 1e-4
    temperature: float = 0.05
    label_smoothing: float = 0.1
    cache_block: int = 14
    trainable_blocks: int = 2
    views_photo: int = 4
    views_edge: int = 2
    wheel_rotation: float = 45.0
    pooling_p: float = 1.0
    max_per_image: int = 2
    train_max_class: int = D.TRAIN_MAX_CLASS
    limit: int = 0
    threads: int = 2
    output: str = str(DEFAULT_OUTPUT)
    runs: str = str(D.DEFAULT_RUNS)
    segmenter: str = str(D.DEFAULT_SEGMENTER)
    extra: dict = field(default_factory=dict)


def build_items(cfg: TrainConfig) -> tuple[list[D.Item], list[D.Item], dict]:
    """Training and validation items (whole cars + wheel crops), and the crop cache meta."""
    rows = D.load_rows(cfg.data)
    train_rows, val_rows = D.split_rows(rows, cfg.train_max_class)
    if cfg.limit:
        train_rows, val_rows = train_rows[: cfg.limit], val_rows[: cfg.limit]
    crop_dir = D.extract_wheel_crops(
        cfg.data, Path(cfg.runs) / "crops", cfg.crop_source, cfg.segmenter, max_per_image=cfg.max_per_image
    )
    meta = D.crop_meta(crop_dir)
    keep_train = {r["image_id"] for r in train_rows}
    keep_val = {r["image_id"] for r in val_rows}
    wheels = D.wheel_items(crop_dir)
    train = D.car_items(train_rows) + [w for w in wheels if w.image_id in keep_train]
    val = D.car_items(val_rows) + [w for w in wheels if w.image_id in keep_val]
    meta["crop_dir"] = str(crop_dir)
    return train, val, meta


def _labels(items: list[D.Item], train_max_class: int) -> np.ndarray:
    """Classifier target: ``class_id - 1`` for cars, ``+ train_max_class`` for wheel crops."""
    return np.array(
        [it.class_id - 1 + (train_max_class if it.domain == D.DOMAIN_WHEEL else 0) for it in items], dtype=np.int64
    )


@torch.no_grad()
def _embed_cached(embed, fmaps: np.ndarray, rows: np.ndarray, batch: int = 256) -> np.ndarray:
    out = [embed(torch.from_numpy(np.asarray(fmaps[rows[i : i + batch]], dtype=np.float32))) for i in range(0, len(rows), batch)]
    return torch.cat(out).numpy()


def validation_metrics(embed, val_items: list[D.Item], val_fmaps: np.ndarray) -> dict[str, float]:
    """R@1 of wheel crops / whole cars and edge→photo R@5 from the cached validation views.

    ``embed`` maps a float32 cached feature-map batch to unit embeddings (eval mode). ``val_fmaps`` rows are ``[photo, lines]`` per item (clean, unaugmented). Same-photo pairs are
    excluded (``groups`` = source photo).
    """
    from designsearch.training.metrics import recall_at_k

    n = len(val_items)
    photo = _embed_cached(embed, val_fmaps, np.arange(n) * 2)
    edge = _embed_cached(embed, val_fmaps, np.arange(n) * 2 + 1)
    labels = np.array([it.class_id for it in val_items])
    groups = np.array([it.image_id for it in val_items])
    result = {}
    for domain in (D.DOMAIN_WHEEL, D.DOMAIN_CAR):
        m = np.array([it.domain == domain for it in val_items])
        if m.sum() < 2:
            continue
        result[f"{domain}_R@1"] = recall_at_k(photo[m], labels[m], (1,), groups=groups[m])[1]
        result[f"{domain}_edge_R@5"] = recall_at_k(
            edge[m], labels[m], (5,), gallery=photo[m], gallery_labels=labels[m], groups=groups[m], gallery_groups=groups[m]
        )[5]
    return result


def train(cfg: TrainConfig) -> dict:
    """Run one training: crops → cached views → fine-tuning → ONNX export.

    Args:
        cfg: the run configuration.

    Returns:
        A JSON-able summary: config, split sizes, per-epoch log, timings, model path/version,
        export check. Also written to ``<runs>/train_summary.json``; the torch weights go to
        ``<runs>/wheelembed-<variant>-<dim>.pt``.

    Raises:
        ValueError: inconsistent ``cache_block`` / ``trainable_blocks``.
    """
    if not 0 <= cfg.trainable_blocks <= NUM_BLOCKS or not 1 <= cfg.cache_block <= NUM_BLOCKS - cfg.trainable_blocks:
        raise ValueError(
            f"need 0 <= trainable_blocks <= {NUM_BLOCKS} and 1 <= cache_block <= {NUM_BLOCKS} - trainable_blocks; "
            f"got cache_block {cfg.cache_block}, trainable_blocks {cfg.trainable_blocks}"
        )
    t_start = time.time()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    runs = Path(cfg.runs)
    runs.mkdir(parents=True, exist_ok=True)
    size = INPUT_SIZE[cfg.variant]

    train_items, val_items, crop_meta = build_items(cfg)
    print(f"items: train {len(train_items)} val {len(val_items)} (crops: {crop_meta})", flush=True)

    net = EmbeddingNet(cfg.variant, dim=cfg.dim, pooling_p=cfg.pooling_p)
    net.eval()
    # Cache key: everything that changes the cached views.
    key_src = json.dumps(
        [cfg.variant, cfg.cache_block, cfg.seed, cfg.views_photo, cfg.views_edge, cfg.limit, cfg.train_max_class,
         crop_meta["params"], len(train_items), len(val_items), cfg.wheel_rotation],
        sort_keys=True,
    )
    cache_dir = runs / "cache" / hashlib.sha256(key_src.encode()).hexdigest()[:12]
    cache_dir.mkdir(parents=True, exist_ok=True)
    (cache_dir / "key.json").write_text(key_src)
    prefix_path = cache_dir / "prefix.onnx"
    if not prefix_path.is_file():
        _export_prefix(net, cfg.cache_block, prefix_path, size)
    session = _ort_session(prefix_path, cfg.threads)
    t_cache = time.time()
    train_kinds = [VIEW_PHOTO] * cfg.views_photo + [VIEW_LINES] * cfg.views_edge
    train_fmaps = cache_views(train_items, train_kinds, True, session, size, cfg.seed, cache_dir / "train.npy", log="cache train",
                               wheel_rotation=cfg.wheel_rotation)
    val_fmaps = cache_views(val_items, [VIEW_PHOTO, VIEW_LINES], False, session, size, cfg.seed, cache_dir / "val.npy", log="cache val")
    cache_seconds = time.time() - t_cache
    timing = cache_dir / "timing.json"  # first (uncached) run's time, kept when the cache is reused
    if timing.is_file() and cache_seconds < 60:
        cache_seconds = json.loads(timing.read_text())["seconds"]
    else:
        timing.write_text(json.dumps({"seconds": round(cache_seconds, 1)}))
    if cfg.extra.get("cache_only"):
        return {"cache_dir": str(cache_dir), "cache_seconds": round(cache_seconds, 1)}
    # Load the training cache into RAM (float16) for fast random access.
    train_fmaps = np.ascontiguousarray(train_fmaps)

    head = Head(net, NUM_BLOCKS - cfg.trainable_blocks)
    frozen_mid = nn.ModuleList(net.backbone._blocks[cfg.cache_block : NUM_BLOCKS - cfg.trainable_blocks]).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    backbone_params = [p for b in head.blocks for p in b.parameters()] + list(head.conv_head.parameters()) + list(head.bn1.parameters())
    for p in backbone_params + list(head.projection.parameters()):
        p.requires_grad_(True)
    torch.manual_seed(cfg.seed)
    nn.init.xavier_uniform_(head.projection.weight)
    nn.init.zeros_(head.projection.bias)

    def run_head(fm: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            for block in frozen_mid:
                fm = block(fm)
        return head(fm)

    labels = _labels(train_items, cfg.train_max_class)
    num_classes = 2 * cfg.train_max_class
    classifier = CosineClassifier(cfg.dim, num_classes, cfg.temperature)
    # Imprint class weights: mean embedding of the first photo view of each class's images.
    with torch.no_grad():
        v = len(train_kinds)
        emb = torch.cat([
            run_head(torch.from_numpy(train_fmaps[np.arange(i, min(i + 256, len(train_items))) * v].astype(np.float32)))
            for i in range(0, len(train_items), 256)
        ])
        for c in np.unique(labels):
            classifier.weight[c] = F.normalize(emb[torch.from_numpy(labels == c)].mean(0), dim=0)

    opt = torch.optim.AdamW(
        [
            {"params": backbone_params, "lr": cfg.backbone_lr},
            {"params": list(head.projection.parameters()) + list(classifier.parameters()), "lr": cfg.lr},
        ],
        weight_decay=cfg.weight_decay,
    )
    steps_per_epoch = math.ceil(len(train_items) / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    warmup = steps_per_epoch
    base_lrs = [g["lr"] for g in opt.param_groups]
    labels_t = torch.from_numpy(labels)
    log, step = [], 0
    t_train = time.time()
    for epoch in range(cfg.epochs):
        head.eval()  # BN statistics frozen; MBConv drop-connect off (it only acts in train mode)
        order = rng.permutation(len(train_items))
        view_idx = rng.integers(0, len(train_kinds), size=len(train_items))
        loss_sum, correct = 0.0, 0
        t_epoch = time.time()
        for b in range(steps_per_epoch):
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            rows = idx * len(train_kinds) + view_idx[idx]
            fm = torch.from_numpy(train_fmaps[rows].astype(np.float32))
            for g, base in zip(opt.param_groups, base_lrs):
                g["lr"] = base * warmup_cosine(step, warmup, total_steps)
            logits = classifier(run_head(fm))
            target = labels_t[idx]
            loss = F.cross_entropy(logits, target, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            loss_sum += float(loss) * len(idx)
            correct += int((logits.argmax(1) == target).sum())
        entry = {
            "epoch": epoch + 1,
            "loss": round(loss_sum / len(train_items), 4),
            "train_acc": round(correct / len(train_items), 4),
            "seconds": round(time.time() - t_epoch, 1),
        }
        entry.update({k: round(v, 4) for k, v in validation_metrics(run_head, val_items, val_fmaps).items()})
        log.append(entry)
        print(json.dumps(entry), flush=True)
    train_seconds = time.time() - t_train

    # Export the full network (prefix + frozen middle + trained head share modules with `net`).
    net.eval()
    weights_path = runs / f"wheelembed-{cfg.variant}-{cfg.dim}.pt"
    torch.save(net.state_dict(), weights_path)
    version = export_onnx(net, cfg.output, size)
    check = export_check(net, cfg.output, val_items[:16], size)
    summary = {
        "config": asdict(cfg),
        "command": "python -m designsearch.training.embedder.train " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "split": {
            "train_classes": f"1-{cfg.train_max_class}",
            "val_classes": f"{cfg.train_max_class + 1}-98",
            "train_items": _counts(train_items),
            "val_items": _counts(val_items),
        },
        "crops": crop_meta,
        "epochs": log,
        "seconds": {"total": round(time.time() - t_start, 1), "cache": round(cache_seconds, 1), "train": round(train_seconds, 1)},
        "model": {"path": repo_relative(cfg.output),
                  "version": version, "sha256": hashlib.sha256(Path(cfg.output).read_bytes()).hexdigest(),
                  "bytes": Path(cfg.output).stat().st_size, "torch_weights": str(weights_path)},
        "export_check": check,
        "hardware": _hardware(cfg.threads),
    }
    (runs / "train_summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: summary[k] for k in ("seconds", "model", "export_check")}, indent=2), flush=True)
    return summary


def _counts(items: list[D.Item]) -> dict[str, int]:
    out: dict[str, int] = {}
    for it in items:
        out[it.domain] = out.get(it.domain, 0) + 1
    out["images"] = len({it.image_id for it in items})
    return out


def _hardware(threads: int) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": threads, "gpu": None,
            "torch": torch.__version__, "onnxruntime": ort.__version__}


@torch.no_grad()
def export_check(net: EmbeddingNet, onnx_path: str | Path, items: list[D.Item], size: int) -> dict:
    """Max abs difference between torch and onnxruntime embeddings of ``items`` (photo views)."""
    from designsearch.images import to_model_input

    x = to_model_input([D.load_rgb(it) for it in items], size)
    ref = net.eval()(torch.from_numpy(x)).numpy()
    got = _ort_session(Path(onnx_path), 2).run(None, {"pixels": x})[0]
    return {"images": len(items), "max_abs_diff": float(np.abs(ref - got).max()),
            "norm_min": float(np.linalg.norm(got, axis=1).min()), "norm_max": float(np.linalg.norm(got, axis=1).max())}


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """Command-line flags → :class:`TrainConfig` (one flag per field, same names with dashes)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    defaults = TrainConfig()
    for name, value in asdict(defaults).items():
        if name == "extra":
            continue
        p.add_argument("--" + name.replace("_", "-"), type=type(value), default=value)
    p.add_argument("--no-eval", action="store_true", help="skip the evaluation and model card after training")
    p.add_argument("--cache-only", action="store_true", help="stop after cutting crops and caching views")
    args = p.parse_args(argv)
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in asdict(defaults)})
    cfg.extra = {"no_eval": args.no_eval, "cache_only": args.cache_only}
    return cfg


def main(argv: list[str] | None = None) -> dict:
    """CLI: train, export, then (unless ``--no-eval``) evaluate and write the model card.

    ``--objective contrastive`` runs the full-network, design-level trainer of
    :mod:`.train_contrastive` instead (issue 9); ``--objective ce`` (default) this module's.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if "--objective" in args:
        k = args.index("--objective")
        objective = args[k + 1] if k + 1 < len(args) else ""
        del args[k : k + 2]
        if objective == "contrastive":
            from . import train_contrastive

            return train_contrastive.main(args)
        if objective != "ce":
            raise SystemExit(f"unknown --objective {objective!r}; expected 'ce' or 'contrastive'")
    cfg = parse_args(args)
    summary = train(cfg)
    if not cfg.extra.get("no_eval") and not cfg.extra.get("cache_only"):
        from . import card, evaluate

        results = evaluate.evaluate(
            data=cfg.data, model_path=cfg.output, crop_dir=summary["crops"]["crop_dir"], threads=cfg.threads,
            train_max_class=cfg.train_max_class, limit=cfg.limit,
        )
        evaluate.write_results(results)
        card.write_model_card(summary, results, Path(cfg.output).with_name("MODEL_CARD.md"))
    return summary


if __name__ == "__main__":
    main()
