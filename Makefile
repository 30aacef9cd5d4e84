# yadtq: `make run` to try it, `make test` to test it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint unit integration kafka kafka-jars browser bench-failover bench-memory bench clean

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

# Apache Kafka's own jars from Maven Central (apache-kafka/pom.xml) in .kafka/lib, for
# `make kafka` and the Kafka half of the tests. Fetched once: again only when the pom changes.
KAFKA_STAMP := .kafka/.fetched
HAVE_JAVA   := $(shell command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1 && echo yes)

kafka-jars: $(KAFKA_STAMP)

$(KAFKA_STAMP): apache-kafka/pom.xml
	@test -n "$(HAVE_JAVA)" || { echo "make kafka-jars: needs Java 17+ (java) and Maven (mvn) on PATH"; exit 1; }
	rm -rf .kafka/lib
	cd apache-kafka && timeout 900 mvn -q -B dependency:copy-dependencies \
		-DoutputDirectory=../.kafka/lib -DincludeScope=runtime
	touch $@

# Apache Kafka (one KRaft node) in the foreground on 127.0.0.1:9092, data in .yadtq/kafka;
# Ctrl-C stops it. `make kafka KAFKA_ARGS='--nodes 3'` for three.
kafka: install kafka-jars
	$(BIN)/yadtq kafka $(KAFKA_ARGS)

# Debian's Chromium and ChromeDriver, for the dashboard's browser tests: installed with
# apt-get when missing and this runs as root; otherwise those tests are skipped, and say
# so (CI sets YADTQ_REQUIRE_BROWSER=1: they fail).
HAVE_CHROMIUM := $(shell command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 && echo yes)

browser:
ifneq ($(HAVE_CHROMIUM),yes)
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "make browser: installing chromium and chromium-driver (apt-get)"; \
		timeout 900 apt-get update -q >/dev/null && \
		DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -q chromium chromium-driver >/dev/null; \
	else echo "make browser: chromium/chromedriver missing and not root: the browser tests will be skipped"; fi
endif

# The integration tests run on the embedded broker and on Apache Kafka; without Java and
# Maven the Kafka half is skipped, and says so (CI sets YADTQ_REQUIRE_KAFKA=1: it fails).
test: install browser $(if $(HAVE_JAVA),kafka-jars)
	@test -n "$(HAVE_JAVA)" || echo "make test: java or mvn not found: the Apache Kafka half of the tests will be skipped"
	$(BIN)/python -m pytest tests -q

# ruff (pycodestyle, pyflakes, import order, bugbear, broad excepts, complexity), then
# mypy --strict on yadtq_app with its agents and tables: [tool.ruff] and [tool.mypy] in pyproject.toml.
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

unit: install
	$(BIN)/python -m pytest tests/unit -q

integration: install
	$(BIN)/python -m pytest tests/integration -q

# kill -9 failover; `make bench-failover FAILOVER_ARGS='--broker kafka --nodes 3'` on Apache Kafka.
bench-failover: install $(if $(findstring kafka,$(FAILOVER_ARGS)),kafka-jars)
	timeout --kill-after=60 3600 $(BIN)/python bench/failover.py --rounds 5 $(FAILOVER_ARGS)

# Worker RSS while one worker runs 100,000 tasks (bench/memory.py).
bench-memory: install
	timeout --kill-after=60 3600 $(BIN)/python bench/memory.py

# Comparison with Celery and taskiq (bench/compare.py), yadtq on the embedded broker and on
# Apache Kafka (one node: needs Java and Maven for its jars; BENCH_ARGS=--brokers embedded
# without). The peers live in their own virtualenv, bench/.venv; Redis is Debian's
# redis-server, installed with apt-get (as root) when missing. `make bench BENCH_ARGS=--quick`
# for development sizes.
bench: bench/.venv/.installed $(if $(HAVE_JAVA),kafka-jars)
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
	rm -rf $(VENV) .yadtq .pytest_cache *.egg-info .kafka
