"""Bridges between sync and async code, and recovery helpers.

* `run_sync`   await a blocking function in a worker thread, request context included
* `run_async`  get a coroutine's result from sync code (a sync resource, a worker thread)
* `maybe_await`, `dual_decorator`  write once for sync and async callables
* `retry`      retry with exponential backoff, jitter and a predicate (sync or async)
* `fallback`   answer with a fallback value when a call fails
"""
import asyncio
import contextvars
import functools
import inspect
import random as _random
import time
from concurrent.futures import Executor
from typing import Any, Awaitable, Callable, Generator, Optional, Tuple, Type, TypeVar, Union

from werkzeug.exceptions import HTTPException

from flask_restful_async.loops import run_coroutine_sync, server_loop, thread_pool

__all__ = ["run_sync", "run_async", "maybe_await", "dual_decorator", "retry", "fallback",
           "backoff_delays", "thread_pool", "worker_executor"]

T = TypeVar("T")
Exceptions = Union[Type[BaseException], Tuple[Type[BaseException], ...]]

#: Executor `run_sync` uses under other ASGI servers (the adapter sets its pool here); None =
#: the loop's default executor.
worker_executor: "contextvars.ContextVar[Optional[Executor]]" = \
    contextvars.ContextVar("fra_worker_executor", default=None)


async def run_sync(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking `fn(*args, **kwargs)` in a worker thread and await its result.

    The thread is one of the server's pool (`--threads`; under another ASGI server, the
    adapter's).  The current context is copied into the thread, so `flask.request`, `g` and
    `current_app` work there.  If the awaiting task is cancelled the thread still finishes
    its call (threads cannot be interrupted); its result is dropped.
    """
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    loop = asyncio.get_running_loop()
    submit = thread_pool.get()
    if submit is not None and loop is server_loop.get():
        return await submit(call)
    return await loop.run_in_executor(worker_executor.get(), call)


async def _as_coroutine(awaitable: Awaitable[T]) -> T:
    return await awaitable


def run_async(awaitable: Awaitable[T], timeout: Optional[float] = None) -> T:
    """Run `awaitable` from synchronous code and return its result.

    In a worker thread of a loop server it runs on the server's loop (the request context
    is carried over) while this thread waits, at most `timeout` seconds; elsewhere (plain
    WSGI) on this thread's own reused loop.  Calling it on the server loop's own thread
    is an error: there, `await` instead.
    """
    loop = server_loop.get()
    if loop is not None and loop.is_running() and not loop.is_closed():
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise RuntimeError("run_async() called on the event loop's own thread; "
                               "await the coroutine instead")
        coro = awaitable if asyncio.iscoroutine(awaitable) else _as_coroutine(awaitable)
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)
    return run_coroutine_sync(awaitable)


async def maybe_await(value: Union[T, Awaitable[T]]) -> T:
    """`value`, awaited first if it is awaitable (for results of sync-or-async calls)."""
    if inspect.isawaitable(value):
        return await value
    return value


def _finish(gen: Generator[Any, Any, Any], outcome: Callable[[], Any]) -> Any:
    try:
        outcome()
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("a dual_decorator wrapper must yield exactly once")


def dual_decorator(wrapper: Callable[..., Generator[Any, Any, Any]]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Turn one generator into a decorator for both plain and `async def` functions.

    The generator gets (func, *args, **kwargs) and yields once: the call happens there, the
    yield gives its result (or raises its exception) and the generator's return value is
    the decorated function's result.  Returning before the yield skips the call::

        @dual_decorator
        def require_token(func, *args, **kwargs):
            if "X-Token" not in request.headers:
                return {"message": "token required"}, 401
            result = yield
            return result
    """
    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(func):
            async def async_wrapped(*args: Any, **kwargs: Any) -> Any:
                gen = wrapper(func, *args, **kwargs)
                try:
                    next(gen)
                except StopIteration as stop:
                    return stop.value
                try:
                    result = await func(*args, **kwargs)
                except BaseException as exc:
                    return _finish(gen, lambda: gen.throw(exc))
                return _finish(gen, lambda: gen.send(result))
            return functools.wraps(func)(async_wrapped)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            gen = wrapper(func, *args, **kwargs)
            try:
                next(gen)
            except StopIteration as stop:
                return stop.value
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                return _finish(gen, lambda: gen.throw(exc))
            return _finish(gen, lambda: gen.send(result))
        return functools.wraps(func)(wrapped)
    return decorator


def backoff_delays(attempts: int, base_delay: float = 0.1, max_delay: float = 10.0,
                   multiplier: float = 2.0, jitter: float = 1.0,
                   rng: Optional[_random.Random] = None) -> list:
    """The waits before retries 1..attempts-1: base_delay * multiplier**n capped at
    max_delay, of which a `jitter` fraction (0..1) is drawn uniformly at random
    (1.0 = "full jitter", 0 = none)."""
    rng = rng or _random
    delays = []
    for n in range(max(attempts - 1, 0)):
        cap = min(max_delay, base_delay * multiplier ** n)
        delays.append(cap * (1.0 - jitter) + rng.uniform(0.0, cap * jitter))
    return delays


def _wants_retry(exc: BaseException, on: Exceptions,
                 predicate: Optional[Callable[[BaseException], bool]]) -> bool:
    if not isinstance(exc, on):
        return False
    if predicate is not None:
        return bool(predicate(exc))
    return not isinstance(exc, HTTPException)


def retry(attempts: int = 3, *, base_delay: float = 0.1, max_delay: float = 10.0,
          multiplier: float = 2.0, jitter: float = 1.0, on: Exceptions = (Exception,),
          predicate: Optional[Callable[[BaseException], bool]] = None,
          sleep: Optional[Callable[[float], Any]] = None,
          rng: Optional[_random.Random] = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: call again, up to `attempts` calls in all, when the call raises.

    An exception is retried when it is an instance of `on` and `predicate(exc)` is true;
    without a predicate, HTTP errors (`abort(...)`) are never retried.  Waits follow
    `backoff_delays`.  Works on plain functions (time.sleep) and `async def` functions
    (asyncio.sleep, so cancellation interrupts the wait); `sleep` and `rng` replace the
    clock and the random source.  The last exception propagates.
    """
    if attempts < 1:
        raise ValueError("retry: attempts must be at least 1")

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(func):
            async def async_wrapped(*args: Any, **kwargs: Any) -> Any:
                delays = backoff_delays(attempts, base_delay, max_delay, multiplier, jitter, rng)
                for delay in delays + [None]:
                    try:
                        return await func(*args, **kwargs)
                    except BaseException as exc:
                        if delay is None or not _wants_retry(exc, on, predicate):
                            raise
                    await maybe_await((sleep or asyncio.sleep)(delay))
            return functools.wraps(func)(async_wrapped)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            delays = backoff_delays(attempts, base_delay, max_delay, multiplier, jitter, rng)
            for delay in delays + [None]:
                try:
                    return func(*args, **kwargs)
                except BaseException as exc:
                    if delay is None or not _wants_retry(exc, on, predicate):
                        raise
                (sleep or time.sleep)(delay)
        return functools.wraps(func)(wrapped)
    return decorator


def fallback(handler: Any, *, on: Exceptions = (Exception,),
             predicate: Optional[Callable[[BaseException], bool]] = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: when the call raises a matching exception, return the fallback instead.

    `handler` is the fallback value, or a callable given the exception (sync or async)
    whose result is returned.  Matching is as in `retry` (HTTP errors pass through unless
    a predicate accepts them).
    """
    def recover(exc: BaseException) -> Any:
        return handler(exc) if callable(handler) else handler

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(func):
            async def async_wrapped(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await func(*args, **kwargs)
                except BaseException as exc:
                    if not _wants_retry(exc, on, predicate):
                        raise
                    return await maybe_await(recover(exc))
            return functools.wraps(func)(async_wrapped)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except BaseException as exc:
                if not _wants_retry(exc, on, predicate):
                    raise
                result = recover(exc)
                if inspect.isawaitable(result):
                    result = run_coroutine_sync(result)
                return result
        return functools.wraps(func)(wrapped)
    return decorator
