#!/usr/bin/env bash
# Issue 9, tenth session: WiSE-FT weight interpolation between the served ce-b12 network (alpha 0) and the
# orbit + CE rotation-distilled student (alpha 1; train_distill --target-rotations 8 --ce-weight 0.2), then
# learned whitening, INT8, the eval-embedder rows and the served close-up rule's rows, per alpha.
#   bash scripts/embedder_interpolation.sh 0.5 0.7 0.85      (~12 min per alpha on 2 CPU threads)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
B=${B:-runs/embedder/rotd-orbit8-ce/weights.pt}
for A in "$@"; do
  R=runs/embedder/wise/a$A
  mkdir -p $R
  $PY -m designsearch.training.embedder.interpolate --a runs/embedder/ce-b12/weights.pt --b $B --alpha $A --out $R/model.onnx
  $PY -m designsearch.training.embedder.whitening --model $R/model.onnx --out $R/wheelembed-lite0-512.onnx
  $PY -m designsearch.training.quantize embedder --src $R/wheelembed-lite0-512.onnx --dst $R/wheelembed-lite0-512-int8.onnx
  $PY -m designsearch.training.embedder.evaluate --model $R/wheelembed-lite0-512-int8.onnx --name wise$A-int8 \
    --compare served=models/embedder/wheelembed-lite0-512-int8.onnx --no-baseline --output $R/eval.json
  $PY -m designsearch.training.embedder.rotation_pooling --model $R/wheelembed-lite0-512-int8.onnx --rotations 1 --query-turns 4 --out $R/rot-turns.json
  echo "DONE $A"
done
