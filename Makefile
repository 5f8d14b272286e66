# Motcua: the two commands are `make run` and `make test`; both build .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ENSURE := deploy/dev/ensure-services.sh
export PSYCOPG_WAIT_FUNC := wait_select

.PHONY: venv run test run-services migrate bench clean unit rules

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=23" 
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

## The whole platform in one process on the embedded default (SQLite under var/, in-process bus).
run: $(STAMP)
	$(PY) -m motcua.run --embedded

## Each service in its own process against RabbitMQ + PostgreSQL (AMQP_URI, <SERVICE>_DB_URL).
run-services: $(STAMP)
	$(PY) -m motcua.run --services

migrate: $(STAMP)
	$(PY) -m motcua.migrate all

## Starts RabbitMQ, PostgreSQL and chromium first when they are not up (deploy/dev/ensure-services.sh).
test: $(STAMP)
	$(ENSURE) rabbitmq postgresql chromium
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

## The rules alone (tests/*/test_rules_*.py): in-memory fakes, no database, no broker, a few seconds.
rules: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider tests/*/test_rules_*.py

unit: $(STAMP)
	$(PY) -m pytest -q -m "not integration and not e2e" $(PYTEST_ARGS)

## This tree and the previous release (bench/BASELINE) side by side: lifecycle and tracking, ratios
## (bench/README.md). BENCH_ARGS="--profile --no-baseline --dossiers 100": where this tree's CPU goes.
bench: $(STAMP)
	$(ENSURE) rabbitmq postgresql wrk
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf var .pytest_cache

## A synthetic province at real scale (bench/province.py) in var/province (PROVINCE_DIR=…): rehearse a
## province's move on it with MOTCUA_CATALOG_DIR=var/province make run (docs/adopting.md).
PROVINCE_DIR ?= var/province
.PHONY: province
province: $(STAMP)
	$(PY) -m bench.province $(PROVINCE_DIR)

## Rebuild every reporting projection from its event store (REPORTING_DB_URL, default var/reporting.db).
.PHONY: replay
replay: $(STAMP)
	$(PY) -m services.reporting.cli replay

## Fill reporting's projection with N synthetic dossiers (SEED_ARGS="1000000 --db-url URL"; a database of its own).
.PHONY: seed-report bench-report
seed-report: $(STAMP)
	$(PY) -m services.reporting.seed $(SEED_ARGS)

## The year's report from the counters vs a plain GROUP BY, on a fresh PostgreSQL database (bench/README.md).
bench-report: $(STAMP)
	$(ENSURE) postgresql
	$(PY) -m bench.report $(BENCH_ARGS)

## `motcua history import` of a synthetic file (20,000 rows) into fresh databases, reporting consuming
## (bench/README.md). BENCH_ARGS="--rows 50000 --format csv".
.PHONY: bench-history
bench-history: $(STAMP)
	$(ENSURE) rabbitmq postgresql
	$(PY) -m bench.history $(BENCH_ARGS)

## Chaos: N dossiers (2,000; N=10000 for the full run) on two instances of every service, on a RabbitMQ
## node of its own and fresh databases, under SIGKILLs, broker drops and restarts, database outages,
## a duplicate storm and poison; prints one table (chaos/run.py). CHAOS_ARGS="--seed 7 --every-instance".
N ?= 2000
.PHONY: chaos
chaos: $(STAMP)
	$(ENSURE) postgresql
	$(PY) -m chaos --dossiers $(N) $(CHAOS_ARGS)
