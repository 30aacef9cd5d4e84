# yadtq: `make run` to try it, `make test` to test it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test unit integration bench-failover clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: install
	$(BIN)/yadtq run

test: install
	$(BIN)/python -m pytest tests -q

unit: install
	$(BIN)/python -m pytest tests/unit -q

integration: install
	$(BIN)/python -m pytest tests/integration -q

bench-failover: install
	$(BIN)/python bench/failover.py --rounds 5

clean:
	rm -rf $(VENV) .yadtq .pytest_cache *.egg-info
