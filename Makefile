# designsearch — the two set-up commands are `make demo` (main job) and `make test` (tests).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK=1

.PHONY: install system-deps demo test protos clients node-client cpp-client bench up web clean

SYSTEM_PACKAGES := redis-server docker-compose postgresql chromium \
  g++ cmake pkg-config libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc \
  libosmesa6 libllvm19

system-deps:  ## Debian packages (root or sudo): redis-server (tests, demo), postgresql (catalogue tests), docker-compose (validates docker-compose.yml), chromium (browser tests), the C++ gRPC toolchain (C++ client), OSMesa + LLVM 19 (wheel-design engine: pyrender, Mitsuba), nodejs/npm (Node client) when absent
	@command -v redis-server >/dev/null && command -v docker-compose >/dev/null && command -v chromium >/dev/null \
	  && command -v npm >/dev/null && command -v grpc_cpp_plugin >/dev/null && command -v cmake >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
	  && ls /usr/lib/*/libOSMesa.so.8 /usr/lib/*/libLLVM.so.19* >/dev/null 2>&1 || { \
	  pkgs="$(SYSTEM_PACKAGES)"; command -v npm >/dev/null || pkgs="$$pkgs nodejs npm"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $$pkgs; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq $$pkgs; fi; }

$(BIN)/designsearch: requirements.lock requirements-render.lock pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q -r requirements-render.lock
	$(BIN)/pip install -q --no-deps pyrender==0.1.45
	$(BIN)/pip install -q --no-deps -e .
	@touch $@

install: system-deps $(BIN)/designsearch  ## virtualenv with pinned packages + the ImageNet embedder exported to ONNX + the Node client built
	$(BIN)/designsearch export-embedder
	@$(MAKE) --no-print-directory node-client

demo: install  ## start everything, ingest the demo catalogue, query held-out images, write var/demo/results.html
	$(BIN)/designsearch demo

test: install  ## the whole test suite (starts real redis-server and services on free ports)
	$(BIN)/python -m pytest -q

protos:  ## regenerate designsearch/v1 (public) and designsearch/internal/v1 from protos/
	$(BIN)/python scripts/gen_protos.py

NODE_SRC := $(shell find clients/node/src -name '*.ts' 2>/dev/null)

node-client:  ## npm ci + build of the Node/TypeScript client (skipped without npm)
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory clients/node/dist/find_similar.js; \
	else echo "npm not found: the Node client (clients/node) is not built; its tests skip"; fi

clients/node/node_modules/.package-lock.json: clients/node/package.json clients/node/package-lock.json
	cd clients/node && npm ci --no-audit --no-fund

clients/node/dist/find_similar.js: clients/node/node_modules/.package-lock.json clients/node/tsconfig.json $(NODE_SRC)
	cd clients/node && npm run build

cpp-client:  ## build the C++ client (clients/cpp; code generated from protos/ at build time) into var/build/cpp-client
	cmake -S clients/cpp -B var/build/cpp-client -DCMAKE_BUILD_TYPE=Release
	cmake --build var/build/cpp-client -j2

clients: clients/node/node_modules/.package-lock.json  ## regenerate the clients from protos/ (Node: committed TypeScript; C++: at build time) and build them
	PYTHON=$(abspath $(BIN)/python) clients/node/generate.sh
	cd clients/node && npm run build
	@$(MAKE) --no-print-directory cpp-client

bench: install  ## FindSimilar latency per stage, cold and cached
	$(BIN)/python benchmarks/query_bench.py

up: install  ## run the stack and the web page (http://127.0.0.1:8080/) until Ctrl-C
	$(BIN)/designsearch up

web: install  ## the web page alone, for a gateway already running on 127.0.0.1:50050
	$(BIN)/designsearch web

clean:
	rm -rf var/demo var/bench
