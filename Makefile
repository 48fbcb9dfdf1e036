# Every target does its own set-up, so `make run` and `make test` work on a fresh clone.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
BUF := node_modules/.bin/buf
PROTOS := $(wildcard protos/orgs/v1/*.proto)

.PHONY: setup system-packages run test test-unit test-pgbouncer test-faults test-sqlite test-postgres \
        check lint format typecheck buf-lint buf-breaking generate check-generated bench bench-scale \
        fuzz release-contract clean

$(VENV)/.installed: pyproject.toml requirements.lock
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

$(BUF): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Regenerates generated/ from protos/ (python, grpc and mypy stubs).
generate: setup
	PY=$(PY) scripts/generate.sh generated

# Fails when the committed generated/ differs from what protos/ produce.
check-generated: setup
	@tmp=$$(mktemp -d) && PY=$(PY) scripts/generate.sh $$tmp \
	  && diff -r --exclude=__pycache__ $$tmp generated \
	  || { echo "generated/ is stale: run 'make generate' and commit the result"; exit 1; }

run: setup check-generated
	@PATH=$(abspath $(BIN)):$$PATH $(BIN)/orgservice serve --dev

# Debian packages the tests need beyond PostgreSQL itself (PgBouncer).
system-packages:
	@scripts/system-packages.sh

test: setup check-generated system-packages
	$(BIN)/pytest

# The PostgreSQL integration and concurrency suites again, through PgBouncer in
# transaction pooling mode (--database-pooler pgbouncer).
test-pgbouncer: setup system-packages
	ORGSERVICE_TEST_PGBOUNCER=1 ORGSERVICE_TEST_DATABASES=postgresql $(BIN)/pytest tests/integration

# Use cases over in-memory storage and pure functions: no database, no server, seconds.
test-unit: setup
	$(BIN)/pytest tests/unit -q

# Stops, freezes and locks PostgreSQL clusters the tests own (needs initdb and pgbouncer).
test-faults: setup system-packages
	$(BIN)/pytest tests/faults -m faults

test-sqlite: setup
	ORGSERVICE_TEST_DATABASES=sqlite $(BIN)/pytest

test-postgres: setup
	ORGSERVICE_TEST_DATABASES=postgresql $(BIN)/pytest

# The fuzz tests of tests/fuzz/, longer than in `make test`: this many examples per RPC and
# test (CI: 8), a random seed each run, failures kept in .hypothesis/ and replayed first.
ORGSERVICE_FUZZ_EXAMPLES ?= 300
fuzz: setup
	ORGSERVICE_FUZZ_EXAMPLES=$(ORGSERVICE_FUZZ_EXAMPLES) $(BIN)/pytest tests/fuzz

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: setup
	$(BIN)/mypy

buf-lint: $(BUF)
	cd protos && ../$(BUF) lint

# Fails when protos/ breaks the latest released contract: the latest v* tag, or in a
# clone without tags the newest image in protos/released/.
buf-breaking: $(BUF)
	BUF=$(BUF) scripts/buf-breaking.sh

# Records the contract being released beside its tag, e.g. `make release-contract VERSION=v1.1.0`.
release-contract: $(BUF)
	@test -n "$(VERSION)" || { echo "usage: make release-contract VERSION=vX.Y.Z"; exit 1; }
	$(BUF) build protos --exclude-source-info -o '-#format=json' \
	  | python3 -m json.tool --indent 1 > protos/released/$(VERSION).json

check: lint typecheck buf-lint buf-breaking check-generated

bench: setup
	$(PY) -m benchmarks

# 1,000,000 organizations and one of 100,000 members (PostgreSQL; minutes to load).
bench-scale: setup
	$(PY) -m benchmarks.scale

# The stubs-only client wheel (orgservice-stubs), built from generated/ into dist/.
.PHONY: stubs-dist
stubs-dist: setup
	PY=$(PY) scripts/build-stubs.sh dist

clean:
	rm -rf $(VENV) node_modules dist .pytest_cache .mypy_cache .ruff_cache
