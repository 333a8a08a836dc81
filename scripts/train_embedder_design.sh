#!/usr/bin/env bash
# Issue 31: the embedder taught wheel-DESIGN identity by the wheel-design engine, starting from the committed embedder
# (car-model training, sha256:238a8089c268a7c7, served since 2026-11-30), judged on real pictures first. It is
# copied to var/models first, so that shipping a new model does not change what the recipe starts from; the
# recipe stops when that file is another one (BASE_SRC= another float32 file to start elsewhere). Nothing under
# models/ is written (ship with: designsearch ship-model runs/embedder/<run>/model.onnx --kind embedder).
# See models/embedder/MODEL_CARD.md ("Wheel-design identity", issue 31).
#
#   bash scripts/train_embedder_design.sh            (runs under runs/embedder/; each run resumes after a kill)
#
# Approach A (architecture: residual adapter on the frozen served embedding): design_adapter, ~10 min.
# Approach B (network: last MBConv blocks fine-tuned): train_design; B3 (shipped candidate) adds the car-model
# cross-entropy on Stanford wheel crops and whole cars; ~40 min each on 2 cores.
# The engine set (1,200 designs x 8 views + drawings + on-car, seed 0, ~55 min on 2 cores) is rendered first
# when it is missing; the Stanford wheel crops (~11 min) are cut on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SET=${SET:-var/wheelgen/set-v1}
BASE=var/models/wheelembed-before-issue31.onnx
mkdir -p runs/embedder var/models
[ -s "$SET/manifest.csv" ] || .venv/bin/designsearch render-wheels --designs 1200 --views 8 --seed 0 --real-models \
  --out "$SET" --quiet
BASE_SRC=${BASE_SRC:-models/embedder/wheelembed-lite0-512.onnx}
EXPECTED=${EXPECTED:-238a8089c268a7c79c02db84824f1020265887d5556ba31f8e1e644113968af1}
if [ ! -s "$BASE" ]; then
  if [ "$(sha256sum "$BASE_SRC" | cut -d' ' -f1)" != "$EXPECTED" ]; then
    echo "$BASE_SRC is not the embedder this recipe starts from (sha256 $EXPECTED); set BASE_SRC and EXPECTED" >&2
    exit 1
  fi
  cp "$BASE_SRC" "$BASE"
fi
[ -s "${BASE%.onnx}-int8.onnx" ] || "$PY" -m designsearch.training.quantize embedder --src "$BASE" \
  --dst "${BASE%.onnx}-int8.onnx"

"$PY" -m designsearch.training.embedder.design_adapter --base "$BASE" --engine-set "$SET" --run-name adapter-a1
"$PY" -m designsearch.training.embedder.train_design --base "$BASE" --engine-set "$SET" --run-name design-b1 \
  --steps 1000 --resume on
"$PY" -m designsearch.training.embedder.train_design --base "$BASE" --engine-set "$SET" --run-name design-b3 \
  --steps 900 --wheels 12 --ce-weight 1.0 --preserve 3.0 --p-oncar 0.3 --resume on

# Real rows first (wheel-vision, car-parts-50), then the engine rows, then the kept Stanford rows.
M=(runs/embedder/adapter-a1/model-int8.onnx runs/embedder/design-b1/model-int8.onnx runs/embedder/design-b3/model-int8.onnx)
"$PY" -m designsearch.training.embedder.evaluate --model "${M[2]}" --name design-b3 --compare "before=${BASE%.onnx}-int8.onnx" \
  --compare "adapter-a1=${M[0]}" --compare "design-b1=${M[1]}" --no-baseline --engine-set "$SET" \
  --output runs/embedder/eval-issue31.json
