# Two commands do all the set-up on a fresh machine with Python 3.11:
#   make serve   - install into .venv and run the service on the bundled voice
#   make test    - install into .venv (with test tools) and run lint, types and tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: serve test install install-test lint browser-deps image-deps bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

# The Ray extra too: its tests (tests/rayserve) run in CI like every other suite.
install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test,ray]"

serve: install
	$(BIN)/tts-service serve $(ARGS)

lint: install-test
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

# Debian's Chromium for the browser tests (apt-get, only when missing).
browser-deps:
	@.ci/ensure-chromium

# podman and debootstrap for the image tests (apt-get, only when missing; without root or
# apt-get it says so and the image tests skip with that reason).
image-deps:
	@.ci/ensure-image-tools

test: install-test lint browser-deps image-deps
	$(BIN)/pytest $(ARGS)

bench: install
	$(BIN)/tts-service bench $(ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
