"""The C server (flask_restful_async._core).  This stub is the contract between the C
extension and the Python side (server/worker.py, server_app.py); tests/test_core_stub.py
checks it against the module itself.

Everything here runs on the worker's loop thread unless said otherwise.  One Server per worker
process.
"""
import asyncio
import contextvars
from typing import Any, Awaitable, Callable, Optional, Union

Buffer = Union[bytes, bytearray, memoryview]

# The range of each numeric setting, {name: (min, max)}: the Server's keyword arguments
# limit_request_line, limit_header_size, limit_header_count, limit_body_size,
# limit_concurrency and threads.  The CLI reads its ranges from here (server/config.py).
LIMITS: dict[str, tuple[int, int]]
# Longest timeout accepted, in seconds (a year).
TIMEOUT_MAX: int
# 1 in a build with fault injection (FRA_FAULTS; debug and sanitizer builds), else 0.
FAULT_INJECTION: int

class Server:
    def __init__(
        self,
        app: Callable[..., Any],
        loop: asyncio.AbstractEventLoop,
        *,
        interface: str = "asgi",
            # "asgi": app(scope, receive, send); "wsgi": app(environ, start_response) in the
            # thread pool; "native": app(exchange) returns the handler's coroutine, or None once
            # it handed the request to the pool (Exchange.run_wsgi)
        # Each int below is checked against LIMITS (ValueError outside it, TypeError if not an int)
        threads: int = 16,                    # thread pool size (WSGI, run_wsgi, submit)
        limit_request_line: int = 8190,       # bytes of method + target + version; over it: 414
        limit_header_size: int = 32768,       # bytes of all header fields together; over it: 431
        limit_header_count: int = 100,        # number of header fields; over it: 431
        limit_body_size: int = 0,             # request body bytes, 0 = unlimited; over it: 413
        limit_concurrency: int = 0,           # open connections, 0 = unlimited; over it: 503 + close
        # Timeouts in seconds, 0 = none, at most TIMEOUT_MAX (ValueError outside, or NaN)
        timeout_header: float = 10.0,         # seconds to receive complete request headers, then close
        timeout_keep_alive: float = 5.0,      # seconds an idle keep-alive connection is kept
        timeout_body: float = 60.0,           # seconds without a body byte while the app awaits the
                                              # body: 408 (no response begun) and close
        timeout_write: float = 60.0,          # seconds the client takes no byte of queued output: close
        access_log_fd: int = -1,              # fd to write access log lines to, -1 = off
        server_header: Optional[bytes] = b"flask-restful-async",   # None = no Server header
        root_path: str = "",                  # ASGI root_path / WSGI SCRIPT_NAME
        state: Optional[dict] = None,         # lifespan state; shallow-copied into each scope["state"]
        on_error: Optional[Callable[[str, BaseException], None]] = None,
            # called (on the loop thread or a pool thread, GIL held) to log an exception from the
            # app with its traceback; message says which request it came from
        multiprocess: bool = False,           # the environ's wsgi.multiprocess (--workers > 1)
        log_fd: int = 2,                      # where the C core writes its own warnings (dropped
                                              # access log lines) as "[pid] WARNING ..."; -1 = none
    ) -> None: ...

    # Listening: call one or more before start().  backlog is passed to listen(2).
    def listen_tcp(self, host: str, port: int, backlog: int = 2048) -> None: ...
    def listen_unix(self, path: str, backlog: int = 2048) -> None: ...
    def listen_fd(self, fd: int, backlog: int = 2048) -> None:
        """Serve an inherited listening socket (TCP or Unix). The fd is dup'ed; the caller
        keeps its own."""
    def sockname(self) -> list:
        """Bound addresses: [(host, port)] for TCP (real port when 0 was asked) or [path]."""

    def start(self) -> None:
        """Attach to the asyncio loop (add_reader on libuv's backend fd) and begin accepting.
        Every request's context is a copy of the context start() is called in."""

    def submit(self, fn: Callable[[], Any]) -> "asyncio.Future[Any]":
        """fn() run in the thread pool (bind arguments and context yourself); a future of its
        result or exception, on the server's loop.  run_sync uses it."""

    def shutdown(self) -> asyncio.Future:
        """Graceful drain: stop accepting; every connection's next response gets
        `Connection: close` (requests already on their way are served); a connection idle for
        min(timeout_keep_alive, 1 s) is closed.  Returns a future resolved when the last
        connection has closed."""

    def cancel_all(self) -> None:
        """Hard stop after the graceful timeout: cancel in-flight handlers and close every
        connection.  Pool threads cannot be interrupted; their output is dropped."""

    def close(self) -> None:
        """Release everything (listeners, connections, thread pool, loop reader); requests and
        calls queued for the pool and never run are released too.  Idempotent."""

    def connections(self) -> int: ...         # open client connections now
    def stats(self) -> dict:
        """{'connections': int, 'requests': int (total served), 'active': int (in flight)}"""

    # The loop adapter's callbacks (loop.c), handed to the asyncio loop by start().
    def run_nowait(self) -> None:
        """One non-blocking pass of the server's libuv loop (add_reader callback)."""
    def _on_timer(self) -> None: ...
    def _kick(self) -> None: ...

class Exchange:
    """One request being served.  The server makes it; it is also the request's asyncio task
    (asyncio.current_task() inside the handler), and, for interface "native", the only
    argument of the app."""

    # -- the request, without an ASGI scope
    method: str                                # read-only; scope["method"]
    path: str                                  # read-only; scope["path"] (percent-decoded)
    query_string: bytes                        # read-only; scope["query_string"]
    root_path: str                             # read-only; scope["root_path"]
    disconnected: bool                         # read-only; has the client gone?
    def header(self, name: bytes) -> Optional[bytes]:
        """The value of the request's fields called `name` (any case), repeated ones joined as
        the environ joins them; None when absent."""
    def scope(self) -> dict:
        """The ASGI scope (made on first call, then the same dict)."""
    def environ(self, body: Optional[bytes] = None) -> dict:
        """The PEP 3333 environ.  With `body` (the whole body, already taken), wsgi.input reads
        it; without, wsgi.input streams the body from the connection, which only a pool thread
        may read (hand the environ to run_wsgi)."""

    # -- the body
    def take_body(self) -> Optional[bytes]:
        """The whole body if all of it has arrived (and none was received yet), else None."""
    def body(self) -> Awaitable[Optional[bytes]]:
        """The whole body once it has arrived, or None if the client leaves first."""

    # -- answering (interface "native")
    def respond(self, status: int, content_type: Buffer, body: Union[Buffer, str]) -> None:
        """The whole response in one call, with Content-Length (a str body as UTF-8).
        ClientDisconnected once the client has gone."""
    def respond_wsgi(self, status: str, headers: list[tuple[str, str]],
                     body: Union[Buffer, str]) -> None:
        """The whole response from a WSGI status line ("200 OK") and header list, the names
        as given.  ClientDisconnected once the client has gone."""
    def run_wsgi(self, app: Callable[..., Any], environ: Optional[dict] = None) -> None:
        """Serve the request by calling the WSGI app in the thread pool (environ: one made by
        environ(), else the pool thread makes it), in a copy of the current context.  The
        exchange then belongs to the pool: the caller returns."""
    def cancel_on_disconnect(self) -> None:
        """From now on a client that leaves cancels the handler, as task.cancel() would."""

    # -- ASGI (interface "asgi"; also what the scope's receive/send callables are)
    def receive(self) -> Awaitable[dict]: ...
    def send(self, message: dict) -> Awaitable[None]:
        """ClientDisconnected once the client has gone (ASGI spec 2.4)."""

    # -- the Task API that asyncio (timeout, wait_for, TaskGroup) uses on the current task
    def cancel(self, msg: Optional[Any] = None) -> bool: ...
    def cancelling(self) -> int: ...
    def uncancel(self) -> int: ...
    def cancelled(self) -> bool: ...
    def done(self) -> bool: ...
    def result(self) -> Any: ...
    def exception(self) -> Optional[BaseException]: ...
    def add_done_callback(self, fn: Callable[["Exchange"], Any], *,
                          context: Optional[contextvars.Context] = None) -> None: ...
    def remove_done_callback(self, fn: Callable[["Exchange"], Any]) -> int: ...
    def get_loop(self) -> asyncio.AbstractEventLoop: ...
    def get_coro(self) -> Any: ...
    def get_name(self) -> str: ...
    def set_name(self, value: object) -> None: ...
    def get_context(self) -> Optional[contextvars.Context]: ...
    # driver internals: the future the handler waits on, callbacks handed to the loop
    _fut_waiter: Any
    _must_cancel: bool
    def _wakeup(self, future: Any) -> None: ...
    def _step(self) -> None: ...
    def _release_result(self) -> None: ...

class ClientDisconnected(OSError):
    """Raised by ASGI send() and Exchange.respond() once the client has gone (ASGI spec 2.4)."""

def version() -> str: ...                     # "flask-restful-async/<ver> libuv/<ver> llhttp/<ver>"
