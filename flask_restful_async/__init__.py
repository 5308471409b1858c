"""flask-restful-async: flask-restful on a C HTTP/1.1 server.

The public API of flask-restful 0.3.10 (same names, same module layout: `.reqparse`,
`.fields`, `.inputs`, `.representations.json`, `.utils`, `.utils.cors`), working on
Flask 3 / Werkzeug 3, plus `AsyncResource` for `async def` methods and the bridges in
`.compat`.

Names load on first use, so running the server (`python -m flask_restful_async`) for an
app that is not a Flask app never imports Flask.
"""
import importlib
# `sys` is a module attribute on purpose: code written for flask-restful patches
# `flask_restful.sys.exc_info`.
import sys  # noqa: F401
from typing import Any, List

__version__ = "0.1.0"

# public name -> module it lives in (a module name alone: the submodule itself)
_EXPORTS = {
    "Api": "flask_restful_async.api",
    "DEFAULT_REPRESENTATIONS": "flask_restful_async.api",
    "Resource": "flask_restful_async.resources",
    "AsyncResource": "flask_restful_async.resources",
    "abort": "flask_restful_async.errors",
    "marshal": "flask_restful_async.marshalling",
    "marshal_with": "flask_restful_async.marshalling",
    "marshal_with_field": "flask_restful_async.marshalling",
    "OrderedDict": "flask_restful_async.utils",
    "http_status_message": "flask_restful_async.utils",
    "unpack": "flask_restful_async.utils",
    "output_json": "flask_restful_async.representations.json",
    "run_sync": "flask_restful_async.compat",
    "run_async": "flask_restful_async.compat",
    "retry": "flask_restful_async.compat",
    "fallback": "flask_restful_async.compat",
    "asgi": "flask_restful_async.asgi",
    # flask-restful re-exports these from Flask
    "request": "flask",
    "url_for": "flask",
    "current_app": "flask",
}
_SUBMODULES = ("fields", "inputs", "reqparse", "representations", "utils", "compat",
               "testing", "loops", "errors", "resources", "marshalling", "iso8601", "awaiting",
               "routing", "pipeline", "lazy_context", "light_request", "rendering", "watchdog",
               "trampolines", "asgi_environ", "server_app")

__all__ = ("Api", "Resource", "AsyncResource", "marshal", "marshal_with", "marshal_with_field",
           "abort", "fields", "inputs", "reqparse", "representations", "utils", "OrderedDict",
           "http_status_message", "unpack", "output_json", "DEFAULT_REPRESENTATIONS",
           "run_sync", "run_async", "retry", "fallback", "asgi")


def __getattr__(name: str) -> Any:
    """Load a public name (or submodule) on first access and keep it."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module("flask_restful_async." + name)
    else:
        raise AttributeError("module 'flask_restful_async' has no attribute %r" % name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBMODULES))
