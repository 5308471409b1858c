"""How async views are dispatched: the context an AsyncResource reads to decide between
returning its coroutine and running it, and Flask's request pipeline rewritten as a
coroutine for servers that run on an event loop.

Entry points for servers (the ASGI adapter now, the native C path later):
  * `is_async_view(view)`: should this endpoint run on the loop (else: thread pool)?
  * `handle_async(app, environ)`: the whole request, like `Flask.wsgi_app`, giving the
    response object.
  * `full_dispatch_async(app)`: hooks + view + error handling for an already pushed
    request context, so a server can bind the context its own (cheaper) way.
"""
import inspect
import sys
from contextvars import ContextVar
from functools import wraps
from typing import Any, Callable, Optional

from flask import Flask, Response, request
from flask.globals import request_ctx
from flask.signals import request_started


__all__ = ["awaiting", "current_api", "await_view", "call_awaiting", "bind_api",
           "is_async_view", "handle_async", "full_dispatch_async", "dispatch_request_async",
           "preprocess_request_async"]

# True while the caller of a view chain will await its result (an async request pipeline,
# an async decorator run by Flask): AsyncResource.dispatch_request then hands back its
# coroutine instead of running it to completion on this thread's loop.
_AWAITING: ContextVar[bool] = ContextVar("fra_awaiting", default=False)
# The Api whose resource view is being called (its default timeout applies).
_CURRENT_API: ContextVar[Optional[Any]] = ContextVar("fra_current_api", default=None)


def awaiting() -> bool:
    """Will the caller of the current view chain await an awaitable result?"""
    return _AWAITING.get()


def current_api() -> Optional[Any]:
    """The Api whose resource view is being called in this context, else None."""
    return _CURRENT_API.get()


async def await_view(view: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a view chain and await its result when awaitable, with async-aware resources
    inside returning their coroutines rather than blocking."""
    token = _AWAITING.set(True)
    try:
        rv = view(*args, **kwargs)
        if inspect.isawaitable(rv):
            rv = await rv
        return rv
    finally:
        _AWAITING.reset(token)


def call_awaiting(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call `func` with `awaiting()` true for the call (and tasks created in it)."""
    token = _AWAITING.set(True)
    try:
        return func(*args, **kwargs)
    finally:
        _AWAITING.reset(token)


def bind_api(view: Callable[..., Any], api: Any) -> Callable[..., Any]:
    """Wrap a resource view so the resource can see which Api called it."""
    @wraps(view)
    def bound(*args: Any, **kwargs: Any) -> Any:
        token = _CURRENT_API.set(api)
        try:
            return view(*args, **kwargs)
        finally:
            _CURRENT_API.reset(token)
    return bound


def is_async_view(view: Optional[Callable[..., Any]]) -> bool:
    """True when the view should run as a coroutine on the server loop: an `async def`
    view, or the view of an AsyncResource (seen through decorators that use
    functools.wraps; others make the view run in the thread pool, which also works)."""
    if view is None:
        return False
    if inspect.iscoroutinefunction(view):
        return True
    from flask_restful_async.resources import AsyncResource

    view_class = getattr(view, "view_class", None)
    return isinstance(view_class, type) and issubclass(view_class, AsyncResource)


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


async def dispatch_request_async(app: Flask) -> Any:
    """`Flask.dispatch_request`, awaiting the view's result when it is awaitable."""
    req = request_ctx.request
    if req.routing_exception is not None:
        app.raise_routing_exception(req)
    rule = req.url_rule
    if getattr(rule, "provide_automatic_options", False) and req.method == "OPTIONS":
        return app.make_default_options_response()
    return await await_view(app.view_functions[rule.endpoint], **req.view_args)


async def full_dispatch_async(app: Flask) -> Response:
    """`Flask.full_dispatch_request` as a coroutine; the request context must be pushed."""
    app._got_first_request = True
    try:
        request_started.send(app, _async_wrapper=app.ensure_sync)
        rv = await preprocess_request_async(app)
        if rv is None:
            rv = await dispatch_request_async(app)
    except Exception as e:
        rv = app.handle_user_exception(e)
    return app.finalize_request(rv)


async def handle_async(app: Flask, environ: Optional[dict], ctx: Optional[Any] = None,
                       dispatch: Optional[Callable[[], Any]] = None) -> Response:
    """`Flask.wsgi_app` as a coroutine, up to the response object: push a request context
    for `environ` (or the given, not yet pushed `ctx`), run the pipeline (`full_dispatch_async`,
    or the coroutine `dispatch()` makes), pop the context (teardown runs, also on
    cancellation) and return the response for the server to send.  Exceptions Flask would
    let escape (PROPAGATE_EXCEPTIONS) escape here too."""
    if ctx is None:
        ctx = app.request_context(environ)
    error: Optional[BaseException] = None
    try:
        try:
            ctx.push()
            return await (full_dispatch_async(app) if dispatch is None else dispatch())
        except Exception as e:
            error = e
            # a context that opens its session on first use (native.NativeRequestContext)
            # opens it now: handle_exception's response saves it
            open_session = getattr(ctx, "open_session", None)
            if open_session is not None:
                open_session()
            return app.handle_exception(e)
        except BaseException:  # cancellation: teardown sees it, then it propagates
            error = sys.exc_info()[1]
            raise
    finally:
        if error is not None and app.should_ignore_error(error):
            error = None
        ctx.pop(error)
