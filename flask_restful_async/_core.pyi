"""The C server (flask_restful_async._core).  This stub is the contract between the C
extension and the Python side (server/worker.py); keep both in step.

Everything here runs on the worker's loop thread.  One Server per worker process.
"""
import asyncio
from typing import Any, Callable, Optional

class Server:
    def __init__(
        self,
        app: Callable[..., Any],
        loop: asyncio.AbstractEventLoop,
        *,
        interface: str = "asgi",              # "asgi" or "wsgi" (auto-detection is Python's job)
        threads: int = 16,                    # WSGI thread pool size (ignored for asgi)
        limit_request_line: int = 8190,       # bytes of method + target + version; over it: 414
        limit_header_size: int = 32768,       # bytes of all header fields together; over it: 431
        limit_header_count: int = 100,        # number of header fields; over it: 431
        limit_body_size: int = 0,             # request body bytes, 0 = unlimited; over it: 413
        limit_concurrency: int = 0,           # open connections, 0 = unlimited; over it: 503 + close
        timeout_header: float = 10.0,         # seconds to receive complete request headers, then close
        timeout_keep_alive: float = 5.0,      # seconds an idle keep-alive connection is kept
        access_log_fd: int = -1,              # fd to write access log lines to, -1 = off
        server_header: Optional[bytes] = b"flask-restful-async",   # None = no Server header
        root_path: str = "",                  # ASGI root_path / WSGI SCRIPT_NAME
        state: Optional[dict] = None,         # lifespan state; shallow-copied into each scope["state"]
        on_error: Optional[Callable[[str, BaseException], None]] = None,
            # called (on the loop thread or a WSGI thread, GIL held) to log an exception from the
            # app with its traceback; message says which request it came from
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
        """Attach to the asyncio loop (add_reader on libuv's backend fd) and begin accepting."""

    def shutdown(self) -> asyncio.Future:
        """Graceful drain: stop accepting, close idle keep-alive connections now, let
        in-flight requests finish (their responses get `Connection: close`).  Returns a
        future resolved when the last connection has closed."""

    def cancel_all(self) -> None:
        """Hard stop after the graceful timeout: cancel in-flight ASGI handlers and close
        every connection.  WSGI threads cannot be interrupted; their output is dropped."""

    def close(self) -> None:
        """Release everything (listeners, connections, thread pool, loop reader).  Idempotent."""

    def connections(self) -> int: ...         # open client connections now
    def stats(self) -> dict:
        """{'connections': int, 'requests': int (total served), 'active': int (in flight)}"""

def version() -> str: ...                     # "flask-restful-async/<ver> libuv/<ver> llhttp/<ver>"
