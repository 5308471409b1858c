"""A Starlette app served as ASGI (tests/test_frameworks.py)."""
import asyncio
import atexit
import contextlib
import hashlib
import os
import tempfile

from starlette.applications import Starlette
from starlette.requests import Request
from sse_starlette.sse import EventSourceResponse
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

from flask_restful_async import _core

# a file for FileResponse: 1 MiB of random bytes, made once per process
FILE_PATH = os.path.join(tempfile.gettempdir(), "fra-starlette-file-%d.bin" % os.getpid())
with open(FILE_PATH, "wb") as _f:
    _f.write(os.urandom(1 << 20))
atexit.register(os.unlink, FILE_PATH)


@contextlib.asynccontextmanager
async def lifespan(app):
    yield {"started_by": "starlette-lifespan"}


async def hello(request: Request):
    return JSONResponse({"hello": "starlette", "state": request.state.started_by})


async def item(request: Request):
    return JSONResponse({"id": request.path_params["item_id"],
                         "q": request.query_params.get("q")})


async def echo(request: Request):
    body = await request.body()
    return JSONResponse({"len": len(body), "text": body.decode("latin-1"),
                         "ctype": request.headers.get("content-type")})


async def form(request: Request):
    data = await request.form()
    return JSONResponse({k: v for k, v in data.items()})


async def stream(request: Request):
    async def gen():
        for i in range(5):
            await asyncio.sleep(0)
            yield f"part{i};".encode()
    return StreamingResponse(gen(), media_type="text/plain")


STATE = {}


async def endless(request: Request):
    """A stream that never ends by itself: STATE[id] counts the chunks its generator yielded
    and says whether its `finally` ran (tests/test_client_disconnected.py)."""
    rec = STATE[request.query_params["id"]] = {"yielded": 0, "finally": False}

    async def gen():
        try:
            while True:
                rec["yielded"] += 1
                yield b"x" * 4096
                await asyncio.sleep(0.001)
        finally:
            rec["finally"] = True
    return StreamingResponse(gen(), media_type="application/octet-stream")


async def file(request: Request):
    """Starlette's FileResponse: on our server it takes http.response.pathsend (sendfile)."""
    return FileResponse(FILE_PATH, media_type="application/octet-stream")


async def file_stats(request: Request):
    with open(FILE_PATH, "rb") as f:
        data = f.read()
    return JSONResponse({"sendfile": _core.sendfile_bytes(), "size": len(data),
                         "sha256": hashlib.sha256(data).hexdigest()})


async def sse(request: Request):
    """sse-starlette's EventSourceResponse: three events, then the stream ends."""
    async def events():
        for i in range(3):
            yield {"event": "tick", "id": str(i), "data": "event %d" % i}
    return EventSourceResponse(events(), ping=600)


async def state(request: Request):
    return JSONResponse(STATE.get(request.query_params["id"]))


async def cookies(request: Request):
    resp = PlainTextResponse("cookies set")
    resp.set_cookie("a", "1")
    resp.set_cookie("b", "2")
    return resp


async def timeout(request: Request):
    try:
        async with asyncio.timeout(0.05):
            await asyncio.sleep(5)
    except TimeoutError:
        return PlainTextResponse("timed out properly")
    return PlainTextResponse("no timeout")


async def fail(request: Request):
    raise RuntimeError("starlette-boom")


app = Starlette(routes=[
    Route("/hello", hello),
    Route("/items/{item_id:int}", item),
    Route("/echo", echo, methods=["POST"]),
    Route("/form", form, methods=["POST"]),
    Route("/stream", stream),
    Route("/cookies", cookies),
    Route("/timeout", timeout),
    Route("/fail", fail),
    Route("/endless", endless),
    Route("/file", file),
    Route("/file/stats", file_stats),
    Route("/sse", sse),
    Route("/__state__", state),
], lifespan=lifespan)
