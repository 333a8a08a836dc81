#!/usr/bin/env bash
# Issue 9: WiSE-FT weight interpolation between two embedder weight files — A (alpha 0) and B (alpha 1), B
# fine-tuned from A — then learned whitening, INT8 and the eval-embedder rows, per alpha. Tenth session (defaults):
# the served ce-b12 network and the orbit + CE rotation-distilled student, plus the served close-up rule's rows:
#   bash scripts/embedder_interpolation.sh 0.5 0.7 0.85      (~12 min per alpha on 2 CPU threads)
# Knobs (environment): A, B (weights), OUT (folder of the a<alpha>/ runs), NAME (result name prefix), CROPS (wheel
# crops), COMPARE (INT8 file evaluated beside), EVAL_EXTRA (more evaluate flags), TURNS (1: also the 4-query-turn
# rotation rows). scripts/embedder_designer_wise.sh runs it for the model served since the eleventh session.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
A=${A:-runs/embedder/ce-b12/weights.pt}
B=${B:-runs/embedder/rotd-orbit8-ce/weights.pt}
OUT=${OUT:-runs/embedder/wise}
NAME=${NAME:-wise}
CROPS=${CROPS:-runs/embedder/crops/segmenter}
COMPARE=${COMPARE:-models/embedder/wheelembed-lite0-512-int8.onnx}
EVAL_EXTRA=${EVAL_EXTRA:-}
TURNS=${TURNS:-1}
for ALPHA in "$@"; do
  R=$OUT/a$ALPHA
  mkdir -p $R
  $PY -m designsearch.training.embedder.interpolate --a $A --b $B --alpha $ALPHA --out $R/model.onnx
  $PY -m designsearch.training.embedder.whitening --model $R/model.onnx --crop-dir $CROPS --out $R/wheelembed-lite0-512.onnx
  $PY -m designsearch.training.quantize embedder --src $R/wheelembed-lite0-512.onnx --dst $R/wheelembed-lite0-512-int8.onnx
  # shellcheck disable=SC2086  # EVAL_EXTRA is a list of flags
  $PY -m designsearch.training.embedder.evaluate --crop-dir $CROPS --model $R/wheelembed-lite0-512-int8.onnx \
    --name $NAME$ALPHA-int8 --compare "served=$COMPARE" --no-baseline $EVAL_EXTRA --output $R/eval.json
  if [ "$TURNS" = 1 ]; then
    $PY -m designsearch.training.embedder.rotation_pooling --model $R/wheelembed-lite0-512-int8.onnx --rotations 1 \
      --query-turns 4 --out $R/rot-turns.json
  fi
  echo "DONE $ALPHA"
done
