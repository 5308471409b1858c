"""Output fields for `marshal`: each pulls one value from an object and formats it."""
from calendar import timegm
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from email.utils import formatdate
from typing import Any, Callable, Optional, Union
from urllib.parse import urlparse, urlunparse

from flask import request, url_for

from flask_restful_async.marshalling import marshal

__all__ = ["String", "FormattedString", "Url", "DateTime", "Float", "Integer", "Arbitrary",
           "Nested", "List", "Raw", "Boolean", "Fixed", "Price"]

Key = Union[str, int, Callable[[Any], Any]]


class MarshallingException(Exception):
    """A field could not format its value; the message names the underlying error only."""

    def __init__(self, underlying_exception: Any) -> None:
        super().__init__(str(underlying_exception))


def is_indexable_but_not_string(obj: Any) -> bool:
    """True for containers (lists, dicts, ...) but not for strings."""
    return not hasattr(obj, "strip") and hasattr(obj, "__iter__")


def _lookup(key: Any, obj: Any, default: Any) -> Any:
    if is_indexable_but_not_string(obj):
        try:
            return obj[key]
        except (IndexError, TypeError, KeyError):
            pass
    return getattr(obj, key, default)


def get_value(key: Key, obj: Any, default: Any = None) -> Any:
    """Read `key` from `obj`: an int indexes, a callable is called with `obj`, a string
    is a dotted path of keys or attributes."""
    if type(key) is str and "." not in key:
        if type(obj) is dict:  # (what _lookup does for a plain dict, inline)
            try:
                return obj[key]
            except (IndexError, TypeError, KeyError):
                return getattr(obj, key, default)
        return _lookup(key, obj, default)
    if isinstance(key, int):
        return _lookup(key, obj, default)
    if callable(key):
        return key(obj)
    value = obj
    for part in key.split("."):
        value = _lookup(part, value, default)
    return value


def to_marshallable_type(obj: Any) -> Any:
    """`obj` as something indexable: itself if it is, its `__marshallable__()` if it has
    one, else a dict of its attributes.  None stays None."""
    if obj is None:
        return None
    if hasattr(obj, "__marshallable__"):
        return obj.__marshallable__()
    if hasattr(obj, "__getitem__"):
        return obj
    return dict(obj.__dict__)


class Raw:
    """A value passed through unformatted; the base of all fields.

    :param default: returned when the value is missing or None
    :param attribute: where to read the value when it differs from the output key
        (a name, dotted path, int or callable)
    """

    def __init__(self, default: Any = None, attribute: Optional[Key] = None) -> None:
        self.attribute = attribute
        self.default = default

    def format(self, value: Any) -> Any:
        """Format a present value; raise MarshallingException when it cannot be."""
        return value

    def output(self, key: Key, obj: Any) -> Any:
        """The formatted value of `key` (or `attribute`) in `obj`, or the default."""
        value = get_value(key if self.attribute is None else self.attribute, obj)
        if value is None:
            return self.default
        return self.format(value)


class Nested(Raw):
    """A nested object marshalled with its own dict of fields.

    :param allow_null: give None (instead of a dict of Nones) when the value is None
    :param default: given instead when the value is None (unless allow_null)
    """

    def __init__(self, nested: dict, allow_null: bool = False, **kwargs: Any) -> None:
        self.nested = nested
        self.allow_null = allow_null
        super().__init__(**kwargs)

    def output(self, key: Key, obj: Any) -> Any:
        value = get_value(key if self.attribute is None else self.attribute, obj)
        if value is None:
            if self.allow_null:
                return None
            if self.default is not None:
                return self.default
        return marshal(value, self.nested)


class List(Raw):
    """A list whose items are each formatted by another field (class or instance)."""

    def __init__(self, cls_or_instance: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        container = cls_or_instance() if isinstance(cls_or_instance, type) else cls_or_instance
        if not isinstance(container, Raw):
            raise MarshallingException("The type of the list elements must be a subclass of "
                                       "flask_restful.fields.Raw")
        self.container = container

    def format(self, value: Any) -> Any:
        if isinstance(value, set):
            value = list(value)
        container = self.container
        # Fields that read a key get each item as their object; Nested and plain Raw take
        # the item out of the list by position instead.
        per_item = not isinstance(container, Nested) and type(container) is not Raw
        out = []
        for index, item in enumerate(value):
            reads_item = isinstance(item, dict) or (
                container.attribute and hasattr(item, container.attribute))
            out.append(container.output(index, item if per_item and reads_item else value))
        return out

    def output(self, key: Key, data: Any) -> Any:
        value = get_value(key if self.attribute is None else self.attribute, data)
        if is_indexable_but_not_string(value) and not isinstance(value, dict):
            return self.format(value)
        if value is None:
            return self.default
        return [marshal(value, self.container.nested)]


class String(Raw):
    """The value as `str`."""

    def format(self, value: Any) -> str:
        try:
            return str(value)
        except ValueError as e:
            raise MarshallingException(e)


class Integer(Raw):
    """The value as `int` (default 0 when missing)."""

    def __init__(self, default: Any = 0, **kwargs: Any) -> None:
        super().__init__(default=default, **kwargs)

    def format(self, value: Any) -> Any:
        if value is None:
            return self.default
        try:
            return int(value)
        except ValueError as e:
            raise MarshallingException(e)


class Boolean(Raw):
    """The value's truth (empty collections are False)."""

    def format(self, value: Any) -> bool:
        return bool(value)


class FormattedString(Raw):
    """A `str.format` template filled from the whole object, e.g. "Hello {name}"."""

    def __init__(self, src_str: str) -> None:
        super().__init__()
        self.src_str = str(src_str)

    def output(self, key: Key, obj: Any) -> str:
        try:
            return self.src_str.format(**to_marshallable_type(obj))
        except (TypeError, IndexError) as e:
            raise MarshallingException(e)


class Url(Raw):
    """The URL of an endpoint built from the object's values (`url_for`).

    :param endpoint: defaults to the current request's endpoint
    :param absolute: include scheme and host
    :param scheme: scheme of absolute URLs (default: the request's)
    """

    def __init__(self, endpoint: Optional[str] = None, absolute: bool = False,
                 scheme: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.endpoint = endpoint
        self.absolute = absolute
        self.scheme = scheme

    def output(self, key: Key, obj: Any) -> str:
        try:
            values = to_marshallable_type(obj)
            endpoint = self.endpoint if self.endpoint is not None else request.endpoint
            parts = urlparse(url_for(endpoint, _external=self.absolute, **values))
        except TypeError as e:
            raise MarshallingException(e)
        if self.absolute:
            scheme = self.scheme if self.scheme is not None else parts.scheme
            return urlunparse((scheme, parts.netloc, parts.path, "", "", ""))
        return urlunparse(("", "", parts.path, "", "", ""))


class Float(Raw):
    """The value as a float (IEEE-754 double)."""

    def format(self, value: Any) -> float:
        try:
            return float(value)
        except ValueError as e:
            raise MarshallingException(e)


class Arbitrary(Raw):
    """A decimal of arbitrary precision, as a string."""

    def format(self, value: Any) -> str:
        return str(Decimal(value))


def _rfc822(dt: datetime) -> str:
    """A datetime as an RFC 822 date in UTC, e.g. "Sat, 01 Jan 2011 00:00:00 -0000"."""
    return formatdate(timegm(dt.utctimetuple()))


def _iso8601(dt: datetime) -> str:
    """A datetime in ISO 8601, e.g. "2012-01-01T00:00:00"."""
    return dt.isoformat()


class DateTime(Raw):
    """A datetime as an RFC 822 (default) or ISO 8601 string.

    :param dt_format: 'rfc822' or 'iso8601'
    """

    def __init__(self, dt_format: str = "rfc822", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dt_format = dt_format

    def format(self, value: Any) -> str:
        formatter = {"rfc822": _rfc822, "iso8601": _iso8601}.get(self.dt_format)
        if formatter is None:
            raise MarshallingException("Unsupported date format %s" % self.dt_format)
        try:
            return formatter(value)
        except AttributeError as e:
            raise MarshallingException(e)


ZERO = Decimal()


class Fixed(Raw):
    """A decimal rounded (half-even) to `decimals` places, as a string."""

    def __init__(self, decimals: int = 5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.precision = Decimal(1).scaleb(-decimals)

    def format(self, value: Any) -> str:
        number = Decimal(value)
        if number != ZERO and not number.is_normal():
            raise MarshallingException("Invalid Fixed precision number.")
        return str(number.quantize(self.precision, rounding=ROUND_HALF_EVEN))


#: Alias of Fixed.
Price = Fixed
