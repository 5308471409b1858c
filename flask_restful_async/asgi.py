"""ASGI 3 entry point: serve a Flask app holding an Api from another ASGI server (uvicorn,
hypercorn).  Our own server does not go through here: it calls server_app.ServerApp.

`AsyncResource` endpoints (and plain `async def` Flask views) run as coroutines on the
server's loop inside a Flask request context (pipeline.handle_request); every other request
runs the app the WSGI way in a thread pool, so sync code never blocks the loop.  A client that
disconnects cancels its coroutine (CancelledError reaches the handler, teardown runs).

    app = Flask(__name__); api = Api(app); ...
    asgi_app = api.asgi_app            # or flask_restful_async.asgi(app)
    # uvicorn module:asgi_app
"""
import asyncio
import contextvars
import functools
import sys
import types
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Optional, Tuple

from flask import Flask

from flask_restful_async.asgi_environ import environ_from_scope
from flask_restful_async.compat import worker_executor
from flask_restful_async.lazy_context import LazyRequestContext
from flask_restful_async.loops import server_loop
from flask_restful_async.pipeline import ROUTE_KEY, Result, handle_request, serve_sync
from flask_restful_async.rendering import whole_response
from flask_restful_async.routing import Route, RouteKind, Router, Routing
from flask_restful_async.streaming.responses import Output
from flask_restful_async.trampolines import NOT_STARTED, drive, follow
from flask_restful_async.watchdog import watchdog_for

__all__ = ["AsgiApp", "asgi"]

Scope = Dict[str, Any]
Receive = Callable[[], Awaitable[Dict[str, Any]]]
Send = Callable[[Dict[str, Any]], Awaitable[None]]

_UNSET: Any = object()
_GONE: Any = object()


class _TooLarge(Exception):
    pass


async def _read_body(receive: Receive, limit: Optional[int]) -> Optional[bytes]:
    """The whole request body, or None if the client went away first."""
    chunks: List[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise _TooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _asgi_headers(headers: Iterable[Tuple[str, str]]) -> List[Tuple[bytes, bytes]]:
    # ASGI: response header names are sent lower-case
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]


def _start_message(status: str, headers: Iterable[Tuple[str, str]]) -> Dict[str, Any]:
    return {"type": "http.response.start", "status": int(status.split(" ", 1)[0]),
            "headers": _asgi_headers(headers)}


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
        self._router = Router(app)
        self._watchdog: Any = _UNSET

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

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self.app
        router = self._router
        method = scope["method"]
        route: Optional[Route] = None
        # (WSGI middleware: only the WSGI way honours it)
        direct = "wsgi_app" not in app.__dict__
        if direct and router.routing is Routing.PATH:  # routed before the body is read
            path = scope["path"]
            root_path = scope.get("root_path", "")
            if root_path and path.startswith(root_path):
                path = path[len(root_path):]
            route = router.lookup(method, path)
            if route is not None and route.plan.streams_body:
                await self._streaming_body(scope, receive, send, route)
                return
        try:
            body = await _read_body(receive, self.max_body_size)
        except _TooLarge:
            await send({"type": "http.response.start", "status": 413,
                        "headers": [(b"content-type", b"text/plain"), (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": b"Request Entity Too Large"})
            return
        if body is None:
            return  # the client left before its request was complete
        self._set_loop_vars()
        request = None
        if direct and router.routing is Routing.REQUEST:  # routed by the whole request
            request = app.request_class(environ_from_scope(scope, body))
            route = router.match(request)
        if route is None or route.kind is RouteKind.THREAD:
            await self._run_in_thread(app.wsgi_app, environ_from_scope(scope, body), send)
            return
        if route.kind is RouteKind.SYNC:
            environ = environ_from_scope(scope, body)
            environ[ROUTE_KEY] = route
            await self._run_in_thread(functools.partial(serve_sync, app), environ, send)
            return
        ctx = LazyRequestContext(app, route, method, body, scope=scope, request=request)
        result = await self._run_on_loop(handle_request(app, ctx, route, method),
                                         route.endpoint, receive)
        if result is _GONE:
            return  # the client left and the handler was cancelled: nothing to send
        await self._send_result(result, ctx, scope, receive, send)

    def _set_loop_vars(self) -> None:
        """compat.run_sync / run_async find the loop and the pool here; each request runs in
        its own task, so its own context copy: no reset is needed."""
        loop = asyncio.get_running_loop()
        if server_loop.get() is not loop:
            server_loop.set(loop)
        executor = self.executor
        if worker_executor.get() is not executor:
            worker_executor.set(executor)

    async def _streaming_body(self, scope: Scope, receive: Receive, send: Send,
                              route: Route) -> None:
        """A resource method that reads its body with body_chunks(): run before the body is
        read (the body's messages are its to receive, so no disconnect watch meanwhile)."""
        self._set_loop_vars()
        method = scope["method"]
        ctx = LazyRequestContext(self.app, route, method, None, scope=scope)
        ctx.receive = receive
        result = await self._run_on_loop(handle_request(self.app, ctx, route, method),
                                         route.endpoint, receive, watch_disconnect=False)
        await self._send_result(result, ctx, scope, receive, send)

    def _watchdog_for_app(self) -> Any:
        if self._watchdog is _UNSET:
            self._watchdog = watchdog_for(self.app)
        return self._watchdog

    async def _run_on_loop(self, handler: Any, endpoint: str, receive: Receive,
                           watch_disconnect: bool = True) -> Any:
        """Run the handler coroutine on this loop, cancelled if the client leaves: its
        result, or _GONE when the client left and the handler was cancelled."""
        watchdog = self._watchdog_for_app()
        watch = _DisconnectWatch(receive)
        # (armed, the watch would take a body's messages that body_chunks() is to read)
        arm = watch.arm if watch_disconnect else _nothing
        try:
            if watchdog is not None:
                return await drive(handler, arm, watchdog, endpoint, NOT_STARTED)
            # first step here: a handler that finishes in it needs no disconnect watcher
            try:
                yielded = handler.send(None)
            except StopIteration as stop:
                return stop.value
            # it suspended: watch for a disconnect, and delegate to the handler from now on
            # (no Python-level trampoline per step)
            arm()
            return await follow(handler, yielded)
        except asyncio.CancelledError:
            if not watch.gone:
                raise
            task = asyncio.current_task()
            if task is not None and hasattr(task, "uncancel"):
                task.uncancel()  # we cancelled it because the client left: not an error
            return _GONE
        finally:
            watch.disarm()

    async def _send_result(self, result: Result, ctx: LazyRequestContext, scope: Scope,
                           receive: Receive, send: Send) -> None:
        if type(result) is tuple:
            status, text = result
            body = text.encode("utf-8")
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", b"%d" % len(body))]})
            await send({"type": "http.response.body", "body": body})
            return
        if getattr(result, "serve_on_loop", False):
            # a stream or a file: sent on the loop, stopped (its source closed) if the
            # client leaves
            await self._run_on_loop(result.serve(Output.for_asgi(scope, send)),
                                    ctx.route.endpoint, receive)
            return
        environ = ctx.request.environ
        if result.is_streamed:
            # a generator may block: iterate it in a worker thread
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self.executor, self._stream, result, environ, send,
                                       loop, False)
            return
        status, headers, body = whole_response(result, environ)
        await send(_start_message(status, headers))
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _stream(wsgi_app: Any, environ: Dict[str, Any], send: Send,
                loop: asyncio.AbstractEventLoop, hand_back: bool) -> Optional[Dict[str, Any]]:
        """Run a WSGI callable (the app, or a response) in a worker thread and send its body
        one chunk ahead, so the last chunk goes out with more_body False.  With `hand_back`,
        a response of at most one chunk is returned (start message and body) for the loop
        to send instead (no cross-thread hop at all)."""
        status_headers: List[Any] = []

        def start_response(status: str, headers: List[Tuple[str, str]], exc_info: Any = None) -> Any:
            status_headers[:] = [status, headers]  # nothing is sent before the first chunk

        def deliver(messages: List[Dict[str, Any]]) -> None:
            async def go() -> None:
                for message in messages:
                    await send(message)
            asyncio.run_coroutine_threadsafe(go(), loop).result()

        app_iter = wsgi_app(environ, start_response)
        pending: Optional[bytes] = None
        started = False
        try:
            for chunk in app_iter:
                if not chunk:
                    continue
                if pending is not None:
                    messages = []
                    if not started:
                        messages.append(_start_message(*status_headers))
                        started = True
                    messages.append({"type": "http.response.body", "body": pending,
                                     "more_body": True})
                    deliver(messages)
                pending = chunk
            last = {"type": "http.response.body", "body": pending or b""}
            if hand_back and not started:
                return {"start": _start_message(*status_headers), "body": last}
            deliver([last] if started else [_start_message(*status_headers), last])
            return None
        finally:
            close = getattr(app_iter, "close", None)
            if close is not None:
                close()

    async def _run_in_thread(self, wsgi_app: Any, environ: Dict[str, Any], send: Send) -> None:
        """Serve the request with `wsgi_app` (the app's wsgi_app, not __call__: WSGI
        middleware is kept) in the pool."""
        loop = asyncio.get_running_loop()
        work = contextvars.copy_context().run
        short = await loop.run_in_executor(self.executor, work, self._stream,
                                           wsgi_app, environ, send, loop, True)
        if short is not None:
            await send(short["start"])
            await send(short["body"])


def _nothing() -> None:
    pass


class _DisconnectWatch:
    """Cancels the running handler when the client disconnects; armed only once the
    handler suspends (a handler that finishes in one step cannot see a disconnect)."""

    __slots__ = ("receive", "task", "waiter", "own", "gone", "done")

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.task: Any = None
        self.waiter: Any = None
        self.own = False
        self.gone = False
        self.done = False

    def arm(self) -> None:
        self.task = asyncio.current_task()
        if self.task is None:
            return
        waiter = self.receive()
        if not hasattr(waiter, "add_done_callback"):
            waiter = asyncio.ensure_future(waiter)  # a coroutine (most ASGI servers)
            self.own = True
        self.waiter = waiter
        waiter.add_done_callback(self._on_message)

    def _on_message(self, fut: Any) -> None:
        if self.done or fut.cancelled() or fut.exception() is not None:
            return
        if fut.result().get("type") == "http.disconnect":
            self.gone = True
            self.task.cancel()

    def disarm(self) -> None:
        self.done = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.own:
            waiter.cancel()
        else:
            waiter.remove_done_callback(self._on_message)


def asgi(app: Any, **options: Any) -> AsgiApp:
    """An ASGI 3 application for a Flask app (or the app of an Api); see AsgiApp."""
    if not isinstance(app, Flask):
        flask_app = getattr(app, "flask_app", None)
        if not isinstance(flask_app, Flask):
            raise TypeError("asgi(): expected a Flask app or an Api attached to one, got %r"
                            % (app,))
        app = flask_app
    return AsgiApp(app, **options)


class _CallableModule(types.ModuleType):
    """Importing this submodule binds `flask_restful_async.asgi` to the module, shadowing
    the `asgi()` function the package exports under the same name; calling the module does
    what the function does, so `from flask_restful_async import asgi; asgi(app)` works
    whichever of the two the name holds."""

    def __call__(self, app: Any, **options: Any) -> AsgiApp:
        return asgi(app, **options)


sys.modules[__name__].__class__ = _CallableModule
