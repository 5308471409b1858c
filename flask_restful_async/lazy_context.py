"""Flask's request and app contexts for a request whose view runs on the loop, with nothing
made before it is used: no environ, werkzeug Request, URL adapter, session or `g` until user
code asks for them.  The route is already matched (routing.Router)."""
import sys
from contextvars import Token
from typing import Any, Callable, Dict, List, Optional

from flask import Flask
from flask.ctx import AppContext, RequestContext
from flask.globals import _cv_app, _cv_request
from flask.sessions import SecureCookieSessionInterface
from flask.signals import (appcontext_popped, appcontext_pushed, appcontext_tearing_down,
                           request_finished, request_tearing_down)
from werkzeug.exceptions import HTTPException

from flask_restful_async.asgi_environ import environ_from_scope
from flask_restful_async.light_request import LightRequest, stock_request_class
from flask_restful_async.routing import Plan, Route

__all__ = ["LazyAppContext", "LazyRequestContext"]

_sentinel: Any = object()


class _made_on_first_use:
    """A non-data descriptor: the value is made by `make(instance)` on first read and kept as
    a plain instance attribute (later reads never come here)."""

    def __init__(self, make: Callable[[Any], Any]) -> None:
        self.make = make
        self.name = make.__name__

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.make(obj)
        return value


class LazyAppContext(AppContext):
    """Flask's app context with `g` and `url_adapter` made on first use."""

    def __init__(self, app: Flask) -> None:
        # (AppContext.__init__ is not called: it makes what this class defers)
        self.app = app

    @_made_on_first_use
    def _cv_tokens(self) -> List[Any]:
        return []

    @_made_on_first_use
    def g(self) -> Any:
        return self.app.app_ctx_globals_class()

    @_made_on_first_use
    def url_adapter(self) -> Any:
        return self.app.create_url_adapter(None)


class LazyRequestContext(RequestContext):
    """A Flask request context whose request object, URL adapter and session are made on
    first use.  The request comes from our server's exchange (`exchange`) or an ASGI scope
    (`scope`), or is given already made (`request`, for apps routed by the whole request)."""

    flashes = None
    _session = None
    _entered: Any = None  # (request token, app ctx made here or None, app token or None)

    def __init__(self, app: Flask, route: Route, method: str, body: bytes, *,
                 exchange: Any = None, scope: Optional[Dict[str, Any]] = None,
                 environ: Optional[Dict[str, Any]] = None, request: Any = None) -> None:
        """The request (its `method` known) comes from one of: `exchange` (our server, on the
        loop: the whole `body` already read, or None when the view reads it with
        body_chunks()), `scope` (another ASGI server; `body` read, or None likewise),
        `environ` (a pool thread: its wsgi.input reads the body), `request` (already made)."""
        # (RequestContext.__init__ is not called: it builds what this class defers)
        self.app = app
        self.route = route
        self.view_args = dict(route.view_args)
        self.body = body
        self.exchange = exchange
        self._environ = environ
        if scope is not None:
            self.scope = scope
        if request is not None:
            request.view_args = self.view_args
            self.request = request
        #: the request's method (reqparse asks for it before any request object exists)
        self.method = method

    # -- what is made on first use ----------------------------------------------------------

    @_made_on_first_use
    def scope(self) -> Dict[str, Any]:
        return self.exchange.scope()

    @_made_on_first_use
    def _after_request_functions(self) -> List[Any]:
        return []

    @_made_on_first_use
    def _nested(self) -> List[Any]:
        return []

    @_made_on_first_use
    def request(self) -> Any:
        exchange = self.exchange
        environ = self._environ
        if environ is None:
            # (a body read with body_chunks() is not the request's data too: None -> b"")
            body = self.body if self.body is not None else b""
            environ = exchange.environ(body) if exchange is not None \
                else environ_from_scope(self.scope, body)
        req = self.app.request_class(environ)
        req.json_module = self.app.json
        req.url_rule = self.route.rule
        req.view_args = self.view_args
        light = self.__dict__.get("_light")
        if light is not None:
            # what the light view already made is the request's own from now on
            light.carry_over(req)
        return req

    @_made_on_first_use
    def url_adapter(self) -> Any:
        try:
            return self.app.create_url_adapter(self.request)
        except HTTPException:
            return None

    # -- what reqparse reads without a request object -------------------------------------

    def query_string(self) -> bytes:
        """The raw query string."""
        environ = self._environ
        if environ is not None:
            return environ.get("QUERY_STRING", "").encode("latin-1")
        exchange = self.exchange
        if exchange is not None and "scope" not in self.__dict__:
            return exchange.query_string
        return self.scope.get("query_string", b"")

    def header(self, name: bytes) -> Optional[bytes]:
        """The value of the request's first field called `name` (lower-case bytes), or None
        (as the environ has them: repeated fields joined)."""
        environ = self._environ
        if environ is not None:
            key = name.decode("latin-1").upper().replace("-", "_")
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                key = "HTTP_" + key
            value = environ.get(key)
            return value.encode("latin-1") if value is not None else None
        exchange = self.exchange
        if exchange is not None and "scope" not in self.__dict__:
            return exchange.header(name)
        for key, value in self.scope.get("headers", ()):
            if key.lower() == name:
                return value
        return None

    def light_request(self) -> Any:
        """The request as reqparse reads it: the real one once it exists, else a
        LightRequest answering `args` (and `values`, `is_json` for a bodiless GET) from
        the raw query string, making the real one only if asked for anything else."""
        req = self.__dict__.get("request")
        if req is not None:
            return req
        light = self.__dict__.get("_light")
        if light is None:
            if not stock_request_class(self.app.request_class):
                return self.request
            light = self._light = LightRequest(self)
        return light

    # -- the session ----------------------------------------------------------------------

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
        cookie = self.header(b"cookie")
        return cookie is not None and app.config["SESSION_COOKIE_NAME"].encode("latin-1") in cookie

    def copy(self) -> RequestContext:
        """A plain Flask request context sharing this one's request and session."""
        return RequestContext(self.app, environ=self.request.environ, request=self.request,
                              session=self._session)

    # -- making it current --------------------------------------------------------------------

    def enter(self, plan: Plan) -> None:
        """Make this the current request context (and the app context, unless this app's is
        current).  Entered again while entered (stream_with_context does it), it only counts
        one level more: the context is torn down when the last level leaves."""
        if self._entered is not None:
            self._nested.append(_cv_request.set(self))
            return
        app_ctx = _cv_app.get(None)
        if app_ctx is not None and app_ctx.app is self.app:
            self._entered = (_cv_request.set(self), None, None)
            return
        app = self.app
        if plan.plain_app_ctx and not appcontext_pushed.receivers:
            app_ctx = LazyAppContext(app)
            self._entered = (_cv_request.set(self), app_ctx, _cv_app.set(app_ctx))
            return
        app_ctx = LazyAppContext(app) if type(app).app_context is Flask.app_context \
            else app.app_context()
        app_ctx.push()
        self._entered = (_cv_request.set(self), app_ctx, None)

    def leave(self, plan: Plan, exc: Optional[BaseException]) -> None:
        """Undo one `enter`: the last level runs the teardown (teardown_request functions,
        request_tearing_down receivers), closes the request and pops the app context."""
        nested = self.__dict__.get("_nested")
        if nested:
            _reset(_cv_request, nested.pop())
            return
        app = self.app
        token, app_ctx, app_token = self._entered
        self._entered = None
        request = None
        try:
            if plan.teardown or request_tearing_down.receivers:
                app.do_teardown_request(exc)
            request = self.__dict__.get("request")
            if request is not None:
                request.close()
        finally:
            try:
                _cv_request.reset(token)
            except ValueError:  # left from another context (see _reset)
                _reset(_cv_request, token)
            if request is not None:
                request.environ["werkzeug.request"] = None
            if app_ctx is not None:
                if app_token is not None and not (appcontext_popped.receivers
                                                  or appcontext_tearing_down.receivers):
                    try:
                        _cv_app.reset(app_token)
                    except ValueError:
                        _reset(_cv_app, app_token)
                else:
                    if app_token is not None:
                        app_ctx._cv_tokens.append(app_token)
                    app_ctx.pop(exc)

    def push(self) -> None:
        """Flask's `push()`: `enter` with this request's plan."""
        self.enter(self.route.plan)

    def pop(self, exc: Optional[BaseException] = _sentinel) -> None:  # type: ignore[override]
        """Flask's `pop()`: `leave` with this request's plan."""
        if exc is _sentinel:
            exc = sys.exc_info()[1]
        self.leave(self.route.plan, exc)


def _reset(var: Any, token: Any) -> None:
    """`var.reset(token)`; from another context (a response body iterated in a pool thread
    leaves a context entered on the loop) the value before is set back instead."""
    try:
        var.reset(token)
    except ValueError:
        var.set(None if token.old_value is Token.MISSING else token.old_value)
