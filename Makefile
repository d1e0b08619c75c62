# One way to run things. `make run` and `make test` set everything up first, on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup system-packages python-packages run test demo lint format check-config bench soak mixin clean

setup: system-packages python-packages

# Debian packages the tests and the benchmark need (installed only when missing).
system-packages:
	@bash .ci/install-packages

python-packages: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

run: python-packages
	$(BIN)/perf-exporter $(ARGS)

check-config: python-packages
	$(BIN)/perf-exporter --check-config $(ARGS)

lint: python-packages
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy exporter

format: python-packages
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: setup lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Everything running on free local ports: servers, the example app under load, perf-exporter,
# Prometheus with our rules, Alertmanager. Prints the URLs; Ctrl-C removes it all.
demo: setup
	$(BIN)/python -m examples.demo $(ARGS)

# Regenerate alerts/, dashboards/, docs/runbooks.md and the PrometheusRule (committed; tests compare them).
mixin: python-packages
	$(BIN)/python -m exporter mixin --out .

# perf-exporter against the Debian reference exporters (bounded: at most ten minutes)
bench: setup
	$(BIN)/python -m bench $(ARGS)

# perf-exporter for ten minutes at 1 s intervals while its targets flap: RSS, fds, tasks over time
soak: setup
	$(BIN)/python -m bench --soak 600 $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache test-artifacts
