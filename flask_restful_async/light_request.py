"""Query arguments without a werkzeug Request: what reqparse reads for `location="args"` (and
`values` of a GET), made straight from the raw query string, equal to werkzeug's own."""
from inspect import getattr_static
from typing import Any, Dict, List
from urllib.parse import parse_qsl

import werkzeug.urls  # noqa: F401  (registers the "werkzeug.url_quote" error handler)
from flask import Request as FlaskRequest
from werkzeug.datastructures import CombinedMultiDict, ImmutableMultiDict

__all__ = ["LightRequest", "parse_query_args", "stock_request_class"]

_sentinel: Any = object()

_STOCK_REQUEST_CLASSES: Dict[type, bool] = {}
_REQUEST_ATTRS = ("args", "values", "is_json", "parameter_storage_class")


def stock_request_class(cls: type) -> bool:
    """Does `cls` read args, values and is_json exactly as flask.Request does?"""
    stock = _STOCK_REQUEST_CLASSES.get(cls)
    if stock is None:
        stock = all(getattr_static(cls, name, None) is getattr_static(FlaskRequest, name)
                    for name in _REQUEST_ATTRS)
        if len(_STOCK_REQUEST_CLASSES) < 64:
            _STOCK_REQUEST_CLASSES[cls] = stock
    return stock


def _new_args(lists: Dict[str, List[str]]) -> ImmutableMultiDict:
    """ImmutableMultiDict(lists) (a dict of non-empty lists), made without the generic
    constructor's per-item type checks when werkzeug's MultiDict is the dict of lists it
    has always been (checked once, at import)."""
    md = ImmutableMultiDict.__new__(ImmutableMultiDict)
    dict.update(md, lists)
    return md


def _new_args_checked() -> bool:
    try:
        sample = {"a": ["1", "2"], "b": [""]}
        made = _new_args({k: list(v) for k, v in sample.items()})
        stock = ImmutableMultiDict([("a", "1"), ("a", "2"), ("b", "")])
        return (type(made) is type(stock) and made == stock
                and list(made.lists()) == list(stock.lists())
                and list(made.items(multi=True)) == list(stock.items(multi=True))
                and made.getlist("a") == ["1", "2"] and made["a"] == "1"
                and made.to_dict(flat=False) == sample and made.__dict__ == stock.__dict__)
    except Exception:  # pragma: no cover - a werkzeug whose MultiDict is built otherwise
        return False


_FAST_ARGS = _new_args_checked()


def parse_query_args(query_string: bytes) -> ImmutableMultiDict:
    """`flask.Request.args` for a raw query string: an equal ImmutableMultiDict.  Plain
    ASCII without escapes is split here; anything else goes through the exact call
    werkzeug makes (so errors and decoding are the same)."""
    if query_string.isascii() and b"%" not in query_string and b"+" not in query_string:
        if not _FAST_ARGS:
            pairs = []
            for part in query_string.decode("ascii").split("&"):
                if part:
                    name, _, value = part.partition("=")
                    pairs.append((name, value))
            return ImmutableMultiDict(pairs)
        lists: Dict[str, List[str]] = {}
        for part in query_string.decode("ascii").split("&"):
            if part:
                name, _, value = part.partition("=")
                values = lists.get(name)
                if values is None:
                    lists[name] = [value]
                else:
                    values.append(value)
        return _new_args(lists)
    return ImmutableMultiDict(parse_qsl(query_string.decode(), keep_blank_values=True,
                                        errors="werkzeug.url_quote"))


class LightRequest:
    """Stands in for `flask.request` while reqparse reads it (see
    LazyRequestContext.light_request): `args` from the raw query string, `values`
    for a GET, `is_json` without a Content-Type header, and `unparsed_arguments`;
    every other attribute read is the real request's (made on first use, with what was
    read here carried over)."""

    _args: Any = None
    _values: Any = None
    _unparsed: Any = _sentinel

    def __init__(self, ctx: "LazyRequestContext") -> None:
        self._ctx = ctx

    @property
    def real(self) -> Any:
        """The werkzeug Request itself."""
        return self._ctx.request

    def _made(self) -> Any:
        return self._ctx.__dict__.get("request")

    def _no_content_type(self) -> bool:
        return self._ctx.header(b"content-type") is None

    @property
    def args(self) -> Any:
        real = self._made()
        if real is not None:
            return real.args
        args = self._args
        if args is None:
            args = self._args = parse_query_args(self._ctx.query_string())
        return args

    @property
    def values(self) -> Any:
        real = self._made()
        if real is not None:
            return real.values
        values = self._values
        if values is None:
            if self._ctx.method != "GET":
                return self.real.values  # the form counts too
            values = self._values = CombinedMultiDict([self.args])  # (werkzeug's, for GET)
        return values

    @property
    def is_json(self) -> bool:
        real = self._made()
        if real is None and self._no_content_type():
            return False  # (no Content-Type: no JSON mimetype)
        return self.real.is_json

    @property
    def unparsed_arguments(self) -> Any:
        real = self._made()
        if real is not None:
            return real.unparsed_arguments
        if self._unparsed is _sentinel:
            raise AttributeError("unparsed_arguments")
        return self._unparsed

    @unparsed_arguments.setter
    def unparsed_arguments(self, value: Any) -> None:
        real = self._made()
        if real is not None:
            real.unparsed_arguments = value
        else:
            self._unparsed = value

    def carry_over(self, req: Any) -> None:
        """Give the real request, just made, what was read here."""
        if self._args is not None:
            req.__dict__["args"] = self._args
        if self._values is not None:
            req.__dict__["values"] = self._values
        if self._unparsed is not _sentinel:
            req.unparsed_arguments = self._unparsed

    def __getattr__(self, name: str) -> Any:
        if name == "unparsed_arguments" and self._made() is None:
            raise AttributeError(name)  # (not set yet: the real request has none either)
        return getattr(self.real, name)
