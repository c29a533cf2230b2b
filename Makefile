# VetSync: `make run` for the demo, `make test` for the suite. Needs only a Python >= 3.12.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# A Python >= 3.12 that actually runs: python3.13/python3.12/python3 on PATH (pyenv shims
# may exist but fail), then pyenv's own installs.
PYTHON ?= $(shell for c in python3.13 python3.12 python3 $$(ls -d $$(pyenv root 2>/dev/null)/versions/3.1[23]*/bin/python3 2>/dev/null | sort -rV); do \
	  if $$c -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then echo $$c; break; fi; done)

.PHONY: help venv run serve test test-fast lint structure bench bench-quick migrate demo emulator clean

help:
	@echo "make run    - install, migrate, seed demo data, start web + worker + beat + PIMS emulator"
	@echo "make serve  - production: gunicorn + WhiteNoise, a Celery worker per queue, beat (needs"
	@echo "              SECRET_KEY, ALLOWED_HOSTS, DATABASE_URL, REDIS_URL; see README)"
	@echo "make test   - run the whole test suite (browser tests included)"
	@echo "make lint   - ruff, mypy and the structure check (module and function size)"
	@echo "make bench  - run the benchmarks under bench/ (make bench-quick: each at a small size, as CI does)"

$(STAMP): requirements.txt requirements-dev.txt
	@if [ -z "$(PYTHON)" ]; then echo "No Python >= 3.12 found (tried python3.13, python3.12, python3, pyenv versions)." >&2; exit 1; fi
	@echo "Using $(PYTHON) ($$($(PYTHON) --version))"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

venv: $(STAMP)

migrate: venv
	DEBUG=1 $(PY) manage.py migrate --noinput

demo: migrate
	DEBUG=1 $(PY) manage.py seed_demo

run: demo
	@DEBUG=1 PY=$(PY) scripts/run.sh

serve: venv
	@PY=$(PY) $(PY) scripts/serve.py

test: venv
	$(PY) -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

test-fast: venv
	$(PY) -m pytest -n 2 --dist loadfile -m "not browser" $(PYTEST_ARGS)

lint: venv structure
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DEBUG=1 $(VENV)/bin/mypy .

# Module and function size, complexity: scripts/check_structure.py says what it holds to.
structure: venv
	$(PY) scripts/check_structure.py

bench: venv
	@for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

# Every benchmark at a small size, so none can rot unnoticed: the figures mean little, the run
# failing means something. .ci/run runs it.
# Each timed (bash `time`): .ci/run must stay under 20 minutes, and this says where it goes.
bench-quick: venv
	time $(PY) bench/bench_sync_first_copy.py --quick
	time $(PY) bench/bench_matching.py --quick
	time $(PY) bench/bench_ezyvet_pull.py --clients 300
	time $(PY) bench/bench_client_pages.py --clients 2000 --requests 20
	time $(PY) bench/bench_care_lookup.py --clients 20000 --sqlite-clients 5000 --clinics 20 --lookups 20
	time $(PY) bench/bench_agent_body.py --clients 2000
	time SOAK_PRESCRIPTIONS=20 SOAK_CLEAN_PRESCRIPTIONS=10 SOAK_LIMITED_PRESCRIPTIONS=0 \
	  SOAK_PACED_PRESCRIPTIONS=10 SOAK_BROKER=both $(PY) bench/bench_writeback_soak.py
	time $(PY) bench/bench_agent.py --quick
	time $(PY) bench/bench_writeback_during_first_copy.py --quick
	time $(PY) bench/bench_shared_limiter.py --window 6 --seconds 12
	time $(PY) bench/bench_emulator_fleet.py --quick
	time $(PY) bench/bench_onboarding_views.py --quick
	time $(PY) bench/bench_retention.py --quick
	time $(PY) bench/bench_fleet.py --quick

clean:
	rm -rf var staticfiles .pytest_cache .mypy_cache .ruff_cache
