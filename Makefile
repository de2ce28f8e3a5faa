# ordercopy — `make run` (embedded default, no services) and `make test` (the whole suite).
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
# `make run`'s web process: HOST=0.0.0.0 to reach it from other machines.
HOST   ?= 127.0.0.1
PORT   ?= 8000
# Installs come from the lock files (requirements/*.txt, `make lock` refreshes them):
# `make run` installs the runtime only, `make test` the development tools too.
RUN_STAMP := $(VENV)/.installed-run-$(shell cat pyproject.toml requirements/run.txt | sha1sum | cut -c1-12)
DEV_STAMP := $(VENV)/.installed-dev-$(shell cat pyproject.toml requirements/dev.txt | sha1sum | cut -c1-12)
UV_VERSION := 0.13.9

.PHONY: install install-run lock run serve test test-fast lint typecheck check-services clean

define install_locked
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(1)
	$(BIN)/python -m pip install --quiet --no-deps -e .
endef

$(RUN_STAMP): pyproject.toml requirements/run.txt
	$(call install_locked,requirements/run.txt)
	rm -f $(VENV)/.installed-run-* && touch $@

# The dev lock holds the runtime too, so a dev install stands for a runtime one.
$(DEV_STAMP): pyproject.toml requirements/dev.txt
	$(call install_locked,requirements/dev.txt)
	rm -f $(VENV)/.installed-* && touch $@ $(RUN_STAMP)

install: $(DEV_STAMP)

install-run: $(RUN_STAMP)

## lock: resolve pyproject.toml's dependencies again into requirements/run.txt and
## requirements/dev.txt (every platform, hashes); pinned versions stay unless they must move.
## `make lock LOCK_ARGS=--upgrade` takes the newest allowed.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
		--annotation-style line --custom-compile-command "make lock" $(LOCK_ARGS) \
		pyproject.toml --extra run -o requirements/run.txt
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
		--annotation-style line --custom-compile-command "make lock" $(LOCK_ARGS) \
		pyproject.toml --extra run --extra dev -o requirements/dev.txt

## run: install the runtime, then `make serve`
run: install-run serve

## serve: migrate the embedded default (or ORDERCOPY_DATABASE_URL), seed the demo if empty,
## print a new test API key and what to try next, then start the API on HOST:PORT
## (127.0.0.1:8000), a worker and beat until Ctrl-C
serve:
	$(BIN)/ordercopy db upgrade
	$(BIN)/ordercopy demo seed --if-empty
	@key=$$($(BIN)/ordercopy api-keys create --mode test --name "make run") && \
	url=http://$(HOST):$(PORT) && printf '%s\n' "" \
		"ordercopy: the API is starting on $$url (docs: $$url/api/docs); Ctrl-C stops everything." \
		"A new test-mode API key (shown once; only its hash is stored):" "" "    $$key" "" \
		"Next, in another terminal:" \
		"    .venv/bin/ordercopy copies list                # the demo's copies and how they ended" \
		"    curl -g -H 'Authorization: Bearer $$key' -H 'Accept: application/vnd.api+json' \\" \
		"        '$$url/api/order_copies?filter[q][status_eq]=failed&fields[order_copies]=status,errors_log'" \
		"    .venv/bin/ordercopy --help                     # orders, copies, subscriptions, status" ""
	HOST=$(HOST) PATH="$(abspath $(BIN)):$$PATH" $(BIN)/honcho start --port $(PORT) web worker webhooks beat

check-services: install
	$(BIN)/python -m tests.services

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

## test: ruff, mypy and the whole pytest suite on real PostgreSQL and Redis, with its 15
## slowest tests. Schemathesis makes its per-operation cases inside one pytest item: under
## xdist only one of them runs, so the fuzz run gets a process of its own, beside the rest
## (much of the suite waits on real processes); its output follows the suite's.
FUZZ_LOG := $(VENV)/fuzz.log
test: check-services lint typecheck
	@$(BIN)/pytest -p no:xdist tests/api/test_fuzz.py > $(FUZZ_LOG) 2>&1 & fuzz=$$!; \
	$(BIN)/pytest -n 2 --dist loadgroup --ignore=tests/api/test_fuzz.py --durations=15; \
	suite=$$?; wait $$fuzz; fuzzed=$$?; cat $(FUZZ_LOG); \
	test $$suite -eq 0 && test $$fuzzed -eq 0

## test-fast: the inner loop: the suite without the tests marked slow (real processes)
test-fast: check-services
	$(BIN)/pytest -n 2 --dist loadgroup -m "not slow" --ignore=tests/api/test_fuzz.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .cache

## bench: the benchmark suite (not part of `make test`); `make bench BENCH_ARGS=--quick` for a short run,
## `BENCH_ARGS=--smoke` for a tiny one that only proves every bench runs (`make test` runs each so)
.PHONY: bench
bench: check-services
	$(BIN)/python -m bench.run $(BENCH_ARGS)
	$(BIN)/python -m bench.api $(filter --smoke,$(BENCH_ARGS))
	$(BIN)/python -m bench.webhooks $(filter --quick --smoke,$(BENCH_ARGS))
	$(BIN)/python -m bench.large $(filter --smoke,$(BENCH_ARGS))
	$(BIN)/python -m bench.dashboard $(filter --smoke,$(BENCH_ARGS))

## chaos: the fault-injection suite at full size (2,000 copies created over HTTP; its own
## PostgreSQL, Redis, workers, beats and web); writes tests/chaos/LATEST.md.
## Replay a run with `make chaos CHAOS_ARGS="--seed 123"`
.PHONY: chaos
chaos: install
	$(BIN)/python -m tests.chaos.run --copies 2000 --duration 240 --quiesce-timeout 120 \
		--report tests/chaos/LATEST.md $(CHAOS_ARGS)

## bench-embedded: the embedded default as `make run` runs it (no services needed): copies/s
## drained over HTTP and idle CPU, against Kombu's own SQLAlchemy transport
.PHONY: bench-embedded
bench-embedded: install
	$(BIN)/python -m bench.embedded $(BENCH_ARGS)

## screenshots: the dashboard's pages as the browser tests see them, saved to docs/screenshots
## (headless Chromium at /usr/bin/chromium; PostgreSQL and Redis as for `make test`)
.PHONY: screenshots
screenshots: check-services
	DASHBOARD_SCREENSHOTS=docs/screenshots $(BIN)/pytest -n 0 -q tests/dashboard/test_browser.py
