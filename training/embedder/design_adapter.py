"""Residual design adapter on the served embedder's frozen embeddings (issue 31, approach A); export ONNX.

The probe of issue 31 found that a head trained freely on renders LOST real photo → photo
retrieval, while a residual adapter initialised at zero kept it: ``a(x) = normalise(x + f(x))``
with ``f`` linear (``W x + b``) or a one-hidden-layer MLP (``W2 relu(W1 x + b1) + b2``), ``W``/``W2``
zero at the start (so step 0 is the served model), AdamW weight decay. It is trained on the
served model's embeddings (computed once and cached under ``runs/embedder/``) with:

* supervised contrastive loss (Khosla et al., NeurIPS 2020, :func:`.contrastive.supcon_loss`) over
  the engine's TRAIN designs: every render, line drawing and on-car wheel crop of a design, as rendered
  and once more under :func:`.augment.wheel_design_view` (spin 0-360°, foreshortening, lighting,
  finish, stroke drawings), are positives;
* instance discrimination on the real ``car-parts-50`` TRAIN rims (``rim_views`` augmented views of
  each product shot, the same loss with their own labels) — switch ``--rims off`` for the ablation;
* preservation ``preserve * (1 - cos(a(x), x))`` on Stanford Cars training-class whole cars and the
  real rims (so the photo path stays where it was; Li & Hoiem, ECCV 2016, feature form).

Export: nodes ``/adapter/...`` appended after the served ``embedding`` output (kept float32 by
:func:`designsearch.training.quantize.embedder_float_nodes`), then INT8.

CLI::

    python -m designsearch.training.embedder.design_adapter --run-name adapter-a1 [--hidden 1024] [--rims off]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from onnx import helper
from torch import nn
from torch.nn import functional as F


from . import data as D
from .augment import wheel_design_view
from .contrastive import supcon_loss

#: Metadata key marking a model with the adapter appended.
METADATA_KEY = "designsearch.design_adapter"


@dataclass
class AdapterConfig:
    """Everything that determines a run (recorded in its summary); see the module docstring.

    Attributes:
        base: served float32 embedder ONNX.
        engine_set: rendered engine set (its ``train`` split only).
        data: shared data folder.
        seed: seed of augmentation, sampling and initialisation.
        hidden: hidden width of the MLP adapter (0 = linear adapter ``W x + b``).
        steps: optimisation steps; ``designs`` × ``views`` engine rows + ``rims`` × ``rim_pairs`` real rows per step.
        designs: engine designs per step.
        views: embeddings per engine design per step.
        rims: real rims per step (0 = off), each ``rim_pairs`` of its augmented views.
        rim_views: augmented views embedded per real rim.
        cars: Stanford whole cars embedded for the preservation term.
        preserve: weight of the preservation term.
        temperature: supervised-contrastive temperature.
        lr: AdamW learning rate (cosine decay).
        weight_decay: AdamW weight decay.
        run_name: folder under ``runs/embedder/``.
    """

    base: str = "models/embedder/wheelembed-lite0-512.onnx"
    engine_set: str = "var/wheelgen/set-v1"
    data: str = str(D.DEFAULT_DATA)
    seed: int = 0
    hidden: int = 0
    steps: int = 3000
    designs: int = 48
    views: int = 4
    rims: int = 32
    rim_pairs: int = 2
    rim_views: int = 8
    cars: int = 1000
    preserve: float = 1.0
    temperature: float = 0.1
    lr: float = 1e-3
    weight_decay: float = 1e-2
    run_name: str = "adapter"


class ResidualAdapter(nn.Module):
    """``a(x) = normalise(x + f(x))``; ``f`` linear (``hidden == 0``) or ``W2 relu(W1 x + b1) + b2``; last layer zero-initialised.

    Args: dim: embedding size ``D``; hidden: MLP width (0 = linear). Input/output float32 ``(N, D)``.
    """

    def __init__(self, dim: int = 512, hidden: int = 0) -> None:
        super().__init__()
        self.hidden = hidden
        self.fc1 = nn.Linear(dim, hidden) if hidden else None
        self.out = nn.Linear(hidden or dim, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        h = F.relu(self.fc1(x)) if self.fc1 is not None else x
        return F.normalize(x + self.out(h), dim=1, eps=1e-12)


def training_features(cfg: AdapterConfig, cache_dir: Path) -> dict[str, np.ndarray]:
    """Served embeddings of the training rows (cached as ``.npz`` keyed by base sha256, set and seed).

    Returns:
        ``x`` float32 ``(N, D)``, ``label`` int64 ``(N,)`` (design index; ``10**6 + rim`` for real rims;
        -1 for Stanford cars), ``real`` bool ``(N,)``.
    """
    from designsearch.training.segmenter.real_sets import carparts50_items

    from .wheel_rows import Embedder, square_crop

    key = hashlib.sha256(json.dumps([hashlib.sha256(Path(cfg.base).read_bytes()).hexdigest(), str(cfg.engine_set),
                                     cfg.seed, cfg.rim_views, cfg.cars]).encode()).hexdigest()[:12]
    path = cache_dir / f"adapter-features-{key}.npz"
    if path.is_file():
        return dict(np.load(path))
    rng = np.random.default_rng(cfg.seed)
    embedder = Embedder(cfg.base, 2)
    set_dir = Path(cfg.engine_set)
    with (set_dir / "manifest.csv").open(encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "train"]
    ids = {d: i for i, d in enumerate(dict.fromkeys(r["design_id"] for r in rows))}
    xs, labels, real = [], [], []
    chunk = 256
    for s in range(0, len(rows), chunk):
        imgs, lab = [], []
        for r in rows[s:s + chunk]:
            rgb = cv2.cvtColor(cv2.imread(str(set_dir / r["file"])), cv2.COLOR_BGR2RGB)
            if r["kind"] == "oncar":
                rgb = square_crop(rgb, (int(r["x1"]), int(r["y1"]), int(r["x2"]), int(r["y2"])))
            imgs += [rgb, wheel_design_view(rgb, 224, rng, D.DOMAIN_WHEEL, 0.15 if r["kind"] != "drawing" else 0.0, 0.1)]
            lab += [ids[r["design_id"]]] * 2
        xs.append(embedder.embed(imgs))
        labels += lab
        real += [False] * len(lab)
    rims = carparts50_items(cfg.data, "train", "rim")
    for i, it in enumerate(rims):
        views = [it.rgb] + [wheel_design_view(it.rgb, 224, rng, D.DOMAIN_WHEEL, 0.3, 0.2) for _ in range(cfg.rim_views - 1)]
        xs.append(embedder.embed(views))
        labels += [10**6 + i] * len(views)
        real += [True] * len(views)
    cars = D.car_items(D.split_rows(D.load_rows(cfg.data))[0])
    pick = rng.choice(len(cars), size=min(cfg.cars, len(cars)), replace=False)
    xs.append(embedder.embed([D.load_rgb(cars[i]) for i in pick]))
    labels += [-1] * len(pick)
    real += [True] * len(pick)
    out = {"x": np.concatenate(xs), "label": np.array(labels, dtype=np.int64), "real": np.array(real)}
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def fit_adapter(feats: dict[str, np.ndarray], cfg: AdapterConfig, log=print) -> ResidualAdapter:
    """Train the adapter on cached embeddings (see the module docstring); deterministic for a seed."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed + 1)
    x = torch.from_numpy(feats["x"])
    label, real = feats["label"], feats["real"]
    design_rows: dict[int, np.ndarray] = {}
    for lab in np.unique(label[label >= 0]):
        if cfg.rims or lab < 10**6:
            design_rows[int(lab)] = np.flatnonzero(label == lab)
    designs = np.array([k for k in design_rows if k < 10**6])
    rims = np.array([k for k in design_rows if k >= 10**6])
    keep_rows = (np.flatnonzero(real & ((label < 0) | ((label >= 10**6) & (cfg.rims > 0)))) if cfg.preserve > 0
                 else np.array([], int))
    model = ResidualAdapter(x.shape[1], cfg.hidden)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    for step in range(cfg.steps):
        idx, lab = [], []
        for d in rng.choice(designs, cfg.designs, replace=False):
            r = rng.choice(design_rows[d], cfg.views, replace=False)
            idx += r.tolist()
            lab += [d] * len(r)
        if cfg.rims and len(rims):
            for d in rng.choice(rims, min(cfg.rims, len(rims)), replace=False):
                r = rng.choice(design_rows[d], cfg.rim_pairs, replace=False)
                idx += r.tolist()
                lab += [d] * len(r)
        z = model(x[idx])
        loss = supcon_loss(z, torch.tensor(lab), cfg.temperature)
        pres = torch.zeros(())
        if len(keep_rows):
            k = rng.choice(keep_rows, 256, replace=False)
            pres = cfg.preserve * (1 - (model(x[k]) * x[k]).sum(1)).mean()
        opt.zero_grad(set_to_none=True)
        (loss + pres).backward()
        opt.step()
        sched.step()
        if (step + 1) % 500 == 0 or step == 0:
            log({"step": step + 1, "supcon": round(loss.item(), 4), "preserve": round(pres.item(), 5)})
    return model.eval()


def append_adapter(src: str | Path, dst: str | Path, adapter: ResidualAdapter, info: dict) -> str:
    """Write ``src`` with the adapter appended to its ``embedding`` output (nodes ``/adapter/...``).

    Returns:
        The model version id of ``dst``.

    Raises:
        ValueError: ``src`` has no ``embedding`` output or already has an adapter.
    """
    from .whitening import append_to_embedding

    def f32(t):
        return t.detach().numpy().astype(np.float32)

    inits, nodes, h = {}, [], "embedding_unadapted"
    if adapter.fc1 is not None:
        inits.update({"/adapter/w1": f32(adapter.fc1.weight.T.contiguous()), "/adapter/b1": f32(adapter.fc1.bias)})
        nodes += [helper.make_node("MatMul", [h, "/adapter/w1"], ["/adapter/h0"], name="/adapter/MatMul1"),
                  helper.make_node("Add", ["/adapter/h0", "/adapter/b1"], ["/adapter/h1"], name="/adapter/Add1"),
                  helper.make_node("Relu", ["/adapter/h1"], ["/adapter/h"], name="/adapter/Relu")]
        h = "/adapter/h"
    inits.update({"/adapter/w2": f32(adapter.out.weight.T.contiguous()), "/adapter/b2": f32(adapter.out.bias),
                  "/adapter/eps": np.array(1e-12, dtype=np.float32)})
    nodes += [helper.make_node("MatMul", [h, "/adapter/w2"], ["/adapter/d0"], name="/adapter/MatMul2"),
              helper.make_node("Add", ["/adapter/d0", "/adapter/b2"], ["/adapter/d"], name="/adapter/Add2"),
              helper.make_node("Add", ["embedding_unadapted", "/adapter/d"], ["/adapter/y"], name="/adapter/Residual"),
              helper.make_node("ReduceL2", ["/adapter/y"], ["/adapter/norm"], name="/adapter/ReduceL2", axes=[1], keepdims=1),
              helper.make_node("Clip", ["/adapter/norm", "/adapter/eps"], ["/adapter/norm_clipped"], name="/adapter/Clip"),
              helper.make_node("Div", ["/adapter/y", "/adapter/norm_clipped"], ["embedding"], name="/adapter/Div")]
    return append_to_embedding(src, dst, METADATA_KEY, info, "embedding_unadapted", inits, nodes, adapter.out.out_features,
                               already="already has a design adapter")


def run(cfg: AdapterConfig) -> dict:
    """Features → adapter → ONNX float32 + INT8 under ``runs/embedder/<run_name>/``; returns the summary."""
    from designsearch.training import quantize as Q

    t0 = time.time()
    run_dir = D.DEFAULT_RUNS / cfg.run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    feats = training_features(cfg, D.DEFAULT_RUNS)
    t_feat = time.time() - t0
    log_lines = []

    def log(m):
        print(json.dumps(m), flush=True)
        log_lines.append(m)

    adapter = fit_adapter(feats, cfg, log)
    t_fit = time.time() - t0 - t_feat
    out = run_dir / "model.onnx"
    info = {"method": "residual adapter normalise(x + f(x)), supervised contrastive (Khosla et al., NeurIPS 2020)",
            "hidden": cfg.hidden, "run": cfg.run_name, "rims": cfg.rims > 0}
    version = append_adapter(cfg.base, out, adapter, info)
    int8 = Q.quantize_embedder(out)
    summary = {"config": asdict(cfg), "rows": {"engine": int((feats["label"] >= 0).sum() - (feats["label"] >= 10**6).sum()),
                                                "real_rims": int((feats["label"] >= 10**6).sum()),
                                                "stanford_cars": int((feats["label"] < 0).sum())},
               "log": log_lines, "seconds": {"features": round(t_feat, 1), "fit": round(t_fit, 1), "total": round(time.time() - t0, 1)},
               "model": {"path": str(out), "version": version, "sha256": hashlib.sha256(out.read_bytes()).hexdigest()},
               "int8": {"path": str(int8), "sha256": hashlib.sha256(int8.read_bytes()).hexdigest()}}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: list[str] | None = None) -> dict:
    """CLI; one flag per :class:`AdapterConfig` field (``--rims 0`` switches the real rims off)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, value in asdict(AdapterConfig()).items():
        p.add_argument("--" + name.replace("_", "-"), type=type(value), default=value)
    return run(AdapterConfig(**vars(p.parse_args(argv))))


if __name__ == "__main__":
    main()
