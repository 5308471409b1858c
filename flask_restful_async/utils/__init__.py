"""Small helpers shared by the API layer: status texts and view return-value unpacking."""
from collections import OrderedDict
from typing import Any, Tuple

from werkzeug.http import HTTP_STATUS_CODES

__all__ = ["OrderedDict", "http_status_message", "unpack", "PY3"]

#: Kept for code written against flask-restful, which still exposes it.
PY3 = True


def http_status_message(code: int) -> str:
    """The reason phrase for an HTTP status code ('' when unknown)."""
    return HTTP_STATUS_CODES.get(code, "")


def unpack(value: Any) -> Tuple[Any, int, Any]:
    """Split a view's return value into (data, status code, headers).

    A tuple of three or two items is read as (data, code[, headers]); anything else,
    including tuples of other lengths, is the data itself with 200 and no headers.
    """
    if isinstance(value, tuple):
        if len(value) == 3:
            return value[0], value[1], value[2]
        if len(value) == 2:
            return value[0], value[1], {}
    return value, 200, {}
