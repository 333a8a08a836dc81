"""Rotation distillation: teach a trained embedder to give a rotated wheel the vector of the upright one.

Method: self-distillation under augmentation, a teacher-student feature-matching objective
(Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", 2015, applied to the
embedding itself as in Park et al., "Relational Knowledge Distillation", CVPR 2019, §3 "individual
KD"; the augmented-student / clean-teacher pairing of Caron et al., "Emerging Properties in
Self-Supervised Vision Transformers" (DINO), ICCV 2021). The teacher is a trained
:class:`~designsearch.training.embedder.model.EmbeddingNet` (its weights frozen); the student starts
as a copy of it. For every training picture the target is the teacher's unit embedding ``t(x)`` of
the CLEAN picture (upright wheel crop, whole car, photo view); the student sees an augmented view
``a(x)`` — wheel crops rotated by ANY angle (``wheel_rotation`` 180), plus flip, scale, shift,
colour, greyscale and blur; whole cars ±8°; line-drawing views of both (Canny,
:func:`designsearch.images.edge_map`) — and is trained to minimise

    L = mean_i (1 - cos(s(a(x_i)), t(x_i)))

so a rotated wheel (and its line drawing) lands where the teacher puts the upright photo, while
the teacher's geometry of designs and car models — what its car-model cross-entropy learned — is
the target everywhere (no labels are used).

Orbit targets (``target_rotations`` K > 1, ninth session): a wheel crop's target is instead the
teacher's embedding averaged over its rotation orbit,

    t_K(x) = normalise( sum_{k<K} t(R_{360 k / K} x) )

(R_a: rotation about the centre, border replicated, as the evaluation rotates its queries) — the
group-averaging construction of an invariant from a non-invariant map (Reynolds operator; as in
test-time rotation pooling, here moved into training so one forward pass serves). The upright target
holds where the wheel's valve or logo happened to point in its photo, which no rotated view can
predict; t_K is the same for every rotation of the wheel (exactly for multiples of 360/K), so the
student is asked for something a single forward pass can give. Whole cars keep the upright target.

With ``ce_weight`` λ > 0 the car-model cross-entropy of the teacher's own training
(:mod:`.train`: normalised softmax, Zhai & Wu, BMVC 2019; one class per car model and domain) is
added, ``L + λ · CE``, its class weights imprinted from the class means of the targets, so that the
class geometry the distillation alone lets drift is held by labels.

Issue 9 asks for partner retrieval and rotated-query retrieval within 2 points; cross-entropy with
rotations 0-360° (``ce-rot180``), test-time rotation pooling and rotation canonicalisation each bought
rotation robustness at the price of the class rows (models/embedder/MODEL_CARD.md).

CPU budget as :mod:`.train`: the frozen prefix (stem + blocks ``[0, cache_block)``, identical in
teacher and student, never trained) is run once with onnxruntime over every view and cached as
float16; the last ``trainable_blocks`` blocks, head convolution and projection of the student
train on the cache. BatchNorm running statistics frozen. The student trains and is exported with
the teacher's GeM exponent (``pooling_p``); learned whitening is fitted on it afterwards
(:mod:`.whitening`).

Usage::

    python -m designsearch.training.embedder.train_distill --teacher runs/embedder/ce-b12/weights.pt \\
        --segmenter runs/seg-v4/wheelseg-lite0.onnx --seed 1 --epochs 6 --output runs/embedder/rotd/model.onnx

``--designer-views K`` (tenth session) adds, per training wheel crop, K pictures in the styles designers send
(:mod:`.designer_views`: a close-up, a rendering on white and a line drawing of the crop's wheel, cut out of its
photo) that share the crop's target, so the student learns to map those pictures where the teacher maps the
photo's wheel.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from designsearch.settings import repo_relative
from designsearch.training.embedder.model import INPUT_SIZE, EmbeddingNet, export_onnx

from . import data as D
from .augment import VIEW_LINES, VIEW_PHOTO, make_view, rotate_about_centre
from .feature_cache import CosineClassifier, Head, _export_prefix, _ort_session, cache_views, warmup_cosine
from .train import NUM_BLOCKS, TrainConfig, _counts, _labels, _hardware, build_items, export_check, validation_metrics


@dataclass
class DistillConfig:
    """A rotation-distillation run (recorded in the run summary).

    Attributes:
        teacher: state dict of the trained teacher (``EmbeddingNet(variant, dim)``), e.g. the
            ``weights.pt`` of the shipped ``ce-b12`` run.
        pooling_p: GeM exponent of teacher and student (2 = the served model's).
        data, segmenter, crop_source, max_per_image, train_max_class, limit: as
            :class:`designsearch.training.embedder.train.TrainConfig` (same crops, same split:
            classes 1-78 train, 79-98 never seen).
        seed: seed of views, sampling.
        epochs: passes over the training pictures (one cached view per picture per epoch).
        batch_size: pictures per step.
        lr: AdamW learning rate of the projection.
        backbone_lr: AdamW learning rate of the trained MBConv blocks and head convolution.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps, then cosine decay to 0.
        cache_block: frozen prefix = stem + blocks ``[0, cache_block)`` (cached).
        trainable_blocks: last MBConv blocks trained.
        views_photo, views_edge: augmented photo / line-drawing views cached per picture.
        wheel_rotation: largest rotation of a wheel view, degrees (180 = any angle).
        target_rotations: K; 1 = the teacher's embedding of the upright clean picture is every
            view's target; K > 1 = a wheel crop's target is the normalised mean of the teacher's
            embeddings of the clean crop rotated by ``360 k / K`` degrees, k < K (orbit target;
            computed with the teacher exported to ONNX, kept in ``<output dir>/orbit_targets_K_<teacher sha256[:12]>.npy``).
        ce_weight: λ of the added car-model cross-entropy (0 = distillation only).
        designer_views: K designer-style pictures (close-up, rendering on white, line drawing) of each
            wheel crop, made with ``designer_segmenter`` (:mod:`.designer_views`), cached beside the other
            views and drawn as a wheel's view with probability K / (views + K); they share the crop's target.
            0 = none (the runs before the tenth session).
        designer_segmenter: segmenter ONNX that cuts the wheel out of a crop for those pictures (served INT8).
        temperature, label_smoothing: of that cross-entropy (as :class:`.train.TrainConfig`).
        threads: torch / onnxruntime intra-op threads.
        output: exported ONNX path; ``<output dir>/weights.pt`` gets the student's state dict.
        runs: folder of crops and caches (shared with :mod:`.train`).
    """

    teacher: str = "runs/embedder/ce-b12/weights.pt"
    pooling_p: float = 2.0
    data: str = str(D.DEFAULT_DATA)
    segmenter: str = str(D.DEFAULT_SEGMENTER)
    crop_source: str = "segmenter"
    max_per_image: int = 2
    train_max_class: int = D.TRAIN_MAX_CLASS
    limit: int = 0
    variant: str = "lite0"
    dim: int = 512
    seed: int = 1
    epochs: int = 6
    batch_size: int = 64
    lr: float = 2e-4
    backbone_lr: float = 2e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    cache_block: int = 4
    trainable_blocks: int = 12
    views_photo: int = 6
    views_edge: int = 2
    wheel_rotation: float = 180.0
    target_rotations: int = 1
    ce_weight: float = 0.0
    designer_views: int = 0
    designer_segmenter: str = "models/segmenter/wheelseg-lite0-int8.onnx"
    temperature: float = 0.05
    label_smoothing: float = 0.1
    threads: int = 2
    output: str = "runs/embedder/rotd/model.onnx"
    runs: str = str(D.DEFAULT_RUNS)


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``L = mean_i (1 - cos(s_i, t_i))`` and the per-row cosines.

    Args:
        student: float32 ``(N, D)`` embeddings of the augmented views (any norm; normalised here).
        teacher: float32 ``(N, D)`` targets, the teacher's embeddings of the clean pictures.

    Returns:
        ``(loss, cos)``: scalar tensor in [0, 2] (0 = every view on its target), ``cos`` ``(N,)``.

    Raises:
        ValueError: shapes differ or are not 2-d.
    """
    if student.ndim != 2 or student.shape != teacher.shape:
        raise ValueError(f"need two (N, D) tensors of one shape; got {tuple(student.shape)} and {tuple(teacher.shape)}")
    cos = (F.normalize(student, dim=1) * F.normalize(teacher, dim=1)).sum(1)
    return (1.0 - cos).mean(), cos


def orbit_targets(teacher: nn.Module, items: list, upright: torch.Tensor, rotations: int, size: int, threads: int,
                  path: Path, batch: int = 64) -> tuple[torch.Tensor, dict]:
    """Rotation-orbit targets of the wheel crops: ``normalise(sum_k t(R_{360 k / K} x))``.

    Args:
        teacher: the frozen teacher (exported to ONNX next to ``path`` and run with onnxruntime).
        items: the training items, in target-row order.
        upright: float32 ``(N, D)`` upright targets (rows of non-wheel items are kept).
        rotations: K >= 2.
        size: model input side, pixels.
        threads: onnxruntime intra-op threads.
        path: ``.npy`` cache of the per-wheel sums of the K embeddings, float32 ``(wheels, D)`` (reused when
            its shape matches; the file name carries the teacher's hash).

    Returns:
        ``(targets, stats)``: float32 ``(N, D)`` unit rows; ``stats`` with the mean norm of the orbit
        mean before normalisation (1 = the teacher is already invariant) and its cosine to the upright target.

    Raises:
        ValueError: ``rotations < 2``.
    """
    if rotations < 2:
        raise ValueError(f"orbit targets need K >= 2 rotations; got {rotations}")
    wheel_rows = np.array([i for i, it in enumerate(items) if it.domain == D.DOMAIN_WHEEL])
    sums = np.load(path) if path.is_file() else None  # (wheels, D): sum of the K rotated embeddings
    if sums is None or sums.shape != (len(wheel_rows), upright.shape[1]):
        onnx_path = path.with_name("teacher.onnx")
        export_onnx(teacher, onnx_path, size)
        sess = _ort_session(onnx_path, threads)
        sums = np.zeros((len(wheel_rows), upright.shape[1]), np.float32)
        t0, pending, owners = time.time(), [], []

        def flush() -> None:
            emb = sess.run(None, {"pixels": np.stack(pending)})[0]
            np.add.at(sums, np.array(owners), emb)
            pending.clear()
            owners.clear()

        for j, row in enumerate(wheel_rows):
            rgb = D.load_rgb(items[row])
            for k in range(rotations):
                view = rotate_about_centre(rgb, 360.0 * k / rotations) if k else rgb
                pending.append(make_view(view, VIEW_PHOTO, size))
                owners.append(j)
            if len(pending) >= batch:
                flush()
            if (j + 1) % 1000 == 0:
                print(f"orbit targets: {j + 1}/{len(wheel_rows)} wheels, {time.time() - t0:.0f} s", flush=True)
        if pending:
            flush()
        np.save(path, sums)
    norms = np.linalg.norm(sums, axis=1) / rotations  # of the mean of K unit vectors
    orbit = F.normalize(torch.from_numpy(sums), dim=1)
    targets = upright.clone()
    rows_t = torch.from_numpy(wheel_rows)
    cos_upright = (orbit * upright[rows_t]).sum(1)
    targets[rows_t] = orbit
    stats = {"rotations": rotations, "wheels": int(len(wheel_rows)), "mean_norm": round(float(norms.mean()), 4),
             "cos_to_upright_mean": round(float(cos_upright.mean()), 4), "file": repo_relative(path)}
    print(f"orbit targets: {json.dumps(stats)}", flush=True)
    return targets, stats


def _fetch(fmaps: np.ndarray, designer: np.ndarray | None, wheel_pos: np.ndarray | None, idx: np.ndarray,
           views: np.ndarray, n_kinds: int, per_item: int) -> np.ndarray:
    """float32 feature maps of the chosen view of each item of ``idx``: view ``v < n_kinds`` from the regular
    cache (row ``i * n_kinds + v``), else designer picture ``v - n_kinds`` (row ``wheel_pos[i] * per_item + v - n_kinds``)."""
    regular = views < n_kinds
    if designer is None or regular.all():
        return fmaps[idx * n_kinds + views].astype(np.float32)
    out = np.empty((len(idx), *fmaps.shape[1:]), np.float32)
    out[regular] = fmaps[idx[regular] * n_kinds + views[regular]]
    out[~regular] = designer[wheel_pos[idx[~regular]] * per_item + views[~regular] - n_kinds]
    return out


def _batched(fn, fmaps: np.ndarray, rows: np.ndarray, batch: int = 128) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([fn(torch.from_numpy(np.asarray(fmaps[rows[i : i + batch]], dtype=np.float32)))
                          for i in range(0, len(rows), batch)])


def distill(cfg: DistillConfig) -> dict:
    """Run one distillation: crops → cached views → teacher targets → student training → ONNX.

    Returns:
        A JSON-able summary (config, split, per-epoch log, timings, model path / version / sha256,
        torch-vs-onnxruntime check), also written next to ``cfg.output`` as ``train_summary.json``.

    Raises:
        FileNotFoundError: no teacher weights.
        ValueError: inconsistent ``cache_block`` / ``trainable_blocks``.
    """
    if not 1 <= cfg.cache_block <= NUM_BLOCKS - cfg.trainable_blocks:
        raise ValueError(f"need 1 <= cache_block <= {NUM_BLOCKS} - trainable_blocks; got {cfg.cache_block}, {cfg.trainable_blocks}")
    if not Path(cfg.teacher).is_file():
        raise FileNotFoundError(f"teacher weights {cfg.teacher} not found")
    t_start = time.time()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    size = INPUT_SIZE[cfg.variant]
    out_dir = Path(cfg.output).parent
    out_dir.mkdir(parents=True, exist_ok=True)

    # Same crops and split as the cross-entropy trainer (build_items reads these TrainConfig fields).
    tcfg = TrainConfig(data=cfg.data, crop_source=cfg.crop_source, max_per_image=cfg.max_per_image,
                       train_max_class=cfg.train_max_class, limit=cfg.limit, runs=cfg.runs, segmenter=cfg.segmenter)
    train_items, val_items, crop_meta = build_items(tcfg)
    print(f"items: train {len(train_items)} val {len(val_items)}", flush=True)

    teacher = EmbeddingNet(cfg.variant, dim=cfg.dim, pretrained=False, pooling_p=cfg.pooling_p)
    teacher.load_state_dict(torch.load(cfg.teacher, map_location="cpu"))
    teacher.eval()
    student = copy.deepcopy(teacher).eval()

    # The prefix is the teacher's (= the student's, never trained): cache keyed on the teacher file too.
    teacher_sha = hashlib.sha256(Path(cfg.teacher).read_bytes()).hexdigest()
    key_src = json.dumps(["distill", cfg.variant, cfg.cache_block, cfg.seed, cfg.views_photo, cfg.views_edge, cfg.limit,
                          cfg.train_max_class, crop_meta["params"], len(train_items), len(val_items), cfg.wheel_rotation,
                          teacher_sha], sort_keys=True)
    cache_dir = Path(cfg.runs) / "cache" / hashlib.sha256(key_src.encode()).hexdigest()[:12]
    cache_dir.mkdir(parents=True, exist_ok=True)
    (cache_dir / "key.json").write_text(key_src)
    prefix_path = cache_dir / "prefix.onnx"
    if not prefix_path.is_file():
        _export_prefix(teacher, cfg.cache_block, prefix_path, size)
    session = _ort_session(prefix_path, cfg.threads)
    t_cache = time.time()
    kinds = [VIEW_PHOTO] * cfg.views_photo + [VIEW_LINES] * cfg.views_edge
    train_fmaps = cache_views(train_items, kinds, True, session, size, cfg.seed, cache_dir / "train.npy",
                              log="cache train", wheel_rotation=cfg.wheel_rotation)
    clean_fmaps = cache_views(train_items, [VIEW_PHOTO], False, session, size, cfg.seed, cache_dir / "train_clean.npy",
                              log="cache train clean")
    val_fmaps = cache_views(val_items, [VIEW_PHOTO, VIEW_LINES], False, session, size, cfg.seed, cache_dir / "val.npy",
                            log="cache val")
    designer_fmaps, designer_stats, wheel_pos = None, None, None
    if cfg.designer_views > 0:
        from designsearch.services.segmenter.learned import LearnedWheelDetector

        from .designer_views import cache_designer_views

        seg_sha = hashlib.sha256(Path(cfg.designer_segmenter).read_bytes()).hexdigest()
        detector = LearnedWheelDetector(cfg.designer_segmenter, threads=cfg.threads, input_size=480)
        designer_fmaps, designer_stats = cache_designer_views(
            train_items, cfg.designer_views, detector, session, size, cfg.seed,
            cache_dir / f"designer_{cfg.designer_views}_{seg_sha[:12]}.npy",
            photo_of={r["image_id"]: r["file"] for r in D.load_rows(cfg.data)})
        wheel_pos = np.cumsum([it.domain == D.DOMAIN_WHEEL for it in train_items]) - 1  # item -> wheel ordinal
    cache_seconds = time.time() - t_cache
    train_fmaps = np.ascontiguousarray(train_fmaps)

    t_head = Head(teacher, cfg.cache_block).eval()
    s_head = Head(student, NUM_BLOCKS - cfg.trainable_blocks).eval()
    s_mid = nn.ModuleList(student.backbone._blocks[cfg.cache_block : NUM_BLOCKS - cfg.trainable_blocks]).eval()
    t_targets = time.time()
    targets = _batched(t_head, clean_fmaps, np.arange(len(train_items)))  # (N, dim), unit norm
    orbit = None
    if cfg.target_rotations > 1:
        targets, orbit = orbit_targets(teacher, train_items, targets, cfg.target_rotations, size, cfg.threads,
                                       out_dir / f"orbit_targets_{cfg.target_rotations}_{teacher_sha[:12]}.npy")
    target_seconds = time.time() - t_targets
    print(f"teacher targets: {tuple(targets.shape)} in {target_seconds:.0f} s", flush=True)

    for p in student.parameters():
        p.requires_grad_(False)
    backbone_params = [p for b in s_head.blocks for p in b.parameters()] + list(s_head.conv_head.parameters()) \
        + list(s_head.bn1.parameters())
    for p in backbone_params + list(s_head.projection.parameters()):
        p.requires_grad_(True)

    def run_student(fm: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            for block in s_mid:
                fm = block(fm)
        return s_head(fm)

    def validate() -> dict:
        return {k: round(v, 4) for k, v in validation_metrics(run_student, val_items, val_fmaps).items()}

    classifier, labels_t, head_params = None, None, list(s_head.projection.parameters())
    if cfg.ce_weight > 0:
        labels = _labels(train_items, cfg.train_max_class)
        classifier = CosineClassifier(cfg.dim, 2 * cfg.train_max_class, cfg.temperature)
        with torch.no_grad():  # imprinted: each class's weight is the mean of its pictures' targets
            for c in np.unique(labels):
                classifier.weight[c] = F.normalize(targets[torch.from_numpy(labels == c)].mean(0), dim=0)
        labels_t = torch.from_numpy(labels)
        head_params += list(classifier.parameters())

    log = [{"epoch": 0, **validate()}]
    print(json.dumps(log[0]), flush=True)
    opt = torch.optim.AdamW([{"params": backbone_params, "lr": cfg.backbone_lr},
                             {"params": head_params, "lr": cfg.lr}], weight_decay=cfg.weight_decay)
    base_lrs = [g["lr"] for g in opt.param_groups]
    steps_per_epoch = math.ceil(len(train_items) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    is_wheel = torch.tensor([it.domain == D.DOMAIN_WHEEL for it in train_items])
    step, t_train = 0, time.time()
    for epoch in range(cfg.epochs):
        order = rng.permutation(len(train_items))
        if designer_fmaps is None:
            view_idx = rng.integers(0, len(kinds), size=len(train_items))
        else:  # a wheel's view among its len(kinds) cached ones and its designer pictures; a car's among its own
            n_views = np.where(is_wheel.numpy(), len(kinds) + cfg.designer_views, len(kinds))
            view_idx = (rng.random(len(train_items)) * n_views).astype(np.int64)
        sums = {"loss": 0.0, "cos_wheel": 0.0, "cos_car": 0.0, "ce": 0.0}
        t_epoch = time.time()
        for b in range(steps_per_epoch):
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            fm = torch.from_numpy(_fetch(train_fmaps, designer_fmaps, wheel_pos, idx, view_idx[idx], len(kinds),
                                         cfg.designer_views))
            for g, base in zip(opt.param_groups, base_lrs):
                g["lr"] = base * warmup_cosine(step, cfg.warmup_steps, total)
            idx_t = torch.from_numpy(idx)
            emb = run_student(fm)
            loss, cos = distillation_loss(emb, targets[idx_t])
            if classifier is not None:
                ce = F.cross_entropy(classifier(emb), labels_t[idx_t], label_smoothing=cfg.label_smoothing)
                sums["ce"] += float(ce.detach()) * len(idx)
                loss = loss + cfg.ce_weight * ce
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            w = is_wheel[idx_t]
            sums["loss"] += float(loss.detach()) * len(idx)
            sums["cos_wheel"] += float(cos[w].detach().sum())
            sums["cos_car"] += float(cos[~w].detach().sum())
        n_w = int(is_wheel.sum())
        entry = {"epoch": epoch + 1, "loss": round(sums["loss"] / len(train_items), 4),
                 "ce": round(sums["ce"] / len(train_items), 4), "cos_wheel": round(sums["cos_wheel"] / n_w, 4),
                 "cos_car": round(sums["cos_car"] / (len(train_items) - n_w), 4),
                 "seconds": round(time.time() - t_epoch, 1), **validate()}
        log.append(entry)
        print(json.dumps(entry), flush=True)
        torch.save(student.state_dict(), out_dir / "weights.pt")  # checkpoint each epoch
    train_seconds = time.time() - t_train

    version = export_onnx(student.eval(), cfg.output, size)
    summary = {
        "config": asdict(cfg),
        "command": "python -m designsearch.training.embedder.train_distill " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "teacher_sha256": teacher_sha,
        "split": {"train_classes": f"1-{cfg.train_max_class}", "val_classes": f"{cfg.train_max_class + 1}-98",
                  "train_items": _counts(train_items), "val_items": _counts(val_items)},
        "crops": crop_meta,
        "orbit_targets": orbit,
        "designer_views": designer_stats,
        "epochs": log,
        "seconds": {"total": round(time.time() - t_start, 1), "cache": round(cache_seconds, 1),
                    "targets": round(target_seconds, 1), "train": round(train_seconds, 1)},
        "model": {"path": repo_relative(cfg.output), "version": version,
                  "sha256": hashlib.sha256(Path(cfg.output).read_bytes()).hexdigest(),
                  "bytes": Path(cfg.output).stat().st_size, "torch_weights": str(out_dir / "weights.pt")},
        "export_check": export_check(student, cfg.output, val_items[:16], size),
        "hardware": _hardware(cfg.threads),
    }
    (out_dir / "train_summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: summary[k] for k in ("seconds", "model", "export_check")}, indent=2), flush=True)
    return summary


def main(argv: list[str] | None = None) -> dict:
    """CLI: one flag per :class:`DistillConfig` field (dashes for underscores)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, value in asdict(DistillConfig()).items():
        p.add_argument("--" + name.replace("_", "-"), type=type(value), default=value)
    return distill(DistillConfig(**vars(p.parse_args(argv))))


if __name__ == "__main__":
    main()
