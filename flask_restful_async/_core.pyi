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

    def then(self, coro: Any) -> None:
        """Once the handler's coroutine returns, drive coro in its place, as the same task
        (a stream's sender: the frames that made it are not kept while it runs)."""

    # -- a long-lived streamed response (after http.response.start; the head is written now)
    def keepalive(self, interval_seconds: float, data: bytes) -> None:
        """Whenever nothing has been written for interval_seconds, the connection's timer
        writes data as a body chunk (no Python runs); stops when the response completes.
        ValueError for interval_seconds <= 0."""
    def write_timeout(self, seconds: float) -> None:
        """For this response, a client that takes nothing of its queued output for `seconds`
        is dropped (closed; the handler is cancelled as for a disconnect)."""

    # -- ASGI (interface "asgi"; also what the scope's receive/send callables are)
    def receive(self) -> Awaitable[dict]: ...
    def send(self, message: dict) -> Awaitable[None]:
        """ClientDisconnected once the client has gone (ASGI spec 2.4).  Also takes the
        extensions the scope announces: http.response.zerocopy ("file": a file object or
        descriptor of a regular file, "offset", "count", "more_body") and
        http.response.pathsend ("path"), sent with sendfile(2); the awaitable completes once
        the file is in the kernel."""

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

class StreamGroup:
    """Streamed responses on one loop that get the same chunks: publish() frames the data once
    and C writes it to every member (one shared buffer).  A member with more than max_queued
    bytes waiting is dropped (closed, its handler cancelled); members leave by themselves when
    their response ends or their client goes."""
    max_queued: int
    def __init__(self, max_queued: int) -> None: ...
    def add(self, exchange: Exchange) -> None: ...
    def discard(self, exchange: Exchange) -> None:
        """Nothing if it is not a member."""
    def publish(self, data: Buffer) -> int:
        """data as one body chunk to every member; how many got it."""
    def __len__(self) -> int: ...

class ClientDisconnected(OSError):
    """Raised by ASGI send() and Exchange.respond() once the client has gone (ASGI spec 2.4)."""

# True when the build has TLS for Redis (OpenSSL's headers were there): RedisTLS can be made.
REDIS_TLS: bool

class RedisTLS:
    """TLS settings for Redis connections (rediss://): one OpenSSL context, made once and
    shared by every connection given it.  ValueError names what could not be loaded;
    RuntimeError in a build without TLS.  verify=False skips certificate checks; verify_name
    is the name or IP address the server's certificate must carry (server_name is SNI only)."""
    def __init__(self, *, ca_file: Optional[str] = None, ca_path: Optional[str] = None,
                 cert_file: Optional[str] = None, key_file: Optional[str] = None,
                 server_name: Optional[str] = None, verify: bool = True,
                 verify_name: Optional[str] = None) -> None: ...

class RedisConnection:
    """One Redis connection on hiredis' async API (csrc/redis/).  On the loop of a started
    Server it rides that server's libuv loop (adapter "uv"); on any other asyncio loop it uses
    add_reader/add_writer/call_later (adapter "asyncio").  It connects once; after close() or
    a loss make a new one.  Commands appended in one loop pass go out in one write.  An open
    connection stays alive until it is closed or lost (the loop holds it, as it holds a
    transport)."""
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        host: Optional[str] = None,              # default "localhost" (IPv4 first)
        port: int = 6379,
        path: Optional[str] = None,              # a Unix socket instead of host/port
        connect_timeout: Optional[float] = None, # seconds
        decode: Optional[str] = None,            # bulk/status replies -> str in this encoding
                                                 # (and str arguments sent in it; else UTF-8)
        encoding_errors: str = "strict",
        error_factory: Callable[[str], BaseException],  # required: error reply text -> exception
        on_message: Optional[Callable[[list], None]] = None,
        # every pub/sub item, RESP2 or RESP3: [b"message", channel, data],
        # [b"pmessage", pattern, channel, data], and each (un)subscribe confirmation
        # [b"subscribe", channel, count] (the first one also resolves the SUBSCRIBE's execute)
        on_push: Optional[Callable[[list], None]] = None,
        # RESP3 pushes that are not pub/sub: [b"invalidate", [keys] | None]
        on_lost: Optional[Callable[[BaseException], None]] = None,
        # a ConnectionError, once, when a connection that was up dropped (not for close())
        tls: Optional[RedisTLS] = None,
    ) -> None: ...
    def connect(self) -> Awaitable[None]:
        """ConnectionError (refused, unreachable, closed or TLS refused during the handshake)
        or TimeoutError (connect_timeout).  Commands may be queued before it completes."""
    def execute(self, args: Union[tuple, list], timeout: Optional[float] = None) -> Awaitable[Any]:
        """One command: bytes/str/int/float/buffer arguments (str in the encoding, int in
        decimal, float as repr(); anything else, bool included: TypeError, nothing sent).
        Resolves with the reply: bulk/status/verbatim -> bytes (str with decode), integer and
        big number -> int, nil -> None, array/set/push -> list, map -> dict, double -> float,
        boolean -> bool, an error reply -> raises error_factory(text) (nested: the exception
        object in place), a reply that fails to decode -> raises that error.  timeout
        (seconds > 0): TimeoutError, the late reply dropped when it comes; cancelling the
        awaiter drops it likewise.  A dropped connection fails it with ConnectionError; after
        close() or a loss: ConnectionError at once.  SUBSCRIBE/PSUBSCRIBE resolve with their
        first confirmation; UNSUBSCRIBE/PUNSUBSCRIBE resolve with None at once (their
        confirmations go to on_message; with no subscription at all nothing is sent).
        MONITOR, SSUBSCRIBE and SUNSUBSCRIBE: ValueError."""
    def execute_many(self, commands: Union[list, tuple], timeout: Optional[float] = None) -> Awaitable[list]:
        """Commands written back to back (nothing else comes between them: MULTI ... EXEC is
        safe on a shared connection); one list of replies, an error reply (or a reply that
        failed to decode) as the exception object in place.  Any bad argument: nothing sent.
        Pub/sub commands: ValueError."""
    def close(self) -> None:
        """Disconnects; commands in flight fail with ConnectionError.  Idempotent."""
    connected: bool       # read-only
    pending: int          # read-only: commands whose replies are awaited (dropped ones too)
    adapter: str          # read-only: "uv" or "asyncio" (before connect(): the one it would use)
    writes: int           # read-only: writes of hiredis' output buffer so far
    # the asyncio adapter's loop callbacks
    def _on_readable(self) -> None: ...
    def _on_writable(self) -> None: ...
    def _on_timer(self) -> None: ...

class FileWrapper:
    """wsgi.file_wrapper(filelike, block_size=8192).  Iterated, it reads block_size blocks
    (PEP 3333); returned by a WSGI app whose file-like has a descriptor of a regular file, the
    server sends the file from its position (tell()) up to the Content-Length the app set,
    else to its end, with sendfile(2)."""
    filelike: Any
    block_size: int
    def __init__(self, filelike: Any, block_size: int = 8192) -> None: ...
    def __iter__(self) -> "FileWrapper": ...
    def __next__(self) -> bytes: ...
    def close(self) -> None: ...

def sendfile_bytes() -> int: ...              # bytes this process sent with sendfile(2)

class FileEvents:
    """callback() (no arguments) whenever the file at path, or its name in its directory,
    changes: written, truncated, renamed away, removed, created (csrc/stream/).  On the loop of
    a started Server it is libuv's uv_fs_event on the file's directory, read in the server's
    pass (adapter "uv"); on any other asyncio loop an inotify fd read through add_reader
    (adapter "asyncio", Linux).  Events of one loop pass make one call.  The loop holds only a
    weak reference: a watcher nobody closes is released when collected.  The directory must
    exist (OSError otherwise)."""
    def __init__(self, loop: asyncio.AbstractEventLoop, path: Union[str, bytes, "os.PathLike[str]"],
                 callback: Callable[[], Any]) -> None: ...
    def close(self) -> None:
        """Stops watching; no callback after this.  Idempotent."""
    def __del__(self) -> None:
        """Collected without close(): closes (the loop forgets the watcher)."""
    closed: bool          # read-only
    adapter: str          # read-only: "uv", "asyncio", "none" (its server closed) or "closed"

def version() -> str: ...                     # "flask-restful-async/<ver> libuv/<ver> llhttp/<ver>"
