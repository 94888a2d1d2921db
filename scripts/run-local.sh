#!/usr/bin/env bash
# Start the web server and the task worker for `make run`; Ctrl-C stops them all.
set -euo pipefail
PY=${PY:-.venv/bin/python}

cleanup() {
  trap - INT TERM EXIT
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

"$PY" manage.py qcluster &
"$PY" manage.py runserver 127.0.0.1:8000 &

echo
echo "  Mochi Studio is starting on http://127.0.0.1:8000  (Ctrl-C stops everything)"
echo
wait -n
