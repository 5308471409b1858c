"""Test apps for tests/test_hardening_*.py: an ASGI app (`asgi`) and a WSGI app (`wsgi`) with
the same few routes.  Every request outside /__ is counted, so a test can check the app was
never called for a request the server should have refused.

  /fast                      "ok", Content-Length 2 (cheap: for request floods)
  /bad-header?name=HEX&value=HEX   a response header given as hex bytes (CR, LF, NUL...)
  /cl-mismatch?cl=N&parts=HEX,HEX  declares Content-Length N, sends the parts as body messages
  /stream?id=K&chunk=N&count=M     M chunks of N bytes; STATE[K] = chunks sent, K:end = how it ended
  /sleep?ms=N                 answers after N ms (ASGI only)
  /gated                      waits until the file $HARDEN_DIR/release exists (ASGI only)
  /upload                     reads the whole body, answers its length
Bookkeeping: /__calls__ {"count": n}, /__state__?key=K {"value": ...}.
"""
import asyncio
import json
import os
import threading
from urllib.parse import parse_qs

from asgi_lifespan import lifespan  # (tests/apps/)

CALLS = [0]
STATE = {}
LOCK = threading.Lock()


def _params(qs: bytes) -> dict:
    return {k: v[-1] for k, v in parse_qs(qs.decode("latin-1"), keep_blank_values=True).items()}


def _json(obj) -> bytes:
    return json.dumps(obj).encode()


# ----------------------------------------------------------------------------------- ASGI

async def _body(receive):
    parts = []
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return None
        parts.append(msg.get("body", b""))
        if not msg.get("more_body"):
            return b"".join(parts)


async def _reply(send, status, body, headers=()):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    path, p = scope["path"], _params(scope["query_string"])
    if path == "/__calls__":
        return await _reply(send, 200, _json({"count": CALLS[0]}))
    if path == "/__state__":
        return await _reply(send, 200, _json({"value": STATE.get(p.get("key"))}))
    CALLS[0] += 1
    if path == "/fast":
        return await _reply(send, 200, b"ok")
    if path == "/upload":
        body = await _body(receive)
        if body is not None:
            await _reply(send, 200, str(len(body)).encode())
        return
    if path == "/sleep":
        await _body(receive)
        await asyncio.sleep(int(p.get("ms", "100")) / 1000)
        return await _reply(send, 200, b"slept")
    if path == "/gated":
        await _body(receive)
        release = os.path.join(os.environ["HARDEN_DIR"], "release")
        STATE["gated"] = STATE.get("gated", 0) + 1
        while not os.path.exists(release):
            await asyncio.sleep(0.02)
        return await _reply(send, 200, b"released")
    if path == "/bad-header":
        await _body(receive)
        hdr = (bytes.fromhex(p.get("name", "782d6f6b")), bytes.fromhex(p.get("value", "")))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": [hdr]})
            await send({"type": "http.response.body", "body": b"should not be sent"})
        except Exception as exc:  # the refusal may surface here; the server still answers
            STATE.setdefault("bad-header", []).append(type(exc).__name__)
            raise
        return
    if path == "/cl-mismatch":
        await _body(receive)
        parts = [bytes.fromhex(x) for x in p.get("parts", "").split(",") if x]
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", p["cl"].encode())]})
        for i, part in enumerate(parts):
            await send({"type": "http.response.body", "body": part,
                        "more_body": i < len(parts) - 1})
        if not parts:
            await send({"type": "http.response.body", "body": b""})
        return
    if path == "/stream":
        await _body(receive)
        key, size, count = p["id"], int(p.get("chunk", "65536")), int(p.get("count", "16"))
        STATE[key] = 0
        block = b"s" * size
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(size * count).encode())]})
        try:
            for i in range(count):
                await send({"type": "http.response.body", "body": block,
                            "more_body": i < count - 1})
                STATE[key] = i + 1
        except BaseException as exc:
            STATE[key + ":end"] = type(exc).__name__
            raise
        STATE[key + ":end"] = "returned"
        return
    body = await _body(receive)
    await _reply(send, 200, _json({"path": path, "body_len": None if body is None else len(body)}))


# ----------------------------------------------------------------------------------- WSGI

def wsgi(environ, start_response):
    path = environ.get("PATH_INFO", "")
    p = _params(environ.get("QUERY_STRING", "").encode("latin-1"))
    if path == "/__calls__":
        body = _json({"count": CALLS[0]})
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    with LOCK:
        CALLS[0] += 1
    if path == "/bad-header":
        name = bytes.fromhex(p.get("name", "782d6f6b")).decode("latin-1")
        value = bytes.fromhex(p.get("value", "")).decode("latin-1")
        start_response("200 OK", [(name, value)])
        return [b"should not be sent"]
    if path == "/cl-mismatch":
        parts = [bytes.fromhex(x) for x in p.get("parts", "").split(",") if x]
        start_response("200 OK", [("Content-Length", p["cl"])])
        return parts
    if path == "/upload":
        n = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(n) if n else environ["wsgi.input"].read()
        out = str(len(body)).encode()
        start_response("200 OK", [("Content-Length", str(len(out)))])
        return [out]
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]
