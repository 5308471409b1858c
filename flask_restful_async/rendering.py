"""What a resource returned, answered without a Response object when Api.make_response would
give a plain JSON response: the status and the JSON text, written by the server in one call."""
from json import dumps
from typing import Any, Optional, Tuple

from werkzeug.wrappers import Response as ResponseBase

from flask_restful_async.representations.json import output_json
from flask_restful_async.streaming.responses import PLAIN_RESULTS, stream_response_of
from flask_restful_async.utils import unpack

__all__ = ["JSON", "json_dumps_default", "render_direct", "shape_result", "whole_response"]

#: the Content-Type of a direct answer
JSON = b"application/json"

# json.dumps(data) with its default settings, without making an encoder per call: the same
# C encoder, minus the circular-reference bookkeeping (anything it cannot encode, circular
# data included, is encoded again by json.dumps itself, which raises what it raises).
try:
    from json.encoder import JSONEncoder, c_make_encoder, encode_basestring_ascii

    _encode_default = c_make_encoder(None, JSONEncoder().default, encode_basestring_ascii,
                                     None, ": ", ", ", False, False, True) \
        if c_make_encoder is not None and encode_basestring_ascii is not None else None
except ImportError:  # pragma: no cover - CPython always has the C encoder
    _encode_default = None


def json_dumps_default(data: Any) -> str:
    """Exactly `json.dumps(data)`."""
    if _encode_default is not None:
        try:
            return "".join(_encode_default(data, 0))
        except Exception:
            pass
    return dumps(data)


def render_direct(api: Any, app: Any, method: str, data: Any, code: Any,
                  headers: Any) -> Optional[Tuple[int, str]]:
    """(status, JSON text) when Api.make_response would give a plain JSON response that
    needs no Response object (the body is the text in UTF-8): else None (the caller builds
    the Response)."""
    if headers or method == "HEAD" or type(code) is not int or code < 200 \
            or code in (204, 304):
        return None
    representations = api.representations
    if len(representations) != 1 or api.default_mediatype != "application/json" \
            or representations.get("application/json") is not output_json:
        return None  # the Accept header chooses (or a custom JSON writer): the full path
    config = app.config
    settings = config.get("RESTFUL_JSON")
    if config["DEBUG"]:  # (app.debug)
        settings = dict(settings or ())
        settings.setdefault("indent", 4)
        settings.setdefault("sort_keys", False)
    elif not settings:
        if _encode_default is not None:
            try:
                return code, "".join(_encode_default(data, 0)) + "\n"
            except Exception:
                pass
        return code, dumps(data) + "\n"
    return code, dumps(data, **settings) + "\n"


def shape_result(api: Any, app: Any, ctx: Any, method: str,
                 rv: Any) -> Tuple[Optional[Tuple[int, str]], Any]:
    """What a resource returned, as Api.make_response would answer it: ((status, JSON
    text), None) when no Response object is needed (see render_direct and the context's
    `needs_response_object`), else (None, the response)."""
    if isinstance(rv, ResponseBase):
        return None, rv
    if type(rv) not in PLAIN_RESULTS:  # (the common case: no call)
        stream = stream_response_of(rv)
        if stream is not None:
            return None, stream
    data, code, headers = unpack(rv)
    direct = render_direct(api, app, method, data, code, headers)
    if direct is not None and not ctx.needs_response_object():
        return direct, None
    return None, api.make_response(data, code, headers=headers)


def whole_response(response: Any, environ: Any) -> Tuple[str, Any, bytes]:
    """A response object that is not streamed, as a server writes it: (WSGI status line,
    header list, the whole body), as its WSGI call would give them for `environ` (HEAD, 304
    and the Location rules applied)."""
    app_iter, status, headers = response.get_wsgi_response(environ)
    try:
        body = b"".join(app_iter)
    finally:
        close = getattr(app_iter, "close", None)
        if close is not None:
            close()
    return status, headers, body
