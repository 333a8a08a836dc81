"""Train the wheel-design embedder end to end with design-level signals (issue 9); export ONNX.

The trained 512-d model of :mod:`.train` (car-model cross-entropy on cached views, last 2 blocks
fine-tuned) learned car models rather than wheel designs. This trainer fine-tunes the *whole*
EfficientNet-Lite0 on freshly augmented views with three signals, each switchable for an ablation:

* ``instance`` — instance discrimination: two views of the same crop under the invariances of a
  wheel design (:func:`.augment.wheel_design_view`: rotation 0-360°, perspective foreshortening,
  scale, lighting, colour/finish, blur, tyre masked or not, line-drawing views) are positives;
  NT-Xent of SimCLR (Chen et al., ICML 2020) via :func:`.contrastive.supcon_loss`.
* ``same_photo`` — the wheel crops cut from one photo are positives of each other
  (supervised-contrastive loss with the photo as label; Khosla et al., NeurIPS 2020). Sources:
  segmenter crops of Stanford Cars training classes (1-78) and ground-truth wheel boxes of the
  Car-Parts-Segmentation training split (seeded split of :mod:`designsearch.training.segmenter.dataset`).
* ``ce_weight`` — car-model normalised-softmax cross-entropy (Zhai & Wu, BMVC 2019), wheel
  crops and whole cars with separate proxies as in :mod:`.train`; 0 switches it off.

Whole-car images (classes 1-78) are in every batch (``car_views``) with their own instance
positives and car-model proxies, so whole-car retrieval is trained too.

BatchNorm: running statistics stay at their ImageNet values (all BN layers in eval mode; their
affine parameters are trained), because CPU batches of ~64 mixed-domain views give noisy batch
statistics; the exported network is then exactly the trained one. Drop-connect is off (eval mode).

CPU budget: training runs at ``size`` px (default 160) and the network is exported for 224 px
input (the served size; EfficientNet is fully convolutional with global pooling, so only the
input side changes; Touvron et al., "Fixing the train-test resolution discrepancy", NeurIPS 2019,
show testing above the training resolution helps). The schedule (linear warm-up, cosine decay)
runs over ``steps``; ``minutes`` is a wall-clock safety stop (a run stopped by it is reported as
such and is not reproducible step for step). Reproducible: one seed drives sampling,
augmentation (NumPy ``default_rng``) and initialisation (``torch.manual_seed``).

Usage::

    flock /tmp/designsearch-cpu.lock nice -n 5 .venv/bin/designsearch train-embedder \\
        --objective contrastive --seed 0 --steps 400 --run-name v2 \\
        --output models/embedder/wheelembed-lite0-512-v2.onnx
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from designsearch.images import crop_box, square_box
from designsearch.training.embedder.model import EmbeddingNet, export_onnx

from . import data as D
from .augment import wheel_design_view
from .contrastive import normalized_softmax_ce, supcon_loss
from .feature_cache import warmup_cosine

#: Side of the preloaded square images (pixels); views are warped from it.
PRELOAD_SIZE = 224


@dataclass
class ContrastiveConfig:
    """Everything that determines a run (recorded in its summary).

    Attributes:
        data: folder holding ``stanford-cars/`` and ``car-parts-seg/``.
        segmenter: ONNX wheel segmenter that cuts the Stanford Cars crops.
        seed: seed of sampling, augmentation and initialisation.
        steps: optimisation steps (the schedule's length); 0 = calibrate from ``minutes``: the
            mean time of steps 2-5 sets ``steps = minutes * 60 / step_time`` (logged; those first
            steps are warm-up steps whose learning rate does not depend on ``steps``, so rerunning
            with ``--steps <logged value>`` reproduces the run).
        minutes: wall-clock budget, minutes: the calibration target when ``steps == 0`` (then the
            run is stopped at 1.5 x ``minutes``), else a safety stop (0 = none).
        size: training input side, pixels.
        export_size: exported (served) input side, pixels.
        batch_views: views per step (wheel + car views).
        car_views: whole-car views per step (0 = no whole cars).
        instance: two augmented views per crop/car, positives of each other (NT-Xent).
        same_photo: crops of one photo are positives of each other.
        ce_weight: weight of the car-model normalised-softmax cross-entropy (0 = off).
        cps: add the Car-Parts-Segmentation training split's wheel crops (same-photo pairs, no class).
        temperature: contrastive temperature.
        ce_temperature: temperature of the cosine classifier.
        lr: AdamW learning rate of projection and proxies.
        backbone_lr: AdamW learning rate of the backbone.
        weight_decay: AdamW weight decay.
        warmup: linear warm-up steps.
        trainable_blocks: last MBConv blocks trained (16 = all, stem and head included).
        p_stroke: probability that a view is a line drawing.
        p_tyre_mask: probability of masking the tyre of a wheel view.
        dim: embedding size.
        threads: torch threads.
        checkpoint_every: steps between checkpoints.
        run_name: folder under ``runs/embedder/`` for log, checkpoint, summary and model.
        output: exported ONNX (default ``runs/embedder/<run_name>/model.onnx``).
        eval: evaluate on classes 79-98 after export (ImageNet and previous model as columns).
        resume: continue from the run's checkpoint.
    """

    data: str = str(D.DEFAULT_DATA)
    segmenter: str = str(D.DEFAULT_SEGMENTER)
    seed: int = 0
    steps: int = 300
    minutes: float = 0.0
    size: int = 160
    export_size: int = 224
    batch_views: int = 64
    car_views: int = 16
    instance: bool = True
    same_photo: bool = True
    ce_weight: float = 1.0
    cps: bool = True
    temperature: float = 0.1
    ce_temperature: float = 0.05
    lr: float = 1e-3
    backbone_lr: float = 1e-4
    weight_decay: float = 1e-4
    warmup: int = 20
    trainable_blocks: int = 16
    p_stroke: float = 0.2
    p_tyre_mask: float = 0.25
    dim: int = 512
    threads: int = 2
    checkpoint_every: int = 50
    run_name: str = "contrastive"
    output: str = ""
    eval: bool = True
    resume: bool = False


@dataclass
class Pool:
    """Preloaded training images and their labels (index-aligned).

    Attributes:
        images: uint8 ``(N, 224, 224, 3)`` square-resized RGB.
        domain: ``(N,)`` ``"wheel"``/``"car"``.
        target: int64 ``(N,)`` car-model proxy (cars ``class-1``, wheels ``78 + class-1``; -1 none).
        photo: int64 ``(N,)`` source-photo index.
    """

    images: np.ndarray
    domain: np.ndarray
    target: np.ndarray
    photo: np.ndarray


def cps_train_crops(data: str | Path) -> list[tuple[np.ndarray, str]]:
    """Wheel crops of the Car-Parts-Segmentation *training* split (ground-truth boxes, squared).

    Uses the segmenter's seeded split (:func:`designsearch.training.segmenter.dataset.split_samples`,
    validation fraction 0.2, seed 0), so the segmenter's validation photos are never used.

    Returns:
        ``(rgb uint8 (h, w, 3), photo id)`` per wheel instance.
    """
    from designsearch.training.segmenter.dataset import load_samples, split_samples

    train, _ = split_samples(load_samples(data), 0.2, 0)
    out = []
    for s in train:
        boxes = s.instances()
        if not boxes:
            continue
        rgb = s.read_rgb()
        for box in boxes:
            if min(box[2] - box[0], box[3] - box[1]) < 24:
                continue
            out.append((crop_box(rgb, square_box(box, s.width, s.height)), "cps/" + s.file_name))
    return out


def build_pool(cfg: ContrastiveConfig, runs: Path) -> tuple[Pool, dict]:
    """Training pool: Stanford Cars classes 1-78 (whole cars + segmenter wheel crops) [+ CPS crops].

    The decoded images are cached under ``runs/embedder/preload`` (uint8 ``.npy``).

    Returns:
        ``(pool, info)``; ``info`` holds counts and the crop-cache parameters.
    """
    rows = D.load_rows(cfg.data)
    train_rows, _ = D.split_rows(rows)
    crop_dir = D.extract_wheel_crops(cfg.data, runs / "crops", "segmenter", cfg.segmenter)
    meta = D.crop_meta(crop_dir)
    keep = {r["image_id"] for r in train_rows}
    items = D.car_items(train_rows) + [w for w in D.wheel_items(crop_dir) if w.image_id in keep]
    extra = cps_train_crops(cfg.data) if cfg.cps else []
    key = hashlib.sha256(json.dumps([meta["params"], len(items), cfg.cps, len(extra), PRELOAD_SIZE]).encode()).hexdigest()[:12]
    cache = runs / "preload" / f"{key}.npy"
    if cache.is_file():
        images = np.load(cache)
    else:
        images = np.empty((len(items) + len(extra), PRELOAD_SIZE, PRELOAD_SIZE, 3), np.uint8)
        for i, it in enumerate(items):
            images[i] = _square(D.load_rgb(it))
        for j, (rgb, _) in enumerate(extra):
            images[len(items) + j] = _square(rgb)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, images)
    photo_ids = [it.image_id for it in items] + [pid for _, pid in extra]
    index = {p: k for k, p in enumerate(dict.fromkeys(photo_ids))}
    domain = np.array([it.domain for it in items] + [D.DOMAIN_WHEEL] * len(extra))
    target = np.array(
        [it.class_id - 1 + (D.TRAIN_MAX_CLASS if it.domain == D.DOMAIN_WHEEL else 0) for it in items] + [-1] * len(extra),
        dtype=np.int64,
    )
    # Whole cars get their own photo index space so a car is never a positive of its wheels.
    photo = np.array([index[p] + (len(index) if d == D.DOMAIN_CAR else 0) for p, d in zip(photo_ids, domain)], dtype=np.int64)
    info = {"stanford_cars": int((domain == D.DOMAIN_CAR).sum()), "stanford_wheel_crops": len(items) - int((domain == D.DOMAIN_CAR).sum()),
            "cps_wheel_crops": len(extra), "cps_photos": len({p for _, p in extra}), "crop_params": meta["params"]}
    return Pool(images, domain, target, photo), info


def _square(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    interp = cv2.INTER_AREA if min(h, w) > PRELOAD_SIZE else cv2.INTER_LINEAR
    return cv2.resize(rgb, (PRELOAD_SIZE, PRELOAD_SIZE), interpolation=interp)


class BatchSampler:
    """Draws the item indices of each step: wheel photos (all their crops) and whole cars.

    Photos and cars are drawn without replacement from seeded permutations (a new permutation when
    one runs out). Each drawn item is viewed ``2`` times when ``instance`` is on, else once.
    """

    def __init__(self, pool: Pool, cfg: ContrastiveConfig, rng: np.random.Generator) -> None:
        self.cfg, self.rng = cfg, rng
        wheel = np.flatnonzero(pool.domain == D.DOMAIN_WHEEL)
        groups: dict[int, list[int]] = {}
        for i in wheel:
            groups.setdefault(int(pool.photo[i]), []).append(int(i))
        self.photos = list(groups.values())
        self.cars = np.flatnonzero(pool.domain == D.DOMAIN_CAR)
        self.vpc = 2 if cfg.instance else 1
        self._p, self._c = [], []

    def _next(self, queue: list, n: int) -> int:
        if not queue:
            queue.extend(self.rng.permutation(n).tolist())
        return queue.pop()

    def __call__(self) -> np.ndarray:
        """Item indices, each repeated ``vpc`` times (views), wheel views first."""
        cfg = self.cfg
        n_car = cfg.car_views if (cfg.instance or cfg.ce_weight > 0) else 0
        n_wheel_items = (cfg.batch_views - n_car) // self.vpc
        wheels: list[int] = []
        while len(wheels) < n_wheel_items:
            wheels.extend(self.photos[self._next(self._p, len(self.photos))])
        wheels = wheels[:n_wheel_items]
        cars = [int(self.cars[self._next(self._c, len(self.cars))]) for _ in range(n_car // self.vpc)]
        return np.repeat(np.array(wheels + cars, dtype=np.int64), self.vpc)


def train(cfg: ContrastiveConfig) -> dict:
    """One run: pool → full-network fine-tuning → ONNX export (→ evaluation).

    Args:
        cfg: run configuration.

    Returns:
        JSON-able summary (also ``runs/embedder/<run_name>/summary.json``).

    Raises:
        ValueError: no signal switched on, or inconsistent sizes.
    """
    if not (cfg.instance or cfg.same_photo or cfg.ce_weight > 0):
        raise ValueError("switch on at least one of instance, same_photo, ce_weight > 0")
    if cfg.steps <= 0 and cfg.minutes <= 0:
        raise ValueError("give --steps, or --steps 0 with a --minutes budget to calibrate")
    if cfg.steps <= 0 and cfg.warmup < 6:
        raise ValueError("calibration needs warmup >= 6 steps")
    if not 0 <= cfg.car_views < cfg.batch_views:
        raise ValueError(f"need 0 <= car_views < batch_views, got {cfg.car_views}, {cfg.batch_views}")
    t0 = time.time()
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    runs = D.DEFAULT_RUNS
    run_dir = runs / cfg.run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    output = Path(cfg.output) if cfg.output else run_dir / "model.onnx"
    log_file = open(run_dir / "train.log", "a", encoding="utf-8")

    def log(msg: dict | str) -> None:
        line = json.dumps(msg) if isinstance(msg, dict) else msg
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    log({"config": asdict(cfg)})
    pool, info = build_pool(cfg, runs)
    t_data = time.time() - t0
    log({"pool": info, "seconds": round(t_data, 1)})

    net = EmbeddingNet("lite0", dim=cfg.dim)
    nn.init.xavier_uniform_(net.projection.weight)
    nn.init.zeros_(net.projection.bias)
    net.eval()  # BN running statistics frozen (ImageNet), drop-connect off
    blocks = net.backbone._blocks
    frozen = [] if cfg.trainable_blocks >= len(blocks) else [net.backbone._conv_stem, net.backbone._bn0, *blocks[: len(blocks) - cfg.trainable_blocks]]
    for p in net.parameters():
        p.requires_grad_(True)
    for m in frozen:
        for p in m.parameters():
            p.requires_grad_(False)
    num_classes = 2 * D.TRAIN_MAX_CLASS
    proxies = nn.Parameter(torch.randn(num_classes, cfg.dim) / math.sqrt(cfg.dim))
    if cfg.ce_weight > 0:  # imprint (Qi et al., CVPR 2018) from up to 6 clean images per proxy
        with torch.no_grad():
            for c in range(num_classes):
                idx = np.flatnonzero(pool.target == c)[:6]
                if len(idx):
                    x = _to_tensor(np.stack([cv2.resize(pool.images[i], (cfg.size, cfg.size), interpolation=cv2.INTER_AREA) for i in idx]))
                    proxies[c] = F.normalize(net(x).mean(0), dim=0)
    backbone_params = [p for p in net.backbone.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        [{"params": backbone_params, "lr": cfg.backbone_lr},
         {"params": list(net.projection.parameters()) + [proxies], "lr": cfg.lr}],
        weight_decay=cfg.weight_decay,
    )
    base_lrs = [g["lr"] for g in opt.param_groups]
    sampler = BatchSampler(pool, cfg, rng)
    start_step = 0
    ckpt_path = run_dir / "checkpoint.pt"
    if cfg.resume and ckpt_path.is_file():
        ck = torch.load(ckpt_path, weights_only=False)
        net.load_state_dict(ck["net"])
        with torch.no_grad():
            proxies.copy_(ck["proxies"])
        opt.load_state_dict(ck["opt"])
        rng.bit_generator.state = ck["rng"]
        sampler._p, sampler._c = ck["queues"]
        torch.set_rng_state(ck["torch_rng"])
        start_step = ck["step"]
        log(f"resumed at step {start_step}")

    t_train, stopped_early = time.time(), False
    calibrate = cfg.steps <= 0
    stop_after = cfg.minutes * (1.5 if calibrate else 1.0) * 60
    if calibrate:
        cfg.steps = 10**9
    t_calib = 0.0
    window = {"loss": 0.0, "supcon": 0.0, "ce": 0.0, "n": 0}
    step = start_step
    while step < cfg.steps:
        if calibrate and step == 1:
            t_calib = time.time()
        if calibrate and step == 5:
            per_step = (time.time() - t_calib) / 4
            cfg.steps = max(cfg.warmup + 5, int(cfg.minutes * 60 / per_step))
            log({"calibrated_steps": cfg.steps, "seconds_per_step": round(per_step, 2)})
        if stop_after and time.time() - t_train > stop_after:
            stopped_early = True
            log(f"wall-clock budget of {cfg.minutes} min reached at step {step}")
            break
        idx = sampler()
        views = np.stack([wheel_design_view(pool.images[i], cfg.size, rng, pool.domain[i], cfg.p_stroke, cfg.p_tyre_mask) for i in idx])
        for g, base in zip(opt.param_groups, base_lrs):
            g["lr"] = base * warmup_cosine(step, cfg.warmup, cfg.steps)
        z = net(_to_tensor(views))
        loss = z.sum() * 0.0
        sc = ce = torch.zeros(())
        if cfg.instance or cfg.same_photo:
            if cfg.same_photo:
                labels = pool.photo[idx]
            else:  # one label per drawn item (instance positives only)
                labels = np.repeat(np.arange(len(idx) // sampler.vpc), sampler.vpc)
            is_car = pool.domain[idx] == D.DOMAIN_CAR
            labels = np.where(is_car, labels + 10**7, labels)  # cars never positives of wheels
            sc = supcon_loss(z, torch.from_numpy(labels), cfg.temperature)
            loss = loss + sc
        if cfg.ce_weight > 0:
            ce = normalized_softmax_ce(z, proxies, torch.from_numpy(pool.target[idx]), cfg.ce_temperature)
            loss = loss + cfg.ce_weight * ce
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        window["loss"] += float(loss)
        window["supcon"] += float(sc)
        window["ce"] += float(ce)
        window["n"] += 1
        if (step + 1) % 10 == 0 or step + 1 == cfg.steps or step < 5:
            n = window.pop("n")
            log({"step": step + 1, **{k: round(v / n, 4) for k, v in window.items()},
                 "lr": round(opt.param_groups[0]["lr"], 7), "min": round((time.time() - t_train) / 60, 2)})
            window = {"loss": 0.0, "supcon": 0.0, "ce": 0.0, "n": 0}
        if (step + 1) % cfg.checkpoint_every == 0:
            torch.save({"net": net.state_dict(), "proxies": proxies.detach(), "opt": opt.state_dict(), "step": step + 1,
                        "rng": rng.bit_generator.state, "queues": (sampler._p, sampler._c),
                        "torch_rng": torch.get_rng_state()}, ckpt_path)
        step += 1
    train_seconds = time.time() - t_train
    net.eval()
    torch.save(net.state_dict(), run_dir / "weights.pt")
    version = export_onnx(net, output, cfg.export_size)
    from .train import _hardware, export_check

    val = [it for it in D.car_items(D.split_rows(D.load_rows(cfg.data))[1])][:16]
    check = export_check(net, output, val, cfg.export_size)
    summary = {
        "config": asdict(cfg),
        "command": "designsearch train-embedder --objective contrastive " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "pool": info,
        "steps_done": step,
        "steps_calibrated": calibrate,
        "stopped_by_wall_clock": stopped_early,
        "seconds": {"data": round(t_data, 1), "train": round(train_seconds, 1), "total": round(time.time() - t0, 1)},
        "model": {"path": str(output), "version": version, "sha256": hashlib.sha256(output.read_bytes()).hexdigest(),
                  "bytes": output.stat().st_size},
        "export_check": check,
        "hardware": _hardware(cfg.threads),
    }
    log({k: summary[k] for k in ("steps_done", "seconds", "model", "export_check")})
    if cfg.eval:
        from . import evaluate

        t_eval = time.time()
        results = evaluate.evaluate(cfg.data, output, threads=cfg.threads,
                                    compare={"previous": evaluate.DEFAULT_MODEL}, name=cfg.run_name)
        evaluate.write_results(results, run_dir / "eval.json")
        summary["eval"] = results["results"][cfg.run_name]
        summary["seconds"]["eval"] = round(time.time() - t_eval, 1)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    log_file.close()
    return summary


def _to_tensor(views: np.ndarray) -> torch.Tensor:
    """uint8 ``(N, S, S, 3)`` → float32 ``(N, 3, S, S)`` raw RGB 0..255 (the model scales it)."""
    return torch.from_numpy(np.ascontiguousarray(views.transpose(0, 3, 1, 2))).float()


def _bool(s: str) -> bool:
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected on/off, got {s!r}")


def parse_args(argv: list[str] | None = None) -> ContrastiveConfig:
    """Flags → :class:`ContrastiveConfig` (one flag per field; booleans take on/off)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--objective", default="contrastive", help=argparse.SUPPRESS)
    for name, value in asdict(ContrastiveConfig()).items():
        p.add_argument("--" + name.replace("_", "-"), type=_bool if isinstance(value, bool) else type(value), default=value)
    args = vars(p.parse_args(argv))
    args.pop("objective")
    return ContrastiveConfig(**args)


def main(argv: list[str] | None = None) -> dict:
    """CLI entry point: ``designsearch train-embedder --objective contrastive [flags]``."""
    return train(parse_args(argv))


if __name__ == "__main__":
    main()
