# dataqa: the two commands of the README.
#   make run   create .venv if missing, install dataqa (no extras), rebuild the pipeline
#              on the sample
#   make test  create .venv if missing, install dataqa with the test and ray extras, lint,
#              run the tests (the Ray tests start a 2-node cluster on loopback)
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run

.PHONY: run test lint system-deps bench clean-outputs

# `make run` needs dataqa alone; the tests add their tools and Ray (test + ray extras)
$(RUN_STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e .
	@touch $(RUN_STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,ray]'
	@touch $(STAMP) $(RUN_STAMP)

run: $(RUN_STAMP)
	@test -d .dvc || PATH=$(CURDIR)/$(VENV)/bin:$$PATH dvc init --no-scm -q
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH dvc repro
	@echo "Audit report:  $(CURDIR)/reports/audit.html"
	@test ! -f reports/tuning.html || echo "Tuning report: $(CURDIR)/reports/tuning.html"

# Debian packages the tests use: headless Chromium for the browser test of the reports,
# PostgreSQL for the distributed tuning test. Installed when missing and possible (root).
system-deps:
	@bash scripts/system_deps.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check dataqa stages tests benchmarks scripts
	$(VENV)/bin/mypy dataqa

test: $(STAMP) system-deps lint
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/bench_scan.py
