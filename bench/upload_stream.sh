#!/bin/bash
# A 1 MiB POST read chunk by chunk as it arrives (issue 10), one server at a time:
#   bench/upload_stream.sh ours|uvicorn [seconds] [checkout]
# ours: bench/apps/upload_stream_apps.py:app (an AsyncResource reading body_chunks()) on our
# server from `checkout` (default: this one; another checkout built in place gives the
# revision before); uvicorn: its starlette_app (request.stream()), httptools + uvloop.
# Server pinned to core 0, wrk (32 connections, bench/lua/upload.lua) to core 1; prints
# requests/s, the server's CPU (user + system) per request and its minor page faults per
# request.  Interleave several rounds and compare medians: one round on a shared VM is noisy.
set -e
HERE=$(cd "$(dirname "$0")/.." && pwd)
DIR=${3:-$HERE}
PY=$HERE/.venv/bin/python
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cd "$DIR"
if [ "$1" = uvicorn ]; then
  taskset -c 0 "$PY" -m uvicorn upload_stream_apps:starlette_app --app-dir "$HERE/bench/apps" \
    --host 127.0.0.1 --port "$PORT" --loop uvloop --http httptools --no-access-log --log-level warning &
else
  PYTHONPATH=$DIR taskset -c 0 "$PY" -m flask_restful_async run upload_stream_apps:app \
    --app-dir "$HERE/bench/apps" --host 127.0.0.1 --port "$PORT" --loop uvloop --no-access-log \
    --log-level warning &
fi
SRV=$!
trap 'kill $SRV 2>/dev/null; wait $SRV 2>/dev/null' EXIT
for _ in $(seq 100); do
  curl -s -o /dev/null -X POST --data-binary @/dev/null "http://127.0.0.1:$PORT/" && break
  sleep 0.2
done
LUA=$HERE/bench/lua/upload.lua
taskset -c 1 wrk -t1 -c32 -d2s -s "$LUA" "http://127.0.0.1:$PORT/" > /dev/null
stat() { awk -v f="$1" '{print $f}' /proc/$SRV/stat; }
c0=$(( $(stat 14) + $(stat 15) )); f0=$(stat 10)
OUT=$(taskset -c 1 wrk -t1 -c32 -d"${2:-5}"s -s "$LUA" "http://127.0.0.1:$PORT/")
c1=$(( $(stat 14) + $(stat 15) )); f1=$(stat 10)
REQS=$(echo "$OUT" | awk '/requests in/ {print $1}')
RPS=$(echo "$OUT" | awk '/Requests\/sec/ {print $2}')
echo "$1 requests/s=$RPS cpu_us_per_request=$(( (c1 - c0) * 1000000 / $(getconf CLK_TCK) / REQS ))" \
     "minor_faults_per_request=$(( (f1 - f0) / REQS ))"
