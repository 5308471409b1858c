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
import types
import io
import sys
from concurrent.futures import ThreadPoolExecutor
from inspect import isawaitable
from types import CoroutineType
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Optional, Tuple

from flask import Flask
from flask.signals import request_started
from werkzeug.wrappers import Response as ResponseBase

from flask_restful_async.compat import worker_executor
from flask_restful_async.dispatch import (await_view, handle_async, is_async_view,
                                          preprocess_request_async)
from flask_restful_async.loops import server_loop
from flask_restful_async.native import (_NOT_STARTED, DIRECT, THREAD, LoopWatchdog,
                                        NativeRequestContext, Route, Router,
                                        blocked_loop_threshold, drive, follow,
                                        render_direct)
from flask_restful_async.resources import AsyncResource
from flask_restful_async.utils import unpack

__all__ = ["AsgiApp", "asgi", "build_environ"]

Scope = Dict[str, Any]
Receive = Callable[[], Awaitable[Dict[str, Any]]]
Send = Callable[[Dict[str, Any]], Awaitable[None]]


_BASE_ENVIRON: Dict[str, Any] = {
    "wsgi.version": (1, 0),
    "wsgi.errors": sys.stderr,
    "wsgi.multithread": True,
    "wsgi.multiprocess": True,
    "wsgi.run_once": False,
    "wsgi.input_terminated": True,
}
# raw header name -> environ key ("" for names with "_", which are dropped: they would be
# indistinguishable from their '-' twins once in the environ); bounded
_HEADER_KEYS: Dict[bytes, str] = {}


def _environ_key(raw_name: bytes) -> str:
    key = _HEADER_KEYS.get(raw_name)
    if key is None:
        name = raw_name.decode("latin-1").lower()
        if "_" in name:
            key = ""
        elif name == "content-type":
            key = "CONTENT_TYPE"
        elif name == "content-length":
            key = "CONTENT_LENGTH"
        else:
            key = "HTTP_" + name.upper().replace("-", "_")
        if len(_HEADER_KEYS) < 1024:
            _HEADER_KEYS[raw_name] = key
    return key


def build_environ(scope: Scope, body: bytes) -> Dict[str, Any]:
    """A PEP 3333 environ for an ASGI HTTP scope whose whole body is `body`."""
    root_path = scope.get("root_path", "")
    path = scope["path"]
    if root_path and path.startswith(root_path):
        path = path[len(root_path):]
    server = scope.get("server") or ("localhost", 80)
    environ = _BASE_ENVIRON.copy()
    environ["REQUEST_METHOD"] = scope["method"]
    environ["SCRIPT_NAME"] = root_path.encode("utf-8").decode("latin-1") if root_path else ""
    environ["PATH_INFO"] = path if path.isascii() else path.encode("utf-8").decode("latin-1")
    environ["QUERY_STRING"] = scope.get("query_string", b"").decode("latin-1")
    environ["SERVER_NAME"] = str(server[0])
    environ["SERVER_PORT"] = str(server[1]) if server[1] is not None else "80"
    environ["SERVER_PROTOCOL"] = "HTTP/" + scope.get("http_version", "1.1")
    environ["wsgi.url_scheme"] = scope.get("scheme", "http")
    environ["wsgi.input"] = io.BytesIO(body)
    environ["asgi.scope"] = scope
    client = scope.get("client")
    if client:
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = str(client[0]), str(client[1])
    for raw_name, raw_value in scope.get("headers", ()):
        key = _environ_key(raw_name)
        if not key:
            continue
        value = raw_value.decode("latin-1")
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


_UNSET: Any = object()
_TOO_LARGE: Any = object()
_RESOURCE_DISPATCH = AsyncResource._dispatch
_GONE: Any = object()


def _call_resource(route: Route, method: str, view_args: Dict[str, Any]) -> Tuple[Any, Any]:
    """Make a DIRECT route's resource and call its method: (resource, result), the result
    possibly awaitable.  With a deadline, or a resource class with its own `_dispatch`, the
    result is that coroutine (which applies the resource's representations itself) and the
    resource part is None."""
    resource = route.resource(*route.class_args, **route.class_kwargs)
    timeout = resource.timeout
    if timeout is None:
        timeout = route.api.timeout
    if timeout or type(resource)._dispatch is not _RESOURCE_DISPATCH:
        return None, resource._dispatch((), view_args, timeout, method)
    # AsyncResource._dispatch without a deadline, inline
    meth = None if resource.method_decorators else getattr(resource, route.plan.attr, None)
    if meth is None:
        meth = resource._method(method)  # (decorated; HEAD falling back to GET; its error)
    return resource, meth(**view_args)


def _shape(route: Route, app: Flask, ctx: NativeRequestContext, method: str,
           rv: Any) -> Tuple[Optional[Tuple[int, str]], Any]:
    """What a resource returned, as Api.make_response would answer it: ((status, JSON
    text), None) when no Response object is needed (see render_direct), else (None, the
    response)."""
    if isinstance(rv, ResponseBase):
        return None, rv
    data, code, headers = unpack(rv)
    direct = render_direct(route.api, app, method, data, code, headers)
    if direct is not None and not ctx.needs_response_object():
        return direct, None
    return None, route.api.make_response(data, code, headers=headers)


async def _read_body(receive: Receive, limit: Optional[int],
                     first: bytes = b"") -> Optional[bytes]:
    """The whole request body (after `first`, already received), or None if the client
    went away first."""
    chunks: List[bytes] = [first]
    size = len(first)
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

    def _loop_view_context(self, environ: Dict[str, Any]) -> Optional[Any]:
        """A (not yet pushed) Flask request context when the request's view runs on the
        loop; used when the app's routing needs the whole request (see native.Router)."""
        ctx = self.app.request_context(environ)
        if ctx.url_adapter is None:
            return None
        ctx.match_request()
        rule = ctx.request.url_rule
        if rule is None or not is_async_view(self.app.view_functions.get(rule.endpoint)):
            return None
        return ctx

    async def _http(self, scope: Scope, receive: Receive, send: Send,
                    body: Optional[bytes] = None) -> None:
        """One HTTP request; `body`: the whole body, when the caller already has it."""
        limit = self.max_body_size
        if body is None:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before its request was complete
            body = message.get("body", b"")
            try:
                if message.get("more_body", False):
                    body = await _read_body(receive, limit, body)
                elif limit is not None and len(body) > limit:
                    raise _TooLarge()
            except _TooLarge:
                body = _TOO_LARGE
            if body is None:
                return
        elif limit is not None and len(body) > limit:
            body = _TOO_LARGE
        if body is _TOO_LARGE:
            await send({"type": "http.response.start", "status": 413,
                        "headers": [(b"content-type", b"text/plain"), (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": b"Request Entity Too Large"})
            return
        # compat.run_sync / run_async find the loop and the pool here; each request runs in
        # its own context copy (a task's, or the C exchange's), so no reset is needed
        loop = asyncio.get_running_loop()
        if server_loop.get() is not loop:
            server_loop.set(loop)
        executor = self._executor
        if executor is None:
            executor = self.executor
        if worker_executor.get() is not executor:
            worker_executor.set(executor)
        app = self.app
        if "wsgi_app" in app.__dict__:
            # WSGI middleware wraps the app: only the WSGI path honours it
            await self._run_in_thread(build_environ(scope, body), send)
            return
        path = scope["path"]
        root_path = scope.get("root_path", "")
        if root_path and path.startswith(root_path):
            path = path[len(root_path):]
        router = self._router
        method = scope["method"]
        route = router.lookup(method, path)
        if route is None:
            environ = build_environ(scope, body)
            ctx = self._loop_view_context(environ) if not router.usable() else None
            if ctx is None:  # no route (404, 405, redirect) or a sync view: Flask's way
                await self._run_in_thread(environ, send)
                return
            endpoint = ctx.request.url_rule.endpoint
            await self._run_on_loop(handle_async(app, environ, ctx), endpoint, environ,
                                    receive, send)
            return
        if route.kind is THREAD:
            await self._run_in_thread(build_environ(scope, body), send)
            return
        native_ctx = NativeRequestContext(app, scope, body, route, dict(route.view_args))
        await self._run_on_loop(self._handle(native_ctx, route, method),
                                route.endpoint, native_ctx, receive, send)

    # -- our server: the native entry ---------------------------------------------------

    def server_entry(self, loop: asyncio.AbstractEventLoop) -> Callable[[Any], Any]:
        """What flask_restful_async's own server calls for each request (its worker calls
        this once, before serving, in the context every request's context is copied from,
        and serves with interface "native").

        It is called with the server's exchange (the request) and returns the request's
        coroutine.  A plain AsyncResource request (no hooks to run first, no watchdog)
        becomes one coroutine that calls the resource and answers through the exchange's
        own calls: the body taken whole, the disconnect watched by the server, the JSON
        response written in one call, the ASGI scope made only if something reads it.
        Everything else takes the ASGI path (`_http`) with the exchange's scope, receive
        and send."""
        server_loop.set(loop)
        worker_executor.set(self.executor)
        self._watchdog_for_app()
        return self._server_call

    def _server_call(self, ex: Any) -> Any:
        body = ex.take_body()
        app = self.app
        if (body is None or (self.max_body_size is not None and len(body) > self.max_body_size)
                or "wsgi_app" in app.__dict__ or self._watchdog is not None):
            return self._http(ex.scope(), ex.receive, ex.send, body)
        path = ex.path
        root_path = ex.root_path
        if root_path and path.startswith(root_path):
            path = path[len(root_path):]
        method = ex.method
        route = self._router.lookup(method, path)
        if route is None or not route.plan.direct or request_started.receivers:
            return self._http(ex.scope(), ex.receive, ex.send, body)
        ex.cancel_on_disconnect()
        return self._direct(ex, NativeRequestContext(app, None, body, route,
                                                     dict(route.view_args), ex),
                            route, method)

    async def _direct(self, ex: Any, ctx: NativeRequestContext, route: Route,
                      method: str) -> None:
        """A DIRECT route on our server: `_handle` + `_dispatch` + `_run_on_loop` in one
        coroutine (hooks that run before the view are known to be absent)."""
        app = self.app
        plan = route.plan
        error: Optional[BaseException] = None
        direct = None
        ctx.enter(plan)
        try:
            try:
                try:
                    resource, rv = _call_resource(route, method, ctx.view_args)
                    if type(rv) is CoroutineType or isawaitable(rv):
                        rv = await rv
                    if resource is not None and resource.representations:
                        rv = resource._represent(rv)
                    direct, rv = _shape(route, app, ctx, method, rv)
                except Exception as e:
                    rv = app.handle_user_exception(e)
                if direct is None:
                    ctx.open_session()  # Flask's process_response saves it
                    rv = app.finalize_request(rv)
            except Exception as e:
                error = e
                direct = None
                ctx.open_session()
                rv = app.handle_exception(e)
            except BaseException:  # cancellation: teardown sees it, then it propagates
                error = sys.exc_info()[1]
                raise
        finally:
            if error is not None and app.should_ignore_error(error):
                error = None
            ctx.leave(plan, error)
        if direct is not None:
            ex.respond(direct[0], b"application/json", direct[1])
        else:
            await self._send_response(rv, ctx.request.environ, ex.send)

    def _handle(self, ctx: NativeRequestContext, route: Route, method: str) -> Any:
        """`handle_async` for a NativeRequestContext: the response, or (status, JSON text)
        when no Response object is needed."""
        return handle_async(self.app, None, ctx, lambda: self._dispatch(ctx, route, method))

    async def _dispatch(self, ctx: NativeRequestContext, route: Route, method: str) -> Any:
        """`full_dispatch_async` doing only what is registered, and calling a DIRECT
        route's resource without the view chain."""
        app = self.app
        try:
            if request_started.receivers:
                request_started.send(app, _async_wrapper=app.ensure_sync)
            rv = None
            if route.plan.preprocess:
                rv = await preprocess_request_async(app)
            if rv is None:
                if method == "OPTIONS" and getattr(route.rule, "provide_automatic_options",
                                                   False):
                    rv = app.make_default_options_response()
                elif route.kind is DIRECT:
                    resource, rv = _call_resource(route, method, ctx.view_args)
                    if type(rv) is CoroutineType or isawaitable(rv):
                        rv = await rv
                    if resource is not None and resource.representations:
                        rv = resource._represent(rv)
                    direct, rv = _shape(route, app, ctx, method, rv)
                    if direct is not None:
                        return direct
                else:
                    rv = await await_view(app.view_functions[route.endpoint], **ctx.view_args)
        except Exception as e:
            rv = app.handle_user_exception(e)
        ctx.open_session()  # Flask's process_response saves it
        return app.finalize_request(rv)

    def _watchdog_for_app(self) -> Optional[LoopWatchdog]:
        if self._watchdog is _UNSET:
            threshold = blocked_loop_threshold(self.app)
            self._watchdog = LoopWatchdog(threshold) if threshold else None
        return self._watchdog

    async def _run_on_loop(self, handler: Any, endpoint: str, env_source: Any,
                           receive: Receive, send: Send) -> None:
        """Run the handler coroutine on this loop (cancelled if the client leaves) and
        send what it gives: (status, JSON body) or a response object."""
        watchdog = self._watchdog
        if watchdog is _UNSET:
            watchdog = self._watchdog_for_app()
        if watchdog is None:
            # first step here: a handler that finishes in it needs no disconnect watcher
            try:
                yielded = handler.send(None)
            except StopIteration as stop:
                result = stop.value
            else:
                # it suspended: watch for a disconnect, and let this coroutine delegate to
                # the handler from now on (no Python-level trampoline per step)
                watch = _DisconnectWatch(receive)
                watch.arm()
                try:
                    result = await follow(handler, yielded)
                except asyncio.CancelledError:
                    if not watch.gone:
                        raise
                    result = _cancelled_by_disconnect()
                finally:
                    watch.disarm()
        else:
            result = await self._resume(handler, endpoint, receive, _NOT_STARTED)
        if result is _GONE:
            return  # the client left and the handler was cancelled: nothing to send
        if type(result) is tuple:
            status, text = result
            body = text.encode("utf-8")
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", b"%d" % len(body))]})
            await send({"type": "http.response.body", "body": body})
            return
        environ = env_source if isinstance(env_source, dict) else env_source.request.environ
        await self._send_response(result, environ, send)

    async def _resume(self, handler: Any, endpoint: str, receive: Receive,
                      suspended_at: Any) -> Any:
        """Drive the handler to its end with the disconnect watcher armed once it
        suspends: its result, or _GONE when the client left and the handler was cancelled."""
        watch = _DisconnectWatch(receive)
        try:
            return await drive(handler, watch.arm, self._watchdog, endpoint, suspended_at)
        except asyncio.CancelledError:
            if not watch.gone:
                raise
            return _cancelled_by_disconnect()
        finally:
            watch.disarm()

    async def _send_response(self, response: Any, environ: Dict[str, Any], send: Send) -> None:
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
                loop: asyncio.AbstractEventLoop, hand_back: bool = False) -> Optional[bytes]:
        """Send a WSGI body iterable from a worker thread, one chunk ahead so the last
        chunk goes out with more_body False (and a one-chunk body in one hop).  With
        `hand_back`, a body of at most one chunk is returned for the loop to send instead
        (no cross-thread hop at all)."""
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
            if hand_back and not started:
                return pending or b""
            messages = [] if started else [_start_message(status_headers)]
            messages.append({"type": "http.response.body", "body": pending or b""})
            deliver(messages)
            return None
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

        def work() -> Optional[bytes]:
            return self._stream(app(environ, start_response), status_headers, send, loop, True)

        body = await loop.run_in_executor(self.executor, contextvars.copy_context().run, work)
        if body is not None:
            await send(_start_message(status_headers))
            await send({"type": "http.response.body", "body": body})


def _cancelled_by_disconnect() -> Any:
    """We cancelled the handler because the client left: not an error, nothing to send."""
    task = asyncio.current_task()
    if task is not None and hasattr(task, "uncancel"):
        task.uncancel()
    return _GONE


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
            # (the server resolves it when the exchange ends: no callback to schedule then)
            waiter.remove_done_callback(self._on_message)


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


class _CallableModule(types.ModuleType):
    """Importing this submodule binds `flask_restful_async.asgi` to the module, shadowing
    the `asgi()` function the package exports under the same name; calling the module does
    what the function does, so `from flask_restful_async import asgi; asgi(app)` works
    whichever of the two the name holds."""

    def __call__(self, app: Any, **options: Any) -> AsgiApp:
        return asgi(app, **options)


sys.modules[__name__].__class__ = _CallableModule
