"""Test an app through the ASGI path: a WSGI callable (for werkzeug's / Flask's test
client) that serves each request with `AsgiApp` on an event loop in a background thread,
as an ASGI server would.  AsyncResource coroutines then run on that loop.

    client = asgi_test_client(app)
    assert client.get("/items").status_code == 200
"""
import asyncio
import threading
from typing import Any, Callable, Dict, Iterable, List, Tuple

from flask import Flask
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.test import Client, TestResponse

from flask_restful_async.asgi import AsgiApp

__all__ = ["AsgiBridge", "asgi_test_client", "scope_from_environ"]


def scope_from_environ(environ: Dict[str, Any]) -> Dict[str, Any]:
    """The ASGI HTTP scope for a WSGI environ (as a server would have built it)."""
    headers: List[Tuple[bytes, bytes]] = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").lower()
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            name = key.replace("_", "-").lower()
        else:
            continue
        headers.append((name.encode("latin-1"), value.encode("latin-1")))
    script_name = environ.get("SCRIPT_NAME", "")
    return {
        "type": "http", "asgi": {"version": "3.0"},
        "http_version": environ.get("SERVER_PROTOCOL", "HTTP/1.1").split("/", 1)[-1],
        "method": environ["REQUEST_METHOD"], "scheme": environ.get("wsgi.url_scheme", "http"),
        "root_path": script_name.encode("latin-1").decode("utf-8"),
        "path": (script_name + environ.get("PATH_INFO", "")).encode("latin-1").decode("utf-8"),
        "query_string": environ.get("QUERY_STRING", "").encode("latin-1"),
        "headers": headers,
        "server": (environ.get("SERVER_NAME", "localhost"), int(environ.get("SERVER_PORT", 80))),
        "client": (environ.get("REMOTE_ADDR", "127.0.0.1"), 0),
    }


class AsgiBridge:
    """WSGI callable running an ASGI app on a background event loop, one request at a time
    per calling thread.  `close()` stops the loop."""

    def __init__(self, asgi_app: Callable[..., Any]) -> None:
        self.asgi_app = asgi_app
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fra-test-loop",
                                        daemon=True)
        self._thread.start()

    def __call__(self, environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = environ["wsgi.input"].read()
        messages: List[Dict[str, Any]] = []
        delivered: List[bool] = []

        async def receive() -> Dict[str, Any]:
            if not delivered:
                delivered.append(True)
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # this client never disconnects
            raise AssertionError("unreachable")

        async def send(message: Dict[str, Any]) -> None:
            messages.append(message)

        call = self.asgi_app(scope_from_environ(environ), receive, send)
        asyncio.run_coroutine_threadsafe(call, self.loop).result()
        start = messages[0]
        status = start["status"]
        start_response("%d %s" % (status, HTTP_STATUS_CODES.get(status, "")),
                       [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start["headers"]])
        return [b"".join(m.get("body", b"") for m in messages[1:])]

    def close(self) -> None:
        """Stop and close the background loop."""
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join()
            self.loop.close()


def asgi_test_client(app: Flask, **asgi_options: Any) -> Client:
    """A werkzeug test client whose requests go through `AsgiApp(app)` on a loop thread.
    The client's `bridge` attribute holds the AsgiBridge (close it when done)."""
    bridge = AsgiBridge(AsgiApp(app, **asgi_options))
    client = Client(bridge, response_wrapper=TestResponse, use_cookies=True)
    client.bridge = bridge
    return client
