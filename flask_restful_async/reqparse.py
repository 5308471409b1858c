"""Request argument parsing: declare arguments, then `parse_args()` inside a request.

Unlike flask-restful 0.3.10 on Werkzeug >= 2.1, the default locations ('json', 'values')
do not fail with 415 when the body is not JSON: a request without a JSON body simply has
no JSON arguments.  A body declared as JSON but malformed is still a 400.
"""
import decimal
from collections.abc import Mapping, MutableSequence
from copy import deepcopy
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Type, Union

from flask import current_app, request
from flask.globals import _cv_request
from werkzeug import exceptions
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.wrappers import Request as WerkzeugRequest

import flask_restful_async
from flask_restful_async.light_request import LightRequest as _LightRequest

__all__ = ["Argument", "RequestParser", "Namespace"]


class Namespace(dict):
    """The parse result: a dict whose keys are also attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


_friendly_location = {
    "json": "the JSON body",
    "form": "the post body",
    "args": "the query string",
    "values": "the post body or the query string",
    "headers": "the HTTP headers",
    "cookies": "the request's cookies",
    "files": "an uploaded file",
}


class _TextTypes:
    """What the default argument type converts with.  Published as `six` because code and
    tests written for flask-restful patch `flask_restful.reqparse.six`."""

    text_type = str
    string_types = (str,)


six = _TextTypes()


def text_type(value: Any) -> str:
    """The default argument type: the value as a string."""
    return six.text_type(value)


def _request_json(req: Any) -> Any:
    """The JSON body of `req`, or None when it has none.

    Werkzeug >= 2.1 raises 415 from `request.json` when the body is not JSON; a parser
    reading several locations must treat that as "no JSON arguments" instead.
    """
    if getattr(req, "is_json", True) is False:
        return None
    if type(req) is _LightRequest:
        req = req.real
    if isinstance(req, WerkzeugRequest):
        if not req.get_data(cache=True):
            return None
        data = req.get_json()  # malformed JSON: 400, as before
    else:
        data = getattr(req, "json", None)
    # a JSON array or scalar holds no named arguments
    return data if isinstance(data, Mapping) else None


def _read_location(req: Any, location: str) -> Any:
    if location == "json":
        return _request_json(req)
    value = getattr(req, location, None)
    if callable(value):
        value = value()
    return value


def _current_request() -> Any:
    """The request parse_args reads by default: on the native path, the context's light
    view of it (no werkzeug Request made for query arguments alone); else `request`."""
    ctx = _cv_request.get(None)
    light = getattr(ctx, "light_request", None)
    return light() if light is not None else request


class Argument:
    """One argument of a RequestParser.

    :param name: the key in the request (or a list of option strings)
    :param default: value when absent (a callable is called)
    :param dest: key in the parse result (default: `name`)
    :param required: absent → 400
    :param ignore: conversion errors are ignored instead of giving 400
    :param type: converter called with the raw value (tried as type(value, name, op),
        type(value, name), then type(value))
    :param location: request attribute(s) to read: 'json', 'values', 'args', 'form',
        'headers', 'cookies', 'files', 'view_args'...; when several, later ones win
    :param choices: allowed values
    :param action: 'store' (first value) or 'append' (all values as a list)
    :param help: error message; may contain "{error_msg}"
    :param operators: suffixes read besides the name, e.g. ['>=', '<=', '=']
    :param case_sensitive: False lowercases values (and choices)
    :param store_missing: put the default in the result when absent
    :param trim: strip whitespace around values
    :param nullable: allow JSON null
    """

    def __init__(self, name: Any, default: Any = None, dest: Optional[str] = None,
                 required: bool = False, ignore: bool = False, type: Callable[..., Any] = text_type,
                 location: Union[str, Iterable[str]] = ("json", "values"), choices: Any = (),
                 action: str = "store", help: Optional[str] = None,
                 operators: Iterable[str] = ("=",), case_sensitive: bool = True,
                 store_missing: bool = True, trim: bool = False, nullable: bool = True) -> None:
        self.name = name
        self.default = default
        self.dest = dest
        self.required = required
        self.ignore = ignore
        self.location = location
        self.type = type
        self.choices = choices
        self.action = action
        self.help = help
        self.case_sensitive = case_sensitive
        self.operators = operators
        self.store_missing = store_missing
        self.trim = trim
        self.nullable = nullable

    def __str__(self) -> str:
        choices = self.choices
        if len(choices) > 5:
            choices = list(choices[:3]) + ["...", choices[-1]]
        return "Name: {0}, type: {1}, choices: {2}".format(self.name, self.type, choices)

    def __repr__(self) -> str:
        return ("{0}('{1}', default={2}, dest={3}, required={4}, ignore={5}, location={6}, "
                "type=\"{7}\", choices={8}, action='{9}', help={10}, case_sensitive={11}, "
                "operators={12}, store_missing={13}, trim={14}, nullable={15})").format(
            type(self).__name__, self.name, self.default, self.dest, self.required,
            self.ignore, self.location, self.type, self.choices, self.action, self.help,
            self.case_sensitive, self.operators, self.store_missing, self.trim, self.nullable)

    def source(self, request: Any) -> Any:
        """The mapping of raw values this argument reads from `request`."""
        if isinstance(self.location, str):
            value = _read_location(request, self.location)
            return value if value is not None else MultiDict()
        values = MultiDict()
        for location in self.location:
            value = _read_location(request, location)
            if value is None:
                continue
            values.update(value)
        return values

    def convert(self, value: Any, op: str) -> Any:
        """`value` converted by `type` (None passes when nullable)."""
        if value is None:
            if self.nullable:
                return None
            raise ValueError("Must not be null!")
        kind = self.type
        if (kind is int or kind is float or kind is text_type or kind is bool) \
                and type(self.name) is str:
            # called with (value, name, op) or (value, name) these always raise TypeError
            # (a str is no base, and they take fewer arguments): only (value) can count
            return kind(value)
        if isinstance(value, FileStorage) and self.type == FileStorage:
            return value
        try:
            return self.type(value, self.name, op)
        except TypeError:
            pass
        try:
            if self.type is decimal.Decimal:
                return self.type(str(value))
            return self.type(value, self.name)
        except TypeError:
            return self.type(value)

    def _bundling(self, bundle_errors: bool) -> bool:
        return bool(bundle_errors or current_app.config.get("BUNDLE_ERRORS", False))

    def handle_validation_error(self, error: Exception, bundle_errors: bool) -> Any:
        """Abort with 400 and {name: message}; when bundling, return (error, message)
        for the parser to collect instead."""
        error_msg = self.help.format(error_msg=str(error)) if self.help else str(error)
        msg = {self.name: error_msg}
        if self._bundling(bundle_errors):
            return error, msg
        flask_restful_async.abort(400, message=msg)

    def _missing_message(self) -> str:
        locations = [self.location] if isinstance(self.location, str) else self.location
        return "Missing required parameter in {0}".format(
            " or ".join(_friendly_location.get(loc, loc) for loc in locations))

    def parse(self, request: Any, bundle_errors: bool = False) -> Tuple[Any, Any]:
        """(value, found) for this argument in `request`; (error, {name: message}) when
        a validation error is being bundled."""
        source = self.source(request)
        results: List[Any] = []
        for operator in self.operators:
            name = self.name + operator.replace("=", "", 1)
            if name not in source:
                continue
            if hasattr(source, "getlist"):
                values = source.getlist(name)
            else:
                values = source.get(name)
                if not (isinstance(values, MutableSequence) and self.action == "append"):
                    values = [values]
            for value in values:
                if hasattr(value, "strip") and self.trim:
                    value = value.strip()
                choices = self.choices
                if hasattr(value, "lower") and not self.case_sensitive:
                    value = value.lower()
                    if hasattr(choices, "__iter__"):
                        choices = [c.lower() if hasattr(c, "lower") else c for c in choices]
                try:
                    value = self.convert(value, operator)
                except Exception as error:
                    if self.ignore:
                        continue
                    return self.handle_validation_error(error, bundle_errors)
                if choices and value not in choices:
                    error = ValueError("{0} is not a valid choice".format(value))
                    if self._bundling(bundle_errors):
                        return self.handle_validation_error(error, bundle_errors)
                    self.handle_validation_error(error, bundle_errors)
                unparsed = getattr(request, "unparsed_arguments", None)
                if isinstance(unparsed, dict):
                    unparsed.pop(name, None)
                results.append(value)

        if not results and self.required:
            error = ValueError(self._missing_message())
            if self._bundling(bundle_errors):
                return self.handle_validation_error(error, bundle_errors)
            self.handle_validation_error(error, bundle_errors)

        if not results:
            return (self.default() if callable(self.default) else self.default), False
        if self.action == "append":
            return results, True
        if self.action == "store" or len(results) == 1:
            return results[0], True
        return results, True


class RequestParser:
    """A set of Arguments parsed together from one request.

    :param trim: strip whitespace from every argument (unless the argument says otherwise)
    :param bundle_errors: report all invalid arguments at once instead of the first
    """

    def __init__(self, argument_class: Type[Argument] = Argument,
                 namespace_class: Type[dict] = Namespace, trim: bool = False,
                 bundle_errors: bool = False) -> None:
        self.args: List[Argument] = []
        self.argument_class = argument_class
        self.namespace_class = namespace_class
        self.trim = trim
        self.bundle_errors = bundle_errors

    def add_argument(self, *args: Any, **kwargs: Any) -> "RequestParser":
        """Add an Argument (an instance, or the Argument constructor's parameters)."""
        if len(args) == 1 and isinstance(args[0], self.argument_class):
            self.args.append(args[0])
        else:
            self.args.append(self.argument_class(*args, **kwargs))
        if self.trim and self.argument_class is Argument:
            self.args[-1].trim = kwargs.get("trim", self.trim)
        return self

    def parse_args(self, req: Any = None, strict: bool = False,
                   http_error_code: int = 400) -> Any:
        """Parse every argument from `req` (default: the current request) into a Namespace.

        :param strict: arguments the parser does not know → 400
        :param http_error_code: status for bundled validation errors
        """
        if req is None:
            req = _current_request() if self._plain_arguments() else request
        namespace = self.namespace_class()
        req.unparsed_arguments = dict(self.argument_class("").source(req)) if strict else {}
        errors: Dict[str, Any] = {}
        for arg in self.args:
            value, found = arg.parse(req, self.bundle_errors)
            if isinstance(value, Exception) and isinstance(found, dict):
                errors.update(found)
                continue
            if found or arg.store_missing:
                namespace[arg.dest or arg.name] = value
        if errors:
            flask_restful_async.abort(http_error_code, message=errors)
        if strict and req.unparsed_arguments:
            raise exceptions.BadRequest("Unknown arguments: %s"
                                        % ", ".join(req.unparsed_arguments.keys()))
        return namespace

    def _plain_arguments(self) -> bool:
        """Are all arguments plain Arguments (which read the request only through its
        attributes, so a LightRequest serves them)?"""
        for arg in self.args:
            if type(arg) is not Argument:
                return False
        return True

    def copy(self) -> "RequestParser":
        """A parser with copies of the same arguments and settings."""
        parser_copy = self.__class__(self.argument_class, self.namespace_class)
        parser_copy.args = deepcopy(self.args)
        parser_copy.trim = self.trim
        parser_copy.bundle_errors = self.bundle_errors
        return parser_copy

    def replace_argument(self, name: str, *args: Any, **kwargs: Any) -> "RequestParser":
        """Replace the argument called `name` with a new one."""
        new_arg = self.argument_class(name, *args, **kwargs)
        for index, arg in enumerate(self.args):
            if arg.name == new_arg.name:
                del self.args[index]
                self.args.append(new_arg)
                break
        return self

    def remove_argument(self, name: str) -> "RequestParser":
        """Remove the argument called `name`."""
        for index, arg in enumerate(self.args):
            if arg.name == name:
                del self.args[index]
                break
        return self
