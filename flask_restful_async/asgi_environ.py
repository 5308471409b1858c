"""The PEP 3333 environ for an ASGI HTTP scope, for Flask apps served by another ASGI server
(uvicorn, hypercorn).  Our own server builds the environ in C (csrc/py/request.c) by the same
rules: bytes as latin-1, PATH_INFO without the root path, headers with '_' dropped, repeated
fields joined with ',' and Cookie fields with '; ' (RFC 6265 5.4)."""
import io
import sys
from typing import Any, Dict
from urllib.parse import unquote_to_bytes

__all__ = ["environ_from_scope"]

_BASE_ENVIRON: Dict[str, Any] = {
    "wsgi.version": (1, 0),
    "wsgi.errors": sys.stderr,
    "wsgi.multithread": True,
    # another server may run several processes; it does not tell the app
    "wsgi.multiprocess": True,
    "wsgi.run_once": False,
    "wsgi.input_terminated": True,
}
# raw header name -> environ key ("" for names with "_", which are dropped: they would be
# indistinguishable from their '-' twins once in the environ); bounded
_HEADER_KEYS: Dict[bytes, str] = {}


def _environ_key(raw_name: bytes) -> str:
    key = _HEADER_KEYS.get(raw_name)
    if key is None:
        name = raw_name.decode("latin-1").lower()
        if "_" in name:
            key = ""
        elif name == "content-type":
            key = "CONTENT_TYPE"
        elif name == "content-length":
            key = "CONTENT_LENGTH"
        else:
            key = "HTTP_" + name.upper().replace("-", "_")
        if len(_HEADER_KEYS) < 1024:
            _HEADER_KEYS[raw_name] = key
    return key


def _latin1(text: str) -> str:
    """A str of UTF-8 text as PEP 3333 wants it: its bytes as latin-1."""
    return text if text.isascii() else text.encode("utf-8").decode("latin-1")


def environ_from_scope(scope: Dict[str, Any], body: bytes) -> Dict[str, Any]:
    """A PEP 3333 environ for an ASGI HTTP scope whose whole body is `body`."""
    root_path = _latin1(scope.get("root_path", ""))
    raw_path = scope.get("raw_path")
    # the percent-decoded bytes of the target's path, as the server received them
    path = unquote_to_bytes(raw_path).decode("latin-1") if raw_path else _latin1(scope["path"])
    if root_path and (path == root_path or path.startswith(root_path + "/")):
        path = path[len(root_path):]
    raw_path = raw_path or scope["path"].encode("utf-8")
    query = scope.get("query_string", b"")
    server = scope.get("server") or ("localhost", 80)
    environ = _BASE_ENVIRON.copy()
    environ["REQUEST_METHOD"] = scope["method"]
    environ["SCRIPT_NAME"] = root_path
    environ["PATH_INFO"] = path
    environ["QUERY_STRING"] = query.decode("latin-1")
    environ["RAW_URI"] = (raw_path + b"?" + query if query else raw_path).decode("latin-1")
    environ["SERVER_NAME"] = str(server[0])
    environ["SERVER_PORT"] = str(server[1]) if server[1] is not None else "80"
    environ["SERVER_PROTOCOL"] = "HTTP/" + scope.get("http_version", "1.1")
    environ["wsgi.url_scheme"] = scope.get("scheme", "http")
    environ["wsgi.input"] = io.BytesIO(body)
    environ["asgi.scope"] = scope
    client = scope.get("client")
    if client:
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = str(client[0]), str(client[1])
    for raw_name, raw_value in scope.get("headers", ()):
        key = _environ_key(raw_name)
        if not key:
            continue
        value = raw_value.decode("latin-1")
        if key in environ and key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[key] += ("; " if key == "HTTP_COOKIE" else ",") + value
        else:
            environ[key] = value
    if body and "CONTENT_LENGTH" not in environ:
        environ["CONTENT_LENGTH"] = str(len(body))
    return environ
