"""Finding the app: import MODULE, resolve ATTR, tell ASGI from WSGI."""
from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import sys
import traceback
from typing import Any, Callable

from flask_restful_async.server.config import ConfigError


def load_app(spec: str, app_dir: str = ".") -> Callable[..., Any]:
    """Import and return the callable named by "module:attr", "module:a.b" or
    "module:factory()".  Raises ConfigError with a one-line reason."""
    module_name, _, attr = spec.partition(":")
    path = os.path.abspath(app_dir)
    if path not in sys.path:
        sys.path.insert(0, path)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only "our" module missing is a usage error with no traceback worth showing; a
        # missing import inside the module is reported with where it happened.
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise ConfigError(f"cannot import {module_name!r}: no module named {exc.name!r} "
                              f"(searched from {path})") from exc
        raise ConfigError(f"importing {module_name!r} failed: {_one_line(exc)}") from exc
    except Exception as exc:
        raise ConfigError(f"importing {module_name!r} failed: {_one_line(exc)}") from exc

    call = attr.endswith("()")
    obj: Any = module
    for part in (attr[:-2] if call else attr).split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"module {module_name!r} has no attribute "
                              f"{attr[:-2] if call else attr!r}") from None
    if call:
        try:
            obj = obj()
        except Exception as exc:
            raise ConfigError(f"calling {spec} failed: {_one_line(exc)}") from exc
    if not callable(obj):
        raise ConfigError(f"{spec} is not callable (got {type(obj).__name__}); expected an "
                          "ASGI or WSGI app")
    return obj


def _one_line(exc: BaseException) -> str:
    """'Type: message (at file:line)' for the innermost frame of an exception."""
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    if isinstance(exc, SyntaxError):
        return text  # its message already names the file and line
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        text += f" (at {last.filename}:{last.lineno})"
    return text


def _positional_params(func: Callable[..., Any]) -> int | None:
    """How many required-or-optional positional parameters `func` takes; None if unknown
    or variadic."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    count = 0
    for p in sig.parameters.values():
        if p.kind == p.VAR_POSITIONAL:
            return None
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


def _is_async(func: Any) -> bool:
    return inspect.iscoroutinefunction(func) or asyncio.iscoroutinefunction(func)


def detect_interface(app: Callable[..., Any]) -> str:
    """'asgi' or 'wsgi' for an app callable.  Raises ConfigError when it cannot tell."""
    if _is_async(app) or (not inspect.isroutine(app) and _is_async(getattr(app, "__call__", None))):
        return "asgi"
    count = _positional_params(app)
    if count == 2:
        return "wsgi"
    if count == 3:
        # A plain function returning an awaitable, e.g. a wrapper around an ASGI app.
        return "asgi"
    raise ConfigError(f"cannot tell whether {app!r} is an ASGI or a WSGI app; "
                      "pass --interface asgi or --interface wsgi")
