#!/usr/bin/env bash
# Issue 31: the embedder taught wheel-DESIGN identity by the wheel-design engine, starting from the served embedder
# (car-model training + designer-view WiSE-FT, sha256:238a8089c268a7c7, served since 2026-11-30), judged on real
# pictures first; it reproduces the candidates of models/embedder/MODEL_CARD.md (chain B1 -> B4 -> B5 -> B6, none
# shipped). The start file is the committed models/embedder/wheelembed-lite0-512.onnx while it is that model, else
# the copy scripts/train_embedder.sh builds from ImageNet (runs/embedder/wise-designer/a0.35/, ~3 h on 2 cores);
# BASE_SRC= names another copy. It is copied to var/models first. Nothing under models/ is written
# (a candidate that passes the real rows ships with: designsearch ship-model runs/embedder/<run>/model.onnx --kind embedder).
# See models/embedder/MODEL_CARD.md ("Issue 31").
#
#   bash scripts/train_embedder_design.sh            (runs under runs/embedder/; each run resumes after a kill)
#
# Approach A (architecture: residual adapter on the frozen embedding): design_adapter, ~10 min.
# Approach B (network: last 6 MBConv blocks fine-tuned): train_design. B1 33 min; B3 (+ car-model CE) 37 min;
# B4 = B1 + 600 steps with Stanford wheel crops preserved, 30 min; B5 = B4 + 400 steps with Canny edge pairs, 15 min;
# B6 = B5 + 400 steps with designer-picture pairs, 17 min.
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
EXPECTED=238a8089c268a7c79c02db84824f1020265887d5556ba31f8e1e644113968af1
if [ -z "${BASE_SRC:-}" ]; then
  BASE_SRC=runs/embedder/wise-designer/a0.35/wheelembed-lite0-512.onnx
  [ "$(sha256sum models/embedder/wheelembed-lite0-512.onnx | cut -d' ' -f1)" = "$EXPECTED" ] && \
    BASE_SRC=models/embedder/wheelembed-lite0-512.onnx
fi
if [ ! -s "$BASE" ]; then
  if [ ! -s "$BASE_SRC" ]; then
    echo "$BASE_SRC missing: build it with bash scripts/train_embedder.sh (from ImageNet), or set BASE_SRC" >&2
    exit 1
  fi
  got=$(sha256sum "$BASE_SRC" | cut -d' ' -f1)
  [ "$got" = "$EXPECTED" ] || echo "note: $BASE_SRC is sha256 $got, the recorded start was $EXPECTED" >&2
  cp "$BASE_SRC" "$BASE"
fi
[ -s "${BASE%.onnx}-int8.onnx" ] || "$PY" -m designsearch.training.quantize embedder --src "$BASE" \
  --dst "${BASE%.onnx}-int8.onnx"

"$PY" -m designsearch.training.embedder.design_adapter --base "$BASE" --engine-set "$SET" --run-name adapter-a1
"$PY" -m designsearch.training.embedder.train_design --base "$BASE" --engine-set "$SET" --run-name design-b1 \
  --steps 1000 --resume on
"$PY" -m designsearch.training.embedder.train_design --base "$BASE" --engine-set "$SET" --run-name design-b3 \
  --steps 900 --wheels 12 --ce-weight 1.0 --preserve 3.0 --p-oncar 0.3 --resume on
"$PY" -m designsearch.training.embedder.train_design --base "$BASE" --engine-set "$SET" --run-name design-b4 \
  --init runs/embedder/design-b1/checkpoint.pt --steps 600 --wheels 12 --preserve 1.0 --p-oncar 0.3 --resume on
"$PY" -m designsearch.training.embedder.train_design --base "$BASE" --engine-set "$SET" --run-name design-b5 \
  --init runs/embedder/design-b4/checkpoint.pt --steps 400 --wheels 8 --edge-pairs 6 --preserve 1.0 --p-oncar 0.3 \
  --resume on
"$PY" -m designsearch.training.embedder.train_design --base "$BASE" --engine-set "$SET" --run-name design-b6 \
  --init runs/embedder/design-b5/checkpoint.pt --steps 400 --wheels 8 --edge-pairs 4 --designer-pairs 6 --preserve 1.0 \
  --p-oncar 0.3 --resume on

# Real rows first (wheel-vision, car-parts-50), then the engine rows, then the kept Stanford rows.
for run in adapter-a1 design-b1 design-b3 design-b4 design-b5 design-b6; do
  "$PY" -m designsearch.training.embedder.wheel_rows --model "runs/embedder/$run/model-int8.onnx" \
    --out "runs/embedder/wheel-rows-$run.json"
done
M=runs/embedder
"$PY" -m designsearch.training.embedder.evaluate --model "$M/design-b5/model-int8.onnx" --name design-b5 \
  --compare "before=${BASE%.onnx}-int8.onnx" --compare "adapter-a1=$M/adapter-a1/model-int8.onnx" \
  --compare "design-b1=$M/design-b1/model-int8.onnx" --compare "design-b3=$M/design-b3/model-int8.onnx" \
  --compare "design-b4=$M/design-b4/model-int8.onnx" --compare "design-b6=$M/design-b6/model-int8.onnx" \
  --no-baseline --wheel-rows off \
  --crop-dir runs/embedder/crops/segmenter --output runs/embedder/eval-issue31.json
# ... and the designer pictures made from real held-out photos, through the product (the row that withdrew B5)
"$PY" benchmarks/designer_queries.py --out runs/designer_queries_served.json
for run in design-b5 design-b6; do
  DESIGNSEARCH_EMBEDDER_MODEL_PATH="$PWD/$M/$run/model-int8.onnx" "$PY" benchmarks/designer_queries.py \
    --var "var/bench-designer-$run" --out "runs/designer_queries_$run.json" --compare runs/designer_queries_served.json
done
