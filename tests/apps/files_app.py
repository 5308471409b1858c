"""Files sent by a raw ASGI app and a plain WSGI app (tests/test_streaming_files.py), from the
directory FRA_TEST_FILES.

asgi (ASGI 3, the zero-copy extensions its scope announces):
  GET /pathsend/<name>          http.response.pathsend, Content-Length set by the app
  GET /pathsend-bare/<name>     http.response.pathsend with no Content-Length from the app
  GET /zerocopy/<name>          http.response.zerocopy of the whole file from an open file
                                object; ?offset=N&count=N a part; ?parts=K the file in K pieces
                                (more_body) with no Content-Length: chunked; ?around=1 body
                                bytes "<<" before and ">>" after the file bytes
  GET /zerocopy-fd/<name>       the same from an int descriptor and no offset: from its
                                current position (the app seeks to ?seek=N)
  GET /extensions               scope["extensions"] as JSON
  GET /stats                    {"sendfile": _core.sendfile_bytes()}
wsgi (PEP 3333):
  GET /<name>                   environ["wsgi.file_wrapper"](open(file)); ?seek=N first;
                                ?cl=N sets Content-Length: N; ?bytesio=1 wraps a BytesIO (no
                                descriptor: iterated)
  GET /stats                    as above
flask (a plain Flask app, WSGI):
  GET /send/<name>              flask.send_file: werkzeug wraps the file in wsgi.file_wrapper
  GET /stats                    as above
"""
import io
import json
import os
from urllib.parse import parse_qs

import flask

from flask_restful_async import _core

FILES = os.environ.get("FRA_TEST_FILES", "/nonexistent")


def _path(name):
    return os.path.join(FILES, os.path.basename(name))


async def _json(send, obj):
    body = json.dumps(obj).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    if path == "/stats":
        return await _json(send, {"sendfile": _core.sendfile_bytes()})
    if path == "/extensions":
        return await _json(send, sorted(scope.get("extensions", {})))
    kind, _, name = path[1:].partition("/")
    full = _path(name)
    size = os.path.getsize(full)
    if kind in ("pathsend", "pathsend-bare"):
        headers = [(b"content-type", b"application/octet-stream")]
        if kind == "pathsend":
            headers.append((b"content-length", str(size).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.pathsend", "path": full})
        return
    if kind == "zerocopy":
        offset = int(query.get("offset", 0))
        count = int(query.get("count", size - offset))
        parts = int(query.get("parts", 0))
        around = "around" in query
        headers = [(b"content-type", b"application/octet-stream")]
        if not parts and not around:
            headers.append((b"content-length", str(count).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        with open(full, "rb") as f:
            if around:
                await send({"type": "http.response.body", "body": b"<<", "more_body": True})
            if parts:
                step = -(-count // parts)
                pos, end = offset, offset + count
                while pos < end:
                    n = min(step, end - pos)
                    await send({"type": "http.response.zerocopy", "file": f, "offset": pos,
                                "count": n, "more_body": True})
                    pos += n
                await send({"type": "http.response.body", "body": b">>" if around else b""})
            else:
                await send({"type": "http.response.zerocopy", "file": f, "offset": offset,
                            "count": count, "more_body": around})
                if around:
                    await send({"type": "http.response.body", "body": b">>"})
        return
    if kind == "zerocopy-fd":
        fd = os.open(full, os.O_RDONLY)
        try:
            os.lseek(fd, int(query.get("seek", 0)), os.SEEK_SET)
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/octet-stream")]})
            await send({"type": "http.response.zerocopy", "file": fd})
            assert os.lseek(fd, 0, os.SEEK_CUR) == size  # the position moved past the bytes sent
        finally:
            os.close(fd)
        return
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def wsgi(environ, start_response):
    path = environ["PATH_INFO"]
    query = {k: v[0] for k, v in parse_qs(environ["QUERY_STRING"]).items()}
    if path == "/stats":
        body = json.dumps({"sendfile": _core.sendfile_bytes()}).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    full = _path(path[1:])
    headers = [("Content-Type", "application/octet-stream")]
    if "cl" in query:
        headers.append(("Content-Length", query["cl"]))
    if "bytesio" in query:
        with open(full, "rb") as f:
            f = io.BytesIO(f.read())
    else:
        f = open(full, "rb")
    f.seek(int(query.get("seek", 0)))
    start_response("200 OK", headers)
    return environ["wsgi.file_wrapper"](f, 65536)


flask_app = flask.Flask(__name__)


@flask_app.get("/send/<name>")
def flask_send(name):
    return flask.send_file(_path(name))


@flask_app.get("/stats")
def flask_stats():
    return {"sendfile": _core.sendfile_bytes()}
