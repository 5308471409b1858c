"""Which view a request runs, decided once per (method, path) and kept: the route kind (an
AsyncResource called directly, a coroutine view chain on the loop, or a sync view in the thread
pool) and what Flask would run around it (the route's Plan)."""
import enum
import inspect
from typing import Any, Dict, List, Optional, Tuple

from flask import Flask
from werkzeug.exceptions import HTTPException
from werkzeug.routing.converters import DEFAULT_CONVERTERS

from flask_restful_async.resources import AsyncResource, Resource
from flask_restful_async.streaming.body import reads_body_in_chunks

__all__ = ["RouteKind", "Routing", "Route", "Plan", "Router", "is_async_view"]

_BUILTIN_CONVERTERS = frozenset(DEFAULT_CONVERTERS.values())
_CACHE_LIMIT = 4096


class RouteKind(enum.Enum):
    """How a route's view runs."""
    DIRECT = "direct"   # an AsyncResource of an Api without decorators, called on the loop
    ASYNC = "async"     # a coroutine view chain, on the loop
    SYNC = "sync"       # a sync Resource of an Api without decorators, called in the pool
    THREAD = "thread"   # any other sync view: Flask's own wsgi_app in the thread pool


class Routing(enum.Enum):
    """How an app's requests are routed."""
    PATH = "path"        # by method and path alone: matched once, the match kept
    REQUEST = "request"  # by the whole request (SERVER_NAME, hosts, subdomains, TRUSTED_HOSTS)
    FLASK = "flask"      # the app changed Flask's request pipeline: only its wsgi_app serves it


def is_async_view(view: Optional[Any]) -> bool:
    """True when the view should run as a coroutine on the server loop: an `async def`
    view, or the view of an AsyncResource (seen through decorators that use
    functools.wraps; others make the view run in the thread pool, which also works)."""
    if view is None:
        return False
    if inspect.iscoroutinefunction(view):
        return True
    view_class = getattr(view, "view_class", None)
    return isinstance(view_class, type) and issubclass(view_class, AsyncResource)


class Route:
    """What a matched (method, path) runs (see RouteKind), with the Api, resource class and
    constructor arguments of a DIRECT route."""

    __slots__ = ("rule", "endpoint", "view_args", "kind", "view", "names", "resource",
                 "class_args", "class_kwargs", "api", "plan")

    def __init__(self, rule: Any, view_args: Dict[str, Any], kind: RouteKind, view: Any,
                 direct: Optional[Tuple[Any, ...]], app: Flask, method: str) -> None:
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
        if direct is not None:
            _, self.api, self.resource, self.class_args, self.class_kwargs = direct
        else:
            self.api = self.resource = self.class_args = self.class_kwargs = None
        self.plan = Plan(app, self, method)


class Plan:
    """What Flask would run around a route's view, read when the route is first matched:
    the app is serving by then, and Flask refuses new hooks and blueprints once it has
    handled a request, so these registries no longer change.  Signals can still be connected
    at any time: they are checked per request."""

    __slots__ = ("preprocess", "auto_options", "teardown", "after", "plain_app_ctx", "attr",
                 "streams_body")

    def __init__(self, app: Flask, route: Route, method: str) -> None:
        names = route.names
        before = app.before_request_funcs
        url_value = app.url_value_preprocessors
        #: before_request functions or URL value preprocessors for this route
        self.preprocess = (type(app).preprocess_request is not Flask.preprocess_request
                           or any(before.get(n) or url_value.get(n) for n in names))
        #: Flask answers this OPTIONS request itself
        self.auto_options = (method == "OPTIONS"
                             and getattr(route.rule, "provide_automatic_options", False))
        #: teardown_request functions for this route
        self.teardown = any(app.teardown_request_funcs.get(n) for n in names)
        #: after_request functions for this route
        self.after = any(app.after_request_funcs.get(n) for n in names)
        #: the app context is Flask's, with no teardown_appcontext functions
        self.plain_app_ctx = (type(app).app_context is Flask.app_context
                              and not app.teardown_appcontext_funcs)
        #: the resource method's name (HEAD: "head", Resource._method falls back to "get")
        self.attr = method.lower()
        #: an async resource method that reads its body with body_chunks(): started before
        #: the body is here (streaming.body)
        self.streams_body = False
        if route.resource is not None and route.kind is RouteKind.DIRECT:
            meth = getattr(route.resource, self.attr, None)
            if meth is None and method == "HEAD":
                meth = getattr(route.resource, "get", None)
            self.streams_body = meth is not None and reads_body_in_chunks(meth)


def routing_of(app: Flask) -> Routing:
    """How `app`'s requests can be routed (read once: Flask settles these before serving)."""
    if (type(app).request_context is not Flask.request_context
            or type(app).full_dispatch_request is not Flask.full_dispatch_request
            or type(app).dispatch_request is not Flask.dispatch_request):
        return Routing.FLASK
    config = app.config
    if (config.get("SERVER_NAME") is not None or config.get("TRUSTED_HOSTS") is not None
            or app.url_map.host_matching or app.subdomain_matching):
        return Routing.REQUEST
    return Routing.PATH


class Router:
    """Finds the Route of a request: by (method, path), matched once and kept, for an app
    routed by path (a rule with a custom converter is matched every time: its `to_python`
    may have effects); from the whole request otherwise (`match`)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._cache: Dict[Tuple[str, str], Route] = {}
        self._adapter: Any = None
        self._routing: Optional[Routing] = None

    @property
    def routing(self) -> Routing:
        if self._routing is None:
            self._routing = routing_of(self.app)
        return self._routing

    def lookup(self, method: str, path_info: str) -> Optional[Route]:
        """The Route for (method, path) in an app routed by path, or None: no route (404,
        405, a redirect: Flask renders them), or the app is not routed by path."""
        route = self._cache.get((method, path_info))
        if route is not None:
            return route
        if self.routing is not Routing.PATH:
            return None
        if self._adapter is None:
            self._adapter = self.app.url_map.bind(
                "localhost", subdomain=self.app.url_map.default_subdomain or "")
        try:
            rule, view_args = self._adapter.match(path_info, method, return_rule=True)
        except HTTPException:
            return None
        route = self.route(rule, view_args, method)
        if all(type(conv) in _BUILTIN_CONVERTERS for conv in rule._converters.values()):
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[(method, path_info)] = route
        return route

    def match(self, request: Any) -> Optional[Route]:
        """The Route of a werkzeug request (an app routed by the whole request), or None
        when Flask must answer it (no route, 405, a redirect)."""
        adapter = self.app.create_url_adapter(request)
        if adapter is None:
            return None
        try:
            rule, view_args = adapter.match(return_rule=True)
        except HTTPException:
            return None
        return self.route(rule, view_args, request.method)

    def route(self, rule: Any, view_args: Dict[str, Any], method: str) -> Route:
        """The Route for a matched rule."""
        self.app._got_first_request = True  # (Flask refuses new hooks from now on)
        view = self.app.view_functions.get(rule.endpoint)
        direct = getattr(view, "_fra_direct", None)
        if direct is not None and direct[0] is view:
            cls = direct[2]
            if isinstance(cls, type) and getattr(cls, "init_every_request", True):
                if issubclass(cls, AsyncResource):
                    if cls.dispatch_request is AsyncResource.dispatch_request:
                        return Route(rule, view_args, RouteKind.DIRECT, view, direct, self.app,
                                     method)
                elif cls.dispatch_request is Resource.dispatch_request:
                    return Route(rule, view_args, RouteKind.SYNC, view, direct, self.app, method)
        kind = RouteKind.ASYNC if is_async_view(view) else RouteKind.THREAD
        return Route(rule, view_args, kind, view, None, self.app, method)
