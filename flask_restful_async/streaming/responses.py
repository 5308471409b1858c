"""Responses whose body is produced while it is sent: what a resource returns as an iterator
(`return chunks()`, `return chunks(), 200, {"Content-Type": "text/csv"}`), and the base of
EventStream and the file responses.

They are Flask Responses (a werkzeug Response of another class would be converted by Flask's
make_response, losing what it is), so flask-restful passes them through untouched and any WSGI
server can send them.  Our servers send them themselves, part by part, through an `Output`:
an ASGI `send` (our server's exchange has one, and so does any ASGI server) and the extensions
the server offers.  On our server each part is one call into C, which frames it (chunked, or
Content-Length when the resource set one) and applies backpressure: `send` waits while the
client's queue is above the high watermark, so a slow reader never makes the server hold more
than a bounded amount."""
import inspect
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from typing import Any, Dict, Iterable, List, Optional, Tuple

from flask.wrappers import Response as FlaskResponse
from werkzeug.wrappers import Response as ResponseBase

from flask_restful_async._core import Exchange
from flask_restful_async.loops import run_coroutine_sync

__all__ = ["Output", "StreamResponse", "stream_response_of", "aclose_quietly", "PLAIN_RESULTS"]

#: result types that are never a stream (checked first: they are what resources return)
PLAIN_RESULTS = frozenset({dict, list, str, bytes, int, float, bool, type(None)})


class Output:
    """Where a streamed response goes: an ASGI `send` callable, whether the server takes the
    zero-copy file extensions, whether the request was a HEAD, and, on our server, the
    exchange (for keepalive pings, the write timeout and fan-out in C)."""

    __slots__ = ("send", "zerocopy", "pathsend", "exchange", "is_head")

    def __init__(self, send: Any, *, zerocopy: bool = False, pathsend: bool = False,
                 exchange: Any = None, is_head: bool = False) -> None:
        self.send = send
        self.zerocopy = zerocopy
        self.pathsend = pathsend
        self.exchange = exchange
        self.is_head = is_head

    @classmethod
    def for_exchange(cls, exchange: Any) -> "Output":
        """Our server's exchange: every extension, and the exchange's own calls."""
        return cls(exchange.send, zerocopy=True, pathsend=True, exchange=exchange,
                   is_head=exchange.method == "HEAD")

    @classmethod
    def for_asgi(cls, scope: Dict[str, Any], send: Any) -> "Output":
        """An ASGI server: the extensions its scope announces; on our server (`send` is an
        exchange's own, not wrapped by middleware) the exchange's calls too, so pings, the
        send timeout and fan-out run in C there as well."""
        exchange = getattr(send, "__self__", None)
        if exchange is not None and type(exchange) is Exchange:
            return cls.for_exchange(exchange)
        extensions = scope.get("extensions") or {}
        return cls(send, zerocopy="http.response.zerocopy" in extensions,
                   pathsend="http.response.pathsend" in extensions,
                   is_head=scope.get("method") == "HEAD")

    async def start(self, status: int, headers: List[Tuple[bytes, bytes]]) -> None:
        await self.send({"type": "http.response.start", "status": status, "headers": headers})

    async def body(self, data: bytes, more: bool = True) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": more})


async def aclose_quietly(source: Any) -> None:
    """Close an iterator we stopped reading (a generator's `finally` runs now)."""
    close = getattr(source, "aclose", None)
    if close is not None:
        await close()
        return
    close = getattr(source, "close", None)
    if close is not None:
        close()


class StreamResponse(FlaskResponse):
    """A response whose body is an iterator of `bytes` or `str` (str is encoded with the
    response's charset, UTF-8 unless the Content-Type says otherwise).  An async iterator is
    sent by our servers on the event loop; a sync iterator is a plain streamed werkzeug
    response (our server iterates it in its thread pool: it may block)."""

    default_mimetype = "application/octet-stream"

    def __init__(self, source: Any, status: Optional[int] = None,
                 headers: Optional[Any] = None, mimetype: Optional[str] = None,
                 content_type: Optional[str] = None) -> None:
        is_async = isinstance(source, (AsyncIterator, AsyncIterable))
        if is_async and not isinstance(source, AsyncIterator):
            source = source.__aiter__()
        self.source = source
        self.is_async = is_async
        #: our servers send it on the event loop (`serve`); a sync source goes the WSGI way
        self.serve_on_loop = is_async
        #: the first chunk, pulled by prime() before the head is sent; sent first
        self.first = b""
        body = _AsyncInThread(source, self) if is_async else _encoded(source, self)
        super().__init__(body, status=status, headers=headers, mimetype=mimetype,
                         content_type=content_type, direct_passthrough=True)

    async def prime(self) -> None:
        """Pull the first non-empty chunk of an async source now, while the request's own
        error handling is still around the call: a stream that fails before its first byte
        is answered as any resource that raised (flask-restful's JSON error, its traceback
        logged), instead of with a plain 500.  (The servers call it; EventStream does not
        prime: its head goes at once.)"""
        encode = self.encode
        async for item in self.source:
            data = encode(item)
            if data:
                self.first = data
                return

    def prime_sync(self) -> None:
        """prime() for a sync source, in the thread that will iterate it."""
        chunks = self.response
        for data in chunks:
            self.response = _Primed(data, chunks)
            return

    def encode(self, item: Any) -> bytes:
        """One item of the source as bytes."""
        if isinstance(item, (bytes, bytearray, memoryview)):
            return bytes(item)
        if isinstance(item, str):
            return item.encode(self.charset or "utf-8")
        raise TypeError("a streamed response yields bytes or str, not %s"
                        % type(item).__name__)

    @property
    def charset(self) -> str:
        return self.mimetype_params.get("charset", "utf-8")

    def asgi_headers(self) -> List[Tuple[bytes, bytes]]:
        return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]

    async def serve(self, out: Output) -> None:
        """Send this response (our servers call this for an async source)."""
        source = self.source
        try:
            await out.start(self.status_code, self.asgi_headers())
            if out.is_head:
                await out.body(b"", False)
                return
            if self.first:
                await out.body(self.first)
            encode = self.encode
            async for item in source:
                data = encode(item)
                if data:
                    await out.body(data)
            await out.body(b"", False)
        finally:
            await aclose_quietly(source)


class _Primed:
    """A sync stream's chunks after prime_sync took the first: that one, then the rest."""

    def __init__(self, first: bytes, rest: Iterator[bytes]) -> None:
        self.first = first
        self.rest = rest

    def __iter__(self) -> Iterator[bytes]:
        yield self.first
        yield from self.rest

    def close(self) -> None:
        self.rest.close()  # (the _encoded generator: it closes the source)


def _encoded(source: Iterable[Any], response: StreamResponse) -> Iterator[bytes]:
    """A sync source as bytes, for WSGI."""
    try:
        for item in source:
            data = response.encode(item)
            if data:
                yield data
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()


class _AsyncInThread:
    """An async source under a WSGI server: each item is awaited on the worker thread's own
    event loop (the resource ran there too)."""

    def __init__(self, source: Any, response: StreamResponse) -> None:
        self.source = source
        self.response = response

    def __iter__(self) -> Iterator[bytes]:
        source = self.source
        if self.response.first:
            yield self.response.first
        while True:
            try:
                item = run_coroutine_sync(source.__anext__())
            except StopAsyncIteration:
                return
            data = self.response.encode(item)
            if data:
                yield data

    def close(self) -> None:
        close = getattr(self.source, "aclose", None)
        if close is not None:
            run_coroutine_sync(close())


def stream_response_of(rv: Any) -> Optional[ResponseBase]:
    """What a resource returned, as a StreamResponse when it is an iterator of chunks (alone,
    or as the body of a (body, status[, headers]) tuple); else None."""
    if type(rv) in PLAIN_RESULTS or isinstance(rv, ResponseBase):
        return None
    body, status, headers = rv, None, None
    if type(rv) is tuple and rv:
        body = rv[0]
        if type(body) in PLAIN_RESULTS:
            return None
        if len(rv) > 1:
            status = rv[1]
        if len(rv) > 2:
            headers = rv[2]
        if isinstance(status, dict) and headers is None:  # (body, headers)
            status, headers = None, status
    if not _is_stream(body):
        return None
    response = StreamResponse(body, status=status, headers=headers)
    return response


def _is_stream(body: Any) -> bool:
    if isinstance(body, (AsyncIterator, AsyncIterable)):
        return True
    if isinstance(body, Iterator) and not isinstance(body, (str, bytes, dict, list, tuple)):
        return True
    return inspect.isgenerator(body)
