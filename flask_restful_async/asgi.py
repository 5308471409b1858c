"""ASGI 3 entry point: serve a Flask app holding an Api from uvicorn, hypercorn, ...

`AsyncResource` endpoints (and plain `async def` Flask views) run as coroutines on the
server's loop inside a Flask request context; every other request runs the app the WSGI way
in a thread pool, so sync code never blocks the loop.  A client that disconnects cancels its
coroutine (CancelledError reaches the handler, teardown runs).

    app = Flask(__name__); api = Api(app); ...
    asgi_app = api.asgi_app            # or flask_restful_async.asgi(app)
    # uvicorn module:asgi_app
"""
import asyncio
import contextvars
import io
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Optional, Tuple

from flask import Flask

from flask_restful_async.compat import worker_executor
from flask_restful_async.dispatch import handle_async, is_async_view
from flask_restful_async.loops import server_loop

__all__ = ["AsgiApp", "asgi", "build_environ"]

Scope = Dict[str, Any]
Receive = Callable[[], Awaitable[Dict[str, Any]]]
Send = Callable[[Dict[str, Any]], Awaitable[None]]


def build_environ(scope: Scope, body: bytes) -> Dict[str, Any]:
    """A PEP 3333 environ for an ASGI HTTP scope whose whole body is `body`."""
    root_path = scope.get("root_path", "")
    path = scope["path"]
    if root_path and path.startswith(root_path):
        path = path[len(root_path):]
    server = scope.get("server") or ("localhost", 80)
    environ: Dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": root_path.encode("utf-8").decode("latin-1"),
        "PATH_INFO": path.encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]) if server[1] is not None else "80",
        "SERVER_PROTOCOL": "HTTP/" + scope.get("http_version", "1.1"),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "asgi.scope": scope,
    }
    client = scope.get("client")
    if client:
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = str(client[0]), str(client[1])
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").lower()
        if "_" in name:
            continue  # would be indistinguishable from its '-' twin once in the environ
        value = raw_value.decode("latin-1")
        if name == "content-type":
            key = "CONTENT_TYPE"
        elif name == "content-length":
            key = "CONTENT_LENGTH"
        else:
            key = "HTTP_" + name.upper().replace("-", "_")
        if key in environ:
            environ[key] += ("; " if key == "HTTP_COOKIE" else ",") + value
        else:
            environ[key] = value
    if body and "CONTENT_LENGTH" not in environ:
        environ["CONTENT_LENGTH"] = str(len(body))
    return environ


def _asgi_headers(headers: Iterable[Tuple[str, str]]) -> List[Tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]


class _TooLarge(Exception):
    pass


async def _read_body(receive: Receive, limit: Optional[int]) -> Optional[bytes]:
    """The whole request body, or None if the client went away first."""
    chunks: List[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise _TooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class AsgiApp:
    """ASGI 3 application around a Flask app (see the module docstring).

    :param threads: size of the pool running sync requests and `run_sync` calls
    :param max_body_size: request bodies over this many bytes get 413 (None: no limit)
    """

    def __init__(self, app: Flask, *, threads: int = 32,
                 max_body_size: Optional[int] = None) -> None:
        self.app = app
        self.threads = threads
        self.max_body_size = max_body_size
        self._executor: Optional[ThreadPoolExecutor] = None

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The thread pool for sync requests (created on first use)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.threads,
                                                thread_name_prefix="fra-worker")
        return self._executor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        else:
            raise RuntimeError("flask_restful_async.asgi: unsupported scope type %r"
                               % scope["type"])

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._executor is not None:
                    self._executor.shutdown(wait=False)
                    self._executor = None
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _loop_view_context(self, environ: Dict[str, Any]) -> Optional[Any]:
        """A (not yet pushed) request context when the request's view runs on the loop."""
        if "wsgi_app" in vars(self.app):
            return None  # WSGI middleware wraps the app: only the WSGI path honours it
        ctx = self.app.request_context(environ)
        if ctx.url_adapter is None:
            return None
        ctx.match_request()
        rule = ctx.request.url_rule
        if rule is None or not is_async_view(self.app.view_functions.get(rule.endpoint)):
            return None
        return ctx

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await _read_body(receive, self.max_body_size)
        except _TooLarge:
            await send({"type": "http.response.start", "status": 413,
                        "headers": [(b"content-type", b"text/plain"), (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": b"Request Entity Too Large"})
            return
        if body is None:
            return
        environ = build_environ(scope, body)
        loop_token = server_loop.set(asyncio.get_running_loop())
        pool_token = worker_executor.set(self.executor)
        try:
            ctx = self._loop_view_context(environ)
            if ctx is not None:
                await self._run_on_loop(environ, ctx, receive, send)
            else:
                await self._run_in_thread(environ, send)
        finally:
            worker_executor.reset(pool_token)
            server_loop.reset(loop_token)

    async def _run_on_loop(self, environ: Dict[str, Any], ctx: Any, receive: Receive,
                           send: Send) -> None:
        handler = asyncio.ensure_future(handle_async(self.app, environ, ctx))
        watcher = asyncio.ensure_future(_wait_disconnect(receive))
        try:
            await asyncio.wait({handler, watcher}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            handler.cancel()
            watcher.cancel()
            raise
        if not handler.done():
            # the client went away: cancel the handler and wait for its cleanup
            handler.cancel()
            await asyncio.wait({handler})
            if not handler.cancelled():
                handler.exception()  # retrieved: a late failure is not "never retrieved"
            return
        watcher.cancel()
        response = handler.result()

        status_headers: List[Any] = []

        def start_response(status: str, headers: List[Tuple[str, str]], exc_info: Any = None) -> Any:
            status_headers[:] = [status, headers]
            return None

        app_iter = response(environ, start_response)
        if response.is_streamed:
            # a generator may block: iterate it in a worker thread
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self.executor, self._stream, app_iter, status_headers,
                                       send, loop)
            return
        try:
            body = b"".join(app_iter)
        finally:
            close = getattr(app_iter, "close", None)
            if close is not None:
                close()
        status, headers = status_headers
        await send({"type": "http.response.start", "status": int(status.split(" ", 1)[0]),
                    "headers": _asgi_headers(headers)})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _stream(app_iter: Iterable[bytes], status_headers: List[Any], send: Send,
                loop: asyncio.AbstractEventLoop) -> None:
        """Send a WSGI body iterable from a worker thread, one chunk ahead so the last
        chunk goes out with more_body False (and a one-chunk body in one hop)."""
        def deliver(messages: List[Dict[str, Any]]) -> None:
            async def go() -> None:
                for message in messages:
                    await send(message)
            asyncio.run_coroutine_threadsafe(go(), loop).result()

        pending: Optional[bytes] = None
        started = False
        try:
            for chunk in app_iter:
                if not chunk:
                    continue
                if pending is not None:
                    messages = []
                    if not started:
                        messages.append(_start_message(status_headers))
                        started = True
                    messages.append({"type": "http.response.body", "body": pending,
                                     "more_body": True})
                    deliver(messages)
                pending = chunk
            messages = [] if started else [_start_message(status_headers)]
            messages.append({"type": "http.response.body", "body": pending or b""})
            deliver(messages)
        finally:
            close = getattr(app_iter, "close", None)
            if close is not None:
                close()

    async def _run_in_thread(self, environ: Dict[str, Any], send: Send) -> None:
        loop = asyncio.get_running_loop()
        app = self.app.wsgi_app  # (wsgi_app, not __call__: WSGI middleware is kept)
        status_headers: List[Any] = []

        def start_response(status: str, headers: List[Tuple[str, str]], exc_info: Any = None) -> Any:
            status_headers[:] = [status, headers]  # nothing is sent before the first chunk
            return None

        def work() -> None:
            self._stream(app(environ, start_response), status_headers, send, loop)

        await loop.run_in_executor(self.executor, contextvars.copy_context().run, work)


def _start_message(status_headers: List[Any]) -> Dict[str, Any]:
    status, headers = status_headers
    return {"type": "http.response.start", "status": int(status.split(" ", 1)[0]),
            "headers": _asgi_headers(headers)}


def asgi(app: Any, **options: Any) -> AsgiApp:
    """An ASGI 3 application for a Flask app (or the app of an Api); see AsgiApp."""
    from flask_restful_async.api import Api

    if isinstance(app, Api):
        app = app.blueprint_setup.app if app.blueprint_setup is not None else app.app
    return AsgiApp(app, **options)
