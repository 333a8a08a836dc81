#!/usr/bin/env bash
# Reproduce the shipped embedder (models/embedder/wheelembed-lite0-512.onnx and its INT8 quantisation
# wheelembed-lite0-512-int8.onnx) under RUNS_DIR only (shipping is the explicit `designsearch ship-model` step): the ce-b12 network (last 12 of 16 MBConv blocks fine-tuned, seed 1,
# 10 epochs, ~65 min on 2 CPU cores), its weights re-exported with GeM pooling (p = 2), then learned
# whitening fitted on the training classes (~1.3 min) — the base network served until the eleventh session
# (sha256:cdf84e56f72da792) —, then designer-view distillation from it and the WiSE-FT point alpha = 0.35
# between the two (scripts/embedder_designer_wise.sh, ~95 min), its whitening,
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
  --crop-dir "$RUNS/embedder/crops/segmenter" --out "$RUNS/embedder/base/wheelembed-lite0-512.onnx"
RUNS="$RUNS" COMPARE="$RUNS/embedder/base/wheelembed-lite0-512.onnx" bash scripts/embedder_designer_wise.sh 0.35
W="$RUNS/embedder/wise-designer/a0.35"
"$PY" -m designsearch.training.quantize embedder --src "$W/wheelembed-lite0-512.onnx" \
  --dst "$W/wheelembed-lite0-512-int8.onnx"
"$PY" -m designsearch.training.verify_calibration --embedder "$W/wheelembed-lite0-512-int8.onnx" \
  --out "$W/verify-calibration.json"
"$PY" -m designsearch.training.embedder.evaluate --crop-dir "$RUNS/embedder/crops/segmenter" \
  --model "$W/wheelembed-lite0-512.onnx" --name wise-designer0.35 --compare ce-b12="$OUT/model.onnx" \
  --compare wise-designer0.35-int8="$W/wheelembed-lite0-512-int8.onnx"
# ... and as served (the gateway indexes whole pictures flip-averaged: whole-car gallery vectors mirrored)
"$PY" -m designsearch.training.embedder.evaluate --crop-dir "$RUNS/embedder/crops/segmenter" \
  --model "$W/wheelembed-lite0-512-int8.onnx" --name wise-designer0.35-int8 --compare ce-b12="$OUT/model.onnx" \
  --compare wise-designer0.35="$W/wheelembed-lite0-512.onnx" --mirror-catalogue \
  --output "$W/embedder_eval_served.json"
echo "ship it with: designsearch ship-model $W/wheelembed-lite0-512.onnx --kind embedder" \
     "(copies it to models/, INT8, Verify calibration, card log); then benchmarks/results/ from $W"
