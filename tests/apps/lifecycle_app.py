"""Test apps for the connection lifecycle (tests/test_drain.py, test_early_response.py,
test_body_write_timeouts.py, test_wsgi_stop.py): an ASGI app (`asgi`) and a WSGI app (`wsgi`).

  /fast            "ok" (Content-Length 2)
  /upload          reads the whole body, answers its length
  /stall?id=K      starts a response, then sends 64 KiB blocks until the client is gone;
                   STATE[K] = "gone" once it saw the disconnect (ASGI only)
  /block?id=K      WSGI: waits until the file $LIFECYCLE_DIR/release exists
  anything else    404 without reading the body
Bookkeeping: /__state__?key=K {"value": ...}.
At exit the process writes "exchanges alive at exit: N" on stderr (objects of the server's
Exchange type still alive once the server is closed)."""
import asyncio
import atexit
import gc
import json
import os
import sys
import time
from urllib.parse import parse_qs

from asgi_lifespan import lifespan  # (tests/apps/)

STATE = {}


def _params(qs: bytes) -> dict:
    return {k: v[-1] for k, v in parse_qs(qs.decode("latin-1")).items()}


def _report_exchanges():
    gc.collect()
    alive = sum(1 for o in gc.get_objects() if type(o).__name__ == "Exchange")
    sys.stderr.write(f"exchanges alive at exit: {alive}\n")
    sys.stderr.flush()


atexit.register(_report_exchanges)


# ----------------------------------------------------------------------------------- ASGI

async def _reply(send, status, body):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _stall(p, receive, send):
    """Streams until the disconnect: a watcher task waits on receive(), send() may also
    raise once the client is gone."""
    key = p["id"]
    gone = asyncio.Event()

    async def watch():
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()

    watcher = asyncio.ensure_future(watch())
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream")]})
    block = b"s" * 65536
    STATE[key] = "streaming"
    try:
        while not gone.is_set():
            await send({"type": "http.response.body", "body": block, "more_body": True})
            await asyncio.sleep(0)   # a send() that drops its message must not starve the watcher
    except OSError:
        pass
    await gone.wait()
    STATE[key] = "gone"
    watcher.cancel()


async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    path, p = scope["path"], _params(scope["query_string"])
    if path == "/__state__":
        return await _reply(send, 200, json.dumps({"value": STATE.get(p.get("key"))}).encode())
    if path == "/fast":
        return await _reply(send, 200, b"ok")
    if path == "/upload":
        size = 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            size += len(msg.get("body", b""))
            if not msg.get("more_body"):
                break
        return await _reply(send, 200, str(size).encode())
    if path == "/stall":
        return await _stall(p, receive, send)
    return await _reply(send, 404, b"no such path")


# ----------------------------------------------------------------------------------- WSGI

def wsgi(environ, start_response):
    path = environ["PATH_INFO"]
    p = _params(environ.get("QUERY_STRING", "").encode())
    if path == "/fast":
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]
    if path == "/upload":
        body = environ["wsgi.input"].read()
        out = str(len(body)).encode()
        start_response("200 OK", [("Content-Length", str(len(out)))])
        return [out]
    if path == "/block":
        release = os.path.join(os.environ["LIFECYCLE_DIR"], "release")
        while not os.path.exists(release):
            time.sleep(0.02)
        start_response("200 OK", [("Content-Length", "8")])
        return [b"released"]
    start_response("404 Not Found", [("Content-Length", "12")])
    return [b"no such path"]
