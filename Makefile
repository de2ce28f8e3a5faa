# ordercopy — `make run` (embedded default, no services) and `make test` (the whole suite).
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: install run test lint typecheck check-services clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

## run: migrate the embedded default, seed the demo if empty, print a test API key,
## then start the API (port 8000), a worker and beat
run: install
	$(BIN)/ordercopy db upgrade
	$(BIN)/ordercopy demo seed --if-empty
	$(BIN)/ordercopy api-keys create --mode test --name "make run"
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/honcho start --port 8000 web worker beat

check-services: install
	$(BIN)/python -m tests.services

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

## test: ruff, mypy and the whole pytest suite on real PostgreSQL and Redis.
## Schemathesis makes its per-operation cases inside one pytest item: under xdist only
## one of them runs, so the fuzz run gets a process of its own.
test: check-services lint typecheck
	$(BIN)/pytest -n 2 --dist loadgroup --ignore=tests/api/test_fuzz.py
	$(BIN)/pytest -p no:xdist tests/api/test_fuzz.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

## bench: the benchmark suite (not part of `make test`); `make bench BENCH_ARGS=--quick` for a short run
.PHONY: bench
bench: check-services
	$(BIN)/python -m bench.run $(BENCH_ARGS)
	$(BIN)/python -m bench.api

## chaos: the fault-injection suite at full size (2,000 copies created over HTTP; its own
## PostgreSQL, Redis, workers, beats and web); writes tests/chaos/LATEST.md.
## Replay a run with `make chaos CHAOS_ARGS="--seed 123"`
.PHONY: chaos
chaos: install
	$(BIN)/python -m tests.chaos.run --copies 2000 --duration 240 --quiesce-timeout 120 \
		--report tests/chaos/LATEST.md $(CHAOS_ARGS)
