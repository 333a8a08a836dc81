# designsearch — the two set-up commands are `make demo` (main job) and `make test` (tests).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK=1

.PHONY: install system-deps demo test protos bench up clean

system-deps:  ## redis-server (tests, demo), postgresql (catalogue tests) and docker-compose (validates docker-compose.yml) from Debian (root or sudo)
	@command -v redis-server >/dev/null && command -v docker-compose >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq redis-server docker-compose postgresql; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq redis-server docker-compose postgresql; fi; }

$(BIN)/designsearch: requirements.lock pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	@touch $@

install: system-deps $(BIN)/designsearch  ## virtualenv with pinned packages + the ImageNet embedder exported to ONNX
	$(BIN)/designsearch export-embedder

demo: install  ## start everything, ingest the demo catalogue, query held-out images, write var/demo/results.html
	$(BIN)/designsearch demo

test: install  ## the whole test suite (starts real redis-server and services on free ports)
	$(BIN)/python -m pytest -q

protos:  ## regenerate designsearch/v1 (public) and designsearch/internal/v1 from protos/
	$(BIN)/python scripts/gen_protos.py

bench: install  ## FindSimilar latency per stage, cold and cached
	$(BIN)/python benchmarks/query_bench.py

up: install  ## run the stack until Ctrl-C
	$(BIN)/designsearch up

clean:
	rm -rf var/demo var/bench
