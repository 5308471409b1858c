"""Streaming apps for the bench (issue 10): a file, an upload read as it arrives, a generated
stream, Server-Sent Events to many clients.  Every peer serves the same endpoints.

  GET  /file                 the 50 KB file (FILE_SIZE bytes of seeded random data)
  PUT  /upload               reads the whole body as it arrives; {"received": <bytes>}
  GET  /stream/<int:mib>     <mib> MiB generated: an async generator of 64 KiB bytes chunks
  GET  /hello                {"hello":"world"}: what an idle keep-alive connection asked for
  GET  /sse/features         {"stream_group": <does _core.StreamGroup exist>}
  GET  /sse/sub              a subscription to the app's Broadcast (EventStream, no ping; a
                             retry field first, so the head leaves at once)
  GET  /sse/py               the same fan-out done in Python: one generator per stream waiting
                             for the next event (reference: what Broadcast saves)
  POST /sse/publish          publishes the body (bytes) as one event to both; {"sent": n}

Attributes:
  app            the flask-restful-async Api app (our server, native path)
  starlette_app  Starlette: FileResponse, request.stream(), StreamingResponse (uvicorn)
  pathsend_app   a raw ASGI app answering /file with `http.response.pathsend` (granian)
"""
import asyncio
import os
import random
import tempfile

from flask import request

try:
    from asgi_apps import _lifespan       # served: --app-dir bench/apps
except ImportError:
    from apps.asgi_apps import _lifespan  # imported by the harness (bench/ on the path)

FILE_SIZE = 50_000
CHUNK = b"x" * 65536  # one 64 KiB chunk, yielded again and again by every peer
FILES_DIR = os.path.join(tempfile.gettempdir(), "fra-bench-stream")
FILE_PATH = os.path.join(FILES_DIR, "50k.bin")


def file_bytes():
    """The file's content (seeded: every process of a run makes the same bytes)."""
    return random.Random(50).randbytes(FILE_SIZE)


def _ensure_file():
    data = file_bytes()
    try:
        with open(FILE_PATH, "rb") as f:
            if f.read() == data:
                return
    except OSError:
        pass
    os.makedirs(FILES_DIR, exist_ok=True)
    tmp = "%s.%d" % (FILE_PATH, os.getpid())
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, FILE_PATH)  # atomic: a server starting beside never sees half a file


_ensure_file()


def _ours():
    from flask import Flask

    from flask_restful_async import Api, AsyncResource
    from flask_restful_async.streaming import (Broadcast, EventStream, body_chunks,
                                               send_file)

    flask_app = Flask(__name__)
    api = Api(flask_app)
    broadcast = Broadcast(max_queued=1 << 20)
    py_waiters = {"event": asyncio.Event(), "data": b"", "streams": 0}

    class File(AsyncResource):
        async def get(self):
            return send_file(FILE_PATH, mimetype="application/octet-stream")

    class Upload(AsyncResource):
        async def put(self):
            size = 0
            async for chunk in body_chunks():
                size += len(chunk)
            return {"received": size}

    class Stream(AsyncResource):
        async def get(self, mib):
            async def chunks():
                for _ in range(mib * 16):
                    yield CHUNK
            return chunks()

    class Hello(AsyncResource):
        async def get(self):
            return {"hello": "world"}

    class Features(AsyncResource):
        async def get(self):
            from flask_restful_async import _core
            return {"stream_group": hasattr(_core, "StreamGroup")}

    class Sub(AsyncResource):
        async def get(self):
            return EventStream(broadcast.subscribe(), ping=None, retry=1000)

    class PySub(AsyncResource):
        async def get(self):
            async def events():
                py_waiters["streams"] += 1
                try:
                    while True:
                        event = py_waiters["event"]
                        await event.wait()
                        yield py_waiters["data"]
                finally:
                    py_waiters["streams"] -= 1
            return EventStream(events(), ping=None, retry=1000)

    class Publish(AsyncResource):
        async def post(self):
            data = request.get_data().decode()
            sent = 0
            if len(broadcast):
                sent += broadcast.publish(data)
            if py_waiters["streams"]:
                event = py_waiters["event"]
                py_waiters["data"] = data
                py_waiters["event"] = asyncio.Event()
                event.set()
                sent += py_waiters["streams"]
            return {"sent": sent}

    api.add_resource(File, "/file")
    api.add_resource(Upload, "/upload")
    api.add_resource(Stream, "/stream/<int:mib>")
    api.add_resource(Hello, "/hello")
    api.add_resource(Features, "/sse/features")
    api.add_resource(Sub, "/sse/sub")
    api.add_resource(PySub, "/sse/py")
    api.add_resource(Publish, "/sse/publish")
    return flask_app


app = _ours()


def _starlette_app():
    from starlette.applications import Starlette
    from starlette.responses import FileResponse, JSONResponse, StreamingResponse
    from starlette.routing import Route

    async def file(request):
        return FileResponse(FILE_PATH, media_type="application/octet-stream")

    async def upload(request):
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return JSONResponse({"received": size})

    async def stream(request):
        mib = int(request.path_params["mib"])

        async def chunks():
            for _ in range(mib * 16):
                yield CHUNK
        return StreamingResponse(chunks(), media_type="application/octet-stream")

    async def hello(request):
        return JSONResponse({"hello": "world"})

    return Starlette(routes=[
        Route("/file", file), Route("/upload", upload, methods=["PUT"]),
        Route("/stream/{mib:int}", stream), Route("/hello", hello),
    ])


try:
    starlette_app = _starlette_app()
except ImportError:  # the bench requirements are not installed: only ours can run
    starlette_app = None


async def pathsend_app(scope, receive, send):
    """Raw ASGI: GET /file answered with the pathsend extension (the server sends the file)."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    if scope["path"] != "/file":
        await send({"type": "http.response.start", "status": 404,
                    "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
        return
    if "http.response.pathsend" not in (scope.get("extensions") or {}):
        # a server without the extension fails the probe instead of being measured otherwise
        body = b"the server does not offer http.response.pathsend"
        await send({"type": "http.response.start", "status": 501,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        return
    headers = [(b"content-type", b"application/octet-stream"),
               (b"content-length", str(FILE_SIZE).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.pathsend", "path": FILE_PATH})

