# Motcua: the two commands are `make run` and `make test`; both build .venv themselves. `make run`
# installs what running needs (RUN_STAMP); the test targets add the test extras (TEST_STAMP).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
ENSURE := deploy/dev/ensure-services.sh
export PSYCOPG_WAIT_FUNC := wait_select

.PHONY: venv run test test-services run-services migrate bench clean unit rules

$(PY):
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -e .
	touch $(RUN_STAMP)

$(TEST_STAMP): pyproject.toml $(RUN_STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $(TEST_STAMP)

venv: $(TEST_STAMP)

## The whole platform in one process on the embedded default (SQLite under var/, in-process bus).
run: $(RUN_STAMP)
	$(PY) -m motcua.run --embedded

## Each service in its own process against RabbitMQ + PostgreSQL (AMQP_URI, <SERVICE>_DB_URL).
run-services: $(RUN_STAMP)
	$(PY) -m motcua.run --services

migrate: $(RUN_STAMP)
	$(PY) -m motcua.migrate all

## What the suite needs on the machine, started or installed when it is not there
## (deploy/dev/ensure-services.sh): RabbitMQ with its management plugin, PostgreSQL (its max_connections
## raised to 300 once: the two lanes run platforms side by side), chromium, promtool.
test-services:
	$(ENSURE) rabbitmq postgresql postgresql-connections chromium promtool

## On a fresh machine this alone is enough (CI's .ci/run is this one command). The suite runs in two
## lanes side by side (tests/lanes.py); PYTEST_ARGS naming paths runs them in one pytest as before.
test: test-services $(TEST_STAMP)
	$(PY) -m tests.lanes -q -p no:cacheprovider $(PYTEST_ARGS)

## The rules alone (tests/*/test_rules_*.py): in-memory fakes, no database, no broker, a few seconds.
rules: $(TEST_STAMP)
	$(PY) -m pytest -q -p no:cacheprovider tests/*/test_rules_*.py

unit: $(TEST_STAMP)
	$(PY) -m pytest -q -m "not integration and not e2e" $(PYTEST_ARGS)

## This tree and the previous release (bench/BASELINE) side by side: lifecycle and tracking, ratios
## (bench/README.md). BENCH_ARGS="--profile --no-baseline --dossiers 100": where this tree's CPU goes.
bench: $(TEST_STAMP)
	$(ENSURE) rabbitmq postgresql wrk postgresql-connections
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf var .pytest_cache

## A synthetic province at real scale (bench/province.py) in var/province (PROVINCE_DIR=…): rehearse a
## province's move on it with MOTCUA_CATALOG_DIR=var/province make run (docs/adopting.md).
PROVINCE_DIR ?= var/province
.PHONY: province
province: $(RUN_STAMP)
	$(PY) -m bench.province $(PROVINCE_DIR)

## Rebuild every reporting projection from its event store (REPORTING_DB_URL, default var/reporting.db).
.PHONY: replay
replay: $(RUN_STAMP)
	$(PY) -m services.reporting.cli replay

## Fill reporting's projection with N synthetic dossiers (SEED_ARGS="1000000 --db-url URL"; a database of its own).
.PHONY: seed-report bench-report
seed-report: $(RUN_STAMP)
	$(PY) -m services.reporting.seed $(SEED_ARGS)

## The year's report from the counters vs a plain GROUP BY, on a fresh PostgreSQL database (bench/README.md).
bench-report: $(TEST_STAMP)
	$(ENSURE) postgresql
	$(PY) -m bench.report $(BENCH_ARGS)

## `motcua history import` of a synthetic file (20,000 rows) into fresh databases, reporting consuming
## (bench/README.md). BENCH_ARGS="--rows 50000 --format csv".
.PHONY: bench-history
bench-history: $(TEST_STAMP)
	$(ENSURE) rabbitmq postgresql
	$(PY) -m bench.history $(BENCH_ARGS)

## Chaos: N dossiers (2,000; N=10000 for the full run) on two instances of every service, on a RabbitMQ
## node of its own and fresh databases, under SIGKILLs, broker drops and restarts, database outages,
## a duplicate storm and poison; prints one table (chaos/run.py). CHAOS_ARGS="--seed 7 --every-instance".
N ?= 2000
.PHONY: chaos
chaos: $(TEST_STAMP)
	$(ENSURE) postgresql
	$(PY) -m chaos --dossiers $(N) $(CHAOS_ARGS)
