# tunix-rt developer entry points. Every target that needs Python tools first runs
# scripts/bootstrap.sh, which creates .venv and installs the pinned dependencies when needed.
#
#   make test        the whole test suite (what CI runs): scripts/check.sh
#   make test-fast   the same without tests marked slow
#   make test-gate   the main job's recipe gate (tests/training/test_recipe_gate.py, ~2-5 min of
#                    training; CI runs it after make test)
#                    (extra pytest arguments: make test PYTEST_ARGS="-k registry -x")
#   make demo        the main job end to end on the embedded defaults: scripts/demo.sh
#   make protos      regenerate clients/tunix_rt/v1 from protos/
#   make lint        buf lint, ruff check, ruff format --check, mypy
#   make fmt         ruff format and ruff check --fix
#   make bench       the registry benchmark (bench/registry.py)
#   make lock        regenerate requirements/lock.txt after a dependency change in pyproject.toml
#   make bootstrap   only create/update .venv
#   make clean       remove caches, build outputs and .venv

SHELL := /bin/bash
VENV ?= .venv
export VENV
PY := $(VENV)/bin/python
BOOTSTRAP := bash scripts/bootstrap.sh

.PHONY: help test test-fast test-gate demo protos lint fmt bench lock bootstrap clean

help:
	@sed -n 's/^#   make /make /p' Makefile

test:
	bash scripts/check.sh $(PYTEST_ARGS)

test-fast:
	PYTEST_MARKERS="not slow" bash scripts/check.sh $(PYTEST_ARGS)

test-gate: bootstrap
	TUNIX_RT_RECIPE_GATE=1 $(VENV)/bin/pytest -p no:cacheprovider -q -s tests/training/test_recipe_gate.py

demo:
	bash scripts/demo.sh

bootstrap:
	$(BOOTSTRAP)

protos: bootstrap
	$(PY) scripts/gen_protos.py

lint: bootstrap
	$(PY) scripts/gen_protos.py --check
	$(VENV)/bin/buf lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: bootstrap
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: bootstrap
	$(PY) bench/registry.py

lock:
	bash scripts/lock.sh

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* htmlcov coverage.xml
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -maxdepth 1 -name '*.egg-info' -exec rm -rf {} +
	rm -rf $(VENV)
