# The two commands of the README:
#   make demo   - set everything up and run the exporter against a local demo cluster
#   make test   - set everything up and run the whole test suite (what CI runs)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint controlplane clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

controlplane:
	bash tools/controlplane/build.sh >/dev/null

demo: $(BIN)/.installed controlplane
	$(BIN)/flux-tenant-exporter demo

lint: $(BIN)/.installed
	$(BIN)/ruff check exporter tests
	$(BIN)/mypy

test: $(BIN)/.installed controlplane lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
