"""Resource (sync, as in flask-restful) and AsyncResource (`async def get` ...)."""
import asyncio
import inspect
from types import CoroutineType
from collections.abc import Mapping
from typing import Any, Awaitable, Callable, ClassVar, Dict, List, Optional, Tuple, Union

from flask import request
from flask.views import MethodView
from werkzeug.exceptions import GatewayTimeout
from werkzeug.wrappers import Response as ResponseBase

from flask_restful_async.awaiting import awaiting, current_api
from flask_restful_async.loops import run_coroutine_sync
from flask_restful_async.utils import unpack

__all__ = ["Resource", "AsyncResource"]

Decorators = Union[List[Callable[..., Any]], Dict[str, List[Callable[..., Any]]]]


class Resource(MethodView):
    """A REST resource: one method per HTTP verb (`get`, `post`, ...), called with the URL
    variables.  Unsupported verbs get 405 from the Api; HEAD falls back to `get`.

    `method_decorators` (a list, or a dict from lower-case verb to list) wrap the method at
    dispatch; `representations` maps media types to transformers for this resource only.
    """

    representations: ClassVar[Optional[Dict[str, Callable[..., Any]]]] = None
    method_decorators: ClassVar[Decorators] = []

    def _method(self, method: Optional[str] = None) -> Callable[..., Any]:
        """The bound method for `method` (default: the request's verb), decorated."""
        if method is None:
            method = request.method
        meth = getattr(self, method.lower(), None)
        if meth is None and method == "HEAD":
            meth = getattr(self, "get", None)
        assert meth is not None, "Unimplemented method %r" % method
        decorators = self.method_decorators
        if type(decorators) is not list and isinstance(decorators, Mapping):
            decorators = decorators.get(method.lower(), [])
        for decorator in decorators:
            meth = decorator(meth)
        return meth

    def _represent(self, resp: Any) -> Any:
        """Apply this resource's own representations, if one matches the Accept header."""
        representations = self.representations
        if not representations or isinstance(resp, ResponseBase):
            return resp  # (no Accept header parsing when there is nothing to choose from)
        mediatype = request.accept_mimetypes.best_match(representations, default=None)
        if mediatype in representations:
            data, code, headers = unpack(resp)
            resp = representations[mediatype](data, code, headers)
            resp.headers["Content-Type"] = mediatype
        return resp

    def dispatch_request(self, *args: Any, **kwargs: Any) -> Any:
        """Call the method for the request's verb and return its (represented) result."""
        return self._call(args, kwargs)

    def _call(self, args: Tuple[Any, ...], kwargs: Dict[str, Any],
              method: Optional[str] = None) -> Any:
        """The method for `method` (default: the request's) called and its result
        represented (a server that knows the method calls this without a request object)."""
        resp = self._method(method)(*args, **kwargs)
        if inspect.isawaitable(resp):
            # an `async def` method (or async method decorator) on a plain Resource
            resp = run_coroutine_sync(resp)
        return self._represent(resp)


class AsyncResource(Resource):
    """A Resource whose methods are `async def` (plain methods work too, run inline).

    On an event-loop server the coroutine runs on the server's loop; under WSGI it runs on
    the worker thread's own loop.  Inside it, across awaits, `flask.request`, `g`,
    `current_app`, `session`, `url_for`, reqparse, marshal and `abort` work as in a sync
    resource.  `timeout` (seconds, or None for the Api's default) bounds each call: when it
    expires the method is cancelled (its cleanup runs) and the client gets 504.
    """

    timeout: ClassVar[Optional[float]] = None

    def dispatch_request(self, *args: Any, **kwargs: Any) -> Any:
        """From a caller that awaits (an async request pipeline, an async decorator):
        the coroutine.  From synchronous code (Flask's WSGI dispatch, a direct call): run
        it on this thread's loop and return the result."""
        timeout = self.timeout
        if timeout is None:
            timeout = getattr(current_api(), "timeout", None)
        coro = self._dispatch(args, kwargs, timeout)
        if awaiting():
            return coro
        return run_coroutine_sync(coro)

    async def dispatch_request_async(self, *args: Any, **kwargs: Any) -> Any:
        """The coroutine behind `dispatch_request`, with this class's own timeout."""
        return await self._dispatch(args, kwargs, self.timeout)

    def _dispatch(self, args: Tuple[Any, ...], kwargs: Dict[str, Any],
                  timeout: Optional[float], method: Optional[str] = None) -> Awaitable[Any]:
        """An awaitable of the result of the method for `method` (default: the request's),
        represented, within `timeout` seconds when set.  With no deadline and no
        representations it is the method's own coroutine: awaiting it costs no frame here."""
        meth = self._method(method)
        if timeout or self.representations:
            return self._run(meth, args, kwargs, timeout)
        resp = meth(*args, **kwargs)
        if type(resp) is CoroutineType or inspect.isawaitable(resp):
            return resp
        return _value(resp)  # a plain method on an AsyncResource

    async def _run(self, meth: Callable[..., Any], args: Tuple[Any, ...],
                   kwargs: Dict[str, Any], timeout: Optional[float]) -> Any:
        if not timeout:
            resp = meth(*args, **kwargs)
            if inspect.isawaitable(resp):
                resp = await resp
            return self._represent(resp)
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                resp = meth(*args, **kwargs)
                if inspect.isawaitable(resp):
                    resp = await resp
        except TimeoutError:
            if deadline.expired():
                raise GatewayTimeout() from None
            raise  # the method's own TimeoutError, not ours
        return self._represent(resp)


async def _value(value: Any) -> Any:
    """`value` as an awaitable."""
    return value
