# yadtq: `make run` to try it, `make test` to test it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test unit integration bench-failover bench-memory bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@# PYTHONWARNINGS: setuptools' box about editable installs says nothing a user must act on.
	PYTHONWARNINGS=ignore $(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# make run [PORT=9092] [WEB_PORT=6066] [WORKERS=1] [LOG_LEVEL=info]
run: install
	$(BIN)/yadtq $(if $(LOG_LEVEL),--log-level $(LOG_LEVEL)) run $(if $(PORT),--port $(PORT)) \
		$(if $(WEB_PORT),--web-port $(WEB_PORT)) $(if $(WORKERS),--workers $(WORKERS))

test: install
	$(BIN)/python -m pytest tests -q

unit: install
	$(BIN)/python -m pytest tests/unit -q

integration: install
	$(BIN)/python -m pytest tests/integration -q

bench-failover: install
	$(BIN)/python bench/failover.py --rounds 5

# Worker RSS while one worker runs 100,000 tasks (bench/memory.py).
bench-memory: install
	timeout --kill-after=60 3600 $(BIN)/python bench/memory.py

# Comparison with Celery and taskiq (bench/compare.py). The peers live in their own
# virtualenv, bench/.venv; Redis is Debian's redis-server, installed with apt-get (as root)
# when missing. `make bench BENCH_ARGS=--quick` for development sizes.
bench: bench/.venv/.installed
	@command -v redis-server >/dev/null || { \
		echo "make bench: redis-server is missing; installing Debian's redis-server with apt-get (needs root)"; \
		apt-get install -y redis-server || { apt-get update && apt-get install -y redis-server; }; }
	timeout --kill-after=60 9000 bench/.venv/bin/python bench/compare.py $(BENCH_ARGS)

bench/.venv/.installed: pyproject.toml
	$(PYTHON) -m venv bench/.venv
	bench/.venv/bin/pip install --quiet --upgrade pip
	bench/.venv/bin/pip install --quiet -e '.[test,bench]'
	touch $@

clean:
	rm -rf $(VENV) .yadtq .pytest_cache *.egg-info
