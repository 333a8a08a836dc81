#!/usr/bin/env bash
# Reproduce the shipped embedder (models/embedder/wheelembed-lite0-512.onnx and its INT8 quantisation
# wheelembed-lite0-512-int8.onnx): the ce-b12 network (last 12 of 16 MBConv blocks fine-tuned, seed 1,
# 10 epochs, ~65 min on 2 CPU cores), its weights re-exported with GeM pooling (p = 2), then learned
# whitening fitted on the training classes (~1.3 min),
# INT8 quantisation (~0.5 min), the Verify thresholds (~1.6 min) and the evaluation on the validation
# classes 79-98, the model alone and as served (catalogue-side flip). See models/embedder/MODEL_CARD.md.
#
#   bash scripts/train_embedder.sh [RUNS_DIR]      (default runs/; needs runs/seg-v4 from
#                                                   scripts/train_segmenter_stages.sh for the crops)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
PY=${PY:-.venv/bin/python}
OUT="$RUNS/embedder/ce-b12"
"$PY" -m designsearch.training.embedder.train --data ../shared/data --crop-source segmenter \
  --segmenter "$RUNS/seg-v4/wheelseg-lite0.onnx" --seed 1 --trainable-blocks 12 --cache-block 4 --epochs 10 \
  --wheel-rotation 45 --runs "$RUNS/embedder" --output "$OUT/model.onnx" --no-eval
cp "$RUNS/embedder/wheelembed-lite0-512.pt" "$OUT/weights.pt"
"$PY" -m designsearch.training.embedder.export --weights "$OUT/weights.pt" --gem-p 2 --out "$OUT-gem2/model.onnx"
"$PY" -m designsearch.training.embedder.whitening --model "$OUT-gem2/model.onnx" \
  --crop-dir "$RUNS/embedder/crops/segmenter" --out models/embedder/wheelembed-lite0-512.onnx
"$PY" -m designsearch.training.quantize embedder
"$PY" -m designsearch.training.verify_calibration
"$PY" -m designsearch.training.embedder.evaluate --crop-dir "$RUNS/embedder/crops/segmenter" \
  --model models/embedder/wheelembed-lite0-512.onnx --name gem2-lw --compare ce-b12="$OUT/model.onnx" \
  --compare gem2-lw-int8=models/embedder/wheelembed-lite0-512-int8.onnx
# ... and as served (the gateway indexes whole pictures flip-averaged: whole-car gallery vectors mirrored)
"$PY" -m designsearch.training.embedder.evaluate --crop-dir "$RUNS/embedder/crops/segmenter" \
  --model models/embedder/wheelembed-lite0-512-int8.onnx --name gem2-lw-int8 --compare ce-b12="$OUT/model.onnx" \
  --compare gem2-lw=models/embedder/wheelembed-lite0-512.onnx --mirror-catalogue \
  --output benchmarks/results/embedder_eval_served.json
