"""Api: registers resources on a Flask app or blueprint, renders their return values by
media type, and turns exceptions raised in its endpoints into JSON error responses."""
import asyncio
import inspect
import operator
import sys
from collections import OrderedDict
from functools import partial, wraps
from types import MethodType
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from flask import Flask, current_app, request, url_for
from flask import make_response as flask_make_response
from flask.signals import got_request_exception
from werkzeug.datastructures import Headers
from werkzeug.exceptions import (HTTPException, InternalServerError, MethodNotAllowed,
                                 NotAcceptable, NotFound)
from werkzeug.wrappers import Response as ResponseBase

from flask_restful_async.asgi import AsgiApp
from flask_restful_async.awaiting import bind_api, call_awaiting
from flask_restful_async.compat import run_sync
from flask_restful_async.errors import reraise_if_propagating
from flask_restful_async.loops import run_coroutine_sync, server_loop
from flask_restful_async.representations.json import output_json
from flask_restful_async.resources import AsyncResource
from flask_restful_async.streaming.responses import StreamResponse, stream_response_of
from flask_restful_async.utils import http_status_message, unpack

__all__ = ["Api", "DEFAULT_REPRESENTATIONS"]

DEFAULT_REPRESENTATIONS = [("application/json", output_json)]


def _run_async_hooks_on_thread_loop(func: Callable[..., Any]) -> Callable[..., Any]:
    """`Flask.async_to_sync` replacement: run `async def` hooks, error handlers and views
    on the calling thread's own event loop (no asgiref needed, no loop per call)."""
    @wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        # awaiting() holds inside: an async decorator around an AsyncResource awaits the
        # resource's coroutine instead of the resource blocking on a loop of its own
        return call_awaiting(lambda: run_coroutine_sync(func(*args, **kwargs)))
    return run


class Api:
    """The entry point: `api = Api(app)` (or `Api()` then `api.init_app(app)`).

    :param app: a Flask app or Blueprint
    :param prefix: prefix of every route, e.g. '/v1'
    :param default_mediatype: media type when the Accept header matches no representation
        (None: 406 instead)
    :param decorators: decorators applied to every resource view
    :param catch_all_404s: render 404s of the whole app as JSON errors
    :param serve_challenge_on_401: add a Basic WWW-Authenticate challenge to 401s
    :param url_part_order: order of blueprint prefix 'b', api prefix 'a' and endpoint 'e'
    :param errors: exception class name → dict merged into the error body; its 'status'
        is the status code
    :param timeout: default time limit, in seconds, of AsyncResource methods (None: none);
        a resource's own `timeout` wins
    """

    def __init__(self, app: Any = None, prefix: str = "",
                 default_mediatype: Optional[str] = "application/json",
                 decorators: Optional[List[Callable[..., Any]]] = None,
                 catch_all_404s: bool = False, serve_challenge_on_401: bool = False,
                 url_part_order: str = "bae", errors: Optional[Dict[str, Dict[str, Any]]] = None,
                 timeout: Optional[float] = None) -> None:
        self.representations: Dict[str, Callable[..., Any]] = OrderedDict(DEFAULT_REPRESENTATIONS)
        self.urls: Dict[str, Any] = {}
        self.prefix = prefix
        self.default_mediatype = default_mediatype
        self.decorators = decorators if decorators else []
        self.catch_all_404s = catch_all_404s
        self.serve_challenge_on_401 = serve_challenge_on_401
        self.url_part_order = url_part_order
        self.errors = errors or {}
        self.timeout = timeout
        self.blueprint_setup = None
        self.endpoints: Set[str] = set()
        self.resources: List[Tuple[Any, Tuple[str, ...], Dict[str, Any]]] = []
        self.app = None
        self.blueprint = None
        self._blueprint_endpoint_prefix: Optional[str] = None
        self._asgi = None
        if app is not None:
            self.app = app
            self.init_app(app)

    # -- setup ---------------------------------------------------------------------------

    def init_app(self, app: Any) -> None:
        """Attach to a Flask app now, or to a Blueprint when it gets registered."""
        try:
            app.record(self._deferred_blueprint_init)
        except AttributeError:  # a Flask app has no `record`
            self._init_app(app)
        else:
            self.blueprint = app

    def _complete_url(self, url_part: str, registration_prefix: str) -> str:
        """The full rule: blueprint prefix, api prefix and endpoint path in url_part_order."""
        parts = {"b": registration_prefix, "a": self.prefix, "e": url_part}
        return "".join(parts[key] for key in self.url_part_order if parts[key])

    @staticmethod
    def _blueprint_setup_add_url_rule_patch(blueprint_setup: Any, rule: Any,
                                            endpoint: Optional[str] = None,
                                            view_func: Optional[Callable[..., Any]] = None,
                                            **options: Any) -> None:
        """BlueprintSetupState.add_url_rule that also accepts a callable rule, called with
        the registration's url_prefix (so the Api can order the parts itself)."""
        if callable(rule):
            rule = rule(blueprint_setup.url_prefix)
        elif blueprint_setup.url_prefix:
            rule = blueprint_setup.url_prefix + rule
        options.setdefault("subdomain", blueprint_setup.subdomain)
        if endpoint is None:
            endpoint = view_func.__name__
        defaults = blueprint_setup.url_defaults
        if "defaults" in options:
            defaults = dict(defaults, **options.pop("defaults"))
        blueprint_setup.app.add_url_rule(
            rule, "%s.%s" % (_blueprint_endpoint_prefix(blueprint_setup), endpoint),
            view_func, defaults=defaults, **options)

    def _deferred_blueprint_init(self, setup_state: Any) -> None:
        """Run when the blueprint is registered: finish init against the real app."""
        self.blueprint_setup = setup_state
        if setup_state.add_url_rule.__name__ != "_blueprint_setup_add_url_rule_patch":
            setup_state._original_add_url_rule = setup_state.add_url_rule
            setup_state.add_url_rule = MethodType(Api._blueprint_setup_add_url_rule_patch,
                                                  setup_state)
        if not setup_state.first_registration:
            raise ValueError("flask-restful blueprints can only be registered once.")
        self._blueprint_endpoint_prefix = _blueprint_endpoint_prefix(setup_state)
        self._init_app(setup_state.app)

    def _init_app(self, app: Any) -> None:
        app.handle_exception = partial(self.error_router, app.handle_exception)
        app.handle_user_exception = partial(self.error_router, app.handle_user_exception)
        if isinstance(app, Flask) and "async_to_sync" not in vars(app) \
                and getattr(type(app), "async_to_sync", None) is Flask.async_to_sync:
            app.async_to_sync = _run_async_hooks_on_thread_loop
        for resource, urls, kwargs in self.resources:
            self._register_view(app, resource, *urls, **kwargs)

    # -- error routing -------------------------------------------------------------------

    def owns_endpoint(self, endpoint: str) -> bool:
        """Is `endpoint` (a name, with its blueprint part) one of this Api's?"""
        if self.blueprint:
            prefix = (self._blueprint_endpoint_prefix or self.blueprint.name) + "."
            if not endpoint.startswith(prefix):
                return False
            endpoint = endpoint[len(prefix):]
        return endpoint in self.endpoints

    def _should_use_fr_error_handler(self) -> Optional[bool]:
        """For 404 and 405 (no url_rule): would this URL reach this Api?"""
        adapter = current_app.create_url_adapter(request)
        try:
            adapter.match()
        except MethodNotAllowed as e:
            rule, _ = adapter.match(method=e.valid_methods[0], return_rule=True)
            return self.owns_endpoint(rule.endpoint)
        except NotFound:
            return self.catch_all_404s
        except Exception:  # redirects and other routing outcomes
            pass
        return None

    def _has_fr_route(self) -> bool:
        """Did the error happen in (or for a URL of) one of this Api's endpoints?"""
        if self._should_use_fr_error_handler():
            return True
        if not request.url_rule:
            return False
        return self.owns_endpoint(request.url_rule.endpoint)

    def error_router(self, original_handler: Callable[[Exception], Any], e: Exception) -> Any:
        """Errors of this Api's endpoints go to `handle_error`, others (and any that
        `handle_error` cannot turn into a response) to Flask's own handler."""
        if self._has_fr_route():
            try:
                return self.handle_error(e)
            except Exception:
                pass  # PROPAGATE_EXCEPTIONS, or a failing handler: Flask decides
        return original_handler(e)

    def handle_error(self, e: Exception) -> ResponseBase:
        """The response for an exception raised in an endpoint: status from the HTTP error
        (else 500), body {"message": ...} or the exception's `data`, merged with the
        `errors` entry for its class name."""
        got_request_exception.send(current_app._get_current_object(), exception=e)
        reraise_if_propagating(current_app, e)

        headers = Headers()
        if isinstance(e, HTTPException):
            if e.response is not None:
                return e.get_response()  # the raiser built the response: keep it
            code = e.code
            default_data = {"message": getattr(e, "description", http_status_message(code))}
            headers = e.get_response().headers
        else:
            code = 500
            default_data = {"message": http_status_message(code)}
        # werkzeug's own Content-Length describes its HTML body, not ours
        headers.pop("Content-Length", None)

        data = getattr(e, "data", default_data)
        if code and code >= 500:
            exc_info = sys.exc_info()
            current_app.log_exception(exc_info if exc_info[1] is not None else None)

        custom = self.errors.get(type(e).__name__)
        if custom is not None:
            code = custom.get("status", 500)
            data.update(custom)

        if code == 406 and self.default_mediatype is None:
            # answer in a type we have rather than raising NotAcceptable again
            fallback = next(iter(self.representations), "text/plain")
            resp = self.make_response(data, code, headers, fallback_mediatype=fallback)
        else:
            resp = self.make_response(data, code, headers)
        if code == 401:
            resp = self.unauthorized(resp)
        return resp

    # -- resources -----------------------------------------------------------------------

    def mediatypes_method(self) -> Callable[[Any], List[str]]:
        """A function giving the requested media types plus the default one."""
        return lambda resource_cls: self.mediatypes() + [self.default_mediatype]

    def add_resource(self, resource: Any, *urls: str, **kwargs: Any) -> None:
        """Route `urls` to `resource` (a Resource or AsyncResource class).

        :param endpoint: endpoint name (default: the class name, lower case)
        :param resource_class_args: positional arguments for the resource's constructor
        :param resource_class_kwargs: keyword arguments for the resource's constructor
        Other keyword arguments go to `Flask.add_url_rule`.
        """
        if self.app is not None:
            self._register_view(self.app, resource, *urls, **kwargs)
        else:
            self.resources.append((resource, urls, kwargs))

    def resource(self, *urls: str, **kwargs: Any) -> Callable[[Any], Any]:
        """Class decorator form of `add_resource`."""
        def decorator(cls: Any) -> Any:
            self.add_resource(cls, *urls, **kwargs)
            return cls
        return decorator

    def _view_for(self, resource: Any, endpoint: str, args: Tuple[Any, ...],
                  kwargs: Dict[str, Any]) -> Callable[..., Any]:
        """The view function for a resource: Api.decorators around Api.output around the
        resource's own view (exactly flask-restful's chain; async-aware parts inside)."""
        view = resource.as_view(endpoint, *args, **kwargs)
        if _is_async_resource(resource):
            view = bind_api(view, self)
        output = self.output(view)
        decorated = output
        for decorator in self.decorators:
            decorated = decorator(decorated)
        if inspect.iscoroutinefunction(decorated) and not _is_async_resource(resource):
            # An async Api decorator awaits what it wraps: give it an awaitable, with the
            # sync resource running in a worker thread so it cannot block a loop.
            async def threaded(*a: Any, **kw: Any) -> Any:
                if asyncio.get_running_loop() is not server_loop.get():
                    # a worker thread's private loop: blocking it blocks no one else
                    return output(*a, **kw)
                return await run_sync(output, *a, **kw)
            decorated = wraps(output)(threaded)
            for decorator in self.decorators:
                decorated = decorator(decorated)
        if not self.decorators:
            # Nothing wraps the resource: a server may call the resource itself and render
            # its result without this chain (routing.RouteKind.DIRECT and SYNC).  The view
            # is recorded so a view replaced or wrapped later is never bypassed.
            decorated._fra_direct = (decorated, self, resource, args, kwargs)
        return decorated

    def _register_view(self, app: Any, resource: Any, *urls: str, **kwargs: Any) -> None:
        endpoint = kwargs.pop("endpoint", None) or resource.__name__.lower()
        self.endpoints.add(endpoint)
        resource_class_args = kwargs.pop("resource_class_args", ())
        resource_class_kwargs = kwargs.pop("resource_class_kwargs", {})

        previous = getattr(app, "view_functions", {}).get(endpoint)
        if previous is not None:
            previous_class = getattr(previous, "view_class", None)
            if previous_class != resource:
                raise ValueError("This endpoint (%s) is already set to the class %s."
                                 % (endpoint, getattr(previous_class, "__name__", previous)))

        resource.mediatypes = self.mediatypes_method()
        resource.endpoint = endpoint
        resource_func = self._view_for(resource, endpoint, resource_class_args,
                                       resource_class_kwargs)

        for url in urls:
            if self.blueprint:
                # the blueprint prefix is only known at registration: let the patched
                # setup state complete the rule (also after registration, with the prefix)
                rule: Any = partial(self._complete_url, url)
                if self.blueprint_setup:
                    self.blueprint_setup.add_url_rule(rule, view_func=resource_func, **kwargs)
                    continue
            else:
                rule = self._complete_url(url, "")
            app.add_url_rule(rule, view_func=resource_func, **kwargs)

    def output(self, resource: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap a view so that what it returns (data, or data with status and headers)
        becomes a response in the negotiated representation.  Responses pass through;
        an awaitable result gives an awaitable response."""
        def finish(resp: Any) -> Any:
            if isinstance(resp, ResponseBase):
                return resp
            stream = stream_response_of(resp)
            if stream is not None:  # an iterator of chunks: streamed, not rendered
                return stream
            data, code, headers = unpack(resp)
            return self.make_response(data, code, headers=headers)

        @wraps(resource)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            resp = resource(*args, **kwargs)
            if inspect.isawaitable(resp):
                async def later() -> Any:
                    out = finish(await resp)
                    if type(out) is StreamResponse and out.is_async:
                        await out.prime()  # (an error before the first chunk is the view's)
                    return out
                return later()
            out = finish(resp)
            if type(out) is StreamResponse and not out.is_async:
                out.prime_sync()
            return out
        return wrapper

    def url_for(self, resource: Any, **values: Any) -> str:
        """The URL of a resource, like `flask.url_for`."""
        endpoint = resource.endpoint
        if self.blueprint:
            endpoint = "{0}.{1}".format(self._blueprint_endpoint_prefix or self.blueprint.name,
                                        endpoint)
        return url_for(endpoint, **values)

    # -- representations -----------------------------------------------------------------

    def make_response(self, data: Any, *args: Any, **kwargs: Any) -> ResponseBase:
        """Render `data` with the representation the Accept header asks for (or the
        default media type); 406 when none fits and there is no default."""
        default_mediatype = kwargs.pop("fallback_mediatype", None) or self.default_mediatype
        mediatype = request.accept_mimetypes.best_match(self.representations,
                                                        default=default_mediatype)
        if mediatype is None:
            raise NotAcceptable()
        if mediatype in self.representations:
            resp = self.representations[mediatype](data, *args, **kwargs)
            resp.headers["Content-Type"] = mediatype
            return resp
        if mediatype == "text/plain":
            resp = flask_make_response(str(data), *args, **kwargs)
            resp.headers["Content-Type"] = "text/plain"
            return resp
        raise InternalServerError()

    def mediatypes(self) -> List[str]:
        """The media types of the Accept header, best first."""
        return [mediatype for mediatype, _ in sorted(request.accept_mimetypes,
                                                     key=operator.itemgetter(1), reverse=True)]

    def representation(self, mediatype: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering a transformer `f(data, code, headers) -> Response` for a
        media type."""
        def wrapper(func: Callable[..., Any]) -> Callable[..., Any]:
            self.representations[mediatype] = func
            return func
        return wrapper

    def unauthorized(self, response: ResponseBase) -> ResponseBase:
        """Add the Basic challenge to a 401 when serve_challenge_on_401 is set."""
        if self.serve_challenge_on_401:
            realm = current_app.config.get("HTTP_BASIC_AUTH_REALM", "flask-restful")
            response.headers["WWW-Authenticate"] = 'Basic realm="{0}"'.format(realm)
        return response

    # -- other servers -------------------------------------------------------------------

    @property
    def flask_app(self) -> Optional[Flask]:
        """The Flask app this Api's resources are registered on (through its blueprint),
        or None before that."""
        app = self.blueprint_setup.app if self.blueprint_setup is not None else self.app
        return app if isinstance(app, Flask) else None

    @property
    def asgi_app(self) -> Any:
        """An ASGI 3 application serving this Api's Flask app (for uvicorn, hypercorn)."""
        if self._asgi is None:
            app = self.flask_app
            if app is None:
                raise RuntimeError("asgi_app needs the Api attached to a Flask app "
                                   "(or its blueprint registered on one)")
            self._asgi = AsgiApp(app)
        return self._asgi


def _blueprint_endpoint_prefix(setup_state: Any) -> str:
    """The endpoint prefix a blueprint registration gives its views (nested ones too)."""
    name_prefix = getattr(setup_state, "name_prefix", "")
    name = getattr(setup_state, "name", None) or setup_state.blueprint.name
    return "{0}.{1}".format(name_prefix, name).lstrip(".")


def _is_async_resource(resource: Any) -> bool:
    cls = resource if isinstance(resource, type) else type(resource)
    return issubclass(cls, AsyncResource)
