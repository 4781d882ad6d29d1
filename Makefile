# turnkit developer targets. `make check` is what CI runs (.ci/run).
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: setup demo lint format typecheck test check bench clean

setup:
	@bash scripts/bootstrap.sh

demo:
	@bash scripts/demo.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: setup
	$(BIN)/mypy

test: setup
	@bash scripts/run-tests.sh $(PYTEST_ARGS)

check:
	@bash scripts/check.sh $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis build *.egg-info
