"""A Flask app holding our Api on flask_restful_async's own server: the server calls the
ServerApp with each request's exchange (csrc/py/native.c).  A request whose view runs on the
loop gets one coroutine (pipeline.handle_request) that answers through the exchange; every
other request (sync views, 404/405/redirects, an app behind WSGI middleware) is handed to the
server's thread pool to run the app the WSGI way, with the environ built in C."""
import functools
from typing import Any, Optional

from flask import Flask
from werkzeug.wrappers import Response as ResponseBase

from flask_restful_async.api import Api
from flask_restful_async.asgi import AsgiApp
from flask_restful_async.lazy_context import LazyRequestContext
from flask_restful_async.pipeline import ROUTE_KEY, Result, handle_request, serve_sync
from flask_restful_async.rendering import JSON, whole_response
from flask_restful_async.resources import Resource
from flask_restful_async.routing import Route, RouteKind, Router, Routing
from flask_restful_async.streaming.responses import Output
from flask_restful_async.trampolines import drive
from flask_restful_async.watchdog import watchdog_for

__all__ = ["ServerApp"]


def flask_app_of(app: Any) -> Optional[Flask]:
    """The Flask app to serve natively when `app` is a Flask app with an Api of ours, such an
    Api, or the ASGI adapter around one; else None."""
    if isinstance(app, AsgiApp):
        app = app.app
    elif isinstance(app, Api):
        app = app.flask_app
    if isinstance(app, Flask) and _has_api(app):
        return app
    return None


def _has_api(app: Flask) -> bool:
    """Does an Api of ours route any of the app's views (its error router is installed)?"""
    for handler in (app.__dict__.get("handle_exception"),
                    app.__dict__.get("handle_user_exception")):
        func = getattr(handler, "func", None)
        if isinstance(getattr(func, "__self__", None), Api):
            return True
    for view in app.view_functions.values():
        cls = getattr(view, "view_class", None)
        if getattr(view, "_fra_direct", None) is not None or (
                isinstance(cls, type) and issubclass(cls, Resource)):
            return True
    return False


class ServerApp:
    """What our server calls for each request of a Flask app with our Api (its worker makes
    it with `ServerApp.for_app`).  Called with the request's exchange; returns the coroutine
    to drive, or None once the request is in the thread pool."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.router = Router(app)
        self.watchdog = watchdog_for(app)
        self._answer = self.answer
        self._serve_sync = functools.partial(serve_sync, app)

    @classmethod
    def for_app(cls, app: Any, *, adapter_only: bool = False) -> Optional["ServerApp"]:
        """A ServerApp for `app` (see flask_app_of; with `adapter_only`, only for the ASGI
        adapter around one), or None for any other app."""
        if adapter_only and not isinstance(app, AsgiApp):
            return None
        flask_app = flask_app_of(app)
        return cls(flask_app) if flask_app is not None else None

    def __call__(self, exchange: Any) -> Any:
        app = self.app
        if "wsgi_app" in app.__dict__:
            # WSGI middleware wraps the app: only the WSGI way honours it
            exchange.run_wsgi(app.wsgi_app)
            return None
        method = exchange.method
        path = exchange.path
        root_path = exchange.root_path
        if root_path and path.startswith(root_path):
            path = path[len(root_path):]
        router = self.router
        route = router.lookup(method, path)
        if route is None:
            if router.routing is not Routing.PATH:
                return self._route_by_request(exchange, method)
            # no route: Flask answers (404, 405, a redirect) in the pool
            exchange.run_wsgi(app.wsgi_app)
            return None
        if route.kind is RouteKind.THREAD:
            exchange.run_wsgi(app.wsgi_app)
            return None
        if route.kind is RouteKind.SYNC:
            environ = exchange.environ()
            environ[ROUTE_KEY] = route
            exchange.run_wsgi(self._serve_sync, environ)
            return None
        body = exchange.take_body()
        if body is None and not route.plan.streams_body:
            return self._after_body(exchange, route, method)
        exchange.cancel_on_disconnect()
        ctx = LazyRequestContext(app, route, method, body, exchange=exchange)
        coro = handle_request(app, ctx, route, method, self._answer)
        return coro if self.watchdog is None else self._watched(coro, route)

    def _handle(self, exchange: Any, route: Route, method: str, body: bytes,
                request: Any) -> Any:
        """The request's coroutine, once its body is here (what __call__ does inline)."""
        ctx = LazyRequestContext(self.app, route, method, body, exchange=exchange,
                                 request=request)
        coro = handle_request(self.app, ctx, route, method, self._answer)
        return coro if self.watchdog is None else self._watched(coro, route)

    def _watched(self, coro: Any, route: Route) -> Any:
        """The handler stepped under the blocked-loop watchdog."""
        return drive(coro, None, self.watchdog, route.endpoint)

    async def _after_body(self, exchange: Any, route: Route, method: str) -> None:
        """A request whose body is still arriving: the handler runs once all of it is here."""
        body = await exchange.body()
        if body is None:
            return  # the client left first
        exchange.cancel_on_disconnect()
        await self._handle(exchange, route, method, body, None)

    def _route_by_request(self, exchange: Any, method: str) -> Any:
        """An app whose routing needs the whole request (Routing.REQUEST), or that changed
        Flask's pipeline (Routing.FLASK: every request goes the WSGI way)."""
        app = self.app
        if self.router.routing is Routing.FLASK:
            exchange.run_wsgi(app.wsgi_app)
            return None
        environ = exchange.environ()
        request = app.request_class(environ)
        route = self.router.match(request)
        if route is None or route.kind is RouteKind.THREAD:
            exchange.run_wsgi(app.wsgi_app, environ)
            return None
        if route.kind is RouteKind.SYNC:
            environ[ROUTE_KEY] = route
            exchange.run_wsgi(self._serve_sync, environ)
            return None
        return self._after_body_routed(exchange, route, method, request)

    async def _after_body_routed(self, exchange: Any, route: Route, method: str,
                                 request: Any) -> None:
        body = await exchange.body()
        if body is None:
            return
        environ = exchange.environ(body)
        request.environ["wsgi.input"] = environ["wsgi.input"]
        request.environ["CONTENT_LENGTH"] = environ.get("CONTENT_LENGTH", "")
        exchange.cancel_on_disconnect()
        await self._handle(exchange, route, method, body, request)

    def answer(self, result: Result, ctx: LazyRequestContext) -> Any:
        """Write the pipeline's result to the exchange: a direct answer in one call; a
        stream or a file sent on the loop (the coroutine that sends it runs as the same task
        once the pipeline's returns: `exchange.then`, so a long stream keeps none of the
        pipeline's frames); any other response object whole, or, streamed, from the thread
        pool (its iterator may block)."""
        exchange = ctx.exchange
        if type(result) is tuple:
            exchange.respond(result[0], JSON, result[1])
            return None
        response: ResponseBase = result
        if getattr(response, "serve_on_loop", False):
            serving = response.serve(Output.for_exchange(exchange))
            if self.watchdog is not None:  # the stream's steps are the handler's too
                serving = self._watched(serving, ctx.route)
            exchange.then(serving)
            return None
        environ = ctx.request.environ
        if response.is_streamed:
            exchange.run_wsgi(response, environ)
            return None
        exchange.respond_wsgi(*whole_response(response, environ))
        return None
