"""marshal / marshal_with / marshal_with_field: filter and format output through fields."""
import inspect
from collections import OrderedDict
from functools import wraps
from typing import Any, Callable, Mapping, Optional

from flask_restful_async.utils import unpack

__all__ = ["marshal", "marshal_with", "marshal_with_field"]


def _instance(field: Any) -> Any:
    return field() if isinstance(field, type) else field


def marshal(data: Any, fields: Mapping[str, Any], envelope: Optional[str] = None) -> Any:
    """Keep only the keys named in `fields` from `data` (a dict, an object, or a list or
    tuple of them), each formatted by its field; a dict in `fields` nests.  With `envelope`
    the result is wrapped as `{envelope: result}`."""
    if isinstance(data, (list, tuple)):
        items = [marshal(item, fields) for item in data]
        return OrderedDict([(envelope, items)]) if envelope else items
    out = OrderedDict()
    for key, field in fields.items():
        if isinstance(field, dict):
            out[key] = marshal(data, field)
        else:
            out[key] = _instance(field).output(key, data)
    return OrderedDict([(envelope, out)]) if envelope else out


def _transform_result(f: Callable[..., Any], transform: Callable[[Any], Any]) -> Callable[..., Any]:
    """Wrap `f` (sync or async) so its data, alone or in a (data, code[, headers]) tuple,
    goes through `transform`."""
    def apply(resp: Any) -> Any:
        if isinstance(resp, tuple):
            data, code, headers = unpack(resp)
            return transform(data), code, headers
        return transform(resp)

    if inspect.iscoroutinefunction(f):
        @wraps(f)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            return apply(await f(*args, **kwargs))
        return async_wrapper

    @wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        resp = f(*args, **kwargs)
        if inspect.isawaitable(resp):  # a sync wrapper around a coroutine function
            async def later() -> Any:
                return apply(await resp)
            return later()
        return apply(resp)
    return wrapper


class marshal_with:
    """Decorator: marshal the return value of a view or resource method (sync or async).

    >>> @marshal_with({'a': fields.Raw})
    ... def get():
    ...     return {'a': 100, 'b': 'foo'}
    >>> get()
    OrderedDict([('a', 100)])
    """

    def __init__(self, fields: Mapping[str, Any], envelope: Optional[str] = None) -> None:
        self.fields = fields
        self.envelope = envelope

    def __call__(self, f: Callable[..., Any]) -> Callable[..., Any]:
        return _transform_result(f, lambda data: marshal(data, self.fields, self.envelope))


class marshal_with_field:
    """Decorator: format the return value of a view or resource method with one field.

    >>> @marshal_with_field(fields.List(fields.Integer))
    ... def get():
    ...     return ['1', 2, 3.0]
    >>> get()
    [1, 2, 3]
    """

    def __init__(self, field: Any) -> None:
        self.field = _instance(field)

    def __call__(self, f: Callable[..., Any]) -> Callable[..., Any]:
        return _transform_result(f, self.field.format)
