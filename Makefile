# The two commands of README.md (make demo, make test) set everything up on a fresh machine:
# they create .venv and install the package with what it needs the first time, and skip that after.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXTRAS := all,dev
STAMP := $(VENV)/.installed-$(EXTRAS)

.PHONY: demo test lint proto bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ranomaly --log-level WARNING demo

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

proto: $(STAMP)
	$(BIN)/python scripts/gen_protos.py

bench: $(STAMP)
	$(BIN)/ranomaly bench sim --json bench-sim.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache bench-sim.json
