"""The C server (flask_restful_async._core).  This stub is the contract between the C
extension and the Python side (server/worker.py); keep both in step.

Everything here runs on the worker's loop thread.  One Server per worker process.
"""
import asyncio
from typing import Any, Callable, Optional

# The range of each numeric setting, {name: (min, max)}: the Server's keyword arguments
# limit_request_line, limit_header_size, limit_header_count, limit_body_size,
# limit_concurrency and threads.  The CLI reads its ranges from here (server/config.py).
LIMITS: dict[str, tuple[int, int]]
# Longest timeout accepted, in seconds (a year).
TIMEOUT_MAX: int

class Server:
    def __init__(
        self,
        app: Callable[..., Any],
        loop: asyncio.AbstractEventLoop,
        *,
        interface: str = "asgi",              # "asgi" or "wsgi" (auto-detection is Python's job)
        # Each int below is checked against LIMITS (ValueError outside it, TypeError if not an int)
        threads: int = 16,                    # WSGI thread pool size (ignored for asgi)
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
            # called (on the loop thread or a WSGI thread, GIL held) to log an exception from the
            # app with its traceback; message says which request it came from
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
        """Attach to the asyncio loop (add_reader on libuv's backend fd) and begin accepting."""

    def shutdown(self) -> asyncio.Future:
        """Graceful drain: stop accepting; every connection's next response gets
        `Connection: close` (requests already on their way are served); a connection idle for
        min(timeout_keep_alive, 1 s) is closed.  Returns a future resolved when the last
        connection has closed."""

    def cancel_all(self) -> None:
        """Hard stop after the graceful timeout: cancel in-flight ASGI handlers and close
        every connection.  WSGI threads cannot be interrupted; their output is dropped."""

    def close(self) -> None:
        """Release everything (listeners, connections, thread pool, loop reader); WSGI requests
        queued for the pool and never run are released too.  Idempotent."""

    def connections(self) -> int: ...         # open client connections now
    def stats(self) -> dict:
        """{'connections': int, 'requests': int (total served), 'active': int (in flight)}"""

class ClientDisconnected(OSError):
    """Raised by ASGI send() and Exchange.respond() once the client has gone (ASGI spec 2.4)."""

def version() -> str: ...                     # "flask-restful-async/<ver> libuv/<ver> llhttp/<ver>"
