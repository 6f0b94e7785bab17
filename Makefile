# Two commands do all the set-up on a fresh machine:
#   make serve   - create .venv, install, start the server on the embedded Piper voice (port 8000)
#   make test    - install everything the tests need, run lint and the whole suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
TORCH ?= torch==2.13.0
# A portable llama.cpp build (no -march=native), so the wheel runs on any x86-64 machine.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF

.PHONY: serve test test-fast install install-test lint bench clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $(STAMP)

# torch first, pinned: any looser spec would pull a CUDA build of several GB on a CPU machine.
$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q '$(TORCH)'
	$(BIN)/pip install -q -e '.[test,orpheus,kokoro]'
	touch $(STAMP) $(TEST_STAMP)

install: $(STAMP)

install-test: $(TEST_STAMP)

serve: install
	$(BIN)/realtime serve $(ARGS)

lint: install-test
	$(BIN)/ruff check realtime tests loadtest
	$(BIN)/ruff format --check realtime tests loadtest
	$(BIN)/lint-imports

# The browser tests drive Debian's Chromium (playwright's own browser download is not used).
chromium:
	@command -v chromium >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium; }

test: install-test chromium
	$(BIN)/ruff check realtime tests loadtest
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

# The inner loop: lint, the pure core and the unit tests (no server, no browser), in well under 60 s.
test-fast: install-test
	$(BIN)/ruff check realtime tests loadtest
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -m "not server and not browser"

bench: install
	$(BIN)/python -m loadtest.bench_rest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts
