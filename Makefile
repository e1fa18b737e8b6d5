# The README's commands. Everything installs into .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# make bench BASELINE=<git revision>: both benchmarks also measure that revision, side by side
# make bench REPEAT=<n>: both benchmarks run everything n times and print medians (5 for a verdict)
BASELINE ?=
REPEAT ?=
BENCH_ARGS := $(if $(BASELINE), --baseline '$(BASELINE)')$(if $(REPEAT), --repeat '$(REPEAT)')

.PHONY: run test lint bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[postgres,redis,dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)  ## start the embedded server (SQLite) with the demo page
	$(BIN)/tocsin serve --demo

# -v: one line per test as it finishes, so a run of several minutes shows what it is doing
# (pyproject.toml adds the count done so far and, at the end, the slowest tests).
test: $(STAMP)  ## the whole suite (PostgreSQL tests skip, and say so, where it is missing)
	$(BIN)/pytest -v

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)  ## publish throughput, then live delivery (drawn in docs/live-bench.png); figures go in docs/benchmarks.md
	$(BIN)/python bench/publish.py$(BENCH_ARGS)
	$(BIN)/python bench/live.py --plot docs/live-bench.png$(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .bench-cache
