"""The raw ASGI 3 test application.

Every request except the bookkeeping ones (paths starting with /__) is recorded in CALLS, so a
test can ask afterwards, on a new connection, whether the server ever called the app.

Bookkeeping:  /__calls__            {"count": n, "calls": [...last 200...]}
              /__state__?key=K      {"value": STATE.get(K)}
              /__gate__?name=G      opens gate G (an asyncio.Event a handler may wait on)
Handlers (under /t/), anything else is echoed (see `echo`).
"""
import asyncio
import contextvars
import hashlib
import json
import sys
from urllib.parse import parse_qs

from task_cases import CASES, run_case

CALLS = []
STATE = {}
GATES = {}
REQUEST_ID = contextvars.ContextVar("request_id")


def gate(name):
    ev = GATES.get(name)
    if ev is None:
        ev = GATES[name] = asyncio.Event()
    return ev


def params(scope):
    return {k: v[-1] for k, v in parse_qs(scope["query_string"].decode("latin-1")).items()}


def jsonable(value):
    """Scope values as JSON, keeping their Python type visible."""
    if isinstance(value, bytes):
        return {"bytes": value.decode("latin-1")}
    if isinstance(value, (list, tuple)):
        return {type(value).__name__: [jsonable(v) for v in value]}
    if isinstance(value, dict):
        return {"dict": {str(k): jsonable(v) for k, v in value.items()}}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return {"repr": repr(value), "type": type(value).__name__}


async def respond(send, status=200, body=b"", headers=None, content_type=b"application/json"):
    hdrs = [(b"content-type", content_type)] if content_type else []
    hdrs += list(headers or [])
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": body})


async def respond_json(send, obj, status=200):
    await respond(send, status, json.dumps(obj).encode())


async def read_body(receive):
    """Read the whole body; returns (body, list of http.request message summaries)."""
    parts, msgs = [], []
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            msgs.append({"type": msg["type"]})
            return None, msgs
        body = msg.get("body", b"")
        parts.append(body)
        msgs.append({"type": msg["type"], "len": len(body), "more_body": msg.get("more_body", False),
                     "body_type": type(body).__name__})
        if not msg.get("more_body", False):
            return b"".join(parts), msgs


def describe_request(scope, body=None, msgs=None):
    out = {
        "method": scope["method"],
        "path": scope["path"],
        "raw_path": scope.get("raw_path").decode("latin-1") if scope.get("raw_path") is not None else None,
        "query_string": scope["query_string"].decode("latin-1"),
        "http_version": scope["http_version"],
        "scheme": scope.get("scheme"),
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
        "client": list(scope["client"]) if scope.get("client") else None,
        "server": list(scope["server"]) if scope.get("server") else None,
    }
    if body is not None:
        out["body"] = body.decode("latin-1")
        out["body_len"] = len(body)
        out["body_sha256"] = hashlib.sha256(body).hexdigest()
    if msgs is not None:
        out["messages"] = msgs
    return out


# ----------------------------------------------------------------------------- handlers

async def echo(scope, receive, send):
    body, msgs = await read_body(receive)
    if body is None:
        return
    await respond_json(send, describe_request(scope, body, msgs))


async def h_scope(scope, receive, send):
    await read_body(receive)
    p = params(scope)
    state = scope.get("state")
    info = {
        "keys": sorted(scope.keys()),
        "scope": {k: jsonable(v) for k, v in scope.items() if k not in ("state", "extensions")},
        "state_type": type(state).__name__,
        "state_before": sorted(state.keys()) if isinstance(state, dict) else None,
        "greeting": state.get("greeting") if isinstance(state, dict) else None,
    }
    if isinstance(state, dict) and "leak" in p:
        state["leaked_" + p["leak"]] = True
        state["greeting"] = "overwritten"
    await respond_json(send, info)


async def h_status(scope, receive, send):
    await read_body(receive)
    p = params(scope)
    code = int(p.get("code", "200"))
    body = p.get("body", "").encode()
    hdrs = []
    if "cl" in p:
        hdrs.append((b"content-length", p["cl"].encode()))
    await send({"type": "http.response.start", "status": code, "headers": hdrs})
    await send({"type": "http.response.body", "body": body})


async def h_headers(scope, receive, send):
    await read_body(receive)
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/plain"),
        (b"set-cookie", b"a=1; Path=/"),
        (b"set-cookie", b"b=2; Path=/"),
        (b"x-custom", b"custom value"),
        (b"X-Mixed-Case", b"Mixed"),
    ]})
    await send({"type": "http.response.body", "body": b"headers"})


def pattern(i, size):
    return bytes([65 + (i % 26)]) * size


async def h_stream(scope, receive, send):
    """n body messages of `size` bytes; cl=1 makes the app declare Content-Length;
    final=empty ends with an empty message, final=data ends on the last data message."""
    await read_body(receive)
    p = params(scope)
    n, size = int(p.get("n", "3")), int(p.get("size", "10"))
    hdrs = [(b"content-type", b"application/octet-stream")]
    if p.get("cl") == "1":
        hdrs.append((b"content-length", str(n * size).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": hdrs})
    final_empty = p.get("final", "empty") == "empty"
    for i in range(n):
        last = (i == n - 1) and not final_empty
        await send({"type": "http.response.body", "body": pattern(i, size), "more_body": not last})
    if final_empty:
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def h_big(scope, receive, send):
    await read_body(receive)
    size = int(params(scope).get("size", "1048576"))
    body = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    await respond(send, 200, body, content_type=b"application/octet-stream")


async def h_sleep(scope, receive, send):
    body, _ = await read_body(receive)
    p = params(scope)
    await asyncio.sleep(int(p.get("ms", "100")) / 1000)
    await respond_json(send, describe_request(scope, body))


async def h_noread(scope, receive, send):
    """Answers without ever calling receive()."""
    await respond(send, 200, b"not read", content_type=b"text/plain")


async def h_gated_read(scope, receive, send):
    """Records that it was called, waits for gate G, then reads the body."""
    name = params(scope)["gate"]
    STATE[name + ":at_gate"] = True
    await gate(name).wait()
    STATE[name + ":reading"] = True
    body, msgs = await read_body(receive)
    if body is None:
        STATE[name + ":disconnected"] = True
        return
    await respond_json(send, {"body_len": len(body), "body_sha256": hashlib.sha256(body).hexdigest(),
                              "messages": len(msgs)})


async def h_read_sha(scope, receive, send):
    body, msgs = await read_body(receive)
    if body is None:
        return
    await respond_json(send, {"body_len": len(body), "body_sha256": hashlib.sha256(body).hexdigest(),
                              "messages": len(msgs),
                              "more_body_flags": [m.get("more_body") for m in msgs]})


async def h_disconnect(scope, receive, send):
    """Records every message receive() returns until http.disconnect (then once more).
    send_after=1: then sends the rest of a response, recording what each send() raised;
    send_after=propagate|context|cause: then sends, and lets the error end the handler as
    it is, raised while handling it, or raised from it."""
    key = params(scope)["id"]
    log = STATE.setdefault(key, [])
    p = params(scope)
    if p.get("start") == "1":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"started", "more_body": True})
        log.append("response-started")
    while True:
        msg = await receive()
        log.append(msg["type"] + (":more" if msg.get("more_body") else ""))
        if msg["type"] == "http.disconnect":
            again = await receive()
            log.append("again:" + again["type"])
            late = [] if p.get("start") == "1" else [
                {"type": "http.response.start", "status": 200, "headers": []}]
            late.append({"type": "http.response.body", "body": b"late", "more_body": False})
            how = p.get("send_after")
            if how == "1":
                for message in late:
                    try:
                        await send(message)
                        log.append("send-after-disconnect:ok")
                    except OSError as exc:
                        log.append("send-after-disconnect:OSError:" + type(exc).__name__)
                    except Exception as exc:
                        log.append("send-after-disconnect:" + type(exc).__name__)
            elif how in ("propagate", "context", "cause"):
                log.append("done")
                try:
                    await send(late[0])
                except OSError as exc:
                    if how == "context":
                        raise RuntimeError("raised while handling the disconnect")
                    if how == "cause":
                        raise RuntimeError("raised from the disconnect") from exc
                    raise
            log.append("done")
            return


async def h_tasks(scope, receive, send):
    p = params(scope)
    rid = p.get("id", "?")
    res = {}
    # Before the first suspension.
    res["leaked_context"] = REQUEST_ID.get(None)
    REQUEST_ID.set(rid)
    t0 = asyncio.current_task()
    res["task_at_entry"] = t0 is not None
    try:
        async with asyncio.timeout(0.05):
            await asyncio.sleep(30)
        res["timeout_at_entry"] = "no timeout"
    except TimeoutError:
        res["timeout_at_entry"] = "ok"
    except Exception as exc:
        res["timeout_at_entry"] = f"{type(exc).__name__}: {exc}"
    await read_body(receive)
    await asyncio.sleep(float(p.get("sleep", "0.01")))
    t1 = asyncio.current_task()
    res["task_after_await"] = t1 is not None
    res["same_task"] = t0 is t1
    res["context_after_await"] = REQUEST_ID.get(None) == rid
    try:
        await asyncio.wait_for(asyncio.sleep(30), 0.05)
        res["wait_for"] = "no timeout"
    except TimeoutError:
        res["wait_for"] = "ok"
    except Exception as exc:
        res["wait_for"] = f"{type(exc).__name__}: {exc}"
    # A child task cancelled by the handler.
    child = asyncio.create_task(asyncio.sleep(30))
    await asyncio.sleep(0)
    child.cancel()
    try:
        await child
        res["child_cancel"] = "not cancelled"
    except asyncio.CancelledError:
        res["child_cancel"] = "ok"
    # The handler's own task cancelled from outside while it awaits.
    me = asyncio.current_task()
    if me is not None:
        asyncio.get_running_loop().call_later(0.02, me.cancel)
        try:
            await asyncio.sleep(30)
            res["self_cancel"] = "not cancelled"
        except asyncio.CancelledError:
            me.uncancel()
            res["self_cancel"] = "ok"
    else:
        res["self_cancel"] = "no task"
    # Structured concurrency.
    try:
        async with asyncio.TaskGroup() as tg:
            a = tg.create_task(asyncio.sleep(0.01, result=1))
            b = tg.create_task(asyncio.sleep(0.02, result=2))
        res["taskgroup"] = a.result() + b.result()
    except Exception as exc:
        res["taskgroup"] = f"{type(exc).__name__}: {exc}"
    res["context_at_end"] = REQUEST_ID.get(None) == rid
    res["id"] = rid
    await respond_json(send, res)


async def h_task(scope, receive, send):
    """/t/task/CASE?id=ID: one of task_cases.CASES run in the request's task."""
    await read_body(receive)
    res = await run_case(scope["path"].rsplit("/", 1)[1], params(scope)["id"], STATE)
    await respond_json(send, res)


async def h_raise_before(scope, receive, send):
    await read_body(receive)
    raise RuntimeError("boom-before-" + params(scope).get("id", ""))


async def h_raise_after(scope, receive, send):
    await read_body(receive)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"partial body", "more_body": True})
    raise RuntimeError("boom-after-" + params(scope).get("id", ""))


async def h_no_response(scope, receive, send):
    await read_body(receive)
    return None


async def h_bad_header(scope, receive, send):
    """Tries to inject a header through a value (and a name) holding CR LF."""
    await read_body(receive)
    kind = params(scope).get("kind", "value")
    if kind == "value":
        hdr = (b"x-ok", b"fine\r\nX-Injected: yes")
    else:
        hdr = (b"x-bad\r\nX-Injected", b"yes")
    STATE.setdefault("bad_header", []).append(kind)
    try:
        await send({"type": "http.response.start", "status": 200, "headers": [hdr]})
        await send({"type": "http.response.body", "body": b"should not be sent"})
    except Exception as exc:
        STATE.setdefault("bad_header_exc", []).append(type(exc).__name__)
        raise


async def h_progress_stream(scope, receive, send):
    """Streams count chunks of `chunk` bytes; STATE[id] = chunks whose send() returned."""
    await read_body(receive)
    p = params(scope)
    key, size, count = p["id"], int(p.get("chunk", "65536")), int(p.get("count", "1024"))
    STATE[key] = 0
    block = b"x" * size
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream"),
                            (b"content-length", str(size * count).encode())]})
    try:
        for i in range(count):
            await send({"type": "http.response.body", "body": block, "more_body": i < count - 1})
            STATE[key] = i + 1
    except BaseException as exc:
        STATE[key + ":end"] = type(exc).__name__
        raise
    STATE[key + ":end"] = "returned"


async def h_log(scope, receive, send):
    """Writes a marker to stderr (to check that output is captured)."""
    await read_body(receive)
    print("app-log-marker", params(scope).get("id", ""), file=sys.stderr, flush=True)
    await respond(send, 200, b"logged", content_type=b"text/plain")


ROUTES = {
    "/t/scope": h_scope,
    "/t/status": h_status,
    "/t/headers": h_headers,
    "/t/stream": h_stream,
    "/t/big": h_big,
    "/t/sleep": h_sleep,
    "/t/noread": h_noread,
    "/t/gated-read": h_gated_read,
    "/t/read-sha": h_read_sha,
    "/t/disconnect": h_disconnect,
    "/t/tasks": h_tasks,
    "/t/raise-before": h_raise_before,
    "/t/raise-after": h_raise_after,
    "/t/no-response": h_no_response,
    "/t/bad-header": h_bad_header,
    "/t/progress-stream": h_progress_stream,
    "/t/log": h_log,
    **{"/t/task/" + case: h_task for case in CASES},
}


async def bookkeeping(scope, receive, send):
    await read_body(receive)
    path = scope["path"]
    if path == "/__calls__":
        await respond_json(send, {"count": len(CALLS), "calls": CALLS[-200:]})
    elif path == "/__state__":
        await respond_json(send, {"value": STATE.get(params(scope).get("key"))})
    elif path == "/__gate__":
        gate(params(scope)["name"]).set()
        await respond_json(send, {"ok": True})
    else:
        await respond(send, 404, b"no such bookkeeping path", content_type=b"text/plain")


async def lifespan(scope, receive, send):
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            if isinstance(scope.get("state"), dict):
                scope["state"]["greeting"] = "hello from lifespan"
            STATE["lifespan"] = "started"
            await send({"type": "lifespan.startup.complete"})
        elif msg["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(scope, receive, send)
    assert scope["type"] == "http", scope["type"]
    path = scope["path"]
    if path.startswith("/__"):
        return await bookkeeping(scope, receive, send)
    CALLS.append({"method": scope["method"], "path": path,
                  "raw_path": (scope.get("raw_path") or b"").decode("latin-1"),
                  "query_string": scope["query_string"].decode("latin-1")})
    handler = ROUTES.get(path, echo)
    await handler(scope, receive, send)
