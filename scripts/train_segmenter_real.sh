#!/usr/bin/env bash
# Issue 30: the segmenter trained on what designers send — the wheel-design engine's renders, line drawings and
# on-car composites (TRAIN designs only), the car-parts-50 TRAIN rims (masks from their plain background) and
# look-alikes (negatives), beside the car photos, pasted close-ups and negatives of the designer mix — then
# exported at 480 px, quantised to INT8 and evaluated on the REAL sets first. See models/segmenter/MODEL_CARD.md.
#
#   bash scripts/train_segmenter_real.sh [RUNS_DIR]          (default runs/; each stage resumes after a kill)
#
# Stage r1 (approach A, data): ImageNet encoder, fresh decoder, the mix below, 16 epochs.
# Stage r2 (approach B, architecture): r1 plus the image-level head (none / close-up / scene), 6 epochs.
# The engine set (1,200 designs x 8 views + drawings + on-car, seed 0, ~55 min on 2 cores) is rendered first
# when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
PY=${PY:-.venv/bin/python}
SET=${SET:-var/wheelgen/set-v1}
# Stanford close-up cut-outs: found by a committed segmenter (see scripts/train_segmenter_stages.sh).
OLD=var/models/wheelseg-cutouts.onnx
mkdir -p "$RUNS" var/models
[ -s "$SET/manifest.csv" ] || .venv/bin/designsearch render-wheels --designs 1200 --views 8 --seed 0 --real-models \
  --out "$SET" --quiet
[ -s "$OLD" ] || cp "${CUTOUT_SEGMENTER:-models/segmenter/wheelseg-lite0.onnx}" "$OLD"
SOURCES=${SOURCES:-render=0.14,drawing=0.08,oncar=0.10,rim=0.10,lookalike=0.12}
TRAIN=("$PY" -m designsearch.training.segmenter.train --epoch-items 640 --split-seed 0 --stanford-segmenter "$OLD"
       --engine-set "$SET" --source-p "$SOURCES" --car-negative-p 0.5 --negative-p 0.25 --export-size 480 --resume)

"${TRAIN[@]}" --out "$RUNS/seg-r1" --epochs 16 --seed 0 --photo-p 0.7 --closeup-p 0.15 --lr 3e-3 --val-every 8
"${TRAIN[@]}" --out "$RUNS/seg-r2" --init "$RUNS/seg-r1/wheelseg-lite0.pt" --epochs 6 --seed 1 --photo-p 0.7 \
  --closeup-p 0.15 --lr 1e-3 --encoder-lr-ratio 0.2 --scene-head --val-every 6

for v in seg-r1 seg-r2; do
  "$PY" -m designsearch.training.quantize segmenter --src "$RUNS/$v/wheelseg-lite0.onnx" \
    --dst "$RUNS/$v/wheelseg-lite0-int8.onnx"
  "$PY" -m designsearch.training.segmenter.evaluate --model "$RUNS/$v/wheelseg-lite0-int8.onnx" --no-classical \
    --engine-set "$SET" --out "$RUNS/$v/eval-int8.json"
done

# Served release (approach C): seg-r1 + the region verifier, fitted on TRAIN pictures (~6 min; writes the float32 and
# INT8 files with the `verify` head and their evaluation), then `designsearch ship-model $RUNS/seg-verify/wheelseg-lite0.onnx --kind segmenter`.
"$PY" -m designsearch.training.segmenter.verifier --model "$RUNS/seg-r1/wheelseg-lite0.onnx" --out "$RUNS/seg-verify" \
  --engine-set "$SET" --items 2500 --aug 600
"$PY" -m designsearch.training.segmenter.evaluate --model "$RUNS/seg-verify/wheelseg-lite0-int8.onnx" --no-classical \
  --engine-set "$SET" --out "$RUNS/seg-verify/eval-int8.json"
