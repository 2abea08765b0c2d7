# The two commands of the README: `make quickstart` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# CPU build of PyTorch, pinned: an open range would pull a multi-GB CUDA build.
TORCH := torch==2.13.0
MEMBERS := core plugins/sentiment plugins/qa plugins/translation plugins/generation
PYTEST_ARGS ?=

.PHONY: install quickstart run-quickstart test test-fast lint format bench clean

# What the default job needs (the members and transformers for MiniLM-L6), then what the
# tests add (pytest, build tools, lm-evaluation-harness): `make quickstart` installs only the first.
$(BIN)/.installed-run: Makefile core/pyproject.toml $(wildcard plugins/*/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet $(foreach m,$(MEMBERS),-e $(m)) -e "core[hf]"
	touch $@

$(BIN)/.installed: $(BIN)/.installed-run
	$(BIN)/pip install --quiet $(foreach m,$(MEMBERS),-e $(m)) -e "core[test,hf,lm-eval]"
	touch $@

install: $(BIN)/.installed

# The job's 28.5-minute deadline counts from here, the install included (PLUGFORMER_JOB_START).
quickstart:
	@PLUGFORMER_JOB_START=$$(date +%s) $(MAKE) --no-print-directory run-quickstart

run-quickstart: $(BIN)/.installed-run
	$(BIN)/plugformer quickstart $(ARGS)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m "not slow and not network" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python benchmarks/perf/run.py

clean:
	rm -rf $(VENV) runs .pytest_cache
