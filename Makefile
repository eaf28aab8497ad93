# The two commands a newcomer needs: `make run` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Test processes for `make test` (pytest-xdist); each has its own PostgreSQL database. Four: most
# tests wait on subprocesses, and two left a 2-core machine a third idle.
TEST_WORKERS ?= 4

.PHONY: run test explore lint format bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# Teams moved from botbuilder to the Microsoft 365 Agents SDK: an older .venv drops the old SDK.
	@$(BIN)/python -m pip uninstall --quiet --yes botbuilder-core botbuilder-integration-aiohttp \
		botbuilder-schema botframework-connector botframework-streaming msrest >/dev/null 2>&1 || true
	@touch $(STAMP)

## run: migrate the database (SQLite file touchline.db unless DATABASE_URL says otherwise) and start Touchline;
## `make run TEAMS_EMULATOR=1` also serves /api/messages for the Bot Framework Emulator (this machine only)
run: $(STAMP)
	$(BIN)/touchline migrate
	$(BIN)/touchline serve

## test: lint, type-check and run the whole suite (starts the local PostgreSQL if it is installed but
## stopped; installs Debian's chromium for the browser tests if it is missing)
test: $(STAMP)
	@scripts/ensure-postgres || true
	@scripts/ensure-chromium
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q -n $(TEST_WORKERS)

# The property tests with ten times their examples, drawn afresh (the suite draws the same ones each run).
explore: $(STAMP)
	@scripts/ensure-postgres || true
	TOUCHLINE_EXPLORE=$${TOUCHLINE_EXPLORE:-10} $(BIN)/pytest -q -p no:cacheprovider \
		tests/test_hostile_payloads.py tests/test_hostile_input.py tests/test_neutral_core.py

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

## bench: run every benchmark and print its figures
bench: $(STAMP)
	@for m in strategy_at_scale objections_at_scale pulse_at_scale digest_at_scale embedding grouping_quality fanout acknowledgement; do echo "== $$m"; $(BIN)/python -m benchmarks.$$m || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
