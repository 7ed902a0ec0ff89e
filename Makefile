# Everyday commands; the README's two set-up commands are `make install` and `make test`.
PYTHON ?= python

.PHONY: help install test test-all lint format bench

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

install:  ## install mss, the research package and the dev tools (torch pinned by constraints.txt)
	$(PYTHON) -m pip install -c constraints.txt -e '.[dev]'

test:  ## the default suite (the slow end-to-end tests skipped)
	$(PYTHON) -m pytest

test-all:  ## every test, as CI runs them
	MSS_SLOW_TESTS=1 $(PYTHON) -m pytest

lint:  ## ruff lint and format check, as CI runs them
	ruff check .
	ruff format --check .

format:  ## apply ruff's formatting and safe fixes
	ruff check --fix .
	ruff format .

bench:  ## speed and memory table (docs/benchmarks.md)
	$(PYTHON) benchmarks/bench.py
