# Plain entry points. `make demo` and `make test` are the README's quick start.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo emulator test validate clean

$(STAMP): setup.py pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required (set PYTHON=/path/to/python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Runs the Genesys Cloud emulator in the foreground (Ctrl-C stops it).
emulator: $(STAMP)
	$(BIN)/python -m genesys_pipeline.local.emulator --host 127.0.0.1 --port 8765 --seed 7 --daily-volume 2000

demo: $(STAMP)
	$(BIN)/python -m genesys_pipeline.local.demo

# The local operating mode: the emulator, the S3/Snowflake stand-ins and `dagster dev` (webserver and
# daemon) on http://127.0.0.1:3000; Ctrl-C stops all of it. Options: make dev DEV_ARGS="--port 3001".
.PHONY: dev
dev: $(STAMP)
	$(BIN)/python -m genesys_pipeline.local.dev $(DEV_ARGS)

validate: $(STAMP)
	$(BIN)/dagster definitions validate -w workspace.yaml

test: $(STAMP)
	$(BIN)/dagster definitions validate -w workspace.yaml
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .pytest_cache
