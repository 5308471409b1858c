"""A raw ASGI 3 function that does not speak lifespan (it raises for any other scope)."""
import json
import os

from _control import wait_released_async


async def app(scope, receive, send):
    if scope["type"] != "http":
        raise RuntimeError(f"unsupported scope type {scope['type']}")
    if scope["path"] == "/slow":
        await wait_released_async()
    body = json.dumps({"app": "raw-asgi", "pid": os.getpid(), "path": scope["path"]}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
