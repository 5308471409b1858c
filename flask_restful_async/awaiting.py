"""Which Api calls a resource view, and whether the caller of a view chain will await it.

Two context variables read by `AsyncResource.dispatch_request` (resources.py) and set by the
Api (api.py) and the request pipeline (pipeline.py): `awaiting()` decides between handing back
the coroutine and running it to completion on this thread's loop; `current_api()` gives the
Api whose default timeout applies.
"""
import inspect
from contextvars import ContextVar
from functools import wraps
from typing import Any, Callable, Optional

__all__ = ["awaiting", "call_awaiting", "await_view", "current_api", "bind_api"]

# True while the caller of a view chain will await its result (an async request pipeline,
# an async decorator run by Flask): AsyncResource.dispatch_request then hands back its
# coroutine instead of running it to completion on this thread's loop.
_AWAITING: ContextVar[bool] = ContextVar("fra_awaiting", default=False)
# The Api whose resource view is being called (its default timeout applies).
_CURRENT_API: ContextVar[Optional[Any]] = ContextVar("fra_current_api", default=None)


def awaiting() -> bool:
    """Will the caller of the current view chain await an awaitable result?"""
    return _AWAITING.get()


def call_awaiting(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call `func` with `awaiting()` true for the call (and tasks created in it)."""
    token = _AWAITING.set(True)
    try:
        return func(*args, **kwargs)
    finally:
        _AWAITING.reset(token)


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


def current_api() -> Optional[Any]:
    """The Api whose resource view is being called in this context, else None."""
    return _CURRENT_API.get()


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
