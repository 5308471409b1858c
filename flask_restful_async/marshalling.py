"""marshal / marshal_with / marshal_with_field: filter and format output through fields."""
import inspect
from collections import OrderedDict
from functools import wraps
from typing import Any, Callable, Dict, Mapping, Optional

from flask_restful_async.utils import unpack

__all__ = ["marshal", "marshal_with", "marshal_with_field"]


# One instance per field class given as a class (`{'id': fields.Integer}`), made on first
# use, for the classes whose constructor is one of flask_restful_async.fields' own (they only
# store their arguments, so instances made with no arguments are all alike).
_SHARED: Dict[type, Any] = {}
_FIELDS_MODULE = "flask_restful_async.fields"


def _instance(field: Any) -> Any:
    if not isinstance(field, type):
        return field
    shared = _SHARED.get(field)
    if shared is not None:
        return shared
    instance = field()
    if getattr(field.__init__, "__module__", None) == _FIELDS_MODULE \
            and field.__new__ is object.__new__ and len(_SHARED) < 1024:
        _SHARED[field] = instance
    return instance


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
            if isinstance(field, type):
                shared = _SHARED.get(field)
                field = shared if shared is not None else _instance(field)
            out[key] = field.output(key, data)
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
