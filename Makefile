# The two commands: `make train` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
CONFIG ?= pipelines/configs/default.yaml

.PHONY: train test test-slow score generate install lint

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("icpkit needs Python >= 3.11, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

train: $(STAMP)
	$(BIN)/python -m pipelines.train --config $(CONFIG)

generate: $(STAMP)
	$(BIN)/python -m pipelines.generate --accounts 20000 --out data/synthetic

# Everything but the tests marked slow (they run in CI after this, and with make test-slow).
test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

test-slow: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,spark]"
	$(BIN)/python -m pytest -m slow

score: $(STAMP)
	$(BIN)/python -m pipelines.score --config $(CONFIG)

lint: $(STAMP)
	$(BIN)/ruff check src pipelines tests benchmarks
