#!/usr/bin/env bash
# `make run`: serve the example app (examples/app.py) on HOST:PORT.  Its counters live in Redis
# at REDIS_URL (default redis://127.0.0.1:6379/0); when nothing answers there, a private
# redis-server runs on a free port for as long as the app does (nothing kept on disk).
# Usage: scripts/run-example.sh PYTHON HOST PORT
set -euo pipefail
PY=$1 HOST=$2 PORT=$3
url=${REDIS_URL:-redis://127.0.0.1:6379/0}
serve() { "$PY" -m flask_restful_async run examples.app:app --host "$HOST" --port "$PORT"; }

if redis-cli -u "$url" ping >/dev/null 2>&1; then
  echo "example app: Redis at $url"
  REDIS_URL=$url serve
  exit
fi
dir=$(mktemp -d)
rport=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
  --logfile "$dir/redis.log" &
rpid=$!
trap 'kill "$rpid" 2>/dev/null; wait "$rpid" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do
  redis-cli -p "$rport" ping >/dev/null 2>&1 && break
  sleep 0.1
done
echo "example app: no Redis at $url; started one for this run at redis://127.0.0.1:$rport/0"
REDIS_URL=redis://127.0.0.1:$rport/0 serve
