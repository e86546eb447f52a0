# driftloop: `make demo` runs the whole loop on the embedded defaults; `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# Keep Prefect's state in the project and nothing phoning home (the machine has no network).
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1
export MLFLOW_DISABLE_TELEMETRY ?= true
export GX_ANALYTICS_ENABLED ?= false
# A new machine's first ephemeral Prefect API creates its database: give it longer than the 20 s default.
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120

.PHONY: install lock browser prometheus demo test test-unit test-flows test-integration bench-drift bench-window bench-evaluate bench-cycle bench-serve mlflow-ui up down ps clean

install: $(VENV)/.installed

# The exact versions the tests ran with (constraints.txt); pyproject.toml keeps the ranges.
$(VENV)/.installed: pyproject.toml constraints.txt
	@echo "installing driftloop and its dependencies into $(VENV) (a minute or two the first time)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

# Re-resolve the newest versions pyproject.toml admits into constraints.txt; then run `make test` before committing it.
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet -e '.[dev]'
	.venv-lock/bin/python -m pip freeze --exclude-editable > constraints.txt
	rm -rf .venv-lock
	@echo "constraints.txt re-resolved; run make test on it before committing"

# The browser tests drive Debian's chromium through Playwright (Playwright's own browser download needs a network we do not have).
CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { echo "installing Debian's chromium for the browser tests (needs root: apt-get)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

# The Prometheus test scrapes `driftloop serve-metrics` with Debian's prometheus (its service is not started: the test runs its own).
PROMETHEUS ?= /usr/bin/prometheus
prometheus:
	@test -x $(PROMETHEUS) || { echo "installing Debian's prometheus for the metrics test (needs root: apt-get)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus; }

# The demo's flow runs go to a throwaway Prefect API of their own: its events never reach
# the automations of the `make up` server. SCENARIO=loans runs examples/loans (weekly CSV, own model).
SCENARIO ?= churn
DEMO_CONFIG_churn := driftloop.yaml
DEMO_CONFIG_loans := examples/loans/driftloop.yaml
demo: install
	@test -n "$(DEMO_CONFIG_$(SCENARIO))" || { echo "unknown SCENARIO=$(SCENARIO): use churn or loans"; exit 2; }
	@mkdir -p $(CURDIR)/.prefect/demo  # Prefect makes only the last folder of PREFECT_HOME
	PREFECT_HOME=$(CURDIR)/.prefect/demo PREFECT_LOGGING_LEVEL=WARNING $(BIN)/python -m driftloop_flows.demo --config $(DEMO_CONFIG_$(SCENARIO))

# One pytest worker more than the cores (TEST_WORKERS=0 for one process): part of every worker's time is
# spent waiting on a server or a subprocess. Each test file runs on one worker, so a module's server or
# scenario is built once.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN) + 1 )))
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope

test: install browser prometheus
	$(PYTEST)

test-unit: install
	$(PYTEST) tests/unit

test-flows: install
	$(PYTEST) tests/flows

test-integration: install browser prometheus
	$(PYTEST) tests/integration

# Seconds and peak memory of the drift engine against a plain scipy loop (a few minutes).
bench-drift: install
	$(BIN)/python -m bench.drift_bench

bench-window: install
	$(BIN)/python -m bench.window_bench

# Seconds and peak memory of scoring, metric intervals, CBPE and the gate at 100k, 500k and 1M rows (several minutes).
bench-evaluate: install
	$(BIN)/python -m bench.evaluate_bench

# The real monitor flow at 100k, 1M and 5M rows per batch, stage by stage, against the floor (read + score + drift);
# JSON under bench/results/. About half an hour on 2 cores; --sizes to choose, e.g. ARGS="--sizes 100000 1000000".
bench-cycle: install
	$(BIN)/python -m bench.cycle_bench $(ARGS)

# `driftloop serve` (request log on, and off) against `mlflow models serve` on the same model: 1 and 100 rows per
# request at 1, 8 and 32 clients, the servers alternating; JSON under bench/results/. About five minutes.
bench-serve: install
	$(BIN)/python -m bench.serve_bench $(ARGS)

# The servers of `make up` on 127.0.0.1 (ops/stack.py: Prefect, MLflow, a worker, metrics, driftloop serve), prefect.yaml deployed.
up: install
	$(BIN)/python -m ops.stack up

down:
	$(BIN)/python -m ops.stack down

ps:
	$(BIN)/python -m ops.stack ps

mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db --host 127.0.0.1 --port 5000

clean:
	rm -rf data .prefect mlruns/mlflow.db mlruns/artifacts .driftloop-demo.json examples/loans/data examples/loans/mlruns examples/loans/.driftloop-demo.json
