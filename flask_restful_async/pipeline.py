"""Flask's request pipeline as one coroutine, for a request whose view runs on the event loop:
what `Flask.wsgi_app` does (request_started, before-request hooks, the view, error handling,
after-request hooks and the session, teardown), doing only what is registered, with an
AsyncResource of an Api without decorators called directly and its result written as JSON
without a Response object when nothing needs one.  Both servers run it: ours
(server_app.ServerApp) and any other ASGI server (asgi.AsgiApp)."""
import inspect
import sys
from typing import Any, Callable, Dict, Optional, Tuple, Union

from flask import Flask, request
from flask.signals import request_started
from werkzeug.http import HTTP_STATUS_CODES

from flask_restful_async.awaiting import await_view
from flask_restful_async.lazy_context import LazyRequestContext
from flask_restful_async.loops import run_coroutine_sync
from flask_restful_async.rendering import shape_result
from flask_restful_async.routing import Route, RouteKind
from flask_restful_async.streaming.responses import StreamResponse
from flask_restful_async.trampolines import follow

__all__ = ["handle_request", "preprocess_request_async", "serve_sync", "status_line", "Result",
           "ROUTE_KEY"]

#: What the pipeline gives: (status, JSON text) for a direct answer, else the response object.
Result = Union[Tuple[int, str], Any]


async def preprocess_request_async(app: Flask) -> Any:
    """`Flask.preprocess_request`, awaiting `async def` before_request hooks on this loop."""
    if type(app).preprocess_request is not Flask.preprocess_request:
        return app.preprocess_request()  # a subclass changed the rules: keep them
    names = (None, *reversed(request.blueprints))
    for name in names:
        for url_func in app.url_value_preprocessors.get(name, ()):
            url_func(request.endpoint, request.view_args)
    for name in names:
        for before_func in app.before_request_funcs.get(name, ()):
            rv = before_func()
            if inspect.isawaitable(rv):
                rv = await rv
            if rv is not None:
                return rv
    return None


async def handle_request(app: Flask, ctx: LazyRequestContext, route: Route, method: str,
                         answer: Optional[Callable[[Result, LazyRequestContext], Any]] = None
                         ) -> Optional[Result]:
    """Serve the request of `ctx` (its route matched, its body read) as Flask's wsgi_app
    would, up to the response: (status, JSON text) when no Response object is needed, else
    the response object.  With `answer`, that result is handed to `answer(result, ctx)` (our
    server writes it then, in this same coroutine) and None is returned.  Exceptions Flask
    would let escape (PROPAGATE_EXCEPTIONS) escape here too; a cancellation propagates after
    the teardown has seen it."""
    plan = route.plan
    error: Optional[BaseException] = None
    direct = None
    ctx.enter(plan)
    try:
        try:
            try:
                if request_started.receivers:
                    request_started.send(app, _async_wrapper=app.ensure_sync)
                rv = await preprocess_request_async(app) if plan.preprocess else None
                if rv is None:
                    if plan.auto_options:
                        rv = app.make_default_options_response()
                    elif route.resource is not None:  # DIRECT or SYNC: the resource itself
                        resource = route.resource(*route.class_args, **route.class_kwargs)
                        if route.kind is RouteKind.DIRECT:
                            timeout = resource.timeout
                            if timeout is None:
                                timeout = route.api.timeout
                            rv = await resource._dispatch((), ctx.view_args, timeout, method)
                        else:
                            rv = resource._call((), ctx.view_args, method)
                        direct, rv = shape_result(route.api, app, ctx, method, rv)
                        if type(rv) is StreamResponse:  # its first chunk, here: an error
                            if rv.is_async:             # before it is the resource's error
                                await rv.prime()
                            elif route.kind is not RouteKind.DIRECT:  # (a pool thread)
                                rv.prime_sync()
                    else:
                        rv = await await_view(route.view, **ctx.view_args)
            except Exception as e:
                rv = app.handle_user_exception(e)
            if direct is None:
                if not (isinstance(rv, app.response_class) and not ctx.needs_response_object()):
                    ctx.open_session()  # Flask's process_response saves it
                    rv = app.finalize_request(rv)
                # else: a response object (a stream, a file) with no hook, signal or session
                # to see it: finalize_request would change nothing, only make the request
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
    result = direct if direct is not None else rv
    if answer is None:
        return result
    sending = answer(result, ctx)
    if sending is not None:  # a stream or a file, sent on the loop
        # The request is over (its context left): a long stream must not keep its request
        # object, environ and session alive (an idle SSE stream cost 3 KiB more with them).
        ctx = result = rv = direct = resource = None
        await sending
    return None


#: The environ key under which a server hands the Route to `serve_sync`.
ROUTE_KEY = "flask_restful_async.route"


def serve_sync(app: Flask, environ: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
    """A WSGI callable for a SYNC route (a sync Resource of an Api without decorators), run
    in a pool thread: the pipeline above with the resource called directly, where Flask's
    wsgi_app would have made the whole request first.  The route is in environ[ROUTE_KEY]."""
    route: Route = environ.pop(ROUTE_KEY)
    method = environ["REQUEST_METHOD"]
    ctx = LazyRequestContext(app, route, method, b"", environ=environ)
    coro = handle_request(app, ctx, route, method)
    try:
        yielded = coro.send(None)
    except StopIteration as stop:
        result = stop.value
    else:
        # an async hook really waited: let this thread's own loop finish the request
        result = run_coroutine_sync(follow(coro, yielded))
    if type(result) is tuple:
        status, text = result
        body = text.encode("utf-8")
        start_response(status_line(status), [("Content-Type", "application/json"),
                                             ("Content-Length", str(len(body)))])
        return [body]
    return result(environ, start_response)


_STATUS_LINES: Dict[int, str] = {}


def status_line(code: int) -> str:
    """'200 OK' for 200 (the WSGI status of a code)."""
    line = _STATUS_LINES.get(code)
    if line is None:
        reason = HTTP_STATUS_CODES.get(code, "")
        line = ("%d %s" % (code, reason)).rstrip()
        if len(_STATUS_LINES) < 256:
            _STATUS_LINES[code] = line
    return line
