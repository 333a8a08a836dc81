"""Design-identity fine-tuning of the served embedder on the wheel-design engine (issue 31); export ONNX.

Starts from the SERVED float32 embedder (its convolutions, projection and learned whitening are read
back from the ONNX file by :func:`.import_onnx.import_state_dict`), so step 0 is exactly the served
model, and fine-tunes its last ``trainable_blocks`` MBConv blocks, head convolution and projection
(BatchNorm statistics frozen, the whitening a fixed linear layer after the network) with three
signals, each switchable for the ablation:

* ``engine`` — supervised contrastive loss (Khosla et al., "Supervised Contrastive Learning",
  NeurIPS 2020, :func:`.contrastive.supcon_loss`) on the engine's TRAIN designs: the views of one
  design (studio renders at other angles/spins/finishes/backgrounds, its line drawings, the wheel
  of its on-car composite, each further augmented by :func:`.augment.wheel_design_view` — spin
  0-360°, foreshortening, lighting, finish, with probability ``p_stroke`` a stroke drawing) are
  positives, all other designs in the batch negatives; the "one parameter changed" variants
  (manifest ``related_to``) are drawn into the same batch as their base design with probability
  ``p_related`` (hard negatives).
* ``rims`` — instance discrimination (SimCLR, Chen et al., ICML 2020) on the real ``car-parts-50``
  TRAIN rims: two augmented views of one product shot are positives (the same loss, own labels).
* ``preserve`` — feature preservation ("Learning without Forgetting", Li & Hoiem, ECCV 2016, feature-distillation
  form): ``1 - cos(z, z0)`` to the served model's embedding of the same view, on real pictures (Stanford Cars
  training-class whole cars and wheel crops, the real rims, the edge and designer pairs), weighted ``preserve``;
  with L2-SP (Li, Grandvalet & Davoine, ICML 2018) ``l2sp * sum ||w - w0||^2`` it keeps the photo path near
  what real photos need (issue 31's probe: an unconstrained head lost 4-14 points on real photos).
* ``ce_weight`` — car-model normalised-softmax cross-entropy (Zhai & Wu, BMVC 2019; the served model's own
  objective) on the Stanford wheel crops and whole cars.

Validation designs and the 15 real rim models are never drawn (manifest split ``train`` only); the
``car-parts-50`` VALIDATION rims, ``wheel-vision`` and Stanford classes 79-98 never either.

Export: the network at 224 px with GeM (p as served) + the served whitening appended
(:func:`.whitening.append_whitening`), then INT8 by :mod:`designsearch.training.quantize`.
Reproducible: one seed drives sampling, augmentation and initialisation; resumable from
``runs/embedder/<run>/checkpoint.pt``. CLI: ``python -m designsearch.training.embedder.train_design --help``
(every :class:`DesignConfig` field); the recipes: ``scripts/train_embedder_design.sh``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn
from torch.nn import functional as F

from designsearch.onnx import make_session
from designsearch.images import edge_map, to_model_input
from designsearch.training.embedder.model import EmbeddingNet, export_onnx

from . import data as D
from .augment import wheel_design_view
from .contrastive import normalized_softmax_ce, supcon_loss
from .designer_views import designer_pair, served_detector
from .train_contrastive import _bool
from .feature_cache import Head, _export_prefix, warmup_cosine
from .import_onnx import import_state_dict
from .whitening import append_whitening


@dataclass
class DesignConfig:
    """Everything that determines a run (recorded in its summary).

    Attributes:
        base: served float32 embedder ONNX the run starts from (GeM + learned whitening inside).
        engine_set: rendered engine set (``manifest.csv``; only its ``train`` split is used).
        data: shared data folder (``wheel-pictures/``, ``stanford-cars/``).
        seed: seed of sampling, augmentation and initialisation.
        steps: optimisation steps (schedule length).
        size: training input side, pixels (export is 224).
        designs, views: engine designs per step, views of each.
        rims: real ``car-parts-50`` train rims per step (2 views each; 0 = off).
        cars: Stanford whole cars per step for the preservation term (0 = off).
        wheels: Stanford Cars training-class (1-78) segmenter wheel crops per step (``runs/embedder/crops/segmenter``,
            :func:`.data.extract_wheel_crops`), in the preservation term and the car-model cross-entropy (0 = off).
        edge_pairs: Stanford training-class wheel crops per step drawn as a positive pair of their photo view and its
            Canny edge map (:func:`designsearch.images.edge_map`, the kept sketch row's query), both preserved.
        designer_pairs: the same with one designer picture of the crop's wheel instead (cut out by the served
            segmenter, drawn as :mod:`designsearch.training.designer_pictures` draws the benchmark's validation
            wheels; half line drawings, the rest close-ups and renderings), both preserved (0 = off).
        ce_weight, ce_temperature: weight (0 = off) and temperature of the car-model cross-entropy (proxies per
            class and domain imprinted from the served embeddings).
        engine: engine design-identity loss on/off.
        preserve, l2sp: weights of the feature-preservation term and the L2-SP penalty (0 = off).
        temperature: supervised-contrastive temperature.
        lr: AdamW learning rate (projection 10x), linear warm-up + cosine decay.
        warmup: warm-up steps.
        trainable_blocks: last MBConv blocks trained (head convolution and projection always).
        p_stroke: probability that an engine render or real rim view is turned into a stroke drawing.
        p_related: probability of drawing a design's one-parameter-changed partner into the batch.
        p_oncar: probability that a drawn design's on-car wheel crop is one of its views (else all are equally likely).
        init: checkpoint of an earlier run (``runs/embedder/<run>/checkpoint.pt``) whose weights the run starts
            from; the preservation teacher and the L2-SP anchor stay the served ``base``.
        threads, checkpoint_every: torch threads; steps between checkpoints.
        run_name, resume: folder under ``runs/embedder/``; continue from its checkpoint.
    """

    base: str = "models/embedder/wheelembed-lite0-512.onnx"
    engine_set: str = "var/wheelgen/set-v1"
    data: str = str(D.DEFAULT_DATA)
    seed: int = 0
    steps: int = 600
    size: int = 224
    designs: int = 12
    views: int = 4
    rims: int = 6
    cars: int = 8
    wheels: int = 0
    edge_pairs: int = 0
    designer_pairs: int = 0
    ce_weight: float = 0.0
    ce_temperature: float = 0.05
    engine: bool = True
    preserve: float = 1.0
    l2sp: float = 0.05
    temperature: float = 0.1
    lr: float = 1e-4
    warmup: int = 20
    trainable_blocks: int = 6
    p_stroke: float = 0.15
    p_related: float = 0.5
    p_oncar: float = 0.0
    init: str = ""
    threads: int = 2
    checkpoint_every: int = 50
    run_name: str = "design"
    resume: bool = False


class Whitened(nn.Module):
    """``EmbeddingNet`` followed by the served learned whitening (fixed).

    ``forward(pixels (N,3,S,S))`` → unit ``(N, D)``; ``tail(fmap)`` runs only the trained part
    (MBConv blocks ``[start, 16)``, head, pooling, projection, whitening) on the frozen prefix's feature
    map (:class:`.feature_cache.Prefix`, run in onnxruntime, ~8x faster than torch on CPU).
    """

    def __init__(self, net: EmbeddingNet, mean: np.ndarray, projection: np.ndarray, start: int) -> None:
        super().__init__()
        self.net = net
        self.head = Head(net, start)
        self.start = start
        self.register_buffer("mean", torch.from_numpy(mean))
        self.register_buffer("projection", torch.from_numpy(projection))

    def whiten(self, e: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return F.normalize((e - self.mean) @ self.projection, dim=1, eps=1e-12)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.whiten(self.net(pixels))

    def tail(self, fmap: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.whiten(self.head(fmap))


def served_whitening(path: str | Path) -> tuple[np.ndarray, np.ndarray, float]:
    """``(mean (D,), projection (D, D'), GeM p)`` stored in a served embedder ONNX file.

    Raises:
        ValueError: the file has no ``/whitening/`` initialisers.
    """
    model = onnx.load(str(path))
    t = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    if "/whitening/mean" not in t:
        raise ValueError(f"{path} has no learned whitening")
    pow_consts = [n for n in model.graph.node if n.op_type == "Pow"]
    p = 1.0
    if pow_consts:
        consts = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in model.graph.node if n.op_type == "Constant"}
        exps = [float(np.asarray(t.get(n.input[1], consts.get(n.input[1])))) for n in pow_consts]
        p = max(exps)
    return t["/whitening/mean"].astype(np.float32), t["/whitening/projection"].astype(np.float32), p


def engine_pool(set_dir: str | Path) -> tuple[list[list[tuple[str, str, tuple | None]]], list[int], list[str]]:
    """Views of the engine's TRAIN designs grouped by design.

    Returns:
        ``(views, partner, ids)``: per design a list of ``(file, kind, box or None)``; the index of its
        ``related_to`` partner design (-1 none); the design ids.

    Raises:
        FileNotFoundError: no manifest.
    """
    set_dir = Path(set_dir)
    with (set_dir / "manifest.csv").open(encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "train"]
    ids = list(dict.fromkeys(r["design_id"] for r in rows))
    index = {d: i for i, d in enumerate(ids)}
    views: list[list] = [[] for _ in ids]
    partner = [-1] * len(ids)
    for r in rows:
        box = (int(r["x1"]), int(r["y1"]), int(r["x2"]), int(r["y2"])) if r["kind"] == "oncar" else None
        views[index[r["design_id"]]].append((str(set_dir / r["file"]), r["kind"], box))
        if r["related_to"] and r["related_to"] in index:
            i, j = index[r["design_id"]], index[r["related_to"]]
            partner[i], partner[j] = j, i
    return views, partner, ids


def _read(file: str, box: tuple | None) -> np.ndarray:
    from .wheel_rows import square_crop

    rgb = cv2.cvtColor(cv2.imread(file), cv2.COLOR_BGR2RGB)
    return square_crop(rgb, box) if box is not None else rgb


def _to_tensor(views: np.ndarray) -> torch.Tensor:  # uint8 (N,S,S,3) -> float32 (N,3,S,S)
    return torch.from_numpy(np.ascontiguousarray(views.transpose(0, 3, 1, 2))).float()


class Batches:
    """Draws one step's views: engine designs × views, real rims × 2, Stanford cars × 1."""

    def __init__(self, cfg: DesignConfig, rng: np.random.Generator) -> None:
        self.cfg, self.rng = cfg, rng
        self.views, self.partner, self.ids = engine_pool(cfg.engine_set) if cfg.engine else ([], [], [])
        from designsearch.training.segmenter.real_sets import carparts50_items

        self.rims = [it.rgb for it in carparts50_items(cfg.data, "train", "rim")] if cfg.rims else []
        train_rows = D.split_rows(D.load_rows(cfg.data))[0]
        self.cars = D.car_items(train_rows) if cfg.cars else []
        self.wheels = []
        self.detector = served_detector() if cfg.designer_pairs else None
        if cfg.wheels or cfg.edge_pairs or cfg.designer_pairs:
            crop_dir = D.extract_wheel_crops(cfg.data, D.DEFAULT_RUNS / "crops", "segmenter")
            keep = {r["image_id"] for r in train_rows}
            self.wheels = [w for w in D.wheel_items(crop_dir) if w.image_id in keep]
        self.queues: dict[str, list[int]] = {"d": [], "r": [], "c": [], "w": []}

    def _next(self, key: str, n: int) -> int:
        q = self.queues[key]
        if not q:
            q.extend(self.rng.permutation(n).tolist())
        return q.pop()

    def __call__(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(views uint8 (N,S,S,3), labels int64 (N,) (-1: no contrastive label), real bool (N,),
        target int64 (N,))``: ``target`` is the car-model proxy (whole cars ``class-1``, wheel crops
        ``78 + class-1``; -1 none)."""
        cfg, rng = self.cfg, self.rng
        imgs, labels, real, target = [], [], [], []
        chosen: list[int] = []
        while self.views and len(chosen) < cfg.designs:
            d = self._next("d", len(self.views))
            if d in chosen:
                continue
            chosen.append(d)
            p = self.partner[d]
            if p >= 0 and p not in chosen and len(chosen) < cfg.designs and rng.random() < cfg.p_related:
                chosen.append(p)
        for d in chosen:
            vs = self.views[d]
            oncar = [i for i, v in enumerate(vs) if v[1] == "oncar"]
            if oncar and rng.random() < cfg.p_oncar:
                rest = [i for i in range(len(vs)) if i != oncar[0]]
                picks = [oncar[0], *rng.choice(rest, size=min(cfg.views, len(vs)) - 1, replace=False).tolist()]
            else:
                picks = rng.choice(len(vs), size=min(cfg.views, len(vs)), replace=False).tolist()
            for k in picks:
                file, kind, box = vs[k]
                stroke = cfg.p_stroke if kind != "drawing" else 0.0
                imgs.append(wheel_design_view(_read(file, box), cfg.size, rng, D.DOMAIN_WHEEL, stroke, 0.1))
                labels.append(d)
                real.append(False)
        for _ in range(cfg.rims if self.rims else 0):
            r = self._next("r", len(self.rims))
            for _v in range(2):
                imgs.append(wheel_design_view(self.rims[r], cfg.size, rng, D.DOMAIN_WHEEL, cfg.p_stroke * 2, 0.2))
                labels.append(10**6 + r)
                real.append(True)
        for _ in range(cfg.cars if self.cars else 0):
            c = self._next("c", len(self.cars))
            imgs.append(wheel_design_view(D.load_rgb(self.cars[c]), cfg.size, rng, D.DOMAIN_CAR, 0.0, 0.0))
            labels.append(-1)
            real.append(True)
            target.append(self.cars[c].class_id - 1)
        for _ in range(cfg.wheels if self.wheels else 0):
            w = self._next("w", len(self.wheels))
            imgs.append(wheel_design_view(D.load_rgb(self.wheels[w]), cfg.size, rng, D.DOMAIN_WHEEL, 0.1, 0.1))
            labels.append(-1)
            real.append(True)
            target.append(D.TRAIN_MAX_CLASS + self.wheels[w].class_id - 1)
        for _ in range(cfg.edge_pairs if self.wheels else 0):
            w = self._next("w", len(self.wheels))
            photo = wheel_design_view(D.load_rgb(self.wheels[w]), cfg.size, rng, D.DOMAIN_WHEEL, 0.0, 0.1)
            imgs += [photo, edge_map(photo, size=cfg.size)]
            labels += [2 * 10**6 + w] * 2
            real += [True, True]
        for _ in range(cfg.designer_pairs if self.wheels else 0):
            w = self._next("w", len(self.wheels))
            imgs += designer_pair(D.load_rgb(self.wheels[w]), self.detector, rng, cfg.size)
            labels += [3 * 10**6 + w] * 2
            real += [True, True]
        target = target + [-1] * (2 * (cfg.edge_pairs + cfg.designer_pairs) if self.wheels else 0)
        target = [-1] * (len(imgs) - len(target)) + target
        return np.stack(imgs), np.array(labels, dtype=np.int64), np.array(real), np.array(target, dtype=np.int64)


def build_model(cfg: DesignConfig) -> tuple[Whitened, float]:
    """The served network + whitening as a torch module (BatchNorm in eval mode), and its GeM p."""
    mean, projection, p = served_whitening(cfg.base)
    net = EmbeddingNet("lite0", dim=512, pretrained=False, pooling_p=p)
    net.load_state_dict(import_state_dict(cfg.base, "lite0", 512))
    model = Whitened(net, mean, projection, 16 - cfg.trainable_blocks)
    model.eval()
    for prm in model.parameters():
        prm.requires_grad_(False)
    bb = net.backbone
    blocks = bb._blocks
    train_mods = [*blocks[len(blocks) - cfg.trainable_blocks:], bb._conv_head, bb._bn1, net.projection]
    for m in train_mods:
        for prm in m.parameters():
            prm.requires_grad_(True)
    return model, p


def export(model: Whitened, out: str | Path, info: dict) -> str:
    """Network at 224 px → ONNX, the (fixed) whitening appended; returns the model version id."""
    out = Path(out)
    raw = out.with_name(out.stem + "-raw.onnx")
    export_onnx(model.net, raw, 224)
    version = append_whitening(raw, out, model.mean.numpy(), model.projection.numpy(), info)
    raw.unlink()
    return version


def train(cfg: DesignConfig) -> dict:
    """One run: served model → design-identity fine-tuning → ONNX (float32) + INT8.

    Returns:
        JSON-able summary (also ``runs/embedder/<run_name>/summary.json``).

    Raises:
        ValueError: no signal switched on.
        FileNotFoundError: base model or engine set missing.
    """
    if not (cfg.engine or cfg.rims):
        raise ValueError("switch on at least one of engine, rims")
    t0 = time.time()
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    run_dir = D.DEFAULT_RUNS / cfg.run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    log_file = open(run_dir / "train.log", "a", encoding="utf-8")

    def log(msg: dict | str) -> None:
        line = json.dumps(msg) if isinstance(msg, dict) else msg
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    log({"config": asdict(cfg)})
    model, p = build_model(cfg)
    anchor = {n: q.detach().clone() for n, q in model.named_parameters()}
    if cfg.init:
        state = {k: v for k, v in torch.load(cfg.init, weights_only=False)["model"].items()
                 if not k.startswith("head.")}  # head.* aliases net.* (its block numbering depends on the cut)
        missing = [k for k in model.load_state_dict(state, strict=False).missing_keys if not k.startswith("head.")]
        if missing:
            raise ValueError(f"{cfg.init} lacks {missing[:3]}")
        log(f"weights from {cfg.init}")
    teacher = make_session(Path(cfg.base), cfg.threads) if cfg.preserve > 0 or cfg.ce_weight > 0 else None
    prefix_path = run_dir / "prefix.onnx"
    _export_prefix(model.net, model.start, prefix_path, cfg.size)
    prefix = make_session(prefix_path, cfg.threads)
    batches = Batches(cfg, rng)
    info = {"engine_designs": len(batches.views), "engine_views": sum(map(len, batches.views)),
            "hard_negative_pairs": sum(1 for x in batches.partner if x >= 0) // 2,
            "real_rims": len(batches.rims), "stanford_cars": len(batches.cars), "stanford_wheel_crops": len(batches.wheels)}
    log({"pool": info, "gem_p": p, "seconds": round(time.time() - t0, 1)})
    named = [(n, q) for n, q in model.named_parameters() if q.requires_grad]
    params = [q for _, q in named]
    start = [anchor[n] for n, _ in named]  # the L2-SP anchor: the served weights
    proj = set(map(id, model.net.projection.parameters()))
    proxies = nn.Parameter(torch.zeros(2 * D.TRAIN_MAX_CLASS, 512))
    if cfg.ce_weight > 0:  # imprinted (Qi et al., CVPR 2018): mean served embedding of up to 8 pictures per proxy
        with torch.no_grad():
            groups: dict[int, list] = {}
            for it in batches.cars:
                groups.setdefault(it.class_id - 1, []).append(it)
            for it in batches.wheels:
                groups.setdefault(D.TRAIN_MAX_CLASS + it.class_id - 1, []).append(it)
            for c, its in groups.items():
                e = teacher.run(None, {"pixels": to_model_input([D.load_rgb(i) for i in its[:8]], 224)})[0]
                proxies[c] = F.normalize(torch.from_numpy(e).mean(0), dim=0)
    opt = torch.optim.AdamW([{"params": [q for q in params if id(q) not in proj], "lr": cfg.lr},
                             {"params": [q for q in params if id(q) in proj] + [proxies], "lr": cfg.lr * 10}],
                            weight_decay=0.0)
    base_lrs = [g["lr"] for g in opt.param_groups]
    step = 0
    ckpt = run_dir / "checkpoint.pt"
    if cfg.resume and ckpt.is_file():
        ck = torch.load(ckpt, weights_only=False)
        model.load_state_dict(ck["model"])
        with torch.no_grad():
            proxies.copy_(ck["proxies"])
        opt.load_state_dict(ck["opt"])
        rng.bit_generator.state = ck["rng"]
        batches.queues = ck["queues"]
        torch.set_rng_state(ck["torch_rng"])
        step = ck["step"]
        log(f"resumed at step {step}")
    window: dict[str, float] = {}
    t_train = time.time()
    while step < cfg.steps:
        views, labels, real, target = batches()
        for g, b in zip(opt.param_groups, base_lrs):
            g["lr"] = b * warmup_cosine(step, cfg.warmup, cfg.steps)
        fmap = prefix.run(None, {"pixels": _to_tensor(views).numpy()})[0]
        z = model.tail(torch.from_numpy(fmap))
        terms = {}
        lab = labels >= 0
        terms["supcon"] = supcon_loss(z[torch.from_numpy(lab)], torch.from_numpy(labels[lab]), cfg.temperature)
        if teacher is not None and real.any():
            with torch.no_grad():
                z0 = torch.from_numpy(teacher.run(None, {"pixels": to_model_input(list(views[real]), 224)})[0])
            terms["preserve"] = cfg.preserve * (1 - (z[torch.from_numpy(real)] * F.normalize(z0, dim=1)).sum(1)).mean()
        if cfg.ce_weight > 0:
            terms["ce"] = cfg.ce_weight * normalized_softmax_ce(z, proxies, torch.from_numpy(target), cfg.ce_temperature)
        if cfg.l2sp > 0:
            terms["l2sp"] = cfg.l2sp * sum(((q - q0) ** 2).sum() for q, q0 in zip(params, start))
        loss = sum(terms.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        for k, v in terms.items():
            window[k] = window.get(k, 0.0) + float(v)
        window["n"] = window.get("n", 0) + 1
        step += 1
        if step % 10 == 0 or step <= 3 or step == cfg.steps:
            n = window.pop("n")
            log({"step": step, **{k: round(v / n, 4) for k, v in window.items()},
                 "lr": round(opt.param_groups[0]["lr"], 7), "min": round((time.time() - t_train) / 60, 2)})
            window = {}
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            torch.save({"model": model.state_dict(), "proxies": proxies.detach(), "opt": opt.state_dict(), "step": step, "rng": rng.bit_generator.state,
                        "queues": batches.queues, "torch_rng": torch.get_rng_state()}, ckpt)
    train_s = time.time() - t_train
    model.eval()
    out = run_dir / "model.onnx"
    from designsearch.versioning import file_version

    version = export(model, out, {"method": "served learned whitening (Radenovic et al., TPAMI 2018), kept fixed through "
                                            "design-identity fine-tuning (train_design)", "source_model": file_version(cfg.base),
                                  "run": cfg.run_name})
    from designsearch.training import quantize as Q

    int8 = Q.quantize_embedder(out)
    summary = {"config": asdict(cfg), "command": "python -m designsearch.training.embedder.train_design "
               + " ".join(shlex.quote(a) for a in sys.argv[1:]), "pool": info, "steps_done": step,
               "seconds": {"train": round(train_s, 1), "total": round(time.time() - t0, 1)},
               "model": {"path": str(out), "version": version, "sha256": hashlib.sha256(out.read_bytes()).hexdigest()},
               "int8": {"path": str(int8), "sha256": hashlib.sha256(int8.read_bytes()).hexdigest()}}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    log({k: summary[k] for k in ("steps_done", "seconds", "model", "int8")})
    log_file.close()
    return summary


def parse_args(argv: list[str] | None = None) -> DesignConfig:
    """Flags → :class:`DesignConfig` (one flag per field; booleans take on/off)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, value in asdict(DesignConfig()).items():
        p.add_argument("--" + name.replace("_", "-"), type=_bool if isinstance(value, bool) else type(value), default=value)
    return DesignConfig(**vars(p.parse_args(argv)))


def main(argv: list[str] | None = None) -> dict:
    """CLI entry point: a run, or with ``--wise-alpha A`` (and ``--run-name``) the WiSE-FT export of a finished
    run to ``runs/embedder/<run>/wise-<A>/model.onnx`` (:func:`wise`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--wise-alpha" in argv:
        k = argv.index("--wise-alpha")
        alpha = float(argv[k + 1])
        del argv[k:k + 2]
        cfg = parse_args(argv)
        run_dir = D.DEFAULT_RUNS / cfg.run_name
        from .interpolate import wise

        out = wise(cfg, run_dir / "checkpoint.pt", alpha, run_dir / f"wise-{alpha}" / "model.onnx")
        print(json.dumps(out, indent=2))
        return out
    return train(parse_args(argv))


if __name__ == "__main__":
    main()
