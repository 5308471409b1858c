"""The `crossdomain` decorator: CORS headers on a view or resource method (sync or async)."""
import inspect
from datetime import timedelta
from functools import update_wrapper
from typing import Any, Callable, Iterable, Optional, Union

from flask import current_app, make_response, request

__all__ = ["crossdomain"]


def _header_list(value: Union[None, str, Iterable[str]], upper: bool = True) -> Optional[str]:
    if value is None or isinstance(value, str):
        return value
    return ", ".join(item.upper() if upper else item for item in value)


def crossdomain(origin: Union[str, Iterable[str], None] = None,
                methods: Optional[Iterable[str]] = None,
                headers: Union[None, str, Iterable[str]] = None,
                expose_headers: Union[None, str, Iterable[str]] = None,
                max_age: Union[int, float, timedelta] = 21600,
                attach_to_all: bool = True,
                automatic_options: bool = True,
                credentials: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a view (or resource method) so its responses carry CORS headers.

    `methods` defaults to what Flask would answer an OPTIONS request with; OPTIONS requests
    get Flask's default OPTIONS response when `automatic_options` is true.  Works on plain and
    `async def` functions alike.
    """
    allow_methods = ", ".join(sorted(m.upper() for m in methods)) if methods is not None else None
    allow_headers = _header_list(headers)
    expose = _header_list(expose_headers)
    if origin is not None and not isinstance(origin, str):
        origin = ", ".join(origin)
    if isinstance(max_age, timedelta):
        max_age = max_age.total_seconds()

    def decorate(resp):
        if not attach_to_all and request.method != "OPTIONS":
            return resp
        h = resp.headers
        h["Access-Control-Allow-Origin"] = origin
        h["Access-Control-Allow-Methods"] = (
            allow_methods if allow_methods is not None
            else current_app.make_default_options_response().headers["allow"])
        h["Access-Control-Max-Age"] = str(max_age)
        if credentials:
            h["Access-Control-Allow-Credentials"] = "true"
        if allow_headers is not None:
            h["Access-Control-Allow-Headers"] = allow_headers
        if expose is not None:
            h["Access-Control-Expose-Headers"] = expose
        return resp

    def decorator(f: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(f):
            async def wrapped(*args, **kwargs):
                if automatic_options and request.method == "OPTIONS":
                    return decorate(current_app.make_default_options_response())
                return decorate(make_response(await f(*args, **kwargs)))
        else:
            def wrapped(*args, **kwargs):
                if automatic_options and request.method == "OPTIONS":
                    return decorate(current_app.make_default_options_response())
                return decorate(make_response(f(*args, **kwargs)))

        f.provide_automatic_options = False
        return update_wrapper(wrapped, f)

    return decorator
