#!/usr/bin/env bash
# Start everything `make run` needs: the web server, the task worker and, unless
# SEGMIND_API_KEY is set, the built-in demo upstream. Ctrl-C stops them all.
set -euo pipefail
PY=${PY:-.venv/bin/python}

cleanup() {
  trap - INT TERM EXIT
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

if [ -z "${SEGMIND_API_KEY:-}" ]; then
  # No Segmind account: the fake upstream renders real (test-pattern) videos offline.
  export SEGMIND_API_KEY=demo-key
  export SEGMIND_BASE_URL=http://127.0.0.1:8765
  export SEGMIND_TYPICAL_SECONDS=${SEGMIND_TYPICAL_SECONDS:-8}
  "$PY" manage.py fake_segmind --host 127.0.0.1 --port 8765 --latency "${DEMO_LATENCY:-8}" &
  upstream="the demo upstream (fake Segmind) on http://127.0.0.1:8765"
else
  upstream="Segmind at ${SEGMIND_BASE_URL:-https://api.segmind.com}"
fi

"$PY" manage.py qcluster &
# The production server (ASGI), one process: requests waiting in async views (such as a
# synchronous video call) hold no worker. It does not reload on code changes.
"$PY" -m gunicorn mochi_site.asgi:application --workers 1 --bind 127.0.0.1:8000 \
  --graceful-timeout 3 &

echo
echo "  Mochi Studio is starting on http://127.0.0.1:8000, using $upstream."
echo "  Emails (sign-up confirmations, invitations) are printed here. Ctrl-C stops everything."
echo
wait -n
