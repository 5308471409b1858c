"""The raw WSGI (PEP 3333) test application.

Bookkeeping as in asgi_app: /__calls__, /__state__?key=K, /__gate__?name=G (a threading.Event).
"""
import asyncio
import hashlib
import json
import sys
import threading
from urllib.parse import parse_qs

CALLS = []
STATE = {}
GATES = {}
LOCK = threading.Lock()
BARRIERS = {}


def gate(name):
    with LOCK:
        ev = GATES.get(name)
        if ev is None:
            ev = GATES[name] = threading.Event()
        return ev


def params(environ):
    return {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def json_response(start_response, obj, status="200 OK"):
    body = json.dumps(obj).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]


def read_all(inp):
    parts = []
    while True:
        b = inp.read(8192)
        if not b:
            return b"".join(parts)
        parts.append(b)


CGI_KEYS = ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE",
            "CONTENT_LENGTH", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR")


def h_environ(environ, start_response):
    body = read_all(environ["wsgi.input"])
    out = {
        "cgi": {k: environ[k] for k in CGI_KEYS if k in environ},
        "cgi_types": {k: type(environ[k]).__name__ for k in CGI_KEYS if k in environ},
        "http": {k: environ[k] for k in environ if k.startswith("HTTP_")},
        "all_str_keys": all(type(k) is str for k in environ),
        "wsgi.version": list(environ["wsgi.version"]),
        "wsgi.version_type": type(environ["wsgi.version"]).__name__,
        "wsgi.url_scheme": environ["wsgi.url_scheme"],
        "wsgi.multithread": environ["wsgi.multithread"],
        "wsgi.multiprocess": environ["wsgi.multiprocess"],
        "wsgi.run_once": environ["wsgi.run_once"],
        "input_methods": [m for m in ("read", "readline", "readlines", "__iter__")
                          if hasattr(environ["wsgi.input"], m)],
        "errors_methods": [m for m in ("write", "writelines", "flush")
                           if hasattr(environ["wsgi.errors"], m)],
        "body": body.decode("latin-1"),
    }
    environ["wsgi.errors"].write("wsgi-errors-marker\n")
    environ["wsgi.errors"].flush()
    return json_response(start_response, out)


def h_thread(environ, start_response):
    try:
        asyncio.get_running_loop()
        running_loop = True
    except RuntimeError:
        running_loop = False
    t = threading.current_thread()
    return json_response(start_response, {
        "is_main_thread": t is threading.main_thread(),
        "running_loop_in_thread": running_loop,
        "thread": t.name,
        "ident": t.ident,
    })


def h_input(environ, start_response):
    """Reads wsgi.input in the way `mode` says; returns length and sha256."""
    inp = environ["wsgi.input"]
    mode = params(environ).get("mode", "read")
    if mode == "read":
        body = read_all(inp)
    elif mode == "read_all":
        body = inp.read()
    elif mode == "readline":
        lines = []
        while True:
            line = inp.readline()
            if not line:
                break
            lines.append(line)
        body = b"".join(lines)
        STATE["readline_count"] = len(lines)
    elif mode == "readline_sized":
        lines = []
        while True:
            line = inp.readline(7)
            if not line:
                break
            lines.append(line)
        body = b"".join(lines)
    elif mode == "iter":
        body = b"".join(inp)
    elif mode == "readlines":
        body = b"".join(inp.readlines())
    else:
        raise ValueError(mode)
    return json_response(start_response, {"len": len(body),
                                          "sha256": hashlib.sha256(body).hexdigest()})


def h_input_stream(environ, start_response):
    """Reads the first `first` bytes, records that, then waits for the rest: shows wsgi.input
    is streamed rather than collected before the app is called."""
    key = params(environ)["id"]
    first = int(params(environ).get("first", "1000"))
    inp = environ["wsgi.input"]
    got = b""
    while len(got) < first:
        b = inp.read(first - len(got))
        if not b:
            break
        got += b
    STATE[key] = len(got)
    rest = read_all(inp)
    return json_response(start_response, {"len": len(got) + len(rest)})


class TrackedIterable:
    """A response iterable that records iteration progress and whether close() was called."""

    def __init__(self, key, n, size):
        self.key, self.n, self.size = key, n, size
        STATE[key] = {"yielded": 0, "closed": False}

    def __iter__(self):
        block = b"w" * self.size
        for i in range(self.n):
            yield block
            STATE[self.key]["yielded"] = i + 1

    def close(self):
        STATE[self.key]["closed"] = True


def h_iter(environ, start_response):
    p = params(environ)
    n, size = int(p.get("n", "3")), int(p.get("size", "100"))
    headers = [("Content-Type", "application/octet-stream")]
    if p.get("cl") == "1":
        headers.append(("Content-Length", str(n * size)))
    start_response("200 OK", headers)
    return TrackedIterable(p["id"], n, size)


def h_progress(environ, start_response):
    """For backpressure: STATE[id] = chunks handed to the server so far."""
    p = params(environ)
    key, size, count = p["id"], int(p.get("chunk", "65536")), int(p.get("count", "1024"))
    STATE[key] = 0
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(size * count))])

    def gen():
        block = b"p" * size
        for i in range(count):
            yield block
            STATE[key] = i + 1
    return gen()


def h_exc_info_before(environ, start_response):
    """Fails before any body was sent and replaces its headers, as PEP 3333 allows."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "1")])
    try:
        raise ValueError("replaced")
    except ValueError:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
    return [b"replaced by error page"]


def h_exc_info_after(environ, start_response):
    """Fails after the first body chunk went out: start_response(exc_info) must re-raise."""
    key = params(environ).get("id", "x")
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        yield b"first chunk"
        try:
            raise KeyError("late-failure-" + key)
        except KeyError:
            try:
                start_response("500 Internal Server Error", [], sys.exc_info())
            except KeyError:
                STATE["exc_after_reraised:" + key] = True
                raise
            STATE["exc_after_reraised:" + key] = False
        yield b"never"
    return gen()


def h_raise(environ, start_response):
    raise RuntimeError("wsgi-boom-" + params(environ).get("id", ""))


def h_write(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written ")
    write(b"directly ")
    return [b"then returned"]


def h_barrier(environ, start_response):
    """Waits until `n` requests are inside the app at once: needs n pool threads."""
    p = params(environ)
    key, n = p["id"], int(p["n"])
    with LOCK:
        b = BARRIERS.get(key)
        if b is None:
            b = BARRIERS[key] = threading.Barrier(n, timeout=15)
    try:
        b.wait()
        ok = True
    except threading.BrokenBarrierError:
        ok = False
    return json_response(start_response, {"ok": ok, "thread": threading.current_thread().name})


def h_echo(environ, start_response):
    body = read_all(environ["wsgi.input"])
    return json_response(start_response, {
        "method": environ["REQUEST_METHOD"], "path": environ["PATH_INFO"],
        "query_string": environ["QUERY_STRING"], "body": body.decode("latin-1"),
    })


ROUTES = {
    "/environ": h_environ,
    "/thread": h_thread,
    "/input": h_input,
    "/input-stream": h_input_stream,
    "/iter": h_iter,
    "/progress": h_progress,
    "/exc-info-before": h_exc_info_before,
    "/exc-info-after": h_exc_info_after,
    "/raise": h_raise,
    "/write": h_write,
    "/barrier": h_barrier,
}


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path.startswith("/__"):
        read_all(environ["wsgi.input"])
        p = params(environ)
        if path == "/__calls__":
            return json_response(start_response, {"count": len(CALLS), "calls": CALLS[-200:]})
        if path == "/__state__":
            return json_response(start_response, {"value": STATE.get(p.get("key"))})
        if path == "/__gate__":
            gate(p["name"]).set()
            return json_response(start_response, {"ok": True})
        return json_response(start_response, {"error": "no such path"}, "404 Not Found")
    with LOCK:
        CALLS.append({"method": environ["REQUEST_METHOD"], "path": path})
    handler = ROUTES.get(path)
    if handler is None and path.startswith("/environ"):
        handler = h_environ
    return (handler or h_echo)(environ, start_response)
