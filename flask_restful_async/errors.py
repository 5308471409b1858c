"""`abort` and the PROPAGATE_EXCEPTIONS rules shared by the sync and async paths."""
import sys
from typing import Any, NoReturn

from flask import Flask
from flask import abort as flask_abort
from werkzeug.exceptions import HTTPException

__all__ = ["abort", "propagate_exceptions", "reraise_if_propagating"]


def abort(http_status_code: int, **kwargs: Any) -> NoReturn:
    """Raise the HTTPException for `http_status_code`; keyword arguments become its `data`,
    which the Api sends as the JSON error body."""
    try:
        flask_abort(http_status_code)
    except HTTPException as e:
        if kwargs:
            e.data = kwargs
        raise


def propagate_exceptions(app: Flask) -> bool:
    """Flask's rule: PROPAGATE_EXCEPTIONS, or when it is None, testing or debug mode."""
    value = app.config.get("PROPAGATE_EXCEPTIONS", False)
    if value is None:
        return bool(app.testing or app.debug)
    return bool(value)


def reraise_if_propagating(app: Flask, e: BaseException) -> None:
    """Re-raise `e` when the app propagates exceptions and `e` is not an HTTP error.

    When `e` is the exception being handled it is re-raised with its own traceback.
    """
    if isinstance(e, HTTPException) or not propagate_exceptions(app):
        return
    if sys.exc_info()[1] is e:
        raise  # noqa: PLE0704  (re-raise the active exception unchanged)
    raise e
