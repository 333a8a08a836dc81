"""Train the wheel segmenter on Car-Parts-Segmentation and export it to ONNX.

CLI::

    python -m designsearch.training.segmenter.train --data ../shared/data --out models/segmenter/ \
        --epochs 20 --seed 0

Writes ``<out>/wheelseg-lite0.onnx``, ``<out>/wheelseg-lite0.pt`` (state dict, for re-export with
:func:`reexport`; not needed at serving time), ``<out>/training.json`` (config, split, per-epoch losses,
validation IoU, timing, hardware) and ``<out>/val_files.txt`` (the validation file names).

Re-export of trained weights at another input size (no training)::

    python -m designsearch.training.segmenter.train --reexport runs/seg-v4/wheelseg-lite0.pt \
        --export-size 480 --out runs/seg-v4-480

Recipe: AdamW (Loshchilov & Hutter, ICLR 2019), the pretrained encoder at a 10x lower learning
rate than the decoder, one epoch of linear warm-up then cosine decay (Loshchilov & Hutter, SGDR,
ICLR 2017), BCE + soft Dice loss (Milletari et al., 2016), batch 8, augmentation from
:mod:`designsearch.training.segmenter.dataset`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import time
from pathlib import Path

import numpy as np
import torch

from designsearch.training.segmenter.dataset import WheelSegDataset, default_data_dir, load_samples, split_samples
from designsearch.training.segmenter.model import WheelSegNet, bce_dice_loss, export_onnx, scene_labels

#: File name of the exported model inside ``out``.
MODEL_FILE = "wheelseg-lite0.onnx"
#: PyTorch weights (state dict) saved next to it, for re-export at another input size.
CHECKPOINT_FILE = "wheelseg-lite0.pt"
#: Full training state after each epoch (model, optimiser, scheduler, history): ``--resume`` continues from it.
STATE_FILE = "train-state.pt"


def parse_source_p(text: str | None) -> dict[str, float]:
    """``"render=0.15,drawing=0.08"`` → ``{"render": 0.15, "drawing": 0.08}`` (sources of
    :data:`~designsearch.training.segmenter.synthetic.engine_mix.SOURCES`).

    Raises:
        ValueError: a malformed pair or a number that does not parse.
    """
    out = {}
    for part in filter(None, (text or "").split(",")):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"expected source=probability, got {part!r}")
        out[key.strip()] = float(value)
    return out


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.no_grad()
def _val_iou(model: WheelSegNet, val_ds: WheelSegDataset, threshold: float = 0.5) -> float:
    """Pooled pixel IoU (sum of intersections / sum of unions) at the network resolution."""
    model.eval()
    inter = union = 0.0
    for i in range(len(val_ds)):
        pixels, target = val_ds[i]
        logits = model(pixels[None])
        if isinstance(logits, tuple):
            logits = logits[0]
        pred = logits[0] > math.log(threshold / (1 - threshold))
        t = target.bool()
        inter += float((pred & t).sum())
        union += float((pred | t).sum())
    model.train()
    return inter / union if union else 1.0


def train(
    data: str | Path | None = None,
    out: str | Path = "models/segmenter",
    epochs: int = 20,
    seed: int = 0,
    input_size: int = 320,
    export_size: int | None = None,
    batch_size: int = 8,
    lr: float = 3e-3,
    encoder_lr_ratio: float = 0.1,
    weight_decay: float = 1e-4,
    val_fraction: float = 0.2,
    threads: int = 2,
    limit: int | None = None,
    val_every: int = 5,
    negative_p: float = 0.0,
    mix: str = "designer",
    epoch_items: int = 640,
    stanford_segmenter: str | Path | None = "models/segmenter/wheelseg-lite0.onnx",
    cache: str | Path = "runs/segmenter",
    photo_p: float = 0.4,
    closeup_p: float = 0.4,
    init: str | Path | None = None,
    car_negative_p: float | None = None,
    split_seed: int | None = None,
    engine_set: str | Path | None = None,
    source_p: dict[str, float] | None = None,
    scene_head: bool = False,
    scene_weight: float = 0.3,
    closeup_scale: tuple[float, float] = (0.55, 1.1),
    resume: bool = False,
    log=print,
) -> dict:
    """Train, export to ONNX and return the training record.

    Args:
        data: shared data folder holding ``car-parts-seg/`` (default ``<repo>/../shared/data``).
        out: output folder for the ONNX file, ``training.json`` and ``val_files.txt``.
        epochs: passes over the training images.
        seed: seeds the split, the initialisation of the decoder, augmentation and batch order.
        input_size: training crop side, pixels (multiple of 32).
        export_size: input side of the exported ONNX graph (default ``input_size``).
        batch_size: images per step.
        lr: decoder learning rate (the encoder gets ``lr * encoder_lr_ratio``).
        encoder_lr_ratio: encoder / decoder learning-rate ratio.
        weight_decay: AdamW weight decay.
        val_fraction: fraction of the images held out (seeded split, see
            :func:`~designsearch.training.segmenter.dataset.split_samples`).
        threads: torch intra-op threads.
        limit: use only the first ``limit`` training and validation images (smoke runs).
        val_every: compute the validation IoU every this many epochs (and after the last).
        negative_p: probability of a random zoomed crop (mostly wheel-free) per training item;
            0 reproduces the first released model (see the model card).
        mix: ``"designer"`` (default): car photos mixed with synthetic close-ups, line drawings
            and negatives (:class:`~designsearch.training.segmenter.synthetic.DesignerMixDataset`);
            ``"photos"``: car photos only (the first released model's recipe).
        epoch_items: items per epoch with ``mix="designer"``.
        stanford_segmenter: with ``mix="designer"``, the ONNX segmenter whose confident wheels of
            Stanford Cars classes 1-78 become extra close-up cut-outs (``None``: Car-Parts wheels only).
        cache: folder for cached cut-outs.
        photo_p, closeup_p: with ``mix="designer"``, the shares of car-photo items and synthetic
            close-ups (negatives get the rest).
        split_seed: seed of the train/validation split (``None``: ``seed``). A later stage of
            fine-tuning must keep the first stage's split, whatever its own ``seed``.
        car_negative_p: with ``mix="designer"``, the share of negatives that are car photos with the
            wheels masked out (``None``: negative kinds uniform).
        init: a state dict (``wheelseg-lite0.pt`` of an earlier run) to start from instead of the
            ImageNet encoder and a fresh decoder (fine-tuning in stages).
        engine_set: a ``designsearch render-wheels`` set whose TRAIN designs feed the ``render`` /
            ``drawing`` / ``oncar`` sources (issue 30).
        source_p: probabilities of the extra sources of
            :class:`~designsearch.training.segmenter.synthetic.engine_mix.RealWorldMixDataset` (engine
            renders, drawings, on-car composites, ``car-parts-50`` TRAIN rims and look-alikes); the designer mix
            gets the rest. Empty: the designer mix alone.
        scene_head: train the image-level head (none / close-up / scene) beside the mask, labels from the
            masks (:func:`~designsearch.training.segmenter.model.scene_labels`), cross-entropy weighted
            ``scene_weight``.
        closeup_scale: zoom range of the extra close-up sources (renders, drawings, real rims, look-alikes);
            above ~1.1 the frame cuts the rim, as in tight product shots.
        resume: continue from ``<out>/train-state.pt`` (written after every epoch) when it exists.
        log: callable receiving progress lines.

    Returns:
        The record also written to ``<out>/training.json``: config, ``val_files``, ``history``
        (per-epoch mean loss, validation pixel IoU at the training resolution, seconds),
        ``train_seconds``, ``model_file``, ``model_version``, ``sha256``, ``size_bytes``,
        ``hardware``.

    Raises:
        FileNotFoundError: the dataset is not found under ``data``.
    """
    t_start = time.perf_counter()
    torch.set_num_threads(threads)
    _seed_everything(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(data) if data is not None else default_data_dir()
    samples = load_samples(data)
    split_seed = seed if split_seed is None else split_seed
    train_s, val_s = split_samples(samples, val_fraction, split_seed)
    val_files = [s.file_name for s in val_s]
    if limit:
        train_s, val_s = train_s[:limit], val_s[: max(1, limit // 4)]
    log(f"train {len(train_s)} images ({sum(bool(s.polygons) for s in train_s)} with wheels), val {len(val_s)}")

    train_ds = WheelSegDataset(train_s, input_size, train=True, negative_p=negative_p, seed=seed)
    n_cutouts = {}
    if mix == "designer":
        from designsearch.training.segmenter import synthetic as syn

        cutouts = [c for s in train_s for c in syn.cutouts_from_sample(s)]
        n_cutouts["car_parts_train"] = len(cutouts)
        if stanford_segmenter:
            extra = syn.stanford_cutouts(data, stanford_segmenter, cache, log=log)
            n_cutouts["stanford_1_78"] = len(extra)
            cutouts += extra
        log(f"close-up cut-outs: {n_cutouts}")
        train_ds = syn.DesignerMixDataset(train_ds, cutouts, syn.PhotoBackgrounds(train_s), train_s, input_size,
                                          epoch_items=epoch_items, photo_p=photo_p, closeup_p=closeup_p,
                                          car_negative_p=car_negative_p, seed=seed)
    elif mix != "photos":
        raise ValueError(f"unknown mix {mix!r}; expected 'designer' or 'photos'")
    source_p = dict(source_p or {})
    n_sources = {}
    if source_p:
        from designsearch.training.segmenter import real_sets
        from designsearch.training.segmenter.synthetic.engine_mix import RealWorldMixDataset

        rims = [(it.rgb, it.mask) for it in real_sets.carparts50_items(data, "train", "rim") if it.boxes] \
            if source_p.get("rim") else []
        looks = [it.rgb for it in real_sets.carparts50_items(data, "train", "not_wheel")] if source_p.get("lookalike") else []
        train_ds = RealWorldMixDataset(train_ds, engine_set, rims, looks, input_size, source_p,
                                       epoch_items=epoch_items, seed=seed, closeup_scale=closeup_scale)
        n_sources = train_ds.counts
        log(f"extra sources {source_p}: pictures {n_sources}")
    val_ds = WheelSegDataset(val_s, input_size, train=False)
    generator = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        train_ds, batch_size=batch_size, shuffle=True, drop_last=len(train_ds) > batch_size, generator=generator
    )

    model = WheelSegNet(pretrained=init is None, return_logits=True, scene_head=scene_head)
    if init is not None:
        missing, _ = model.load_state_dict(torch.load(Path(init), map_location="cpu", weights_only=True), strict=False)
        if [k for k in missing if not k.startswith("scene.")]:
            raise ValueError(f"{init} lacks weights {missing}")
        log(f"initialised from {init}")
    optimizer = torch.optim.AdamW(
        [
            {"params": model.encoder.parameters(), "lr": lr * encoder_lr_ratio},
            {"params": model.decoder_parameters(), "lr": lr},
        ],
        weight_decay=weight_decay,
    )
    steps_per_epoch = len(loader)
    total = max(1, epochs * steps_per_epoch)
    warmup = min(steps_per_epoch, total // 2)

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    history = []
    first = 0
    state_path = out / STATE_FILE
    if resume and state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history, first = state["history"], state["epoch"]
        torch.set_rng_state(state["torch_rng"])
        log(f"resumed from {state_path} after epoch {first}")
    model.train()
    for epoch in range(first, epochs):
        t0 = time.perf_counter()
        losses = []
        for pixels, target in loader:
            pred = model(pixels)
            if scene_head:
                pred, scene = pred
                loss = bce_dice_loss(pred, target) + scene_weight * torch.nn.functional.cross_entropy(
                    scene, scene_labels(target))
            else:
                loss = bce_dice_loss(pred, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
        seconds = time.perf_counter() - t0
        last = epoch + 1 == epochs
        iou = _val_iou(model, val_ds) if last or (val_every and (epoch + 1) % val_every == 0) else None
        row = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_iou": iou, "seconds": seconds}
        history.append(row)
        shown = "-" if iou is None else f"{iou:.4f}"
        log(f"epoch {row['epoch']}/{epochs} loss {row['loss']:.4f} val_iou@{input_size} {shown} ({seconds:.0f} s)")
        torch.save(model.state_dict(), out / CHECKPOINT_FILE)  # checkpoint after every epoch
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "history": history, "epoch": epoch + 1, "torch_rng": torch.get_rng_state()}, state_path)

    train_seconds = time.perf_counter() - t_start
    model_path = out / MODEL_FILE
    torch.save(model.state_dict(), out / CHECKPOINT_FILE)
    version = export_onnx(model, model_path, export_size or input_size)
    import hashlib

    sha = hashlib.sha256(model_path.read_bytes()).hexdigest()
    record = {
        "config": {
            "data": str(data),
            "epochs": epochs,
            "seed": seed,
            "input_size": input_size,
            "export_size": export_size or input_size,
            "batch_size": batch_size,
            "lr": lr,
            "encoder_lr_ratio": encoder_lr_ratio,
            "weight_decay": weight_decay,
            "val_fraction": val_fraction,
            "threads": threads,
            "limit": limit,
            "val_every": val_every,
            "negative_p": negative_p,
            "mix": mix,
            "epoch_items": epoch_items,
            "stanford_segmenter": str(stanford_segmenter) if stanford_segmenter else None,
            "photo_p": photo_p,
            "closeup_p": closeup_p,
            "init": str(init) if init else None,
            "car_negative_p": car_negative_p,
            "split_seed": split_seed,
            "engine_set": str(engine_set) if engine_set else None,
            "source_p": source_p,
            "scene_head": scene_head,
            "scene_weight": scene_weight,
            "closeup_scale": list(closeup_scale),
        },
        "cutouts": n_cutouts,
        "extra_sources": n_sources,
        "n_train": len(train_s),
        "n_val": len(val_s),
        "val_files": val_files,
        "history": history,
        "train_seconds": train_seconds,
        "model_file": str(model_path),
        "model_version": version,
        "sha256": sha,
        "size_bytes": model_path.stat().st_size,
        "hardware": {
            "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": threads,
            "torch": torch.__version__,
        },
    }
    (out / "training.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    (out / "val_files.txt").write_text("\n".join(val_files) + "\n", encoding="utf-8")
    log(f"exported {model_path} ({record['size_bytes'] / 1e6:.1f} MB, {version}) in {train_seconds / 60:.1f} min")
    return record


def reexport(checkpoint: str | Path, onnx_path: str | Path, input_size: int) -> str:
    """Export saved weights (``wheelseg-lite0.pt``) to ONNX at another input size.

    The network is fully convolutional, so weights trained on ``S``-pixel crops can be served at
    another multiple of 32.

    Returns:
        The new file's model version (``"sha256:" + 16 hex``).

    Raises:
        FileNotFoundError: ``checkpoint`` missing.
        ValueError: ``input_size`` not a multiple of 32.
    """
    state = torch.load(Path(checkpoint), map_location="cpu", weights_only=True)
    model = WheelSegNet(pretrained=False, scene_head=any(k.startswith("scene.") for k in state))
    model.load_state_dict(state)
    return export_onnx(model, onnx_path, input_size)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; see the module docstring."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=None, help="shared data folder holding car-parts-seg/ (default <repo>/../shared/data)")
    p.add_argument("--out", default="runs/segmenter/train",
                   help="output folder (default under runs/; the shipped models/segmenter only when named)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--input-size", type=int, default=320)
    p.add_argument("--export-size", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit", type=int, default=None, help="smoke runs: only this many training images")
    p.add_argument("--val-every", type=int, default=5)
    p.add_argument("--negative-p", type=float, default=0.0, help="probability of a random zoomed (mostly wheel-free) crop")
    p.add_argument("--mix", default="designer", choices=["designer", "photos"],
                   help="designer: car photos + synthetic close-ups, line drawings, negatives; photos: car photos only")
    p.add_argument("--epoch-items", type=int, default=640)
    p.add_argument("--stanford-segmenter", default="models/segmenter/wheelseg-lite0.onnx",
                   help="segmenter whose confident Stanford Cars 1-78 wheels become extra cut-outs ('' = none)")
    p.add_argument("--cache", default="runs/segmenter")
    p.add_argument("--photo-p", type=float, default=0.4, help="share of car-photo items (designer mix)")
    p.add_argument("--closeup-p", type=float, default=0.4, help="share of synthetic close-ups (designer mix)")
    p.add_argument("--init", default=None, help="start from this state dict (.pt of an earlier run)")
    p.add_argument("--reexport", default=None, metavar="CHECKPOINT",
                   help="no training: export this state dict at --export-size to <out>/wheelseg-lite0.onnx")
    p.add_argument("--encoder-lr-ratio", type=float, default=0.1)
    p.add_argument("--split-seed", type=int, default=None,
                   help="seed of the train/validation split (default: --seed); keep it fixed across stages")
    p.add_argument("--car-negative-p", type=float, default=None,
                   help="share of negatives that are car photos with the wheels masked out (default: uniform kinds)")
    p.add_argument("--engine-set", default=None, help="designsearch render-wheels set (its TRAIN designs)")
    p.add_argument("--source-p", default="", help="extra sources, e.g. render=0.15,drawing=0.08,oncar=0.1,rim=0.1,lookalike=0.1")
    p.add_argument("--scene-head", action="store_true", help="train the image-level head (none / close-up / scene)")
    p.add_argument("--scene-weight", type=float, default=0.3)
    p.add_argument("--closeup-scale", default="0.55,1.1",
                   help="zoom range LO,HI of the extra close-up sources (above ~1.1 the frame cuts the rim)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/train-state.pt")
    a = p.parse_args(argv)
    if a.reexport:
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        version = reexport(a.reexport, out / MODEL_FILE, a.export_size or a.input_size)
        print(f"exported {a.reexport} at {a.export_size or a.input_size} px to {out / MODEL_FILE} ({version})", flush=True)
        return 0
    train(
        data=a.data,
        out=a.out,
        epochs=a.epochs,
        seed=a.seed,
        input_size=a.input_size,
        export_size=a.export_size,
        batch_size=a.batch_size,
        lr=a.lr,
        threads=a.threads,
        limit=a.limit,
        val_every=a.val_every,
        negative_p=a.negative_p,
        mix=a.mix,
        epoch_items=a.epoch_items,
        stanford_segmenter=a.stanford_segmenter or None,
        cache=a.cache,
        photo_p=a.photo_p,
        closeup_p=a.closeup_p,
        init=a.init,
        encoder_lr_ratio=a.encoder_lr_ratio,
        car_negative_p=a.car_negative_p,
        split_seed=a.split_seed,
        engine_set=a.engine_set,
        source_p=parse_source_p(a.source_p),
        scene_head=a.scene_head,
        scene_weight=a.scene_weight,
        closeup_scale=tuple(float(v) for v in a.closeup_scale.split(",")),
        resume=a.resume,
        log=lambda s: print(s, flush=True),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
