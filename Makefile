# Every target bootstraps .venv itself, so a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
DEV_STAMP := $(VENV)/.mlaudit-dev
RUN_STAMP := $(VENV)/.mlaudit-run
PYTEST_ARGS ?=

.PHONY: all venv install dev lint test test-fast demo bench system-deps clean help

help:
	@echo "make demo   - run the whole pipeline on examples/fraud (QUICK=1 for a short run)"
	@echo "make test   - lint and run the full test suite"
	@echo "make lint   - ruff check, ruff format --check, mypy --strict audit/"
	@echo "make bench  - run the benchmarks under bench/ and print ratios"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[examples]'
	@touch $@

$(DEV_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@ $(RUN_STAMP)

venv install: $(RUN_STAMP)
dev: $(DEV_STAMP)

# Debian packages and node tools the tests drive for real (ssh-keygen, git, ...).
# Installs only what is missing, and only where it can (root with apt-get).
system-deps:
	@bash tests/tools/system-deps.sh

lint: $(DEV_STAMP)
	$(BIN)/ruff check audit tests bench examples
	$(BIN)/ruff format --check audit tests bench examples
	$(BIN)/mypy --strict audit

test: lint system-deps
	$(BIN)/pytest $(PYTEST_ARGS)

# Skips the slow end-to-end tests; CI runs everything through `make test`.
test-fast: $(DEV_STAMP)
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

demo: $(RUN_STAMP)
	$(PY) examples/fraud/demo.py $(if $(QUICK),--quick,)

# Shared helpers (bench/*_common.py) are not benchmarks. A benchmark that misses its
# target exits non-zero; all of them still run, and make reports the failure at the end.
BENCHMARKS := $(filter-out %_common.py,$(sort $(wildcard bench/*.py)))
# mlaudit's own modules are byte-compiled first, as pip does when it installs a package
# (an editable install writes them on its first run): where PYTHONDONTWRITEBYTECODE is
# set, every timed command would otherwise compile them from source again.
# system-deps: tracking_scale's target is PostgreSQL's, and the server must be up.
bench: $(DEV_STAMP) system-deps
	@$(PY) -m compileall -q audit
	@status=0; for b in $(BENCHMARKS); do echo "== $$b"; $(PY) $$b || status=1; done; exit $$status

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .demo
