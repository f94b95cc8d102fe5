# The two commands of the README:
#   make demo   simulate the built-in phantom, train the small MSL model briefly, reconstruct, write figures
#   make test   run the full default test suite
# Both create the virtual environment .venv on first use (torch is installed first, pinned).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   ?= demo

.PHONY: install demo test test-all lint format bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/activate pyproject.toml setup.py
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install torch==2.13.0
	$(BIN)/python -m pip install -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/msl-recon demo --out $(DEMO)

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

test-all: $(VENV)/.installed
	$(BIN)/python -m pytest -q -m ''

lint: $(VENV)/.installed
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(VENV)/.installed
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/operators.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
