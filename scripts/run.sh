#!/usr/bin/env bash
# Start the whole demo in one terminal: PIMS emulator, Celery worker, Celery beat and the web
# server. Ctrl-C (or any one of them dying) stops them all.
set -euo pipefail
PY=${PY:-.venv/bin/python}
export DEBUG=${DEBUG:-1}
mkdir -p var/log
# Every process's metrics in one place, so /metrics shows the worker's too (emptied each run).
export PROMETHEUS_MULTIPROC_DIR=${PROMETHEUS_MULTIPROC_DIR:-var/prometheus}
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
pids=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "Stopping VetSync…"
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

"$PY" -m vetsync.pims.emulator --port 8765 --clients 500 --seed 1 --timezone America/Los_Angeles &
pids+=($!)
# One worker on every queue (`make serve` starts one per queue).
"$PY" -m celery -A vetsync worker --loglevel=INFO --concurrency=2 -Q sync,pull,writeback,bulk,default &
pids+=($!)
"$PY" -m celery -A vetsync beat --loglevel=INFO &
pids+=($!)
"$PY" manage.py runserver 127.0.0.1:8000 &
pids+=($!)

echo "VetSync: http://127.0.0.1:8000  (PIMS emulator: http://127.0.0.1:8765). Ctrl-C stops everything."
wait -n "${pids[@]}"
