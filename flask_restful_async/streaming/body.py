"""`body_chunks()`: the request body as it arrives.

    class Upload(AsyncResource):
        async def put(self, name):
            size = 0
            async for chunk in body_chunks():
                size += len(chunk)
            return {"size": size}, 201

A resource method that reads its body this way is started as soon as the request's head is
here, instead of after the whole body: the method is found to do so when its code names
`body_chunks` (or it is marked with `@streams_body`, for one that reads it through a helper).
Reading pauses while the resource is not consuming (the server stops reading the socket), and
`Expect: 100-continue` is answered when the resource first asks for a chunk.  Its body is not
also available as `request.data`, `request.form` or `request.json`: it is read once, here."""
import types
from typing import Any, AsyncIterator, Callable, Optional, TypeVar

from flask.globals import _cv_request

from flask_restful_async._core import ClientDisconnected

__all__ = ["body_chunks", "streams_body", "reads_body_in_chunks"]

#: under a WSGI server, wsgi.input is read this many bytes at a time
CHUNK = 256 * 1024

F = TypeVar("F", bound=Callable[..., Any])


def streams_body(func: F) -> F:
    """Mark a resource method that reads its body with body_chunks() through a helper (one
    that names body_chunks in its own code is found without it)."""
    func._fra_streams_body = True  # type: ignore[attr-defined]
    return func


def _names_body_chunks(code: types.CodeType) -> bool:
    if "body_chunks" in code.co_names or "body_chunks" in code.co_freevars:
        return True  # (a global or module attribute; or a name from an enclosing function)
    return any(isinstance(const, types.CodeType) and _names_body_chunks(const)
               for const in code.co_consts)


def reads_body_in_chunks(method: Any) -> bool:
    """Does this resource method read its body with body_chunks()?"""
    func = getattr(method, "__func__", method)
    while True:
        if getattr(func, "_fra_streams_body", False):
            return True
        code = getattr(func, "__code__", None)
        if code is not None and _names_body_chunks(code):
            return True
        wrapped = getattr(func, "__wrapped__", None)
        if wrapped is None:
            return False
        func = wrapped


async def body_chunks() -> AsyncIterator[bytes]:
    """The request body, chunk by chunk as it arrives (non-empty bytes objects)."""
    ctx = _cv_request.get(None)
    if ctx is None:
        raise RuntimeError("body_chunks() needs a request context")
    receive: Optional[Callable[[], Any]] = None
    if getattr(ctx, "body", b"") is None:  # our servers: the body is still to be read
        exchange = getattr(ctx, "exchange", None)
        receive = exchange.receive if exchange is not None else getattr(ctx, "receive", None)
    if receive is not None:
        ctx.body = b""  # (read once: from now on it is being read here)
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise ClientDisconnected("the client disconnected before its body was complete")
            data = message.get("body")
            if data:
                yield data
            if not message.get("more_body"):
                return
    body = getattr(ctx, "body", None)
    if isinstance(body, (bytes, bytearray)):  # read already (a server that reads it first)
        if body:  # one chunk, as it is (no copy)
            yield body if type(body) is bytes else bytes(body)
        return
    stream = ctx.request.stream  # WSGI: the input stream, read in this worker thread
    while True:
        data = stream.read(CHUNK)
        if not data:
            return
        yield data
