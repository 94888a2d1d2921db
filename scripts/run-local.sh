#!/usr/bin/env bash
# Start everything `make run` needs: the web server, the task worker and, unless
# SEGMIND_API_KEY is set, the built-in demo upstream. Ctrl-C stops them all.
#
# The site listens on 127.0.0.1:8000 and the demo upstream on 127.0.0.1:8765; when
# another program already has one of them, pick others with MOCHI_PORT and
# DEMO_UPSTREAM_PORT (for example `MOCHI_PORT=8001 DEMO_UPSTREAM_PORT=8766 make run`).
set -euo pipefail
PY=${PY:-.venv/bin/python}
PORT=${MOCHI_PORT:-8000}
UPSTREAM_PORT=${DEMO_UPSTREAM_PORT:-8765}

port_is_free() {
  "$PY" -c 'import socket, sys; socket.create_server(("127.0.0.1", int(sys.argv[1]))).close()' \
    "$1" 2>/dev/null
}

require_free_port() {
  if ! port_is_free "$1"; then
    echo "Port $1 on 127.0.0.1 is already in use (another Mochi Studio?)." >&2
    echo "Stop that program, or choose another port with $2=<port>." >&2
    exit 1
  fi
}

# Waits until the server started as job $2 listens on port $1; stops everything if it
# exits first or takes longer than a minute.
wait_for_port() {
  for _ in $(seq 240); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    if ! kill -0 "$2" 2>/dev/null; then
      echo "$3 exited while starting." >&2
      exit 1
    fi
    sleep 0.25
  done
  echo "$3 did not listen on port $1 within a minute." >&2
  exit 1
}

require_free_port "$PORT" MOCHI_PORT
# Links in emails (sign-up confirmations, invitations) point at this server.
export SITE_URL=${SITE_URL:-http://127.0.0.1:$PORT}

# Each server runs in its own process group, so Ctrl-C reaches this script alone and
# every server is asked to stop exactly once (the worker hangs if it is told twice).
# Their input is /dev/null: a background process group that reads the terminal (as
# ffmpeg does, for its keyboard commands) is stopped by it.
set -m

cleanup() {
  trap - INT TERM HUP EXIT
  set +m  # no job notices while stopping
  local pids pid
  pids=$(jobs -p)
  [ -n "$pids" ] || return 0
  echo "  Stopping Mochi Studio..."
  kill -TERM $pids 2>/dev/null || true
  kill -CONT $pids 2>/dev/null || true  # a stopped server acts on the TERM once continued
  # The worker finishes its running tasks first; whatever still runs after 30 s is killed.
  for _ in $(seq 60); do
    alive=""
    for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ -n "$alive" ] || break
    sleep 0.5
  done
  for pid in $pids; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM HUP EXIT

if [ -z "${SEGMIND_API_KEY:-}" ]; then
  require_free_port "$UPSTREAM_PORT" DEMO_UPSTREAM_PORT
  # No Segmind account: the fake upstream renders real (test-pattern) videos offline.
  export SEGMIND_API_KEY=demo-key
  export SEGMIND_BASE_URL=http://127.0.0.1:$UPSTREAM_PORT
  export SEGMIND_TYPICAL_SECONDS=${SEGMIND_TYPICAL_SECONDS:-8}
  "$PY" manage.py fake_segmind --host 127.0.0.1 --port "$UPSTREAM_PORT" --latency "${DEMO_LATENCY:-8}" </dev/null &
  # Ready before the site is: the first video submitted reaches it.
  wait_for_port "$UPSTREAM_PORT" $! "The demo upstream"
  upstream="the demo upstream (fake Segmind) on http://127.0.0.1:$UPSTREAM_PORT"
else
  upstream="Segmind at ${SEGMIND_BASE_URL:-https://api.segmind.com}"
fi

"$PY" manage.py qcluster </dev/null &
# The production server (ASGI, gunicorn.conf.py), one process: requests waiting in async
# views (such as a synchronous video call) hold no worker. It does not reload on code changes.
"$PY" -m gunicorn mochi_site.asgi:application --workers 1 --bind "127.0.0.1:$PORT" \
  --graceful-timeout 3 </dev/null &

echo
echo "  Mochi Studio is starting on http://127.0.0.1:$PORT, using $upstream."
echo "  Emails (sign-up confirmations, invitations) are printed here. Ctrl-C stops everything."
echo
wait -n
