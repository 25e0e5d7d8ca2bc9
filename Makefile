# PCloud: `make run` starts everything, `make test` runs the whole suite. Both work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PCLOUD_DATA_DIR ?= $(CURDIR)/var

.PHONY: install services run test lint bench rotate-keys clean

$(STAMP): requirements.txt requirements-runtime.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

services: install
	bash infra/services.sh

run: install
	bash infra/run.sh

test: services
	bash infra/test-deps.sh
	$(VENV)/bin/lint-imports
	bash infra/test.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

bench: services
	$(PY) -m bench

rotate-keys: install
	$(PY) -m functions.sso.cli rotate-keys

clean:
	rm -rf $(VENV) var
