#!/usr/bin/env bash
# Issue 9, eleventh session: designer-view distillation from the ce-b12 + GeM + whitening network
# (sha256:cdf84e56f72da792, served until this session), then WiSE-FT interpolation back towards it —
# runnable on a fresh machine (no runs/ from an earlier session):
#   1. that float32 file ($BASE, built from ImageNet by scripts/train_embedder.sh, which runs this script;
#      it is no longer committed) imported as PyTorch weights (import_onnx: BatchNorm folded, exact);
#   2. orbit + CE distillation with 3 designer-style views per training wheel (~80 min on 2 CPU threads);
#   3. for each alpha (scripts/embedder_interpolation.sh): weights (1 - alpha)·base + alpha·student, GeM 2,
#      whitening, INT8, eval-embedder (as served) on classes 79-98 against the served INT8 file on the same crops.
#   bash scripts/embedder_designer_wise.sh 0.35 0.5 0.7 0.85     (alpha 0.35 is served since this session)
# The crops come from the served segmenter's weights at 448 px (runs/seg-v4/wheelseg-lite0.onnx, the
# input size of the committed 480 px file set to 448: the net is fully convolutional), as for ce-b12.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RUNS=${RUNS:-runs}
BASE=${BASE:-$RUNS/embedder/base/wheelembed-lite0-512.onnx}
A=$RUNS/embedder/served/weights.pt
S=$RUNS/embedder/rotd-orbit8-ce-designer
CROPS=$RUNS/embedder/crops/segmenter
SEG=$RUNS/seg-v4/wheelseg-lite0.onnx
[ -f "$SEG" ] || "$PY" -c "from designsearch.training.segmenter.model import set_onnx_input_size as f; \
f('models/segmenter/wheelseg-lite0.onnx', '$SEG', 448)"
if [ ! -f "$BASE" ]; then echo "$BASE missing: run scripts/train_embedder.sh (it builds it from ImageNet, then runs this)" >&2; exit 1; fi
[ -f $A ] || "$PY" -m designsearch.training.embedder.import_onnx --model "$BASE" --out $A
[ -f $S/weights.pt ] || "$PY" -m designsearch.training.embedder.train_distill --teacher $A --runs "$RUNS/embedder" \
  --segmenter "$SEG" --seed 1 --epochs 6 --target-rotations 8 --ce-weight 0.2 \
  --designer-views 3 --output $S/model.onnx
PY="$PY" A="$A" B="$S/weights.pt" OUT="$RUNS/embedder/wise-designer" NAME=wise-designer CROPS="$CROPS" \
  COMPARE="${COMPARE:-models/embedder/wheelembed-lite0-512-int8.onnx}" EVAL_EXTRA=--mirror-catalogue TURNS=0 \
  bash scripts/embedder_interpolation.sh "$@"
