"""Coroutines that step another one: `drive` (times each step for the watchdog and arms a
callback at the first real suspension) and `follow` (delegates the rest of a coroutine the
caller already stepped once).  Our server steps handlers from C and needs neither unless the
watchdog is on; other ASGI servers use them to watch for the client leaving."""
import types
from typing import Any, Callable, Optional

from flask_restful_async.watchdog import LoopWatchdog

__all__ = ["NOT_STARTED", "drive", "follow"]

#: `drive`'s `suspended_at` when the caller has not stepped the coroutine yet
NOT_STARTED: Any = object()


@types.coroutine
def drive(coro: Any, on_suspend: Optional[Callable[[], None]],
          watchdog: Optional[LoopWatchdog], endpoint: str,
          suspended_at: Any = NOT_STARTED) -> Any:
    """Await `coro`, calling `on_suspend()` the first time it really suspends (a handler
    that finishes in one step never needs it) and timing each step when a watchdog is set.
    `suspended_at`: what `coro` yielded when the caller already made its first step."""
    send, throw = coro.send, coro.throw
    value: Any = None
    error: Optional[BaseException] = None
    yielded = suspended_at
    while True:
        if yielded is NOT_STARTED:
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
        yielded = NOT_STARTED


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
