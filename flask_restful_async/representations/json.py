"""The application/json representation."""
from json import dumps
from typing import Any, Mapping, Optional

from flask import Response, current_app, make_response

from flask_restful_async.utils import PY3  # noqa: F401  (re-exported as upstream does)

__all__ = ["output_json"]


def output_json(data: Any, code: int, headers: Optional[Mapping[str, str]] = None) -> Response:
    """A Flask response with `data` encoded as JSON plus a trailing newline.

    `app.config['RESTFUL_JSON']` holds keyword arguments for `json.dumps`; in debug mode the
    output is indented by 4 unless that setting says otherwise.
    """
    settings = current_app.config.get("RESTFUL_JSON", {})
    if current_app.debug:
        settings = dict(settings)
        settings.setdefault("indent", 4)
        settings.setdefault("sort_keys", False)
    resp = make_response(dumps(data, **settings) + "\n", code)
    resp.headers.extend(headers or {})
    return resp
