#!/usr/bin/env bash
# Regenerate the TypeScript types and grpc-js stubs of the public API (package designsearch.v1)
# from ../../protos with ts-proto, using the protoc bundled with the Python venv's grpcio-tools
# (no system protoc needed).
#
# Usage: clients/node/generate.sh [OUT_DIR]     (or OUT_DIR=... / TS_PROTO_OUT=... in the environment)
#   OUT_DIR defaults to clients/node/src/generated (committed). The generated trees under OUT_DIR
#   (designsearch/, google/) are replaced.
#   PYTHON: the interpreter with grpcio-tools and googleapis-common-protos (default: <repo>/.venv/bin/python).
# Needs `npm ci` first (for node_modules/.bin/protoc-gen-ts_proto).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="${1:-${TS_PROTO_OUT:-$HERE/src/generated}}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
PLUGIN="$HERE/node_modules/.bin/protoc-gen-ts_proto"

if [ ! -x "$PLUGIN" ]; then
  echo "generate.sh: $PLUGIN not found; run 'npm ci' in $HERE first" >&2
  exit 1
fi
if [ ! -x "$PYTHON" ]; then
  echo "generate.sh: Python interpreter $PYTHON not found; set PYTHON (needs grpcio-tools)" >&2
  exit 1
fi

# Include dirs, in the order scripts/gen_protos.py uses: the repo's protos, grpcio-tools' well-known
# types, googleapis-common-protos (google/rpc/status.proto).
WKT="$("$PYTHON" -c 'import grpc_tools, pathlib; print(pathlib.Path(grpc_tools.__file__).parent / "_proto")')"
GOOGLEAPIS="$("$PYTHON" -c 'import google.rpc, pathlib; print(pathlib.Path(google.rpc.__path__[0]).parents[1])')"

mkdir -p "$OUT"
rm -rf "$OUT/designsearch" "$OUT/google"

# Only the public package's files are compiled; ts-proto also emits the imported google/* types
# (google/rpc/status, google/protobuf/field_mask, google/protobuf/any).
cd "$ROOT/protos"
"$PYTHON" -m grpc_tools.protoc \
  -I"$ROOT/protos" -I"$WKT" -I"$GOOGLEAPIS" \
  --plugin=protoc-gen-ts_proto="$PLUGIN" \
  --ts_proto_out="$OUT" \
  --ts_proto_opt=outputServices=grpc-js,esModuleInterop=true,env=node,annotateFilesWithVersion=false \
  designsearch/v1/common.proto designsearch/v1/gateway.proto

echo "generated TypeScript in $OUT" >&2
