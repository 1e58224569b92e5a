# One entry point: `make dev` runs the app, `make test` runs every test.
# Everything installs into .venv from the pinned versions in constraints.txt.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := -e platform -e apps/danmaku-events -e apps/danmaku-processor -e apps/danmaku-web
TEST_TOOLS := pytest pytest-timeout pytest-playwright playwright python-socketio[client] websocket-client ruff
INSTALLED := $(VENV)/.installed

.PHONY: install dev test lint bench bench-latency clean

install: $(INSTALLED)

$(INSTALLED): constraints.txt platform/pyproject.toml apps/*/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt $(PACKAGES) $(TEST_TOOLS)
	touch $@

dev: install
	$(BIN)/knit dev -f manifests/app

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .

bench: bench-latency

bench-latency: install
	$(BIN)/python bench/latency.py

clean:
	rm -rf $(VENV) .knit .pytest_cache
