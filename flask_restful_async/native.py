"""Native dispatch of a Flask app holding an Api on a loop server (ours, or any ASGI server
through `flask_restful_async.asgi`): the request pays only for what it uses.

* Routes are matched once per (method, path) and the result kept (`Router`); a path whose
  rule has a custom converter is matched every time (its `to_python` may have effects).
* The Flask request context is bound lazily (`NativeRequestContext`, `NativeAppContext`):
  no environ, werkzeug Request, URL adapter, session or `g` until user code asks for them;
  hooks and signals run only when registered.  reqparse reads query arguments through a
  `LightRequest` built from the scope's query string (`parse_query_args`), so parsing them
  makes no werkzeug Request either.
* An `AsyncResource` added to an Api with no `Api.decorators` is called directly and its
  return value serialised straight into one `http.response.start` + one `http.response.body`
  (`render_direct`) when nothing needs a Response object (no after-request hooks, no session
  to save, JSON representation, no extra headers); otherwise the response is built as Flask
  would.
* The handler coroutine is stepped by `drive()`: it arms the disconnect watcher only once the
  handler really suspends, and reports steps that block the loop (`LoopWatchdog`).

`entry_for(app)` is what our server's app loader calls for a Flask app.
"""
import logging
import os
import sys
import threading
import time
import traceback
import types
from inspect import getattr_static
from json import dumps
from typing import Any, Callable, Dict, List, Optional, Tuple

from flask import Flask
from flask.ctx import AppContext, RequestContext
from flask.globals import _cv_app, _cv_request
from flask.sessions import SecureCookieSessionInterface
from flask.signals import appcontext_popped, appcontext_pushed, appcontext_tearing_down, \
    request_finished, request_tearing_down
from urllib.parse import parse_qsl

from flask import Request as FlaskRequest
from werkzeug.datastructures import CombinedMultiDict, ImmutableMultiDict
from werkzeug.exceptions import HTTPException
from werkzeug.routing.converters import DEFAULT_CONVERTERS

from flask_restful_async.representations.json import output_json

__all__ = ["entry_for", "Router", "Route", "Plan", "NativeRequestContext", "NativeAppContext",
           "LightRequest", "parse_query_args", "render_direct", "json_dumps_default", "drive", "follow",
           "LoopWatchdog", "pool_size", "blocked_loop_threshold"]

logger = logging.getLogger("flask_restful_async")

THREAD, ASYNC, DIRECT = "thread", "async", "direct"
_BUILTIN_CONVERTERS = frozenset(DEFAULT_CONVERTERS.values())
_CACHE_LIMIT = 4096
_sentinel: Any = object()


def pool_size(threads: Optional[int] = None) -> int:
    """Size of the native thread pool: `threads` (the server's --threads), else the
    FRA_THREADS environment variable, else 16."""
    if threads:
        return int(threads)
    raw = os.environ.get("FRA_THREADS", "")
    if raw:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError("FRA_THREADS: expected a positive integer, got %r" % raw) from None
        if value < 1:
            raise ValueError("FRA_THREADS: expected a positive integer, got %r" % raw)
        return value
    return 16


def blocked_loop_threshold(app: Flask) -> Optional[float]:
    """Seconds a handler step may hold the loop before it is reported: the environment
    variable FRA_BLOCKED_LOOP_MS, else app.config['FRA_BLOCKED_LOOP_MS']; None (off)
    when neither is set or the value is 0."""
    raw = os.environ.get("FRA_BLOCKED_LOOP_MS", "") or app.config.get("FRA_BLOCKED_LOOP_MS")
    if not raw:
        return None
    try:
        ms = float(raw)
    except ValueError:
        raise ValueError("FRA_BLOCKED_LOOP_MS: expected milliseconds, got %r" % raw) from None
    return ms / 1000.0 if ms > 0 else None


def entry_for(app: Any, *, threads: Optional[int] = None) -> Optional[Tuple[str, Any]]:
    """("asgi", callable) when `app` is a Flask app with a flask_restful_async Api (or
    such an Api itself): the callable runs AsyncResource coroutines on the server's loop and
    sync resources and plain views in a pool of `pool_size(threads)` threads.  None for any
    other app (serve it as it is)."""
    from flask_restful_async.api import Api
    from flask_restful_async.asgi import AsgiApp

    if isinstance(app, Api):
        app = app.blueprint_setup.app if app.blueprint_setup is not None else app.app
    if not isinstance(app, Flask) or not _has_api(app):
        return None
    return "asgi", AsgiApp(app, threads=pool_size(threads))


def _has_api(app: Flask) -> bool:
    """Does an Api of ours route any of the app's views (its error router is installed)?"""
    from flask_restful_async.api import Api

    for handler in (app.__dict__.get("handle_exception"),
                    app.__dict__.get("handle_user_exception")):
        func = getattr(handler, "func", None)
        if isinstance(getattr(func, "__self__", None), Api):
            return True
    return any(getattr(view, "_fra_native", None) is not None
               or _is_our_resource_view(view) for view in app.view_functions.values())


def _is_our_resource_view(view: Any) -> bool:
    from flask_restful_async.resources import Resource

    cls = getattr(view, "view_class", None)
    return isinstance(cls, type) and issubclass(cls, Resource)


# -- routing ------------------------------------------------------------------------------

class Route:
    """What a matched (method, path) runs: `kind` is DIRECT (an AsyncResource called
    without the view chain), ASYNC (a coroutine view chain on the loop) or THREAD."""

    __slots__ = ("rule", "endpoint", "view_args", "kind", "view", "names", "resource",
                 "class_args", "class_kwargs", "api", "plan")

    def __init__(self, rule: Any, view_args: Dict[str, Any], kind: str, view: Any,
                 native: Optional[Tuple[Any, ...]], app: Flask, method: str) -> None:
        self.rule = rule
        self.endpoint = rule.endpoint
        self.view_args = view_args
        self.kind = kind
        self.view = view
        # hook keys in Flask's order: the app (None), then the blueprints innermost last
        blueprint, _, _ = rule.endpoint.rpartition(".")
        names: List[Optional[str]] = [None]
        while blueprint:
            names.insert(1, blueprint)
            blueprint = blueprint.rpartition(".")[0]
        self.names = tuple(names)
        if native is not None:
            _, self.api, self.resource, self.class_args, self.class_kwargs = native
        else:
            self.api = self.resource = self.class_args = self.class_kwargs = None
        self.plan = Plan(app, self, method)


class Plan:
    """What Flask would run around a route's view, read when the route is first matched:
    the app is serving by then, and Flask refuses new hooks and blueprints once it has
    handled a request, so these registries no longer change.  Signals can still be connected
    at any time: they are checked per request."""

    __slots__ = ("preprocess", "direct", "teardown", "after", "plain_app_ctx", "attr")

    def __init__(self, app: Flask, route: Route, method: str) -> None:
        names = route.names
        before = app.before_request_funcs
        url_value = app.url_value_preprocessors
        #: before_request functions or URL value preprocessors for this route
        self.preprocess = preprocess = (
            type(app).preprocess_request is not Flask.preprocess_request
            or any(before.get(n) or url_value.get(n) for n in names))
        #: the resource can be called with nothing run before it
        self.direct = (route.kind is DIRECT and not preprocess
                       and not (method == "OPTIONS"
                                and getattr(route.rule, "provide_automatic_options", False)))
        #: teardown_request functions for this route
        self.teardown = any(app.teardown_request_funcs.get(n) for n in names)
        #: after_request functions for this route
        self.after = any(app.after_request_funcs.get(n) for n in names)
        #: the app context is Flask's, with no teardown_appcontext functions
        self.plain_app_ctx = (type(app).app_context is Flask.app_context
                              and not app.teardown_appcontext_funcs)
        #: the resource method's name (HEAD: "head", Resource._method falls back to "get")
        self.attr = method.lower()


class Router:
    """Matches (method, path) to a Route once and remembers it, when the app's routing
    depends only on the path (no SERVER_NAME, host or subdomain matching, TRUSTED_HOSTS);
    otherwise `lookup` returns None and the request takes Flask's own route."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._cache: Dict[Tuple[str, str], Route] = {}
        self._adapter: Any = None
        self._usable: Optional[bool] = None

    def usable(self) -> bool:
        if self._usable is None:
            app, config = self.app, self.app.config
            self._usable = (config.get("SERVER_NAME") is None
                            and config.get("TRUSTED_HOSTS") is None
                            and not app.url_map.host_matching
                            and not app.subdomain_matching
                            and type(app).request_context is Flask.request_context
                            and type(app).full_dispatch_request is Flask.full_dispatch_request
                            and type(app).dispatch_request is Flask.dispatch_request)
        return self._usable

    def lookup(self, method: str, path_info: str) -> Optional[Route]:
        """The Route for this request, or None when Flask must route it (no match, a
        redirect, 405, or routing that needs the whole request)."""
        route = self._cache.get((method, path_info))
        if route is not None:
            return route
        if not self.usable():
            return None
        if self._adapter is None:
            self._adapter = self.app.url_map.bind(
                "localhost", subdomain=self.app.url_map.default_subdomain or "")
        try:
            rule, view_args = self._adapter.match(path_info, method, return_rule=True)
        except HTTPException:
            return None  # 404, 405, redirects: Flask's context renders them
        self.app._got_first_request = True  # (Flask refuses new hooks from now on)
        route = self._route(rule, view_args, method)
        if all(type(conv) in _BUILTIN_CONVERTERS for conv in rule._converters.values()):
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[(method, path_info)] = route
        return route

    def _route(self, rule: Any, view_args: Dict[str, Any], method: str) -> Route:
        from flask_restful_async.dispatch import is_async_view
        from flask_restful_async.resources import AsyncResource

        view = self.app.view_functions.get(rule.endpoint)
        native = getattr(view, "_fra_native", None)
        if native is not None and native[0] is view:
            cls = native[2]
            if (getattr(cls, "init_every_request", True)
                    and cls.dispatch_request is AsyncResource.dispatch_request):
                return Route(rule, view_args, DIRECT, view, native, self.app, method)
        kind = ASYNC if is_async_view(view) else THREAD
        return Route(rule, view_args, kind, view, None, self.app, method)


# -- the lazy request context ---------------------------------------------------------------

class NativeAppContext(AppContext):
    """Flask's app context with `g` and `url_adapter` made on first use."""

    def __init__(self, app: Flask) -> None:
        # (AppContext.__init__ is not called: it makes what this class defers)
        self.app = app

    def __getattr__(self, name: str) -> Any:
        if name == "_cv_tokens":
            tokens = self._cv_tokens = []
            return tokens
        if name == "g":
            g = self.g = self.app.app_ctx_globals_class()
            return g
        if name == "url_adapter":
            adapter = self.url_adapter = self.app.create_url_adapter(None)
            return adapter
        raise AttributeError(name)


class NativeRequestContext(RequestContext):
    """A Flask request context whose request object, URL adapter and session are made on
    first use.  The route is already matched (the Router did it)."""

    flashes = None
    _session = None
    _entered: Any = None  # (request token, app context made here or None, app token)

    def __init__(self, app: Flask, scope: Optional[Dict[str, Any]], body: bytes, route: Route,
                 view_args: Dict[str, Any], exchange: Any = None) -> None:
        """`scope`: the ASGI scope; or None with `exchange`, our server's exchange, which
        makes it when it is first read."""
        # (RequestContext.__init__ is not called: it builds what this class defers)
        self.app = app
        if scope is not None:
            self.scope = scope
        else:
            self._exchange = exchange
        self.body = body
        self.route = route
        self.view_args = view_args

    def __getattr__(self, name: str) -> Any:
        # only called for attributes not yet made: each is made once, then is a plain
        # instance attribute
        if name == "scope":
            scope = self.scope = self._exchange.scope()
            return scope
        if name == "_after_request_functions" or name == "_cv_tokens":
            value: List[Any] = []
            setattr(self, name, value)
            return value
        if name == "request":
            from flask_restful_async.asgi import build_environ

            req = self.app.request_class(build_environ(self.scope, self.body))
            req.json_module = self.app.json
            req.url_rule = self.route.rule
            req.view_args = self.view_args
            light = self.__dict__.get("_light")
            if light is not None:
                # what the light view already made is the request's own from now on
                light.carry_over(req)
            self.request = req
            return req
        if name == "url_adapter":
            try:
                adapter = self.app.create_url_adapter(self.request)
            except HTTPException:
                adapter = None
            self.url_adapter = adapter
            return adapter
        raise AttributeError(name)

    def light_request(self) -> Any:
        """The request as reqparse reads it: the real one once it exists, else a
        LightRequest answering `args` (and `values`, `is_json` for a bodiless GET) from
        the scope, making the real one only if asked for anything else."""
        req = self.__dict__.get("request")
        if req is not None:
            return req
        light = self.__dict__.get("_light")
        if light is None:
            if not _stock_request_class(self.app.request_class):
                return self.request
            light = self._light = LightRequest(self)
        return light

    @property
    def session(self) -> Any:
        if self._session is None:
            self.open_session()
        self._session.accessed = True
        return self._session

    def open_session(self) -> None:
        """Open the session now if it was not (Flask opens it at push)."""
        if self._session is None:
            interface = self.app.session_interface
            session = interface.open_session(self.app, self.request)
            if session is None:
                session = interface.make_null_session(self.app)
            self._session = session

    def copy(self) -> RequestContext:
        """A plain Flask request context sharing this one's request and session."""
        return RequestContext(self.app, environ=self.request.environ, request=self.request,
                              session=self._session)

    def push(self) -> None:
        app_ctx = _cv_app.get(None)
        if app_ctx is None or app_ctx.app is not self.app:
            app = self.app
            if type(app).app_context is Flask.app_context:
                app_ctx = NativeAppContext(app)
            else:
                app_ctx = app.app_context()
            if appcontext_pushed.receivers:
                app_ctx.push()
            else:
                app_ctx._cv_tokens.append(_cv_app.set(app_ctx))
        else:
            app_ctx = None
        self._cv_tokens.append((_cv_request.set(self), app_ctx))

    def pop(self, exc: Optional[BaseException] = _sentinel) -> None:
        clear_request = len(self._cv_tokens) == 1
        request = self.__dict__.get("request")
        app = self.app
        try:
            if clear_request:
                if exc is _sentinel:
                    exc = sys.exc_info()[1]
                if self.route.plan.teardown or request_tearing_down.receivers:
                    app.do_teardown_request(exc)
                    request = self.__dict__.get("request")
                if request is not None:
                    request.close()
        finally:
            ctx = _cv_request.get()
            token, app_ctx = self._cv_tokens.pop()
            _cv_request.reset(token)
            if clear_request and request is not None:
                request.environ["werkzeug.request"] = None
            if app_ctx is not None:
                if (appcontext_popped.receivers or appcontext_tearing_down.receivers
                        or app.teardown_appcontext_funcs or len(app_ctx._cv_tokens) != 1):
                    app_ctx.pop(exc)
                else:
                    _cv_app.reset(app_ctx._cv_tokens.pop())
            if ctx is not self:
                raise AssertionError("Popped wrong request context. (%r instead of %r)"
                                     % (ctx, self))

    def enter(self, plan: Plan) -> None:
        """`push()` for a request on our server's native path (`plan` from its route): the
        same context variables set, with no bookkeeping for nested pushes."""
        app_ctx = _cv_app.get(None)
        if app_ctx is None or app_ctx.app is not self.app:
            app = self.app
            if plan.plain_app_ctx and not appcontext_pushed.receivers:
                app_ctx = NativeAppContext(app)
                self._entered = (_cv_request.set(self), app_ctx, _cv_app.set(app_ctx))
                return
            app_ctx = NativeAppContext(app) if type(app).app_context is Flask.app_context \
                else app.app_context()
            app_ctx.push()
            self._entered = (_cv_request.set(self), app_ctx, None)
            return
        self._entered = (_cv_request.set(self), None, None)

    def leave(self, plan: Plan, exc: Optional[BaseException]) -> None:
        """`pop(exc)` for a context made current by `enter`."""
        app = self.app
        token, app_ctx, app_token = self._entered
        request = None
        try:
            if plan.teardown or request_tearing_down.receivers:
                app.do_teardown_request(exc)
            request = self.__dict__.get("request")
            if request is not None:
                request.close()
        finally:
            _cv_request.reset(token)
            if request is not None:
                request.environ["werkzeug.request"] = None
            if app_ctx is not None:
                if app_token is not None and not (appcontext_popped.receivers
                                                  or appcontext_tearing_down.receivers):
                    _cv_app.reset(app_token)
                else:
                    if app_token is not None:
                        app_ctx._cv_tokens.append(app_token)
                    app_ctx.pop(exc)

    def needs_response_object(self) -> bool:
        """Would Flask do anything with the response object after the view (after-request
        hooks, a session to save, request_finished receivers)?"""
        app = self.app
        if (self.route.plan.after or request_finished.receivers
                or self.__dict__.get("_after_request_functions")):
            return True
        if self._session is not None:
            return not app.session_interface.is_null_session(self._session)
        config = app.config
        if config["SECRET_KEY"] is None and not config.get("SECRET_KEY_FALLBACKS"):
            return False  # the default interface opens no session without a key
        if type(app.session_interface) is not SecureCookieSessionInterface:
            return True
        # The default interface saves nothing for a request with no session cookie.
        cookie_name = app.config["SESSION_COOKIE_NAME"].encode("latin-1")
        for name, value in self.scope.get("headers", ()):
            if name == b"cookie" and cookie_name in value:
                return True
        return False


# -- query arguments without a werkzeug Request ---------------------------------------------

_STOCK_REQUEST_CLASSES: Dict[type, bool] = {}
_REQUEST_ATTRS = ("args", "values", "is_json", "parameter_storage_class")


def _stock_request_class(cls: type) -> bool:
    """Does `cls` read args, values and is_json exactly as flask.Request does?"""
    stock = _STOCK_REQUEST_CLASSES.get(cls)
    if stock is None:
        stock = all(getattr_static(cls, name, None) is getattr_static(FlaskRequest, name)
                    for name in _REQUEST_ATTRS)
        if len(_STOCK_REQUEST_CLASSES) < 64:
            _STOCK_REQUEST_CLASSES[cls] = stock
    return stock


def _new_args(lists: Dict[str, List[str]]) -> ImmutableMultiDict:
    """ImmutableMultiDict(lists) (a dict of non-empty lists), made without the generic
    constructor's per-item type checks when werkzeug's MultiDict is the dict of lists it
    has always been (checked once, at import)."""
    md = ImmutableMultiDict.__new__(ImmutableMultiDict)
    dict.update(md, lists)
    return md


def _new_args_checked() -> bool:
    try:
        sample = {"a": ["1", "2"], "b": [""]}
        made = _new_args({k: list(v) for k, v in sample.items()})
        stock = ImmutableMultiDict([("a", "1"), ("a", "2"), ("b", "")])
        return (type(made) is type(stock) and made == stock
                and list(made.lists()) == list(stock.lists())
                and list(made.items(multi=True)) == list(stock.items(multi=True))
                and made.getlist("a") == ["1", "2"] and made["a"] == "1"
                and made.to_dict(flat=False) == sample and made.__dict__ == stock.__dict__)
    except Exception:  # pragma: no cover - a werkzeug whose MultiDict is built otherwise
        return False


_FAST_ARGS = _new_args_checked()


def parse_query_args(query_string: bytes) -> ImmutableMultiDict:
    """`flask.Request.args` for a raw query string: an equal ImmutableMultiDict.  Plain
    ASCII without escapes is split here; anything else goes through the exact call
    werkzeug makes (so errors and decoding are the same)."""
    if query_string.isascii() and b"%" not in query_string and b"+" not in query_string:
        if not _FAST_ARGS:
            pairs = []
            for part in query_string.decode("ascii").split("&"):
                if part:
                    name, _, value = part.partition("=")
                    pairs.append((name, value))
            return ImmutableMultiDict(pairs)
        lists: Dict[str, List[str]] = {}
        for part in query_string.decode("ascii").split("&"):
            if part:
                name, _, value = part.partition("=")
                values = lists.get(name)
                if values is None:
                    lists[name] = [value]
                else:
                    values.append(value)
        return _new_args(lists)
    import werkzeug.urls  # noqa: F401  (registers the "werkzeug.url_quote" error handler)

    return ImmutableMultiDict(parse_qsl(query_string.decode(), keep_blank_values=True,
                                        errors="werkzeug.url_quote"))


class LightRequest:
    """Stands in for `flask.request` while reqparse reads it on the native path (see
    NativeRequestContext.light_request): `args` from the scope's query string, `values`
    for a GET, `is_json` without a Content-Type header, and `unparsed_arguments`;
    every other attribute read is the real request's (made on first use, with what was
    read here carried over)."""

    _args: Any = None
    _values: Any = None
    _unparsed: Any = _sentinel

    def __init__(self, ctx: "NativeRequestContext") -> None:
        self._ctx = ctx

    @property
    def real(self) -> Any:
        """The werkzeug Request itself."""
        return self._ctx.request

    def _made(self) -> Any:
        return self._ctx.__dict__.get("request")

    def _no_content_type(self) -> bool:
        for name, _ in self._ctx.scope.get("headers", ()):
            if name.lower() == b"content-type":
                return False
        return True

    @property
    def args(self) -> Any:
        real = self._made()
        if real is not None:
            return real.args
        args = self._args
        if args is None:
            args = self._args = parse_query_args(self._ctx.scope.get("query_string", b""))
        return args

    @property
    def values(self) -> Any:
        real = self._made()
        if real is not None:
            return real.values
        values = self._values
        if values is None:
            if self._ctx.scope["method"] != "GET":
                return self.real.values  # the form counts too
            values = self._values = CombinedMultiDict([self.args])  # (werkzeug's, for GET)
        return values

    @property
    def is_json(self) -> bool:
        real = self._made()
        if real is None and self._no_content_type():
            return False  # (no Content-Type: no JSON mimetype)
        return self.real.is_json

    @property
    def unparsed_arguments(self) -> Any:
        real = self._made()
        if real is not None:
            return real.unparsed_arguments
        if self._unparsed is _sentinel:
            raise AttributeError("unparsed_arguments")
        return self._unparsed

    @unparsed_arguments.setter
    def unparsed_arguments(self, value: Any) -> None:
        real = self._made()
        if real is not None:
            real.unparsed_arguments = value
        else:
            self._unparsed = value

    def carry_over(self, req: Any) -> None:
        """Give the real request, just made, what was read here."""
        if self._args is not None:
            req.__dict__["args"] = self._args
        if self._values is not None:
            req.__dict__["values"] = self._values
        if self._unparsed is not _sentinel:
            req.unparsed_arguments = self._unparsed

    def __getattr__(self, name: str) -> Any:
        if name == "unparsed_arguments" and self._made() is None:
            raise AttributeError(name)  # (not set yet: the real request has none either)
        return getattr(self.real, name)


# -- direct responses ---------------------------------------------------------------------

# json.dumps(data) with its default settings, without making an encoder per call: the same
# C encoder, minus the circular-reference bookkeeping (anything it cannot encode, circular
# data included, is encoded again by json.dumps itself, which raises what it raises).
try:
    from json.encoder import JSONEncoder, c_make_encoder, encode_basestring_ascii

    _encode_default = c_make_encoder(None, JSONEncoder().default, encode_basestring_ascii,
                                     None, ": ", ", ", False, False, True) \
        if c_make_encoder is not None and encode_basestring_ascii is not None else None
except ImportError:  # pragma: no cover - CPython always has the C encoder
    _encode_default = None


def json_dumps_default(data: Any) -> str:
    """Exactly `json.dumps(data)`."""
    if _encode_default is not None:
        try:
            return "".join(_encode_default(data, 0))
        except Exception:
            pass
    return dumps(data)


def render_direct(api: Any, app: Flask, method: str, data: Any, code: Any,
                  headers: Any) -> Optional[Tuple[int, str]]:
    """(status, JSON text) when Api.make_response would give a plain JSON response that
    needs no Response object (the body is the text in UTF-8): else None (the caller builds
    the Response)."""
    if headers or method == "HEAD" or type(code) is not int or code < 200 \
            or code in (204, 304):
        return None
    representations = api.representations
    if len(representations) != 1 or api.default_mediatype != "application/json" \
            or representations.get("application/json") is not output_json:
        return None  # the Accept header chooses (or a custom JSON writer): the full path
    config = app.config
    settings = config.get("RESTFUL_JSON")
    if config["DEBUG"]:  # (app.debug)
        settings = dict(settings or ())
        settings.setdefault("indent", 4)
        settings.setdefault("sort_keys", False)
    elif not settings:
        if _encode_default is not None:
            try:
                return code, "".join(_encode_default(data, 0)) + "\n"
            except Exception:
                pass
        return code, dumps(data) + "\n"
    return code, dumps(data, **settings) + "\n"


# -- stepping the handler -----------------------------------------------------------------

class LoopWatchdog:
    """Reports a handler step that holds the event loop longer than `threshold` seconds,
    with its endpoint and the stack it is blocked in (sampled from a watchdog thread)."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._lock = threading.Lock()
        self._step: Optional[Tuple[int, float, str, int]] = None  # (seq, start, endpoint, tid)
        self._seq = 0
        self._thread: Optional[threading.Thread] = None

    def enter(self, endpoint: str) -> None:
        self._seq += 1
        self._step = (self._seq, time.monotonic(), endpoint, threading.get_ident())
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="fra-loop-watchdog",
                                            daemon=True)
            self._thread.start()

    def leave(self) -> None:
        self._step = None

    def _watch(self) -> None:
        reported = 0
        interval = max(self.threshold / 4.0, 0.001)
        while True:
            time.sleep(interval)
            step = self._step
            if step is None or step[0] == reported:
                continue
            seq, start, endpoint, tid = step
            held = time.monotonic() - start
            if held < self.threshold:
                continue
            frame = sys._current_frames().get(tid)
            if self._step is not step or frame is None:
                continue  # the step ended meanwhile
            stack = "".join(traceback.format_stack(frame))
            del frame
            reported = seq
            logger.warning("handler for endpoint %r has blocked the event loop for %.0f ms "
                           "(threshold %.0f ms); it is at:\n%s", endpoint, held * 1000.0,
                           self.threshold * 1000.0, stack.rstrip())


_NOT_STARTED: Any = object()


@types.coroutine
def drive(coro: Any, on_suspend: Optional[Callable[[], None]],
          watchdog: Optional[LoopWatchdog], endpoint: str,
          suspended_at: Any = _NOT_STARTED) -> Any:
    """Await `coro`, calling `on_suspend()` the first time it really suspends (a handler
    that finishes in one step never needs it) and timing each step when a watchdog is set.
    `suspended_at`: what `coro` yielded when the caller already made its first step."""
    send, throw = coro.send, coro.throw
    value: Any = None
    error: Optional[BaseException] = None
    yielded = suspended_at
    while True:
        if yielded is _NOT_STARTED:
            if watchdog is not None:
                watchdog.enter(endpoint)
            try:
                yielded = send(value) if error is None else throw(error)
            except StopIteration as stop:
                return stop.value
            finally:
                if watchdog is not None:
                    watchdog.leave()
        if on_suspend is not None:
            on_suspend()
            on_suspend = None
        value = error = None
        try:
            value = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # cancellation thrown in by the task driving us
            error = exc
        yielded = _NOT_STARTED


@types.coroutine
def follow(coro: Any, yielded: Any) -> Any:
    """Await `coro`, which the caller already stepped once to `yielded`: the rest is
    delegated with `yield from` (each step goes straight to `coro`, no Python code in
    between).  Only an exception thrown in while `yielded` is pending is relayed here."""
    while True:
        try:
            yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # cancellation thrown in by the task driving us
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
            continue
        return (yield from coro)
