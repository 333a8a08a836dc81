#!/usr/bin/env bash
# Reproduce the shipped segmenter (models/segmenter/wheelseg-lite0.onnx = seg-v4-480, and its INT8
# quantisation wheelseg-lite0-int8.onnx): three fine-tuning stages on the designer mix, all on the same
# train/validation split (split seed 0), the stage-3 weights exported at 480 px and quantised, then
# evaluation on the validation sets (a), (b), (c), (c2). About 60 min on 2 CPU cores. See models/segmenter/MODEL_CARD.md.
#
#   bash scripts/train_segmenter_stages.sh [RUNS_DIR]      (default runs/)
#
# The Stanford Cars close-up cut-outs are found by a committed segmenter ($CUTOUT_SEGMENTER, default the
# served models/segmenter/wheelseg-lite0.onnx), copied to var/models first so that the cut-outs do not
# change while a new model is shipped. (The recorded runs cut them with the segmenter of commit 79ef349, which
# is no longer committed; their cut-outs, and so the figures, differ slightly.) Each stage writes
# RUNS_DIR/seg-vN/{wheelseg-lite0.pt,wheelseg-lite0.onnx,record.json}; nothing under models/ is written
# (ship with: designsearch ship-model RUNS_DIR/seg-v4-480/wheelseg-lite0.onnx --kind segmenter).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
PY=${PY:-.venv/bin/python}
OLD=var/models/wheelseg-cutouts.onnx
mkdir -p "$RUNS" var/models
[ -s "$OLD" ] || cp "${CUTOUT_SEGMENTER:-models/segmenter/wheelseg-lite0.onnx}" "$OLD"
TRAIN=("$PY" -m designsearch.training.segmenter.train --epoch-items 640 --split-seed 0 --stanford-segmenter "$OLD")

# Stage 1: ImageNet encoder, fresh decoder; 40 % car photos, 40 % synthetic close-ups, 20 % negatives.
"${TRAIN[@]}" --out "$RUNS/seg-v2" --epochs 10 --seed 0 --export-size 384 --val-every 5
# Stage 2: more car photos, half of the negatives are cars with the wheels masked out.
"${TRAIN[@]}" --out "$RUNS/seg-v3" --init "$RUNS/seg-v2/wheelseg-lite0.pt" --epochs 6 --seed 0 \
  --photo-p 0.6 --closeup-p 0.25 --car-negative-p 0.5 --lr 1.5e-3 --encoder-lr-ratio 0.2 \
  --export-size 448 --val-every 6
# Stage 3: mostly car photos, a quarter of them zoomed wheel-free crops (roofs, windows, doors).
"${TRAIN[@]}" --out "$RUNS/seg-v4" --init "$RUNS/seg-v3/wheelseg-lite0.pt" --epochs 6 --seed 1 \
  --photo-p 0.8 --closeup-p 0.12 --car-negative-p 0.5 --negative-p 0.25 --lr 1e-3 --encoder-lr-ratio 0.2 \
  --export-size 448 --val-every 3

# Served at 480 px (the net is fully convolutional): the stage-3 weights re-exported, then quantised to INT8.
"$PY" -m designsearch.training.segmenter.train --reexport "$RUNS/seg-v4/wheelseg-lite0.pt" --export-size 480 \
  --out "$RUNS/seg-v4-480"
"$PY" -m designsearch.training.quantize segmenter --src "$RUNS/seg-v4-480/wheelseg-lite0.onnx" \
  --dst "$RUNS/seg-v4-480/wheelseg-lite0-int8.onnx"

for v in seg-v3 seg-v4 seg-v4-480; do
  "$PY" -m designsearch.training.segmenter.evaluate --model "$RUNS/$v/wheelseg-lite0.onnx" --no-classical \
    --out "$RUNS/$v/eval.json"
done
"$PY" -m designsearch.training.segmenter.evaluate --model "$RUNS/seg-v4-480/wheelseg-lite0-int8.onnx" --no-classical \
  --out "$RUNS/seg-v4-480/eval-int8.json"
